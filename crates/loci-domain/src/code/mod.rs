//! Code intelligence: repositories registered per org, indexed by a job
//! (`indexing`), and queried (`queries`): hybrid code search, callers and
//! callees, impact analysis across repositories, explanations.
//!
//! Rules kept here, for REST and MCP alike:
//! - A repository is the org's: every read goes through the caller's
//!   tenant transaction and every index query carries the org.
//! - Local paths are accepted only inside `code.allowed_roots` (after
//!   symlinks are resolved); a symlink inside a repository is never
//!   followed, and one pointing outside is reported refused; a file over
//!   `code.max_file_bytes` is never read.
//! - One job per repository at a time (asking again returns the running
//!   one), at most `code.max_queued_jobs` per org (more: 429).

mod explainer;
mod indexing;
mod queries;
mod source;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use loci_core::{JobId, JobStatus};
use loci_embed::Embedder;
use loci_index::{CodeGraph, LexicalIndex, VectorIndex};
use loci_security::Principal;
use loci_settings::{CodeSettings, Profile, Settings};
use loci_stores::repo::code as store;
use loci_stores::repo::jobs;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::memories::MemoryService;
use crate::search::SearchService;
use crate::{DomainError, FieldViolation};

pub use explainer::{CodeExplainer, SymbolBrief};
pub use queries::{
    CallEdgeView, CallTreeView, CodeSearchHit, CodeSearchInput, CodeSearchView, CodeSummary, ExplainView, ImpactHit,
    ImpactView, MAX_QUERY, MAX_SEARCH_LIMIT, MemoryMention, SymbolQueryInput, SymbolRef, SymbolView,
    depth as parse_depth,
};

/// The job kind of an indexing run.
pub const INDEX_JOB: &str = "index_codebase";
/// Deepest caller/callee walk.
pub const MAX_DEPTH: u32 = 10;
/// Longest repository name.
pub const MAX_NAME: usize = 100;
/// Longest path or URL of a source.
pub const MAX_SOURCE: usize = 2_048;

/// The symbol kinds a query may name.
pub fn kind_names() -> Vec<&'static str> {
    loci_code::SymbolKind::ALL.iter().map(|k| k.as_str()).collect()
}

/// The languages a query may name.
pub fn language_names() -> Vec<&'static str> {
    loci_code::Language::ALL.iter().map(|l| l.as_str()).collect()
}

/// The search indexes code symbols go to: separate from the memories'
/// (`<data_dir>/code/`), so code never appears in a memory search.
#[derive(Debug, Clone)]
pub struct CodeIndexes {
    pub lexical: Arc<dyn LexicalIndex>,
    pub vector: Option<Arc<dyn VectorIndex>>,
    pub embedder: Option<Arc<dyn Embedder>>,
    /// Names these indexes (created with them): a repository whose
    /// symbols went into other ones (a restored database, a new data
    /// directory, another model) is indexed into these again in full.
    pub generation: String,
}

/// What the code service needs from the settings.
#[derive(Debug, Clone)]
pub struct CodeConfig {
    pub allowed_roots: Vec<PathBuf>,
    pub allowed_git_schemes: Vec<String>,
    pub local_paths: bool,
    pub max_file_bytes: u64,
    pub max_files: u64,
    pub max_queued_jobs: u64,
    pub job_concurrency: usize,
    pub git_timeout: Duration,
    pub checkouts: PathBuf,
    pub job_lease: Duration,
}

impl CodeConfig {
    pub fn from_settings(settings: &Settings) -> Self {
        let c: &CodeSettings = &settings.code;
        Self {
            allowed_roots: c.allowed_roots.clone(),
            allowed_git_schemes: c.allowed_git_schemes.clone(),
            local_paths: settings.profile == Profile::Embedded,
            max_file_bytes: c.max_file_bytes,
            max_files: c.max_files,
            max_queued_jobs: c.max_queued_jobs,
            job_concurrency: c.job_concurrency,
            git_timeout: Duration::from_secs(c.git_timeout_secs),
            checkouts: settings.data_dir.join("code").join("checkouts"),
            job_lease: Duration::from_secs(120),
        }
    }
}

