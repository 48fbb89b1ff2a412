//! Automatic categorisation through an OpenAI-compatible chat endpoint. No
//! model can run here, so the endpoint is a small server in this test that
//! speaks the chat-completions wire format and records what it was asked.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use loci_tests::{AppOptions, Engine, TestApp};
use serde_json::{Value, json};

type Seen = Arc<Mutex<Vec<Value>>>;

/// Starts the endpoint; `status` 200 answers with `content`.
fn chat_endpoint(status: u16, content: &'static str) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let recorded = seen.clone();
    let server = HttpServer::new(move || {
        let recorded = recorded.clone();
        App::new()
            .route("/v1/models", web::get().to(|| async { HttpResponse::Ok().json(json!({"data": [{"id": "test"}]})) }))
            .route(
                "/v1/chat/completions",
                web::post().to(move |body: web::Json<Value>| {
                    let recorded = recorded.clone();
                    async move {
                        recorded.lock().unwrap().push(body.into_inner());
                        if status == 200 {
                            HttpResponse::Ok()
                                .json(json!({"choices": [{"message": {"role": "assistant", "content": content}}]}))
                        } else {
                            HttpResponse::InternalServerError().finish()
                        }
                    }
                }),
            )
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    (format!("http://127.0.0.1:{port}/v1"), seen)
}

async fn categories_of(user: &loci_tests::TestUser<'_>, id: &str) -> Value {
    user.get(&format!("/api/v1/memories/{id}")).await.1["categories"].clone()
}

#[tokio::test]
async fn new_memories_get_the_models_categories_added_asynchronously() {
    let (url, seen) = chat_endpoint(200, "```json\n[\"Ops\", \"deploy\"]\n```");
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        AppOptions::default().with(move |s| {
            s.categorizer.enabled = true;
            s.categorizer.url = Some(url.clone());
            s.categorizer.model = "test-model".into();
        }),
    )
    .await;
    let alice = app.user("alice", "acme", &[]);
    let id = alice.remember("Deploys go through the release train", json!({"categories": ["mine"]})).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while categories_of(&alice, &id).await != json!(["deploy", "mine", "ops"]) {
        assert!(Instant::now() < deadline, "categories never arrived: {}", categories_of(&alice, &id).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let asked = seen.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["model"], "test-model");
    assert_eq!(asked[0]["messages"][1]["content"], "Deploys go through the release train");
}

#[tokio::test]
async fn a_failing_model_never_fails_or_changes_the_write() {
    let (url, seen) = chat_endpoint(500, "");
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        AppOptions::default().with(move |s| {
            s.categorizer.enabled = true;
            s.categorizer.url = Some(url.clone());
        }),
    )
    .await;
    let alice = app.user("alice", "acme", &[]);
    let id = alice.remember("still stored", json!({"categories": ["mine"]})).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the model was never asked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(categories_of(&alice, &id).await, json!(["mine"]));
}

#[tokio::test]
async fn off_by_default() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    assert!(!app.state.services.settings.categorizer.enabled);
    let alice = app.user("alice", "acme", &[]);
    let id = alice.remember("plain", json!({})).await;
    assert_eq!(categories_of(&alice, &id).await, json!([]));
}

/// The endpoint is a dependency of `/health/deps` (`llm`), healthy when it
/// lists its models and unavailable when it cannot be reached; readiness
/// does not depend on it.
#[tokio::test]
async fn the_model_endpoint_is_a_reported_dependency() {
    let (url, _) = chat_endpoint(200, "[]");
    let up = TestApp::spawn_with(
        Engine::Sqlite,
        AppOptions::default().with(move |s| {
            s.categorizer.enabled = true;
            s.categorizer.url = Some(url.clone());
        }),
    )
    .await;
    let res = up.get("/health/deps").await;
    assert_eq!(res.status().as_u16(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["dependencies"]["llm"]["status"], "healthy", "{body}");

    let down = TestApp::spawn_with(
        Engine::Sqlite,
        AppOptions::default().with(|s| {
            s.categorizer.enabled = true;
            s.categorizer.url = Some("http://127.0.0.1:9/v1".into());
            s.categorizer.timeout_ms = 500;
        }),
    )
    .await;
    let res = down.get("/health/deps").await;
    assert_eq!(res.status().as_u16(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["dependencies"]["llm"]["status"], "unavailable", "{body}");
    assert_eq!(down.get("/health/ready").await.status().as_u16(), 200, "not required for readiness");
}
