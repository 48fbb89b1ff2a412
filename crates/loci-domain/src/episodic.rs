//! Episodic (session) memory for callers: an agent's short-term items of one
//! session, kept for `episodic.ttl_secs`, read most recent first, and
//! promoted to a long-term memory through the normal create path (history,
//! outbox, indexes). A session belongs to the caller: its key is the
//! caller's org and user plus the session id, so another user's session of
//! the same name reads as empty. REST and MCP both call this.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use loci_core::MemoryId;
use loci_security::Principal;
use loci_stores::episodic::{DECAY_FACTOR, EpisodicItem, EpisodicStore, SessionKey, decay, mark_summarised};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::memories::{MemoryService, MemoryView};
use crate::validation::{CreateMemoryInput, Limits, MetadataInput, content};
use crate::{DomainError, FieldViolation};

/// Longest session id.
pub const MAX_SESSION_ID_CHARS: usize = 128;
/// Longest role.
pub const MAX_ROLE_CHARS: usize = 32;
/// Most items one listing returns.
pub const MAX_LIST_LIMIT: usize = 1_000;
/// Most ids one "mark summarised" call takes.
pub const MAX_IDS: usize = 1_000;

/// An item to add to a session.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddEpisodicInput {
    pub content: String,
    /// Who said it: `user`, `assistant`, `system`, `tool` or another word
    /// of `a-z` and `_` (at most 32).
    pub role: Option<String>,
    /// Any JSON object (at most the metadata size limit).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

/// A session item as returned.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EpisodicItemView {
    pub id: Uuid,
    pub session_id: String,
    pub content: String,
    pub role: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// 1.0 when added, times 0.9 per decay.
    pub recency: f64,
    pub summarised: bool,
    pub promoted_to: Option<MemoryId>,
}

/// A session's items.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EpisodicList {
    pub session_id: String,
    pub items: Vec<EpisodicItemView>,
    /// Where the session lives: `valkey` or `in-process`.
    pub backend: String,
}

/// Query of a listing.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EpisodicListQuery {
    /// 1 to 1000 (default 50).
    pub limit: Option<i64>,
    /// Include summarised items (default false).
    pub include_summarised: Option<bool>,
}

/// Items to mark summarised.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SummarisedInput {
    pub ids: Vec<Uuid>,
}

/// How many items a session call changed.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EpisodicCount {
    pub session_id: String,
    pub count: u64,
}

/// How to promote an item: the new memory's app and metadata, as on create.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteInput {
    pub app: Option<String>,
    #[serde(default)]
    pub metadata: MetadataInput,
}

/// The memory an item became.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PromotedView {
    pub item: EpisodicItemView,
    pub memory: MemoryView,
}

/// Episodic memory for callers (see the module docs).
#[derive(Clone)]
pub struct EpisodicService {
    store: Arc<dyn EpisodicStore>,
    memories: MemoryService,
    limits: Limits,
    ttl: Duration,
    max_items: usize,
}

impl std::fmt::Debug for EpisodicService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpisodicService")
            .field("backend", &self.store.backend())
            .field("ttl", &self.ttl)
            .field("max_items", &self.max_items)
            .finish_non_exhaustive()
    }
}

fn view(session: &str, item: EpisodicItem) -> EpisodicItemView {
    EpisodicItemView {
        id: item.id,
        session_id: session.to_owned(),
        content: item.content,
        role: item.role,
        metadata: item.metadata,
        created_at: item.created_at,
        recency: item.recency,
        summarised: item.summarised,
        promoted_to: item.promoted_to,
    }
}

/// A session id: 1 to 128 of `A-Z a-z 0-9 . _ -`.
fn session_id(raw: &str, out: &mut Vec<FieldViolation>) -> Option<String> {
    let ok = !raw.is_empty()
        && raw.chars().count() <= MAX_SESSION_ID_CHARS
        && raw.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Some(raw.to_owned())
    } else {
        out.push(FieldViolation::new(
            "session_id",
            format!("must be 1 to {MAX_SESSION_ID_CHARS} characters of A-Z, a-z, 0-9, '.', '_' and '-'"),
        ));
        None
    }
}

