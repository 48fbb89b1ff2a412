//! Tri-hybrid search: vector and lexical retrieval in parallel, graph
//! expansion from the entities a query names, fused by weighted reciprocal
//! rank fusion; filters and visibility go into every index query.
//!
//! Degradation: without an embedder (or when it fails) `auto` answers from
//! the other sources with `degraded_mode` and `missing_sources:
//! ["embedding"]`; a failing index is listed in `missing_sources`; only when
//! no source answers is the search unavailable.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use loci_core::{AppId, ArtifactType, Category, MemoryId, Scope, Source as MemorySource};
use loci_embed::Embedder;
use loci_index::{Hit, SearchFilter, StructuredFields};
use loci_security::Principal;
use serde::Serialize;
use tracing::Instrument;

pub mod analysis;
pub mod ranking;

pub use ranking::{Fusion, RankingConfig, Signals};

use crate::indexer::{GRAPH, Indexes, LEXICAL, VECTOR};
use crate::memories::{MemoryService, MemoryView, parse_time};
use crate::rules::{self, DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT};
use crate::{DomainError, FieldViolation};

/// Which sources a search uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Hybrid, degrading to what is available.
    #[default]
    Auto,
    Hybrid,
    Lexical,
    Semantic,
}

/// Fusion weights per source (non-negative; zero switches a source off).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Weights {
    pub vector: f32,
    pub lexical: f32,
    pub graph: f32,
}

/// Each weight must be finite and within 0..=100 (`weights.<source>`).
fn weight_violations(w: &Weights) -> Vec<FieldViolation> {
    [("vector", w.vector), ("lexical", w.lexical), ("graph", w.graph)]
        .into_iter()
        .filter(|(_, v)| !v.is_finite() || !(0.0..=100.0).contains(v))
        .map(|(name, _)| FieldViolation::new(format!("weights.{name}"), "must be between 0 and 100"))
        .collect()
}

/// Search tuning from settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchConfig {
    pub weights: Weights,
    /// Results taken from each source before fusion (at least the limit).
    pub candidates: usize,
    /// Fusion and the ranking signals.
    pub ranking: RankingConfig,
    /// The lexical query leaves out question words ([`analysis::lexical_query`]).
    pub strip_question_words: bool,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self::from_settings(&loci_settings::SearchSettings::default())
    }
}

impl SearchConfig {
    /// From `[search]`.
    pub fn from_settings(s: &loci_settings::SearchSettings) -> Self {
        Self {
            weights: Weights { vector: s.weight_vector, lexical: s.weight_lexical, graph: s.weight_graph },
            candidates: s.candidates,
            strip_question_words: s.strip_question_words,
            ranking: RankingConfig {
                fusion: match s.fusion {
                    loci_settings::FusionMethod::Rrf => Fusion::Rrf,
                    loci_settings::FusionMethod::Score => Fusion::Score,
                },
                rrf_k: s.rrf_k,
                neighbour: s.neighbour_weight,
                entity: s.entity_boost,
                temporal: s.temporal_boost,
                depth: s.signal_depth,
            },
        }
    }
}

/// Structured filters of a search (all optional, all must hold).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchFilters {
    /// Required structured fields (their enum values already checked).
    pub fields: StructuredFields,
    pub app_id: Option<AppId>,
    pub tags: BTreeMap<String, String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    pub query: String,
    pub limit: usize,
    pub filters: SearchFilters,
    pub mode: SearchMode,
    pub weights: Option<Weights>,
    /// Scoped deduplication of the results (see [`dedupe_by_scope`]).
    pub dedupe: bool,
    /// What was current then (see [`SearchInput::as_of`]).
    pub as_of: Option<DateTime<Utc>>,
    /// Whether the configured reranker reorders the best fused results
    /// (`None`: when one is configured).
    pub rerank: Option<bool>,
}

/// Per-source scores of a result: each source's own score, and the fused one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SourceScores {
    /// The reranker's score, when the result was reranked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerank: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lexical: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph: Option<f32>,
    pub fused: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SearchResult {
    pub memory_id: MemoryId,
    pub score: f32,
    pub content: String,
    pub highlights: Vec<String>,
    pub memory: MemoryView,
    pub scores: SourceScores,
}

/// Time spent per stage, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Timings {
    pub embed: f64,
    pub vector: f64,
    pub lexical: f64,
    pub graph: f64,
    pub fuse: f64,
    pub rerank: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SearchMeta {
    /// The mode actually used (`auto` resolves to `hybrid` or `lexical`).
    pub mode: SearchMode,
    pub degraded_mode: bool,
    pub missing_sources: Vec<String>,
    pub timings_ms: Timings,
    /// With `dedupe`: what deduplication left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dedup: Option<DedupReport>,
    /// The experiment variant whose configuration the search used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<crate::experiments::ExperimentTag>,
    /// The reranker model that ordered the results, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reranker: Option<String>,
}

