//! The search index ports: vector, lexical and graph, each a trait with an
//! embedded implementation (`loci-index-embedded`, and the relational graph
//! of `loci-stores`) and a production engine adapter (`loci-index-engines`);
//! the documents and filters they exchange; the deterministic entity
//! extractor every graph backend shares; and, behind the `testing` feature,
//! the contract suite every implementation runs.
//!
//! Invariants shared by every implementation (the contract suite in
//! `contract` checks them on each, filters against [`SearchFilter::admits`]):
//! - Every document carries its org; every query filters on the org inside
//!   the engine, never afterwards, and a hit never comes from another org.
//! - Visibility is pushed down too: a hit is the caller's own memory or one
//!   whose `access_entity` a grant of the caller covers (see
//!   [`IndexDoc::visibility_keys`]).
//! - Upserts are idempotent (indexers deliver at least once) and deletes of
//!   unknown ids succeed.

pub mod algorithms;
pub mod analytics;
pub mod code_graph;
#[cfg(feature = "testing")]
pub mod contract;
mod doc;
pub mod entities;
mod error;
pub mod extract;
pub mod guarded;
pub mod relations;

use async_trait::async_trait;
use loci_core::{MemoryId, OrgId};

pub use analytics::{GraphAnalytics, GraphApi, GraphEngine};
pub use code_graph::{CodeCallEdge, CodeFileNode, CodeGraph, CodeRepoGraph, CodeSymbolNode};
pub use doc::{IndexDoc, SearchFilter};
pub use entities::{EntityGraph, EntityNetwork, EntitySummary, Neighbour};
pub use error::IndexError;
pub use loci_core::model::StructuredFields;

/// One result of one index: a memory and its score in that index (higher is
/// better; scores are not comparable across indexes, ranks are).
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: MemoryId,
    pub score: f32,
    /// Fragments of the content around the matched terms (lexical only),
    /// with matches wrapped in `<b>..</b>`.
    pub highlights: Vec<String>,
}

impl Hit {
    pub fn new(id: MemoryId, score: f32) -> Self {
        Self { id, score, highlights: Vec::new() }
    }
}

/// Nearest-neighbour search over memory embeddings.
#[async_trait]
pub trait VectorIndex: Send + Sync + std::fmt::Debug {
    /// Engine name for health and `missing_sources` (`embedded`, `qdrant`).
    fn engine(&self) -> &'static str;
    /// Inserts or replaces documents with their embeddings (same length).
    async fn upsert(&self, docs: &[(IndexDoc, Vec<f32>)]) -> Result<(), IndexError>;
    /// Removes memories of `org`; unknown ids are ignored.
    async fn delete(&self, org: &OrgId, ids: &[MemoryId]) -> Result<(), IndexError>;
    /// The `limit` nearest memories to `query` among those `filter` admits,
    /// best first; the score is the cosine similarity.
    async fn search(&self, query: &[f32], filter: &SearchFilter, limit: usize) -> Result<Vec<Hit>, IndexError>;
    /// The stored embedding of a memory of `org` (for "similar memories").
    async fn embedding(&self, org: &OrgId, id: MemoryId) -> Result<Option<Vec<f32>>, IndexError>;
    /// Makes every accepted change durable (called before the indexer marks
    /// outbox rows done).
    async fn flush(&self) -> Result<(), IndexError>;
    /// Removes every document of `org`, or of every org (`loci reindex`).
    async fn clear(&self, org: Option<&OrgId>) -> Result<(), IndexError>;
    /// Number of documents of `org` (tests, stats).
    async fn count(&self, org: &OrgId) -> Result<u64, IndexError>;
    /// Removes deleted documents from storage for good (after an erasure,
    /// so no file keeps them until a later merge). Engines that purge on
    /// their own keep this default.
    async fn expunge(&self) -> Result<(), IndexError> {
        Ok(())
    }
    /// Whether the engine answers (health checks); in-process indexes
    /// always do.
    async fn ping(&self) -> Result<(), IndexError> {
        Ok(())
    }
}

/// Full-text (BM25) search over memory content.
#[async_trait]
pub trait LexicalIndex: Send + Sync + std::fmt::Debug {
    fn engine(&self) -> &'static str;
    async fn upsert(&self, docs: &[IndexDoc]) -> Result<(), IndexError>;
    async fn delete(&self, org: &OrgId, ids: &[MemoryId]) -> Result<(), IndexError>;
    /// The `limit` best BM25 matches of the free-text `query` (any term may
    /// match; no query syntax errors: the text is analysed, not parsed), with
    /// highlights.
    async fn search(&self, query: &str, filter: &SearchFilter, limit: usize) -> Result<Vec<Hit>, IndexError>;
    async fn flush(&self) -> Result<(), IndexError>;
    async fn clear(&self, org: Option<&OrgId>) -> Result<(), IndexError>;
    async fn count(&self, org: &OrgId) -> Result<u64, IndexError>;
    /// Removes deleted documents from storage for good (after an erasure,
    /// so no file keeps them until a later merge). Engines that purge on
    /// their own keep this default.
    async fn expunge(&self) -> Result<(), IndexError> {
        Ok(())
    }
    /// Whether the engine answers (health checks); in-process indexes
    /// always do.
    async fn ping(&self) -> Result<(), IndexError> {
        Ok(())
    }
}

/// Entities mentioned by memories and the memories around them.
#[async_trait]
pub trait GraphIndex: Send + Sync + std::fmt::Debug {
    fn engine(&self) -> &'static str;
    /// Records the entities each document mentions (its structured `entity`
    /// plus what the deterministic extractor finds), replacing earlier ones.
    async fn upsert(&self, docs: &[IndexDoc]) -> Result<(), IndexError>;
    async fn delete(&self, org: &OrgId, ids: &[MemoryId]) -> Result<(), IndexError>;
    /// Known entities of `org` that the text mentions (normalised names).
    async fn entities_in(&self, org: &OrgId, text: &str) -> Result<Vec<String>, IndexError>;
    /// Memories mentioning any of `entities`, ranked by how many of them they
    /// mention and then by recency.
    async fn memories_mentioning(
        &self,
        entities: &[String],
        filter: &SearchFilter,
        limit: usize,
    ) -> Result<Vec<Hit>, IndexError>;
    /// Memories sharing entities with memory `id`, ranked by shared count.
    async fn related(&self, id: MemoryId, filter: &SearchFilter, limit: usize) -> Result<Vec<Hit>, IndexError>;
    async fn flush(&self) -> Result<(), IndexError>;
    async fn clear(&self, org: Option<&OrgId>) -> Result<(), IndexError>;
    async fn count(&self, org: &OrgId) -> Result<u64, IndexError>;
    /// Whether the engine answers (health checks); in-process indexes
    /// always do.
    async fn ping(&self) -> Result<(), IndexError> {
        Ok(())
    }
}
