//! Fact inference (`infer=true`): an input (a text or a conversation)
//! becomes atomic facts, and each is reconciled with the caller's current
//! memories as ADD, UPDATE (the memory it replaces is superseded), DELETE
//! (the memory it ends is retracted) or NOOP (already known). Every
//! decision is written to the memory's history with its reason, and the
//! answer lists each fact with its event and the memory it touched.
//!
//! Two paths, one contract:
//! - local (always there, the default): [`crate::facts`] extracts; a fact
//!   is NOOP when a current memory says the same (same text, same subject,
//!   attribute and value, or an embedding at least `noop_similarity` close),
//!   UPDATE when one has the same subject and attribute with another value,
//!   DELETE for a retraction that matches (same subject and attribute, else
//!   `retract_similarity` close), ADD otherwise;
//! - a model ([`FactModel`], an OpenAI-compatible LLM in `loci-llm`)
//!   extracts and decides over the same candidates; when it fails (down,
//!   slow, malformed, breaker open) the local path answers, and the answer
//!   says so (`engine: "local"`, `fallback`): a write never fails because a
//!   model did.
//!
//! Candidates are the caller's own current memories: the nearest ones in
//! the vector and lexical indexes, those with the same text (by hash), and
//! the newest few (not indexed yet). All writes of one input, and the end of
//! its job, commit in one transaction.
//!
//! Inputs above `async_threshold_chars`, or with `async`, become jobs
//! (stored, so they survive a restart; run by [`InferService::run_jobs`]
//! with bounded concurrency; exactly once, see `loci_stores::repo::jobs`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use loci_core::model::{Memory, NewMemory, Visibility};
use loci_core::{JobId, JobStatus, MemoryId, MemoryState};
use loci_index::SearchFilter;
use loci_security::Principal;
use loci_stores::repo::{jobs, memories};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use crate::facts::{self, Fact, FactKey, FactKind, Turn};
use crate::indexer::Indexes;
use crate::memories::{MemoryService, MemoryView};
use crate::rules::MAX_EVIDENCE_ITEMS;
use crate::validation::{CreateMemoryInput, MessageInput};
use crate::{DomainError, FieldViolation};

/// Tuning of inference and its jobs (from `[infer]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InferConfig {
    pub noop_similarity: f32,
    pub retract_similarity: f32,
    pub candidates: usize,
    pub max_messages: usize,
    pub async_threshold_chars: usize,
    pub job_concurrency: usize,
    pub max_pending_jobs_per_org: u64,
    pub job_lease: Duration,
    pub job_max_attempts: u32,
}

impl InferConfig {
    pub fn from_settings(s: &loci_settings::InferSettings) -> Self {
        Self {
            noop_similarity: s.noop_similarity,
            retract_similarity: s.retract_similarity,
            candidates: s.candidates,
            max_messages: s.max_messages,
            async_threshold_chars: s.async_threshold_chars,
            job_concurrency: s.job_concurrency,
            max_pending_jobs_per_org: s.max_pending_jobs_per_org,
            job_lease: Duration::from_secs(s.job_lease_secs),
            job_max_attempts: s.job_max_attempts,
        }
    }
}

impl Default for InferConfig {
    fn default() -> Self {
        Self::from_settings(&loci_settings::InferSettings::default())
    }
}

/// What happened to one fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum FactEvent {
    /// Stored as a new memory.
    Add,
    /// Stored as a new memory that supersedes `replaces`.
    Update,
    /// Ended (retracted) `memory_id`.
    Delete,
    /// Already known (`memory_id` says it); nothing stored.
    Noop,
}

impl FactEvent {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Noop => "NOOP",
        }
    }
}

/// One fact of an inference and what it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FactResult {
    pub fact: String,
    pub event: FactEvent,
    /// ADD and UPDATE: the new memory; DELETE: the retracted one; NOOP: the
    /// memory that already says it (none when nothing matched a request to
    /// forget).
    pub memory_id: Option<MemoryId>,
    /// UPDATE: the memory superseded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<MemoryId>,
    pub reason: String,
    /// Ids of the messages the fact came from.
    pub evidence: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
}

/// The answer of an inference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InferOutcome {
    pub results: Vec<FactResult>,
    /// `local` or `llm`: which path decided.
    pub engine: String,
    /// Why the configured model was not used (it failed or its breaker is
    /// open); the local path answered instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

impl InferOutcome {
    /// Whether any memory was stored.
    pub fn created_any(&self) -> bool {
        self.results.iter().any(|r| matches!(r.event, FactEvent::Add | FactEvent::Update))
    }
}