/// What a scoped deduplication left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DedupReport {
    pub total_before_dedup: usize,
    pub total_after_dedup: usize,
    /// Copies left out, by the scope of each copy left out.
    pub dedup_by_scope: std::collections::BTreeMap<String, u64>,
}

/// A memory's precedence in a scoped retrieval (no scope: the user's own).
fn precedence(view: &MemoryView) -> u8 {
    view.memory.metadata.scope.unwrap_or(Scope::User).precedence()
}

/// Identical contents (by content hash) kept once, in the copy of the
/// highest scope precedence (tie: newest, then greatest id), at the rank of
/// the best-ranked copy; the rest in their order.
pub fn dedupe_by_scope(results: Vec<SearchResult>) -> (Vec<SearchResult>, DedupReport) {
    let before = results.len();
    let better = |a: &SearchResult, b: &SearchResult| {
        (precedence(&a.memory), a.memory.memory.created_at, a.memory_id)
            > (precedence(&b.memory), b.memory.memory.created_at, b.memory_id)
    };
    let mut slots: Vec<SearchResult> = Vec::with_capacity(results.len());
    let mut slot_of: HashMap<String, usize> = HashMap::new();
    let mut report = DedupReport { total_before_dedup: before, ..DedupReport::default() };
    for r in results {
        match slot_of.get(&r.memory.memory.content_hash) {
            Some(&i) => {
                let Some(kept) = slots.get_mut(i) else { continue };
                let dropped = if better(&r, kept) {
                    // The better copy takes the slot (and keeps the rank and
                    // score its content earned).
                    let (score, scores, highlights) = (kept.score, kept.scores.clone(), kept.highlights.clone());
                    let mut winner = r;
                    (winner.score, winner.scores, winner.highlights) = (score, scores, highlights);
                    std::mem::replace(kept, winner)
                } else {
                    r
                };
                let scope = dropped.memory.memory.metadata.scope.unwrap_or(Scope::User);
                *report.dedup_by_scope.entry(scope.as_str().to_owned()).or_default() += 1;
            }
            None => {
                slot_of.insert(r.memory.memory.content_hash.clone(), slots.len());
                slots.push(r);
            }
        }
    }
    report.total_after_dedup = slots.len();
    (slots, report)
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SearchResponse {
    /// This search's id: feedback on its results names it (and a result by
    /// its index).
    pub query_id: String,
    pub results: Vec<SearchResult>,
    pub total_count: usize,
    pub took_ms: f64,
    pub meta: SearchMeta,
}

/// One source's ranked list for fusion.
#[derive(Debug, Clone, Copy)]
pub struct RankedList<'a> {
    pub source: Source,
    pub weight: f32,
    pub hits: &'a [Hit],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Vector,
    Lexical,
    Graph,
}

/// A fused result: its weighted RRF score and each source's own score.
#[derive(Debug, Clone, PartialEq)]
pub struct Fused {
    pub id: MemoryId,
    pub score: f32,
    pub scores: SourceScores,
    pub highlights: Vec<String>,
}

/// Reorders the first `stage.candidates` of `views` by the reranker's score
/// of each content against `query` (ties keep the fused order); each
/// result's fused score becomes its rerank score, so scores still decrease.
/// The rest follow in their fused order, below every reranked score.
async fn rerank(
    stage: &RerankStage,
    query: &str,
    views: &mut [MemoryView],
    fused: &mut HashMap<MemoryId, Fused>,
) -> Result<(), loci_embed::EmbedError> {
    let n = stage.candidates.min(views.len());
    if n == 0 {
        return Ok(());
    }
    let documents: Vec<String> = views[..n].iter().map(|v| v.memory.content.clone()).collect();
    let scores = stage.model.score(query, &documents).await?;
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let reordered: Vec<MemoryView> = order.iter().map(|&i| views[i].clone()).collect();
    views[..n].clone_from_slice(&reordered);
    let floor = scores.iter().copied().fold(f32::INFINITY, f32::min);
    for (view, score) in views[..n].iter().zip(order.iter().map(|&i| scores[i])) {
        if let Some(f) = fused.get_mut(&view.memory.id) {
            f.scores.rerank = Some(score);
            f.score = score;
        }
    }
    // Below the reranked ones, in their fused order.
    for (k, view) in views[n..].iter().enumerate() {
        if let Some(f) = fused.get_mut(&view.memory.id) {
            f.score = floor - 1.0 - k as f32 * 1e-3;
        }
    }
    Ok(())
}

/// Structured filters of a search.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchFiltersInput {
    pub category: Option<String>,
    pub scope: Option<String>,
    pub artifact_type: Option<String>,
    pub artifact_ref: Option<String>,
    pub entity: Option<String>,
    pub source: Option<String>,
    pub app_id: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// RFC 3339.
    pub from: Option<String>,
    /// RFC 3339.
    pub to: Option<String>,
}

