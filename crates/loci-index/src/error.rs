/// Errors of an index (embedded or engine).
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The index failed to apply or answer a request.
    #[error("index error: {0}")]
    Failed(String),
    /// An external index engine (Qdrant, OpenSearch, Neo4j) could not be
    /// reached or refused the connection (wrong URL, credentials or TLS).
    #[error("{engine} is unavailable: {reason}")]
    Unavailable { engine: &'static str, reason: String },
    #[error("timed out: {0}")]
    Timeout(String),
    /// The index was configured wrongly (a missing URL, a disabled engine).
    #[error("configuration error: {0}")]
    Config(String),
    /// Index data on disk that no longer decodes.
    #[error("corrupt index data: {0}")]
    Corrupt(String),
    /// The relational store behind an index (the embedded graph) failed.
    #[error("relational store: {0}")]
    Store(String),
    /// The engine's circuit breaker is open: failing fast.
    #[error("{engine} is unavailable ({refusal})")]
    CircuitOpen { engine: &'static str, refusal: loci_core::breaker::Refusal },
}

impl IndexError {
    /// Whether retrying later may succeed (the engine is down or slow), as
    /// opposed to a bug or a configuration problem.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Timeout(_) | Self::Store(_) | Self::CircuitOpen { .. })
    }

    /// Whether the engine itself is down (what its circuit breaker counts).
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Timeout(_))
    }

    /// When a client may retry: the rest of an open breaker's cool-down.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::CircuitOpen { refusal, .. } => Some(refusal.retry_after()),
            _ => None,
        }
    }
}
