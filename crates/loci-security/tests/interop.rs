//! Interoperability: tokens and DPoP proofs made by an independent JOSE
//! implementation (Python's PyJWT on `cryptography`) are accepted, and both
//! sides compute the same RFC 7638 thumbprints.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::sync::Arc;

use loci_security::{AuthRequest, Authenticator, AuthenticatorConfig, InMemoryReplayCache, jwk_thumbprint};
use loci_settings::Settings;
use serde_json::Value;

const ISS: &str = "https://py-idp.test/";
const AUD: &str = "loci-api";
const HTU: &str = "https://api.loci.test/api/v1/whoami";

/// The interpreter of the pinned PyJWT environment that scripts/test.sh
/// creates (scripts/python-env.sh): the machine's own Python packages are
/// never used.
fn python() -> String {
    std::env::var("LOCI_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "LOCI_TEST_PYTHON is not set: run the tests with scripts/test.sh, or set it to the output of \
             `bash scripts/python-env.sh pyjwt`"
        )
    })
}

fn python_tokens() -> Value {
    // The run's manifest directory (cargo and nextest set it), so a test
    // binary built in another checkout still finds this checkout's script.
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    let script = format!("{dir}/tests/interop/pyjwt_tokens.py");
    let python = python();
    let out = Command::new(&python)
        // -I: isolated from PYTHONPATH and the user's site-packages too.
        .args(["-I", script.as_str(), ISS, AUD, HTU])
        .output()
        .unwrap_or_else(|e| panic!("{python} could not be run for the interoperability test ({e})"));
    assert!(out.status.success(), "the PyJWT script failed under {python}:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn tokens_and_proofs_from_pyjwt_are_accepted() {
    let py = python_tokens();
    let dir = tempfile::tempdir().unwrap();
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, py["jwks"].to_string()).unwrap();
    let mut s = Settings::default();
    s.auth.issuer = Some(ISS.into());
    s.auth.audience = vec![AUD.into()];
    s.auth.jwks_path = Some(jwks_path);
    let auth = Authenticator::new(
        AuthenticatorConfig::from_settings(&s, None).await.unwrap(),
        Arc::new(InMemoryReplayCache::default()),
    );

    for alg in ["ES256", "EdDSA", "RS256"] {
        let header = format!("Bearer {}", py["tokens"][alg].as_str().unwrap());
        let req =
            AuthRequest { method: "GET", url: HTU, authorization: Some(&header), dpop: &[], resource_metadata: None };
        let p = auth.authenticate(&req).await.unwrap_or_else(|e| panic!("{alg} token from PyJWT rejected: {e:?}"));
        assert_eq!((p.subject.as_str(), p.org_id.as_str()), ("py-user", "py-org"));
        assert!(p.scopes.contains("memories:read"));
    }

    let header = format!("DPoP {}", py["bound_token"].as_str().unwrap());
    let proof = py["proof"].as_str().unwrap();
    let url = format!("{HTU}?page=1");
    let req =
        AuthRequest { method: "GET", url: &url, authorization: Some(&header), dpop: &[proof], resource_metadata: None };
    let p = auth.authenticate(&req).await.unwrap_or_else(|e| panic!("PyJWT DPoP proof rejected: {e:?}"));
    assert_eq!(p.dpop_jkt.as_deref(), py["jkt"].as_str(), "same thumbprint on both sides");
    // And once only.
    assert!(auth.authenticate(&req).await.is_err(), "replay");
}

#[test]
fn both_implementations_reproduce_the_rfc_7638_example() {
    let py = python_tokens();
    let rfc = serde_json::json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB"
    });
    let ours = jwk_thumbprint(rfc.as_object().unwrap()).unwrap();
    assert_eq!(ours, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    assert_eq!(py["rfc7638_example"].as_str(), Some(ours.as_str()));
}
