//! One OpenAI-compatible chat-completions client for the structured calls
//! (facts, decisions, code summaries): a strict JSON schema
//! (`response_format: json_schema`), a timeout per call, retries of
//! transient failures (transport errors, timeouts, 429 and 5xx, malformed
//! answers) and a circuit breaker.

use std::sync::Arc;
use std::time::Duration;

use loci_embed::{BreakerConfig, CircuitBreaker, Refusal};
use loci_settings::{InferSettings, Secret};
use serde_json::{Value, json};

use crate::LlmError;

/// Waits between attempts: 200 ms, 400 ms, 800 ms...
const BACKOFF_BASE: Duration = Duration::from_millis(200);

#[derive(Debug)]
pub(crate) struct ChatClient {
    http: reqwest::Client,
    endpoint: String,
    model: String,
    api_key: Option<Secret>,
    retries: u32,
    breaker: Arc<CircuitBreaker>,
}

impl ChatClient {
    /// From `[infer]`, falling back to the categoriser's endpoint, model
    /// and key for what `[infer]` leaves unset.
    pub(crate) fn from_infer(
        s: &InferSettings,
        categorizer: &loci_settings::CategorizerSettings,
    ) -> Result<Self, LlmError> {
        let base = s.url.as_deref().or(categorizer.url.as_deref()).ok_or(LlmError::NotConfigured)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(s.timeout_ms))
            .build()
            .map_err(|e| LlmError::Http(e.to_string()))?;
        Ok(Self {
            http,
            endpoint: format!("{}/chat/completions", base.trim_end_matches('/')),
            model: s.model.clone().unwrap_or_else(|| categorizer.model.clone()),
            api_key: s.api_key.clone().or_else(|| categorizer.api_key.clone()),
            retries: s.retries,
            breaker: Arc::new(CircuitBreaker::new(BreakerConfig {
                failure_threshold: s.breaker_failures,
                cool_down: Duration::from_secs(s.breaker_cool_down_secs),
            })),
        })
    }

    /// The endpoint's circuit breaker (its state is a metric).
    pub(crate) fn breaker(&self) -> Arc<CircuitBreaker> {
        Arc::clone(&self.breaker)
    }

    /// The model asked.
    pub(crate) fn model(&self) -> &str {
        &self.model
    }

    /// One chat completion constrained to `schema`, parsed; retried.
    pub(crate) async fn complete(&self, system: &str, user: &str, name: &str, schema: Value) -> Result<Value, String> {
        let body = json!({
            "model": self.model,
            "temperature": 0,
            "messages": [
                { "role": "system", "content": system },
                { "role": "user", "content": user },
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": { "name": name, "strict": true, "schema": schema },
            },
        });
        let mut last = String::new();
        for attempt in 0..=self.retries {
            if attempt > 0 {
                tokio::time::sleep(BACKOFF_BASE * 2u32.saturating_pow(attempt - 1)).await;
            }
            let permit = match self.breaker.acquire() {
                Ok(p) => p,
                Err(Refusal::Open(left)) => {
                    return Err(format!("llm circuit breaker open for {} s more", left.as_secs() + 1));
                }
                Err(Refusal::TrialInFlight) => return Err("llm circuit breaker half-open, trial in flight".into()),
            };
            match self.send(&body).await {
                Ok(value) => {
                    permit.success();
                    return Ok(value);
                }
                Err(Attempt::Transient(why)) => {
                    permit.failure();
                    last = why;
                }
                Err(Attempt::Permanent(why)) => {
                    // The endpoint is up (it answered); the request is what failed.
                    permit.success();
                    return Err(why);
                }
            }
        }
        Err(format!("llm failed after {} attempts: {last}", self.retries + 1))
    }

    async fn send(&self, body: &Value) -> Result<Value, Attempt> {
        let mut req = self.http.post(&self.endpoint).json(body);
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key.expose());
        }
        let res = req.send().await.map_err(|e| {
            Attempt::Transient(if e.is_timeout() { "timed out".into() } else { e.without_url().to_string() })
        })?;
        let status = res.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(Attempt::Transient(format!("HTTP {status}")));
        }
        if !status.is_success() {
            return Err(Attempt::Permanent(format!("HTTP {status}")));
        }
        let answer: Value = res.json().await.map_err(|e| Attempt::Transient(format!("unreadable answer: {e}")))?;
        let content = answer["choices"][0]["message"]["content"]
            .as_str()
            .ok_or_else(|| Attempt::Transient("no choices[0].message.content".into()))?;
        serde_json::from_str(content).map_err(|e| Attempt::Transient(format!("malformed JSON from the model: {e}")))
    }
}

/// How one attempt failed.
#[derive(Debug)]
enum Attempt {
    /// Worth another attempt (and counted by the breaker).
    Transient(String),
    /// Not worth repeating (a 4xx: the request is refused).
    Permanent(String),
}
