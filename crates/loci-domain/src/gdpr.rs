//! GDPR: the subject access export and the erasure of one user across every
//! store, each audited before and after in `gdpr_audit_logs` (rows that
//! survive the user).
//!
//! **Export** streams one JSON document `{format_version, org_id, user_id,
//! subject, export_date, relational {table: [rows]}, vector, lexical, graph,
//! episodic, partial, errors}`: the relational rows page by page (every
//! state, history, access logs, jobs, feedback, assignments, audit rows),
//! which memories the vector index holds (dimensions, never the vector),
//! the lexical documents, the graph entities, mentions and relations
//! derived from the user's memories (on any graph engine), and the episodic
//! sessions. A store that
//! fails is named in `errors` and `partial` is true; the rest is still
//! written.
//!
//! **Erasure** deletes the relational rows first (one transaction: the
//! memories and their outbox rows go together, so the indexer cannot bring a
//! document back), then the memories' documents from every index (then
//! flushed and expunged, so no index file keeps them), the episodic items
//! and the MCP sessions of the subject. Each store reports its status and
//! count; a failing store does not stop the others. What a failed store
//! still holds (the memory ids it must drop) is kept in the audit row's
//! `pending`, which the next call for the same subject finishes: the call is
//! idempotent and retryable until it reports `completed`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use loci_core::model::Visibility;
use loci_core::{MemoryId, OrgId, UserId, mask};
use loci_index::analytics::MAX_GRAPH_MENTIONS;
use loci_index::{GraphApi, SearchFilter};
use loci_security::{Principal, SessionStore};
use loci_stores::Database;
use loci_stores::episodic::EpisodicStore;
use loci_stores::repo::gdpr::{self as store, AuditRow, SubjectRows};
use loci_stores::repo::users;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::indexer::{GRAPH, Indexes, LEXICAL, VECTOR};
use crate::memories::MemoryService;
use crate::{DomainError, FieldViolation, Provisioner};

/// Version of the export document.
pub const EXPORT_FORMAT_VERSION: u32 = 1;
/// Bounds of an erasure's reason, in characters.
pub const REASON_MIN_CHARS: usize = 10;
pub const REASON_MAX_CHARS: usize = 500;
/// Rows per page of the export.
const PAGE: u64 = 1000;
/// Ids per index delete.
const DELETE_CHUNK: usize = 1000;
/// Relation statements read per entity (engine graphs).
const MAX_RELATIONS: usize = 10_000;
/// The stores an erasure reaches besides the relational one.
pub const EPISODIC: &str = "episodic";
pub const SESSIONS: &str = "sessions";
pub const RELATIONAL: &str = "relational";

/// Whose data: the caller's, or (an administrator's request, checked by
/// the route) a named subject of the caller's org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Caller,
    Named(String),
}

/// Subjects are the identity provider's `sub`: 1 to 256 characters, not
/// blank, no control characters.
pub const MAX_SUBJECT_CHARS: usize = 256;

impl Subject {
    /// Whose data a request names: none or the caller's own subject is the
    /// caller; another is checked (the transport checks the extra scope).
    pub fn named(name: Option<String>, p: &Principal) -> Result<Self, DomainError> {
        match name {
            None => Ok(Self::Caller),
            Some(s) if s == p.subject => Ok(Self::Caller),
            Some(s) => {
                let n = s.chars().count();
                if n == 0 || n > MAX_SUBJECT_CHARS || crate::rules::is_blank(&s) || s.chars().any(char::is_control) {
                    return Err(DomainError::Validation(vec![FieldViolation::new(
                        "subject",
                        format!("1 to {MAX_SUBJECT_CHARS} characters, not blank, without control characters"),
                    )]));
                }
                Ok(Self::Named(s))
            }
        }
    }
}

/// Where an export is written, piece by piece.
#[async_trait]
pub trait ExportSink: Send {
    /// Fails when the reader went away; the export then stops.
    async fn write(&mut self, bytes: Vec<u8>) -> Result<(), DomainError>;
}

#[async_trait]
impl ExportSink for Vec<u8> {
    async fn write(&mut self, bytes: Vec<u8>) -> Result<(), DomainError> {
        self.extend_from_slice(&bytes);
        Ok(())
    }
}