fn role(raw: Option<&str>, out: &mut Vec<FieldViolation>) -> Option<Option<String>> {
    match raw {
        None => Some(None),
        Some(r)
            if !r.is_empty() && r.len() <= MAX_ROLE_CHARS && r.chars().all(|c| c.is_ascii_lowercase() || c == '_') =>
        {
            Some(Some(r.to_owned()))
        }
        Some(_) => {
            out.push(FieldViolation::new("role", format!("must be 1 to {MAX_ROLE_CHARS} characters of a-z and '_'")));
            None
        }
    }
}

fn metadata(
    raw: Option<serde_json::Value>,
    limits: &Limits,
    out: &mut Vec<FieldViolation>,
) -> Option<serde_json::Value> {
    match raw {
        None | Some(serde_json::Value::Null) => Some(serde_json::json!({})),
        Some(value @ serde_json::Value::Object(_)) => {
            if value.to_string().len() > limits.max_metadata_bytes {
                out.push(FieldViolation::new(
                    "metadata",
                    format!("must be at most {} bytes as JSON", limits.max_metadata_bytes),
                ));
                None
            } else {
                Some(value)
            }
        }
        Some(_) => {
            out.push(FieldViolation::new("metadata", "must be a JSON object"));
            None
        }
    }
}

impl EpisodicService {
    pub fn new(
        store: Arc<dyn EpisodicStore>,
        memories: MemoryService,
        limits: Limits,
        ttl: Duration,
        max_items: usize,
    ) -> Self {
        Self { store, memories, limits, ttl, max_items }
    }

    /// Where sessions live: `valkey` or `in-process`.
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    async fn key(&self, p: &Principal, session: &str) -> Result<SessionKey, DomainError> {
        let mut errors = Vec::new();
        let Some(session) = session_id(session, &mut errors) else {
            return Err(DomainError::Validation(errors));
        };
        let user = self.memories.visibility(p).await?.user_id;
        Ok(SessionKey { org: p.org_id.clone(), user, session })
    }

    pub async fn add(
        &self,
        p: &Principal,
        session: &str,
        input: AddEpisodicInput,
    ) -> Result<EpisodicItemView, DomainError> {
        let mut errors = Vec::new();
        let session_ok = session_id(session, &mut errors);
        let text = content("content", &input.content, &self.limits, &mut errors);
        let role = role(input.role.as_deref(), &mut errors);
        let metadata = metadata(input.metadata, &self.limits, &mut errors);
        let (Some(_), Some(text), Some(role), Some(metadata)) = (session_ok, text, role, metadata) else {
            return Err(DomainError::Validation(errors));
        };
        let key = self.key(p, session).await?;
        let item = EpisodicItem {
            id: Uuid::now_v7(),
            content: text,
            role,
            metadata,
            created_at: loci_core::model::now(),
            recency: 1.0,
            summarised: false,
            promoted_to: None,
        };
        self.store.add(&key, &item, self.ttl, self.max_items).await?;
        Ok(view(&key.session, item))
    }

    pub async fn get(&self, p: &Principal, session: &str, id: Uuid) -> Result<EpisodicItemView, DomainError> {
        let key = self.key(p, session).await?;
        let item = self.store.get(&key, id).await?.ok_or(DomainError::NotFound("session item"))?;
        Ok(view(&key.session, item))
    }

    pub async fn list(&self, p: &Principal, session: &str, q: &EpisodicListQuery) -> Result<EpisodicList, DomainError> {
        let limit = match q.limit {
            None => 50,
            Some(n) if (1..=MAX_LIST_LIMIT as i64).contains(&n) => n as usize,
            Some(_) => {
                return Err(DomainError::Validation(vec![FieldViolation::new(
                    "limit",
                    format!("must be 1 to {MAX_LIST_LIMIT}"),
                )]));
            }
        };
        let key = self.key(p, session).await?;
        let items = self.store.list(&key, q.include_summarised.unwrap_or(false), limit).await?;
        Ok(EpisodicList {
            session_id: key.session.clone(),
            items: items.into_iter().map(|i| view(&key.session, i)).collect(),
            backend: self.store.backend().to_owned(),
        })
    }

