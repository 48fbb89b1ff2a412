//! The entity graph as a caller sees it: entities, one entity, its
//! co-mention network and the shortest path between two entities (REST
//! `/api/v1/entities`, MCP graph tools).
//!
//! Every query runs under the caller's visibility (the search filter): an
//! entity mentioned only in memories the caller cannot see does not exist
//! for them. Names are matched by their normalised form, so `Alice`,
//! `alice's` and ` ALICE ` name one entity.

use std::ops::RangeInclusive;
use std::str::FromStr;
use std::sync::Arc;

use loci_index::algorithms;
use loci_index::analytics::{MAX_COMPARED_ENTITIES, MAX_GRAPH_MENTIONS, MergeRefusal};
use loci_index::extract::normalise;
use loci_index::relations::fold_relations;
use loci_index::{EntityNetwork, EntitySummary, GraphApi, SearchFilter};
use loci_security::Principal;
use serde::{Deserialize, Serialize};

pub use loci_index::entities::{MAX_ENTITY_LIMIT, PATH_HOPS};
pub use loci_index::extract::MAX_NAME_CHARS;

use crate::memories::MemoryService;
use crate::{DomainError, FieldViolation};

/// Entities or neighbours per answer unless asked otherwise.
pub const DEFAULT_ENTITY_LIMIT: usize = 50;
/// Hops of a path search unless asked otherwise.
pub const DEFAULT_PATH_HOPS: usize = 6;

/// An entity, with the number of visible memories that mention it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EntityView {
    /// Normalised name (the entity's key; use it in paths).
    pub name: String,
    /// The name as first written.
    pub display_name: String,
    /// person, project, place, ... (what the extractor took it for).
    pub kind: String,
    /// Visible memories that mention it.
    pub memories: u64,
}

