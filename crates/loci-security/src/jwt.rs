//! Access-token (JWT) validation following RFC 8725: algorithm allowlist with
//! the algorithm bound to the key type, required claims, leeway.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use josekit::jwk::Jwk;
use josekit::jws::JwsVerifier;
use loci_core::{AccessEntity, OrgId};
use serde_json::{Map, Value};

use crate::jwks::KeyStore;
use crate::{AuthError, Principal};

/// Verified tokens kept per process: a repeated token skips signature
/// verification (the dominant cost of a request). Bounded LRU.
const VERIFIED_CACHE: usize = 10_000;

/// A verified token, kept until its `exp` and only while the key set that
/// verified it is still the current one.
#[derive(Debug, Clone)]
struct VerifiedEntry {
    token: ValidatedToken,
    exp: f64,
    /// The key set the signature was checked against (`None`: a configured
    /// HMAC secret, which never rotates at run time). A refresh (TTL, unknown
    /// `kid`, rotation, revocation) replaces the set, so every entry is
    /// verified again against the new keys.
    keys: Option<Arc<Vec<Jwk>>>,
}

/// Cache key: SHA-256 of the token, so the cache never holds a credential.
type TokenHash = [u8; 32];

fn token_hash(token: &str) -> TokenHash {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// JWS algorithms Loci verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
    Hs256,
}

impl Algorithm {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "RS256" => Self::Rs256,
            "RS384" => Self::Rs384,
            "RS512" => Self::Rs512,
            "PS256" => Self::Ps256,
            "PS384" => Self::Ps384,
            "PS512" => Self::Ps512,
            "ES256" => Self::Es256,
            "ES384" => Self::Es384,
            "EdDSA" => Self::EdDsa,
            "HS256" => Self::Hs256,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
            Self::Hs256 => "HS256",
        }
    }

    pub fn is_symmetric(self) -> bool {
        self == Self::Hs256
    }

    /// Whether `jwk` is a key this algorithm can use (key type, curve, and
    /// the key's own `alg` when it names one).
    pub fn matches_key(self, jwk: &Jwk) -> bool {
        if jwk.algorithm().is_some_and(|a| a != self.name()) {
            return false;
        }
        match self {
            Self::Rs256 | Self::Rs384 | Self::Rs512 | Self::Ps256 | Self::Ps384 | Self::Ps512 => {
                jwk.key_type() == "RSA"
            }
            Self::Es256 => jwk.key_type() == "EC" && jwk.curve() == Some("P-256"),
            Self::Es384 => jwk.key_type() == "EC" && jwk.curve() == Some("P-384"),
            Self::EdDsa => jwk.key_type() == "OKP" && jwk.curve() == Some("Ed25519"),
            Self::Hs256 => jwk.key_type() == "oct",
        }
    }

    /// A verifier for `jwk`, which must match this algorithm.
    pub fn verifier(self, jwk: &Jwk) -> Result<Box<dyn JwsVerifier>, josekit::JoseError> {
        use josekit::jws;
        Ok(match self {
            Self::Rs256 => Box::new(jws::RS256.verifier_from_jwk(jwk)?),
            Self::Rs384 => Box::new(jws::RS384.verifier_from_jwk(jwk)?),
            Self::Rs512 => Box::new(jws::RS512.verifier_from_jwk(jwk)?),
            Self::Ps256 => Box::new(jws::PS256.verifier_from_jwk(jwk)?),
            Self::Ps384 => Box::new(jws::PS384.verifier_from_jwk(jwk)?),
            Self::Ps512 => Box::new(jws::PS512.verifier_from_jwk(jwk)?),
            Self::Es256 => Box::new(jws::ES256.verifier_from_jwk(jwk)?),
            Self::Es384 => Box::new(jws::ES384.verifier_from_jwk(jwk)?),
            Self::EdDsa => Box::new(jws::EdDSA.verifier_from_jwk(jwk)?),
            Self::Hs256 => Box::new(jws::HS256.verifier_from_jwk(jwk)?),
        })
    }
}

