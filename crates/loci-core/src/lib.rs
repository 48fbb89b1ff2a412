//! Vocabulary shared by every Loci layer: identifiers, memory enums, access
//! entities and the error-code table.
//!
//! Architecture invariant: this crate has no I/O and no framework dependency.
//! Values are parsed once at the edge (`FromStr` / `TryFrom`) and are valid by
//! construction afterwards ("parse, don't validate").

mod access;
pub mod breaker;
mod error_code;
mod ids;
mod memory;
pub mod model;

pub use access::{AccessEntity, MAX_SEGMENT_CHARS as MAX_ACCESS_SEGMENT_CHARS};
pub use error_code::ErrorCode;
pub use ids::{AppId, CategoryId, JobId, MemoryId, OrgId, UserId};
pub use memory::{
    ArtifactType, Category, ExperimentStatus, FeedbackOutcome, FeedbackType, JobStatus, MemoryState, Scope, Source,
    content_hash, normalise_content,
};

/// Errors raised while parsing shared vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    #[error("invalid org id: {0}")]
    InvalidOrgId(&'static str),
    #[error("invalid id: {0}")]
    InvalidId(String),
    #[error("unknown {kind} value `{value}` (expected one of: {expected})")]
    UnknownValue { kind: &'static str, value: String, expected: &'static str },
    #[error("invalid access entity `{0}`")]
    InvalidAccessEntity(String),
}

/// An identifier as audit events show it: its first 8 characters and `...`.
pub fn mask(value: &str) -> String {
    let prefix: String = value.chars().take(8).collect();
    format!("{prefix}...")
}
