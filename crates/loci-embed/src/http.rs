//! A client of OpenAI-compatible `POST /v1/embeddings` endpoints (OpenAI, Ollama, TEI, vLLM...).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use loci_settings::Secret;
use serde::Deserialize;
use serde_json::json;

use crate::breaker::{BreakerConfig, BreakerState, CircuitBreaker, Refusal};
use crate::{EmbedError, Embedder, check_texts, normalize};

/// How failed attempts are retried: connection errors, timeouts, 5xx, 408 and 429. Other 4xx
/// answers are never retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = no retry).
    pub max_retries: u32,
    /// Delay before the first retry; doubled for each further retry.
    pub initial_backoff: Duration,
    /// Upper bound of the delay.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_retries: 2, initial_backoff: Duration::from_millis(200), max_backoff: Duration::from_secs(2) }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (0-based) without jitter:
    /// `min(max_backoff, initial_backoff * 2^retry)`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(16)).unwrap_or(u32::MAX);
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }

    /// The backoff with "equal jitter": uniformly random in `[backoff / 2, backoff]`, so that
    /// clients that failed together do not retry together.
    fn jittered(&self, retry: u32) -> Duration {
        let full = self.backoff(retry);
        let half = full / 2;
        let span = u64::try_from((full - half).as_micros()).unwrap_or(u64::MAX).saturating_add(1);
        half + Duration::from_micros(random_u64() % span)
    }
}

/// A random number for jitter, without a dependency: std's `RandomState` is seeded randomly.
fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish()
}

/// Everything an [`HttpEmbedder`] needs.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Base URL, with or without the trailing `/v1` (e.g. `https://api.openai.com/v1`,
    /// `http://localhost:11434`).
    pub base_url: String,
    /// Sent as `Authorization: Bearer <key>` when set.
    pub api_key: Option<Secret>,
    /// The `model` field of the request.
    pub model: String,
    /// Every returned vector must have this many components.
    pub dimensions: usize,
    /// Timeout of one HTTP request (connect included), per attempt.
    pub timeout: Duration,
    /// Texts per request (at least 1); longer inputs are split into several requests.
    pub batch_size: usize,
    pub retry: RetryPolicy,
    pub breaker: BreakerConfig,
}

/// Embeds through an OpenAI-compatible endpoint.
///
/// Each request is retried by [`RetryPolicy`] and guarded by a circuit breaker: once the endpoint
/// has failed `breaker.failure_threshold` attempts in a row, `embed` fails at once with
/// [`EmbedError::Unavailable`] for `breaker.cool_down`, then lets one trial request through. The
/// response's `index` fields give the order; every vector must have `dimensions` components and
/// is L2-normalised.
#[derive(Debug)]
pub struct HttpEmbedder {
    client: JsonPoster,
    model: String,
    dimensions: usize,
    batch_size: usize,
}

/// Posts JSON to one model endpoint with retries ([`RetryPolicy`]) behind a
/// circuit breaker: what the HTTP embedder and reranker share.
#[derive(Debug)]
pub(crate) struct JsonPoster {
    http: reqwest::Client,
    pub(crate) endpoint: String,
    api_key: Option<Secret>,
    retry: RetryPolicy,
    pub(crate) breaker: std::sync::Arc<CircuitBreaker>,
    /// What the requests are for, in log lines (`embedding`, `rerank`).
    purpose: &'static str,
}

