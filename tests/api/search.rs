//! Search over HTTP: lexical without a model (degraded, and says so),
//! hybrid with the local model, similar memories, tenant isolation, deletes
//! reaching every index, and input validation.

use loci_core::OrgId;
use serde_json::{Value, json};

use loci_tests::{AppOptions, Engine, TestApp, TestUser, on_both};

fn ids(body: &Value) -> Vec<String> {
    body["results"].as_array().unwrap().iter().map(|r| r["memory_id"].as_str().unwrap().to_owned()).collect()
}

async fn search(user: &TestUser<'_>, query: &str) -> Value {
    let (status, body) = user.post("/api/v1/search", json!({ "query": query })).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn lexical_search_without_a_model_is_degraded_and_isolated(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let alice = app.user("alice", "acme", &[]);
    let carol = app.user("carol", "acme", &[]);
    let mallory = app.user("mallory", "evil", &[]);
    let mine = alice.remember("The deploy key rotates every Monday at noon", json!({})).await;
    let lunch = alice.remember("Lunch is served in the atrium", json!({})).await;
    // Another tenant and another user of the same org hold the exact text.
    let theirs = mallory.remember("The deploy key rotates every Monday at noon", json!({})).await;
    let carols = carol.remember("The deploy key rotates every Monday at noon", json!({})).await;
    app.indexed().await;

    let body = search(&alice, "when does the deploy key rotate?").await;
    let found = ids(&body);
    assert_eq!(found.first(), Some(&mine), "{body}");
    assert!(!found.contains(&theirs) && !found.contains(&carols), "{body}");
    assert_eq!(body["meta"]["mode"], "lexical");
    assert_eq!(body["meta"]["degraded_mode"], true);
    assert_eq!(body["meta"]["missing_sources"], json!(["embedding"]));
    assert!(body["results"][0]["highlights"][0].as_str().unwrap().contains("<b>"), "{body}");
    assert!(body["results"][0]["scores"]["lexical"].as_f64().unwrap() > 0.0);

    let body = search(&mallory, "deploy key").await;
    assert_eq!(ids(&body), vec![theirs.clone()]);

    // The explicit lexical route, and semantic without a model.
    let (status, body) = alice.post("/api/v1/search/lexical", json!({ "query": "atrium lunch" })).await;
    assert_eq!(status, 200, "{body}");
    // The deploy note follows as the lunch note's neighbour (indexed context).
    assert_eq!(ids(&body), vec![lunch, mine.clone()], "{body}");
    assert_eq!(body["meta"]["mode"], "lexical");
    let (status, body) = alice.post("/api/v1/search/semantic", json!({ "query": "deploy" })).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "EMBEDDER_UNAVAILABLE");
    let (status, body) = alice.get(&format!("/api/v1/memories/{mine}/similar")).await;
    assert_eq!(status, 503, "{body}");
}

async fn grants_open_shared_memories_to_search(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let alice = app.user("alice", "acme", &[]);
    let shared =
        alice.remember("Runbook: restart the ingest queue", json!({ "access_entity": "team:acme/core" })).await;
    app.indexed().await;
    let member = app.user("bob", "acme", &["team:acme/core"]);
    let outsider = app.user("eve", "acme", &["team:acme/other"]);
    assert_eq!(ids(&search(&member, "ingest queue restart").await), vec![shared]);
    assert!(ids(&search(&outsider, "ingest queue restart").await).is_empty());
}

async fn deleted_memories_leave_every_index(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let alice = app.user("alice", "acme", &[]);
    let id = alice.remember("Caroline moved the Kafka cluster to Frankfurt", json!({})).await;
    app.indexed().await;
    let org = OrgId::parse("acme").unwrap();
    let indexes = app.state.services.indexer.indexes();
    assert_eq!(indexes.lexical.count(&org).await.unwrap(), 1);
    assert!(indexes.graph.count(&org).await.unwrap() > 0, "entities were extracted");
    assert_eq!(ids(&search(&alice, "kafka frankfurt").await), vec![id.clone()]);

    let (status, body) = alice.delete("/api/v1/memories", json!({ "memory_ids": [id] })).await;
    assert_eq!(status, 200, "{body}");
    app.indexed().await;
    assert_eq!(indexes.lexical.count(&org).await.unwrap(), 0);
    let memory = id.parse().unwrap();
    let filter = loci_index::SearchFilter::new(org.clone(), None);
    assert!(indexes.graph.related(memory, &filter, 10).await.unwrap().is_empty());
    assert!(
        indexes.graph.memories_mentioning(&["kafka".to_owned()], &filter, 10).await.unwrap().is_empty(),
        "the graph forgets the deleted memory"
    );
    assert!(ids(&search(&alice, "kafka frankfurt").await).is_empty());
}