/// The parts of a compact JWS, with the decoded header.
pub(crate) struct Compact<'a> {
    pub header: Map<String, Value>,
    pub raw: &'a str,
}

/// Splits a compact JWS and decodes its header; `None` when malformed.
pub(crate) fn split_compact(raw: &str) -> Option<Compact<'_>> {
    let mut parts = raw.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || h.is_empty() || p.is_empty() || s.is_empty() {
        return None;
    }
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
    Some(Compact { header: header.as_object()?.clone(), raw })
}

/// Verifiers built from JWKs, cached: turning a JWK into an OpenSSL key costs
/// more than the signature check itself. Keyed by algorithm and the key's
/// JSON, so a rotated or different key never hits another key's entry.
/// Bounded: cleared when full (clients reuse DPoP keys, so it refills fast).
#[derive(Debug, Default)]
pub(crate) struct VerifierCache {
    map: parking_lot::Mutex<std::collections::HashMap<(Algorithm, String), Arc<dyn JwsVerifier>>>,
}

impl VerifierCache {
    const CAPACITY: usize = 10_000;

    /// A verifier for `jwk` (its `kid` requirement relaxed: key selection
    /// already happened), or `None` if the key does not suit `alg`.
    pub(crate) fn get(&self, alg: Algorithm, jwk: &Map<String, Value>) -> Option<Arc<dyn JwsVerifier>> {
        let mut map = jwk.clone();
        map.remove("kid");
        let id = serde_json::to_string(&map).ok()?;
        if let Some(v) = self.map.lock().get(&(alg, id.clone())) {
            return Some(v.clone());
        }
        let verifier: Arc<dyn JwsVerifier> = Arc::from(alg.verifier(&Jwk::from_map(map).ok()?).ok()?);
        let mut cache = self.map.lock();
        if cache.len() >= Self::CAPACITY {
            cache.clear();
        }
        cache.insert((alg, id), verifier.clone());
        Some(verifier)
    }
}

/// Verifies a compact JWS and returns its claims.
pub(crate) fn verify_with(verifier: &dyn JwsVerifier, raw: &str) -> Option<Map<String, Value>> {
    let (payload, _) = josekit::jwt::decode_with_verifier(raw, verifier).ok()?;
    Some(payload.claims_set().clone())
}

/// What a validated access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedToken {
    pub principal: Principal,
    /// `cnf.jkt`: the thumbprint of the DPoP key the token is bound to.
    pub cnf_jkt: Option<String>,
}

/// Validates access tokens.
#[derive(Debug)]
pub struct TokenValidator {
    keys: KeyStore,
    hmac_keys: Vec<Jwk>,
    allowed: Vec<Algorithm>,
    issuer: String,
    audiences: Vec<String>,
    leeway: Duration,
    max_iat_skew: Duration,
    roles: BTreeMap<String, BTreeSet<String>>,
    verifiers: VerifierCache,
    verified: parking_lot::Mutex<lru::LruCache<TokenHash, VerifiedEntry>>,
}

pub(crate) fn now_secs() -> f64 {
    Utc::now().timestamp_micros() as f64 / 1e6
}

