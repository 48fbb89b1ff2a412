//! Rerankers: a second stage that scores (query, document) pairs together,
//! behind one trait: an HTTP rerank endpoint (Cohere-compatible or TEI) and
//! a local BERT cross-encoder (see `rerank_local`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use loci_settings::{RerankApi, RerankerProvider, RerankerSettings, Secret};
use serde::Deserialize;
use serde_json::json;

use crate::breaker::{BreakerConfig, CircuitBreaker};
use crate::http::{JsonPoster, RetryPolicy};
use crate::{EmbedError, LocalReranker};

/// Scores documents against a query: one score per document, in input
/// order, higher is more relevant. Scores compare within one call only.
#[async_trait]
pub trait Reranker: Send + Sync + std::fmt::Debug {
    /// The model name (for health and search metadata).
    fn model(&self) -> &str;

    /// One relevance score per document, in the order of `documents`. An
    /// empty `documents` gives an empty result.
    async fn score(&self, query: &str, documents: &[String]) -> Result<Vec<f32>, EmbedError>;

    /// The circuit breaker guarding a remote model; none for a local one.
    fn breaker(&self) -> Option<Arc<CircuitBreaker>> {
        None
    }
}

/// Builds the reranker of the `[reranker]` settings (`Ok(None)` for
/// `provider = "none"`). A local model is loaded now (tens of MB).
pub fn reranker_from_settings(settings: &RerankerSettings) -> Result<Option<Arc<dyn Reranker>>, EmbedError> {
    match settings.provider {
        RerankerProvider::None => Ok(None),
        RerankerProvider::Local => {
            let dir = settings
                .model_dir
                .as_deref()
                .ok_or_else(|| EmbedError::Config("reranker.model_dir is required for provider \"local\"".into()))?;
            let mut model = LocalReranker::load(dir, settings.batch_size)?;
            if let Some(name) = &settings.model {
                model = model.with_model_name(name.clone());
            }
            Ok(Some(Arc::new(model)))
        }
        RerankerProvider::Http => {
            let url = settings
                .url
                .as_deref()
                .ok_or_else(|| EmbedError::Config("reranker.url is required for provider \"http\"".into()))?;
            Ok(Some(Arc::new(HttpReranker::new(
                url,
                settings.api,
                settings.model.clone().unwrap_or_default(),
                settings.api_key.clone(),
                Duration::from_millis(settings.timeout_ms),
            )?)))
        }
    }
}

/// A rerank endpoint over HTTP, with the embedder's retries and circuit
/// breaker. Every document must come back with a finite score exactly once.
#[derive(Debug)]
pub struct HttpReranker {
    client: JsonPoster,
    api: RerankApi,
    model: String,
}

