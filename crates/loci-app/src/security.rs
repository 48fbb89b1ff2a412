//! Authentication as configured: the authenticator with its replay cache,
//! the embedded profile's signing key, and the MCP session store.

use std::sync::Arc;

use loci_security::{
    Authenticator, AuthenticatorConfig, InMemoryReplayCache, InMemorySessionStore, LocalIssuer, ReplayCache,
    SessionStore,
};
use loci_settings::{Profile, Settings};
use loci_stores::{Valkey, ValkeyReplayCache, ValkeySessionStore};

use crate::AppError;

#[derive(Debug, Clone)]
pub struct Security {
    pub auth: Arc<Authenticator>,
    /// The embedded profile's signing key (its JWKS is served); never in
    /// production.
    pub local_issuer: Option<Arc<LocalIssuer>>,
    /// MCP session bindings: Valkey when configured (shared by every
    /// instance), else in process.
    pub sessions: Arc<dyn SessionStore>,
}

impl Security {
    /// The replay cache lives in Valkey when it is configured, so every
    /// instance sees the same one; the session store is the services' (see
    /// [`session_store`]), which erasure reaches too.
    pub async fn build(
        settings: &Settings,
        valkey: Option<&Valkey>,
        sessions: Arc<dyn SessionStore>,
    ) -> Result<Self, AppError> {
        let local_issuer = if uses_local_issuer(settings) {
            Some(Arc::new(LocalIssuer::load_or_create(settings.ensure_data_dir()?)?))
        } else {
            None
        };
        let replay: Arc<dyn ReplayCache> = match valkey {
            Some(v) => Arc::new(ValkeyReplayCache::new(v.clone())),
            None => Arc::new(InMemoryReplayCache::new(settings.dpop.replay_cache_capacity)),
        };
        let config = AuthenticatorConfig::from_settings(settings, local_issuer.as_deref()).await?;
        let auth = Arc::new(Authenticator::new(config, replay));
        Ok(Self { auth, local_issuer, sessions })
    }
}

/// MCP session bindings: in Valkey when configured (shared by every
/// instance), else in process.
pub fn session_store(valkey: Option<&Valkey>) -> Arc<dyn SessionStore> {
    match valkey {
        Some(v) => Arc::new(ValkeySessionStore::new(v.clone())),
        None => Arc::new(InMemorySessionStore::default()),
    }
}

/// The rate limiter: budgets in Valkey when configured (shared by every
/// instance), else in process.
pub fn rate_limiter(settings: &Settings, valkey: Option<&Valkey>) -> loci_security::RateLimiter {
    let store: Arc<dyn loci_security::RateStore> = match valkey {
        Some(v) => Arc::new(loci_stores::ValkeyRateStore::new(v.clone())),
        None => Arc::new(loci_security::InProcessRateStore::default()),
    };
    loci_security::RateLimiter::new(store, loci_security::RatePolicy::from_settings(&settings.rate_limit))
}

/// Whether tokens are signed by the local issuer: in the embedded profile,
/// unless `auth.jwks_path` or `auth.jwks_url` names the keys to trust (then
/// the local key would validate nothing, so it is neither loaded nor served).
pub fn uses_local_issuer(settings: &Settings) -> bool {
    settings.profile == Profile::Embedded && settings.auth.jwks_path.is_none() && settings.auth.jwks_url.is_none()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use loci_security::testing::{TestKey, jwks};

    use super::*;

    #[tokio::test]
    async fn the_local_key_is_used_only_when_no_jwks_is_configured() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings { data_dir: dir.path().to_path_buf(), ..Settings::default() };
        let security = Security::build(&settings, None, session_store(None)).await.unwrap();
        assert!(security.local_issuer.is_some(), "embedded defaults sign with the local key");

        let jwks_file = dir.path().join("jwks.json");
        std::fs::write(&jwks_file, jwks(&[&TestKey::es256(Some("idp"))]).to_string()).unwrap();
        let mut external = settings.clone();
        external.data_dir = dir.path().join("other");
        external.auth.jwks_path = Some(jwks_file);
        assert!(!uses_local_issuer(&external));
        let security = Security::build(&external, None, session_store(None)).await.unwrap();
        assert!(security.local_issuer.is_none(), "an external JWKS replaces the local key");
        assert!(!external.data_dir.join("keys").exists(), "and no local key is created");
    }
}
