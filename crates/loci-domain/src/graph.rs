//! The graph as a caller sees it (REST `/api/v1/graph`, MCP graph tools):
//! stats, counts by dimension, tags, graph search, timelines, connectivity
//! and communities. Every answer is computed from the caller's visible
//! memories only; the algorithms are `loci_index::algorithms`, so any graph
//! engine gives the same answer for the same data.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use loci_core::MemoryId;
use loci_core::MemoryState;
use loci_index::algorithms::{self, DatePrecision};
pub use loci_index::analytics::Dimension;
use loci_index::analytics::{MAX_GRAPH_MENTIONS, MAX_SCANNED_MEMORIES, TagSet};
use loci_index::{GraphApi, SearchFilter};
use loci_security::Principal;
use loci_stores::repo::memory_analytics;
use serde::{Deserialize, Serialize};

use crate::entities::{EntityView, checked, entity_name, number_in};
use crate::memories::{MemoryService, MemoryView};
use crate::rules::MAX_TAG_KEY_CHARS;
use crate::search::SearchService;
use crate::{DomainError, FieldViolation};

/// Buckets, pairs, communities or events per answer unless asked otherwise.
pub const DEFAULT_LIMIT: usize = 50;
/// The most of them one answer lists.
pub const MAX_LIMIT: usize = 500;
/// Members listed per community unless asked otherwise (and at most).
pub const DEFAULT_MEMBERS: usize = 10;
pub const MAX_MEMBERS: usize = 100;
/// Longest query of a graph search.
pub const MAX_QUERY_CHARS: usize = 2048;
/// Default seed of the community algorithm.
pub const DEFAULT_SEED: u64 = 42;

