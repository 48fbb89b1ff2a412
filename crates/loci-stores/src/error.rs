use loci_core::MemoryState;

/// Errors of the persistence layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A referenced entity does not exist in the caller's tenant.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("illegal state transition {from} -> {to}")]
    InvalidTransition { from: MemoryState, to: MemoryState },
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("configuration error: {0}")]
    Config(String),
    #[error(
        "the database role `{0}` bypasses row-level security (superuser or BYPASSRLS); \
         connect as a role subject to RLS or set database.allow_rls_bypass = true"
    )]
    RlsBypassed(String),
    /// A stored value that no longer parses (e.g. an unknown enum text).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("valkey error: {0}")]
    Valkey(String),
    #[error("timed out: {0}")]
    Timeout(String),
    /// A search index (vector, lexical or graph) failed.
    #[error("index error: {0}")]
    Index(String),
    /// An external index engine (Qdrant, OpenSearch, Neo4j) could not be
    /// reached or refused the connection (wrong URL, credentials or TLS).
    #[error("{engine} is unavailable: {reason}")]
    IndexUnavailable { engine: &'static str, reason: String },
}

impl StoreError {
    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        Self::Corrupt(what.to_string())
    }
}