fn string_claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn string_list(value: Option<&Value>, split_spaces: bool) -> Vec<String> {
    match value {
        Some(Value::String(s)) if split_spaces => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

impl TokenValidator {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        keys: KeyStore,
        hmac_keys: Vec<Jwk>,
        allowed: Vec<Algorithm>,
        issuer: String,
        audiences: Vec<String>,
        leeway: Duration,
        max_iat_skew: Duration,
        roles: BTreeMap<String, BTreeSet<String>>,
    ) -> Self {
        Self {
            keys,
            hmac_keys,
            allowed,
            issuer,
            audiences,
            leeway,
            max_iat_skew,
            roles,
            verifiers: VerifierCache::default(),
            verified: parking_lot::Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(VERIFIED_CACHE).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
        }
    }

    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    /// Validates signature and claims; never logs or echoes the token. A
    /// token verified before is answered from the cache while it has not
    /// expired and the key set that verified it is still current.
    pub async fn validate(&self, token: &str) -> Result<ValidatedToken, AuthError> {
        let hash = token_hash(token);
        if let Some(hit) = self.cached(&hash).await {
            return Ok(hit);
        }
        let (validated, exp, keys) = self.validate_uncached(token).await?;
        self.verified.lock().put(hash, VerifiedEntry { token: validated.clone(), exp, keys });
        Ok(validated)
    }

    async fn cached(&self, hash: &TokenHash) -> Option<ValidatedToken> {
        let entry = self.verified.lock().get(hash).cloned()?;
        let expired = now_secs() > entry.exp + self.leeway.as_secs_f64();
        let current = match &entry.keys {
            None => true,
            Some(keys) => Arc::ptr_eq(keys, &self.keys.keys().await),
        };
        if expired || !current {
            // Verified again from scratch, which answers the precise error.
            self.verified.lock().pop(hash);
            return None;
        }
        Some(entry.token)
    }

    async fn validate_uncached(&self, token: &str) -> Result<(ValidatedToken, f64, Option<Arc<Vec<Jwk>>>), AuthError> {
        let compact = split_compact(token).ok_or_else(|| AuthError::InvalidToken("malformed token".into()))?;
        let alg_name = compact.header.get("alg").and_then(Value::as_str).unwrap_or("");
        let alg = Algorithm::parse(alg_name).filter(|a| self.allowed.contains(a)).ok_or_else(|| {
            let shown: String = alg_name.chars().take(16).collect();
            AuthError::InvalidToken(format!("algorithm `{shown}` is not accepted"))
        })?;
        if let Some(typ) = compact.header.get("typ") {
            let ok = typ
                .as_str()
                .is_some_and(|t| matches!(t.to_ascii_lowercase().as_str(), "jwt" | "at+jwt" | "application/at+jwt"));
            if !ok {
                return Err(AuthError::InvalidToken("unexpected token type".into()));
            }
        }
        let kid = compact.header.get("kid").and_then(Value::as_str).map(str::to_owned);
        let (claims, keys) = self.verify_signature(alg, kid.as_deref(), compact.raw).await?;
        let validated = self.check_claims(&claims)?;
        let exp = claims.get("exp").and_then(Value::as_f64).unwrap_or(0.0);
        Ok((validated, exp, keys))
    }

    /// The verified claims and the key set that verified them (`None` for
    /// HMAC secrets).
    async fn verify_signature(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
        raw: &str,
    ) -> Result<(Map<String, Value>, Option<Arc<Vec<Jwk>>>), AuthError> {
        let pick = |keys: &[Jwk]| -> Vec<Arc<dyn JwsVerifier>> {
            keys.iter()
                .filter(|k| alg.matches_key(k))
                .filter(|k| alg.is_symmetric() || kid.is_none() || k.key_id() == kid)
                .filter_map(|k| self.verifiers.get(alg, k.as_ref()))
                .collect()
        };
        let mut key_set = (!alg.is_symmetric()).then_some(self.keys.keys().await);
        let mut candidates = match &key_set {
            None => pick(&self.hmac_keys),
            Some(keys) => pick(keys),
        };
        if candidates.is_empty() && key_set.is_some() && kid.is_some() && self.keys.refresh(true).await {
            // An unknown kid may be a newly rotated key.
            let keys = self.keys.keys().await;
            candidates = pick(&keys);
            key_set = Some(keys);
        }
        if candidates.is_empty() {
            return Err(AuthError::InvalidToken("no matching signing key".into()));
        }
        let claims = candidates
            .iter()
            .find_map(|v| verify_with(v.as_ref(), raw))
            .ok_or_else(|| AuthError::InvalidToken("signature verification failed".into()))?;
        Ok((claims, key_set))
    }

    fn check_claims(&self, claims: &Map<String, Value>) -> Result<ValidatedToken, AuthError> {
        let now = now_secs();
        let leeway = self.leeway.as_secs_f64();
        let number = |name: &str| claims.get(name).and_then(Value::as_f64);

        let exp = number("exp").ok_or_else(|| AuthError::InvalidToken("missing required claim exp".into()))?;
        if now > exp + leeway {
            return Err(AuthError::TokenExpired);
        }
        if let Some(nbf) = claims.get("nbf") {
            let nbf = nbf.as_f64().ok_or_else(|| AuthError::InvalidClaims("nbf is not a number".into()))?;
            if now + leeway < nbf {
                return Err(AuthError::InvalidClaims("the token is not valid yet (nbf)".into()));
            }
        }
        let iat = number("iat").ok_or_else(|| AuthError::InvalidToken("missing required claim iat".into()))?;
        if iat > now + self.max_iat_skew.as_secs_f64() {
            return Err(AuthError::InvalidIat);
        }
        if string_claim(claims, "iss") != Some(self.issuer.as_str()) {
            return Err(AuthError::InvalidClaims("unexpected issuer".into()));
        }
        let audiences = string_list(claims.get("aud"), false);
        if audiences.is_empty() {
            return Err(AuthError::InvalidClaims("missing audience".into()));
        }
        if !audiences.iter().any(|a| self.audiences.contains(a)) {
            return Err(AuthError::InvalidClaims("unexpected audience".into()));
        }
        let required = |name: &str| {
            string_claim(claims, name).ok_or_else(|| AuthError::InvalidToken(format!("missing required claim {name}")))
        };
        let subject = required("sub")?;
        let org = required("org_id")?;
        let jti = required("jti")?;
        if subject.len() > 255 || subject.chars().any(char::is_control) {
            return Err(AuthError::InvalidClaims("sub is not acceptable".into()));
        }
        let org_id = OrgId::parse(org).map_err(|e| AuthError::InvalidClaims(e.to_string()))?;

        let mut scopes: BTreeSet<String> = string_list(claims.get("scope"), true).into_iter().collect();
        scopes.extend(string_list(claims.get("scp"), true));
        let roles = string_list(claims.get("roles"), true);
        for role in &roles {
            if let Some(bundle) = self.roles.get(role) {
                scopes.extend(bundle.iter().cloned());
            }
        }
        let user = AccessEntity::User(subject.to_owned());
        let mut grants = vec![user.clone()];
        for raw in string_list(claims.get("grants"), false) {
            match raw.parse::<AccessEntity>() {
                // Data is only ever queried in the token's org; a grant
                // naming another org could never apply.
                Ok(g) if g.org().is_some_and(|o| o != org_id.as_str()) => {}
                Ok(g) if !grants.contains(&g) => grants.push(g),
                Ok(_) => {}
                Err(_) => tracing::debug!("ignoring an unparseable grant"),
            }
        }
        let cnf_jkt = claims
            .get("cnf")
            .and_then(|c| c.get("jkt"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        if claims.get("cnf").is_some_and(|c| c.get("jkt").is_some()) && cnf_jkt.is_none() {
            return Err(AuthError::InvalidToken("cnf.jkt is malformed".into()));
        }
        let client_id = string_claim(claims, "client_id").or_else(|| string_claim(claims, "azp")).map(str::to_owned);
        let expires_at = DateTime::from_timestamp(exp as i64, 0).unwrap_or_else(Utc::now);
        Ok(ValidatedToken {
            principal: Principal {
                org_id,
                subject: subject.to_owned(),
                scopes,
                roles,
                grants,
                client_id,
                token_id: jti.to_owned(),
                dpop_jkt: cnf_jkt.clone(),
                expires_at,
            },
            cnf_jkt,
        })
    }
}
