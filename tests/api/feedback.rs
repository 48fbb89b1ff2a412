//! Feedback on retrieval: validation, tenancy, aggregates on a fixed set
//! with known answers, sources taken from the search a report names,
//! retention purge, the weight proposal, and the MCP tool.

use loci_tests::{AppOptions, Engine, TestApp};
use serde_json::{Value, json};

const READ_WRITE: &[&str] = &["feedback:read", "feedback:write", "memories:read", "memories:write", "search:read"];

async fn feedback_is_validated_and_stays_in_its_org(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let alice = app.user_with_scopes("alice", "acme", READ_WRITE);
    let mallory = app.user_with_scopes("mallory", "globex", &["feedback:read", "feedback:write", "admin:read"]);
    for (body, field) in [
        (json!({ "tool_name": "search_memory", "outcome": "loved" }), "outcome"),
        (json!({ "tool_name": " ", "outcome": "accepted" }), "tool_name"),
        (json!({ "tool_name": "t", "outcome": "accepted", "feedback_type": "psychic" }), "feedback_type"),
        (json!({ "tool_name": "t", "outcome": "accepted", "result_index": 1000 }), "result_index"),
        (json!({ "tool_name": "t", "outcome": "accepted", "decision_time_ms": -1 }), "decision_time_ms"),
        (json!({ "tool_name": "t", "outcome": "accepted", "result_id": "nope" }), "result_id"),
        (json!({ "tool_name": "t", "outcome": "accepted", "sources": ["oracle"] }), "sources"),
        (json!({ "tool_name": "t", "outcome": "accepted", "timestamp": "2001-01-01T00:00:00Z" }), "timestamp"),
        (
            json!({ "tool_name": "t", "outcome": "accepted", "rrf_weights": { "vector": -1, "lexical": 1, "graph": 0 } }),
            "rrf_weights",
        ),
    ] {
        let (status, reply) = alice.post("/api/v1/feedback", body.clone()).await;
        assert_eq!(status, 422, "{body} -> {reply}");
        assert_eq!(reply["errors"][0]["field"], field, "{body} -> {reply}");
    }
    let (status, reply) =
        alice.post("/api/v1/feedback", json!({ "tool_name": "t", "outcome": "accepted", "mood": 1 })).await;
    assert_eq!(status, 422, "unknown fields are refused: {reply}");

    let (status, event) =
        alice.post("/api/v1/feedback", json!({ "tool_name": "search_memory", "outcome": "accepted" })).await;
    assert_eq!(status, 201, "{event}");
    assert_eq!((event["feedback_type"].as_str(), event["sources"].is_null()), (Some("explicit"), true));
    // Another org sees none of it, even its admin.
    let (_, list) = mallory.get("/api/v1/feedback?scope=org").await;
    assert_eq!(list["total"], 0, "{list}");
    let (_, metrics) = mallory.get("/api/v1/feedback/metrics?scope=org").await;
    assert_eq!(metrics["total_events"], 0);
    // The org's events need admin:read.
    let (status, reply) = alice.get("/api/v1/feedback?scope=org").await;
    assert_eq!((status, reply["code"].as_str()), (403, Some("INSUFFICIENT_SCOPE")), "{reply}");
    let (status, reply) = alice.get("/api/v1/feedback?scope=everyone").await;
    assert_eq!((status, reply["errors"][0]["field"].as_str()), (422, Some("scope")), "{reply}");
    let (status, _) = app
        .user_with_scopes("reader", "acme", &["memories:read"])
        .post("/api/v1/feedback", json!({ "tool_name": "t", "outcome": "accepted" }))
        .await;
    assert_eq!(status, 403);
}