/// A store's part of an erasure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StoreOutcome {
    /// `completed` or `failed`.
    pub status: String,
    /// What was removed: rows (relational), documents (indexes), items
    /// (episodic), sessions.
    pub count: u64,
    /// Per table (relational): rows deleted.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tables: BTreeMap<String, u64>,
    /// Per table (relational): others' rows that named the user and now
    /// name nobody.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub pseudonymised: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StoreOutcome {
    fn done(count: u64) -> Self {
        Self { status: "completed".into(), count, tables: BTreeMap::new(), pseudonymised: BTreeMap::new(), error: None }
    }

    fn failed(error: impl std::fmt::Display) -> Self {
        Self { status: "failed".into(), error: Some(error.to_string()), ..Self::done(0) }
    }

    fn ok(&self) -> bool {
        self.status == "completed"
    }
}

/// The answer to an erasure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ErasureReport {
    /// The audit row of this call.
    pub audit_id: Uuid,
    /// `completed` (every store), `partial` (some failed: call again) or
    /// `failed` (none succeeded).
    pub status: String,
    /// Everything the call removed, over every store.
    pub total: u64,
    pub stores: BTreeMap<String, StoreOutcome>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

/// One audit row, as the audit route shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditView {
    pub id: Uuid,
    /// `export` or `erase`.
    pub operation: String,
    /// `started`, `completed`, `partial` or `failed`.
    pub status: String,
    pub subject_user_id: Option<UserId>,
    /// SHA-256 of the org and subject (the subject itself is not kept).
    pub subject_hash: String,
    pub actor_user_id: Option<UserId>,
    pub reason: Option<String>,
    #[schema(value_type = Object)]
    pub stores: Option<Value>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<AuditRow> for AuditView {
    fn from(r: AuditRow) -> Self {
        Self {
            id: r.id,
            operation: r.operation,
            status: r.status,
            subject_user_id: r.subject_user_id,
            subject_hash: r.subject_hash,
            actor_user_id: r.actor_user_id,
            reason: r.reason,
            stores: r.stores,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
    }
}

/// The subject's pseudonym in audit rows: SHA-256 of org and subject.
pub fn subject_hash(org: &OrgId, subject: &str) -> String {
    let mut h = Sha256::new();
    h.update(org.as_str().as_bytes());
    h.update([0u8]);
    h.update(subject.as_bytes());
    format!("{:x}", h.finalize())
}

/// Checks an erasure's reason: 10 to 500 characters, not blank.
pub fn check_reason(reason: &str) -> Result<(), DomainError> {
    let n = reason.chars().count();
    if !(REASON_MIN_CHARS..=REASON_MAX_CHARS).contains(&n)
        || crate::rules::is_blank(reason)
        || reason.chars().any(char::is_control)
    {
        return Err(DomainError::Validation(vec![FieldViolation::new(
            "reason",
            format!("{REASON_MIN_CHARS} to {REASON_MAX_CHARS} characters, not blank, without control characters"),
        )]));
    }
    Ok(())
}

#[derive(Clone)]
pub struct GdprService {
    db: Database,
    indexes: Indexes,
    episodic: Arc<dyn EpisodicStore>,
    sessions: Arc<dyn SessionStore>,
    provisioner: Provisioner,
    memories: MemoryService,
    graph_api: Option<Arc<dyn GraphApi>>,
}

impl std::fmt::Debug for GdprService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GdprService").field("episodic", &self.episodic.backend()).finish_non_exhaustive()
    }
}

/// The subject a call is about, resolved.
struct Target {
    org: OrgId,
    subject: String,
    hash: String,
    user: Option<UserId>,
    actor: Option<UserId>,
}

impl GdprService {
    pub fn new(
        db: Database,
        indexes: Indexes,
        episodic: Arc<dyn EpisodicStore>,
        sessions: Arc<dyn SessionStore>,
        provisioner: Provisioner,
        memories: MemoryService,
    ) -> Self {
        Self { db, indexes, episodic, sessions, provisioner, memories, graph_api: None }
    }

    /// Exports the graph through this engine's entity API (without one,
    /// the export's graph section is empty).
    pub fn with_graph_api(mut self, graph_api: Arc<dyn GraphApi>) -> Self {
        self.graph_api = Some(graph_api);
        self
    }