/// `POST /api/v1/search` body.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchInput {
    /// 1 to 2048 characters.
    pub query: String,
    /// 1 to 100 (default 10).
    #[serde(default, deserialize_with = "crate::inputs::whole_number::option")]
    pub limit: Option<i64>,
    #[serde(default)]
    pub filters: Option<SearchFiltersInput>,
    #[serde(default)]
    pub mode: Option<SearchMode>,
    /// Fusion weights (default from settings: vector 0.40, lexical 0.60, graph 0).
    pub weights: Option<Weights>,
    /// Keep identical content (normalised) once, in the copy of the highest
    /// scope precedence (tie: newest), where its best copy ranked; the
    /// answer's `meta.dedup` reports what went. Default false.
    #[serde(default)]
    pub dedupe: Option<bool>,
    /// RFC 3339: search what was current at that time (memories created by
    /// then and not yet superseded or retracted).
    pub as_of: Option<String>,
    /// Reorder the best fused results with the server's reranker (`[reranker]`
    /// settings). Default: true when one is configured; true without one
    /// answers in fused order with `reranker` in `meta.missing_sources`.
    #[serde(default)]
    pub rerank: Option<bool>,
}

fn known<T: std::str::FromStr + ToString>(
    field: &str,
    raw: &Option<String>,
    out: &mut Vec<FieldViolation>,
) -> Option<String> {
    let raw = raw.as_deref()?;
    match raw.parse::<T>() {
        Ok(v) => Some(v.to_string()),
        Err(_) => {
            out.push(FieldViolation::new(field, format!("unknown value `{raw}`")));
            None
        }
    }
}

impl SearchInput {
    /// Checks every field (all violations at once) into a request; `forced`
    /// overrides the mode (the `/lexical` and `/semantic` routes).
    pub fn parse(self, forced: Option<SearchMode>) -> Result<SearchRequest, Vec<FieldViolation>> {
        let mut out = Vec::new();
        let limit = match self.limit {
            None => DEFAULT_SEARCH_LIMIT,
            Some(n) => rules::limit("limit", usize::try_from(n).unwrap_or(0), MAX_SEARCH_LIMIT).unwrap_or_else(|e| {
                out.push(e);
                DEFAULT_SEARCH_LIMIT
            }),
        };
        let as_of = self.as_of.as_deref().and_then(|raw| parse_time("as_of", raw, &mut out));
        let f = self.filters.unwrap_or_default();
        let filters = SearchFilters {
            fields: StructuredFields {
                category: known::<Category>("filters.category", &f.category, &mut out),
                scope: known::<Scope>("filters.scope", &f.scope, &mut out),
                artifact_type: known::<ArtifactType>("filters.artifact_type", &f.artifact_type, &mut out),
                artifact_ref: f.artifact_ref,
                entity: f.entity,
                source: known::<MemorySource>("filters.source", &f.source, &mut out),
            },
            app_id: f
                .app_id
                .as_deref()
                .and_then(|raw| crate::validation::parse_id::<AppId>("filters.app_id", raw, &mut out)),
            tags: f.tags,
            from: f.from.as_deref().and_then(|raw| parse_time("filters.from", raw, &mut out)),
            to: f.to.as_deref().and_then(|raw| parse_time("filters.to", raw, &mut out)),
        };
        if !out.is_empty() {
            return Err(out);
        }
        Ok(SearchRequest {
            query: self.query,
            limit,
            filters,
            mode: forced.or(self.mode).unwrap_or_default(),
            weights: self.weights,
            dedupe: self.dedupe.unwrap_or(false),
            as_of,
            rerank: self.rerank,
        })
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

pub use crate::rules::MAX_QUERY_CHARS;

#[derive(Debug, Clone)]
pub struct SearchService {
    memories: MemoryService,
    indexes: Indexes,
    /// The indexes' embedder behind a cache of query embeddings (documents
    /// are embedded by the indexer without it, so they never evict queries).
    query_embedder: Option<Arc<dyn Embedder>>,
    config: SearchConfig,
    /// The weights of searches that choose none: `config.weights` until an
    /// operator changes them at run time (shared by every clone).
    default_weights: Arc<std::sync::RwLock<Weights>>,
    recent: RecentQueries,
    experiments: Option<crate::experiments::ExperimentService>,
    reranker: Option<RerankStage>,
}

/// The second stage: a reranker and how many fused results it sees.
#[derive(Debug, Clone)]
struct RerankStage {
    model: Arc<dyn loci_embed::Reranker>,
    candidates: usize,
}

/// Query embeddings kept per process.
const QUERY_CACHE: usize = 4096;

/// Searches remembered per process for the feedback that follows them.
const RECENT_QUERIES: usize = 10_000;

/// What feedback on a recent search needs to know: whose it was, and which
/// sources found each result.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentQuery {
    pub org: loci_core::OrgId,
    pub user: loci_core::UserId,
    /// Per result, in answer order: its memory and the sources that found it.
    pub results: Vec<(MemoryId, Vec<&'static str>)>,
    /// The experiment variant the search ran under.
    pub experiment: Option<crate::experiments::ExperimentTag>,
}

/// The newest searches by `query_id` (bounded, least recently used out).
#[derive(Debug, Clone)]
pub struct RecentQueries(Arc<parking_lot::Mutex<lru::LruCache<String, RecentQuery>>>);

impl Default for RecentQueries {
    fn default() -> Self {
        let cap = std::num::NonZeroUsize::new(RECENT_QUERIES).unwrap_or(std::num::NonZeroUsize::MIN);
        Self(Arc::new(parking_lot::Mutex::new(lru::LruCache::new(cap))))
    }
}

impl RecentQueries {
    fn remember(&self, id: String, query: RecentQuery) {
        self.0.lock().put(id, query);
    }

    /// The search `id`, when it is recent and was made in `org`.
    pub fn get(&self, org: &loci_core::OrgId, id: &str) -> Option<RecentQuery> {
        self.0.lock().get(id).filter(|q| &q.org == org).cloned()
    }
}

/// Outcome of one source: its hits or why it is missing.
pub type SourceOutcome = Result<Vec<Hit>, String>;

/// What the sources found for a query, before ranking: each asked source's
/// hits (or the name of what failed), and the entities the query names.
#[derive(Debug, Clone, Default)]
pub struct Gathered {
    pub vector: Option<SourceOutcome>,
    pub lexical: Option<SourceOutcome>,
    pub graph: Option<SourceOutcome>,
    pub entities: Vec<String>,
    pub timings: Timings,
}

impl SearchService {
    pub fn new(memories: MemoryService, indexes: Indexes, config: SearchConfig) -> Self {
        let query_embedder = indexes
            .embedder
            .clone()
            .map(|e| Arc::new(loci_embed::CachedEmbedder::new(e, QUERY_CACHE)) as Arc<dyn Embedder>);
        let default_weights = Arc::new(std::sync::RwLock::new(config.weights));
        Self {
            memories,
            indexes,
            query_embedder,
            config,
            default_weights,
            recent: RecentQueries::default(),
            experiments: None,
            reranker: None,
        }
    }

    /// Reorders the best `candidates` fused results of every search that
    /// does not opt out, with `reranker`.
    pub fn with_reranker(mut self, reranker: Arc<dyn loci_embed::Reranker>, candidates: usize) -> Self {
        self.reranker = Some(RerankStage { model: reranker, candidates: candidates.max(1) });
        self
    }

    /// The reranker's model, when one is configured.
    pub fn reranker_model(&self) -> Option<&str> {
        self.reranker.as_ref().map(|r| r.model.model())
    }

    /// The fusion weights of searches that choose none.
    pub fn default_weights(&self) -> Weights {
        *self.default_weights.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Changes them for every later search (runtime configuration); each
    /// must lie in 0..=100, as a request's own weights must.
    pub fn set_default_weights(&self, weights: Weights) -> Result<(), DomainError> {
        let errors = weight_violations(&weights);
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors));
        }
        *self.default_weights.write().unwrap_or_else(std::sync::PoisonError::into_inner) = weights;
        Ok(())
    }

