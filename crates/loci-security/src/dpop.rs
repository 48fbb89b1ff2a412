//! DPoP proof validation (RFC 9449 section 4.3).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::Jwk;
use josekit::jws::JwsSigner;
use loci_settings::DpopPolicy;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::jwks::PRIVATE_MEMBERS;
use crate::jwt::{Algorithm, VerifierCache, now_secs, split_compact, verify_with};
use crate::{AuthError, jwk_thumbprint};

/// DPoP settings in effect.
#[derive(Debug)]
pub struct DpopConfig {
    pub policy: DpopPolicy,
    /// Asymmetric algorithms accepted for proofs.
    pub algorithms: Vec<Algorithm>,
    pub max_age: Duration,
    pub future_skew: Duration,
    /// Server nonces (stateless, HMAC of the time window) when `Some`.
    pub nonce: Option<NonceIssuer>,
    /// Verifiers of recently seen proof keys.
    pub(crate) verifiers: VerifierCache,
}

impl DpopConfig {
    /// `algs="..."` for challenges.
    pub fn algs_param(&self) -> String {
        self.algorithms.iter().map(|a| a.name()).collect::<Vec<_>>().join(" ")
    }
}

/// Stateless server nonces: an HMAC of the current time window, so every
/// instance sharing the secret accepts every other instance's nonces.
pub struct NonceIssuer {
    signer: Box<dyn JwsSigner>,
    window: Duration,
}

impl std::fmt::Debug for NonceIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceIssuer").field("window", &self.window).finish_non_exhaustive()
    }
}

impl NonceIssuer {
    pub fn new(secret: &[u8], window: Duration) -> Result<Self, crate::SecurityError> {
        let signer =
            josekit::jws::HS256.signer_from_bytes(secret).map_err(|e| crate::SecurityError::Key(e.to_string()))?;
        Ok(Self { signer: Box::new(signer), window })
    }

    fn for_window(&self, window: u64) -> Option<String> {
        self.signer.sign(&window.to_be_bytes()).ok().map(|mac| URL_SAFE_NO_PAD.encode(&mac[..16]))
    }

    fn current_window(&self) -> u64 {
        (now_secs() as u64) / self.window.as_secs().max(1)
    }

    /// The nonce clients should use now.
    pub fn current(&self) -> Option<String> {
        self.for_window(self.current_window())
    }

    /// Accepts the current and the previous window's nonce.
    pub fn accepts(&self, nonce: &str) -> bool {
        let w = self.current_window();
        [Some(w), w.checked_sub(1)].into_iter().flatten().any(|w| self.for_window(w).as_deref() == Some(nonce))
    }
}

/// `ath`: base64url(SHA-256(access token)).
pub fn ath_for(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

/// `htu` comparison form: scheme and host lower-cased, default port dropped,
/// no query or fragment, no trailing slash. `None` if not an http(s) URL.
pub fn normalise_htu(raw: &str) -> Option<String> {
    let url = url::Url::parse(raw).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = url.host_str()?;
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let path = url.path().trim_end_matches('/');
    Some(format!("{}://{}{port}{path}", url.scheme(), host.to_ascii_lowercase()))
}

/// A proof that passed every check except replay, which needs the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VerifiedProof {
    pub jkt: String,
    pub jti: String,
}

fn invalid(reason: &str) -> AuthError {
    AuthError::InvalidDpopProof(reason.to_owned())
}

