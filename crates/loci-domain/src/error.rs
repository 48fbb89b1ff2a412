use loci_core::{ErrorCode, MemoryState};
use loci_stores::StoreError;
use serde::Serialize;

/// One invalid input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldViolation {
    /// Dotted path of the field, e.g. `metadata.scope`.
    pub field: String,
    pub message: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// Errors of the domain layer; each maps to one stable error code.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("invalid input")]
    Validation(Vec<FieldViolation>),
    #[error("illegal state transition {from} -> {to}")]
    InvalidTransition { from: MemoryState, to: MemoryState },
    #[error("the app is paused; writes through it are blocked")]
    AppPaused,
    /// The org has this many jobs queued or running already.
    #[error("too many jobs queued: at most {0} per org; retry when some are done")]
    TooManyJobs(u64),
    #[error("illegal experiment status transition {from} -> {to}")]
    InvalidExperimentTransition { from: loci_core::ExperimentStatus, to: loci_core::ExperimentStatus },
    /// The request conflicts with the current state (the message says how).
    #[error("{0}")]
    Conflict(String),
    /// The job had ended (another run of it finished first).
    #[error("the job has ended already")]
    JobEnded,
    /// A bug or corrupt stored data; the detail goes to the log only.
    #[error("internal error: {0}")]
    Internal(String),
    #[error("the embedding model is unavailable")]
    EmbedderUnavailable,
    #[error("the graph engine cannot answer this query")]
    GraphAnalyticsUnavailable,
    /// No search source answered; the names of those that failed.
    #[error("search is unavailable: {}", .0.join(", "))]
    SearchUnavailable(Vec<String>),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Index(#[from] loci_index::IndexError),
}

impl From<StoreError> for DomainError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::NotFound(what),
            StoreError::InvalidTransition { from, to } => Self::InvalidTransition { from, to },
            other => Self::Store(other),
        }
    }
}

impl DomainError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Validation(_) => ErrorCode::ValidationFailed,
            Self::InvalidTransition { .. } => ErrorCode::InvalidStateTransition,
            Self::AppPaused => ErrorCode::AppPaused,
            Self::TooManyJobs(_) => ErrorCode::RateLimited,
            Self::Internal(_) => ErrorCode::Internal,
            Self::JobEnded => ErrorCode::InvalidStateTransition,
            Self::InvalidExperimentTransition { .. } => ErrorCode::InvalidStateTransition,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::EmbedderUnavailable => ErrorCode::EmbedderUnavailable,
            Self::GraphAnalyticsUnavailable => ErrorCode::GraphAnalyticsUnavailable,
            Self::SearchUnavailable(_) => ErrorCode::DependencyUnavailable,
            Self::Store(
                StoreError::Timeout(_)
                | StoreError::Valkey(_)
                | StoreError::Unavailable(_)
                | StoreError::Unreachable(_)
                | StoreError::CircuitOpen { .. },
            ) => ErrorCode::DependencyUnavailable,
            Self::Store(_) => ErrorCode::Internal,
            Self::Index(e) if e.is_transient() => ErrorCode::DependencyUnavailable,
            Self::Index(_) => ErrorCode::Internal,
        }
    }

    /// When a client may retry a `DEPENDENCY_UNAVAILABLE`: the rest of an
    /// open circuit breaker's cool-down when that is why.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Store(e) => e.retry_after(),
            Self::Index(e) => e.retry_after(),
            _ => None,
        }
    }

    /// What a client may be told: the error's own message, except for store
    /// and index failures, whose detail (SQL, engine answers) goes to the log
    /// only. Every transport renders errors through this and [`Self::code`].
    pub fn public_detail(&self) -> String {
        match self {
            Self::Internal(_) => {
                tracing::error!(error = %self, "internal error");
                "an internal error occurred".to_owned()
            }
            Self::Store(_) | Self::Index(_) => {
                tracing::error!(error = %self, "storage error");
                match self.code() {
                    ErrorCode::Internal => "an internal error occurred".to_owned(),
                    _ => "a storage dependency is unavailable; retry later".to_owned(),
                }
            }
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exhausted_pool_or_unreachable_database_is_503_without_its_detail() {
        let e = DomainError::from(StoreError::Unavailable("pool timed out after 5s".into()));
        assert_eq!(e.code(), ErrorCode::DependencyUnavailable);
        assert!(!e.public_detail().contains("pool"), "{}", e.public_detail());
        assert_eq!(DomainError::from(StoreError::Database("syntax".into())).code(), ErrorCode::Internal);
    }
}
