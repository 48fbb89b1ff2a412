//! Read queries over the entity graph: the entities a caller can see, one
//! entity, its co-mention network and the shortest chain of co-mentions
//! between two entities.
//!
//! Visibility is the [`SearchFilter`]'s: an entity exists for a caller only
//! through memories the filter admits. A name mentioned only in memories the
//! caller cannot see appears nowhere: not in a list, a count, a network or a
//! path.

use async_trait::async_trait;

use crate::{IndexError, SearchFilter};

/// Most entities (or neighbours) one answer lists.
pub const MAX_ENTITY_LIMIT: usize = 500;
/// Bounds of a path search's `max_hops`.
pub const PATH_HOPS: std::ops::RangeInclusive<usize> = 2..=12;
/// Most entities a path search reaches before it gives up: the work of one
/// search is bounded whatever the graph.
pub const PATH_VISIT_BUDGET: usize = 20_000;

/// An entity as a caller sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitySummary {
    /// The normalised name: the entity's key in its org.
    pub name: String,
    /// The name as first written.
    pub display_name: String,
    /// What the extractor took it for (`person`, `project`, ...).
    pub kind: String,
    /// Visible memories that mention it.
    pub memories: u64,
}

/// An entity mentioned together with another one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub entity: EntitySummary,
    /// Visible memories that mention both.
    pub shared_memories: u64,
}

/// An entity and the entities co-mentioned with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityNetwork {
    pub entity: EntitySummary,
    /// Most shared memories first, then by name.
    pub neighbours: Vec<Neighbour>,
}

/// The entity graph's read side. Names are normalised names
/// ([`crate::extract::normalise`]); every answer is deterministic.
#[async_trait]
pub trait EntityGraph: Send + Sync + std::fmt::Debug {
    /// Entities that at least `min_memories` visible memories mention, the
    /// most mentioned first (then by name), at most `limit`.
    async fn entities(
        &self,
        filter: &SearchFilter,
        min_memories: u64,
        limit: usize,
    ) -> Result<Vec<EntitySummary>, IndexError>;

    /// The entity named `name`, if a visible memory mentions it.
    async fn entity(&self, filter: &SearchFilter, name: &str) -> Result<Option<EntitySummary>, IndexError>;

    /// The entity named `name` and at most `limit` entities that visible
    /// memories mention together with it; `None` when no visible memory
    /// mentions it.
    async fn network(
        &self,
        filter: &SearchFilter,
        name: &str,
        limit: usize,
    ) -> Result<Option<EntityNetwork>, IndexError>;

    /// A shortest chain of co-mentions in visible memories from `from` to
    /// `to` (both included, `max_hops` edges at most); `None` when there is
    /// none within the bound or within [`PATH_VISIT_BUDGET`] entities. Ties
    /// between chains of one length go to the smaller names (each entity is
    /// reached from the smallest-named entity of the previous step).
    async fn path(
        &self,
        filter: &SearchFilter,
        from: &str,
        to: &str,
        max_hops: usize,
    ) -> Result<Option<Vec<EntitySummary>>, IndexError>;
}