/// An asynchronous add as its owner sees it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub job_id: JobId,
    pub status: JobStatus,
    pub kind: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Runs so far (a job whose worker died is run again).
    pub attempts: i32,
    /// When done.
    pub result: Option<InferOutcome>,
    /// When failed.
    pub error: Option<String>,
}

/// What an add did.
#[derive(Debug, Clone, PartialEq)]
pub enum AddOutcome {
    /// A plain create.
    Created(Box<MemoryView>),
    /// An inference, within the request.
    Inferred(InferOutcome),
    /// An inference queued as a job.
    Queued(JobView),
}

impl AddOutcome {
    /// Memories this call stored (a queued job's come later).
    pub fn stored(&self) -> u64 {
        match self {
            Self::Created(_) => 1,
            Self::Inferred(outcome) => {
                outcome.results.iter().filter(|r| matches!(r.event, FactEvent::Add | FactEvent::Update)).count() as u64
            }
            Self::Queued(_) => 0,
        }
    }
}

/// One message as a model sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelMessage {
    pub role: String,
    pub name: Option<String>,
    pub content: String,
}

/// A fact a model extracted: its text and the messages (indexes into the
/// input) it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFact {
    pub text: String,
    pub messages: Vec<usize>,
}

/// A fact and the current memories it may touch, for a model to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelQuestion {
    pub fact: String,
    pub known: Vec<String>,
}

/// A model's decision on a [`ModelQuestion`]: `known` indexes its `known`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDecision {
    pub event: FactEvent,
    pub known: Option<usize>,
    pub reason: String,
}

/// An LLM that extracts facts and decides what each does. Errors are
/// messages for the answer's `fallback` (no secrets, no bodies).
#[async_trait]
pub trait FactModel: Send + Sync + std::fmt::Debug {
    /// `engine` of answers it decided.
    fn name(&self) -> &str;
    async fn extract(&self, messages: &[ModelMessage]) -> Result<Vec<ModelFact>, String>;
    /// One decision per question, in order.
    async fn decide(&self, questions: &[ModelQuestion]) -> Result<Vec<ModelDecision>, String>;
}

/// What a decision touches: a current memory, or a fact of the same input
/// stored before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    Existing(MemoryId),
    Pending(usize),
}

/// A decision to apply.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decision {
    pub fact: Fact,
    pub event: FactEvent,
    pub target: Option<Target>,
    pub reason: String,
}

/// For each fact of an input: the memories it may touch, and the vector
/// of what it is matched by (none without an embedder).
#[derive(Debug, Clone)]
struct Candidates {
    known: Vec<Vec<Known>>,
    probes: Vec<Option<Vec<f32>>>,
}

/// A current memory a fact is compared with.
#[derive(Debug, Clone)]
struct Known {
    target: Target,
    text: String,
    comparable: String,
    key: Option<FactKey>,
    vector: Option<Vec<f32>>,
    created_at: Option<DateTime<Utc>>,
}

/// Newest own memories always compared (they may not be indexed yet).
const RECENT_CANDIDATES: u64 = 20;
/// Most candidates of one input whose vectors are looked up or computed.
const MAX_VECTOR_CANDIDATES: usize = 256;
/// A job that failed waits this long per attempt before the next.
const JOB_RETRY_STEP: Duration = Duration::from_secs(5);
/// The job kind of an inferred add.
const ADD_JOB: &str = "add_memories";

#[derive(Debug, Clone)]
pub struct InferService {
    memories: MemoryService,
    indexes: Indexes,
    model: Option<Arc<dyn FactModel>>,
    config: InferConfig,
    wake: Arc<Notify>,
}

/// The caller a job runs as, stored with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct JobCaller {
    subject: String,
    client_id: Option<String>,
    grants: Vec<String>,
    scopes: Vec<String>,
    roles: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct JobRequest {
    caller: JobCaller,
    input: CreateMemoryInput,
}

impl InferService {
    pub fn new(memories: MemoryService, indexes: Indexes, config: InferConfig) -> Self {
        Self { memories, indexes, model: None, config, wake: Arc::new(Notify::new()) }
    }

    /// Lets a model extract and decide (the local path stays the fallback).
    pub fn with_model(mut self, model: Arc<dyn FactModel>) -> Self {
        self.model = Some(model);
        self
    }