    /// Applies the org's running experiment to its users' searches.
    pub fn with_experiments(mut self, experiments: crate::experiments::ExperimentService) -> Self {
        self.experiments = Some(experiments);
        self
    }

    /// The searches feedback may refer to.
    pub fn recent_queries(&self) -> &RecentQueries {
        &self.recent
    }

    /// Tokens of `text` by the embedding model's own tokenizer; `None`
    /// without a local model.
    pub fn count_tokens(&self, text: &str) -> Option<usize> {
        self.indexes.embedder.as_ref()?.count_tokens(text)
    }

    /// The embedding model and its dimensions, when semantic search is on.
    pub fn embedder_info(&self) -> Option<(String, usize)> {
        self.indexes.embedder.as_ref().map(|e| (e.model().to_owned(), e.dimensions()))
    }

    pub fn has_embedder(&self) -> bool {
        self.indexes.embedder.is_some() && self.indexes.vector.is_some()
    }

    /// The indexes a memory write refreshes (through the outbox), by name:
    /// vector only with an embedder, then lexical and graph.
    pub fn index_names(&self) -> Vec<String> {
        let vector = self.has_embedder().then_some(VECTOR);
        vector.into_iter().chain([LEXICAL, GRAPH]).map(str::to_owned).collect()
    }

    fn validate(&self, req: &SearchRequest) -> Result<(), DomainError> {
        let mut errors = Vec::new();
        let chars = req.query.chars().count();
        if rules::is_blank(&req.query) || chars > MAX_QUERY_CHARS {
            errors.push(FieldViolation::new("query", format!("must be 1 to {MAX_QUERY_CHARS} characters, not blank")));
        }
        if let Err(e) = rules::limit("limit", req.limit, MAX_SEARCH_LIMIT) {
            errors.push(e);
        }
        if let Some(w) = req.weights {
            errors.extend(weight_violations(&w));
        }
        if errors.is_empty() { Ok(()) } else { Err(DomainError::Validation(errors)) }
    }

