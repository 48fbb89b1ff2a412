//! A circuit breaker in front of an out-of-process index engine (Qdrant,
//! OpenSearch): once the engine has failed `failure_threshold` calls in a
//! row, calls fail at once with [`IndexError::CircuitOpen`] until the
//! cool-down ends and a trial call succeeds. Search then answers degraded
//! (`missing_sources`) in microseconds instead of waiting on every request;
//! the indexer retries its rows later. Health checks bypass the breaker.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use loci_core::breaker::CircuitBreaker;
use loci_core::{MemoryId, OrgId};

use crate::{Hit, IndexDoc, IndexError, LexicalIndex, SearchFilter, VectorIndex};

/// `inner` behind `breaker`.
#[derive(Debug)]
pub struct Guarded<T: ?Sized> {
    inner: Arc<T>,
    breaker: Arc<CircuitBreaker>,
}

impl<T: ?Sized> Guarded<T> {
    pub fn new(inner: Arc<T>, breaker: Arc<CircuitBreaker>) -> Self {
        Self { inner, breaker }
    }

    async fn run<R>(
        &self,
        engine: &'static str,
        call: impl Future<Output = Result<R, IndexError>>,
    ) -> Result<R, IndexError> {
        match self.breaker.call(call, IndexError::is_outage).await {
            Ok(outcome) => outcome,
            Err(refusal) => Err(IndexError::CircuitOpen { engine, refusal }),
        }
    }
}

#[async_trait]
impl VectorIndex for Guarded<dyn VectorIndex> {
    fn engine(&self) -> &'static str {
        self.inner.engine()
    }
    async fn upsert(&self, docs: &[(IndexDoc, Vec<f32>)]) -> Result<(), IndexError> {
        self.run(self.engine(), self.inner.upsert(docs)).await
    }
    async fn delete(&self, org: &OrgId, ids: &[MemoryId]) -> Result<(), IndexError> {
        self.run(self.engine(), self.inner.delete(org, ids)).await
    }
    async fn search(&self, query: &[f32], filter: &SearchFilter, limit: usize) -> Result<Vec<Hit>, IndexError> {
        self.run(self.engine(), self.inner.search(query, filter, limit)).await
    }
    async fn embedding(&self, org: &OrgId, id: MemoryId) -> Result<Option<Vec<f32>>, IndexError> {
        self.run(self.engine(), self.inner.embedding(org, id)).await
    }
    async fn flush(&self) -> Result<(), IndexError> {
        self.run(self.engine(), self.inner.flush()).await
    }
    async fn clear(&self, org: Option<&OrgId>) -> Result<(), IndexError> {
        self.run(self.engine(), self.inner.clear(org)).await
    }
    async fn count(&self, org: &OrgId) -> Result<u64, IndexError> {
        self.run(self.engine(), self.inner.count(org)).await
    }
    async fn expunge(&self) -> Result<(), IndexError> {
        self.run(self.engine(), self.inner.expunge()).await
    }
    async fn ping(&self) -> Result<(), IndexError> {
        self.inner.ping().await
    }
}

#[async_trait]
impl LexicalIndex for Guarded<dyn LexicalIndex> {
    fn engine(&self) -> &'static str {
        self.inner.engine()
    }
    async fn upsert(&self, docs: &[IndexDoc]) -> Result<(), IndexError> {
        self.run(self.engine(), self.inner.upsert(docs)).await
    }
    async fn delete(&self, org: &OrgId, ids: &[MemoryId]) -> Result<(), IndexError> {
        self.run(self.engine(), self.inner.delete(org, ids)).await
    }
    async fn search(&self, query: &str, filter: &SearchFilter, limit: usize) -> Result<Vec<Hit>, IndexError> {
        self.run(self.engine(), self.inner.search(query, filter, limit)).await
    }
    async fn flush(&self) -> Result<(), IndexError> {
        self.run(self.engine(), self.inner.flush()).await
    }
    async fn clear(&self, org: Option<&OrgId>) -> Result<(), IndexError> {
        self.run(self.engine(), self.inner.clear(org)).await
    }
    async fn count(&self, org: &OrgId) -> Result<u64, IndexError> {
        self.run(self.engine(), self.inner.count(org)).await
    }
    async fn expunge(&self) -> Result<(), IndexError> {
        self.run(self.engine(), self.inner.expunge()).await
    }
    async fn ping(&self) -> Result<(), IndexError> {
        self.inner.ping().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use loci_core::breaker::BreakerConfig;

    use super::*;

    /// An engine that is down (every call fails to connect) and counts calls.
    #[derive(Debug, Default)]
    struct Down(AtomicUsize);

    #[async_trait]
    impl LexicalIndex for Down {
        fn engine(&self) -> &'static str {
            "opensearch"
        }
        async fn upsert(&self, _: &[IndexDoc]) -> Result<(), IndexError> {
            Ok(())
        }
        async fn delete(&self, _: &OrgId, _: &[MemoryId]) -> Result<(), IndexError> {
            Ok(())
        }
        async fn search(&self, _: &str, _: &SearchFilter, _: usize) -> Result<Vec<Hit>, IndexError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Err(IndexError::Unavailable { engine: "opensearch", reason: "connection refused".into() })
        }
        async fn flush(&self) -> Result<(), IndexError> {
            Err(IndexError::Failed("a bad request the engine answered".into()))
        }
        async fn clear(&self, _: Option<&OrgId>) -> Result<(), IndexError> {
            Ok(())
        }
        async fn count(&self, _: &OrgId) -> Result<u64, IndexError> {
            Ok(0)
        }
        async fn ping(&self) -> Result<(), IndexError> {
            Err(IndexError::Unavailable { engine: "opensearch", reason: "connection refused".into() })
        }
    }

    #[tokio::test]
    async fn consecutive_outages_open_the_breaker_and_calls_fail_fast() {
        let down = Arc::new(Down::default());
        let breaker =
            Arc::new(CircuitBreaker::new(BreakerConfig { failure_threshold: 3, cool_down: Duration::from_secs(30) }));
        let inner: Arc<dyn LexicalIndex> = down.clone();
        let guarded = Guarded::new(inner, Arc::clone(&breaker));
        let filter = SearchFilter::new(OrgId::parse("acme").expect("org"), None);
        // An error the engine answered does not count.
        assert!(matches!(guarded.flush().await, Err(IndexError::Failed(_))));
        for _ in 0..3 {
            assert!(matches!(guarded.search("q", &filter, 5).await, Err(IndexError::Unavailable { .. })));
        }
        let refused = guarded.search("q", &filter, 5).await;
        assert!(matches!(refused, Err(IndexError::CircuitOpen { engine: "opensearch", .. })), "{refused:?}");
        assert_eq!(down.0.load(Ordering::SeqCst), 3, "the open breaker did not call the engine");
        assert!(refused.as_ref().err().and_then(IndexError::retry_after).is_some());
        assert!(refused.err().is_some_and(|e| e.is_transient()), "search reports it as a missing source");
        // Health checks still reach the engine.
        assert!(matches!(guarded.ping().await, Err(IndexError::Unavailable { .. })));
    }
}
