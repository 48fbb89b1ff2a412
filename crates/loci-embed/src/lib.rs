//! Text embeddings behind one trait.
//!
//! - [`LocalEmbedder`] runs all-MiniLM-L6-v2 (or another BERT sentence-transformer in the same
//!   layout) in process with candle, on the CPU.
//! - [`HttpEmbedder`] calls an OpenAI-compatible `POST /v1/embeddings` endpoint (OpenAI, Ollama,
//!   TEI, vLLM...), with retries and a circuit breaker.
//! - [`CachedEmbedder`] wraps either with an LRU cache, for query embeddings.
//!
//! [`from_settings`] builds the embedder the `[embeddings]` settings ask for.
//!
//! Rerankers score (query, document) pairs together, for a second ranking stage:
//! [`HttpReranker`] (Cohere-compatible or TEI rerank endpoints) and [`LocalReranker`] (a BERT
//! cross-encoder such as ms-marco-MiniLM-L-6-v2, with candle); [`reranker_from_settings`] builds
//! the one `[reranker]` asks for.
//!
//! Architecture invariant: this crate only turns text into unit vectors. It knows no tenant, no
//! store and no index; what gets embedded, when, and where the vectors go is decided above it.
//! It is the only crate that knows candle and tokenizers.

pub use loci_core::breaker;
mod cache;
mod error;
mod http;
mod local;
mod rerank;
mod rerank_local;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use loci_settings::{EmbeddingsProvider, EmbeddingsSettings};

pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker, Permit, Refusal};
pub use cache::{CacheStats, CachedEmbedder, cache_key};
pub use error::EmbedError;
pub use http::{HttpConfig, HttpEmbedder, RetryPolicy, embeddings_endpoint};
pub use local::{DEFAULT_MODEL_DIR_NAME, LocalEmbedder, LocalOptions, MAX_TOKENS, Pooling, REQUIRED_MODEL_FILES};
pub use rerank::{HttpReranker, Reranker, rerank_endpoint, reranker_from_settings};
pub use rerank_local::LocalReranker;

/// Turns texts into vectors.
///
/// Every vector has [`Embedder::dimensions`] components and an L2 norm of 1 (so the dot product
/// of two vectors is their cosine similarity). `embed` returns one vector per input text, in the
/// order of the input. An empty slice gives an empty result; a text that is empty or only
/// whitespace is [`EmbedError::InvalidInput`].
#[async_trait]
pub trait Embedder: Send + Sync + std::fmt::Debug {
    /// The model name, e.g. `all-MiniLM-L6-v2`. Vectors of different models are not comparable.
    fn model(&self) -> &str;

    /// The number of components of every vector.
    fn dimensions(&self) -> usize;

    /// Embeds `texts`, one unit vector per text, in input order.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;

    /// Whether the model answers (health checks): a remote one is asked to
    /// embed a word; a local one always answers.
    async fn ping(&self) -> Result<(), EmbedError> {
        Ok(())
    }

    /// How many tokens the model's own tokenizer makes of `text` (no
    /// truncation), for budgets counted in the model's tokens; `None` when
    /// the tokenizer is not local (a remote model).
    fn count_tokens(&self, text: &str) -> Option<usize> {
        let _ = text;
        None
    }

    /// The circuit breaker guarding a remote model (its state is a metric);
    /// none for a local one.
    fn breaker(&self) -> Option<Arc<CircuitBreaker>> {
        None
    }

    /// Embeds a search query: models trained with a query prefix (e5, bge)
    /// get it here; by default the same as [`Embedder::embed_one`].
    async fn embed_query(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        self.embed_one(text).await
    }

    /// Embeds one text (a stored one; see [`Embedder::embed_query`] for queries).
    async fn embed_one(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let mut out = self.embed(&[text.to_owned()]).await?;
        match out.pop() {
            Some(v) if out.is_empty() => Ok(v),
            _ => Err(EmbedError::BadResponse("expected exactly one vector".into())),
        }
    }
}

#[async_trait]
impl<E: Embedder + ?Sized> Embedder for Arc<E> {
    fn model(&self) -> &str {
        (**self).model()
    }

    fn dimensions(&self) -> usize {
        (**self).dimensions()
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        (**self).embed(texts).await
    }

    async fn embed_one(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        (**self).embed_one(text).await
    }

    async fn embed_query(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        (**self).embed_query(text).await
    }

    fn count_tokens(&self, text: &str) -> Option<usize> {
        (**self).count_tokens(text)
    }

    async fn ping(&self) -> Result<(), EmbedError> {
        (**self).ping().await
    }
}