    /// A create: plain, inferred within the request, or queued as a job.
    pub async fn add(&self, p: &Principal, input: CreateMemoryInput) -> Result<AddOutcome, DomainError> {
        if !input.infer {
            let mut errors = Vec::new();
            if input.messages.is_some() {
                errors.push(FieldViolation::new("messages", "only with infer = true"));
            }
            if input.run_async {
                errors.push(FieldViolation::new("async", "only with infer = true"));
            }
            if !errors.is_empty() {
                return Err(DomainError::Validation(errors));
            }
            return Ok(AddOutcome::Created(Box::new(self.memories.create(p, input).await?)));
        }
        let size = self.check(p, &input)?;
        if input.run_async || size > self.config.async_threshold_chars {
            return Ok(AddOutcome::Queued(self.enqueue(p, input).await?));
        }
        Ok(AddOutcome::Inferred(self.infer(p, &input, None).await?))
    }

    /// An inference's input checked (all violations at once); its size in
    /// characters.
    fn check(&self, p: &Principal, input: &CreateMemoryInput) -> Result<usize, DomainError> {
        let mut errors = Vec::new();
        let limits = self.memories.limits();
        let mut size = 0;
        match &input.messages {
            Some(_) if !input.text.trim().is_empty() => {
                errors.push(FieldViolation::new("messages", "give text or messages, not both"));
            }
            Some(messages) if messages.is_empty() => errors.push(FieldViolation::new("messages", "must not be empty")),
            Some(messages) if messages.len() > self.config.max_messages => {
                errors.push(FieldViolation::new("messages", format!("at most {} messages", self.config.max_messages)))
            }
            Some(messages) => {
                for (i, m) in messages.iter().enumerate() {
                    crate::validation::content(&format!("messages[{i}].content"), &m.content, &limits, &mut errors);
                    size += m.content.chars().count();
                    if m.role.is_empty()
                        || m.role.len() > 32
                        || !m.role.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    {
                        errors.push(FieldViolation::new(format!("messages[{i}].role"), "1 to 32 of a-z and _"));
                    }
                    for (field, value) in [("name", &m.name), ("id", &m.id)] {
                        if let Some(v) = value
                            && (v.trim().is_empty() || v.chars().count() > 128 || crate::rules::has_control(v))
                        {
                            errors.push(FieldViolation::new(
                                format!("messages[{i}].{field}"),
                                "1 to 128 characters, no control characters",
                            ));
                        }
                    }
                }
            }
            None => {
                crate::validation::content("text", &input.text, &limits, &mut errors);
                size = input.text.chars().count();
            }
        }
        // The app and metadata rules of a plain create.
        if let Err(DomainError::Validation(more)) = self.memories.checked_create(p, &as_plain_create(input)) {
            errors.extend(more);
        }
        if errors.is_empty() { Ok(size) } else { Err(DomainError::Validation(errors)) }
    }

    async fn enqueue(&self, p: &Principal, input: CreateMemoryInput) -> Result<JobView, DomainError> {
        let pending = jobs::pending_in_org(self.memories.db(), &p.org_id).await?;
        if pending >= self.config.max_pending_jobs_per_org {
            return Err(DomainError::TooManyJobs(self.config.max_pending_jobs_per_org));
        }
        let request = JobRequest {
            caller: JobCaller {
                subject: p.subject.clone(),
                client_id: p.client_id.clone(),
                grants: p.grants.iter().map(ToString::to_string).collect(),
                scopes: p.scopes.iter().cloned().collect(),
                roles: p.roles.clone(),
            },
            input,
        };
        let request = serde_json::to_value(&request).map_err(|e| DomainError::Internal(e.to_string()))?;
        let me = self.memories.visibility(p).await?.user_id;
        let tx = self.memories.db().begin_tenant(&p.org_id).await?;
        let record = jobs::enqueue(&tx, me, ADD_JOB, request).await?;
        tx.commit().await?;
        self.wake.notify_one();
        job_view(record)
    }

    /// A job of the caller's (another user's reads as not found).
    pub async fn job(&self, p: &Principal, id: JobId) -> Result<JobView, DomainError> {
        let me = self.memories.visibility(p).await?.user_id;
        let tx = self.memories.db().begin_tenant_read(&p.org_id).await?;
        let record = jobs::get(&tx, id).await?;
        tx.commit().await?;
        job_view(record.filter(|r| r.user_id == me).ok_or(DomainError::NotFound("job"))?)
    }