/// A repository to register (and index): exactly one of `path` and
/// `git_url`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepoInput {
    /// 1 to 100 of `A-Z a-z 0-9 . _ -`; default: the last segment of the
    /// path or URL.
    #[serde(default)]
    pub name: Option<String>,
    /// A directory on the server, inside `code.allowed_roots` (embedded
    /// profile only).
    #[serde(default)]
    pub path: Option<String>,
    /// A git URL the server can clone (`code.allowed_git_schemes`).
    #[serde(default)]
    pub git_url: Option<String>,
}

/// A registered repository.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RepoView {
    pub id: Uuid,
    pub name: String,
    /// `path` or `git`.
    pub source_kind: String,
    pub source: String,
    /// Packages its manifests publish.
    pub packages: Vec<String>,
    /// Packages its manifests depend on.
    pub dependencies: Vec<String>,
    /// Registered repositories this one depends on (DEPENDS_ON).
    pub depends_on: Vec<String>,
    pub file_count: i32,
    pub symbol_count: i32,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub indexed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The org's repositories.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RepoList {
    pub items: Vec<RepoView>,
}

/// An indexing job as its owner sees it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CodeJobView {
    pub job_id: Uuid,
    pub repo_id: Uuid,
    /// queued, running, done, failed or cancelled.
    pub status: String,
    /// While running: files seen and parsed so far; when done: the report.
    #[schema(value_type = Option<Object>)]
    pub progress: Option<serde_json::Value>,
    pub error: Option<String>,
    pub attempts: i32,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// What a job runs: the repository, and the caller it runs as.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IndexRequest {
    repo_id: Uuid,
}

#[derive(Debug, Clone)]
pub struct CodeService {
    memories: MemoryService,
    search: SearchService,
    indexes: CodeIndexes,
    config: Arc<CodeConfig>,
    wake: Arc<Notify>,
    explainer: Option<explainer::CachedExplainer>,
    /// The graph engine holding the code graph (Neo4j); without one the
    /// relational code tables answer the walks.
    graph: Option<Arc<dyn CodeGraph>>,
}

fn repo_view(repo: store::CodeRepo, all: &[store::CodeRepo]) -> RepoView {
    let depends_on = all
        .iter()
        .filter(|other| other.id != repo.id && other.packages.iter().any(|p| repo.dependencies.contains(p)))
        .map(|other| other.name.clone())
        .collect();
    RepoView {
        id: repo.id,
        name: repo.name,
        source_kind: repo.source_kind,
        source: repo.source,
        packages: repo.packages,
        dependencies: repo.dependencies,
        depends_on,
        file_count: repo.file_count,
        symbol_count: repo.symbol_count,
        created_at: repo.created_at,
        indexed_at: repo.indexed_at,
    }
}

fn job_view(record: jobs::JobRecord) -> Result<CodeJobView, DomainError> {
    let request: IndexRequest = serde_json::from_value(record.request)
        .map_err(|e| DomainError::Internal(format!("code job request unreadable: {e}")))?;
    Ok(CodeJobView {
        job_id: record.id.as_uuid(),
        repo_id: request.repo_id,
        status: record.status.as_str().to_owned(),
        progress: record.result,
        error: record.error,
        attempts: record.attempts,
        created_at: record.created_at,
        started_at: record.started_at,
        finished_at: record.finished_at,
    })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_NAME
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && !name.starts_with('.')
}

impl CodeService {
    pub fn new(memories: MemoryService, search: SearchService, indexes: CodeIndexes, config: CodeConfig) -> Self {
        Self {
            memories,
            search,
            indexes,
            config: Arc::new(config),
            wake: Arc::new(Notify::new()),
            explainer: None,
            graph: None,
        }
    }

    /// Each indexing run replaces the repository's graph in `graph`, which
    /// then answers the callers/callees/impact walks.
    pub fn with_graph(mut self, graph: Arc<dyn CodeGraph>) -> Self {
        self.graph = Some(graph);
        self
    }

    /// Explanations carry a summary by `explainer` (an LLM).
    pub fn with_explainer(mut self, explainer: Arc<dyn CodeExplainer>) -> Self {
        self.explainer = Some(explainer::CachedExplainer::new(explainer));
        self
    }

