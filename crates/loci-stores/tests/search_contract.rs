#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! One contract suite per index trait (`loci_stores::testing::{vector,
//! lexical, graph}_contract`), run against the embedded index and against
//! the engine adapter. The engine runs need a reachable engine and happen
//! only when its URL is set:
//!
//! - `LOCI_TEST_QDRANT_URL` (gRPC, e.g. `http://127.0.0.1:6334`; optional
//!   `LOCI_TEST_QDRANT_API_KEY`);
//! - `LOCI_TEST_OPENSEARCH_URL` (e.g. `http://127.0.0.1:9200`; optional
//!   `LOCI_TEST_OPENSEARCH_USERNAME` / `_PASSWORD`);
//! - `LOCI_TEST_NEO4J_URL` (e.g. `bolt://127.0.0.1:7687`;
//!   `LOCI_TEST_NEO4J_USERNAME` (default `neo4j`) / `_PASSWORD`).
//!
//! Without it the test says on stderr that it was skipped and why, and
//! passes. Each engine run uses its own collection or index (and fresh org
//! names), and removes it at the end.

use std::sync::Arc;
use std::time::Duration;

use loci_stores::search::graph_embedded::EmbeddedGraphIndex;
use loci_stores::search::lexical_embedded::{EmbeddedLexicalIndex, LexicalOptions};
use loci_stores::search::neo4j::{Neo4jGraphIndex, Neo4jOptions};
use loci_stores::search::opensearch::{OpenSearchLexicalIndex, OpenSearchOptions};
use loci_stores::search::qdrant::{QdrantOptions, QdrantVectorIndex};
use loci_stores::search::vector_embedded::{EmbeddedVectorIndex, VectorOptions};
use loci_stores::testing::{
    Engine, PlainMemories, StoredMemories, TestDatabase, graph_contract, lexical_contract, vector_contract,
};

const DIMS: usize = 16;

/// The value of `var`, or `None` after saying on stderr that `what` is
/// skipped.
fn engine_url(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!(
                "SKIPPED: {what} contract run: {var} is not set, so no engine to run it against \
                 (set {var} to a reachable test instance to run it)"
            );
            None
        }
    }
}

fn env(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

fn run_name() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_owned()
}

#[tokio::test]
async fn vector_contract_embedded_exact() {
    let dir = tempfile::tempdir().unwrap();
    let index = EmbeddedVectorIndex::open(dir.path(), DIMS, VectorOptions::default()).unwrap();
    vector_contract(Arc::new(index), DIMS).await;
}

#[tokio::test]
async fn vector_contract_embedded_hnsw() {
    let dir = tempfile::tempdir().unwrap();
    let options = VectorOptions { exact_below: 5, ..VectorOptions::default() };
    let index = EmbeddedVectorIndex::open(dir.path(), DIMS, options).unwrap();
    vector_contract(Arc::new(index), DIMS).await;
}

#[tokio::test]
async fn vector_contract_qdrant() {
    let Some(url) = engine_url("LOCI_TEST_QDRANT_URL", "Qdrant vector") else { return };
    let options = QdrantOptions {
        url,
        api_key: env("LOCI_TEST_QDRANT_API_KEY"),
        model: format!("contract-{}", run_name()),
        dimensions: DIMS,
        timeout: Duration::from_secs(30),
    };
    let index = QdrantVectorIndex::connect(options.clone()).await.expect("Qdrant reachable at LOCI_TEST_QDRANT_URL");
    // Opening again is idempotent (collection and payload indexes exist).
    let index = {
        drop(index);
        QdrantVectorIndex::connect(options).await.unwrap()
    };
    assert!(index.collection().ends_with(&format!("_{DIMS}")));
    vector_contract(Arc::new(index), DIMS).await;
}

#[tokio::test]
async fn lexical_contract_embedded() {
    let index = EmbeddedLexicalIndex::open_in_ram(LexicalOptions::default()).unwrap();
    lexical_contract(Arc::new(index)).await;
}

#[tokio::test]
async fn lexical_contract_opensearch() {
    let Some(url) = engine_url("LOCI_TEST_OPENSEARCH_URL", "OpenSearch lexical") else { return };
    let options = OpenSearchOptions {
        url,
        username: env("LOCI_TEST_OPENSEARCH_USERNAME"),
        password: env("LOCI_TEST_OPENSEARCH_PASSWORD"),
        timeout: Duration::from_secs(30),
        index: format!("loci_contract_{}", run_name()),
    };
    OpenSearchLexicalIndex::connect(options.clone()).await.expect("OpenSearch reachable at LOCI_TEST_OPENSEARCH_URL");
    let index = OpenSearchLexicalIndex::connect(options).await.unwrap();
    lexical_contract(Arc::new(index)).await;
}

#[tokio::test]
async fn graph_contract_embedded_sqlite() {
    let t = TestDatabase::new(Engine::Sqlite).await;
    let db = t.migrated().await;
    graph_contract(Arc::new(EmbeddedGraphIndex::new(db.clone())), &StoredMemories(db)).await;
}

#[tokio::test]
async fn graph_contract_embedded_postgres() {
    let t = TestDatabase::new(Engine::Postgres).await;
    let db = t.migrated().await;
    graph_contract(Arc::new(EmbeddedGraphIndex::new(db.clone())), &StoredMemories(db)).await;
}

#[tokio::test]
async fn graph_contract_neo4j() {
    let Some(url) = engine_url("LOCI_TEST_NEO4J_URL", "Neo4j graph") else { return };
    let options = Neo4jOptions {
        url,
        username: env("LOCI_TEST_NEO4J_USERNAME").unwrap_or_else(|| "neo4j".to_owned()),
        password: env("LOCI_TEST_NEO4J_PASSWORD").unwrap_or_default(),
        timeout: Duration::from_secs(30),
        max_connections: 4,
    };
    let index = Neo4jGraphIndex::connect(options).await.expect("Neo4j reachable at LOCI_TEST_NEO4J_URL");
    graph_contract(Arc::new(index), &PlainMemories::default()).await;
}
