//! Valkey / Redis connection (fred).

use std::time::Duration;

use fred::prelude::*;
use loci_settings::{Secret, ValkeySettings};

use crate::StoreError;

/// A pooled Valkey client with the configured key prefix.
#[derive(Clone)]
pub struct Valkey {
    pool: Pool,
    prefix: String,
    timeout: Duration,
}

impl std::fmt::Debug for Valkey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Valkey").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl Valkey {
    /// A client whose connections are not opened yet.
    fn build(url: &Secret, settings: &ValkeySettings) -> Result<Self, StoreError> {
        let config = Config::from_url(&url.expose().replacen("valkey://", "redis://", 1))
            .map_err(|e| StoreError::Config(format!("invalid valkey.url: {}", e.details())))?;
        let timeout = Duration::from_millis(settings.timeout_ms);
        let pool = Builder::from_config(config)
            .with_connection_config(|c| {
                c.connection_timeout = timeout;
                c.internal_command_timeout = timeout;
            })
            .with_performance_config(|p| {
                p.default_command_timeout = timeout;
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
            .build_pool(settings.pool_size)
            .map_err(|e| StoreError::Valkey(e.details().to_owned()))?;
        Ok(Self { pool, prefix: settings.key_prefix.clone(), timeout })
    }

    /// Connects and waits (bounded by the timeout) for the first connection.
    pub async fn connect(url: &Secret, settings: &ValkeySettings) -> Result<Self, StoreError> {
        let valkey = Self::build(url, settings)?;
        valkey.pool.init().await.map_err(|e| StoreError::Valkey(e.details().to_owned()))?;
        Ok(valkey)
    }

    /// The configured key prefix (`<prefix>:...` for every key Loci writes).
    pub fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.prefix)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let reply: Result<String, Error> = match tokio::time::timeout(self.timeout, self.pool.next().ping(None)).await {
            Ok(r) => r,
            Err(_) => return Err(StoreError::Timeout("valkey ping".into())),
        };
        reply.map(|_| ()).map_err(|e| StoreError::Valkey(e.details().to_owned()))
    }

    /// Connects without waiting for the server: commands fail (after the
    /// timeout) while it is unreachable, and succeed once it is back. For
    /// tools and tests that must not block on start-up; the server itself
    /// uses [`Valkey::connect`] and refuses to start without Valkey.
    pub fn connect_lazy(url: &Secret, settings: &ValkeySettings) -> Result<Self, StoreError> {
        let valkey = Self::build(url, settings)?;
        drop(valkey.pool.connect());
        Ok(valkey)
    }

    pub async fn quit(&self) {
        let _ = self.pool.quit().await;
    }
}

/// The DPoP replay cache on Valkey: `SET key 1 NX PX ttl` is atomic across
/// every API and MCP instance sharing the server. Any error is reported, and
/// the authenticator then rejects the request (fail closed).
#[derive(Debug, Clone)]
pub struct ValkeyReplayCache {
    valkey: Valkey,
}

impl ValkeyReplayCache {
    pub fn new(valkey: Valkey) -> Self {
        Self { valkey }
    }
}

#[async_trait::async_trait]
impl loci_security::ReplayCache for ValkeyReplayCache {
    async fn first_use(&self, key: &str, ttl: Duration) -> Result<bool, loci_security::ReplayCacheError> {
        let key = self.valkey.key(key);
        let millis = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        let reply: Result<Option<String>, Error> = match tokio::time::timeout(
            self.valkey.timeout,
            self.valkey.pool.set(key, "1", Some(Expiration::PX(millis)), Some(SetOptions::NX), false),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => return Err(loci_security::ReplayCacheError::Unavailable("timed out".into())),
        };
        reply.map(|r| r.is_some()).map_err(|e| loci_security::ReplayCacheError::Unavailable(e.details().to_owned()))
    }
}
