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

use loci_index::extract::normalise;
use loci_index::{EntityGraph, EntityNetwork, EntitySummary, SearchFilter};
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
fn number_in<T>(
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

fn checked<T>(value: T, out: Vec<FieldViolation>) -> Result<T, DomainError> {
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
    graph: Option<Arc<dyn EntityGraph>>,
}

impl std::fmt::Debug for EntityService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntityService").field("graph", &self.graph).finish_non_exhaustive()
    }
}

impl EntityService {
    pub fn new(memories: MemoryService, graph: Option<Arc<dyn EntityGraph>>) -> Self {
        Self { memories, graph }
    }

    async fn scope(&self, p: &Principal) -> Result<(&dyn EntityGraph, SearchFilter), DomainError> {
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

    /// One entity (`name` as given: it is normalised here).
    pub async fn get(&self, p: &Principal, name: &str) -> Result<EntityView, DomainError> {
        let mut out = Vec::new();
        let name = entity_name("name", name, &mut out);
        let name = checked(name, out)?.ok_or(DomainError::NotFound("entity"))?;
        let (graph, filter) = self.scope(p).await?;
        graph.entity(&filter, &name).await?.map(EntityView::from).ok_or(DomainError::NotFound("entity"))
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