async fn aggregates_have_the_known_answers(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let alice = app.user_with_scopes("alice", "acme", READ_WRITE);
    let bob = app.user_with_scopes("bob", "acme", READ_WRITE);
    let admin = app.user_with_scopes("root", "acme", &["feedback:read", "admin:read", "admin:write"]);
    // Alice: search_memory 3 accepted (100, 200, 300 ms), 1 rejected, 2 ignored; get_context 1 modified.
    let mut events = Vec::new();
    for ms in [100, 200, 300] {
        events.push(json!({ "tool_name": "search_memory", "outcome": "accepted", "decision_time_ms": ms }));
    }
    events.push(json!({ "tool_name": "search_memory", "outcome": "rejected" }));
    events.push(json!({ "tool_name": "search_memory", "outcome": "ignored", "feedback_type": "implicit" }));
    events.push(json!({ "tool_name": "search_memory", "outcome": "ignored", "feedback_type": "implicit" }));
    events.push(json!({ "tool_name": "get_context", "outcome": "modified", "decision_time_ms": 1000 }));
    for e in events {
        let (status, body) = alice.post("/api/v1/feedback", e).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, _) =
        bob.post("/api/v1/feedback", json!({ "tool_name": "search_memory", "outcome": "rejected" })).await;
    assert_eq!(status, 201);

    let (_, m) = alice.get("/api/v1/feedback/metrics").await;
    assert_eq!(m["total_events"], 7, "{m}");
    // accepted / (total - ignored) = 3 / 5
    assert!((m["acceptance_rate"].as_f64().unwrap() - 0.6).abs() < 1e-9, "{m}");
    assert_eq!(m["outcome_distribution"], json!({ "accepted": 3, "ignored": 2, "modified": 1, "rejected": 1 }));
    assert!((m["average_decision_time_ms"].as_f64().unwrap() - 400.0).abs() < 1e-9, "{m}");
    let search = &m["by_tool"]["search_memory"];
    assert_eq!(search["total_events"], 6);
    assert!((search["acceptance_rate"].as_f64().unwrap() - 0.75).abs() < 1e-9, "{m}");
    assert!((search["average_decision_time_ms"].as_f64().unwrap() - 200.0).abs() < 1e-9);
    let (_, by_tool) = alice.get("/api/v1/feedback/by-tool").await;
    assert_eq!(by_tool["tools"]["get_context"]["acceptance_rate"], 0.0, "{by_tool}");
    // The org: Bob's too.
    let (_, m) = admin.get("/api/v1/feedback/metrics?scope=org").await;
    assert_eq!(m["total_events"], 8, "{m}");
    let (_, m) = admin.get("/api/v1/feedback/metrics?scope=org&tool_name=get_context").await;
    assert_eq!(m["total_events"], 1);
    // Lists page, newest first.
    let (_, page) = alice.get("/api/v1/feedback?size=2").await;
    assert_eq!((page["total"].as_u64(), page["items"].as_array().unwrap().len()), (Some(7), 2), "{page}");
    assert_eq!(page["items"][0]["tool_name"], "get_context");
    // An empty set: zero, not an error.
    let carol = app.user_with_scopes("carol", "acme", READ_WRITE);
    let (_, m) = carol.get("/api/v1/feedback/metrics").await;
    assert_eq!((m["total_events"].as_u64(), m["acceptance_rate"].as_f64()), (Some(0), Some(0.0)), "{m}");
    assert!(m["average_decision_time_ms"].is_null());
}

