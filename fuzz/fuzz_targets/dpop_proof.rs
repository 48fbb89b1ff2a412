//! DPoP proofs (and the JWKs they carry) next to a valid DPoP-bound token:
//! any bytes give a principal or a typed rejection, never a panic.
#![no_main]

#[path = "common.rs"]
mod common;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use loci_security::AuthRequest;

fn bound_token() -> &'static String {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let f = common::fixture();
        let mut claims = common::base_claims();
        claims["cnf"] = serde_json::json!({ "jkt": f.proof_key.thumbprint() });
        claims["exp"] = serde_json::json!(4_102_444_800u64); // 2100: valid for the whole run
        f.signing.token(&claims)
    })
}

fuzz_target!(|data: &[u8]| {
    let f = common::fixture();
    let Ok(proof) = std::str::from_utf8(data) else { return };
    let authorization = format!("DPoP {}", bound_token());
    // One proof, and the same proof twice (a request may carry two headers).
    for dpop in [vec![proof], vec![proof, proof]] {
        let req = AuthRequest {
            method: "POST",
            url: common::URL,
            authorization: Some(&authorization),
            dpop: &dpop,
            resource_metadata: None,
        };
        let _ = f.runtime.block_on(f.auth.authenticate(&req));
    }
});
