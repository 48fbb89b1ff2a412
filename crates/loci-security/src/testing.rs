//! Test support: signing keys, access tokens and DPoP proofs with full control
//! over header and claims (so tests can build every malformed variant).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::{Jwk, KeyPair};
use josekit::jws::JwsSigner;
use serde_json::{Value, json};

use crate::{ath_for, jwk_thumbprint};

/// A signing key of a given algorithm.
#[derive(Debug)]
pub struct TestKey {
    pub alg: &'static str,
    pub private: Jwk,
    pub public: Jwk,
    signer: Box<dyn JwsSigner>,
}

impl TestKey {
    pub fn es256(kid: Option<&str>) -> Self {
        let pair = josekit::jws::ES256.generate_key_pair().unwrap();
        Self::from_private("ES256", pair.to_jwk_key_pair(), pair.to_jwk_public_key(), kid)
    }

    pub fn eddsa(kid: Option<&str>) -> Self {
        let pair = josekit::jws::EdDSA.generate_key_pair(josekit::jwk::alg::ed::EdCurve::Ed25519).unwrap();
        Self::from_private("EdDSA", pair.to_jwk_key_pair(), pair.to_jwk_public_key(), kid)
    }

    pub fn rs256(kid: Option<&str>) -> Self {
        let pair = josekit::jws::RS256.generate_key_pair(2048).unwrap();
        Self::from_private("RS256", pair.to_jwk_key_pair(), pair.to_jwk_public_key(), kid)
    }

    pub fn hs256(secret: &[u8]) -> Self {
        let mut jwk = Jwk::new("oct");
        jwk.set_key_value(secret);
        let signer = josekit::jws::HS256.signer_from_jwk(&jwk).unwrap();
        Self { alg: "HS256", private: jwk.clone(), public: jwk, signer: Box::new(signer) }
    }

    fn from_private(alg: &'static str, mut private: Jwk, mut public: Jwk, kid: Option<&str>) -> Self {
        if let Some(kid) = kid {
            private.set_key_id(kid);
            public.set_key_id(kid);
        }
        let signer: Box<dyn JwsSigner> = match alg {
            "ES256" => Box::new(josekit::jws::ES256.signer_from_jwk(&private).unwrap()),
            "EdDSA" => Box::new(josekit::jws::EdDSA.signer_from_jwk(&private).unwrap()),
            "RS256" => Box::new(josekit::jws::RS256.signer_from_jwk(&private).unwrap()),
            other => panic!("unsupported {other}"),
        };
        Self { alg, private, public, signer }
    }

    pub fn kid(&self) -> Option<&str> {
        self.public.key_id()
    }

    /// The public JWK as JSON (what a DPoP proof carries).
    pub fn public_json(&self) -> Value {
        let mut map = self.public.as_ref().clone();
        map.remove("kid");
        Value::Object(map)
    }

    pub fn thumbprint(&self) -> String {
        jwk_thumbprint(self.public.as_ref()).unwrap()
    }

    /// Signs any header and claims (no checks at all).
    pub fn sign_raw(&self, header: &Value, claims: &Value) -> String {
        let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap());
        let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
        let input = format!("{h}.{p}");
        let sig = self.signer.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// An access token with a standard header for this key.
    pub fn token(&self, claims: &Value) -> String {
        let mut header = json!({ "alg": self.alg, "typ": "JWT" });
        if let Some(kid) = self.kid() {
            header["kid"] = json!(kid);
        }
        self.sign_raw(&header, claims)
    }

    /// A DPoP proof for `method` and `url`, bound to `token` via `ath`.
    /// `edit` may change the header and claims before signing.
    pub fn proof_with(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        edit: impl FnOnce(&mut Value, &mut Value),
    ) -> String {
        let mut header = json!({ "typ": "dpop+jwt", "alg": self.alg, "jwk": self.public_json() });
        let mut claims = json!({
            "jti": uuid::Uuid::new_v4().to_string(),
            "htm": method,
            "htu": url,
            "iat": chrono::Utc::now().timestamp(),
        });
        if let Some(t) = token {
            claims["ath"] = json!(ath_for(t));
        }
        edit(&mut header, &mut claims);
        self.sign_raw(&header, &claims)
    }

    pub fn proof(&self, method: &str, url: &str, token: Option<&str>) -> String {
        self.proof_with(method, url, token, |_, _| {})
    }
}

/// Standard valid claims for issuer/audience, editable by the caller.
pub fn claims(issuer: &str, audience: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": issuer,
        "aud": audience,
        "sub": "alice",
        "org_id": "acme",
        "jti": uuid::Uuid::new_v4().to_string(),
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "scope": "memories:read memories:write",
    })
}

/// A JWKS document with these public keys.
pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| Value::Object(k.public.as_ref().clone())).collect::<Vec<_>>() })
}
