//! Query strings of the list route (page, size, cursor, filters, sort,
//! as_of): decoded as actix does, then parsed by the domain.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loci_domain::inputs::ListQuery;

fuzz_target!(|data: &[u8]| {
    if let Ok(query) = serde_urlencoded::from_bytes::<ListQuery>(data) {
        let _ = query.parse();
    }
});