    async fn target(&self, p: &Principal, subject: &Subject) -> Result<Target, DomainError> {
        let name = match subject {
            Subject::Caller => p.subject.clone(),
            Subject::Named(name) => name.clone(),
        };
        let tx = self.db.begin_tenant_read(&p.org_id).await?;
        let user = users::find_by_subject(&tx, &name).await?.map(|u| u.id);
        // The actor is named only when it is not the subject.
        let actor = if name == p.subject { None } else { users::find_by_subject(&tx, &p.subject).await?.map(|u| u.id) };
        tx.commit().await?;
        Ok(Target { hash: subject_hash(&p.org_id, &name), org: p.org_id.clone(), subject: name, user, actor })
    }

    async fn audit(&self, org: &OrgId, row: &AuditRow) -> Result<(), DomainError> {
        let tx = self.db.begin_tenant(org).await?;
        store::write_audit(&tx, row).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The audit rows of the org (`admin:read`), newest first.
    pub async fn audit_log(&self, p: &Principal, limit: u64) -> Result<Vec<AuditView>, DomainError> {
        let tx = self.db.begin_tenant_read(&p.org_id).await?;
        let rows = store::audit_rows(&tx, None, limit.clamp(1, 1000)).await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(AuditView::from).collect())
    }

    // ------------------------------------------------------------- export

    /// Writes the subject access export of `subject` into `sink`.
    pub async fn export(&self, p: &Principal, subject: &Subject, sink: &mut dyn ExportSink) -> Result<(), DomainError> {
        let t = self.target(p, subject).await?;
        let started_at = Utc::now();
        let mut audit = AuditRow {
            id: Uuid::now_v7(),
            operation: "export".into(),
            status: "started".into(),
            subject_user_id: t.user,
            subject_hash: t.hash.clone(),
            actor_user_id: t.actor,
            reason: None,
            stores: None,
            pending: None,
            started_at,
            finished_at: None,
        };
        self.audit(&t.org, &audit).await?;
        tracing::info!(
            target: "audit", event = "gdpr.export", phase = "started",
            org = %mask(t.org.as_str()), subject = %mask(&t.hash)
        );

        let mut errors: Vec<Value> = Vec::new();
        let written = self.write_export(&t, started_at, sink, &mut errors).await;
        let status = match (&written, errors.is_empty()) {
            (Err(_), _) => "failed",
            (Ok(()), true) => "completed",
            (Ok(()), false) => "partial",
        };
        audit.status = status.into();
        audit.stores = Some(json!({ "errors": errors }));
        audit.finished_at = Some(Utc::now());
        self.audit(&t.org, &audit).await?;
        tracing::info!(
            target: "audit", event = "gdpr.export", phase = "finished", status,
            org = %mask(t.org.as_str()), subject = %mask(&t.hash)
        );
        written
    }

    async fn write_export(
        &self,
        t: &Target,
        started_at: DateTime<Utc>,
        sink: &mut dyn ExportSink,
        errors: &mut Vec<Value>,
    ) -> Result<(), DomainError> {
        let head = json!({
            "format_version": EXPORT_FORMAT_VERSION,
            "org_id": t.org.as_str(),
            "user_id": t.user,
            "subject": t.subject,
            "export_date": started_at,
        });
        let head = serde_json::to_string(&head).map_err(|e| DomainError::Internal(e.to_string()))?;
        // The head object without its closing brace, then each section.
        sink.write(format!("{},\"relational\":{{", &head[..head.len() - 1]).into_bytes()).await?;
        let ids = match self.write_relational(t, sink).await {
            Ok(ids) => ids,
            Err(e) => {
                errors.push(json!({"store": RELATIONAL, "error": e.to_string()}));
                Vec::new()
            }
        };
        sink.write(b"}".to_vec()).await?;

        let vector = self.vector_section(t, &ids).await;
        let lexical = self.lexical_section(t).await;
        let graph = self.graph_section(t).await;
        let episodic = self.episodic_section(t).await;
        for (name, section) in [(VECTOR, vector), (LEXICAL, lexical), (GRAPH, graph), (EPISODIC, episodic)] {
            let value = section.unwrap_or_else(|e| {
                errors.push(json!({"store": name, "error": e}));
                Value::Null
            });
            let text = serde_json::to_string(&value).map_err(|e| DomainError::Internal(e.to_string()))?;
            sink.write(format!(",\"{name}\":{text}").into_bytes()).await?;
        }
        let tail = json!({"partial": !errors.is_empty(), "errors": errors});
        let tail = serde_json::to_string(&tail).map_err(|e| DomainError::Internal(e.to_string()))?;
        sink.write(format!(",{}", &tail[1..]).into_bytes()).await
    }

