//! `Authorization` header values: whatever the bytes, the authenticator
//! answers with a principal or a typed rejection, never a panic.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use loci_security::AuthRequest;

fuzz_target!(|data: &[u8]| {
    let f = common::fixture();
    let Ok(header) = std::str::from_utf8(data) else { return };
    // As a raw header, and as a token after each scheme.
    for authorization in [header.to_owned(), format!("Bearer {header}"), format!("DPoP {header}")] {
        let req = AuthRequest {
            method: "GET",
            url: common::URL,
            authorization: Some(&authorization),
            dpop: &[],
            resource_metadata: None,
        };
        let _ = f.runtime.block_on(f.auth.authenticate(&req));
    }
});