/// The embeddings URL for a base URL: `{base}/v1/embeddings`, or `{base}/embeddings` when the base
/// already ends with `/v1`; a URL that already ends with `/embeddings` is kept as is.
pub fn embeddings_endpoint(base_url: &str) -> Result<String, EmbedError> {
    let parsed = reqwest::Url::parse(base_url.trim())
        .map_err(|e| EmbedError::Config(format!("embeddings URL is not a valid URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(EmbedError::Config("embeddings URL must be http or https".into()));
    }
    let base = base_url.trim().trim_end_matches('/');
    Ok(if base.ends_with("/embeddings") {
        base.to_owned()
    } else if base.ends_with("/v1") {
        format!("{base}/embeddings")
    } else {
        format!("{base}/v1/embeddings")
    })
}

/// The outcome of one failed attempt.
enum Failure {
    /// Worth retrying; counts against the breaker.
    Transient(String),
    /// Final; the endpoint is up.
    Final(EmbedError),
}

#[derive(Deserialize)]
struct EmbeddingsResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    embedding: Vec<f32>,
    #[serde(default)]
    index: Option<usize>,
}

impl JsonPoster {
    pub(crate) fn new(
        endpoint: String,
        api_key: Option<Secret>,
        timeout: Duration,
        retry: RetryPolicy,
        breaker: BreakerConfig,
        purpose: &'static str,
    ) -> Result<Self, EmbedError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("loci-embed/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EmbedError::Config(format!("HTTP client: {e}")))?;
        Ok(Self { http, endpoint, api_key, retry, breaker: std::sync::Arc::new(CircuitBreaker::new(breaker)), purpose })
    }

    pub(crate) fn set_retry(&mut self, retry: RetryPolicy) {
        self.retry = retry;
    }

    /// The body of a 2xx answer to `body`, after the retries.
    pub(crate) async fn post(&self, body: &serde_json::Value) -> Result<Vec<u8>, EmbedError> {
        let mut retry = 0u32;
        loop {
            let permit = self.breaker.acquire().map_err(|refusal| {
                EmbedError::Unavailable(match refusal {
                    Refusal::Open(left) => {
                        format!("circuit breaker open after repeated failures, next try in {} ms", left.as_millis())
                    }
                    Refusal::TrialInFlight => "circuit breaker half-open, trial request in flight".into(),
                })
            })?;
            match self.attempt(body).await {
                Ok(bytes) => {
                    permit.success();
                    return Ok(bytes);
                }
                Err(Failure::Final(e)) => {
                    permit.success();
                    return Err(e);
                }
                Err(Failure::Transient(why)) => {
                    permit.failure();
                    let attempts = retry + 1;
                    if self.breaker.state() == BreakerState::Open {
                        return Err(EmbedError::Unavailable(format!(
                            "{why} (after {attempts} attempts; circuit breaker now open)"
                        )));
                    }
                    if retry >= self.retry.max_retries {
                        return Err(EmbedError::Unavailable(format!("{why} (after {attempts} attempts)")));
                    }
                    let delay = self.retry.jittered(retry);
                    tracing::warn!(endpoint = %self.endpoint, error = %why, retry = retry + 1, delay_ms = delay.as_millis() as u64,
                        purpose = self.purpose, "model request failed; retrying");
                    tokio::time::sleep(delay).await;
                    retry += 1;
                }
            }
        }
    }

    /// One HTTP request: the body of a 2xx answer, or why not.
    async fn attempt(&self, body: &serde_json::Value) -> Result<Vec<u8>, Failure> {
        let mut req = self.http.post(&self.endpoint).json(body);
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key.expose());
        }
        let res = req.send().await.map_err(|e| {
            if e.is_builder() {
                Failure::Final(EmbedError::Config(e.without_url().to_string()))
            } else if e.is_timeout() {
                Failure::Transient(format!("request timed out: {}", e.without_url()))
            } else {
                Failure::Transient(format!("request failed: {}", e.without_url()))
            }
        })?;
        let status = res.status();
        if status.is_success() {
            let bytes = res
                .bytes()
                .await
                .map_err(|e| Failure::Transient(format!("reading the response failed: {}", e.without_url())))?;
            return Ok(bytes.to_vec());
        }
        if status.is_server_error()
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
        {
            return Err(Failure::Transient(format!("HTTP {status}")));
        }
        let text = res.text().await.unwrap_or_default();
        let message: String = text.chars().filter(|c| !c.is_control()).take(300).collect();
        Err(Failure::Final(EmbedError::Rejected { status: status.as_u16(), message }))
    }
}

impl HttpEmbedder {
    pub fn new(config: HttpConfig) -> Result<Self, EmbedError> {
        let endpoint = embeddings_endpoint(&config.base_url)?;
        if config.dimensions == 0 {
            return Err(EmbedError::Config("dimensions must be at least 1".into()));
        }
        let client =
            JsonPoster::new(endpoint, config.api_key, config.timeout, config.retry, config.breaker, "embedding")?;
        Ok(Self { client, model: config.model, dimensions: config.dimensions, batch_size: config.batch_size.max(1) })
    }

    /// The full URL requests go to.
    pub fn endpoint(&self) -> &str {
        &self.client.endpoint
    }

    /// The circuit breaker's state (for health reports).
    pub fn breaker(&self) -> std::sync::Arc<CircuitBreaker> {
        std::sync::Arc::clone(&self.client.breaker)
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.client.breaker.state()
    }