/// The rerank URL of a base URL: Cohere-style `{base}/v1/rerank` (or
/// `{base}/rerank` when the base ends with `/v1`), TEI `{base}/rerank`; a
/// URL already ending with `/rerank` is kept.
pub fn rerank_endpoint(base_url: &str, api: RerankApi) -> Result<String, EmbedError> {
    let parsed = reqwest::Url::parse(base_url.trim())
        .map_err(|e| EmbedError::Config(format!("reranker URL is not a valid URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(EmbedError::Config("reranker URL must be http or https".into()));
    }
    let base = base_url.trim().trim_end_matches('/');
    Ok(if base.ends_with("/rerank") {
        base.to_owned()
    } else if api == RerankApi::Tei || base.ends_with("/v1") {
        format!("{base}/rerank")
    } else {
        format!("{base}/v1/rerank")
    })
}

#[derive(Deserialize)]
struct CohereResponse {
    results: Vec<CohereItem>,
}

#[derive(Deserialize)]
struct CohereItem {
    index: usize,
    relevance_score: f32,
}

#[derive(Deserialize)]
struct TeiItem {
    index: usize,
    score: f32,
}

impl HttpReranker {
    pub fn new(
        base_url: &str,
        api: RerankApi,
        model: String,
        api_key: Option<Secret>,
        timeout: Duration,
    ) -> Result<Self, EmbedError> {
        let endpoint = rerank_endpoint(base_url, api)?;
        let client =
            JsonPoster::new(endpoint, api_key, timeout, RetryPolicy::default(), BreakerConfig::default(), "rerank")?;
        Ok(Self { client, api, model })
    }

    /// With another retry policy (tests use none, to see each failure).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.client.set_retry(retry);
        self
    }

    /// The full URL requests go to.
    pub fn endpoint(&self) -> &str {
        &self.client.endpoint
    }

    fn body(&self, query: &str, documents: &[String]) -> serde_json::Value {
        match self.api {
            RerankApi::Cohere => {
                let mut body = json!({ "query": query, "documents": documents, "top_n": documents.len() });
                if !self.model.is_empty() {
                    body["model"] = json!(self.model);
                }
                body
            }
            RerankApi::Tei => json!({ "query": query, "texts": documents, "raw_scores": false }),
        }
    }

    fn parse(&self, bytes: &[u8], expected: usize) -> Result<Vec<f32>, EmbedError> {
        let pairs: Vec<(usize, f32)> = match self.api {
            RerankApi::Cohere => serde_json::from_slice::<CohereResponse>(bytes)
                .map_err(|e| EmbedError::BadResponse(format!("not a rerank answer: {e}")))?
                .results
                .into_iter()
                .map(|r| (r.index, r.relevance_score))
                .collect(),
            RerankApi::Tei => serde_json::from_slice::<Vec<TeiItem>>(bytes)
                .map_err(|e| EmbedError::BadResponse(format!("not a rerank answer: {e}")))?
                .into_iter()
                .map(|r| (r.index, r.score))
                .collect(),
        };
        let mut scores: Vec<Option<f32>> = vec![None; expected];
        for (index, score) in pairs {
            let slot = scores.get_mut(index).ok_or_else(|| {
                EmbedError::BadResponse(format!("index {index} out of range for {expected} documents"))
            })?;
            if slot.is_some() {
                return Err(EmbedError::BadResponse(format!("index {index} appears twice")));
            }
            if !score.is_finite() {
                return Err(EmbedError::BadResponse(format!("score of document {index} is not finite")));
            }
            *slot = Some(score);
        }
        scores
            .into_iter()
            .enumerate()
            .map(|(i, s)| s.ok_or_else(|| EmbedError::BadResponse(format!("no score for document {i}"))))
            .collect()
    }
}

#[async_trait]
impl Reranker for HttpReranker {
    fn model(&self) -> &str {
        if self.model.is_empty() { "http" } else { &self.model }
    }

    async fn score(&self, query: &str, documents: &[String]) -> Result<Vec<f32>, EmbedError> {
        if documents.is_empty() {
            return Ok(Vec::new());
        }
        if query.trim().is_empty() {
            return Err(EmbedError::InvalidInput("the query is empty".into()));
        }
        let bytes = self.client.post(&self.body(query, documents)).await?;
        self.parse(&bytes, documents.len())
    }

    fn breaker(&self) -> Option<Arc<CircuitBreaker>> {
        Some(Arc::clone(&self.client.breaker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reranker(api: RerankApi) -> HttpReranker {
        HttpReranker::new("http://127.0.0.1:9", api, "rr".into(), None, Duration::from_secs(1)).expect("builds")
    }

    #[test]
    fn endpoints_per_api() {
        for (base, api, want) in [
            ("http://h:8080", RerankApi::Cohere, "http://h:8080/v1/rerank"),
            ("https://api.cohere.com/v1/", RerankApi::Cohere, "https://api.cohere.com/v1/rerank"),
            ("http://h/v1/rerank", RerankApi::Cohere, "http://h/v1/rerank"),
            ("http://tei:8080", RerankApi::Tei, "http://tei:8080/rerank"),
            ("http://tei:8080/rerank", RerankApi::Tei, "http://tei:8080/rerank"),
        ] {
            assert_eq!(rerank_endpoint(base, api).expect("valid"), want, "{base}");
        }
        assert!(matches!(rerank_endpoint("ftp://h", RerankApi::Cohere), Err(EmbedError::Config(_))));
        assert!(matches!(rerank_endpoint("h:80", RerankApi::Tei), Err(EmbedError::Config(_))));
    }

    #[test]
    fn request_bodies_follow_each_api() {
        let docs = vec!["a".to_owned(), "b".to_owned()];
        let cohere = reranker(RerankApi::Cohere).body("q", &docs);
        assert_eq!(cohere, json!({"model": "rr", "query": "q", "documents": ["a", "b"], "top_n": 2}));
        let tei = reranker(RerankApi::Tei).body("q", &docs);
        assert_eq!(tei, json!({"query": "q", "texts": ["a", "b"], "raw_scores": false}));
    }

    #[test]
    fn answers_are_put_back_in_input_order_and_checked() {
        let cohere = reranker(RerankApi::Cohere);
        let body = br#"{"id":"x","results":[{"index":1,"relevance_score":0.9},{"index":0,"relevance_score":0.1}]}"#;
        assert_eq!(cohere.parse(body, 2).expect("parses"), vec![0.1, 0.9]);
        let missing = br#"{"results":[{"index":1,"relevance_score":0.9}]}"#;
        assert!(matches!(cohere.parse(missing, 2), Err(EmbedError::BadResponse(m)) if m.contains("document 0")));
        let twice = br#"{"results":[{"index":0,"relevance_score":0.9},{"index":0,"relevance_score":0.2}]}"#;
        assert!(matches!(cohere.parse(twice, 2), Err(EmbedError::BadResponse(_))));
        let out = br#"{"results":[{"index":5,"relevance_score":0.9}]}"#;
        assert!(matches!(cohere.parse(out, 1), Err(EmbedError::BadResponse(_))));
        assert!(matches!(cohere.parse(b"[]", 1), Err(EmbedError::BadResponse(_))));

        let tei = reranker(RerankApi::Tei);
        assert_eq!(
            tei.parse(br#"[{"index":1,"score":2.5},{"index":0,"score":-1}]"#, 2).expect("parses"),
            vec![-1.0, 2.5]
        );
        assert!(matches!(tei.parse(br#"{"results":[]}"#, 1), Err(EmbedError::BadResponse(_))));
    }
}