impl From<EntitySummary> for EntityView {
    fn from(e: EntitySummary) -> Self {
        Self { name: e.name, display_name: e.display_name, kind: e.kind, memories: e.memories }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EntityList {
    pub items: Vec<EntityView>,
    pub total: usize,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NeighbourView {
    pub entity: EntityView,
    /// Visible memories that mention both.
    pub shared_memories: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NetworkView {
    pub entity: EntityView,
    /// Most shared memories first, then by name.
    pub neighbours: Vec<NeighbourView>,
}

impl From<EntityNetwork> for NetworkView {
    fn from(n: EntityNetwork) -> Self {
        Self {
            entity: n.entity.into(),
            neighbours: n
                .neighbours
                .into_iter()
                .map(|x| NeighbourView { entity: x.entity.into(), shared_memories: x.shared_memories })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PathView {
    pub from: String,
    pub to: String,
    /// Whether a chain of co-mentions within `max_hops` exists.
    pub found: bool,
    /// Edges of the chain (`entities.len() - 1`); absent when none was found.
    pub hops: Option<usize>,
    /// The chain, `from` first and `to` last; empty when none was found.
    pub entities: Vec<EntityView>,
}

/// A name merged into an entity.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AliasView {
    pub alias: String,
    pub merged_at: chrono::DateTime<chrono::Utc>,
    /// Memories of the org whose mention moved.
    pub memories_moved: u64,
}

/// One entity with the names merged into it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EntityDetail {
    #[serde(flatten)]
    pub entity: EntityView,
    /// Newest first.
    pub aliases: Vec<AliasView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EntityMemoriesView {
    pub entity: EntityView,
    /// Newest first.
    pub items: Vec<crate::memories::MemoryView>,
    /// Visible memories mentioning the entity.
    pub total: u64,
}

/// The relation type of two entities mentioned in one memory.
pub const CO_MENTIONED: &str = "co_mentioned";
/// Relation types one can ask for: the typed ones, then co-mention.
pub const RELATION_TYPES: &[&str] = &[
    "works_on",
    "works_at",
    "works_with",
    "leads",
    "manages",
    "reports_to",
    "depends_on",
    "uses",
    "owns",
    "part_of",
    "replaces",
    CO_MENTIONED,
];
/// Statements of typed relations read for one entity at most.
pub const MAX_RELATION_STATEMENTS: usize = 10_000;

/// An entity related to another.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RelationView {
    /// A typed relation (`works_on`, `depends_on`, ...) that a visible
    /// memory states, or `co_mentioned`: both named in one visible memory.
    pub relation_type: String,
    /// `out` (this entity is the subject), `in` (the object), `both` for
    /// co-mentions.
    pub direction: &'static str,
    pub entity: EntityView,
    /// Visible memories stating the relation.
    pub memories: u64,
    /// When its first statement was recorded (typed relations).
    pub valid_from: Option<chrono::DateTime<chrono::Utc>>,
    /// When a later memory ended it: one that states another object for a
    /// relation of one object at a time (works_at, reports_to, part_of).
    pub valid_to: Option<chrono::DateTime<chrono::Utc>>,
    pub current: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RelationsView {
    pub entity: EntityView,
    pub direction: String,
    /// Most memories first, then by name.
    pub relations: Vec<RelationView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CentralityItem {
    pub entity: EntityView,
    /// Distinct entities co-mentioned with it.
    pub degree: u64,
    /// Sum of its co-mention counts.
    pub weighted_degree: u64,
    /// Weighted PageRank (all entities sum to 1).
    pub pagerank: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CentralityView {
    /// By PageRank, then degree, then name.
    pub items: Vec<CentralityItem>,
    /// Entities ranked.
    pub entities: usize,
    pub truncated: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DuplicateView {
    /// The suggested survivor.
    pub keep: EntityView,
    pub merge: EntityView,
    /// `same_letters`, `spelling` or `short_form`.
    pub reason: &'static str,
    /// 0..1.
    pub similarity: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DuplicatesView {
    /// Surest first.
    pub pairs: Vec<DuplicateView>,
    /// Entities compared.
    pub compared: usize,
    pub truncated: bool,
}

/// `POST /api/v1/entities/normalization/merge` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// The entity merged away (its mentions move to `target`).
    #[schema(max_length = 200)]
    pub source: String,
    #[schema(max_length = 200)]
    pub target: String,
    /// Default true: report what would change, change nothing.
    pub dry_run: Option<bool>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MergeView {
    pub source: String,
    /// The entity that remains.
    pub target: String,
    /// Visible memories whose mention moves (or moved).
    pub memories_moved: u64,
    /// Of those, memories that mentioned both.
    pub memories_mentioning_both: u64,
    /// `source` had been merged into `target` before: nothing to do.
    pub already_merged: bool,
    pub applied: bool,
    pub dry_run: bool,
}

/// Hops a subgraph reaches at most.
pub const MAX_SUBGRAPH_DEPTH: usize = 3;
/// Entities one subgraph holds at most.
pub const MAX_SUBGRAPH_NODES: usize = 200;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SubgraphEdge {
    /// `a < b`.
    pub a: String,
    pub b: String,
    pub shared_memories: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SubgraphView {
    pub center: String,
    /// The center first, then by hop.
    pub nodes: Vec<EntityView>,
    pub edges: Vec<SubgraphEdge>,
}

/// `GET /api/v1/entities/{name}/memories` query parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EntityMemoriesQuery {
    #[param(value_type = Option<u64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    #[param(value_type = Option<u64>, minimum = 0, maximum = 100000)]
    pub offset: Option<String>,
}

impl EntityMemoriesQuery {
    /// `(limit, offset)`.
    pub fn parse(&self) -> Result<(usize, usize), DomainError> {
        let mut out = Vec::new();
        let limit = number_in("limit", self.limit.as_deref(), 1..=100, 20, &mut out);
        let offset = number_in("offset", self.offset.as_deref(), 0..=100_000, 0, &mut out);
        checked((limit, offset), out)
    }
}

/// `GET /api/v1/entities/{name}/relations` query parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RelationsQuery {
    /// Comma-separated relation types (default all): works_on, works_at,
    /// works_with, leads, manages, reports_to, depends_on, uses, owns,
    /// part_of, replaces, co_mentioned.
    pub relation_types: Option<String>,
    /// in, out or both (default both).
    pub direction: Option<String>,
    #[param(value_type = Option<u64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
}

/// A parsed [`RelationsQuery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationsRequest {
    pub types: Vec<String>,
    pub direction: String,
    pub limit: usize,
}

impl RelationsQuery {
    pub fn parse(&self) -> Result<RelationsRequest, DomainError> {
        let mut out = Vec::new();
        let types: Vec<String> = match self.relation_types.as_deref() {
            None => RELATION_TYPES.iter().map(|t| (*t).to_owned()).collect(),
            Some(raw) => raw.split(',').map(|t| t.trim().to_owned()).collect(),
        };
        if types.iter().any(|t| !RELATION_TYPES.contains(&t.as_str())) {
            out.push(FieldViolation::new(
                "relation_types",
                format!("each must be one of {}", RELATION_TYPES.join(", ")),
            ));
        }
        let direction = self.direction.clone().unwrap_or_else(|| "both".to_owned());
        if !matches!(direction.as_str(), "in" | "out" | "both") {
            out.push(FieldViolation::new("direction", "must be in, out or both"));
        }
        let limit = number_in("limit", self.limit.as_deref(), 1..=MAX_ENTITY_LIMIT, DEFAULT_ENTITY_LIMIT, &mut out);
        checked(RelationsRequest { types, direction, limit }, out)
    }
}

/// `GET /api/v1/entities` query parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EntityListQuery {
    #[param(value_type = Option<u64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// Only entities that at least this many visible memories mention.
    #[param(value_type = Option<u64>, minimum = 1, maximum = 1000000)]
    pub min_memories: Option<String>,
}

/// `GET /api/v1/entities/{name}/network` query parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NetworkQuery {
    #[param(value_type = Option<u64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
}

/// `GET /api/v1/entities/path/{a}/{b}` query parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PathQuery {
    #[param(value_type = Option<u64>, minimum = 2, maximum = 12)]
    pub max_hops: Option<String>,
}

/// A whole number in `range` (or `default` when absent).
pub(crate) fn number_in<T>(
    field: &str,
    raw: Option<&str>,
    range: RangeInclusive<T>,
    default: T,
    out: &mut Vec<FieldViolation>,
) -> T
where
    T: FromStr + PartialOrd + Copy + std::fmt::Display,
{
    let Some(raw) = raw else {
        return default;
    };
    match raw.trim().parse::<T>() {
        Ok(n) if range.contains(&n) => n,
        _ => {
            out.push(FieldViolation::new(
                field,
                format!("must be a whole number from {} to {}", range.start(), range.end()),
            ));
            default
        }
    }
}

/// The normalised form of an entity name given by a caller.
pub fn entity_name(field: &str, raw: &str, out: &mut Vec<FieldViolation>) -> Option<String> {
    if raw.chars().count() > MAX_NAME_CHARS {
        out.push(FieldViolation::new(field, format!("must be at most {MAX_NAME_CHARS} characters")));
        return None;
    }
    let name = normalise(raw);
    if name.is_none() {
        out.push(FieldViolation::new(
            field,
            format!("must name an entity: 1 to {MAX_NAME_CHARS} characters besides punctuation"),
        ));
    }
    name
}

pub(crate) fn checked<T>(value: T, out: Vec<FieldViolation>) -> Result<T, DomainError> {
    if out.is_empty() { Ok(value) } else { Err(DomainError::Validation(out)) }
}

impl EntityListQuery {
    /// `(min_memories, limit)`.
    pub fn parse(&self) -> Result<(u64, usize), DomainError> {
        let mut out = Vec::new();
        let limit = number_in("limit", self.limit.as_deref(), 1..=MAX_ENTITY_LIMIT, DEFAULT_ENTITY_LIMIT, &mut out);
        let min = number_in("min_memories", self.min_memories.as_deref(), 1..=1_000_000, 1, &mut out);
        checked((min, limit), out)
    }
}

impl NetworkQuery {
    pub fn parse(&self) -> Result<usize, DomainError> {
        let mut out = Vec::new();
        let limit = number_in("limit", self.limit.as_deref(), 1..=MAX_ENTITY_LIMIT, DEFAULT_ENTITY_LIMIT, &mut out);
        checked(limit, out)
    }
}

impl PathQuery {
    pub fn parse(&self) -> Result<usize, DomainError> {
        let mut out = Vec::new();
        let hops = number_in("max_hops", self.max_hops.as_deref(), PATH_HOPS, DEFAULT_PATH_HOPS, &mut out);
        checked(hops, out)
    }
}

/// The entity graph's read side for callers.
#[derive(Clone)]
pub struct EntityService {
    memories: MemoryService,
    /// `None` when the graph backend cannot answer these queries (yet):
    /// every call is then `GRAPH_ANALYTICS_UNAVAILABLE`.
    graph: Option<Arc<dyn GraphApi>>,
}

impl std::fmt::Debug for EntityService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntityService").field("graph", &self.graph).finish_non_exhaustive()
    }
}

impl EntityService {
    pub fn new(memories: MemoryService, graph: Option<Arc<dyn GraphApi>>) -> Self {
        Self { memories, graph }
    }

    async fn scope(&self, p: &Principal) -> Result<(&dyn GraphApi, SearchFilter), DomainError> {
        let graph = self.graph.as_deref().ok_or(DomainError::GraphAnalyticsUnavailable)?;
        let vis = self.memories.visibility(p).await?;
        Ok((graph, SearchFilter::new(p.org_id.clone(), Some(vis))))
    }

    /// Entities of the caller's visible memories, most mentioned first.
    pub async fn list(&self, p: &Principal, min_memories: u64, limit: usize) -> Result<EntityList, DomainError> {
        let (graph, filter) = self.scope(p).await?;
        let items: Vec<EntityView> =
            graph.entities(&filter, min_memories, limit).await?.into_iter().map(EntityView::from).collect();
        Ok(EntityList { total: items.len(), items })
    }

    /// One entity (`name` as given: it is normalised here; a name merged
    /// into another entity finds that entity), with the names merged into it.
    pub async fn get(&self, p: &Principal, name: &str) -> Result<EntityDetail, DomainError> {
        let mut out = Vec::new();
        let name = entity_name("name", name, &mut out);
        let name = checked(name, out)?.ok_or(DomainError::NotFound("entity"))?;
        let (graph, filter) = self.scope(p).await?;
        let entity = graph.entity(&filter, &name).await?.ok_or(DomainError::NotFound("entity"))?;
        let aliases = graph
            .aliases(&p.org_id, Some(&entity.name))
            .await?
            .into_iter()
            .map(|a| AliasView { alias: a.alias, merged_at: a.merged_at, memories_moved: a.memories_moved })
            .collect();
        Ok(EntityDetail { entity: entity.into(), aliases })
    }

    /// The visible memories mentioning an entity, newest first.
    pub async fn memories(
        &self,
        p: &Principal,
        name: &str,
        limit: usize,
        offset: usize,
    ) -> Result<EntityMemoriesView, DomainError> {
        let mut out = Vec::new();
        let name = entity_name("name", name, &mut out);
        let name = checked(name, out)?.ok_or(DomainError::NotFound("entity"))?;
        let (graph, filter) = self.scope(p).await?;
        let page =
            graph.entity_memories(&filter, &name, limit, offset).await?.ok_or(DomainError::NotFound("entity"))?;
        let items = self.memories.visible_in_order(p, &page.ids, limit, "entity").await?;
        Ok(EntityMemoriesView { total: page.entity.memories, entity: page.entity.into(), items })
    }

    /// The relations of an entity: typed ones its visible memories state
    /// (with when they held), then co-mentions, filtered by type and
    /// direction, at most `req.limit`.
    pub async fn relations(
        &self,
        p: &Principal,
        name: &str,
        req: &RelationsRequest,
    ) -> Result<RelationsView, DomainError> {
        let mut out = Vec::new();
        let name = entity_name("name", name, &mut out);
        let name = checked(name, out)?.ok_or(DomainError::NotFound("entity"))?;
        let (graph, filter) = self.scope(p).await?;
        let facts = graph
            .relation_statements(&filter, &name, MAX_RELATION_STATEMENTS)
            .await?
            .ok_or(DomainError::NotFound("entity"))?;
        let me = facts.entity.name.clone();
        let others: std::collections::HashMap<&str, &EntitySummary> =
            facts.entities.iter().map(|e| (e.name.as_str(), e)).collect();
        let wants = |t: &str, direction: &str| {
            req.types.iter().any(|x| x == t)
                && (req.direction == "both" || direction == "both" || req.direction == direction)
        };
        let mut relations: Vec<RelationView> = Vec::new();
        for r in fold_relations(&facts.statements) {
            let (direction, other) = if r.subject == me {
                ("out", &r.object)
            } else if r.object == me {
                ("in", &r.subject)
            } else {
                continue;
            };
            let Some(entity) = others.get(other.as_str()) else { continue };
            if wants(r.predicate.as_str(), direction) {
                relations.push(RelationView {
                    relation_type: r.predicate.as_str().to_owned(),
                    direction,
                    entity: (*entity).clone().into(),
                    memories: r.memories,
                    valid_from: Some(r.valid_from),
                    valid_to: r.valid_to,
                    current: r.valid_to.is_none(),
                });
            }
        }
        if wants(CO_MENTIONED, "both") && relations.len() < req.limit {
            let network = graph.network(&filter, &me, req.limit - relations.len()).await?;
            relations.extend(network.into_iter().flat_map(|n| n.neighbours).map(|n| RelationView {
                relation_type: CO_MENTIONED.to_owned(),
                direction: "both",
                entity: n.entity.into(),
                memories: n.shared_memories,
                valid_from: None,
                valid_to: None,
                current: true,
            }));
        }
        relations.truncate(req.limit);
        Ok(RelationsView { entity: facts.entity.into(), direction: req.direction.clone(), relations })
    }

    /// The entities within `depth` co-mention hops of an entity (at most
    /// `limit` neighbours per entity expanded, [`MAX_SUBGRAPH_NODES`] in
    /// all) and the co-mentions between them that those hops found.
    pub async fn subgraph(
        &self,
        p: &Principal,
        name: &str,
        depth: usize,
        limit: usize,
    ) -> Result<SubgraphView, DomainError> {
        if !(1..=MAX_SUBGRAPH_DEPTH).contains(&depth) {
            return Err(DomainError::Validation(vec![FieldViolation::new(
                "depth",
                format!("must be from 1 to {MAX_SUBGRAPH_DEPTH}"),
            )]));
        }
        let center = self.network(p, name, limit).await?;
        let mut nodes: Vec<EntityView> = vec![center.entity.clone()];
        let mut edges: std::collections::BTreeMap<(String, String), u64> = std::collections::BTreeMap::new();
        let mut frontier = vec![center];
        for hop in 1..=depth {
            let mut next_names: Vec<String> = Vec::new();
            for network in &frontier {
                for n in &network.neighbours {
                    let (a, b) = (network.entity.name.clone(), n.entity.name.clone());
                    let key = if a < b { (a, b) } else { (b, a) };
                    edges.insert(key, n.shared_memories);
                    if !nodes.iter().any(|x| x.name == n.entity.name) && nodes.len() < MAX_SUBGRAPH_NODES {
                        nodes.push(n.entity.clone());
                        next_names.push(n.entity.name.clone());
                    }
                }
            }
            if hop == depth {
                break;
            }
            let mut next = Vec::with_capacity(next_names.len());
            for name in next_names {
                next.push(self.network(p, &name, limit).await?);
            }
            frontier = next;
        }
        // Only edges between listed nodes.
        edges.retain(|(a, b), _| nodes.iter().any(|n| &n.name == a) && nodes.iter().any(|n| &n.name == b));
        Ok(SubgraphView {
            center: nodes[0].name.clone(),
            nodes,
            edges: edges.into_iter().map(|((a, b), shared_memories)| SubgraphEdge { a, b, shared_memories }).collect(),
        })
    }

    /// The most central entities of the visible graph.
    pub async fn centrality(&self, p: &Principal, limit: usize) -> Result<CentralityView, DomainError> {
        let (graph, filter) = self.scope(p).await?;
        let g = graph.mention_graph(&filter, MAX_GRAPH_MENTIONS).await?;
        let items = algorithms::centrality(&g, limit)
            .into_iter()
            .map(|c| CentralityItem {
                entity: c.entity.into(),
                degree: c.degree,
                weighted_degree: c.weighted_degree,
                pagerank: c.pagerank,
            })
            .collect();
        Ok(CentralityView { items, entities: g.entities.len(), truncated: g.truncated })
    }

    /// Pairs of visible entities that likely name one thing.
    pub async fn duplicates(&self, p: &Principal, limit: usize) -> Result<DuplicatesView, DomainError> {
        let (graph, filter) = self.scope(p).await?;
        let entities = graph.entities(&filter, 1, MAX_COMPARED_ENTITIES + 1).await?;
        let truncated = entities.len() > MAX_COMPARED_ENTITIES;
        let compared = &entities[..entities.len().min(MAX_COMPARED_ENTITIES)];
        let pairs = algorithms::duplicates(compared, limit)
            .into_iter()
            .map(|d| DuplicateView {
                keep: d.keep.into(),
                merge: d.merge.into(),
                reason: d.reason.as_str(),
                similarity: d.similarity,
            })
            .collect();
        Ok(DuplicatesView { pairs, compared: compared.len(), truncated })
    }

    /// Merges entity `source` into `target` (both normalised here; both must
    /// be visible to the caller). A dry run changes nothing.
    pub async fn merge(&self, p: &Principal, req: MergeRequest) -> Result<MergeView, DomainError> {
        let mut out = Vec::new();
        let source = entity_name("source", &req.source, &mut out);
        let target = entity_name("target", &req.target, &mut out);
        if let (Some(a), Some(b)) = (&source, &target)
            && a == b
        {
            out.push(FieldViolation::new("target", "must name another entity than source"));
        }
        let (Some(source), Some(target)) = checked((source, target), out)? else {
            return Err(DomainError::NotFound("entity"));
        };
        let dry_run = req.dry_run.unwrap_or(true);
        let (graph, filter) = self.scope(p).await?;
        let actor = self.memories.visibility(p).await?.user_id;
        match graph.merge(&filter, &source, &target, &actor, !dry_run).await? {
            Ok(r) => Ok(MergeView {
                source: r.source,
                target: r.target,
                memories_moved: r.memories_moved,
                memories_mentioning_both: r.memories_mentioning_both,
                already_merged: r.already_merged,
                applied: r.applied,
                dry_run,
            }),
            Err(MergeRefusal::UnknownEntity(_)) => Err(DomainError::NotFound("entity")),
            Err(MergeRefusal::SameEntity(name)) => Err(DomainError::Validation(vec![FieldViolation::new(
                "target",
                format!("source and target are both the entity {name}"),
            )])),
            Err(MergeRefusal::MergedElsewhere { into, .. }) => Err(DomainError::Validation(vec![FieldViolation::new(
                "source",
                format!("was merged into {into} already"),
            )])),
        }
    }

    /// An entity and the entities co-mentioned with it.
    pub async fn network(&self, p: &Principal, name: &str, limit: usize) -> Result<NetworkView, DomainError> {
        let mut out = Vec::new();
        let name = entity_name("name", name, &mut out);
        if !(1..=MAX_ENTITY_LIMIT).contains(&limit) {
            out.push(FieldViolation::new("limit", format!("must be from 1 to {MAX_ENTITY_LIMIT}")));
        }
        let name = checked(name, out)?.ok_or(DomainError::NotFound("entity"))?;
        let (graph, filter) = self.scope(p).await?;
        graph.network(&filter, &name, limit).await?.map(NetworkView::from).ok_or(DomainError::NotFound("entity"))
    }

    /// The shortest chain of co-mentions from `from` to `to`.
    pub async fn path(&self, p: &Principal, from: &str, to: &str, max_hops: usize) -> Result<PathView, DomainError> {
        let mut out = Vec::new();
        let a = entity_name("from", from, &mut out);
        let b = entity_name("to", to, &mut out);
        if !PATH_HOPS.contains(&max_hops) {
            out.push(FieldViolation::new(
                "max_hops",
                format!("must be from {} to {}", PATH_HOPS.start(), PATH_HOPS.end()),
            ));
        }
        let (Some(a), Some(b)) = checked((a, b), out)? else {
            return Err(DomainError::NotFound("entity"));
        };
        let (graph, filter) = self.scope(p).await?;
        for name in [&a, &b] {
            if graph.entity(&filter, name).await?.is_none() {
                return Err(DomainError::NotFound("entity"));
            }
        }
        let chain = graph.path(&filter, &a, &b, max_hops).await?;
        Ok(PathView {
            found: chain.is_some(),
            hops: chain.as_ref().map(|c| c.len().saturating_sub(1)),
            entities: chain.unwrap_or_default().into_iter().map(EntityView::from).collect(),
            from: a,
            to: b,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relation_types_are_the_predicates_then_co_mention() {
        let typed: Vec<&str> = loci_index::relations::Predicate::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(&RELATION_TYPES[..typed.len()], typed.as_slice());
        assert_eq!(RELATION_TYPES.len(), typed.len() + 1);
        assert_eq!(RELATION_TYPES.last(), Some(&CO_MENTIONED));
    }

    #[test]
    fn names_are_normalised_and_bounded() {
        let mut out = Vec::new();
        assert_eq!(entity_name("name", "  Alice's ", &mut out).as_deref(), Some("alice"));
        assert!(out.is_empty());
        assert_eq!(entity_name("name", "...", &mut out), None);
        assert_eq!(entity_name("name", &"x".repeat(10_000), &mut out), None);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|v| v.field == "name"));
    }

    #[test]
    fn query_numbers_are_checked_against_their_ranges() {
        let q = PathQuery { max_hops: Some("99".into()) };
        assert!(matches!(q.parse(), Err(DomainError::Validation(v)) if v[0].field == "max_hops"));
        assert_eq!(PathQuery::default().parse().unwrap(), DEFAULT_PATH_HOPS);
        let q = EntityListQuery { limit: Some("0".into()), min_memories: Some("x".into()) };
        let Err(DomainError::Validation(v)) = q.parse() else { panic!("invalid") };
        assert_eq!(v.iter().map(|f| f.field.as_str()).collect::<Vec<_>>(), ["limit", "min_memories"]);
        assert_eq!(EntityListQuery::default().parse().unwrap(), (1, DEFAULT_ENTITY_LIMIT));
    }
}