/// The dimensions of `GET /api/v1/graph/aggregate/{dimension}`, for the
/// document (the route takes the name and checks it against [`Dimension`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DimensionName {
    Category,
    Scope,
    ArtifactType,
    ArtifactRef,
    Tag,
    Entity,
    App,
    Source,
    State,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GraphStatsView {
    /// Visible active memories.
    pub memories: u64,
    pub memories_with_entities: u64,
    pub entities: u64,
    pub mentions: u64,
    /// Distinct pairs of entities mentioned together.
    pub co_mention_pairs: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BucketView {
    pub value: String,
    /// The app's name for `app`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub memories: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AggregateView {
    pub dimension: String,
    /// Most memories first, then by value.
    pub buckets: Vec<BucketView>,
    /// Distinct values (not only those listed).
    pub values: u64,
    /// Visible memories counted.
    pub memories: u64,
    pub without_value: u64,
    /// Tags only: whether only the newest 20,000 tagged memories were read.
    pub truncated: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TagPairView {
    /// `key=value`; `a < b`.
    pub a: String,
    pub b: String,
    pub memories: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TagCooccurrenceView {
    pub pairs: Vec<TagPairView>,
    /// Tagged memories read.
    pub memories_scanned: u64,
    pub truncated: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RelatedTagView {
    /// `key=value`.
    pub tag: String,
    /// Memories having both this tag and the key.
    pub memories: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RelatedTagsView {
    pub key: String,
    pub memories_with_key: u64,
    pub related: Vec<RelatedTagView>,
    pub truncated: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GraphSearchHit {
    pub score: f32,
    pub memory: MemoryView,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GraphSearchView {
    /// Memories mentioning the entities the query names, best first.
    pub results: Vec<GraphSearchHit>,
    pub total: usize,
}

/// What a timeline event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// The memory was recorded.
    Created,
    /// The memory was changed after it was recorded.
    Updated,
    /// The memory's text names this date.
    Stated,
}

impl EventType {
    const ALL: [EventType; 3] = [Self::Created, Self::Updated, Self::Stated];

    fn parse(text: &str) -> Option<Self> {
        match text {
            "created" => Some(Self::Created),
            "updated" => Some(Self::Updated),
            "stated" => Some(Self::Stated),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TimelineEvent {
    /// When: an instant for created/updated, a calendar date for stated.
    pub date: String,
    /// `instant`, `day` or `month`.
    pub precision: &'static str,
    pub event_type: EventType,
    pub memory_id: MemoryId,
    /// The memory's first 200 characters.
    pub excerpt: String,
    pub category: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TimelineView {
    pub entity: Option<EntityView>,
    /// Oldest first.
    pub events: Vec<TimelineEvent>,
    pub memories_scanned: u64,
    /// Whether older memories were not read (the newest 20,000 were).
    pub truncated: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConnectivityView {
    pub entities: u64,
    /// Distinct co-mention pairs.
    pub edges: u64,
    pub components: u64,
    pub largest_component: u64,
    pub isolated_entities: u64,
    pub density: f64,
    pub average_degree: f64,
    /// The largest components' sizes, largest first (at most 10).
    pub component_sizes: Vec<u64>,
    /// Whether the graph was cut at 1,000,000 mentions.
    pub truncated: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EntityCommunityView {
    /// Rank: 0 is the largest.
    pub id: usize,
    pub size: usize,
    /// Most mentioned members first.
    pub members: Vec<EntityView>,
    pub memories: u64,
    pub internal_weight: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EntityCommunitiesView {
    pub communities: Vec<EntityCommunityView>,
    /// Communities of at least `min_size` (not only those listed).
    pub total: usize,
    pub seed: u64,
    pub truncated: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MemoryCommunityView {
    /// The rank of the entity community it follows.
    pub id: usize,
    pub size: usize,
    /// Newest first, at most `members`.
    pub memory_ids: Vec<MemoryId>,
    pub entities: Vec<EntityView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MemoryCommunitiesView {
    pub communities: Vec<MemoryCommunityView>,
    pub total: usize,
    pub seed: u64,
    pub truncated: bool,
}

/// `?limit=`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LimitQuery {
    #[param(value_type = Option<u64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
}

impl LimitQuery {
    pub fn parse(&self) -> Result<usize, DomainError> {
        let mut out = Vec::new();
        let limit = number_in("limit", self.limit.as_deref(), 1..=MAX_LIMIT, DEFAULT_LIMIT, &mut out);
        checked(limit, out)
    }
}

/// `GET /tags/cooccurrence` query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CooccurrenceQuery {
    #[param(value_type = Option<u64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// Only pairs set together on at least this many memories.
    #[param(value_type = Option<u64>, minimum = 1, maximum = 1000000)]
    pub min_memories: Option<String>,
}

impl CooccurrenceQuery {
    /// `(limit, min_memories)`.
    pub fn parse(&self) -> Result<(usize, u64), DomainError> {
        let mut out = Vec::new();
        let limit = number_in("limit", self.limit.as_deref(), 1..=MAX_LIMIT, DEFAULT_LIMIT, &mut out);
        let min = number_in("min_memories", self.min_memories.as_deref(), 1..=1_000_000, 1, &mut out);
        checked((limit, min), out)
    }
}

/// `GET /search/memories` and `/search/entities` query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GraphSearchQuery {
    /// The text to search for (1..2048 characters).
    #[param(required = true, min_length = 1, max_length = 2048)]
    pub q: Option<String>,
    #[param(value_type = Option<u64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

impl GraphSearchQuery {
    /// `(query, limit)`; at most `max_limit` results.
    pub fn parse(&self, max_limit: usize) -> Result<(String, usize), DomainError> {
        let mut out = Vec::new();
        let limit = number_in("limit", self.limit.as_deref(), 1..=max_limit, 10.min(max_limit), &mut out);
        let q = self.q.as_deref().map(str::trim).unwrap_or_default();
        if q.is_empty() || q.chars().count() > MAX_QUERY_CHARS {
            out.push(FieldViolation::new("q", format!("must be 1 to {MAX_QUERY_CHARS} characters")));
        }
        checked((q.to_owned(), limit), out)
    }
}

/// `GET /timeline` query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TimelineQuery {
    /// Only memories mentioning this entity.
    pub entity: Option<String>,
    /// Comma-separated: created, updated, stated (default all).
    pub event_types: Option<String>,
    #[param(value_type = Option<i32>, minimum = 1000, maximum = 9999)]
    pub from_year: Option<String>,
    #[param(value_type = Option<i32>, minimum = 1000, maximum = 9999)]
    pub to_year: Option<String>,
    #[param(value_type = Option<u64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
}

/// A parsed [`TimelineQuery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineRequest {
    pub entity: Option<String>,
    pub event_types: BTreeSet<EventType>,
    pub from_year: i32,
    pub to_year: i32,
    pub limit: usize,
}

impl TimelineQuery {
    pub fn parse(&self) -> Result<TimelineRequest, DomainError> {
        let mut out = Vec::new();
        let entity = self.entity.as_deref().and_then(|e| entity_name("entity", e, &mut out));
        let mut event_types = BTreeSet::new();
        match self.event_types.as_deref() {
            None => event_types.extend(EventType::ALL),
            Some(raw) => {
                for part in raw.split(',').map(str::trim) {
                    match EventType::parse(part) {
                        Some(t) => {
                            event_types.insert(t);
                        }
                        None => {
                            out.push(FieldViolation::new("event_types", "each must be created, updated or stated"));
                            break;
                        }
                    }
                }
            }
        }
        let from_year = number_in("from_year", self.from_year.as_deref(), 1000..=9999, 1000, &mut out);
        let to_year = number_in("to_year", self.to_year.as_deref(), 1000..=9999, 9999, &mut out);
        if from_year > to_year {
            out.push(FieldViolation::new("to_year", "must not be before from_year"));
        }
        let limit = number_in("limit", self.limit.as_deref(), 1..=MAX_LIMIT, DEFAULT_LIMIT, &mut out);
        checked(TimelineRequest { entity, event_types, from_year, to_year, limit }, out)
    }
}

/// `GET /analytics/communities/*` query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CommunitiesQuery {
    /// Fixes the algorithm's visiting order: same seed, same data, same answer.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 9223372036854775807_i64)]
    pub seed: Option<String>,
    /// Only communities of at least this many members (default 2).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 1000000)]
    pub min_size: Option<String>,
    #[param(value_type = Option<u64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// Members listed per community.
    #[param(value_type = Option<u64>, minimum = 1, maximum = 100)]
    pub members: Option<String>,
}

/// A parsed [`CommunitiesQuery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommunitiesRequest {
    pub seed: u64,
    pub min_size: usize,
    pub limit: usize,
    pub members: usize,
}

impl CommunitiesQuery {
    pub fn parse(&self) -> Result<CommunitiesRequest, DomainError> {
        let mut out = Vec::new();
        let seed = number_in("seed", self.seed.as_deref(), 0..=i64::MAX.unsigned_abs(), DEFAULT_SEED, &mut out);
        let min_size = number_in("min_size", self.min_size.as_deref(), 1..=1_000_000, 2, &mut out);
        let limit = number_in("limit", self.limit.as_deref(), 1..=MAX_LIMIT, DEFAULT_LIMIT, &mut out);
        let members = number_in("members", self.members.as_deref(), 1..=MAX_MEMBERS, DEFAULT_MEMBERS, &mut out);
        checked(CommunitiesRequest { seed, min_size, limit, members }, out)
    }
}

/// The first `n` characters of a text.
fn excerpt(text: &str, n: usize) -> String {
    text.chars().take(n).collect()
}

fn calendar_date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// The graph's read side for callers.
#[derive(Clone)]
pub struct GraphService {
    memories: MemoryService,
    search: SearchService,
    /// `None` when the graph engine cannot answer these queries.
    graph: Option<Arc<dyn GraphApi>>,
}

impl std::fmt::Debug for GraphService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphService").field("graph", &self.graph).finish_non_exhaustive()
    }
}

impl GraphService {
    pub fn new(memories: MemoryService, search: SearchService, graph: Option<Arc<dyn GraphApi>>) -> Self {
        Self { memories, search, graph }
    }

    async fn scope(&self, p: &Principal) -> Result<(&dyn GraphApi, SearchFilter), DomainError> {
        let graph = self.graph.as_deref().ok_or(DomainError::GraphAnalyticsUnavailable)?;
        let vis = self.memories.visibility(p).await?;
        Ok((graph, SearchFilter::new(p.org_id.clone(), Some(vis))))
    }

    /// The caller's filter for the analyses of the memories' own fields,
    /// which the relational store answers whatever the graph engine.
    async fn memory_scope(&self, p: &Principal) -> Result<SearchFilter, DomainError> {
        let vis = self.memories.visibility(p).await?;
        Ok(SearchFilter::new(p.org_id.clone(), Some(vis)))
    }

    pub async fn stats(&self, p: &Principal) -> Result<GraphStatsView, DomainError> {
        let (graph, filter) = self.scope(p).await?;
        let s = graph.stats(&filter).await?;
        Ok(GraphStatsView {
            memories: s.memories,
            memories_with_entities: s.memories_with_entities,
            entities: s.entities,
            mentions: s.mentions,
            co_mention_pairs: s.co_mention_pairs,
        })
    }

    /// Visible memories counted by `dimension` (a name of [`Dimension`]).
    pub async fn aggregate(&self, p: &Principal, dimension: &str, limit: usize) -> Result<AggregateView, DomainError> {
        let Some(dim) = Dimension::parse(dimension) else {
            let names: Vec<&str> = Dimension::ALL.iter().map(|d| d.as_str()).collect();
            return Err(DomainError::Validation(vec![FieldViolation::new(
                "dimension",
                format!("must be one of {}", names.join(", ")),
            )]));
        };
        let mut filter = self.memory_scope(p).await?;
        if dim == Dimension::State {
            filter.states = MemoryState::ALL.iter().copied().filter(|s| *s != MemoryState::Deleted).collect();
        }
        let tx = self.memories.db().begin_tenant_read(&filter.org).await?;
        let a = memory_analytics::aggregate(&tx, &filter, dim, limit).await?;
        tx.commit().await?;
        Ok(AggregateView {
            dimension: dim.as_str().to_owned(),
            buckets: a
                .buckets
                .into_iter()
                .map(|b| BucketView { value: b.value, label: b.label, memories: b.memories })
                .collect(),
            values: a.values,
            memories: a.memories,
            without_value: a.without_value,
            truncated: a.truncated,
        })
    }

    pub async fn tag_cooccurrence(
        &self,
        p: &Principal,
        limit: usize,
        min_memories: u64,
    ) -> Result<TagCooccurrenceView, DomainError> {
        let (sets, truncated) = self.memory_tags(p, None).await?;
        let pairs = algorithms::tag_cooccurrence(&sets, min_memories, limit)
            .into_iter()
            .map(|t| TagPairView { a: t.a, b: t.b, memories: t.memories })
            .collect();
        Ok(TagCooccurrenceView { pairs, memories_scanned: sets.len() as u64, truncated })
    }

    /// Tag sets of the newest visible tagged memories (with `key`).
    async fn memory_tags(&self, p: &Principal, key: Option<&str>) -> Result<(Vec<TagSet>, bool), DomainError> {
        let filter = self.memory_scope(p).await?;
        let tx = self.memories.db().begin_tenant_read(&filter.org).await?;
        let out = memory_analytics::memory_tags(&tx, &filter, key, MAX_SCANNED_MEMORIES).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Tags set together with tag key `key`.
    pub async fn related_tags(&self, p: &Principal, key: &str, limit: usize) -> Result<RelatedTagsView, DomainError> {
        let key = key.trim();
        if key.is_empty() || key.chars().count() > MAX_TAG_KEY_CHARS {
            return Err(DomainError::Validation(vec![FieldViolation::new(
                "key",
                format!("must be 1 to {} characters", MAX_TAG_KEY_CHARS),
            )]));
        }
        let (sets, truncated) = self.memory_tags(p, Some(key)).await?;
        let (memories_with_key, related) = algorithms::related_tags(&sets, key, limit);
        Ok(RelatedTagsView {
            key: key.to_owned(),
            memories_with_key,
            related: related.into_iter().map(|(tag, memories)| RelatedTagView { tag, memories }).collect(),
            truncated,
        })
    }

    /// Visible memories mentioning the entities `query` names.
    pub async fn search_memories(
        &self,
        p: &Principal,
        query: &str,
        limit: usize,
    ) -> Result<GraphSearchView, DomainError> {
        if self.graph.is_none() {
            return Err(DomainError::GraphAnalyticsUnavailable);
        }
        let hits = self.search.by_entities(p, query, limit).await?;
        let ids: Vec<MemoryId> = hits.iter().map(|h| h.id).collect();
        let views = self.memories.visible_in_order(p, &ids, limit, "graph_search").await?;
        let results: Vec<GraphSearchHit> = views
            .into_iter()
            .map(|memory| {
                let score = hits.iter().find(|h| h.id == memory.memory.id).map_or(0.0, |h| h.score);
                GraphSearchHit { score, memory }
            })
            .collect();
        Ok(GraphSearchView { total: results.len(), results })
    }

    /// Visible entities whose name contains `query`.
    pub async fn search_entities(
        &self,
        p: &Principal,
        query: &str,
        limit: usize,
    ) -> Result<Vec<EntityView>, DomainError> {
        let mut out = Vec::new();
        let Some(needle) = entity_name("q", query, &mut out) else {
            return Err(DomainError::Validation(out));
        };
        let (graph, filter) = self.scope(p).await?;
        Ok(graph.search_entities(&filter, &needle, limit).await?.into_iter().map(EntityView::from).collect())
    }

    pub async fn timeline(&self, p: &Principal, req: &TimelineRequest) -> Result<TimelineView, DomainError> {
        let (graph, filter) = self.scope(p).await?;
        let entity = match &req.entity {
            Some(name) => Some(graph.entity(&filter, name).await?.ok_or(DomainError::NotFound("entity"))?),
            None => None,
        };
        // The graph finds the entity's memories; the relational store,
        // the source of truth, gives their text and dates.
        let ids = match &entity {
            Some(e) => Some(
                graph
                    .entity_memories(&filter, &e.name, MAX_SCANNED_MEMORIES + 1, 0)
                    .await?
                    .ok_or(DomainError::NotFound("entity"))?
                    .ids,
            ),
            None => None,
        };
        let tx = self.memories.db().begin_tenant_read(&filter.org).await?;
        let memories = memory_analytics::dated_memories(&tx, &filter, ids.as_deref(), MAX_SCANNED_MEMORIES + 1).await?;
        tx.commit().await?;
        let truncated = memories.len() > MAX_SCANNED_MEMORIES;
        let in_range = |year: i32| (req.from_year..=req.to_year).contains(&year);
        let mut events: Vec<(NaiveDate, DateTime<Utc>, TimelineEvent)> = Vec::new();
        for m in memories.iter().take(MAX_SCANNED_MEMORIES) {
            let event = |date: String, precision, event_type| TimelineEvent {
                date,
                precision,
                event_type,
                memory_id: m.id,
                excerpt: excerpt(&m.content, 200),
                category: m.category.clone(),
            };
            if req.event_types.contains(&EventType::Created) && in_range(m.created_at.year()) {
                events.push((
                    m.created_at.date_naive(),
                    m.created_at,
                    event(m.created_at.to_rfc3339(), "instant", EventType::Created),
                ));
            }
            if req.event_types.contains(&EventType::Updated)
                && m.updated_at > m.created_at
                && in_range(m.updated_at.year())
            {
                events.push((
                    m.updated_at.date_naive(),
                    m.updated_at,
                    event(m.updated_at.to_rfc3339(), "instant", EventType::Updated),
                ));
            }
            if req.event_types.contains(&EventType::Stated) {
                for (date, precision) in algorithms::dates_in_text(&m.content) {
                    if in_range(date.year()) {
                        let precision = match precision {
                            DatePrecision::Day => "day",
                            DatePrecision::Month => "month",
                        };
                        events.push((date, m.created_at, event(calendar_date(date), precision, EventType::Stated)));
                    }
                }
            }
        }
        // Oldest first; on one day, instants in order, then by memory.
        events.sort_by_key(|e| (e.0, e.1, e.2.memory_id, e.2.event_type));
        Ok(TimelineView {
            entity: entity.map(EntityView::from),
            events: events.into_iter().take(req.limit).map(|(_, _, e)| e).collect(),
            memories_scanned: memories.len().min(MAX_SCANNED_MEMORIES) as u64,
            truncated,
        })
    }

    pub async fn connectivity(&self, p: &Principal) -> Result<ConnectivityView, DomainError> {
        let (graph, filter) = self.scope(p).await?;
        let g = graph.mention_graph(&filter, MAX_GRAPH_MENTIONS).await?;
        let c = algorithms::connectivity(&g);
        Ok(ConnectivityView {
            entities: c.entities,
            edges: c.edges,
            components: c.components,
            largest_component: c.largest_component,
            isolated_entities: c.isolated_entities,
            density: c.density,
            average_degree: c.average_degree,
            component_sizes: c.component_sizes,
            truncated: g.truncated,
        })
    }

    pub async fn entity_communities(
        &self,
        p: &Principal,
        req: CommunitiesRequest,
    ) -> Result<EntityCommunitiesView, DomainError> {
        let (graph, filter) = self.scope(p).await?;
        let g = graph.mention_graph(&filter, MAX_GRAPH_MENTIONS).await?;
        let all = algorithms::entity_communities(&g, req.seed, req.min_size, req.members);
        Ok(EntityCommunitiesView {
            total: all.len(),
            communities: all
                .into_iter()
                .take(req.limit)
                .map(|c| EntityCommunityView {
                    id: c.id,
                    size: c.size,
                    members: c.members.into_iter().map(EntityView::from).collect(),
                    memories: c.memories,
                    internal_weight: c.internal_weight,
                })
                .collect(),
            seed: req.seed,
            truncated: g.truncated,
        })
    }

    pub async fn memory_communities(
        &self,
        p: &Principal,
        req: CommunitiesRequest,
    ) -> Result<MemoryCommunitiesView, DomainError> {
        let (graph, filter) = self.scope(p).await?;
        let g = graph.mention_graph(&filter, MAX_GRAPH_MENTIONS).await?;
        let all = algorithms::memory_communities(&g, req.seed, req.min_size, req.members);
        Ok(MemoryCommunitiesView {
            total: all.len(),
            communities: all
                .into_iter()
                .take(req.limit)
                .map(|c| MemoryCommunityView {
                    id: c.id,
                    size: c.size,
                    memory_ids: c.memory_ids,
                    entities: c.entities.into_iter().map(EntityView::from).collect(),
                })
                .collect(),
            seed: req.seed,
            truncated: g.truncated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_dimensions_are_the_dimensions() {
        use DimensionName::*;
        let documented: Vec<String> = [Category, Scope, ArtifactType, ArtifactRef, Tag, Entity, App, Source, State]
            .iter()
            .map(|d| serde_json::to_value(d).unwrap().as_str().unwrap().to_owned())
            .collect();
        let real: Vec<&str> = Dimension::ALL.iter().map(|d| d.as_str()).collect();
        assert_eq!(documented, real);
    }

    #[test]
    fn timeline_queries_are_checked() {
        let q = TimelineQuery {
            event_types: Some("created,born".into()),
            from_year: Some("2030".into()),
            to_year: Some("2020".into()),
            ..Default::default()
        };
        let Err(DomainError::Validation(v)) = q.parse() else { panic!("invalid") };
        let fields: Vec<&str> = v.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["event_types", "to_year"]);
        let ok =
            TimelineQuery { event_types: Some("stated".into()), entity: Some("Alice's".into()), ..Default::default() }
                .parse()
                .unwrap();
        assert_eq!(ok.entity.as_deref(), Some("alice"));
        assert_eq!(ok.event_types.into_iter().collect::<Vec<_>>(), [EventType::Stated]);
    }

    #[test]
    fn search_queries_need_text() {
        let q = GraphSearchQuery { q: Some("   ".into()), limit: Some("101".into()) };
        let Err(DomainError::Validation(v)) = q.parse(100) else { panic!("invalid") };
        assert_eq!(v.len(), 2);
        let ok = GraphSearchQuery { q: Some(" alice ".into()), limit: None }.parse(100).unwrap();
        assert_eq!(ok, ("alice".to_owned(), 10));
    }

    #[test]
    fn communities_queries_have_defaults() {
        let r = CommunitiesQuery::default().parse().unwrap();
        assert_eq!((r.seed, r.min_size, r.limit, r.members), (DEFAULT_SEED, 2, DEFAULT_LIMIT, DEFAULT_MEMBERS));
        let q = CommunitiesQuery { members: Some("1000".into()), ..Default::default() };
        assert!(matches!(q.parse(), Err(DomainError::Validation(v)) if v[0].field == "members"));
    }
}
