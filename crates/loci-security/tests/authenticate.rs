//! The authenticator against every attack of the security issue, grouped by
//! what is attacked. Tokens and proofs are built byte by byte so each test can
//! break exactly one thing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;

use loci_core::ErrorCode;
use loci_security::testing::{TestKey, claims, jwks};
use loci_security::{
    AuthError, AuthRejection, AuthRequest, Authenticator, AuthenticatorConfig, InMemoryReplayCache, Principal,
};
use loci_settings::{DpopPolicy, Secret, Settings};
use serde_json::{Value, json};

const ISS: &str = "https://idp.loci.test/";
const AUD: &str = "loci-api";
const URL: &str = "https://api.loci.test/api/v1/memories";

struct Fixture {
    auth: Authenticator,
    key: TestKey,
    jwks_path: PathBuf,
    _dir: tempfile::TempDir,
}

async fn fixture_with(tweak: impl FnOnce(&mut Settings)) -> Fixture {
    let key = TestKey::es256(Some("k1"));
    let dir = tempfile::tempdir().unwrap();
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks(&[&key]).to_string()).unwrap();
    let mut s = Settings::default();
    s.auth.issuer = Some(ISS.into());
    s.auth.audience = vec![AUD.into()];
    s.auth.jwks_path = Some(jwks_path.clone());
    tweak(&mut s);
    let config = AuthenticatorConfig::from_settings(&s, None).await.unwrap();
    let auth = Authenticator::new(config, Arc::new(InMemoryReplayCache::default()));
    Fixture { auth, key, jwks_path, _dir: dir }
}

async fn fixture() -> Fixture {
    fixture_with(|_| {}).await
}

fn base() -> Value {
    claims(ISS, AUD)
}

impl Fixture {
    async fn call(&self, authorization: Option<&str>, dpop: &[&str]) -> Result<Principal, AuthRejection> {
        self.call_as("GET", URL, authorization, dpop).await
    }

    async fn call_as(
        &self,
        method: &str,
        url: &str,
        authorization: Option<&str>,
        dpop: &[&str],
    ) -> Result<Principal, AuthRejection> {
        self.auth.authenticate(&AuthRequest { method, url, authorization, dpop, resource_metadata: None }).await
    }

    async fn bearer(&self, token: &str) -> Result<Principal, AuthRejection> {
        self.call(Some(&format!("Bearer {token}")), &[]).await
    }

    fn token(&self, edit: impl FnOnce(&mut Value)) -> String {
        let mut c = base();
        edit(&mut c);
        self.key.token(&c)
    }
}

fn code(result: Result<Principal, AuthRejection>) -> (ErrorCode, Option<String>) {
    let rejection = result.expect_err("must be rejected");
    (rejection.error.code(), rejection.www_authenticate)
}

// --- credentials ------------------------------------------------------------

#[tokio::test]
async fn missing_basic_and_empty_credentials_are_401() {
    let f = fixture().await;
    let (c, www) = code(f.call(None, &[]).await);
    assert_eq!(c, ErrorCode::MissingAuth);
    // RFC 6750 3.1: no error attribute without credentials.
    assert_eq!(www.as_deref(), Some("Bearer realm=\"loci\", DPoP algs=\"RS256 PS256 ES256 EdDSA\""));
    let (c, _) = code(f.call(Some("Basic YWxpY2U6c2VjcmV0"), &[]).await);
    assert_eq!(c, ErrorCode::MissingAuth);
    let (c, www) = code(f.call(Some("Bearer "), &[]).await);
    assert_eq!(c, ErrorCode::InvalidToken);
    assert!(www.unwrap().starts_with("Bearer realm=\"loci\", error=\"invalid_token\""));
    let (c, _) = code(f.call(Some("Bearer"), &[]).await);
    assert_eq!(c, ErrorCode::InvalidToken);
}

