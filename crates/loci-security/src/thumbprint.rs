//! RFC 7638 JWK thumbprints.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// The SHA-256 thumbprint (base64url) of a public JWK given as JSON: the
/// required members for its key type, in lexicographic order, without
/// whitespace. `None` for key types or members that are missing.
pub fn jwk_thumbprint(jwk: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    let member = |name: &str| jwk.get(name).and_then(|v| v.as_str());
    let kty = member("kty")?;
    let required: &[&str] = match kty {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        "oct" => &["k", "kty"],
        _ => return None,
    };
    let mut canonical = serde_json::Map::new();
    for name in required {
        canonical.insert((*name).to_owned(), serde_json::Value::String(member(name)?.to_owned()));
    }
    // Members are inserted in lexicographic order (the lists above are
    // sorted), which serde_json keeps whether or not `preserve_order` is on.
    let json = serde_json::to_string(&canonical).ok()?;
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(json.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().cloned().unwrap()
    }

    /// RFC 7638 section 3.1.
    #[test]
    fn reproduces_the_rfc_7638_example() {
        let jwk = obj(serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        }));
        assert_eq!(jwk_thumbprint(&jwk).as_deref(), Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"));
    }

    #[test]
    fn ignores_optional_members_and_needs_required_ones() {
        let a = obj(serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "abc"}));
        let b = obj(serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "abc", "kid": "k", "use": "sig"}));
        assert_eq!(jwk_thumbprint(&a), jwk_thumbprint(&b));
        assert!(jwk_thumbprint(&obj(serde_json::json!({"kty": "EC", "crv": "P-256", "x": "a"}))).is_none());
        assert!(jwk_thumbprint(&obj(serde_json::json!({"kty": "XYZ"}))).is_none());
    }
}