async fn bad_search_input_is_422(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let alice = app.user("alice", "acme", &[]);
    for body in [
        json!({ "query": "" }),
        json!({ "query": "   " }),
        json!({ "query": "x".repeat(2049) }),
        json!({ "query": "x", "limit": 0 }),
        json!({ "query": "x", "limit": 101 }),
        json!({ "query": "x", "mode": "psychic" }),
        json!({ "query": "x", "weights": { "vector": -1, "lexical": 1, "graph": 1 } }),
        json!({ "query": "x", "filters": { "category": "nonsense" } }),
        json!({ "query": "x", "filters": { "from": "yesterday" } }),
        json!({ "query": "x", "filters": { "app_id": "not-a-uuid" } }),
        json!({ "query": 5 }),
        json!({ "query": "x", "unknown": true }),
        json!({ "query": "x", "limit": 2.5 }),
    ] {
        let (status, reply) = alice.post("/api/v1/search", body.clone()).await;
        assert_eq!(status, 422, "{body} -> {reply}");
    }
    // JSON Schema's `integer` admits 10.0: so does the server.
    let (status, reply) = alice.post("/api/v1/search/lexical", json!({ "query": "x", "limit": 10.0 })).await;
    assert_eq!(status, 200, "{reply}");
    let viewer_without_search = app.user_with_scopes("alice", "acme", &["memories:read"]);
    let (status, reply) = viewer_without_search.post("/api/v1/search", json!({ "query": "x" })).await;
    assert_eq!(status, 403, "{reply}");
    // Query syntax is never parsed: operators and quotes are plain text.
    for q in ["foo:\"bar", "AND OR (", "*", "?!."] {
        let (status, reply) = alice.post("/api/v1/search", json!({ "query": q })).await;
        assert_eq!(status, 200, "{q} -> {reply}");
    }
}

on_both!(
    lexical_search_without_a_model_is_degraded_and_isolated,
    grants_open_shared_memories_to_search,
    deleted_memories_leave_every_index,
    bad_search_input_is_422,
);

/// Hybrid search and similar memories with the local model (SQLite; the
/// stores are covered on both engines above).
#[tokio::test]
async fn hybrid_search_and_similar_with_the_local_model() {
    let app = TestApp::spawn_with(Engine::Sqlite, AppOptions::default().with_model()).await;
    let alice = app.user("alice", "acme", &[]);
    let mallory = app.user("mallory", "evil", &[]);
    let cat = alice.remember("My cat only eats tuna", json!({})).await;
    let kitten = alice.remember("Our kitten loves fish for dinner", json!({})).await;
    alice.remember("The deploy pipeline runs on Fridays", json!({})).await;
    let theirs = mallory.remember("My cat only eats tuna", json!({})).await;
    app.indexed().await;

    // No word in common with the best answer: only the vectors find it.
    let body = search(&alice, "what food does my pet like").await;
    assert_eq!(body["meta"]["mode"], "hybrid", "{body}");
    assert_eq!(body["meta"]["degraded_mode"], false, "{body}");
    let found = ids(&body);
    assert!(found[..2].contains(&cat) && found[..2].contains(&kitten), "{body}");
    assert!(!found.contains(&theirs));
    assert!(body["results"][0]["scores"]["vector"].as_f64().unwrap() > 0.2);

    let (status, body) = alice.post("/api/v1/search/semantic", json!({ "query": "feline diet" })).await;
    assert_eq!(status, 200, "{body}");
    assert!(!ids(&body).contains(&theirs));

    let (status, body) = alice.get(&format!("/api/v1/memories/{cat}/similar")).await;
    assert_eq!(status, 200, "{body}");
    let similar: Vec<&str> =
        body["items"].as_array().unwrap().iter().map(|r| r["memory_id"].as_str().unwrap()).collect();
    assert_eq!(similar.first(), Some(&kitten.as_str()), "{body}");
    assert!(!similar.contains(&cat.as_str()) && !similar.contains(&theirs.as_str()));
    // Another tenant's memory id is not found.
    let (status, _) = mallory.get(&format!("/api/v1/memories/{cat}/similar")).await;
    assert_eq!(status, 404);

    // Weights are applied: with the vector weight alone, the order is the vector order.
    let (_, weighted) = alice
        .post(
            "/api/v1/search",
            json!({ "query": "what food does my pet like", "weights": { "vector": 1, "lexical": 0, "graph": 0 } }),
        )
        .await;
    let vector_only: Vec<f64> =
        weighted["results"].as_array().unwrap().iter().map(|r| r["scores"]["vector"].as_f64().unwrap()).collect();
    assert!(vector_only.windows(2).all(|w| w[0] >= w[1]), "{weighted}");

    // A delete reaches the vector index too once the outbox drains.
    let acme = OrgId::parse("acme").unwrap();
    let vector = app.state.services.indexer.indexes().vector.clone().expect("a vector index with the model");
    assert_eq!(vector.count(&acme).await.unwrap(), 3);
    let cat_id: loci_core::MemoryId = cat.parse().unwrap();
    let (status, _) = alice.delete("/api/v1/memories", json!({ "memory_ids": [cat.clone()] })).await;
    assert_eq!(status, 200);
    app.indexed().await;
    assert_eq!(vector.count(&acme).await.unwrap(), 2);
    assert!(vector.embedding(&acme, cat_id).await.unwrap().is_none());
}