    fn filter(&self, p: &Principal, vis: loci_core::model::Visibility, f: &SearchFilters) -> SearchFilter {
        let mut filter = SearchFilter::new(p.org_id.clone(), Some(vis));
        filter.fields = f.fields.clone();
        filter.app_id = f.app_id;
        filter.tags = f.tags.clone();
        filter.from = f.from;
        filter.to = f.to;
        filter
    }

    /// The caller's index filter for `req` (visibility, filters, `as_of`)
    /// and who the caller is.
    async fn filter_for(
        &self,
        p: &Principal,
        req: &SearchRequest,
    ) -> Result<(SearchFilter, loci_core::UserId), DomainError> {
        let vis = self.memories.visibility(p).await?;
        let vis_user = vis.user_id;
        let mut filter = self.filter(p, vis, &req.filters);
        if let Some(at) = req.as_of {
            // Memories archived since may have been current then; the store
            // checks their validity when it loads them.
            filter.states = vec![loci_core::MemoryState::Active, loci_core::MemoryState::Archived];
            filter.to = Some(filter.to.map_or(at, |to| to.min(at)));
        }
        Ok((filter, vis_user))
    }

    /// What each source finds for `req` before any ranking (the lists
    /// `loci bench locomo` ranks under many configurations), with the
    /// entities the query names.
    pub async fn source_lists(&self, p: &Principal, req: &SearchRequest) -> Result<Gathered, DomainError> {
        self.validate(req)?;
        let (filter, _) = self.filter_for(p, req).await?;
        let weights = req.weights.unwrap_or_else(|| self.default_weights());
        Ok(self.gather(req, &filter, weights, self.config.candidates.max(req.limit)).await)
    }

    /// The sources' lists, in parallel (the query embedding first: vector
    /// search needs it).
    async fn gather(&self, req: &SearchRequest, filter: &SearchFilter, weights: Weights, depth: usize) -> Gathered {
        let want_vector = matches!(req.mode, SearchMode::Auto | SearchMode::Hybrid | SearchMode::Semantic);
        let want_lexical = matches!(req.mode, SearchMode::Auto | SearchMode::Hybrid | SearchMode::Lexical);
        let want_graph = matches!(req.mode, SearchMode::Auto | SearchMode::Hybrid);

        // The query embedding first (vector search needs it); lexical and
        // graph run meanwhile.
        let vector_side = async {
            if !want_vector {
                return (None, 0.0, 0.0);
            }
            let (Some(embedder), Some(vector)) = (&self.query_embedder, &self.indexes.vector) else {
                return (Some(Err("embedding".to_owned())), 0.0, 0.0);
            };
            let t = Instant::now();
            let text = if self.config.strip_question_words {
                analysis::lexical_query(&req.query)
            } else {
                std::borrow::Cow::Borrowed(req.query.as_str())
            };
            let query = match embedder.embed_query(&text).instrument(tracing::info_span!("search.embed")).await {
                Ok(q) => q,
                Err(e) => {
                    tracing::warn!(error = %e, "query embedding failed");
                    return (Some(Err("embedding".to_owned())), ms(t), 0.0);
                }
            };
            let embed_ms = ms(t);
            let t = Instant::now();
            let hits = vector.search(&query, filter, depth).instrument(tracing::info_span!("search.vector")).await;
            let hits = hits.map_err(|e| {
                tracing::warn!(error = %e, "vector search failed");
                VECTOR.to_owned()
            });
            (Some(hits), embed_ms, ms(t))
        };
        let lexical_side = async {
            if !want_lexical {
                return (None, 0.0);
            }
            let t = Instant::now();
            let text = if self.config.strip_question_words {
                analysis::lexical_query(&req.query)
            } else {
                std::borrow::Cow::Borrowed(req.query.as_str())
            };
            let hits = self.indexes.lexical.search(&text, filter, depth);
            let hits = hits.instrument(tracing::info_span!("search.lexical")).await.map_err(|e| {
                tracing::warn!(error = %e, "lexical search failed");
                LEXICAL.to_owned()
            });
            (Some(hits), ms(t))
        };
        // The entities the query names: the graph source's starting points,
        // and a ranking signal.
        let graph_list = want_graph && weights.graph > 0.0;
        let entity_signal = self.config.ranking.entity > 0.0 && self.config.ranking.depth > 0;
        let graph_side = async {
            if !graph_list && !entity_signal {
                return (None, Vec::new(), 0.0);
            }
            let t = Instant::now();
            let graph = &self.indexes.graph;
            let found = async {
                let entities = graph.entities_in(&filter.org, &req.query).await?;
                let hits = if graph_list && !entities.is_empty() {
                    graph.memories_mentioning(&entities, filter, depth).await?
                } else {
                    Vec::new()
                };
                Ok::<_, loci_index::IndexError>((hits, entities))
            }
            .instrument(tracing::info_span!("search.graph"))
            .await;
            match found {
                Ok((hits, entities)) => (graph_list.then_some(Ok(hits)), entities, ms(t)),
                Err(e) => {
                    tracing::warn!(error = %e, "graph search failed");
                    (graph_list.then(|| Err(GRAPH.to_owned())), Vec::new(), ms(t))
                }
            }
        };
        let ((vector, embed, vector_ms), (lexical, lexical_ms), (graph, entities, graph_ms)) =
            tokio::join!(vector_side, lexical_side, graph_side);
        Gathered {
            vector,
            lexical,
            graph,
            entities,
            timings: Timings { embed, vector: vector_ms, lexical: lexical_ms, graph: graph_ms, ..Timings::default() },
        }
    }

