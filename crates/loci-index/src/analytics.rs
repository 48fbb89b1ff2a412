//! Analytics over the graph: the visible mention graph that connectivity,
//! communities and centrality are computed from ([`crate::algorithms`]),
//! entity search, the memories of an entity and its typed relations; and the
//! one write, the merge of duplicate entities. The types of the analyses of
//! the memories' own fields (aggregates by dimension, tag sets, dated
//! memories) are here too; the relational store answers those, whatever the
//! graph engine.
//!
//! Engines answer only what needs their data; the algorithms run on what
//! they return, so every engine gives the same communities, centrality order
//! and duplicates for the same visible graph. Visibility is the
//! [`SearchFilter`]'s, as in [`crate::entities`]: nothing the caller cannot
//! see is counted.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use loci_core::{MemoryId, OrgId, UserId};

use crate::relations::RelationStatement;
use crate::{EntityGraph, EntitySummary, IndexError, SearchFilter};

/// Most mention rows one mention graph holds: analytics over a larger
/// visible graph answer over the first rows (by memory) and say so.
pub const MAX_GRAPH_MENTIONS: usize = 1_000_000;
/// Most memories one timeline or tag analysis reads.
pub const MAX_SCANNED_MEMORIES: usize = 20_000;
/// Most entities one duplicate search compares.
pub const MAX_COMPARED_ENTITIES: usize = 50_000;

/// What memories are counted by in an aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dimension {
    Category,
    Scope,
    ArtifactType,
    ArtifactRef,
    /// A tag `key=value` (a memory counts once per tag).
    Tag,
    /// The structured `entity` field.
    Entity,
    App,
    Source,
    State,
}

impl Dimension {
    pub const ALL: [Dimension; 9] = [
        Self::Category,
        Self::Scope,
        Self::ArtifactType,
        Self::ArtifactRef,
        Self::Tag,
        Self::Entity,
        Self::App,
        Self::Source,
        Self::State,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Category => "category",
            Self::Scope => "scope",
            Self::ArtifactType => "artifact_type",
            Self::ArtifactRef => "artifact_ref",
            Self::Tag => "tag",
            Self::Entity => "entity",
            Self::App => "app",
            Self::Source => "source",
            Self::State => "state",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == text)
    }
}

/// Memories with one value of a dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// The value (an app's id for `app`, `key=value` for `tag`).
    pub value: String,
    /// A readable name where the value is an id (the app's name).
    pub label: Option<String>,
    pub memories: u64,
}

/// Counts of the visible memories by one dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    /// Most memories first, then by value; at most the asked limit.
    pub buckets: Vec<Bucket>,
    /// Distinct values (all of them, not only the buckets returned).
    pub values: u64,
    /// Visible memories counted.
    pub memories: u64,
    /// Of those, memories without a value of the dimension.
    pub without_value: u64,
    /// Whether only the first [`MAX_SCANNED_MEMORIES`] were read (tags).
    pub truncated: bool,
}

/// Sizes of the visible graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GraphStats {
    pub memories: u64,
    /// Visible memories mentioning at least one entity.
    pub memories_with_entities: u64,
    pub entities: u64,
    pub mentions: u64,
    /// Distinct entity pairs mentioned together.
    pub co_mention_pairs: u64,
}

impl GraphStats {
    /// The sizes of `graph`, with `memories` visible memories in all.
    pub fn of(memories: u64, graph: &MentionGraph) -> Self {
        Self {
            memories,
            memories_with_entities: graph.memories.len() as u64,
            entities: graph.entities.len() as u64,
            mentions: graph.memories.iter().map(|(_, e)| e.len() as u64).sum(),
            co_mention_pairs: crate::algorithms::co_mention_edges(graph).len() as u64,
        }
    }
}

/// The visible mention graph: entities, and which of them each visible
/// memory mentions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MentionGraph {
    /// By name; `memories` counts visible mentions.
    pub entities: Vec<EntitySummary>,
    /// Visible memories mentioning at least one entity, by id, with the
    /// indexes (into `entities`) of what they mention, ascending.
    pub memories: Vec<(MemoryId, Vec<u32>)>,
    /// Whether the graph stopped at [`MAX_GRAPH_MENTIONS`] rows.
    pub truncated: bool,
}

/// A visible memory with its dates, for timelines.
#[derive(Debug, Clone, PartialEq)]
pub struct DatedMemory {
    pub id: MemoryId,
    pub content: String,
    pub category: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A page of the visible memories mentioning an entity, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityMemories {
    pub entity: EntitySummary,
    pub ids: Vec<MemoryId>,
}

/// What a merge of `source` into `target` does (or did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeReport {
    pub source: String,
    pub target: String,
    /// Memories whose mention of `source` moves to `target`.
    pub memories_moved: u64,
    /// Of those, memories that mentioned both already.
    pub memories_mentioning_both: u64,
    /// Whether `source` had been merged into `target` before: nothing to do.
    pub already_merged: bool,
    pub applied: bool,
}