#[tokio::test]
async fn a_valid_bearer_token_gives_a_principal_with_effective_scopes_and_grants() {
    let f = fixture().await;
    let token = f.token(|c| {
        c["roles"] = json!(["viewer"]);
        c["grants"] = json!(["team:acme/core", "bogus:x", "org:globex"]);
        c["client_id"] = json!("cursor");
    });
    let p = f.bearer(&token).await.unwrap();
    assert_eq!((p.org_id.as_str(), p.subject.as_str()), ("acme", "alice"));
    assert!(p.scopes.contains("memories:write"), "scope claim");
    assert!(p.scopes.contains("gdpr:read"), "viewer bundle");
    assert!(!p.scopes.contains("memories:delete"));
    let grants: Vec<String> = p.grants.iter().map(ToString::to_string).collect();
    assert_eq!(grants, ["user:alice", "team:acme/core"], "unknown prefixes and other orgs are dropped");
    assert_eq!(p.client_id.as_deref(), Some("cursor"));
    assert_eq!(p.require_scopes(&["memories:read"]), Ok(()));
    assert_eq!(p.require_scopes(&["admin:write"]), Err(AuthError::InsufficientScope(vec!["admin:write".into()])));
}

// --- the token itself ----------------------------------------------------------

#[tokio::test]
async fn malformed_and_tampered_tokens_are_invalid() {
    let f = fixture().await;
    for bad in ["abc", "a.b", "a.b.c.d", "....", "eyJ.eyJ.sig"] {
        assert_eq!(code(f.bearer(bad).await).0, ErrorCode::InvalidToken, "{bad}");
    }
    let token = f.token(|_| {});
    let parts: Vec<&str> = token.split('.').collect();
    let mut forged = base();
    forged["scope"] = json!("admin:write");
    let forged_payload = base64_url(&forged.to_string());
    let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_eq!(code(f.bearer(&tampered).await).0, ErrorCode::InvalidToken);
    let other_key = TestKey::es256(Some("k1"));
    assert_eq!(code(f.bearer(&other_key.token(&base())).await).0, ErrorCode::InvalidToken, "same kid, other key");
}