/// Builds the embedder of the `[embeddings]` settings.
///
/// - `none`: `Ok(None)`.
/// - `local`: a [`LocalEmbedder`] loaded from `model_dir`, or from
///   `<data_dir>/models/all-MiniLM-L6-v2` when unset. Missing model files give
///   [`EmbedError::ModelMissing`]; the caller decides whether to run lexical-only. A model whose
///   hidden size differs from `dimensions` gives [`EmbedError::DimensionMismatch`].
/// - `openai`: an [`HttpEmbedder`] for `url`, with `api_key`, `model`, `dimensions`,
///   `timeout_ms` and `batch_size`, and the default retry and circuit-breaker policies.
///
/// Loading the local model reads ~90 MB and takes a fraction of a second; call this once at
/// start-up (from a blocking context if that matters to the caller).
pub fn from_settings(settings: &EmbeddingsSettings, data_dir: &Path) -> Result<Option<Arc<dyn Embedder>>, EmbedError> {
    match settings.provider {
        EmbeddingsProvider::None => Ok(None),
        EmbeddingsProvider::Local => {
            let dir = local_model_dir(settings, data_dir);
            let options = LocalOptions {
                pooling: settings.pooling,
                query_prefix: settings.query_prefix.clone(),
                passage_prefix: settings.passage_prefix.clone(),
            };
            let embedder =
                LocalEmbedder::load_with(&dir, settings.batch_size, &options)?.with_model_name(settings.model.clone());
            if embedder.dimensions() != settings.dimensions {
                return Err(EmbedError::DimensionMismatch {
                    expected: settings.dimensions,
                    got: embedder.dimensions(),
                });
            }
            Ok(Some(Arc::new(embedder)))
        }
        EmbeddingsProvider::Openai => {
            let base_url = settings
                .url
                .clone()
                .ok_or_else(|| EmbedError::Config("embeddings.url is required for provider \"openai\"".into()))?;
            let config = HttpConfig {
                base_url,
                api_key: settings.api_key.clone(),
                model: settings.model.clone(),
                dimensions: settings.dimensions,
                timeout: Duration::from_millis(settings.timeout_ms),
                batch_size: settings.batch_size,
                retry: RetryPolicy::default(),
                breaker: BreakerConfig::default(),
            };
            Ok(Some(Arc::new(HttpEmbedder::new(config)?)))
        }
    }
}

/// The directory the local model is read from: `model_dir`, or
/// `<data_dir>/models/all-MiniLM-L6-v2`.
pub fn local_model_dir(settings: &EmbeddingsSettings, data_dir: &Path) -> PathBuf {
    settings.model_dir.clone().unwrap_or_else(|| data_dir.join("models").join(DEFAULT_MODEL_DIR_NAME))
}

/// Scales `v` to unit L2 norm in place. Returns `false` (and leaves `v` alone) when the norm is
/// zero or not finite.
pub fn normalize(v: &mut [f32]) -> bool {
    let norm = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    if !norm.is_finite() || norm == 0.0 {
        return false;
    }
    for x in v.iter_mut() {
        *x = (f64::from(*x) / norm) as f32;
    }
    true
}

/// Cosine similarity of two vectors of the same length (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 { 0.0 } else { (dot / (na.sqrt() * nb.sqrt())) as f32 }
}

/// Rejects texts that are empty or only whitespace.
pub(crate) fn check_texts(texts: &[String]) -> Result<(), EmbedError> {
    match texts.iter().position(|t| t.trim().is_empty()) {
        Some(i) => Err(EmbedError::InvalidInput(format!("text {i} is empty"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_gives_unit_vectors_and_refuses_zero() {
        let mut v = vec![3.0, 4.0];
        assert!(normalize(&mut v));
        assert!((v[0] - 0.6).abs() < 1e-7 && (v[1] - 0.8).abs() < 1e-7);
        let mut z = vec![0.0, 0.0];
        assert!(!normalize(&mut z));
        let mut n = vec![f32::NAN, 1.0];
        assert!(!normalize(&mut n));
    }

    #[test]
    fn cosine_of_known_vectors() {
        assert!((cosine(&[1.0, 0.0], &[0.0, 1.0])).abs() < 1e-7);
        assert!((cosine(&[1.0, 1.0], &[2.0, 2.0]) - 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }

    #[test]
    fn empty_texts_are_invalid() {
        assert!(check_texts(&["a".into(), "b".into()]).is_ok());
        assert!(
            matches!(check_texts(&["a".into(), " \n".into()]), Err(EmbedError::InvalidInput(m)) if m.contains('1'))
        );
    }

    #[test]
    fn provider_none_gives_no_embedder() {
        let s = EmbeddingsSettings { provider: EmbeddingsProvider::None, ..EmbeddingsSettings::default() };
        assert!(matches!(from_settings(&s, Path::new("/nonexistent")), Ok(None)));
    }

    #[test]
    fn provider_local_without_model_files_is_model_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = EmbeddingsSettings::default();
        match from_settings(&s, dir.path()) {
            Err(EmbedError::ModelMissing { dir: missing, .. }) => {
                assert_eq!(missing, dir.path().join("models").join("all-MiniLM-L6-v2"));
            }
            other => panic!("expected ModelMissing, got {other:?}"),
        }
    }

    #[test]
    fn provider_openai_builds_an_http_embedder() {
        let s = EmbeddingsSettings {
            provider: EmbeddingsProvider::Openai,
            url: Some("http://127.0.0.1:9/v1".into()),
            model: "text-embedding-3-small".into(),
            dimensions: 1536,
            ..EmbeddingsSettings::default()
        };
        let e = from_settings(&s, Path::new("/nonexistent")).expect("builds").expect("some");
        assert_eq!(e.model(), "text-embedding-3-small");
        assert_eq!(e.dimensions(), 1536);
        let no_url = EmbeddingsSettings { url: None, ..s };
        assert!(matches!(from_settings(&no_url, Path::new("/x")), Err(EmbedError::Config(_))));
    }
}
