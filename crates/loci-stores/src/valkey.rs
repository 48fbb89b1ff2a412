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
    /// Connects and waits (bounded by the timeout) for the first connection.
    pub async fn connect(url: &Secret, settings: &ValkeySettings) -> Result<Self, StoreError> {
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
        pool.init().await.map_err(|e| StoreError::Valkey(e.details().to_owned()))?;
        Ok(Self { pool, prefix: settings.key_prefix.clone(), timeout })
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

    pub async fn quit(&self) {
        let _ = self.pool.quit().await;
    }
}