    /// Infers and applies `input`; with `job`, the job ends in the same
    /// transaction.
    async fn infer(
        &self,
        p: &Principal,
        input: &CreateMemoryInput,
        job: Option<JobId>,
    ) -> Result<InferOutcome, DomainError> {
        let messages: Vec<MessageInput> = match &input.messages {
            Some(m) => m.clone(),
            None => vec![MessageInput { role: "user".into(), name: None, content: input.text.clone(), id: None }],
        };
        let mut fallback = None;
        let mut decided = None;
        if let Some(model) = &self.model {
            match self.model_decisions(p, model.as_ref(), &messages).await {
                Ok(decisions) => decided = Some((decisions, model.name().to_owned())),
                Err(why) => {
                    tracing::warn!(error = %why, "fact model failed; the local path answers");
                    fallback = Some(why);
                }
            }
        }
        let (decisions, engine) = match decided {
            Some(d) => d,
            None => {
                let turns: Vec<Turn<'_>> = messages
                    .iter()
                    .map(|m| Turn {
                        role: m.role.as_str(),
                        speaker: m.name.as_deref(),
                        content: m.content.as_str(),
                        id: m.id.as_deref(),
                    })
                    .collect();
                let facts = facts::extract(&turns);
                let candidates = self.candidates(p, &facts).await?;
                (self.decide_locally(facts, candidates), "local".to_owned())
            }
        };
        self.apply(p, input, &decisions, &engine, fallback.as_deref(), job).await
    }

    /// Facts and decisions by the model, over the local candidates.
    async fn model_decisions(
        &self,
        p: &Principal,
        model: &dyn FactModel,
        messages: &[MessageInput],
    ) -> Result<Vec<Decision>, String> {
        let asked: Vec<ModelMessage> = messages
            .iter()
            .map(|m| ModelMessage { role: m.role.clone(), name: m.name.clone(), content: m.content.clone() })
            .collect();
        let extracted = model.extract(&asked).await?;
        let facts: Vec<Fact> = extracted
            .into_iter()
            .filter(|f| !f.text.trim().is_empty())
            .map(|f| {
                let evidence =
                    f.messages.iter().filter_map(|&i| messages.get(i).and_then(|m| m.id.clone())).collect::<Vec<_>>();
                let speaker = f.messages.first().and_then(|&i| messages.get(i)).and_then(|m| m.name.clone());
                Fact {
                    key: facts::key_of(&f.text, speaker.as_deref()),
                    text: f.text.trim().to_owned(),
                    speaker,
                    evidence,
                    kind: FactKind::Statement,
                }
            })
            .collect();
        let known = self.candidates(p, &facts).await.map_err(|e| format!("candidates: {}", e.public_detail()))?.known;
        let questions: Vec<ModelQuestion> = facts
            .iter()
            .zip(&known)
            .map(|(f, k)| ModelQuestion { fact: f.text.clone(), known: k.iter().map(|k| k.text.clone()).collect() })
            .collect();
        let answers = if questions.is_empty() { Vec::new() } else { model.decide(&questions).await? };
        if answers.len() != facts.len() {
            return Err(format!("the model decided {} of {} facts", answers.len(), facts.len()));
        }
        let mut ended = HashSet::new();
        let mut decisions = Vec::with_capacity(facts.len());
        for ((fact, known), answer) in facts.into_iter().zip(known).zip(answers) {
            let target = match answer.known {
                Some(i) => Some(known.get(i).map(|k| k.target).ok_or_else(|| format!("unknown memory {i}"))?),
                None => None,
            };
            let event = match (answer.event, target) {
                (FactEvent::Update | FactEvent::Delete, None) => {
                    return Err(format!("{:?} without the memory it changes", answer.event));
                }
                (FactEvent::Update | FactEvent::Delete, Some(t)) if !ended.insert(t) => FactEvent::Noop,
                (event, _) => event,
            };
            let target = if event == FactEvent::Add { None } else { target };
            decisions.push(Decision { fact, event, target, reason: format!("model: {}", answer.reason) });
        }
        Ok(decisions)
    }

