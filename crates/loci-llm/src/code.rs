//! The summary of `explain_code` by an OpenAI-compatible chat model: told
//! the symbol, its code and its direct callers and callees (never the
//! team's memories), answered as `{"summary": ".."}` under a strict schema.

use std::sync::Arc;

use async_trait::async_trait;
use loci_domain::code::{CodeExplainer, SymbolBrief};
use loci_embed::CircuitBreaker;
use loci_settings::InferSettings;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::LlmError;
use crate::chat::ChatClient;

/// Longest summary kept from a model, in characters.
const MAX_SUMMARY_CHARS: usize = 1_200;

const SUMMARY_PROMPT: &str = "You explain code to a developer who is about to change it. Given one \
symbol with its signature, documentation, code and its direct callers and callees, say in two to four \
plain sentences what it does, what it is used for and what to watch out for when changing it. Do not \
repeat the signature; do not invent behaviour the code does not show.";

fn summary_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["summary"],
        "properties": { "summary": { "type": "string" } }
    })
}

#[derive(Deserialize)]
struct Summary {
    summary: String,
}

#[derive(Debug)]
pub struct ChatCodeExplainer {
    chat: ChatClient,
}

impl ChatCodeExplainer {
    /// On the endpoint of `[infer]` (or the categoriser's).
    pub fn from_settings(
        s: &InferSettings,
        categorizer: &loci_settings::CategorizerSettings,
    ) -> Result<Self, LlmError> {
        Ok(Self { chat: ChatClient::from_infer(s, categorizer)? })
    }

    /// The endpoint's circuit breaker (its state is a metric).
    pub fn breaker(&self) -> Arc<CircuitBreaker> {
        self.chat.breaker()
    }
}

#[async_trait]
impl CodeExplainer for ChatCodeExplainer {
    fn model(&self) -> &str {
        self.chat.model()
    }

    async fn summarise(&self, brief: &SymbolBrief) -> Result<String, String> {
        let user = serde_json::to_string(brief).map_err(|e| e.to_string())?;
        let value = self.chat.complete(SUMMARY_PROMPT, &user, "code_summary", summary_schema()).await?;
        let parsed: Summary =
            serde_json::from_value(value).map_err(|e| format!("the model's summary does not match the schema: {e}"))?;
        Ok(parsed.summary.chars().filter(|c| !c.is_control() || *c == '\n').take(MAX_SUMMARY_CHARS).collect())
    }
}
