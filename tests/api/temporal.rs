//! Temporal validity: a superseded or retracted memory keeps its row,
//! archived with `valid_to` (and `superseded_by`); default lists and search
//! show only current memories; `as_of` shows what was current then; history
//! shows the change; over REST and MCP.

use loci_tests::{Engine, TestApp};
use serde_json::{Value, json};

fn ids(body: &Value, list: &str) -> Vec<String> {
    body[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().or(m["memory_id"].as_str()).unwrap().to_owned())
        .collect()
}

async fn superseded_memories_leave_the_present_but_not_the_past(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let alice = app.user("alice", "acme", &[]);
    let bob = app.user("bob", "acme", &[]);
    let old = alice.remember("Alice works at Acme.", json!({})).await;
    let (_, before) = alice.get(&format!("/api/v1/memories/{old}")).await;
    let then = before["created_at"].as_str().unwrap().to_owned();
    assert!(before["valid_to"].is_null() && before["superseded_by"].is_null(), "{before}");

    let (status, body) = bob.post(&format!("/api/v1/memories/{old}/supersede"), json!({ "text": "no" })).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")), "only the owner supersedes: {body}");
    let (status, body) = alice.post(&format!("/api/v1/memories/{old}/supersede"), json!({ "text": " " })).await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (422, Some("text")), "{body}");

    let (status, body) =
        alice.post(&format!("/api/v1/memories/{old}/supersede"), json!({ "text": "Alice works at Globex." })).await;
    assert_eq!(status, 201, "{body}");
    let new = body["memory"]["id"].as_str().unwrap().to_owned();
    let superseded = &body["superseded"];
    assert_eq!((superseded["id"].as_str(), superseded["state"].as_str()), (Some(old.as_str()), Some("archived")));
    assert_eq!(superseded["superseded_by"].as_str(), Some(new.as_str()));
    assert_eq!(superseded["valid_to"], superseded["archived_at"], "{superseded}");
    let ended = superseded["valid_to"].as_str().unwrap().to_owned();

    // The present: only the new memory.
    let (_, list) = alice.get("/api/v1/memories").await;
    assert_eq!(ids(&list, "items"), [new.as_str()]);
    assert_eq!(list["total"], 1);
    // The past: what was current then.
    let (status, list) = alice.get(&format!("/api/v1/memories?as_of={then}")).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(ids(&list, "items"), [old.as_str()], "only the old one was current then");
    let (_, list) = alice.get(&format!("/api/v1/memories?as_of={ended}")).await;
    assert_eq!(ids(&list, "items"), [new.as_str()], "at the change, the new one");
    let (status, body) = alice.get("/api/v1/memories?as_of=yesterday").await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (422, Some("as_of")), "{body}");
    let (_, filtered) = alice.post("/api/v1/memories/filter", json!({ "as_of": then })).await;
    assert_eq!(ids(&filtered, "items"), [old.as_str()]);

    // Search: the present by default, the past with as_of.
    app.indexed().await;
    let query = json!({ "query": "Alice works", "mode": "lexical" });
    let (_, found) = alice.post("/api/v1/search", query.clone()).await;
    assert_eq!(ids(&found, "results"), [new.as_str()], "{found}");
    let mut past = query.clone();
    past["as_of"] = json!(then);
    let (status, found) = alice.post("/api/v1/search", past).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(ids(&found, "results"), [old.as_str()], "{found}");

    // History shows the change; a memory no longer current cannot be superseded again.
    let (_, history) = alice.get(&format!("/api/v1/memories/{old}/history")).await;
    let states: Vec<&str> = history.as_array().unwrap().iter().map(|h| h["new_state"].as_str().unwrap()).collect();
    assert_eq!(states, ["active", "archived"]);
    let (status, body) = alice.post(&format!("/api/v1/memories/{old}/supersede"), json!({ "text": "again" })).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("INVALID_STATE_TRANSITION")), "{body}");
    let (_, list) = alice.get("/api/v1/memories").await;
    assert_eq!(list["total"], 1, "the refused supersede stored nothing");

    // Retract: no successor; resuming makes a memory current again.
    let (status, body) = alice.post(&format!("/api/v1/memories/{new}/retract"), json!({})).await;
    assert_eq!((status, body["state"].as_str()), (200, Some("archived")), "{body}");
    assert!(body["valid_to"].is_string() && body["superseded_by"].is_null(), "{body}");
    let (_, list) = alice.get("/api/v1/memories").await;
    assert_eq!(list["total"], 0);
    let (status, _) = alice.post("/api/v1/memories/actions/resume", json!({ "memory_ids": [new] })).await;
    assert_eq!(status, 200);
    let (_, body) = alice.get(&format!("/api/v1/memories/{new}")).await;
    assert!(body["valid_to"].is_null() && body["state"] == "active", "{body}");
}

loci_tests::on_both!(superseded_memories_leave_the_present_but_not_the_past);