/// Another embedding model gets its own vector index, filled from the
/// stored memories at start (here the same files under another name).
#[tokio::test]
async fn a_new_embedding_model_gets_every_memory_embedded_again() {
    let db = loci_tests::TestDatabase::new(Engine::Sqlite).await;
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut settings = loci_settings::Settings { data_dir: first.path().to_path_buf(), ..Default::default() };
    settings.database.url = Some(loci_settings::Secret::new(db.url.clone()));
    settings.embeddings.model_dir = Some(loci_tests::model_dir());
    let services = loci_app::Services::build(settings.clone()).await.expect("starts");
    let acme = OrgId::parse("acme").unwrap();
    let p = loci_tests::principal("alice", &acme);
    let items = ["My cat only eats tuna", "The deploy pipeline runs on Fridays", "Lunch is in the atrium"]
        .iter()
        .map(|t| loci_domain::memories::ImportItem {
            content: (*t).to_owned(),
            metadata: Default::default(),
            created_at: chrono::Utc::now(),
        })
        .collect();
    services.memories.import_many(&p, "notes", items).await.unwrap();
    services.indexer.drain().await.unwrap();
    let vector = services.indexer.indexes().vector.clone().expect("a vector index");
    assert_eq!(vector.count(&acme).await.unwrap(), 3);

    // Another instance (its own data directory, the same vector directory)
    // with another model name.
    let mut renamed = settings.clone();
    renamed.data_dir = second.path().to_path_buf();
    renamed.vector.path = Some(first.path().join("vector"));
    renamed.embeddings.model = "all-MiniLM-L6-v2-renamed".into();
    let other = loci_app::Services::build(renamed.clone()).await.expect("a second instance starts");
    let new_vector = other.indexer.indexes().vector.clone().expect("a vector index");
    assert_eq!(new_vector.count(&acme).await.unwrap(), 0, "a new model starts empty");
    assert_eq!(other.indexer.drain().await.unwrap(), 3);
    assert_eq!(new_vector.count(&acme).await.unwrap(), 3, "every memory embedded with the new model");
    assert!(first.path().join("vector").join("all-MiniLM-L6-v2-renamed").is_dir());
    assert_eq!(vector.count(&acme).await.unwrap(), 3, "the first model's index is left alone");

    // The same model again (a third data directory): nothing is queued.
    let third = tempfile::tempdir().unwrap();
    renamed.data_dir = third.path().to_path_buf();
    let again = loci_app::Services::build(renamed).await.expect("starts again");
    assert_eq!(again.indexer.drain().await.unwrap(), 0);
}