    /// The relational sections; returns the user's memory ids.
    async fn write_relational(&self, t: &Target, sink: &mut dyn ExportSink) -> Result<Vec<MemoryId>, DomainError> {
        let mut ids = Vec::new();
        // One read transaction: the sections agree with one another.
        let tx = self.db.begin_tenant_read(&t.org).await?;
        for (i, section) in SubjectRows::ALL.into_iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            sink.write(format!("{sep}\"{}\":[", section.name()).into_bytes()).await?;
            let mut first = true;
            if let Some(user) =
                t.user.or(if section == SubjectRows::GdprAudit { Some(UserId::from_uuid(Uuid::nil())) } else { None })
            {
                let mut after = None;
                loop {
                    let (rows, next) = match store::page(&tx, section, user, &t.hash, after, PAGE).await {
                        Ok(page) => page,
                        Err(e) => {
                            // Close the array: the document stays valid JSON.
                            sink.write(b"]".to_vec()).await?;
                            return Err(e.into());
                        }
                    };
                    let mut buf = Vec::with_capacity(rows.len() * 256);
                    for row in &rows {
                        if section == SubjectRows::Memories
                            && let Some(id) = row.get("id").and_then(Value::as_str).and_then(|s| s.parse().ok())
                        {
                            ids.push(MemoryId::from_uuid(id));
                        }
                        if !first {
                            buf.push(b',');
                        }
                        first = false;
                        serde_json::to_writer(&mut buf, row).map_err(|e| DomainError::Internal(e.to_string()))?;
                    }
                    sink.write(buf).await?;
                    match next {
                        Some(key) => after = Some(key),
                        None => break,
                    }
                }
            }
            sink.write(b"]".to_vec()).await?;
        }
        let categories = match t.user {
            Some(user) => store::category_names(&tx, user).await?,
            None => Vec::new(),
        };
        tx.commit().await?;
        let text = serde_json::to_string(&categories).map_err(|e| DomainError::Internal(e.to_string()))?;
        sink.write(format!(",\"categories\":{text}").into_bytes()).await?;
        Ok(ids)
    }

    async fn vector_section(&self, t: &Target, ids: &[MemoryId]) -> Result<Value, String> {
        let Some(vector) = &self.indexes.vector else {
            return Ok(json!({"engine": null, "documents": []}));
        };
        let found: Vec<Result<Option<Value>, String>> = futures::stream::iter(ids.iter().copied())
            .map(|id| {
                let vector = Arc::clone(vector);
                let org = t.org.clone();
                async move {
                    match vector.embedding(&org, id).await {
                        Ok(Some(v)) => Ok(Some(json!({"memory_id": id, "dimensions": v.len()}))),
                        Ok(None) => Ok(None),
                        Err(e) => Err(e.to_string()),
                    }
                }
            })
            .buffered(32)
            .collect()
            .await;
        let documents: Vec<Value> = found.into_iter().collect::<Result<Vec<_>, _>>()?.into_iter().flatten().collect();
        Ok(json!({
            "engine": vector.engine(),
            "note": "the embedding of each memory's content is held; raw vectors are not exported",
            "documents": documents,
        }))
    }

    /// The lexical index holds, for each memory not deleted, its content,
    /// tags, structured fields and the text of its neighbouring turns: what
    /// `relational.memories` shows. It has no lookup by id, so the section
    /// says so and counts the org's documents.
    async fn lexical_section(&self, t: &Target) -> Result<Value, String> {
        let lexical = &self.indexes.lexical;
        let org_documents = lexical.count(&t.org).await.map_err(|e| e.to_string())?;
        Ok(json!({
            "engine": lexical.engine(),
            "holds": "for each memory in relational.memories that is not deleted: its content, tags, structured \
                      fields and the text of its neighbouring turns",
            "org_documents": org_documents,
        }))
    }

    /// The entities the subject's memories mention (any graph engine, through
    /// its mention graph under the subject's own visibility, every state) and
    /// the relations they state.
    async fn graph_section(&self, t: &Target) -> Result<Value, String> {
        let engine = self.indexes.graph.engine();
        let (Some(user), Some(api)) = (t.user, &self.graph_api) else {
            return Ok(json!({"engine": engine, "entities": [], "mentions": [], "relations": []}));
        };
        let mut filter = SearchFilter::new(t.org.clone(), Some(Visibility { user_id: user, grants: Vec::new() }));
        filter.states = loci_core::MemoryState::ALL.to_vec();
        let graph = api.mention_graph(&filter, MAX_GRAPH_MENTIONS).await.map_err(|e| e.to_string())?;
        let entities: Vec<Value> = graph
            .entities
            .iter()
            .map(|e| json!({"name": e.name, "display_name": e.display_name, "kind": e.kind, "memories": e.memories}))
            .collect();
        let name = |i: &u32| graph.entities.get(*i as usize).map(|e| e.name.clone());
        let mentions: Vec<Value> = graph
            .memories
            .iter()
            .map(|(id, found)| json!({"memory_id": id, "entities": found.iter().filter_map(name).collect::<Vec<_>>()}))
            .collect();
        let relations = if engine == "embedded" {
            let tx = self.db.begin_tenant_read(&t.org).await.map_err(|e| e.to_string())?;
            let relations = store::relations_of(&tx, user).await.map_err(|e| e.to_string())?;
            tx.commit().await.map_err(|e| e.to_string())?;
            relations
        } else {
            // An engine answers per entity: the statements of the subject's
            // memories around each one, once each.
            let mut seen = BTreeSet::new();
            let mut out = Vec::new();
            for e in &graph.entities {
                let Some(facts) =
                    api.relation_statements(&filter, &e.name, MAX_RELATIONS).await.map_err(|e| e.to_string())?
                else {
                    continue;
                };
                for r in facts.statements {
                    let key = (r.memory, r.subject.clone(), r.predicate.as_str(), r.object.clone());
                    if seen.insert(key) {
                        out.push(json!({
                            "memory_id": r.memory, "subject": r.subject,
                            "predicate": r.predicate.as_str(), "object": r.object,
                        }));
                    }
                }
            }
            out
        };
        Ok(json!({
            "engine": engine,
            "entities": entities,
            "mentions": mentions,
            "relations": relations,
            "truncated": graph.truncated,
        }))
    }

    async fn episodic_section(&self, t: &Target) -> Result<Value, String> {
        let Some(user) = t.user else {
            return Ok(json!({"backend": self.episodic.backend(), "sessions": {}}));
        };
        let names = self.episodic.sessions_of(&t.org, user).await.map_err(|e| e.to_string())?;
        let mut sessions = serde_json::Map::new();
        for name in names {
            let key = loci_stores::episodic::SessionKey { org: t.org.clone(), user, session: name.clone() };
            let items = self.episodic.list(&key, true, usize::MAX).await.map_err(|e| e.to_string())?;
            sessions.insert(name, serde_json::to_value(items).map_err(|e| e.to_string())?);
        }
        Ok(json!({"backend": self.episodic.backend(), "sessions": sessions}))
    }

    // -------------------------------------------------------------- purge

    /// Hard-deletes, in every org, the memories deleted more than
    /// `retention` ago (with their history, access logs, graph mentions and
    /// outbox rows) and drops them from the indexes; how many.
    pub async fn purge_deleted(&self, retention: std::time::Duration) -> Result<u64, DomainError> {
        const BATCH: u64 = 1000;
        let before = Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(30));
        let mut total = 0;
        for org in loci_stores::repo::outbox::orgs(&self.db).await? {
            loop {
                let tx = self.db.begin_tenant(&org).await?;
                let ids = store::purge_deleted(&tx, before, BATCH).await?;
                tx.commit().await?;
                if ids.is_empty() {
                    break;
                }
                total += ids.len() as u64;
                // Deleted memories left the indexes when they were deleted;
                // this only makes sure.
                let ports = [
                    self.indexes.vector.clone().map(IndexPort::Vector),
                    Some(IndexPort::Lexical(Arc::clone(&self.indexes.lexical))),
                    Some(IndexPort::Graph(Arc::clone(&self.indexes.graph))),
                ];
                for port in ports.into_iter().flatten() {
                    if let Err(e) = port.delete(&org, &ids).await {
                        tracing::warn!(error = %e, "purge: an index delete failed (the indexer drops deleted memories too)");
                    }
                }
                if (ids.len() as u64) < BATCH {
                    break;
                }
            }
        }
        if total > 0 {
            tracing::info!(memories = total, "purged deleted memories past their retention");
        }
        Ok(total)
    }

    // ------------------------------------------------------------ erasure

    /// Erases `subject`'s data from every store (see the module docs).
    pub async fn erase(&self, p: &Principal, subject: &Subject, reason: &str) -> Result<ErasureReport, DomainError> {
        check_reason(reason)?;
        let t = self.target(p, subject).await?;
        let started_at = Utc::now();

        // What earlier calls left to do: ids per store and the user id (the
        // user row may be gone already).
        let tx = self.db.begin_tenant_read(&t.org).await?;
        let earlier = store::audit_rows(&tx, Some(&t.hash), 50).await?;
        let ids = match t.user {
            Some(user) => store::memory_ids(&tx, user).await?,
            None => Vec::new(),
        };
        tx.commit().await?;
        let mut pending: BTreeMap<String, BTreeSet<MemoryId>> = BTreeMap::new();
        let mut user = t.user;
        for row in earlier.iter().filter(|r| r.operation == "erase") {
            user = user.or(row.subject_user_id);
            if let Some(Value::Object(map)) = &row.pending {
                for (store, value) in map {
                    let listed = value.as_array().into_iter().flatten();
                    let set = pending.entry(store.clone()).or_default();
                    set.extend(
                        listed.filter_map(Value::as_str).filter_map(|s| s.parse().ok()).map(MemoryId::from_uuid),
                    );
                }
            }
            // Anything older than the newest completed call is done.
            if row.status == "completed" {
                break;
            }
        }

        // The index stores this call reaches, each with what it must drop;
        // written into the started row, so a crash half-way loses nothing.
        let mut ports: Vec<(&str, IndexPort)> = vec![
            (LEXICAL, IndexPort::Lexical(Arc::clone(&self.indexes.lexical))),
            (GRAPH, IndexPort::Graph(Arc::clone(&self.indexes.graph))),
        ];
        if let Some(vector) = &self.indexes.vector {
            ports.insert(0, (VECTOR, IndexPort::Vector(Arc::clone(vector))));
        }
        for (name, _) in &ports {
            pending.entry((*name).to_owned()).or_default().extend(ids.iter().copied());
        }

        let mut audit = AuditRow {
            id: Uuid::now_v7(),
            operation: "erase".into(),
            status: "started".into(),
            subject_user_id: user,
            subject_hash: t.hash.clone(),
            actor_user_id: t.actor,
            reason: Some(reason.to_owned()),
            stores: None,
            pending: Some(json!(pending)),
            started_at,
            finished_at: None,
        };
        self.audit(&t.org, &audit).await?;
        tracing::warn!(
            target: "audit", event = "gdpr.delete", phase = "started",
            org = %mask(t.org.as_str()), subject = %mask(&t.hash)
        );

        let mut stores: BTreeMap<String, StoreOutcome> = BTreeMap::new();
        let mut still: BTreeMap<String, Vec<MemoryId>> = BTreeMap::new();

        // 1. Relational, in one transaction (memories with their outbox rows).
        let relational = match user {
            Some(user) => self.erase_relational(&t.org, user).await,
            None => StoreOutcome::done(0),
        };
        stores.insert(RELATIONAL.into(), relational);

        // 2. Indexes: this call's ids and what earlier calls left.
        for (name, port) in ports {
            let wanted: Vec<MemoryId> = pending.remove(name).unwrap_or_default().into_iter().collect();
            let outcome = match port.erase(&t.org, &wanted).await {
                Ok(()) => StoreOutcome::done(wanted.len() as u64),
                Err(e) => {
                    still.insert(name.to_owned(), wanted);
                    StoreOutcome::failed(e)
                }
            };
            stores.insert(name.into(), outcome);
        }
        // A vector index dropped from the configuration leaves its pending
        // ids for the day it comes back.
        for (name, left) in pending {
            if !left.is_empty() {
                still.insert(name, left.into_iter().collect());
            }
        }

        // 3. Episodic items and MCP sessions.
        let episodic = match user {
            Some(user) => match self.episodic.erase_user(&t.org, user).await {
                Ok(n) => StoreOutcome::done(n),
                Err(e) => StoreOutcome::failed(e),
            },
            None => StoreOutcome::done(0),
        };
        stores.insert(EPISODIC.into(), episodic);
        let sessions = match self.sessions.delete_bound_to(t.org.as_str(), &t.subject).await {
            Ok(n) => StoreOutcome::done(n),
            Err(e) => StoreOutcome::failed(e),
        };
        stores.insert(SESSIONS.into(), sessions);

        // The caches that map the subject to rows that are gone.
        self.provisioner.forget(&t.org, &t.subject);
        if let Some(user) = user {
            self.memories.forget_user(user);
        }

        let failed = stores.values().filter(|s| !s.ok()).count();
        let status = match failed {
            0 => "completed",
            n if n == stores.len() => "failed",
            _ => "partial",
        };
        let finished_at = Utc::now();
        let total = stores.values().map(|s| s.count).sum();
        audit.status = status.into();
        audit.stores = Some(serde_json::to_value(&stores).map_err(|e| DomainError::Internal(e.to_string()))?);
        audit.pending = Some(json!(still));
        audit.finished_at = Some(finished_at);
        self.audit(&t.org, &audit).await?;
        tracing::warn!(
            target: "audit", event = "gdpr.delete", phase = "finished", status, total,
            org = %mask(t.org.as_str()), subject = %mask(&t.hash)
        );
        Ok(ErasureReport { audit_id: audit.id, status: status.into(), total, stores, started_at, finished_at })
    }

    async fn erase_relational(&self, org: &OrgId, user: UserId) -> StoreOutcome {
        let run = async {
            let tx = self.db.begin_tenant(org).await?;
            let erased = store::erase_user(&tx, user).await?;
            tx.commit().await?;
            Ok::<_, DomainError>(erased)
        };
        let run = async {
            let erased = run.await?;
            // SQLite's log keeps old pages until a checkpoint truncates it.
            self.db.checkpoint().await?;
            Ok::<_, DomainError>(erased)
        };
        match run.await {
            Ok(erased) => StoreOutcome {
                count: erased.total(),
                tables: erased.deleted.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                pseudonymised: erased.pseudonymised.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                ..StoreOutcome::done(0)
            },
            Err(e) => StoreOutcome::failed(e),
        }
    }
}