    /// Searches the caller's visible active memories.
    pub async fn search(&self, p: &Principal, req: SearchRequest) -> Result<SearchResponse, DomainError> {
        self.validate(&req)?;
        let started = Instant::now();
        let (filter, vis_user) = self.filter_for(p, &req).await?;
        // The caller's experiment variant, unless the request chose weights.
        let mut req = req;
        let mut experiment = None;
        if let (Some(exps), None) = (&self.experiments, req.weights) {
            match exps.active_variant(p, vis_user).await {
                Ok(Some(active)) => {
                    req.weights = active.config.weights;
                    if let (Some(mode), SearchMode::Auto) = (active.config.mode, req.mode) {
                        req.mode = mode;
                    }
                    experiment = Some(active.tag);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "experiment lookup failed; default search configuration used"),
            }
        }
        let weights = req.weights.unwrap_or_else(|| self.default_weights());
        let depth = self.config.candidates.max(req.limit);
        let mut timings;
        let mut missing = Vec::new();
        let mut degraded = false;

        let Gathered { vector, lexical, graph, entities: query_entities, timings: gathered } =
            self.gather(&req, &filter, weights, depth).await;
        timings = gathered;

        let mut answered = 0;
        let mut take = |outcome: Option<SourceOutcome>| -> Vec<Hit> {
            match outcome {
                Some(Ok(hits)) => {
                    answered += 1;
                    hits
                }
                Some(Err(source)) => {
                    missing.push(source);
                    Vec::new()
                }
                None => Vec::new(),
            }
        };
        let vector_hits = take(vector);
        let lexical_hits = take(lexical);
        let mut graph_hits = take(graph);
        let embedding_missing = missing.iter().any(|m| m == "embedding");
        if req.mode == SearchMode::Semantic && embedding_missing {
            return Err(DomainError::EmbedderUnavailable);
        }
        // Every fused source failed: the graph list answers alone when the
        // query names known entities, even with a zero weight.
        let mut weights = weights;
        if answered == 0
            && matches!(req.mode, SearchMode::Auto | SearchMode::Hybrid)
            && weights.graph <= 0.0
            && !query_entities.is_empty()
        {
            match self.indexes.graph.memories_mentioning(&query_entities, &filter, depth).await {
                Ok(hits) => {
                    graph_hits = hits;
                    weights.graph = 1.0;
                    answered = 1;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "graph fallback failed");
                    missing.push(GRAPH.to_owned());
                }
            }
        }
        if answered == 0 {
            return Err(DomainError::SearchUnavailable(missing));
        }
        let mode = match req.mode {
            SearchMode::Auto if embedding_missing => {
                degraded = true;
                SearchMode::Lexical
            }
            SearchMode::Auto => SearchMode::Hybrid,
            other => other,
        };
        degraded |= !missing.is_empty();