fn base64_url(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

#[tokio::test]
async fn time_claims_are_checked_with_leeway() {
    let f = fixture().await;
    let now = chrono::Utc::now().timestamp();
    assert_eq!(code(f.bearer(&f.token(|c| c["exp"] = json!(now - 120))).await).0, ErrorCode::TokenExpired);
    assert!(f.bearer(&f.token(|c| c["exp"] = json!(now - 10))).await.is_ok(), "within 30 s leeway");
    assert_eq!(code(f.bearer(&f.token(|c| c["nbf"] = json!(now + 120))).await).0, ErrorCode::InvalidClaims);
    assert_eq!(code(f.bearer(&f.token(|c| c["iat"] = json!(now + 120))).await).0, ErrorCode::InvalidIat);
    assert!(f.bearer(&f.token(|c| c["iat"] = json!(now + 10))).await.is_ok(), "within 30 s skew");
}

#[tokio::test]
async fn issuer_and_audience_must_match() {
    let f = fixture().await;
    assert_eq!(code(f.bearer(&f.token(|c| c["iss"] = json!("https://evil.test/"))).await).0, ErrorCode::InvalidClaims);
    assert_eq!(code(f.bearer(&f.token(|c| c["aud"] = json!("other-api"))).await).0, ErrorCode::InvalidClaims);
    assert!(f.bearer(&f.token(|c| c["aud"] = json!(["other-api", AUD]))).await.is_ok(), "aud as a list");
    assert_eq!(
        code(
            f.bearer(&f.token(|c| {
                c.as_object_mut().unwrap().remove("aud");
            }))
            .await
        )
        .0,
        ErrorCode::InvalidClaims
    );
}

#[tokio::test]
async fn required_claims_must_be_present() {
    let f = fixture().await;
    for claim in ["sub", "org_id", "jti", "exp", "iat"] {
        let token = f.token(|c| {
            c.as_object_mut().unwrap().remove(claim);
        });
        let rejection = f.bearer(&token).await.unwrap_err();
        assert_eq!(rejection.error.code(), ErrorCode::InvalidToken, "{claim}");
        assert!(rejection.error.to_string().contains(claim), "{claim}: {}", rejection.error);
    }
    assert_eq!(code(f.bearer(&f.token(|c| c["org_id"] = json!("bad org"))).await).0, ErrorCode::InvalidClaims);
}

#[tokio::test]
async fn algorithm_attacks_are_rejected() {
    let f = fixture().await;
    // alg none: header says none, no signature.
    let none = format!("{}.{}.", base64_url(r#"{"alg":"none","typ":"JWT"}"#), base64_url(&base().to_string()));
    assert_eq!(code(f.bearer(&none).await).0, ErrorCode::InvalidToken);
    let none_sig = format!("{none}c2ln");
    assert_eq!(code(f.bearer(&none_sig).await).0, ErrorCode::InvalidToken);
    // HS256 when not configured, even signed with the public key's bytes
    // (the classic key-confusion attack).
    let confusion = TestKey::hs256(f.key.public_json().to_string().as_bytes());
    let token = confusion.sign_raw(&json!({"alg": "HS256", "kid": "k1"}), &base());
    assert_eq!(code(f.bearer(&token).await).0, ErrorCode::InvalidToken);
    // alg not matching the key type: header ES384/RS256 on a P-256 key.
    for alg in ["ES384", "RS256", "EdDSA"] {
        let token = f.key.sign_raw(&json!({"alg": alg, "kid": "k1"}), &base());
        assert_eq!(code(f.bearer(&token).await).0, ErrorCode::InvalidToken, "{alg}");
    }
    // A DPoP proof is not an access token.
    let token = f.key.sign_raw(&json!({"alg": "ES256", "kid": "k1", "typ": "dpop+jwt"}), &base());
    assert_eq!(code(f.bearer(&token).await).0, ErrorCode::InvalidToken);
}

#[tokio::test]
async fn hs256_works_only_when_configured_with_an_accepted_key() {
    let secret = "0123456789abcdef0123456789abcdef-first";
    let f = fixture_with(|s| {
        s.auth.algorithms.push("HS256".into());
        s.auth.hmac_keys = vec![Secret::new("another-key-that-is-long-enough-123456"), Secret::new(secret)];
    })
    .await;
    let hs = TestKey::hs256(secret.as_bytes());
    assert!(f.bearer(&hs.sign_raw(&json!({"alg": "HS256", "typ": "JWT"}), &base())).await.is_ok());
    let wrong = TestKey::hs256(b"0123456789abcdef0123456789abcdef-wrong!");
    let token = wrong.sign_raw(&json!({"alg": "HS256"}), &base());
    assert_eq!(code(f.bearer(&token).await).0, ErrorCode::InvalidToken);
}

// --- key rotation -------------------------------------------------------------

#[tokio::test]
async fn either_active_key_is_accepted_and_a_removed_key_is_rejected_after_refresh() {
    let f = fixture_with(|s| {
        s.auth.jwks_cache_ttl_secs = 1;
        s.auth.jwks_refresh_min_interval_secs = 1;
    })
    .await;
    let k2 = TestKey::eddsa(Some("k2"));
    // k2 is unknown until it is published.
    assert_eq!(code(f.bearer(&k2.token(&base())).await).0, ErrorCode::InvalidToken);
    std::fs::write(&f.jwks_path, jwks(&[&f.key, &k2]).to_string()).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(f.bearer(&k2.token(&base())).await.is_ok(), "new kid picked up");
    assert!(f.bearer(&f.key.token(&base())).await.is_ok(), "old key still active");
    // Retire k1.
    std::fs::write(&f.jwks_path, jwks(&[&k2]).to_string()).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(code(f.bearer(&f.key.token(&base())).await).0, ErrorCode::InvalidToken, "removed key");
    assert!(f.bearer(&k2.token(&base())).await.is_ok());
}

// --- the cache of verified tokens ----------------------------------------------

#[tokio::test]
async fn a_cached_token_stops_working_when_its_key_is_revoked() {
    let f = fixture_with(|s| {
        s.auth.jwks_cache_ttl_secs = 1;
        s.auth.jwks_refresh_min_interval_secs = 1;
    })
    .await;
    let token = f.key.token(&base());
    // Verified, then answered from the cache.
    assert!(f.bearer(&token).await.is_ok());
    assert!(f.bearer(&token).await.is_ok());
    // The identity provider revokes k1: the very same token string fails as
    // soon as the refreshed key set no longer holds its key.
    std::fs::write(&f.jwks_path, jwks(&[&TestKey::es256(Some("k2"))]).to_string()).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(code(f.bearer(&token).await).0, ErrorCode::InvalidToken);
    assert_eq!(code(f.bearer(&token).await).0, ErrorCode::InvalidToken, "and stays refused");
}

#[tokio::test]
async fn a_cached_token_still_expires_on_time() {
    let f = fixture_with(|s| s.auth.leeway_secs = 0).await;
    let exp = chrono::Utc::now().timestamp() + 2;
    let token = f.token(|c| c["exp"] = json!(exp));
    assert!(f.bearer(&token).await.is_ok());
    assert!(f.bearer(&token).await.is_ok(), "cached");
    while chrono::Utc::now().timestamp() <= exp {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(code(f.bearer(&token).await).0, ErrorCode::TokenExpired);
}

#[tokio::test]
async fn a_cached_bound_token_still_needs_a_fresh_proof_each_time() {
    let f = fixture().await;
    let pk = TestKey::es256(None);
    let token = bound(&f, &pk).await;
    let proof = pk.proof("GET", URL, Some(&token));
    assert!(f.call(Some(&format!("DPoP {token}")), &[&proof]).await.is_ok());
    // The token is cached now; the proof is not: replaying it fails, a new one works.
    assert_eq!(code(f.call(Some(&format!("DPoP {token}")), &[&proof]).await).0, ErrorCode::InvalidDpopProof);
    assert_eq!(code(f.call(Some(&format!("DPoP {token}")), &[]).await).0, ErrorCode::InvalidDpopProof);
    let fresh = pk.proof("GET", URL, Some(&token));
    assert!(f.call(Some(&format!("DPoP {token}")), &[&fresh]).await.is_ok());
}

#[tokio::test]
async fn an_unknown_kid_triggers_a_rate_limited_refresh() {
    let f = fixture_with(|s| s.auth.jwks_refresh_min_interval_secs = 3600).await;
    let k2 = TestKey::es256(Some("k2"));
    std::fs::write(&f.jwks_path, jwks(&[&f.key, &k2]).to_string()).unwrap();
    // First unknown kid refreshes immediately and finds the key.
    assert!(f.bearer(&k2.token(&base())).await.is_ok());
    let k3 = TestKey::es256(Some("k3"));
    std::fs::write(&f.jwks_path, jwks(&[&f.key, &k2, &k3]).to_string()).unwrap();
    // A second refresh within the interval is refused: k3 stays unknown.
    assert_eq!(code(f.bearer(&k3.token(&base())).await).0, ErrorCode::InvalidToken);
}

// --- DPoP -------------------------------------------------------------------------

async fn bound(f: &Fixture, proof_key: &TestKey) -> String {
    f.token(|c| c["cnf"] = json!({ "jkt": proof_key.thumbprint() }))
}

#[tokio::test]
async fn a_valid_dpop_proof_is_accepted() {
    let f = fixture().await;
    let pk = TestKey::es256(None);
    let token = bound(&f, &pk).await;
    let proof = pk.proof("GET", URL, Some(&token));
    let p = f.call(Some(&format!("DPoP {token}")), &[&proof]).await.unwrap();
    assert_eq!(p.dpop_jkt.as_deref(), Some(pk.thumbprint().as_str()));
    // EdDSA proof keys work too.
    let ed = TestKey::eddsa(None);
    let token = bound(&f, &ed).await;
    assert!(f.call(Some(&format!("DPoP {token}")), &[&ed.proof("GET", URL, Some(&token))]).await.is_ok());
}

/// A change to a proof's header and claims.
type ProofEdit = dyn FnOnce(&mut Value, &mut Value);

async fn dpop_case(edit: impl FnOnce(&mut Value, &mut Value)) -> (ErrorCode, Option<String>) {
    let f = fixture().await;
    let pk = TestKey::es256(None);
    let token = bound(&f, &pk).await;
    let proof = pk.proof_with("GET", URL, Some(&token), edit);
    code(f.call(Some(&format!("DPoP {token}")), &[&proof]).await)
}

#[tokio::test]
async fn each_broken_proof_is_rejected_with_the_rfc_challenge() {
    let cases: Vec<(&str, Box<ProofEdit>)> = vec![
        ("wrong typ", Box::new(|h, _| h["typ"] = json!("JWT"))),
        (
            "missing typ",
            Box::new(|h, _| {
                h.as_object_mut().unwrap().remove("typ");
            }),
        ),
        (
            "missing jwk",
            Box::new(|h, _| {
                h.as_object_mut().unwrap().remove("jwk");
            }),
        ),
        ("private jwk", Box::new(|h, _| h["jwk"]["d"] = json!("AAAA"))),
        ("HS256 alg", Box::new(|h, _| h["alg"] = json!("HS256"))),
        ("none alg", Box::new(|h, _| h["alg"] = json!("none"))),
        ("alg not matching jwk", Box::new(|h, _| h["alg"] = json!("EdDSA"))),
        (
            "missing jti",
            Box::new(|_, c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
        ),
        (
            "missing htm",
            Box::new(|_, c| {
                c.as_object_mut().unwrap().remove("htm");
            }),
        ),
        (
            "missing htu",
            Box::new(|_, c| {
                c.as_object_mut().unwrap().remove("htu");
            }),
        ),
        (
            "missing iat",
            Box::new(|_, c| {
                c.as_object_mut().unwrap().remove("iat");
            }),
        ),
        ("htm mismatch", Box::new(|_, c| c["htm"] = json!("POST"))),
        ("htu other path", Box::new(|_, c| c["htu"] = json!("https://api.loci.test/api/v1/apps"))),
        ("htu other host", Box::new(|_, c| c["htu"] = json!("https://evil.test/api/v1/memories"))),
        ("htu other scheme", Box::new(|_, c| c["htu"] = json!("http://api.loci.test/api/v1/memories"))),
        ("iat too old", Box::new(|_, c| c["iat"] = json!(chrono::Utc::now().timestamp() - 120))),
        ("iat ahead", Box::new(|_, c| c["iat"] = json!(chrono::Utc::now().timestamp() + 30))),
        (
            "missing ath",
            Box::new(|_, c| {
                c.as_object_mut().unwrap().remove("ath");
            }),
        ),
        ("wrong ath", Box::new(|_, c| c["ath"] = json!("ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"))),
    ];
    for (name, edit) in cases {
        let (c, www) = dpop_case(edit).await;
        assert_eq!(c, ErrorCode::InvalidDpopProof, "{name}");
        let www = www.unwrap_or_default();
        assert!(
            www.starts_with("DPoP algs=\"RS256 PS256 ES256 EdDSA\", error=\"invalid_dpop_proof\""),
            "{name}: {www}"
        );
    }
}

#[tokio::test]
async fn a_bad_signature_is_rejected() {
    let f = fixture().await;
    let pk = TestKey::es256(None);
    let token = bound(&f, &pk).await;
    let proof = pk.proof("GET", URL, Some(&token));
    let mut parts: Vec<String> = proof.split('.').map(str::to_owned).collect();
    let mut claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &parts[1]).unwrap(),
    )
    .unwrap();
    claims["htm"] = json!("GET");
    claims["jti"] = json!("changed");
    parts[1] = base64_url(&claims.to_string());
    let (c, _) = code(f.call(Some(&format!("DPoP {token}")), &[&parts.join(".")]).await);
    assert_eq!(c, ErrorCode::InvalidDpopProof);
}

#[tokio::test]
async fn htu_ignores_query_trailing_slash_and_default_port() {
    let f = fixture().await;
    let pk = TestKey::es256(None);
    let token = bound(&f, &pk).await;
    let auth = format!("DPoP {token}");
    for (proof_htu, request_url) in [
        ("https://api.loci.test/api/v1/memories", "https://api.loci.test/api/v1/memories?page=2&size=10"),
        ("https://api.loci.test/api/v1/memories/", "https://api.loci.test/api/v1/memories"),
        ("https://api.loci.test:443/api/v1/memories", "https://API.loci.test/api/v1/memories"),
    ] {
        let proof = pk.proof("GET", proof_htu, Some(&token));
        assert!(f.call_as("GET", request_url, Some(&auth), &[&proof]).await.is_ok(), "{proof_htu} vs {request_url}");
    }
}

#[tokio::test]
async fn a_replayed_proof_is_rejected() {
    let f = fixture().await;
    let pk = TestKey::es256(None);
    let token = bound(&f, &pk).await;
    let proof = pk.proof("GET", URL, Some(&token));
    let auth = format!("DPoP {token}");
    assert!(f.call(Some(&auth), &[&proof]).await.is_ok());
    let rejection = f.call(Some(&auth), &[&proof]).await.unwrap_err();
    assert_eq!(rejection.error.code(), ErrorCode::InvalidDpopProof);
    assert_eq!(rejection.error, AuthError::DpopReplay);
    assert!(rejection.www_authenticate.unwrap().contains("error=\"invalid_dpop_proof\""));
}

#[tokio::test]
async fn binding_between_token_and_proof_key_is_enforced() {
    let f = fixture().await;
    let pk = TestKey::es256(None);
    let other = TestKey::es256(None);
    let token = bound(&f, &pk).await;
    // cnf.jkt mismatch.
    let proof = other.proof("GET", URL, Some(&token));
    assert_eq!(code(f.call(Some(&format!("DPoP {token}")), &[&proof]).await).0, ErrorCode::InvalidDpopProof);
    // DPoP-bound token presented as Bearer, with or without a proof.
    let proof = pk.proof("GET", URL, Some(&token));
    let (c, www) = code(f.call(Some(&format!("Bearer {token}")), &[&proof]).await);
    assert_eq!(c, ErrorCode::InvalidToken);
    assert!(www.unwrap().starts_with("DPoP "), "steers the client to DPoP");
    assert_eq!(code(f.bearer(&token).await).0, ErrorCode::InvalidToken);
    // DPoP scheme without a proof, and an unbound token under the DPoP scheme.
    assert_eq!(code(f.call(Some(&format!("DPoP {token}")), &[]).await).0, ErrorCode::InvalidDpopProof);
    let unbound = f.token(|_| {});
    let proof = pk.proof("GET", URL, Some(&unbound));
    assert_eq!(code(f.call(Some(&format!("DPoP {unbound}")), &[&proof]).await).0, ErrorCode::InvalidToken);
    // Two DPoP headers.
    let (p1, p2) = (pk.proof("GET", URL, Some(&token)), pk.proof("GET", URL, Some(&token)));
    assert_eq!(code(f.call(Some(&format!("DPoP {token}")), &[&p1, &p2]).await).0, ErrorCode::InvalidDpopProof);
}

#[tokio::test]
async fn policies_off_optional_and_required() {
    let f = fixture_with(|s| s.dpop.policy = DpopPolicy::Required).await;
    let (c, www) = code(f.bearer(&f.token(|_| {})).await);
    assert_eq!(c, ErrorCode::InvalidToken, "required: unbound tokens rejected");
    assert!(www.unwrap().starts_with("DPoP "));
    let (_, www) = code(f.call(None, &[]).await);
    assert_eq!(www.as_deref(), Some("DPoP algs=\"RS256 PS256 ES256 EdDSA\""));

    let f = fixture().await; // optional
    let pk = TestKey::es256(None);
    let unbound = f.token(|_| {});
    assert!(f.bearer(&unbound).await.is_ok(), "optional: plain bearer accepted");
    let bad_proof = pk.proof_with("GET", URL, Some(&unbound), |_, c| c["htm"] = json!("PUT"));
    assert_eq!(
        code(f.call(Some(&format!("Bearer {unbound}")), &[&bad_proof]).await).0,
        ErrorCode::InvalidDpopProof,
        "optional: a proof that is present is validated"
    );

    let f = fixture_with(|s| s.dpop.policy = DpopPolicy::Off).await;
    let unbound = f.token(|_| {});
    assert!(f.call(Some(&format!("Bearer {unbound}")), &[&bad_proof]).await.is_ok(), "off: proofs ignored");
    let (_, www) = code(f.call(None, &[]).await);
    assert_eq!(www.as_deref(), Some("Bearer realm=\"loci\""));
}

#[tokio::test]
async fn server_nonces_when_required() {
    let f = fixture_with(|s| {
        s.dpop.require_nonce = true;
        s.dpop.nonce_secret = Some(Secret::new("a-nonce-secret-of-at-least-32-bytes!!"));
    })
    .await;
    let pk = TestKey::es256(None);
    let token = bound(&f, &pk).await;
    let auth = format!("DPoP {token}");
    let rejection = f.call(Some(&auth), &[&pk.proof("GET", URL, Some(&token))]).await.unwrap_err();
    assert_eq!(rejection.error.code(), ErrorCode::UseDpopNonce);
    assert!(rejection.www_authenticate.unwrap().contains("error=\"use_dpop_nonce\""));
    let nonce = rejection.dpop_nonce.expect("a nonce to retry with");
    let proof = pk.proof_with("GET", URL, Some(&token), |_, c| c["nonce"] = json!(nonce));
    assert!(f.call(Some(&auth), &[&proof]).await.is_ok());
}

#[tokio::test]
async fn an_unavailable_replay_cache_rejects() {
    #[derive(Debug)]
    struct Down;
    #[async_trait::async_trait]
    impl loci_security::ReplayCache for Down {
        async fn first_use(&self, _: &str, _: std::time::Duration) -> Result<bool, loci_security::ReplayCacheError> {
            Err(loci_security::ReplayCacheError::Unavailable("connection refused".into()))
        }
    }
    let key = TestKey::es256(Some("k1"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks(&[&key]).to_string()).unwrap();
    let mut s = Settings::default();
    s.auth.issuer = Some(ISS.into());
    s.auth.audience = vec![AUD.into()];
    s.auth.jwks_path = Some(path);
    let auth = Authenticator::new(AuthenticatorConfig::from_settings(&s, None).await.unwrap(), Arc::new(Down));
    let pk = TestKey::es256(None);
    let mut c = base();
    c["cnf"] = json!({"jkt": pk.thumbprint()});
    let token = key.token(&c);
    let proof = pk.proof("GET", URL, Some(&token));
    let authz = format!("DPoP {token}");
    let req =
        AuthRequest { method: "GET", url: URL, authorization: Some(&authz), dpop: &[&proof], resource_metadata: None };
    let rejection = auth.authenticate(&req).await.unwrap_err();
    assert_eq!(rejection.error, AuthError::ReplayCacheUnavailable);
    assert_eq!(rejection.error.code(), ErrorCode::DependencyUnavailable);
}