    pub fn indexes(&self) -> &CodeIndexes {
        &self.indexes
    }

    /// Registers a repository (or finds the one of that name with the same
    /// source) and queues its indexing; the job (the running one when the
    /// repository has one already).
    pub async fn index(&self, p: &Principal, input: RepoInput) -> Result<(RepoView, CodeJobView), DomainError> {
        let repo = self.register(p, input).await?;
        let job = self.enqueue(p, repo.id).await?;
        let view = self.repo(p, repo.id).await?;
        Ok((view, job))
    }

    /// Registers a repository (or finds the one of that name with the same
    /// source; another source under that name is 409).
    pub async fn register(&self, p: &Principal, input: RepoInput) -> Result<RepoView, DomainError> {
        let source = self.checked_source(&input)?;
        let name = match input.name.as_deref() {
            Some(n) => n.to_owned(),
            None => source.default_name(),
        };
        if !valid_name(&name) {
            let detail = format!("1 to {MAX_NAME} of A-Z a-z 0-9 . _ - (not starting with .); give `name`");
            return Err(DomainError::Validation(vec![FieldViolation::new("name", detail)]));
        }
        // The org's row must exist before its first repository.
        self.memories.visibility(p).await?;
        let tx = self.memories.db().begin_tenant(&p.org_id).await?;
        let repo = match store::repo_by_name(&tx, &name).await? {
            Some(existing) if existing.source_kind == source.kind() && existing.source == source.text() => existing,
            Some(_) => {
                return Err(DomainError::Conflict(format!(
                    "a repository named `{name}` exists with another source; choose another name"
                )));
            }
            None => match store::create_repo(&tx, &name, source.kind(), &source.text()).await? {
                Some(created) => created,
                None => return Err(DomainError::Conflict(format!("a repository named `{name}` was just registered"))),
            },
        };
        tx.commit().await?;
        self.repo(p, repo.id).await
    }

    /// Indexes a registered repository now, in the caller's task (the
    /// command line and benchmarks; the API queues a job); the report.
    pub async fn index_now(&self, p: &Principal, repo: Uuid) -> Result<serde_json::Value, DomainError> {
        let report = self.index_repo_report(&p.org_id, repo, None).await?;
        serde_json::to_value(&report).map_err(|e| DomainError::Internal(e.to_string()))
    }

    /// Queues indexing of a registered repository (the running job when
    /// there is one).
    pub async fn reindex(&self, p: &Principal, repo: Uuid) -> Result<CodeJobView, DomainError> {
        let tx = self.memories.db().begin_tenant_read(&p.org_id).await?;
        store::get_repo(&tx, repo).await?.ok_or(DomainError::NotFound("repository"))?;
        tx.commit().await?;
        self.enqueue(p, repo).await
    }

    async fn enqueue(&self, p: &Principal, repo: Uuid) -> Result<CodeJobView, DomainError> {
        let me = self.memories.visibility(p).await?.user_id;
        let tx = self.memories.db().begin_tenant(&p.org_id).await?;
        let pending = jobs::unfinished(&tx, INDEX_JOB).await?;
        for job in pending.iter() {
            let view = job_view(job.clone())?;
            if view.repo_id == repo {
                tx.commit().await?;
                return Ok(view);
            }
        }
        if pending.len() as u64 >= self.config.max_queued_jobs {
            return Err(DomainError::TooManyJobs(self.config.max_queued_jobs));
        }
        let request =
            serde_json::to_value(IndexRequest { repo_id: repo }).map_err(|e| DomainError::Internal(e.to_string()))?;
        let record = jobs::enqueue(&tx, me, INDEX_JOB, request).await?;
        tx.commit().await?;
        self.wake.notify_one();
        job_view(record)
    }

    pub async fn repos(&self, p: &Principal) -> Result<RepoList, DomainError> {
        let tx = self.memories.db().begin_tenant_read(&p.org_id).await?;
        let all = store::list_repos(&tx).await?;
        tx.commit().await?;
        Ok(RepoList { items: all.iter().cloned().map(|r| repo_view(r, &all)).collect() })
    }

