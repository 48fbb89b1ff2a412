use std::path::PathBuf;

/// Everything that can go wrong while building an embedder or embedding texts.
///
/// Only [`EmbedError::Unavailable`] is transient: the endpoint is down, timed out, kept failing
/// after the retries, or the circuit breaker is open. A search can fall back to lexical-only on
/// it. The other variants are configuration or programming problems that a retry will not fix.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The local model directory lacks one of the files the model needs.
    #[error(
        "embedding model not found in {dir}: missing {missing} (run scripts/fetch-model.sh, or set embeddings.model_dir)"
    )]
    ModelMissing { dir: PathBuf, missing: String },
    /// The local model could not be loaded or run.
    #[error("embedding model error: {0}")]
    Model(String),
    /// The tokenizer could not be loaded or failed on an input.
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    /// The settings cannot make an embedder (bad URL, HTTP client setup...).
    #[error("embedder configuration: {0}")]
    Config(String),
    /// The embedding endpoint cannot be used right now (connection refused, timeout, 5xx after
    /// the retries, circuit breaker open). Transient.
    #[error("embedder unavailable: {0}")]
    Unavailable(String),
    /// The endpoint refused the request with a 4xx status (bad key, unknown model, input too
    /// long...). Not retried.
    #[error("embedding request rejected with HTTP {status}: {message}")]
    Rejected { status: u16, message: String },
    /// The endpoint answered with something that is not a usable embeddings response.
    #[error("bad embeddings response: {0}")]
    BadResponse(String),
    /// A vector does not have the configured number of dimensions.
    #[error("embedding has {got} dimensions, expected {expected}")]
    DimensionMismatch { expected: usize, got: usize },
    /// The caller passed something that cannot be embedded (e.g. an empty text).
    #[error("invalid embedding input: {0}")]
    InvalidInput(String),
}

impl EmbedError {
    /// Whether a later attempt may succeed (only [`EmbedError::Unavailable`]).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<candle_core::Error> for EmbedError {
    fn from(e: candle_core::Error) -> Self {
        Self::Model(e.to_string())
    }
}
