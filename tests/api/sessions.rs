//! `/api/v1/sessions`: episodic memory end to end, in process (no Valkey)
//! and on Valkey; isolation between users and orgs; bad input; promotion
//! through the create path; and the MCP tools over the same calls.

use loci_tests::{AppOptions, Engine, TestApp, valkey_url};
use serde_json::{Value, json};

fn contents(body: &Value) -> Vec<String> {
    body["items"].as_array().unwrap().iter().map(|i| i["content"].as_str().unwrap().to_owned()).collect()
}

async fn sessions_keep_promote_and_isolate(app: TestApp, backend: &str) {
    let alice = app.user("alice", "acme", &[]);
    let bob = app.user("bob", "acme", &[]);
    let eve = app.user("alice", "globex", &[]);
    let base = "/api/v1/sessions/chat-1";

    let mut ids = Vec::new();
    for (n, role) in ["user", "assistant", "user"].iter().enumerate() {
        let (status, body) = alice
            .post(
                &format!("{base}/items"),
                json!({ "content": format!("turn {n}"), "role": role, "metadata": { "n": n } }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!((body["session_id"].as_str(), body["recency"].as_f64()), (Some("chat-1"), Some(1.0)));
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    let (status, body) = alice.get(&format!("{base}/items")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(contents(&body), ["turn 2", "turn 1", "turn 0"], "most recent first");
    assert_eq!(body["backend"], backend);
    assert_eq!(body["items"][1]["role"], "assistant");
    assert_eq!(body["items"][2]["metadata"], json!({ "n": 0 }));
    let (status, body) = alice.get(&format!("{base}/items/{}", ids[1])).await;
    assert_eq!((status, body["content"].as_str()), (200, Some("turn 1")), "{body}");

    // Another user of the org, and the same subject in another org, see nothing.
    for other in [&bob, &eve] {
        let (status, body) = other.get(&format!("{base}/items")).await;
        assert_eq!((status, body["items"].clone()), (200, json!([])), "{body}");
        let (status, body) = other.get(&format!("{base}/items/{}", ids[0])).await;
        assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")), "{body}");
        let (status, _) = other.send(reqwest::Method::DELETE, &format!("{base}/items/{}", ids[0]), None).await;
        assert_eq!(status, 404);
        let (status, body) = other.post(&format!("{base}/items/{}/promote", ids[0]), json!({})).await;
        assert_eq!(status, 404, "{body}");
    }

    // Summarised items hide; decay keeps them.
    let (status, body) = alice.post(&format!("{base}/summarised"), json!({ "ids": [ids[0]] })).await;
    assert_eq!((status, body["count"].clone()), (200, json!(1)), "{body}");
    let (_, body) = alice.get(&format!("{base}/items")).await;
    assert_eq!(contents(&body), ["turn 2", "turn 1"]);
    let (_, body) = alice.get(&format!("{base}/items?include_summarised=true&limit=1")).await;
    assert_eq!(contents(&body), ["turn 2"]);
    let (status, body) = alice.post(&format!("{base}/decay"), json!({})).await;
    assert_eq!((status, body["count"].clone()), (200, json!(3)), "{body}");
    let (_, body) = alice.get(&format!("{base}/items/{}", ids[2])).await;
    assert!((body["recency"].as_f64().unwrap() - 0.9).abs() < 1e-9, "{body}");

    // Promotion creates a memory through the normal path, once.
    let (status, body) = alice
        .post(&format!("{base}/items/{}/promote", ids[1]), json!({ "metadata": { "category": "decision" } }))
        .await;
    assert_eq!(status, 201, "{body}");
    let memory_id = body["memory"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (body["memory"]["content"].as_str(), body["memory"]["metadata"]["category"].as_str()),
        (Some("turn 1"), Some("decision"))
    );
    assert_eq!(
        (body["item"]["promoted_to"].as_str(), body["item"]["summarised"].as_bool()),
        (Some(memory_id.as_str()), Some(true))
    );
    let (status, again) = alice.post(&format!("{base}/items/{}/promote", ids[1]), json!({})).await;
    assert_eq!((status, again["memory"]["id"].as_str()), (201, Some(memory_id.as_str())), "no second memory");
    let (status, memory) = alice.get(&format!("/api/v1/memories/{memory_id}")).await;
    assert_eq!((status, memory["content"].as_str()), (200, Some("turn 1")), "{memory}");
    let (_, history) = alice.get(&format!("/api/v1/memories/{memory_id}/history")).await;
    assert_eq!(history.as_array().map(Vec::len), Some(1), "one creation in the history: {history}");
    let (_, list) = alice.get("/api/v1/memories").await;
    assert_eq!(list["total"], 1, "{list}");

    // Delete and expire.
    let (status, _) = alice.send(reqwest::Method::DELETE, &format!("{base}/items/{}", ids[2]), None).await;
    assert_eq!(status, 204);
    let (status, _) = alice.send(reqwest::Method::DELETE, &format!("{base}/items/{}", ids[2]), None).await;
    assert_eq!(status, 404);
    let (status, body) = alice.send(reqwest::Method::DELETE, base, None).await;
    assert_eq!((status, body["count"].clone()), (200, json!(2)), "{body}");
    let (_, body) = alice.get(&format!("{base}/items?include_summarised=true")).await;
    assert_eq!(body["items"], json!([]));

    // Bad input: field errors, nothing stored.
    let bad = [
        (format!("{base}/items"), json!({ "content": "  " }), "content"),
        (format!("{base}/items"), json!({ "content": "x", "role": "Admin!" }), "role"),
        (format!("{base}/items"), json!({ "content": "x", "metadata": [1] }), "metadata"),
        ("/api/v1/sessions/a:b/items".to_owned(), json!({ "content": "x" }), "session_id"),
        (format!("{base}/summarised"), json!({ "ids": [] }), "ids"),
    ];
    for (path, body, field) in bad {
        let (status, reply) = alice.post(&path, body).await;
        assert_eq!(status, 422, "{path}: {reply}");
        assert_eq!(reply["errors"][0]["field"], field, "{reply}");
    }
    let (status, reply) = alice.get(&format!("{base}/items?limit=0")).await;
    assert_eq!((status, reply["errors"][0]["field"].as_str()), (422, Some("limit")), "{reply}");
    let (status, reply) = alice.post(&format!("{base}/items"), json!({ "content": "x".repeat(17 * 1024) })).await;
    assert_eq!(status, 422, "{reply}");
    let (_, body) = alice.get(&format!("{base}/items?include_summarised=true")).await;
    assert_eq!(body["items"], json!([]), "nothing stored by bad input");

    // Scopes: reading needs memories:read, changing memories:write.
    let reader = app.user_with_scopes("rita", "acme", &["memories:read"]);
    let (status, body) = reader.post(&format!("{base}/items"), json!({ "content": "x" })).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("INSUFFICIENT_SCOPE")), "{body}");
    let (status, _) = reader.get(&format!("{base}/items")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn sessions_in_process() {
    sessions_keep_promote_and_isolate(TestApp::spawn(Engine::Sqlite).await, "in-process").await;
}

#[tokio::test]
async fn sessions_on_valkey() {
    let app = TestApp::spawn_with(Engine::Postgres, AppOptions::default().valkey(valkey_url())).await;
    sessions_keep_promote_and_isolate(app, "valkey").await;
}

/// `POST /api/v1/context`: profile facts, session items and relevant
/// memories within the budget (counted with the model's tokenizer), current
/// only, the caller's only.
#[tokio::test]
async fn context_fits_the_budget_and_holds_only_current_facts_of_the_caller() {
    let app = TestApp::spawn_with(Engine::Sqlite, AppOptions::default().with_model()).await;
    let alice = app.user("alice", "acme", &[]);
    let bob = app.user("bob", "acme", &[]);
    alice.remember("My name is Alice Park.", json!({})).await;
    let old_role = alice.remember("I work as a data engineer.", json!({})).await;
    alice.remember("I prefer Postgres over MySQL.", json!({})).await;
    alice.remember("The billing service publishes invoices to Kafka.", json!({})).await;
    bob.remember("My name is Bob Stone. The billing service is mine.", json!({})).await;
    let (status, _) = alice
        .post(&format!("/api/v1/memories/{old_role}/supersede"), json!({ "text": "I work as a staff engineer." }))
        .await;
    assert_eq!(status, 201);
    alice.post("/api/v1/sessions/s1/items", json!({ "content": "We are fixing the invoice retries." })).await;
    bob.post("/api/v1/sessions/s1/items", json!({ "content": "bob's secret turn" })).await;
    app.indexed().await;

    let (status, body) = alice
        .post("/api/v1/context", json!({ "query": "billing invoices", "session_id": "s1", "max_tokens": 1000 }))
        .await;
    assert_eq!(status, 200, "{body}");
    let facts: Vec<(&str, &str)> = body["profile"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["kind"].as_str().unwrap(), f["value"].as_str().unwrap()))
        .collect();
    assert_eq!(facts, [("role", "staff engineer"), ("preference", "Postgres over MySQL"), ("name", "Alice Park")]);
    assert_eq!(body["session"][0]["text"], "We are fixing the invoice retries.");
    assert_eq!(body["memories"][0]["text"], "The billing service publishes invoices to Kafka.", "{body}");
    assert_eq!(body["tokenizer"], "all-MiniLM-L6-v2");
    let text = body.to_string();
    assert!(!text.contains("data engineer"), "a superseded fact never appears: {text}");
    assert!(!text.contains("Bob") && !text.contains("secret"), "nothing of bob's: {text}");
    let used = body["tokens_used"].as_u64().unwrap();
    let parts: u64 = ["session", "memories"]
        .iter()
        .flat_map(|k| body[*k].as_array().unwrap().iter().map(|i| i["tokens"].as_u64().unwrap()))
        .sum();
    assert!(used <= 1000 && parts <= used, "{body}");

    // A tight budget: what does not fit is left out whole, and says so.
    let (status, small) = alice.post("/api/v1/context", json!({ "query": "billing", "max_tokens": 16 })).await;
    assert_eq!(status, 200, "{small}");
    assert!(small["tokens_used"].as_u64().unwrap() <= 16 && small["truncated"] == true, "{small}");

    // Bad input is a field error.
    let (status, bad) = alice.post("/api/v1/context", json!({ "max_tokens": 5 })).await;
    assert_eq!((status, bad["errors"][0]["field"].as_str()), (422, Some("max_tokens")), "{bad}");
    let (status, bad) = alice.post("/api/v1/context", json!({ "query": "  " })).await;
    assert_eq!((status, bad["errors"][0]["field"].as_str()), (422, Some("query")), "{bad}");
    // A body is an object: serde would read these fields from an array.
    let (status, bad) = alice.post("/api/v1/context", json!([null, null])).await;
    assert_eq!((status, bad["errors"][0]["field"].as_str()), (422, Some("body")), "{bad}");
}
