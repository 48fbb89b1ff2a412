#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The index contracts (`loci_index::contract`) on the engine adapters,
//! against real engines. No engine runs on the CI machine, so these tests
//! are `#[ignore]`d (nextest lists them as skipped) and
//! `scripts/test-engines.sh` runs them when the URLs are set:
//!
//! - `LOCI_TEST_QDRANT_URL` (gRPC, e.g. `http://127.0.0.1:6334`; optional
//!   `LOCI_TEST_QDRANT_API_KEY`);
//! - `LOCI_TEST_OPENSEARCH_URL` (e.g. `http://127.0.0.1:9200`; optional
//!   `LOCI_TEST_OPENSEARCH_USERNAME` / `_PASSWORD`);
//! - `LOCI_TEST_NEO4J_URL` (e.g. `bolt://127.0.0.1:7687`;
//!   `LOCI_TEST_NEO4J_USERNAME` (default `neo4j`) / `_PASSWORD`).
//!
//! Each run uses its own collection or index (and fresh org names), and
//! removes it at the end.

use std::sync::Arc;
use std::time::Duration;

use loci_index::contract::{
    PlainMemories, code_graph_contract, graph_api_contract, graph_contract, lexical_contract, vector_contract,
};
use loci_index_engines::neo4j::{Neo4jGraphIndex, Neo4jOptions};
use loci_index_engines::opensearch::{OpenSearchLexicalIndex, OpenSearchOptions};
use loci_index_engines::qdrant::{QdrantOptions, QdrantVectorIndex};

const DIMS: usize = 16;

/// The value of `var`; these tests are `#[ignore]`d and run only by
/// `scripts/test-engines.sh`, so a missing URL is a failure, not a pass.
fn engine_url(var: &str) -> String {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!("{var} is not set: point it at a reachable test instance (see scripts/test-engines.sh)"),
    }
}

fn env(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

fn run_name() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_owned()
}