    /// Multiplies every live item's recency by 0.9, keeping its TTL.
    pub async fn decay(&self, p: &Principal, session: &str) -> Result<EpisodicCount, DomainError> {
        let key = self.key(p, session).await?;
        let count = decay(self.store.as_ref(), &key, DECAY_FACTOR).await?;
        Ok(EpisodicCount { session_id: key.session, count })
    }

    pub async fn mark_summarised(
        &self,
        p: &Principal,
        session: &str,
        input: &SummarisedInput,
    ) -> Result<EpisodicCount, DomainError> {
        if input.ids.is_empty() || input.ids.len() > MAX_IDS {
            return Err(DomainError::Validation(vec![FieldViolation::new(
                "ids",
                format!("must hold 1 to {MAX_IDS} item ids"),
            )]));
        }
        let key = self.key(p, session).await?;
        let count = mark_summarised(self.store.as_ref(), &key, &input.ids).await?;
        Ok(EpisodicCount { session_id: key.session, count })
    }

    pub async fn delete(&self, p: &Principal, session: &str, id: Uuid) -> Result<(), DomainError> {
        let key = self.key(p, session).await?;
        if self.store.delete(&key, id).await? { Ok(()) } else { Err(DomainError::NotFound("session item")) }
    }

    /// Deletes every item of the session.
    pub async fn expire(&self, p: &Principal, session: &str) -> Result<EpisodicCount, DomainError> {
        let key = self.key(p, session).await?;
        let count = self.store.expire_session(&key).await?;
        Ok(EpisodicCount { session_id: key.session, count })
    }

    /// Stores the item's content as a long-term memory of the caller (the
    /// create path: validation, history, outbox, indexes) and marks the item
    /// promoted and summarised. Promoting it again creates nothing and
    /// answers the memory it became.
    pub async fn promote(
        &self,
        p: &Principal,
        session: &str,
        id: Uuid,
        input: PromoteInput,
    ) -> Result<PromotedView, DomainError> {
        let key = self.key(p, session).await?;
        let mut item = self.store.get(&key, id).await?.ok_or(DomainError::NotFound("session item"))?;
        if let Some(done) = item.promoted_to {
            let memory = self.memories.get(p, done).await?;
            return Ok(PromotedView { item: view(&key.session, item), memory });
        }
        let memory = self
            .memories
            .create(
                p,
                CreateMemoryInput {
                    text: item.content.clone(),
                    app: input.app,
                    metadata: input.metadata,
                    ..CreateMemoryInput::default()
                },
            )
            .await?;
        item.promoted_to = Some(memory.memory.id);
        item.summarised = true;
        // The item may have expired meanwhile: the memory stands either way.
        self.store.replace(&key, &item).await?;
        Ok(PromotedView { item: view(&key.session, item), memory })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_roles_and_metadata_are_checked() {
        let mut errors = Vec::new();
        assert_eq!(session_id("chat-2026.12_07", &mut errors), Some("chat-2026.12_07".into()));
        for bad in ["", "a b", "a:b", "é", &"x".repeat(129)] {
            assert!(session_id(bad, &mut errors).is_none(), "{bad}");
        }
        assert_eq!(errors.len(), 5);
        assert_eq!(errors[0].field, "session_id");
        let mut errors = Vec::new();
        assert_eq!(role(Some("assistant"), &mut errors), Some(Some("assistant".into())));
        assert_eq!(role(None, &mut errors), Some(None));
        assert!(role(Some("Admin!"), &mut errors).is_none());
        assert_eq!(errors.len(), 1);
        let limits = Limits { max_metadata_bytes: 20, ..Limits::default() };
        let mut errors = Vec::new();
        assert_eq!(metadata(None, &limits, &mut errors), Some(serde_json::json!({})));
        assert!(metadata(Some(serde_json::json!([1])), &limits, &mut errors).is_none());
        assert!(metadata(Some(serde_json::json!({"k": "a long value here"})), &limits, &mut errors).is_none());
        assert_eq!(errors.len(), 2);
    }
}
