//! Uploaded backup archives (`POST /api/v1/backup/import`): a zip with
//! `memories.json` (or its gzip'd JSON-lines form), read within size
//! limits; any bytes give a document or a typed error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = loci_domain::backup::read_archive(data);
});
