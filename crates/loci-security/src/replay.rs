//! DPoP replay protection: each proof `jti` may be used once within its window.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayCacheError {
    /// The backing store could not be reached or answered an error.
    #[error("replay cache unavailable: {0}")]
    Unavailable(String),
    /// The in-process cache is full of unexpired entries.
    #[error("replay cache is full")]
    Full,
}

/// An atomic "first use?" check with expiry. Implementations must be atomic
/// across every instance that shares them (Valkey's `SET NX PX`), and callers
/// treat any error as a rejection (fail closed).
#[async_trait]
pub trait ReplayCache: Send + Sync + std::fmt::Debug {
    /// Records `key` for `ttl` and returns `true` if it was not present,
    /// `false` if it was (a replay).
    async fn first_use(&self, key: &str, ttl: Duration) -> Result<bool, ReplayCacheError>;
}

/// In-process replay cache for the embedded profile: bounded, with expiry.
#[derive(Debug)]
pub struct InMemoryReplayCache {
    entries: Mutex<HashMap<String, Instant>>,
    capacity: usize,
}

impl InMemoryReplayCache {
    pub const DEFAULT_CAPACITY: usize = 200_000;

    pub fn new(capacity: usize) -> Self {
        Self { entries: Mutex::new(HashMap::new()), capacity: capacity.max(1) }
    }

    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for InMemoryReplayCache {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

#[async_trait]
impl ReplayCache for InMemoryReplayCache {
    async fn first_use(&self, key: &str, ttl: Duration) -> Result<bool, ReplayCacheError> {
        let now = Instant::now();
        let mut entries = self.entries.lock();
        if entries.get(key).is_some_and(|expires| *expires > now) {
            return Ok(false);
        }
        if entries.len() >= self.capacity {
            entries.retain(|_, expires| *expires > now);
            // Still full of live entries: evicting one would re-open a replay
            // window, so refuse instead.
            if entries.len() >= self.capacity {
                return Err(ReplayCacheError::Full);
            }
        }
        entries.insert(key.to_owned(), now + ttl);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_use_is_a_replay_until_expiry() {
        let cache = InMemoryReplayCache::default();
        assert_eq!(cache.first_use("k", Duration::from_millis(80)).await, Ok(true));
        assert_eq!(cache.first_use("k", Duration::from_millis(80)).await, Ok(false));
        assert_eq!(cache.first_use("other", Duration::from_millis(80)).await, Ok(true));
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(cache.first_use("k", Duration::from_millis(80)).await, Ok(true));
    }

    #[tokio::test]
    async fn bounded_memory_fails_closed_when_full_of_live_entries() {
        let cache = InMemoryReplayCache::new(2);
        assert_eq!(cache.first_use("a", Duration::from_millis(50)).await, Ok(true));
        assert_eq!(cache.first_use("b", Duration::from_secs(60)).await, Ok(true));
        assert_eq!(cache.first_use("c", Duration::from_secs(60)).await, Err(ReplayCacheError::Full));
        tokio::time::sleep(Duration::from_millis(80)).await;
        // "a" expired: purged, room for "c".
        assert_eq!(cache.first_use("c", Duration::from_secs(60)).await, Ok(true));
        assert_eq!(cache.len(), 2);
    }
}
