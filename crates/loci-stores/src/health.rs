use async_trait::async_trait;

use crate::{Database, StoreError, Valkey};

/// A dependency whose reachability `/health/*` reports.
#[async_trait]
pub trait DependencyCheck: Send + Sync + std::fmt::Debug {
    /// Stable name in health reports (`database`, `valkey`, ...).
    fn name(&self) -> &'static str;
    /// Whether readiness depends on it (as opposed to only being reported).
    fn required(&self) -> bool;
    async fn check(&self) -> Result<(), StoreError>;
}

#[async_trait]
impl DependencyCheck for Database {
    fn name(&self) -> &'static str {
        "database"
    }
    fn required(&self) -> bool {
        true
    }
    async fn check(&self) -> Result<(), StoreError> {
        self.ping().await
    }
}

#[async_trait]
impl DependencyCheck for Valkey {
    fn name(&self) -> &'static str {
        "valkey"
    }
    fn required(&self) -> bool {
        true
    }
    async fn check(&self) -> Result<(), StoreError> {
        self.ping().await
    }
}
