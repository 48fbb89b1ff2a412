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
    /// The replay cache and session store live in Valkey when it is
    /// configured, so every instance sees the same ones.
    pub async fn build(settings: &Settings, valkey: Option<&Valkey>) -> Result<Self, AppError> {
        let local_issuer = match settings.profile {
            Profile::Embedded => Some(Arc::new(LocalIssuer::load_or_create(settings.ensure_data_dir()?)?)),
            Profile::Production => None,
        };
        let replay: Arc<dyn ReplayCache> = match valkey {
            Some(v) => Arc::new(ValkeyReplayCache::new(v.clone())),
            None => Arc::new(InMemoryReplayCache::new(settings.dpop.replay_cache_capacity)),
        };
        let sessions: Arc<dyn SessionStore> = match valkey {
            Some(v) => Arc::new(ValkeySessionStore::new(v.clone())),
            None => Arc::new(InMemorySessionStore::default()),
        };
        let config = AuthenticatorConfig::from_settings(settings, local_issuer.as_deref()).await?;
        let auth = Arc::new(Authenticator::new(config, replay));
        Ok(Self { auth, local_issuer, sessions })
    }
}