    /// For each fact, the caller's current memories it may touch.
    async fn candidates(&self, p: &Principal, facts: &[Fact]) -> Result<Candidates, DomainError> {
        if facts.is_empty() {
            return Ok(Candidates { known: Vec::new(), probes: Vec::new() });
        }
        let me = self.memories.visibility(p).await?.user_id;
        let probes: Vec<String> = facts.iter().map(probe_text).collect();
        let vectors = self.embed(&probes).await;
        let mut filter = SearchFilter::new(p.org_id.clone(), Some(Visibility { user_id: me, grants: Vec::new() }));
        filter.states = vec![MemoryState::Active, MemoryState::Paused];
        let k = self.config.candidates;
        let mut hits: Vec<Vec<MemoryId>> = vec![Vec::new(); facts.len()];
        for (i, probe) in probes.iter().enumerate() {
            if let (Some(index), Some(v)) = (&self.indexes.vector, vectors.as_ref().and_then(|v| v.get(i))) {
                match index.search(v, &filter, k).await {
                    Ok(found) => hits[i].extend(found.into_iter().map(|h| h.id)),
                    Err(e) => tracing::warn!(error = %e, "vector candidates unavailable"),
                }
            }
            match self.indexes.lexical.search(probe, &filter, k).await {
                Ok(found) => hits[i].extend(found.into_iter().map(|h| h.id)),
                Err(e) => tracing::warn!(error = %e, "lexical candidates unavailable"),
            }
        }
        let ids: Vec<MemoryId> = hits.iter().flatten().copied().collect::<HashSet<_>>().into_iter().collect();
        let hashes: Vec<String> = facts.iter().map(|f| loci_core::content_hash(&f.text)).collect();
        let current = self.memories.current_own(p, &ids, &hashes, RECENT_CANDIDATES).await?;
        let by_hash: HashMap<&str, Vec<MemoryId>> = current.iter().fold(HashMap::new(), |mut acc, m| {
            acc.entry(m.content_hash.as_str()).or_default().push(m.id);
            acc
        });
        let recent: Vec<MemoryId> = {
            let mut all: Vec<&Memory> = current.iter().collect();
            all.sort_by_key(|m| std::cmp::Reverse(m.created_at));
            all.into_iter().take(usize::try_from(RECENT_CANDIDATES).unwrap_or(20)).map(|m| m.id).collect()
        };
        let stored = self.stored_vectors(p, &current).await;
        let known_of: HashMap<MemoryId, Known> = current
            .iter()
            .map(|m| {
                (
                    m.id,
                    Known {
                        target: Target::Existing(m.id),
                        text: m.content.clone(),
                        comparable: facts::comparable(&m.content),
                        key: facts::key_of(&m.content, None),
                        vector: stored.get(&m.id).cloned(),
                        created_at: Some(m.created_at),
                    },
                )
            })
            .collect();
        let known = facts
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let mut seen = HashSet::new();
                let same_text = by_hash.get(loci_core::content_hash(&f.text).as_str()).cloned().unwrap_or_default();
                same_text
                    .iter()
                    .chain(&hits[i])
                    .chain(&recent)
                    .filter(|id| seen.insert(**id))
                    .filter_map(|id| known_of.get(id).cloned())
                    .collect()
            })
            .collect();
        let probes = match vectors {
            Some(v) => v.into_iter().map(Some).collect(),
            None => vec![None; facts.len()],
        };
        Ok(Candidates { known, probes })
    }

    /// Embeddings of `texts`, or `None` without a (working) embedder.
    async fn embed(&self, texts: &[String]) -> Option<Vec<Vec<f32>>> {
        let embedder = self.indexes.embedder.as_ref()?;
        match embedder.embed(texts).await {
            Ok(v) if v.len() == texts.len() => Some(v),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "embedding for inference failed; similarity is not used");
                None
            }
        }
    }

    /// Vectors of current memories: stored in the vector index, or computed
    /// for those not indexed yet.
    async fn stored_vectors(&self, p: &Principal, memories: &[Memory]) -> HashMap<MemoryId, Vec<f32>> {
        let mut out = HashMap::new();
        let Some(index) = &self.indexes.vector else {
            return out;
        };
        let mut missing = Vec::new();
        for m in memories.iter().take(MAX_VECTOR_CANDIDATES) {
            match index.embedding(&p.org_id, m.id).await {
                Ok(Some(v)) => {
                    out.insert(m.id, v);
                }
                _ => missing.push(m),
            }
        }
        if !missing.is_empty() {
            let texts: Vec<String> = missing.iter().map(|m| m.content.clone()).collect();
            if let Some(vectors) = self.embed(&texts).await {
                for (m, v) in missing.into_iter().zip(vectors) {
                    out.insert(m.id, v);
                }
            }
        }
        out
    }

    /// The local path's decisions, in input order: each fact is compared
    /// with its candidates and with the facts of the input stored before it.
    fn decide_locally(&self, facts: Vec<Fact>, candidates: Candidates) -> Vec<Decision> {
        let mut decisions: Vec<Decision> = Vec::with_capacity(facts.len());
        let mut pending: Vec<Known> = Vec::new();
        let mut ended: HashSet<Target> = HashSet::new();
        for (i, ((fact, known), probe)) in facts.into_iter().zip(candidates.known).zip(candidates.probes).enumerate() {
            let pool: Vec<&Known> =
                pending.iter().rev().chain(known.iter()).filter(|k| !ended.contains(&k.target)).collect();
            let decision = decide(&fact, probe.as_deref(), &pool, &self.config);
            if let Some(t) = decision.target
                && matches!(decision.event, FactEvent::Update | FactEvent::Delete)
            {
                ended.insert(t);
            }
            if matches!(decision.event, FactEvent::Add | FactEvent::Update) {
                pending.push(Known {
                    target: Target::Pending(i),
                    text: fact.text.clone(),
                    comparable: facts::comparable(&fact.text),
                    key: fact.key.clone(),
                    // A statement's probe is its own text.
                    vector: if fact.kind == FactKind::Statement { probe } else { None },
                    created_at: None,
                });
            }
            decisions.push(decision);
        }
        decisions
    }

    /// Runs queued jobs until `stop`: claims up to the free slots of
    /// `job_concurrency`, runs each as its caller, and retries a failed one
    /// later (failed for good after `job_max_attempts`).
    pub async fn run_jobs(self, poll: Duration, stop: watch::Receiver<bool>) {
        let worker = crate::job_worker::Worker {
            db: self.memories.db().clone(),
            kind: ADD_JOB,
            concurrency: self.config.job_concurrency,
            lease: self.config.job_lease,
            wake: Arc::clone(&self.wake),
        };
        worker
            .run(poll, stop, move |job| {
                let service = self.clone();
                async move { service.run_claimed(&job).await }
            })
            .await;
    }

    async fn run_claimed(&self, job: &jobs::ClaimedJob) {
        let outcome = async {
            let tx = self.memories.db().begin_tenant(&job.org_id).await?;
            jobs::start(&tx, job.id, job.attempts).await?;
            let record = jobs::get(&tx, job.id).await?.ok_or(DomainError::NotFound("job"))?;
            tx.commit().await?;
            let request: JobRequest = serde_json::from_value(record.request)
                .map_err(|e| DomainError::Internal(format!("job request unreadable: {e}")))?;
            if matches!(record.status, JobStatus::Done | JobStatus::Failed | JobStatus::Cancelled) {
                // Ended by another worker whose queue row removal this
                // claim raced with.
                return Err(DomainError::JobEnded);
            }
            let p = job_principal(job, &request.caller, record.created_at);
            self.infer(&p, &request.input, Some(job.id)).await
        }
        .await;
        if let Err(DomainError::JobEnded) = outcome {
            tracing::info!(job = %job.id, "job already ended by another run; this run changed nothing");
            return;
        }
        if let Err(e) = outcome {
            let detail = e.public_detail();
            let last = u32::try_from(job.attempts).unwrap_or(u32::MAX) >= self.config.job_max_attempts;
            let permanent = matches!(e, DomainError::Validation(_) | DomainError::NotFound(_) | DomainError::AppPaused);
            let result = if last || permanent {
                self.fail_job(job, &detail).await
            } else {
                let delay = JOB_RETRY_STEP * u32::try_from(job.attempts).unwrap_or(1);
                jobs::available_after(self.memories.db(), job.id, delay).await
            };
            if let Err(store) = result {
                tracing::warn!(error = %store, job = %job.id, "could not record a job failure");
            }
            tracing::warn!(error = %detail, job = %job.id, attempts = job.attempts, "job failed");
        }
    }
}

