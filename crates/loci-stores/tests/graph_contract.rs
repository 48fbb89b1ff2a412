#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The graph contracts (`loci_index::contract::graph_contract`, the index,
//! and `graph_api_contract`, the graph and entity API) on the embedded
//! graph, on both relational engines.

use std::sync::Arc;

use loci_index::contract::{graph_api_contract, graph_contract};
use loci_stores::graph::EmbeddedGraphIndex;
use loci_stores::testing::{Engine, StoredMemories, TestDatabase};

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
async fn graph_api_contract_embedded_sqlite() {
    let t = TestDatabase::new(Engine::Sqlite).await;
    let db = t.migrated().await;
    graph_api_contract(Arc::new(EmbeddedGraphIndex::new(db.clone())), &StoredMemories(db)).await;
}

#[tokio::test]
async fn graph_api_contract_embedded_postgres() {
    let t = TestDatabase::new(Engine::Postgres).await;
    let db = t.migrated().await;
    graph_api_contract(Arc::new(EmbeddedGraphIndex::new(db.clone())), &StoredMemories(db)).await;
}
