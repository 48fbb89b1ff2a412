//! Adapters of `loci-index`'s traits to the production engines: Qdrant
//! (vector, gRPC), OpenSearch (lexical, HTTP) and Neo4j (graph, Bolt). Each
//! sits behind a cargo feature of the same name, so a build that does not
//! need an engine does not compile its client; the shipped binaries enable
//! all three.
//!
//! Architecture invariants:
//! - This is the only crate that knows qdrant-client, opensearch and neo4rs.
//! - Every request carries the org as a filter inside the engine, and user
//!   values travel as JSON values or Cypher parameters, never spliced into
//!   query text (see [`queries`]).
//! - Options come from settings here ([`qdrant::QdrantOptions::from_settings`]
//!   and its siblings), so the composition root only picks the backend.

#[cfg(any(feature = "qdrant", feature = "opensearch", feature = "neo4j"))]
mod engines;
#[cfg(feature = "neo4j")]
pub mod neo4j;
#[cfg(feature = "opensearch")]
pub mod opensearch;
#[cfg(feature = "qdrant")]
pub mod qdrant;
#[cfg(any(feature = "qdrant", feature = "opensearch", feature = "neo4j"))]
pub mod queries;

/// Per request to an index engine.
pub const ENGINE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