impl InferService {
    async fn fail_job(&self, job: &jobs::ClaimedJob, detail: &str) -> Result<(), loci_stores::StoreError> {
        let tx = self.memories.db().begin_tenant(&job.org_id).await?;
        jobs::finish(&tx, job.id, Err(detail.to_owned())).await?;
        tx.commit().await
    }

    /// Applies `decisions` in one transaction through the input's app (and
    /// ends `job` in it): ADD and UPDATE store the fact with the input's
    /// metadata (source `inference` unless given, the fact's messages as
    /// evidence), UPDATE and DELETE end their memory, NOOP notes why. A
    /// target that stopped being current since the decision is left alone
    /// (an UPDATE then adds).
    async fn apply(
        &self,
        p: &Principal,
        input: &CreateMemoryInput,
        decisions: &[Decision],
        engine: &str,
        fallback: Option<&str>,
        job: Option<JobId>,
    ) -> Result<InferOutcome, DomainError> {
        let (_, app_name, metadata) = self.memories.checked_create(p, &as_plain_create(input))?;
        let (me, tx, app) = self.memories.writable_app(p, &app_name).await?;
        let mut created: Vec<Option<Memory>> = vec![None; decisions.len()];
        let mut results = Vec::with_capacity(decisions.len());
        for (i, d) in decisions.iter().enumerate() {
            let target = match d.target {
                Some(Target::Existing(id)) => Some(id),
                Some(Target::Pending(j)) => created.get(j).and_then(|m| m.as_ref()).map(|m| m.id),
                None => None,
            };
            let current = match target {
                Some(id) => memories::get(&tx, id)
                    .await?
                    .filter(|m| m.user_id == me && matches!(m.state, MemoryState::Active | MemoryState::Paused)),
                None => None,
            };
            let reason = d.reason.as_str();
            let mut result = FactResult {
                fact: d.fact.text.clone(),
                event: d.event,
                memory_id: None,
                replaces: None,
                reason: reason.to_owned(),
                evidence: d.fact.evidence.clone(),
                speaker: d.fact.speaker.clone(),
            };
            let new_memory = || {
                let mut md = metadata.metadata.clone();
                md.source.get_or_insert(loci_core::Source::Inference);
                md.evidence = evidence_of(&d.fact, &metadata.metadata.evidence);
                NewMemory {
                    user_id: me,
                    app_id: app.id,
                    content: d.fact.text.clone(),
                    metadata: md,
                    categories: metadata.categories.clone(),
                }
            };
            match (d.event, current) {
                (FactEvent::Add, _) | (FactEvent::Update, None) => {
                    let why = if d.event == FactEvent::Update {
                        "new fact: what it replaced is no longer current"
                    } else {
                        reason
                    };
                    let m = memories::create_because(&tx, new_memory(), Some(why)).await?;
                    result.event = FactEvent::Add;
                    result.reason = why.to_owned();
                    result.memory_id = Some(m.id);
                    created[i] = Some(m);
                }
                (FactEvent::Update, Some(old)) => {
                    let m = memories::create_because(&tx, new_memory(), Some(reason)).await?;
                    memories::end_validity(&tx, old.id, Some(m.id), Some(me), Some(reason)).await?;
                    result.memory_id = Some(m.id);
                    result.replaces = Some(old.id);
                    created[i] = Some(m);
                }
                (FactEvent::Delete, Some(old)) => {
                    memories::end_validity(&tx, old.id, None, Some(me), Some(reason)).await?;
                    result.memory_id = Some(old.id);
                }
                (FactEvent::Delete, None) => {
                    result.event = FactEvent::Noop;
                    result.reason = "nothing current to retract".to_owned();
                }
                (FactEvent::Noop, Some(known)) => {
                    memories::note_unchanged(&tx, known.id, Some(me), reason).await?;
                    result.memory_id = Some(known.id);
                }
                (FactEvent::Noop, None) => {}
            }
            results.push(result);
        }
        let outcome = InferOutcome { results, engine: engine.to_owned(), fallback: fallback.map(str::to_owned) };
        if let Some(job) = job {
            let value = serde_json::to_value(&outcome).map_err(|e| DomainError::Internal(e.to_string()))?;
            if !jobs::finish(&tx, job, Ok(value)).await? {
                tx.rollback().await?;
                return Err(DomainError::JobEnded);
            }
        }
        tx.commit().await?;
        for m in created.iter().flatten() {
            self.memories.categorise_later(p, m);
        }
        Ok(outcome)
    }
}

