//! Clients of OpenAI-compatible LLM endpoints (OpenAI, Ollama, vLLM, TEI...).
//!
//! Architecture invariant: this crate only speaks HTTP to model servers; the
//! rules of when and what to ask live in loci-domain, behind its traits.

mod chat;
mod code;
mod facts;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use loci_domain::categorize::Categorizer;
use loci_embed::{BreakerConfig, CircuitBreaker};
use loci_settings::{CategorizerSettings, Secret};
use serde_json::{Value, json};

pub use code::ChatCodeExplainer;
pub use facts::ChatFactModel;

/// Errors of LLM calls.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("no LLM url is set (infer.url or categorizer.url)")]
    NotConfigured,
    #[error("request failed: {0}")]
    Http(String),
    #[error("unexpected answer: {0}")]
    Answer(String),
}

/// Asks a chat-completions endpoint for a few category names.
#[derive(Debug, Clone)]
pub struct ChatCategorizer {
    http: reqwest::Client,
    endpoint: String,
    /// `<url>/models`, for health checks.
    models: String,
    model: String,
    api_key: Option<Secret>,
    max: usize,
    /// Shared by the clones (the health check and the auto-categoriser).
    breaker: Arc<CircuitBreaker>,
}

impl ChatCategorizer {
    /// The endpoint's circuit breaker (its state is a metric).
    pub fn breaker(&self) -> Arc<CircuitBreaker> {
        Arc::clone(&self.breaker)
    }

    pub fn from_settings(s: &CategorizerSettings) -> Result<Self, LlmError> {
        let base = s.url.as_deref().ok_or(LlmError::NotConfigured)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(s.timeout_ms))
            .build()
            .map_err(|e| LlmError::Http(e.to_string()))?;
        Ok(Self {
            http,
            endpoint: format!("{}/chat/completions", base.trim_end_matches('/')),
            models: format!("{}/models", base.trim_end_matches('/')),
            model: s.model.clone(),
            api_key: s.api_key.clone(),
            max: s.max_categories,
            breaker: Arc::new(CircuitBreaker::new(BreakerConfig::default())),
        })
    }

    /// Whether the endpoint answers: `GET <url>/models` (listed by every
    /// OpenAI-compatible server) with a 2xx.
    pub async fn ping(&self) -> Result<(), LlmError> {
        let mut req = self.http.get(&self.models);
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key.expose());
        }
        let res = req.send().await.map_err(|e| LlmError::Http(e.without_url().to_string()))?;
        if res.status().is_success() { Ok(()) } else { Err(LlmError::Http(format!("HTTP {}", res.status()))) }
    }

    async fn ask(&self, text: &str) -> Result<Vec<String>, LlmError> {
        let body = json!({
            "model": self.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": format!(
                    "You file notes of a software team under categories. Reply with only a JSON array of at most {} \
                     short lowercase category names (one or two words each), nothing else.", self.max)},
                {"role": "user", "content": text},
            ],
        });
        let mut req = self.http.post(&self.endpoint).json(&body);
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key.expose());
        }
        let permit = self.breaker.acquire().map_err(|refusal| LlmError::Http(format!("llm {refusal}")))?;
        let res = match req.send().await {
            Ok(res) if res.status().is_server_error() => {
                permit.failure();
                return Err(LlmError::Http(format!("HTTP {}", res.status())));
            }
            Ok(res) => {
                permit.success();
                res
            }
            Err(e) => {
                permit.failure();
                return Err(LlmError::Http(e.without_url().to_string()));
            }
        };
        if !res.status().is_success() {
            return Err(LlmError::Http(format!("HTTP {}", res.status())));
        }
        let answer: Value = res.json().await.map_err(|e| LlmError::Answer(e.to_string()))?;
        let content = answer["choices"][0]["message"]["content"]
            .as_str()
            .ok_or_else(|| LlmError::Answer("no choices[0].message.content".into()))?;
        Ok(parse_categories(content, self.max))
    }
}

/// The category names in a model's answer: a JSON array, possibly inside a
/// code fence or surrounded by prose; cleaned, lower-cased, deduplicated.
pub fn parse_categories(content: &str, max: usize) -> Vec<String> {
    let start = content.find('[');
    let end = content.rfind(']');
    let names: Vec<String> = match (start, end) {
        (Some(s), Some(e)) if s < e => serde_json::from_str::<Vec<Value>>(&content[s..=e])
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let mut out: Vec<String> = Vec::new();
    for name in names {
        let clean: String = name.trim().to_lowercase().chars().filter(|c| !c.is_control()).take(64).collect();
        if !clean.is_empty() && !out.contains(&clean) {
            out.push(clean);
        }
        if out.len() >= max {
            break;
        }
    }
    out
}

#[async_trait]
impl Categorizer for ChatCategorizer {
    async fn categorize(&self, text: &str) -> Result<Vec<String>, String> {
        self.ask(text).await.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_parsed_leniently_and_cleaned() {
        assert_eq!(parse_categories(r#"["Ops", "deploy", "ops"]"#, 3), ["ops", "deploy"]);
        assert_eq!(parse_categories("```json\n[\"a\", \"b\", \"c\", \"d\"]\n```", 2), ["a", "b"]);
        assert_eq!(parse_categories("Sure! Categories: [\"infra\"]", 3), ["infra"]);
        assert!(parse_categories("no idea", 3).is_empty());
        assert!(parse_categories("[1, 2]", 3).is_empty());
    }
}