#[tokio::test]
#[ignore = "needs a Qdrant at LOCI_TEST_QDRANT_URL (scripts/test-engines.sh)"]
async fn vector_contract_qdrant() {
    let url = engine_url("LOCI_TEST_QDRANT_URL");
    let options = QdrantOptions {
        url,
        api_key: env("LOCI_TEST_QDRANT_API_KEY"),
        model: format!("contract-{}", run_name()),
        dimensions: DIMS,
        timeout: Duration::from_secs(30),
        prefix: loci_index_engines::queries::qdrant::MEMORY_PREFIX.to_owned(),
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
#[ignore = "needs an OpenSearch at LOCI_TEST_OPENSEARCH_URL (scripts/test-engines.sh)"]
async fn lexical_contract_opensearch() {
    let url = engine_url("LOCI_TEST_OPENSEARCH_URL");
    let options = OpenSearchOptions {
        url,
        username: env("LOCI_TEST_OPENSEARCH_USERNAME"),
        password: env("LOCI_TEST_OPENSEARCH_PASSWORD"),
        timeout: Duration::from_secs(30),
        index: format!("loci_contract_{}", run_name()),
        alias_prefix: loci_index_engines::queries::opensearch::MEMORY_ALIAS_PREFIX.to_owned(),
    };
    OpenSearchLexicalIndex::connect(options.clone()).await.expect("OpenSearch reachable at LOCI_TEST_OPENSEARCH_URL");
    let index = OpenSearchLexicalIndex::connect(options).await.unwrap();
    lexical_contract(Arc::new(index)).await;
}

/// The code index beside the memories' on one cluster: each keeps the
/// contract, and a document of one is never found through the other (their
/// org aliases differ).
#[tokio::test]
#[ignore = "needs an OpenSearch at LOCI_TEST_OPENSEARCH_URL (scripts/test-engines.sh)"]
async fn code_and_memory_indexes_share_a_cluster_apart_opensearch() {
    use loci_index::{IndexDoc, LexicalIndex, SearchFilter};
    use loci_index_engines::queries::opensearch::{CODE_ALIAS_PREFIX, MEMORY_ALIAS_PREFIX};
    let run = run_name();
    let options = |index: String, alias_prefix: &str| OpenSearchOptions {
        url: engine_url("LOCI_TEST_OPENSEARCH_URL"),
        username: env("LOCI_TEST_OPENSEARCH_USERNAME"),
        password: env("LOCI_TEST_OPENSEARCH_PASSWORD"),
        timeout: Duration::from_secs(30),
        index,
        alias_prefix: alias_prefix.to_owned(),
    };
    let memories =
        OpenSearchLexicalIndex::connect(options(format!("loci_contract_m{run}"), MEMORY_ALIAS_PREFIX)).await.unwrap();
    let code =
        OpenSearchLexicalIndex::connect(options(format!("loci_contract_c{run}"), CODE_ALIAS_PREFIX)).await.unwrap();
    let org = loci_core::OrgId::parse(&format!("code-{run}")).unwrap();
    let doc = |content: &str| IndexDoc {
        id: loci_core::MemoryId::new(),
        org_id: org.clone(),
        user_id: loci_core::UserId::new(),
        app_id: loci_core::AppId::new(),
        state: loci_core::MemoryState::Active,
        content: content.to_owned(),
        context: String::new(),
        access_entity: None,
        fields: Default::default(),
        tags: Default::default(),
        created_at: chrono::Utc::now(),
    };
    memories.upsert(&[doc("the deploy pipeline froze on friday")]).await.unwrap();
    code.upsert(&[doc("fn deploy_pipeline freeze")]).await.unwrap();
    memories.flush().await.unwrap();
    code.flush().await.unwrap();
    let all = SearchFilter::new(org.clone(), None);
    assert_eq!(memories.search("deploy pipeline", &all, 10).await.unwrap().len(), 1);
    assert_eq!(code.search("deploy pipeline", &all, 10).await.unwrap().len(), 1);
    assert_eq!(memories.count(&org).await.unwrap(), 1);
    assert_eq!(code.count(&org).await.unwrap(), 1);
    memories.clear(Some(&org)).await.unwrap();
    assert_eq!(code.count(&org).await.unwrap(), 1, "clearing the memories leaves code");
    code.clear(Some(&org)).await.unwrap();
    lexical_contract(Arc::new(code)).await;
}

fn neo4j_options() -> Neo4jOptions {
    Neo4jOptions {
        url: engine_url("LOCI_TEST_NEO4J_URL"),
        username: env("LOCI_TEST_NEO4J_USERNAME").unwrap_or_else(|| "neo4j".to_owned()),
        password: env("LOCI_TEST_NEO4J_PASSWORD").unwrap_or_default(),
        timeout: Duration::from_secs(30),
        max_connections: 4,
    }
}

#[tokio::test]
#[ignore = "needs a Neo4j at LOCI_TEST_NEO4J_URL (scripts/test-engines.sh)"]
async fn graph_contract_neo4j() {
    let index = Neo4jGraphIndex::connect(neo4j_options()).await.expect("Neo4j reachable at LOCI_TEST_NEO4J_URL");
    graph_contract(Arc::new(index), &PlainMemories::default()).await;
}

#[tokio::test]
#[ignore = "needs a Neo4j at LOCI_TEST_NEO4J_URL (scripts/test-engines.sh)"]
async fn graph_api_contract_neo4j() {
    let index = Neo4jGraphIndex::connect(neo4j_options()).await.expect("Neo4j reachable at LOCI_TEST_NEO4J_URL");
    graph_api_contract(Arc::new(index), &PlainMemories::default()).await;
}

#[tokio::test]
#[ignore = "needs a Neo4j at LOCI_TEST_NEO4J_URL (scripts/test-engines.sh)"]
async fn code_graph_contract_neo4j() {
    let index = Neo4jGraphIndex::connect(neo4j_options()).await.expect("Neo4j reachable at LOCI_TEST_NEO4J_URL");
    code_graph_contract(Arc::new(index)).await;
}