/// Checks one proof against the request: header (`typ`, `alg`, public
/// `jwk`), signature, `jti`, `htm`, `htu`, `iat` window, `ath`, nonce.
pub(crate) fn verify_proof(
    config: &DpopConfig,
    proof: &str,
    method: &str,
    request_url: &str,
    access_token: Option<&str>,
) -> Result<VerifiedProof, AuthError> {
    let compact = split_compact(proof).ok_or_else(|| invalid("malformed proof"))?;
    let header = &compact.header;
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(invalid("typ must be dpop+jwt"));
    }
    let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let alg = Algorithm::parse(alg_name)
        .filter(|a| !a.is_symmetric() && config.algorithms.contains(a))
        .ok_or_else(|| invalid("algorithm not accepted"))?;
    let jwk_map: &Map<String, Value> =
        header.get("jwk").and_then(Value::as_object).ok_or_else(|| invalid("missing jwk header"))?;
    if PRIVATE_MEMBERS.iter().any(|m| jwk_map.contains_key(*m)) {
        return Err(invalid("jwk contains private key material"));
    }
    let jwk = Jwk::from_map(jwk_map.clone()).map_err(|_| invalid("jwk is malformed"))?;
    if !alg.matches_key(&jwk) {
        return Err(invalid("alg does not match the jwk"));
    }
    let verifier = config.verifiers.get(alg, jwk.as_ref()).ok_or_else(|| invalid("jwk is not usable"))?;
    let claims = verify_with(verifier.as_ref(), compact.raw).ok_or_else(|| invalid("signature verification failed"))?;

    let text = |name: &str| claims.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
    let jti = text("jti").ok_or_else(|| invalid("missing jti"))?;
    if jti.len() > 256 {
        return Err(invalid("jti is too long"));
    }
    let htm = text("htm").ok_or_else(|| invalid("missing htm"))?;
    let htu = text("htu").ok_or_else(|| invalid("missing htu"))?;
    let iat = claims.get("iat").and_then(Value::as_f64).ok_or_else(|| invalid("missing iat"))?;
    if htm != method {
        return Err(invalid("htm does not match the request method"));
    }
    match (normalise_htu(htu), normalise_htu(request_url)) {
        (Some(a), Some(b)) if a == b => {}
        _ => return Err(invalid("htu does not match the request URL")),
    }
    let now = now_secs();
    if iat < now - config.max_age.as_secs_f64() {
        return Err(invalid("proof is too old"));
    }
    if iat > now + config.future_skew.as_secs_f64() {
        return Err(invalid("proof iat is in the future"));
    }
    if let Some(token) = access_token {
        match text("ath") {
            None => return Err(invalid("missing ath")),
            Some(ath) if ath != ath_for(token) => return Err(invalid("ath does not match the access token")),
            Some(_) => {}
        }
    }
    if config.nonce.as_ref().is_some_and(|nonces| !text("nonce").is_some_and(|n| nonces.accepts(n))) {
        return Err(AuthError::UseDpopNonce);
    }
    let jkt = jwk_thumbprint(jwk_map).ok_or_else(|| invalid("cannot compute the jwk thumbprint"))?;
    Ok(VerifiedProof { jkt, jti: jti.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htu_normalisation_ignores_query_fragment_trailing_slash_and_default_ports() {
        let same = [
            ("https://API.example.com/api/v1/memories/", "https://api.example.com/api/v1/memories"),
            ("https://api.example.com:443/x?page=2#frag", "https://api.example.com/x"),
            ("http://localhost:80/x", "http://localhost/x"),
            ("http://127.0.0.1:8080/health/", "http://127.0.0.1:8080/health"),
            ("https://a.example/", "https://a.example"),
        ];
        for (a, b) in same {
            assert_eq!(normalise_htu(a), normalise_htu(b), "{a} vs {b}");
        }
        let different = [
            ("https://a.example/x", "http://a.example/x"),
            ("https://a.example:8443/x", "https://a.example/x"),
            ("https://a.example/x", "https://a.example/y"),
            ("https://a.example/x", "https://b.example/x"),
        ];
        for (a, b) in different {
            assert_ne!(normalise_htu(a), normalise_htu(b), "{a} vs {b}");
        }
        assert_eq!(normalise_htu("ftp://a/x"), None);
        assert_eq!(normalise_htu("not a url"), None);
    }

    #[test]
    fn ath_is_base64url_sha256() {
        // SHA-256("abc") = ba7816bf...
        assert_eq!(ath_for("abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
    }

    #[test]
    fn nonces_are_accepted_for_their_window_only() {
        let n = NonceIssuer::new(&[7u8; 32], Duration::from_secs(300)).unwrap();
        let current = n.current().unwrap();
        assert!(n.accepts(&current));
        assert!(!n.accepts("forged"));
        let other = NonceIssuer::new(&[8u8; 32], Duration::from_secs(300)).unwrap();
        assert!(!other.accepts(&current), "another secret's nonce");
    }
}