async fn reports_on_a_search_learn_its_sources_and_old_events_are_purged(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let alice = app.user_with_scopes("alice", "acme", READ_WRITE);
    let admin = app.user_with_scopes("root", "acme", &["feedback:read", "admin:read", "admin:write"]);
    alice.remember("The zebra migration runbook lives in the ops wiki", json!({})).await;
    app.indexed().await;
    let (_, found) = alice.post("/api/v1/search", json!({ "query": "zebra runbook", "mode": "lexical" })).await;
    let query_id = found["query_id"].as_str().unwrap().to_owned();
    let (status, event) = alice
        .post(
            "/api/v1/feedback",
            json!({ "tool_name": "search", "outcome": "accepted", "query_id": query_id, "result_index": 0 }),
        )
        .await;
    assert_eq!(status, 201, "{event}");
    assert_eq!(event["sources"], json!(["lexical"]), "{event}");
    // Another user naming Alice's search learns nothing from it.
    let bob = app.user_with_scopes("bob", "acme", READ_WRITE);
    let (_, event) = bob
        .post(
            "/api/v1/feedback",
            json!({ "tool_name": "search", "outcome": "accepted", "query_id": query_id, "result_index": 0 }),
        )
        .await;
    assert!(event["sources"].is_null(), "{event}");
    let (_, listed) = alice.get(&format!("/api/v1/feedback?query_id={query_id}")).await;
    assert_eq!(listed["total"], 1);

    // Retention (30 days): an event of 40 days ago goes, a recent one stays.
    let old = (chrono::Utc::now() - chrono::Duration::days(40)).to_rfc3339();
    let (status, _) =
        alice.post("/api/v1/feedback", json!({ "tool_name": "search", "outcome": "rejected", "timestamp": old })).await;
    assert_eq!(status, 201);
    let (status, reply) = alice.post("/api/v1/feedback/purge", json!({})).await;
    assert_eq!(status, 403, "{reply}");
    let (status, purged) = admin.post("/api/v1/feedback/purge", json!({})).await;
    assert_eq!((status, purged["purged"].as_u64()), (200, Some(1)), "{purged}");
    let (_, m) = admin.get("/api/v1/feedback/metrics?scope=org").await;
    assert_eq!(m["total_events"], 2, "{m}");
}

loci_tests::on_both!(
    feedback_is_validated_and_stays_in_its_org,
    aggregates_have_the_known_answers,
    reports_on_a_search_learn_its_sources_and_old_events_are_purged
);

#[tokio::test]
async fn the_proposal_moves_weight_to_the_accepted_source_and_declines_without_evidence() {
    let app = TestApp::spawn_with(
        Engine::Postgres,
        AppOptions::default().with(|s| {
            s.search.weight_vector = 0.5;
            s.search.weight_lexical = 0.4;
            s.search.weight_graph = 0.1;
        }),
    )
    .await;
    let agent = app.user_with_scopes("agent", "acme", READ_WRITE);
    let admin = app.user_with_scopes("root", "acme", &["feedback:read", "admin:read"]);
    let (_, declined) = admin.get("/api/v1/feedback/weights/proposal").await;
    assert_eq!(declined["proposed"], false, "{declined}");
    assert!(declined["reason"].as_str().unwrap().contains("at least 100"), "{declined}");
    // Synthetic feedback: lexical results accepted 9 times in 10, vector ones 2 in 10.
    for i in 0..120 {
        let (source, accepted) = if i % 2 == 0 { ("lexical", i % 20 != 0) } else { ("vector", i % 10 < 2) };
        let outcome = if accepted { "accepted" } else { "rejected" };
        let (status, body) = agent
            .post("/api/v1/feedback", json!({ "tool_name": "search_memory", "outcome": outcome, "sources": [source] }))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, p) = admin.get("/api/v1/feedback/weights/proposal").await;
    assert_eq!(status, 200, "{p}");
    assert_eq!((p["proposed"].as_bool(), p["events_used"].as_u64()), (Some(true), Some(120)), "{p}");
    let w = &p["weights"];
    let (v, l, g) = (w["vector"].as_f64().unwrap(), w["lexical"].as_f64().unwrap(), w["graph"].as_f64().unwrap());
    assert!(l > 0.4 && v < 0.5, "{p}");
    assert!((l - 0.4).abs() <= 0.1 + 1e-3 && (v - 0.5).abs() <= 0.1 + 1e-3 && (g - 0.1).abs() <= 0.1 + 1e-3, "{p}");
    assert!((v + l + g - 1.0).abs() < 2e-3, "{p}");
    assert!(p["by_source"]["lexical"]["acceptance_rate"].as_f64().unwrap() > 0.8, "{p}");
    let (status, _) = agent.get("/api/v1/feedback/weights/proposal").await;
    assert_eq!(status, 403, "the proposal is for admins");
    let _: Value = p;
}