/// An inference's app and metadata as a plain create's (a placeholder
/// text): what the create path checks and writes them with.
fn as_plain_create(input: &CreateMemoryInput) -> CreateMemoryInput {
    CreateMemoryInput { text: "x".into(), infer: false, messages: None, run_async: false, ..input.clone() }
}

/// The text whose meaning is matched: what a retraction ends, else the
/// fact itself.
fn probe_text(fact: &Fact) -> String {
    match &fact.kind {
        FactKind::Statement => fact.text.clone(),
        FactKind::Negation { positive } | FactKind::Forget { target: positive } => positive.clone(),
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The local decision on `fact` against `pool` (newest first: the input's
/// own earlier facts, then current memories).
fn decide(fact: &Fact, own: Option<&[f32]>, pool: &[&Known], config: &InferConfig) -> Decision {
    let decision =
        |event, target: Option<Target>, reason: String| Decision { fact: fact.clone(), event, target, reason };
    let comparable = facts::comparable(&fact.text);
    let probe = probe_text(fact);
    let probe_key = match &fact.kind {
        FactKind::Statement => fact.key.clone(),
        _ => facts::key_of(&probe, fact.speaker.as_deref()),
    };
    let same_topic = |k: &Known| match (&probe_key, &k.key) {
        (Some(a), Some(b)) => a.subject == b.subject && a.attribute == b.attribute,
        _ => false,
    };
    let newest_first = |a: &&&Known, b: &&&Known| b.created_at.cmp(&a.created_at);
    // Closest by embedding among those that name the same numbers and
    // names (all of them for a duplicate; at least the probe's for what a
    // retraction ends).
    let names = facts::distinguishing(&probe);
    let best_similar = |min: f32, exact_names: bool| -> Option<(&Known, f32)> {
        let own = own?;
        pool.iter()
            .filter(|k| {
                let theirs = facts::distinguishing(&k.text);
                if exact_names { theirs == names } else { names.is_subset(&theirs) }
            })
            .filter_map(|k| k.vector.as_ref().map(|v| (*k, cosine(own, v))))
            .filter(|(_, s)| *s >= min)
            .max_by(|a, b| a.1.total_cmp(&b.1))
    };
    match &fact.kind {
        FactKind::Statement => {
            if let Some(k) = pool.iter().find(|k| k.comparable == comparable) {
                return decision(FactEvent::Noop, Some(k.target), "already known: the same text".into());
            }
            if let Some(key) = &probe_key {
                let mut topic: Vec<&&Known> = pool.iter().filter(|k| same_topic(k)).collect();
                topic.sort_by(newest_first);
                if let Some(k) = topic.iter().find(|k| k.key.as_ref().is_some_and(|o| o.value == key.value)) {
                    return decision(
                        FactEvent::Noop,
                        Some(k.target),
                        format!("already known: {} of {} is {}", key.attribute, subject_name(key), key.value),
                    );
                }
                if let Some(k) = topic.first() {
                    let old = k.key.as_ref().map_or("", |o| o.value.as_str());
                    return decision(
                        FactEvent::Update,
                        Some(k.target),
                        format!("replaces: {} of {} was {old}, now {}", key.attribute, subject_name(key), key.value),
                    );
                }
            }
            if let Some((k, s)) = best_similar(config.noop_similarity, true) {
                return decision(
                    FactEvent::Noop,
                    Some(k.target),
                    format!("already known: near-duplicate (cosine {s:.2})"),
                );
            }
            decision(FactEvent::Add, None, "new fact".into())
        }
        FactKind::Negation { .. } | FactKind::Forget { .. } => {
            let forget = matches!(fact.kind, FactKind::Forget { .. });
            // What is known about the same subject and attribute decides:
            // another value there means the retraction does not apply.
            let mut topic_known = false;
            if let Some(key) = &probe_key {
                let mut topic: Vec<&&Known> = pool.iter().filter(|k| same_topic(k)).collect();
                topic.sort_by(newest_first);
                topic_known = !topic.is_empty();
                if let Some(k) = topic.iter().find(|k| k.key.as_ref().is_some_and(|o| o.value == key.value)) {
                    return decision(
                        FactEvent::Delete,
                        Some(k.target),
                        format!("retracted: {} of {} is no longer {}", key.attribute, subject_name(key), key.value),
                    );
                }
            }
            if let Some(k) = pool.iter().find(|k| k.comparable == facts::comparable(&probe)) {
                return decision(FactEvent::Delete, Some(k.target), "retracted: the same text".into());
            }
            if !topic_known && let Some((k, s)) = best_similar(config.retract_similarity, false) {
                return decision(
                    FactEvent::Delete,
                    Some(k.target),
                    format!("retracted: closest memory (cosine {s:.2})"),
                );
            }
            if forget {
                decision(FactEvent::Noop, None, "nothing current matches what to forget".into())
            } else {
                decision(FactEvent::Add, None, "new fact: nothing current matches what it ends".into())
            }
        }
    }
}

fn subject_name(key: &FactKey) -> &str {
    if key.subject.is_empty() { "it" } else { key.subject.as_str() }
}

fn job_view(record: jobs::JobRecord) -> Result<JobView, DomainError> {
    let result = match record.result {
        Some(v) => {
            Some(serde_json::from_value(v).map_err(|e| DomainError::Internal(format!("job result unreadable: {e}")))?)
        }
        None => None,
    };
    Ok(JobView {
        job_id: record.id,
        status: record.status,
        kind: record.kind,
        created_at: record.created_at,
        started_at: record.started_at,
        finished_at: record.finished_at,
        attempts: record.attempts,
        result,
        error: record.error,
    })
}

/// The caller a job runs as: who enqueued it, with the grants and scopes
/// their token had then.
fn job_principal(job: &jobs::ClaimedJob, caller: &JobCaller, at: DateTime<Utc>) -> Principal {
    Principal {
        org_id: job.org_id.clone(),
        subject: caller.subject.clone(),
        scopes: caller.scopes.iter().cloned().collect(),
        roles: caller.roles.clone(),
        grants: caller.grants.iter().filter_map(|g| g.parse().ok()).collect(),
        client_id: caller.client_id.clone(),
        token_id: format!("job:{}", job.id),
        dpop_jkt: None,
        expires_at: at,
    }
}

/// Evidence of a stored fact: its messages, then the caller's, at most
/// [`MAX_EVIDENCE_ITEMS`].
pub(crate) fn evidence_of(fact: &Fact, caller: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in fact.evidence.iter().chain(caller) {
        if out.len() < MAX_EVIDENCE_ITEMS && !out.contains(e) {
            out.push(e.clone());
        }
    }
    out
}
