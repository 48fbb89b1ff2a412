//! Degraded search: one failing source leaves results plus
//! `missing_sources`; every source failing is `SearchUnavailable` (503).
//! Real SQLite store and real embedded indexes; the failing index is a
//! wrapper that refuses every call.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use loci_core::{MemoryId, OrgId};
use loci_domain::access_log::AccessLog;
use loci_domain::indexer::{Indexer, Indexes, IndexingOptions};
use loci_domain::memories::MemoryService;
use loci_domain::search::{SearchConfig, SearchMode, SearchRequest, SearchService};
use loci_domain::validation::{CreateMemoryInput, Limits};
use loci_domain::{DomainError, Provisioner};
use loci_index::{GraphIndex, Hit, IndexDoc, IndexError, LexicalIndex, SearchFilter};
use loci_index_embedded::EmbeddedLexicalIndex;
use loci_security::Principal;
use loci_stores::graph::EmbeddedGraphIndex;
use loci_stores::testing::{Engine, TestDatabase};
use loci_stores::{Database, PoolConfig};

/// A lexical index whose engine is down.
#[derive(Debug)]
struct DownLexical;

fn down() -> IndexError {
    IndexError::Timeout("lexical engine unreachable".into())
}

#[async_trait]
impl LexicalIndex for DownLexical {
    fn engine(&self) -> &'static str {
        "down"
    }
    async fn upsert(&self, _: &[IndexDoc]) -> Result<(), IndexError> {
        Err(down())
    }
    async fn delete(&self, _: &OrgId, _: &[MemoryId]) -> Result<(), IndexError> {
        Err(down())
    }
    async fn search(&self, _: &str, _: &SearchFilter, _: usize) -> Result<Vec<Hit>, IndexError> {
        Err(down())
    }
    async fn flush(&self) -> Result<(), IndexError> {
        Err(down())
    }
    async fn clear(&self, _: Option<&OrgId>) -> Result<(), IndexError> {
        Err(down())
    }
    async fn count(&self, _: &OrgId) -> Result<u64, IndexError> {
        Err(down())
    }
}

fn principal(org: &str, subject: &str) -> Principal {
    Principal {
        org_id: OrgId::parse(org).unwrap(),
        subject: subject.into(),
        scopes: BTreeSet::new(),
        roles: Vec::new(),
        grants: Vec::new(),
        client_id: None,
        token_id: "t".into(),
        dpop_jkt: None,
        expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
    }
}

fn request(query: &str) -> SearchRequest {
    SearchRequest {
        query: query.into(),
        limit: 10,
        filters: Default::default(),
        mode: SearchMode::Auto,
        weights: None,
        dedupe: false,
        as_of: None,
        rerank: None,
    }
}

struct Setup {
    _db_guard: TestDatabase,
    _dir: tempfile::TempDir,
    db: Database,
    memories: MemoryService,
    lexical: Arc<dyn LexicalIndex>,
    graph: Arc<dyn GraphIndex>,
}

async fn setup() -> Setup {
    let guard = TestDatabase::new(Engine::Sqlite).await;
    let db = Database::connect(&guard.secret_url(), &PoolConfig::default()).await.unwrap();
    db.migrate_up().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lexical: Arc<dyn LexicalIndex> = Arc::new(EmbeddedLexicalIndex::open(dir.path()).unwrap());
    let graph: Arc<dyn GraphIndex> = Arc::new(EmbeddedGraphIndex::new(db.clone()));
    let memories =
        MemoryService::new(db.clone(), Provisioner::default(), AccessLog::start(db.clone()), Limits::default());
    Setup { _db_guard: guard, _dir: dir, db, memories, lexical, graph }
}

async fn remember(s: &Setup, p: &Principal, text: &str) -> MemoryId {
    let input: CreateMemoryInput = serde_json::from_value(serde_json::json!({ "text": text, "app": "t" })).unwrap();
    s.memories.create(p, input).await.unwrap().memory.id
}

#[tokio::test]
async fn one_failing_source_is_reported_and_the_others_answer() {
    let s = setup().await;
    let alice = principal("acme", "alice");
    let id = remember(&s, &alice, "Caroline adopted a greyhound named Biscuit").await;
    // Index into the working graph; the lexical engine is down throughout.
    let indexes = Indexes { vector: None, lexical: Arc::new(DownLexical), graph: s.graph.clone(), embedder: None };
    let indexer = Indexer::new(s.db.clone(), indexes.clone(), IndexingOptions::default(), 100);
    let pass = indexer.run_once().await.unwrap();
    assert_eq!((pass.completed, pass.retried), (0, 1), "the row stays in the outbox for the lexical index");
    // The graph accepted it before the lexical failure was reported; with
    // no other source, the graph list answers (whatever its weight).
    let search = SearchService::new(s.memories.clone(), indexes, SearchConfig::default());
    let response = search.search(&alice, request("what did Caroline adopt?")).await.unwrap();
    assert_eq!(response.results.iter().map(|r| r.memory_id).collect::<Vec<_>>(), vec![id]);
    assert!(response.meta.degraded_mode);
    let missing: BTreeSet<&str> = response.meta.missing_sources.iter().map(String::as_str).collect();
    assert_eq!(missing, BTreeSet::from(["embedding", "lexical"]));
    assert!(response.results[0].scores.graph.is_some() && response.results[0].scores.lexical.is_none());
}

#[tokio::test]
async fn every_source_failing_is_unavailable_and_semantic_needs_an_embedder() {
    let s = setup().await;
    let alice = principal("acme", "alice");
    remember(&s, &alice, "anything").await;
    let indexes = Indexes { vector: None, lexical: Arc::new(DownLexical), graph: s.graph.clone(), embedder: None };
    let search = SearchService::new(s.memories.clone(), indexes, SearchConfig::default());
    let mut lexical_only = request("anything");
    lexical_only.mode = SearchMode::Lexical;
    match search.search(&alice, lexical_only).await {
        Err(DomainError::SearchUnavailable(missing)) => assert_eq!(missing, vec!["lexical".to_owned()]),
        other => panic!("expected SearchUnavailable, got {other:?}"),
    }
    let mut semantic = request("anything");
    semantic.mode = SearchMode::Semantic;
    assert!(matches!(search.search(&alice, semantic).await, Err(DomainError::EmbedderUnavailable)));
    // With a working lexical index the same search answers.
    let indexes = Indexes { vector: None, lexical: s.lexical.clone(), graph: s.graph.clone(), embedder: None };
    Indexer::new(s.db.clone(), indexes.clone(), IndexingOptions::default(), 100).drain().await.unwrap();
    let search = SearchService::new(s.memories.clone(), indexes, SearchConfig::default());
    let response = search.search(&alice, request("anything")).await.unwrap();
    assert_eq!(response.results.len(), 1);
    assert_eq!(response.meta.missing_sources, vec!["embedding".to_owned()]);
}