        let t = Instant::now();
        let ranking = self.config.ranking;
        let mut fused = tracing::info_span!("search.fusion").in_scope(|| {
            ranking::fuse_lists(
                &[
                    RankedList { source: Source::Vector, weight: weights.vector, hits: &vector_hits },
                    RankedList { source: Source::Lexical, weight: weights.lexical, hits: &lexical_hits },
                    RankedList { source: Source::Graph, weight: weights.graph, hits: &graph_hits },
                ],
                ranking.fusion,
                ranking.rrf_k,
            )
        });
        // Deduplication needs spare copies to fill the places it frees.
        let wanted = if req.dedupe { req.limit * 3 } else { req.limit };
        let stage = self.reranker.as_ref().filter(|_| req.rerank != Some(false));
        // The signals and the reranker see their candidates, however few
        // are asked for.
        let signal_depth = if ranking.has_signals() { ranking.depth } else { 0 };
        let loaded = wanted.max(stage.map_or(0, |s| s.candidates)).max(signal_depth);
        // Load a few more than that: an index may still hold a memory the
        // store has since hidden.
        let ids: Vec<MemoryId> = fused.iter().take(loaded + loaded / 2 + 2).map(|f| f.id).collect();
        let hydrate = self.memories.visible_in_order_unlogged(p, &ids, loaded, req.as_of);
        let neighbours = async {
            if signal_depth > 0 && ranking.neighbour > 0.0 {
                self.memories.stream_neighbours(p, &ids[..ids.len().min(signal_depth)]).await
            } else {
                Ok(HashMap::new())
            }
        };
        let (loaded_views, neighbours) =
            tokio::join!(hydrate.instrument(tracing::info_span!("search.hydrate")), neighbours);
        let (mut views, pending) = loaded_views?;
        let mut by_id: HashMap<MemoryId, Fused> = fused.iter().map(|f| (f.id, f.clone())).collect();
        if signal_depth > 0 {
            let neighbours = neighbours.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "stream neighbours unavailable; ranked without them");
                HashMap::new()
            });
            let signals: HashMap<MemoryId, Signals> = views
                .iter()
                .take(signal_depth)
                .map(|v| {
                    let (before, after) = neighbours.get(&v.memory.id).copied().unwrap_or_default();
                    let content = &v.memory.content;
                    let signals = Signals {
                        before,
                        after,
                        names_query_entity: analysis::names_any(content, &query_entities),
                        time_expression: analysis::has_time_expression(content),
                    };
                    (v.memory.id, signals)
                })
                .collect();
            ranking::rescore(&mut fused, &signals, analysis::asks_when(&req.query), &ranking);
            let position: HashMap<MemoryId, usize> = fused.iter().enumerate().map(|(i, f)| (f.id, i)).collect();
            views.sort_by_key(|v| position.get(&v.memory.id).copied().unwrap_or(usize::MAX));
            for f in &fused {
                if let Some(entry) = by_id.get_mut(&f.id) {
                    entry.score = f.score;
                }
            }
        }
        timings.fuse = ms(t);
        let mut reranker = None;
        if req.rerank == Some(true) && self.reranker.is_none() {
            // Asked for, not configured: said as a missing source.
            missing.push("reranker".to_owned());
            degraded = true;
        }
        if let Some(stage) = stage {
            let t = Instant::now();
            match rerank(stage, &req.query, &mut views, &mut by_id)
                .instrument(tracing::info_span!("search.rerank"))
                .await
            {
                Ok(()) => reranker = Some(stage.model.model().to_owned()),
                Err(e) => {
                    // The fused order stands.
                    tracing::warn!(error = %e, "reranking failed; fused order kept");
                    missing.push("reranker".to_owned());
                    degraded = true;
                }
            }
            timings.rerank = ms(t);
        }
        views.truncate(wanted);
        self.memories.log_pending_reads(p, pending, &views, "search");
        let t = Instant::now();
        let results: Vec<SearchResult> = views
            .into_iter()
            .filter_map(|view| {
                let f = by_id.remove(&view.memory.id)?;
                Some(SearchResult {
                    memory_id: view.memory.id,
                    score: f.score,
                    content: view.memory.content.clone(),
                    highlights: f.highlights,
                    memory: view,
                    scores: f.scores,
                })
            })
            .collect();
        let (results, dedup) = if req.dedupe {
            let (mut kept, report) = dedupe_by_scope(results);
            kept.truncate(req.limit);
            (kept, Some(report))
        } else {
            (results, None)
        };
        timings.fuse += ms(t);
        let query_id = uuid::Uuid::now_v7().to_string();
        let sources_of = |s: &SourceScores| {
            let mut out = Vec::new();
            for (name, score) in [(VECTOR, s.vector), (LEXICAL, s.lexical), (GRAPH, s.graph)] {
                if score.is_some() {
                    out.push(name);
                }
            }
            out
        };
        self.recent.remember(
            query_id.clone(),
            RecentQuery {
                org: p.org_id.clone(),
                user: vis_user,
                results: results.iter().map(|r| (r.memory_id, sources_of(&r.scores))).collect(),
                experiment: experiment.clone(),
            },
        );
        Ok(SearchResponse {
            query_id,
            total_count: results.len(),
            results,
            took_ms: ms(started),
            meta: SearchMeta {
                mode,
                degraded_mode: degraded,
                missing_sources: missing,
                timings_ms: timings,
                dedup,
                experiment,
                reranker,
            },
        })
    }

    /// Visible memories nearest to memory `id` in the vector index.
    pub async fn similar(&self, p: &Principal, id: MemoryId, limit: usize) -> Result<Vec<SearchResult>, DomainError> {
        rules::limit("limit", limit, MAX_SEARCH_LIMIT).map_err(|e| DomainError::Validation(vec![e]))?;
        let base = self.memories.get_quiet(p, id).await?;
        let (Some(vector), Some(embedder)) = (&self.indexes.vector, &self.indexes.embedder) else {
            return Err(DomainError::EmbedderUnavailable);
        };
        let query = match vector.embedding(&p.org_id, id).await? {
            Some(v) => v,
            // Not indexed yet: embed its content now.
            None => embedder.embed_one(&base.content).await.map_err(|_| DomainError::EmbedderUnavailable)?,
        };
        let vis = self.memories.visibility(p).await?;
        let mut filter = self.filter(p, vis, &SearchFilters::default());
        filter.exclude = vec![id];
        let hits = vector.search(&query, &filter, limit + limit / 2 + 2).await?;
        let ids: Vec<MemoryId> = hits.iter().map(|h| h.id).collect();
        let score: HashMap<MemoryId, f32> = hits.iter().map(|h| (h.id, h.score)).collect();
        let views = self.memories.visible_in_order(p, &ids, limit, "similar").await?;
        Ok(views
            .into_iter()
            .take(limit)
            .map(|view| {
                let s = score.get(&view.memory.id).copied().unwrap_or(0.0);
                SearchResult {
                    memory_id: view.memory.id,
                    score: s,
                    content: view.memory.content.clone(),
                    highlights: Vec::new(),
                    memory: view,
                    scores: SourceScores { vector: Some(s), fused: s, ..Default::default() },
                }
            })
            .collect())
    }

    /// Visible active memories mentioning the entities `query` names
    /// (graph only), best first.
    pub async fn by_entities(&self, p: &Principal, query: &str, limit: usize) -> Result<Vec<Hit>, DomainError> {
        let names = self.indexes.graph.entities_in(&p.org_id, query).await?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let vis = self.memories.visibility(p).await?;
        let filter = self.filter(p, vis, &SearchFilters::default());
        Ok(self.indexes.graph.memories_mentioning(&names, &filter, limit).await?)
    }

    /// Visible memories sharing entities with memory `id` (graph).
    pub async fn related_by_graph(
        &self,
        p: &Principal,
        id: MemoryId,
        limit: usize,
    ) -> Result<Vec<MemoryId>, DomainError> {
        self.memories.get_quiet(p, id).await?;
        let vis = self.memories.visibility(p).await?;
        let mut filter = self.filter(p, vis, &SearchFilters::default());
        filter.exclude = vec![id];
        Ok(self.indexes.graph.related(id, &filter, limit).await?.into_iter().map(|h| h.id).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fuse_rrf(lists: &[RankedList<'_>], k: f32) -> Vec<Fused> {
        ranking::fuse_lists(lists, Fusion::Rrf, k)
    }

    fn hits(ids: &[MemoryId]) -> Vec<Hit> {
        ids.iter().map(|id| Hit::new(*id, 1.0)).collect()
    }

    #[test]
    fn rank_one_in_two_lists_with_equal_weights_scores_two_over_61() {
        let a = MemoryId::new();
        let (v, l) = (hits(&[a]), hits(&[a]));
        let fused = fuse_rrf(
            &[
                RankedList { source: Source::Vector, weight: 1.0, hits: &v },
                RankedList { source: Source::Lexical, weight: 1.0, hits: &l },
            ],
            60.0,
        );
        assert_eq!(fused.len(), 1);
        assert!((fused[0].score - 2.0 / 61.0).abs() < 1e-7);
    }

    #[test]
    fn weights_change_the_order() {
        let (a, b) = (MemoryId::new(), MemoryId::new());
        // a leads the vector list, b the lexical list.
        let (v, l) = (hits(&[a, b]), hits(&[b, a]));
        let order = |wv: f32, wl: f32| -> Vec<MemoryId> {
            fuse_rrf(
                &[
                    RankedList { source: Source::Vector, weight: wv, hits: &v },
                    RankedList { source: Source::Lexical, weight: wl, hits: &l },
                ],
                60.0,
            )
            .into_iter()
            .map(|f| f.id)
            .collect()
        };
        assert_eq!(order(0.7, 0.3), vec![a, b]);
        assert_eq!(order(0.3, 0.7), vec![b, a]);
        // A zero weight removes the source: only its own ranks count.
        let only_lexical = fuse_rrf(
            &[
                RankedList { source: Source::Vector, weight: 0.0, hits: &hits(&[MemoryId::new()]) },
                RankedList { source: Source::Lexical, weight: 1.0, hits: &l },
            ],
            60.0,
        );
        assert_eq!(only_lexical.iter().map(|f| f.id).collect::<Vec<_>>(), vec![b, a]);
    }

    #[test]
    fn fused_scores_keep_each_sources_own_score() {
        let a = MemoryId::new();
        let v = vec![Hit::new(a, 0.9)];
        let g = vec![Hit::new(a, 2.0)];
        let fused = fuse_rrf(
            &[
                RankedList { source: Source::Vector, weight: 0.4, hits: &v },
                RankedList { source: Source::Graph, weight: 0.25, hits: &g },
            ],
            60.0,
        );
        let s = &fused[0].scores;
        assert_eq!((s.vector, s.lexical, s.graph), (Some(0.9), None, Some(2.0)));
        assert!((s.fused - (0.4 / 61.0 + 0.25 / 61.0)).abs() < 1e-7);
    }
}
