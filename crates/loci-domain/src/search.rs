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
    pub rrf_k: f32,
    pub weights: Weights,
    /// Results taken from each source before fusion (at least the limit).
    pub candidates: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self { rrf_k: 60.0, weights: Weights { vector: 0.30, lexical: 0.70, graph: 0.10 }, candidates: 50 }
    }
}

impl SearchConfig {
    /// From `[search]`.
    pub fn from_settings(s: &loci_settings::SearchSettings) -> Self {
        Self {
            rrf_k: s.rrf_k,
            weights: Weights { vector: s.weight_vector, lexical: s.weight_lexical, graph: s.weight_graph },
            candidates: s.candidates,
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
}

/// Per-source scores of a result: each source's own score, and the fused one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SourceScores {
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

/// Weighted reciprocal rank fusion: a memory at 1-based rank r in a list of
/// weight w gains w / (k + r); best first, ties by id for a stable order.
pub fn fuse(lists: &[RankedList<'_>], k: f32) -> Vec<Fused> {
    let mut acc: HashMap<MemoryId, Fused> = HashMap::new();
    for list in lists {
        if list.weight <= 0.0 {
            continue;
        }
        for (rank, hit) in list.hits.iter().enumerate() {
            let entry = acc.entry(hit.id).or_insert_with(|| Fused {
                id: hit.id,
                score: 0.0,
                scores: SourceScores::default(),
                highlights: Vec::new(),
            });
            entry.score += list.weight / (k + (rank + 1) as f32);
            match list.source {
                Source::Vector => entry.scores.vector = Some(hit.score),
                Source::Lexical => {
                    entry.scores.lexical = Some(hit.score);
                    entry.highlights = hit.highlights.clone();
                }
                Source::Graph => entry.scores.graph = Some(hit.score),
            }
        }
    }
    let mut out: Vec<Fused> = acc.into_values().collect();
    for f in &mut out {
        f.scores.fused = f.score;
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    out
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
    /// Fusion weights (default from settings: 0.30 / 0.70 / 0.10).
    pub weights: Option<Weights>,
    /// Keep identical content (normalised) once, in the copy of the highest
    /// scope precedence (tie: newest), where its best copy ranked; the
    /// answer's `meta.dedup` reports what went. Default false.
    #[serde(default)]
    pub dedupe: Option<bool>,
    /// RFC 3339: search what was current at that time (memories created by
    /// then and not yet superseded or retracted).
    pub as_of: Option<String>,
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
type SourceOutcome = Result<Vec<Hit>, String>;

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
        }
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

    fn validate(req: &SearchRequest) -> Result<(), DomainError> {
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

    /// Searches the caller's visible active memories.
    pub async fn search(&self, p: &Principal, req: SearchRequest) -> Result<SearchResponse, DomainError> {
        Self::validate(&req)?;
        let started = Instant::now();
        let vis = self.memories.visibility(p).await?;
        let vis_user = vis.user_id;
        let mut filter = self.filter(p, vis, &req.filters);
        if let Some(at) = req.as_of {
            // Memories archived since may have been current then; the store
            // checks their validity when it loads them.
            filter.states = vec![loci_core::MemoryState::Active, loci_core::MemoryState::Archived];
            filter.to = Some(filter.to.map_or(at, |to| to.min(at)));
        }
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
        let mut timings = Timings::default();
        let mut missing = Vec::new();
        let mut degraded = false;

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
            let query = match embedder.embed_one(&req.query).instrument(tracing::info_span!("search.embed")).await {
                Ok(q) => q,
                Err(e) => {
                    tracing::warn!(error = %e, "query embedding failed");
                    return (Some(Err("embedding".to_owned())), ms(t), 0.0);
                }
            };
            let embed_ms = ms(t);
            let t = Instant::now();
            let hits = vector.search(&query, &filter, depth).instrument(tracing::info_span!("search.vector")).await;
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
            let hits = self.indexes.lexical.search(&req.query, &filter, depth);
            let hits = hits.instrument(tracing::info_span!("search.lexical")).await.map_err(|e| {
                tracing::warn!(error = %e, "lexical search failed");
                LEXICAL.to_owned()
            });
            (Some(hits), ms(t))
        };
        let graph_side = async {
            if !want_graph || weights.graph <= 0.0 {
                return (None, 0.0);
            }
            let t = Instant::now();
            let graph = &self.indexes.graph;
            let hits = async {
                match graph.entities_in(&filter.org, &req.query).await {
                    Ok(entities) if entities.is_empty() => Ok(Vec::new()),
                    Ok(entities) => graph.memories_mentioning(&entities, &filter, depth).await,
                    Err(e) => Err(e),
                }
            }
            .instrument(tracing::info_span!("search.graph"))
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "graph search failed");
                GRAPH.to_owned()
            });
            (Some(hits), ms(t))
        };
        let ((vector, embed_ms, vector_ms), (lexical, lexical_ms), (graph, graph_ms)) =
            tokio::join!(vector_side, lexical_side, graph_side);
        timings.embed = embed_ms;
        timings.vector = vector_ms;
        timings.lexical = lexical_ms;
        timings.graph = graph_ms;

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
        let graph_hits = take(graph);
        let embedding_missing = missing.iter().any(|m| m == "embedding");
        if req.mode == SearchMode::Semantic && embedding_missing {
            return Err(DomainError::EmbedderUnavailable);
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
        let fused = tracing::info_span!("search.fusion").in_scope(|| {
            fuse(
                &[
                    RankedList { source: Source::Vector, weight: weights.vector, hits: &vector_hits },
                    RankedList { source: Source::Lexical, weight: weights.lexical, hits: &lexical_hits },
                    RankedList { source: Source::Graph, weight: weights.graph, hits: &graph_hits },
                ],
                self.config.rrf_k,
            )
        });
        // Load a few more than asked: an index may still hold a memory the
        // store has since hidden.
        // Deduplication needs spare copies to fill the places it frees.
        let wanted = if req.dedupe { req.limit * 3 } else { req.limit };
        let ids: Vec<MemoryId> = fused.iter().take(wanted + req.limit / 2 + 2).map(|f| f.id).collect();
        let views = self
            .memories
            .visible_in_order_at(p, &ids, wanted, "search", req.as_of)
            .instrument(tracing::info_span!("search.hydrate"))
            .await?;
        let mut by_id: HashMap<MemoryId, Fused> = fused.into_iter().map(|f| (f.id, f)).collect();
        let results: Vec<SearchResult> = views
            .into_iter()
            .take(wanted)
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
        timings.fuse = ms(t);
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

    fn hits(ids: &[MemoryId]) -> Vec<Hit> {
        ids.iter().map(|id| Hit::new(*id, 1.0)).collect()
    }

    #[test]
    fn rank_one_in_two_lists_with_equal_weights_scores_two_over_61() {
        let a = MemoryId::new();
        let (v, l) = (hits(&[a]), hits(&[a]));
        let fused = fuse(
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
            fuse(
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
        let only_lexical = fuse(
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
        let fused = fuse(
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
