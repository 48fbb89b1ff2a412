//! JSON request bodies through the checks every write route runs (UTF-8,
//! syntax, the nesting limit, an object, the shape), then the domain's field
//! validation: a value or a problem, never a panic or a stack overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loci_domain::search::SearchInput;
use loci_domain::validation::CreateMemoryInput;
use loci_http::parse_body;
use loci_settings::RuntimeSettings;

fuzz_target!(|data: &[u8]| {
    let _ = parse_body::<CreateMemoryInput>(data, 32);
    if let Ok(search) = parse_body::<SearchInput>(data, 32) {
        let _ = search.parse(None);
    }
    if let Ok(change) = parse_body::<RuntimeSettings>(data, 32) {
        let mut settings = loci_settings::Settings::default();
        change.apply(&mut settings);
        let _ = settings.problems();
    }
    let _ = parse_body::<serde_json::Value>(data, 32);
});