impl MergeReport {
    /// The answer to a merge whose `source` no longer exists: `merged_into`
    /// is the entity an earlier merge recorded it under, if any. Merging it
    /// into that entity again is a no-op; anything else is refused.
    pub fn for_gone_source(source: &str, target: &str, merged_into: Option<String>) -> Result<Self, MergeRefusal> {
        match merged_into {
            Some(into) if into == target => Ok(Self {
                source: source.to_owned(),
                target: into,
                memories_moved: 0,
                memories_mentioning_both: 0,
                already_merged: true,
                applied: false,
            }),
            Some(into) => Err(MergeRefusal::MergedElsewhere { source: source.to_owned(), into }),
            None => Err(MergeRefusal::UnknownEntity(source.to_owned())),
        }
    }
}

/// Why a merge cannot be done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeRefusal {
    /// No entity of that name (and no earlier merge of it).
    UnknownEntity(String),
    /// `source` was merged into another entity already.
    MergedElsewhere { source: String, into: String },
    /// Both names are (or were merged into) this entity.
    SameEntity(String),
}

/// A recorded merge: `alias` now names `entity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityAlias {
    pub alias: String,
    pub entity: String,
    pub merged_by: UserId,
    pub merged_at: DateTime<Utc>,
    pub memories_moved: u64,
}

/// The typed relations around one entity, as statements (see
/// [`crate::relations::fold_relations`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RelationFacts {
    pub entity: EntitySummary,
    /// Visible statements with the entity as subject or object, and, for
    /// exclusive predicates, the other statements of those subjects.
    pub statements: Vec<RelationStatement>,
    /// Every other entity the statements name.
    pub entities: Vec<EntitySummary>,
    /// Whether the statements stopped at the asked maximum.
    pub truncated: bool,
}

/// Tags of one memory: `key -> value` (non-string values as JSON text).
pub type TagSet = BTreeMap<String, String>;

/// Analytics and entity maintenance on one graph engine.
#[async_trait]
pub trait GraphAnalytics: Send + Sync + std::fmt::Debug {
    async fn stats(&self, filter: &SearchFilter) -> Result<GraphStats, IndexError>;

    /// The visible mention graph (at most `max_mentions` mention rows).
    async fn mention_graph(&self, filter: &SearchFilter, max_mentions: usize) -> Result<MentionGraph, IndexError>;

    /// Visible entities whose name contains `needle` (normalised), names
    /// equal to it first, then starting with it, then by mentions.
    async fn search_entities(
        &self,
        filter: &SearchFilter,
        needle: &str,
        limit: usize,
    ) -> Result<Vec<EntitySummary>, IndexError>;

    /// The visible memories mentioning `name`, newest first; `None` when no
    /// visible memory does.
    async fn entity_memories(
        &self,
        filter: &SearchFilter,
        name: &str,
        limit: usize,
        offset: usize,
    ) -> Result<Option<EntityMemories>, IndexError>;

    /// The typed relations stated around `name` in visible memories (at most
    /// `max` statements); `None` when no visible memory mentions it.
    async fn relation_statements(
        &self,
        filter: &SearchFilter,
        name: &str,
        max: usize,
    ) -> Result<Option<RelationFacts>, IndexError>;

    /// Moves every mention of `source` to `target` in the whole org (entity
    /// names are the org's), records `source` as an alias of `target` so
    /// that later extractions of it land on `target`, and deletes `source`.
    /// With `apply` false nothing changes. Counts are of the memories
    /// `filter` admits. Merging an alias into its entity again is a no-op.
    async fn merge(
        &self,
        filter: &SearchFilter,
        source: &str,
        target: &str,
        actor: &UserId,
        apply: bool,
    ) -> Result<Result<MergeReport, MergeRefusal>, IndexError>;

    /// The recorded merges of `org` into `entity` (all when `None`), newest
    /// first.
    async fn aliases(&self, org: &OrgId, entity: Option<&str>) -> Result<Vec<EntityAlias>, IndexError>;
}

/// Every graph read and write the API offers, on one engine.
pub trait GraphApi: EntityGraph + GraphAnalytics {}

impl<T: EntityGraph + GraphAnalytics> GraphApi for T {}

/// A graph engine: the index search and the indexers use, and the API.
pub trait GraphEngine: crate::GraphIndex + GraphApi {}

impl<T: crate::GraphIndex + GraphApi> GraphEngine for T {}
