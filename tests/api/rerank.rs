//! A reranker behind search: an HTTP rerank endpoint (no model can run
//! here, so it is a small server in this test speaking Cohere's rerank
//! protocol with recorded answers), reordering results, opted out of per
//! request, said to be missing when asked for and not configured, and a
//! failing endpoint leaving the fused order with `degraded_mode`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpResponse, HttpServer, web};
use loci_tests::{AppOptions, Engine, TestApp};
use serde_json::{Value, json};

struct Endpoint {
    url: String,
    seen: Arc<Mutex<Vec<Value>>>,
    failing: Arc<AtomicBool>,
}

/// Scores a document 1.0 when it contains `favourite`, else 0.1 (results
/// sorted by score, as Cohere sends them); 503 while `failing`.
fn rerank_endpoint(favourite: &'static str) -> Endpoint {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let failing = Arc::new(AtomicBool::new(false));
    let (recorded, down) = (seen.clone(), failing.clone());
    let server = HttpServer::new(move || {
        let (recorded, down) = (recorded.clone(), down.clone());
        App::new().route(
            "/v1/rerank",
            web::post().to(move |body: web::Json<Value>| {
                let (recorded, down) = (recorded.clone(), down.clone());
                async move {
                    let body = body.into_inner();
                    recorded.lock().unwrap().push(body.clone());
                    if down.load(Ordering::SeqCst) {
                        return HttpResponse::ServiceUnavailable().json(json!({"message": "overloaded"}));
                    }
                    let docs = body["documents"].as_array().cloned().unwrap_or_default();
                    let mut results: Vec<(usize, f64)> = docs
                        .iter()
                        .enumerate()
                        .map(|(i, d)| (i, if d.as_str().unwrap_or("").contains(favourite) { 1.0 } else { 0.1 }))
                        .collect();
                    results.sort_by(|a, b| b.1.total_cmp(&a.1));
                    let results: Vec<Value> =
                        results.iter().map(|(i, s)| json!({"index": i, "relevance_score": s})).collect();
                    HttpResponse::Ok().json(json!({"id": "r", "results": results}))
                }
            }),
        )
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    Endpoint { url: format!("http://127.0.0.1:{port}"), seen, failing }
}

fn ids(body: &Value) -> Vec<String> {
    body["results"].as_array().unwrap().iter().map(|r| r["memory_id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_reranker_reorders_results_and_a_failing_one_degrades() {
    let endpoint = rerank_endpoint("atrium");
    let url = endpoint.url.clone();
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        AppOptions::default().with(move |s| {
            s.reranker.provider = loci_settings::RerankerProvider::Http;
            s.reranker.url = Some(url.clone());
            s.reranker.model = Some("rerank-test".into());
            s.reranker.candidates = 10;
        }),
    )
    .await;
    let alice = app.user("alice", "acme", &[]);
    let mallory = app.user("mallory", "evil", &[]);
    let deploy = alice.remember("Lunch talk: the deploy runs every lunch break, lunch lunch", json!({})).await;
    let atrium = alice.remember("Lunch is served in the atrium", json!({})).await;
    mallory.remember("Lunch for mallory in the atrium", json!({})).await;
    app.indexed().await;

    // BM25 prefers the note that says "lunch" four times; the reranker the atrium.
    let (status, plain) = alice.post("/api/v1/search", json!({ "query": "lunch", "rerank": false })).await;
    assert_eq!(status, 200, "{plain}");
    assert_eq!(ids(&plain), vec![deploy.clone(), atrium.clone()], "{plain}");
    assert!(plain["meta"].get("reranker").is_none(), "{plain}");
    assert!(endpoint.seen.lock().unwrap().is_empty(), "opting out sends nothing");

    let (status, body) = alice.post("/api/v1/search", json!({ "query": "lunch" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body), vec![atrium.clone(), deploy.clone()], "{body}");
    assert_eq!(body["meta"]["reranker"], "rerank-test");
    assert_eq!(body["results"][0]["scores"]["rerank"], 1.0);
    assert!(body["results"][0]["scores"]["lexical"].as_f64().unwrap() > 0.0, "the sources' scores stay");
    // The endpoint saw the query and only alice's memories.
    let seen = endpoint.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["query"], "lunch");
    assert_eq!(seen[0]["model"], "rerank-test");
    let docs: Vec<&str> = seen[0]["documents"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
    assert_eq!(docs.len(), 2, "{docs:?}");
    assert!(docs.iter().all(|d| !d.contains("mallory")), "{docs:?}");

    // Down: the fused order, said to be degraded.
    endpoint.failing.store(true, Ordering::SeqCst);
    let (status, body) = alice.post("/api/v1/search", json!({ "query": "lunch" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body), vec![deploy.clone(), atrium.clone()], "{body}");
    assert_eq!(body["meta"]["degraded_mode"], true);
    assert!(body["meta"]["missing_sources"].as_array().unwrap().contains(&json!("reranker")), "{body}");
    assert!(body["meta"].get("reranker").is_none());
}

#[tokio::test]
async fn asking_for_a_reranker_that_is_not_configured_says_it_is_missing() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let alice = app.user("alice", "acme", &[]);
    let lunch = alice.remember("Lunch is served in the atrium", json!({})).await;
    app.indexed().await;
    let (status, body) = alice.post("/api/v1/search", json!({ "query": "lunch", "rerank": true })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body), vec![lunch], "{body}");
    assert_eq!(body["meta"]["degraded_mode"], true, "{body}");
    assert!(body["meta"]["missing_sources"].as_array().unwrap().contains(&json!("reranker")), "{body}");
    assert!(body["meta"].get("reranker").is_none());
    // Not asked for: nothing is missing but the embedding (no model here).
    let (_, body) = alice.post("/api/v1/search", json!({ "query": "lunch" })).await;
    assert!(!body["meta"]["missing_sources"].as_array().unwrap().contains(&json!("reranker")), "{body}");
    let (status, body) = alice.post("/api/v1/search", json!({ "query": "lunch", "rerank": "yes" })).await;
    assert_eq!(status, 422, "{body}");
}
