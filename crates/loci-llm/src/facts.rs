//! Fact extraction and decisions by an OpenAI-compatible chat model
//! ([`ChatClient`]: strict JSON schema, timeout, retries, circuit breaker;
//! while the breaker is open, calls fail at once and the domain's local path
//! answers).

use std::sync::Arc;

use async_trait::async_trait;
use loci_domain::infer::{FactEvent, FactModel, ModelDecision, ModelFact, ModelMessage, ModelQuestion};
use loci_embed::CircuitBreaker;
use loci_settings::InferSettings;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::LlmError;
use crate::chat::ChatClient;

#[derive(Debug)]
pub struct ChatFactModel {
    chat: ChatClient,
}

impl ChatFactModel {
    /// From `[infer]`, falling back to the categoriser's endpoint, model
    /// and key for what `[infer]` leaves unset.
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

const EXTRACT_PROMPT: &str = "You extract durable facts from a conversation for a memory store. \
Return every atomic fact worth remembering about the people, their lives, preferences, plans and work, \
and about the project (decisions, conventions, tools). One fact per item, self-contained: name the \
speaker instead of I/me/my when messages are named. Skip greetings, questions and small talk. \
`messages` lists the indexes of the messages each fact comes from.";

const DECIDE_PROMPT: &str = "You keep a memory store current. For each fact, compare it with the \
numbered memories listed under it and answer one decision, in order: ADD (new information), UPDATE \
(it replaces memory `known`, which says something about the same subject and attribute that is no \
longer true), DELETE (it says memory `known` is no longer true and adds nothing else) or NOOP \
(memory `known`, or nothing, already says it). `known` is the memory's number, or null for ADD. \
Give a short reason.";

fn extract_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["facts"],
        "properties": {
            "facts": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["text", "messages"],
                    "properties": {
                        "text": { "type": "string" },
                        "messages": { "type": "array", "items": { "type": "integer" } }
                    }
                }
            }
        }
    })
}

fn decide_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["decisions"],
        "properties": {
            "decisions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["fact", "event", "known", "reason"],
                    "properties": {
                        "fact": { "type": "integer" },
                        "event": { "type": "string", "enum": ["ADD", "UPDATE", "DELETE", "NOOP"] },
                        "known": { "type": ["integer", "null"] },
                        "reason": { "type": "string" }
                    }
                }
            }
        }
    })
}

#[derive(Deserialize)]
struct Extracted {
    facts: Vec<ExtractedFact>,
}

#[derive(Deserialize)]
struct ExtractedFact {
    text: String,
    messages: Vec<i64>,
}

#[derive(Deserialize)]
struct Decided {
    decisions: Vec<DecidedFact>,
}

#[derive(Deserialize)]
struct DecidedFact {
    fact: i64,
    event: FactEvent,
    known: Option<i64>,
    reason: String,
}

/// Longest reason kept from a model.
const MAX_REASON_CHARS: usize = 300;

#[async_trait]
impl FactModel for ChatFactModel {
    fn name(&self) -> &str {
        "llm"
    }

    async fn extract(&self, messages: &[ModelMessage]) -> Result<Vec<ModelFact>, String> {
        let listed: Vec<Value> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| json!({ "index": i, "role": m.role, "name": m.name, "content": m.content }))
            .collect();
        let user = json!({ "messages": listed }).to_string();
        let value = self.chat.complete(EXTRACT_PROMPT, &user, "facts", extract_schema()).await?;
        let parsed: Extracted =
            serde_json::from_value(value).map_err(|e| format!("the model's facts do not match the schema: {e}"))?;
        parsed
            .facts
            .into_iter()
            .map(|f| {
                let indexes = f
                    .messages
                    .into_iter()
                    .map(|i| usize::try_from(i).ok().filter(|i| *i < messages.len()))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| "the model cited a message that does not exist".to_owned())?;
                Ok(ModelFact { text: f.text, messages: indexes })
            })
            .collect()
    }

    async fn decide(&self, questions: &[ModelQuestion]) -> Result<Vec<ModelDecision>, String> {
        let listed: Vec<Value> = questions
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let known: Vec<Value> =
                    q.known.iter().enumerate().map(|(j, k)| json!({ "known": j, "memory": k })).collect();
                json!({ "fact": i, "text": q.fact, "memories": known })
            })
            .collect();
        let user = json!({ "facts": listed }).to_string();
        let value = self.chat.complete(DECIDE_PROMPT, &user, "decisions", decide_schema()).await?;
        let parsed: Decided =
            serde_json::from_value(value).map_err(|e| format!("the model's decisions do not match the schema: {e}"))?;
        let mut out: Vec<Option<ModelDecision>> = vec![None; questions.len()];
        for d in parsed.decisions {
            let i =
                usize::try_from(d.fact).ok().filter(|i| *i < questions.len()).ok_or("decision for an unknown fact")?;
            let known = match d.known {
                Some(k) => Some(
                    usize::try_from(k)
                        .ok()
                        .filter(|k| *k < questions[i].known.len())
                        .ok_or("decision names a memory that was not listed")?,
                ),
                None => None,
            };
            let reason: String = d.reason.chars().filter(|c| !c.is_control()).take(MAX_REASON_CHARS).collect();
            out[i] = Some(ModelDecision { event: d.event, known, reason });
        }
        out.into_iter().collect::<Option<Vec<_>>>().ok_or_else(|| "the model left facts undecided".to_owned())
    }
}