/// One index port, for the erasure loop.
enum IndexPort {
    Vector(Arc<dyn loci_index::VectorIndex>),
    Lexical(Arc<dyn loci_index::LexicalIndex>),
    Graph(Arc<dyn loci_index::GraphIndex>),
}

impl IndexPort {
    /// Deletes the documents (in chunks) and flushes.
    async fn delete(&self, org: &OrgId, ids: &[MemoryId]) -> Result<(), loci_index::IndexError> {
        for chunk in ids.chunks(DELETE_CHUNK) {
            match self {
                Self::Vector(v) => v.delete(org, chunk).await?,
                Self::Lexical(l) => l.delete(org, chunk).await?,
                Self::Graph(g) => g.delete(org, chunk).await?,
            }
        }
        match self {
            Self::Vector(v) => v.flush().await,
            Self::Lexical(l) => l.flush().await,
            Self::Graph(g) => g.flush().await,
        }
    }

    /// [`IndexPort::delete`], then the documents expunged from storage (the
    /// graph has no storage of its own to expunge: embedded, it is tables).
    async fn erase(&self, org: &OrgId, ids: &[MemoryId]) -> Result<(), loci_index::IndexError> {
        self.delete(org, ids).await?;
        match self {
            Self::Vector(v) => v.expunge().await,
            Self::Lexical(l) => l.expunge().await,
            Self::Graph(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_10_to_500_visible_characters() {
        assert!(check_reason("too short").is_err());
        assert!(check_reason("            ").is_err());
        assert!(check_reason("user asked\nfor it").is_err());
        assert!(check_reason("the user asked to be forgotten").is_ok());
        assert!(check_reason(&"é".repeat(500)).is_ok());
        assert!(check_reason(&"é".repeat(501)).is_err());
    }

    #[test]
    fn subject_hashes_differ_by_org_and_subject() {
        let a = OrgId::parse("acme").unwrap();
        let b = OrgId::parse("acme2").unwrap();
        assert_ne!(subject_hash(&a, "alice"), subject_hash(&b, "alice"));
        assert_ne!(subject_hash(&a, "alice"), subject_hash(&a, "alice2"));
        assert_eq!(subject_hash(&a, "alice").len(), 64);
    }
}
