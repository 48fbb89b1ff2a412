use loci_core::MemoryState;

/// Errors of the persistence layer. Driver errors arrive as text: no
/// `sea_orm` or `fred` type crosses this crate's public API.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A referenced entity does not exist in the caller's tenant.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("illegal state transition {from} -> {to}")]
    InvalidTransition { from: MemoryState, to: MemoryState },
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
    Database(String),
    #[error("valkey error: {0}")]
    Valkey(String),
    #[error("timed out: {0}")]
    Timeout(String),
    /// No connection could be had: the pool is exhausted (every connection
    /// busy past the acquire timeout) or the database cannot be reached.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database could not be reached at all (connection refused or
    /// lost): what the database's circuit breaker counts.
    #[error("database unreachable: {0}")]
    Unreachable(String),
    /// A dependency's circuit breaker is open: failing fast instead of
    /// waiting on something known to be down.
    #[error("{dependency} is unavailable ({refusal})")]
    CircuitOpen { dependency: &'static str, refusal: loci_core::breaker::Refusal },
}

impl StoreError {
    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        Self::Corrupt(what.to_string())
    }

    /// A failure that says the dependency is down (not a bad statement).
    /// An exhausted pool counts too: sqlx retries a refused connection until
    /// the acquire timeout and then reports exactly that. Busy but alive,
    /// some calls still succeed, and a success resets the count.
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Unreachable(_) | Self::Unavailable(_) | Self::Timeout(_) | Self::Valkey(_))
    }

    /// When a client may retry: the rest of an open breaker's cool-down.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::CircuitOpen { refusal, .. } => Some(refusal.retry_after()),
            _ => None,
        }
    }
}

impl From<sea_orm::DbErr> for StoreError {
    fn from(e: sea_orm::DbErr) -> Self {
        match e {
            // Every connection busy past the acquire timeout: overloaded, not down.
            sea_orm::DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout) => Self::Unavailable(e.to_string()),
            sea_orm::DbErr::ConnectionAcquire(_) | sea_orm::DbErr::Conn(_) => Self::Unreachable(e.to_string()),
            other => Self::Database(other.to_string()),
        }
    }
}

/// The embedded graph index lives on the relational store.
impl From<StoreError> for loci_index::IndexError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Timeout(what) => Self::Timeout(what),
            StoreError::Config(what) => Self::Config(what),
            other => Self::Store(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_connection_is_unavailable_and_other_driver_errors_are_not() {
        let exhausted = sea_orm::DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout);
        assert!(matches!(StoreError::from(exhausted), StoreError::Unavailable(_)));
        let query = sea_orm::DbErr::Custom("syntax error".into());
        assert!(matches!(StoreError::from(query), StoreError::Database(_)));
    }
}