    async fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let body = json!({ "model": self.model, "input": texts });
        let bytes = self.client.post(&body).await?;
        self.parse(&bytes, texts.len())
    }

    fn parse(&self, bytes: &[u8], expected: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
        let response: EmbeddingsResponse = serde_json::from_slice(bytes)
            .map_err(|e| EmbedError::BadResponse(format!("not an embeddings list: {e}")))?;
        if response.data.len() != expected {
            return Err(EmbedError::BadResponse(format!("{} embeddings for {expected} inputs", response.data.len())));
        }
        let mut slots: Vec<Option<Vec<f32>>> = vec![None; expected];
        for (position, item) in response.data.into_iter().enumerate() {
            let index = item.index.unwrap_or(position);
            let slot = slots
                .get_mut(index)
                .ok_or_else(|| EmbedError::BadResponse(format!("index {index} out of range for {expected} inputs")))?;
            if slot.is_some() {
                return Err(EmbedError::BadResponse(format!("index {index} appears twice")));
            }
            let mut vector = item.embedding;
            if vector.len() != self.dimensions {
                return Err(EmbedError::DimensionMismatch { expected: self.dimensions, got: vector.len() });
            }
            if !normalize(&mut vector) {
                return Err(EmbedError::BadResponse(format!("embedding {index} is zero or not finite")));
            }
            *slot = Some(vector);
        }
        // Every slot is filled: `expected` distinct in-range indexes were seen.
        Ok(slots.into_iter().flatten().collect())
    }
}

#[async_trait]
impl Embedder for HttpEmbedder {
    fn breaker(&self) -> Option<std::sync::Arc<CircuitBreaker>> {
        Some(HttpEmbedder::breaker(self))
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// One tiny embedding through the normal path (retries, breaker).
    async fn ping(&self) -> Result<(), EmbedError> {
        self.embed_one("health").await.map(|_| ())
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        check_texts(texts)?;
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.batch_size) {
            out.extend(self.embed_batch(batch).await?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_accepts_base_urls_with_or_without_v1() {
        for (base, want) in [
            ("http://localhost:11434", "http://localhost:11434/v1/embeddings"),
            ("http://localhost:11434/", "http://localhost:11434/v1/embeddings"),
            ("https://api.openai.com/v1", "https://api.openai.com/v1/embeddings"),
            ("https://api.openai.com/v1/", "https://api.openai.com/v1/embeddings"),
            ("http://tei:8080/v1/embeddings", "http://tei:8080/v1/embeddings"),
            ("http://gw/openai", "http://gw/openai/v1/embeddings"),
        ] {
            assert_eq!(embeddings_endpoint(base).unwrap(), want, "{base}");
        }
        assert!(matches!(embeddings_endpoint("localhost:11434"), Err(EmbedError::Config(_))));
        assert!(matches!(embeddings_endpoint("not a url"), Err(EmbedError::Config(_))));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_stays_in_range() {
        let p = RetryPolicy {
            max_retries: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
        };
        let ms: Vec<u128> = (0..6).map(|r| p.backoff(r).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.backoff(u32::MAX), Duration::from_millis(1000));
        for r in 0..6 {
            for _ in 0..50 {
                let d = p.jittered(r);
                assert!(d >= p.backoff(r) / 2 && d <= p.backoff(r), "{d:?}");
            }
        }
    }

    fn embedder(dimensions: usize) -> HttpEmbedder {
        HttpEmbedder::new(HttpConfig {
            base_url: "http://127.0.0.1:9".into(),
            api_key: None,
            model: "m".into(),
            dimensions,
            timeout: Duration::from_secs(1),
            batch_size: 8,
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
        })
        .unwrap()
    }

    #[test]
    fn parse_orders_by_index_validates_and_normalises() {
        let e = embedder(2);
        let body = br#"{"object":"list","data":[{"index":1,"embedding":[0,2]},{"index":0,"embedding":[3,4]}]}"#;
        assert_eq!(e.parse(body, 2).unwrap(), vec![vec![0.6, 0.8], vec![0.0, 1.0]]);
        let no_index = br#"{"data":[{"embedding":[1,0]},{"embedding":[0,1]}]}"#;
        assert_eq!(e.parse(no_index, 2).unwrap(), vec![vec![1.0, 0.0], vec![0.0, 1.0]]);

        let dup = br#"{"data":[{"index":0,"embedding":[1,0]},{"index":0,"embedding":[0,1]}]}"#;
        assert!(matches!(e.parse(dup, 2), Err(EmbedError::BadResponse(_))));
        let out_of_range = br#"{"data":[{"index":2,"embedding":[1,0]},{"index":0,"embedding":[0,1]}]}"#;
        assert!(matches!(e.parse(out_of_range, 2), Err(EmbedError::BadResponse(_))));
        let short = br#"{"data":[{"index":0,"embedding":[1,0]}]}"#;
        assert!(matches!(e.parse(short, 2), Err(EmbedError::BadResponse(_))));
        let zero = br#"{"data":[{"index":0,"embedding":[0,0]}]}"#;
        assert!(matches!(e.parse(zero, 1), Err(EmbedError::BadResponse(_))));
        let wrong_dims = br#"{"data":[{"index":0,"embedding":[1,0,0]}]}"#;
        assert!(matches!(e.parse(wrong_dims, 1), Err(EmbedError::DimensionMismatch { expected: 2, got: 3 })));
        assert!(matches!(e.parse(b"<html>", 1), Err(EmbedError::BadResponse(_))));
    }
}
