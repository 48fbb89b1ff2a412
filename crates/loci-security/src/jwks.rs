//! Verification keys: a JWKS from a file, a URL or given inline, cached,
//! refreshed when stale and (rate-limited) when a token names an unknown `kid`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use josekit::jwk::{Jwk, JwkSet};
use parking_lot::RwLock;
use tokio::sync::Mutex;

use crate::SecurityError;

/// Where the verification keys come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    File(PathBuf),
    Url(String),
    /// Fixed keys (the embedded profile's local key, HMAC keys, tests).
    Static(Vec<Jwk>),
}

#[derive(Debug)]
struct Cached {
    keys: Arc<Vec<Jwk>>,
    fetched_at: Instant,
}

/// The current verification keys. Several may be active at once, which is how
/// signing keys rotate without downtime.
#[derive(Debug)]
pub struct KeyStore {
    source: JwksSource,
    cached: RwLock<Cached>,
    /// Serialises refreshes and remembers when the last attempt happened.
    refresh: Mutex<Option<Instant>>,
    ttl: Duration,
    min_refresh_interval: Duration,
    http: reqwest::Client,
}

impl KeyStore {
    /// Loads the keys once (so a bad source fails at start-up, not at the
    /// first request).
    pub async fn new(source: JwksSource, ttl: Duration, min_refresh_interval: Duration) -> Result<Self, SecurityError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| SecurityError::Jwks(e.to_string()))?;
        let keys = load(&source, &http).await?;
        Ok(Self {
            source,
            cached: RwLock::new(Cached { keys: Arc::new(keys), fetched_at: Instant::now() }),
            refresh: Mutex::new(None),
            ttl,
            min_refresh_interval,
            http,
        })
    }

    /// The current keys, refreshed first when older than the TTL.
    pub async fn keys(&self) -> Arc<Vec<Jwk>> {
        if self.is_stale() && !matches!(self.source, JwksSource::Static(_)) {
            self.refresh(false).await;
        }
        self.cached.read().keys.clone()
    }

    fn is_stale(&self) -> bool {
        self.cached.read().fetched_at.elapsed() >= self.ttl
    }

    /// Re-reads the source. `on_unknown_kid` refreshes are rate-limited by
    /// `min_refresh_interval` so tokens with random `kid`s cannot hammer the
    /// identity provider. A failed refresh keeps the previous keys.
    pub async fn refresh(&self, on_unknown_kid: bool) -> bool {
        if matches!(self.source, JwksSource::Static(_)) {
            return false;
        }
        let mut last = self.refresh.lock().await;
        let recently = last.is_some_and(|t| t.elapsed() < self.min_refresh_interval);
        // Unknown-kid refreshes are rate-limited; TTL refreshes are skipped when
        // another request refreshed while this one waited, and back off after
        // a failure so an identity-provider outage does not slow every request.
        if recently || (!on_unknown_kid && !self.is_stale()) {
            return false;
        }
        *last = Some(Instant::now());
        match load(&self.source, &self.http).await {
            Ok(keys) => {
                *self.cached.write() = Cached { keys: Arc::new(keys), fetched_at: Instant::now() };
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS refresh failed; keeping the previous keys");
                false
            }
        }
    }
}

async fn load(source: &JwksSource, http: &reqwest::Client) -> Result<Vec<Jwk>, SecurityError> {
    let bytes = match source {
        JwksSource::Static(keys) => return Ok(keys.clone()),
        JwksSource::File(path) => tokio::fs::read(path)
            .await
            .map_err(|e| SecurityError::Jwks(format!("cannot read {}: {e}", path.display())))?,
        JwksSource::Url(url) => {
            let res = http.get(url).send().await.map_err(|e| SecurityError::Jwks(format!("GET {url}: {e}")))?;
            if !res.status().is_success() {
                return Err(SecurityError::Jwks(format!("GET {url}: HTTP {}", res.status())));
            }
            res.bytes().await.map_err(|e| SecurityError::Jwks(e.to_string()))?.to_vec()
        }
    };
    let set = JwkSet::from_bytes(&bytes).map_err(|e| SecurityError::Jwks(format!("not a JWKS: {e}")))?;
    // Keep only public material (a JWKS should hold nothing else, but never
    // keep a private key that was published by mistake).
    let keys: Vec<Jwk> = set.keys().into_iter().filter_map(public_only).collect();
    if keys.is_empty() {
        return Err(SecurityError::Jwks("the JWKS holds no usable key".into()));
    }
    Ok(keys)
}

/// JWK members that only private (or symmetric) keys have.
pub(crate) const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The key without private members, keeping `kid`, `alg` and `use`; `None`
/// for symmetric keys, which never belong in a JWKS.
pub(crate) fn public_only(jwk: &Jwk) -> Option<Jwk> {
    if jwk.key_type() == "oct" {
        return None;
    }
    let mut map = jwk.as_ref().clone();
    for member in PRIVATE_MEMBERS {
        map.remove(*member);
    }
    Jwk::from_map(map).ok()
}