    pub async fn repo(&self, p: &Principal, id: Uuid) -> Result<RepoView, DomainError> {
        let tx = self.memories.db().begin_tenant_read(&p.org_id).await?;
        let all = store::list_repos(&tx).await?;
        tx.commit().await?;
        let repo = all.iter().find(|r| r.id == id).cloned().ok_or(DomainError::NotFound("repository"))?;
        Ok(repo_view(repo, &all))
    }

    /// Removes a repository with everything indexed from it (and cancels
    /// its job).
    pub async fn delete(&self, p: &Principal, id: Uuid) -> Result<(), DomainError> {
        // The graph engine first (for a repository of the caller's org): if
        // it fails, the repository is still whole and the deletion can be
        // asked again.
        if let Some(graph) = &self.graph {
            self.repo(p, id).await?;
            graph.delete_repo(&p.org_id, id).await?;
        }
        let tx = self.memories.db().begin_tenant(&p.org_id).await?;
        for job in jobs::unfinished(&tx, INDEX_JOB).await? {
            if job_view(job.clone())?.repo_id == id {
                jobs::cancel(&tx, job.id).await?;
            }
        }
        let symbols = store::delete_repo(&tx, id).await?.ok_or(DomainError::NotFound("repository"))?;
        tx.commit().await?;
        self.unindex(&p.org_id, &symbols).await?;
        // A git checkout, if the repository had one.
        let _ = tokio::fs::remove_dir_all(self.checkout_dir(&p.org_id, id)).await;
        Ok(())
    }

    pub async fn job(&self, p: &Principal, id: Uuid) -> Result<CodeJobView, DomainError> {
        let tx = self.memories.db().begin_tenant_read(&p.org_id).await?;
        let record = jobs::get(&tx, JobId::from_uuid(id)).await?;
        tx.commit().await?;
        match record {
            Some(r) if r.kind == INDEX_JOB => job_view(r),
            _ => Err(DomainError::NotFound("job")),
        }
    }

    /// Cancels a queued or running job; 409 when it has ended.
    pub async fn cancel(&self, p: &Principal, id: Uuid) -> Result<CodeJobView, DomainError> {
        let job = self.job(p, id).await?;
        if !matches!(job.status.as_str(), "queued" | "running") {
            return Err(DomainError::Conflict(format!("the job is {} already", job.status)));
        }
        let tx = self.memories.db().begin_tenant(&p.org_id).await?;
        jobs::cancel(&tx, JobId::from_uuid(id)).await?;
        tx.commit().await?;
        self.job(p, id).await
    }

    /// Whether a job was cancelled (checked by its worker between steps).
    async fn cancelled(&self, org: &loci_core::OrgId, job: JobId) -> Result<bool, DomainError> {
        let tx = self.memories.db().begin_tenant_read(org).await?;
        let record = jobs::get(&tx, job).await?;
        tx.commit().await?;
        Ok(record.is_none_or(|r| r.status == JobStatus::Cancelled))
    }

    fn checkout_dir(&self, org: &loci_core::OrgId, repo: Uuid) -> PathBuf {
        // The org id is restricted to visible ASCII without quotes or
        // backslashes; its hash keeps `/` and `..` out of the path.
        let org_dir = loci_code::content_hash(org.as_str().as_bytes());
        self.config.checkouts.join(&org_dir[..16]).join(repo.to_string())
    }

    /// Removes symbols from the search indexes.
    async fn unindex(&self, org: &loci_core::OrgId, symbols: &[Uuid]) -> Result<(), DomainError> {
        if symbols.is_empty() {
            return Ok(());
        }
        let ids: Vec<loci_core::MemoryId> = symbols.iter().map(|id| loci_core::MemoryId::from_uuid(*id)).collect();
        for chunk in ids.chunks(1_000) {
            self.indexes.lexical.delete(org, chunk).await?;
            if let Some(vector) = &self.indexes.vector {
                vector.delete(org, chunk).await?;
            }
        }
        self.indexes.lexical.flush().await?;
        if let Some(vector) = &self.indexes.vector {
            vector.flush().await?;
        }
        Ok(())
    }
}
