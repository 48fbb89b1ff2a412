//! Experiments: validation, tenancy, every allowed and forbidden status
//! transition, sticky assignment only while running, and searches run
//! under the caller's variant (named in the answer and in feedback).

use loci_tests::{Engine, TestApp, TestUser};
use serde_json::{Value, json};

const SCOPES: &[&str] = &[
    "experiments:read",
    "experiments:write",
    "memories:read",
    "memories:write",
    "search:read",
    "feedback:write",
    "feedback:read",
];

fn experiment_body(traffic: f64) -> Value {
    json!({
        "name": "lexical heavy",
        "description": "does BM25 help our notes?",
        "traffic_percentage": traffic,
        "variants": [
            { "name": "control", "weight": 0.5, "config": { "mode": "lexical" } },
            { "name": "heavy", "weight": 0.5, "config": { "mode": "lexical", "weights": { "vector": 0.1, "lexical": 0.9, "graph": 0 } } }
        ]
    })
}

async fn create(user: &TestUser<'_>, traffic: f64) -> String {
    let (status, body) = user.post("/api/v1/experiments", experiment_body(traffic)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "draft");
    body["experiment_id"].as_str().unwrap().to_owned()
}

async fn set(user: &TestUser<'_>, id: &str, status: &str) -> (u16, Value) {
    user.put(&format!("/api/v1/experiments/{id}/status"), json!({ "status": status })).await
}

async fn experiments_are_validated_and_stay_in_their_org(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let alice = app.user_with_scopes("alice", "acme", SCOPES);
    let mallory = app.user_with_scopes("mallory", "globex", SCOPES);
    let mut one = experiment_body(0.5);
    one["variants"] = json!([{ "name": "only", "weight": 1.0, "config": {} }]);
    let mut sum = experiment_body(0.5);
    sum["variants"][1]["weight"] = json!(0.3);
    let mut twins = experiment_body(0.5);
    twins["variants"][1]["name"] = json!("control");
    let mut config = experiment_body(0.5);
    config["variants"][0]["config"] = json!({ "temperature": 2 });
    let mut traffic = experiment_body(1.5);
    traffic["name"] = json!(" ");
    for (body, field) in [
        (one, "variants"),
        (sum, "variants"),
        (twins, "variants[1].name"),
        (config, "variants[0].config"),
        (traffic.clone(), "traffic_percentage"),
        (traffic, "name"),
    ] {
        let (status, reply) = alice.post("/api/v1/experiments", body.clone()).await;
        assert_eq!(status, 422, "{body} -> {reply}");
        let fields: Vec<&str> =
            reply["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert!(fields.contains(&field), "{field} not in {reply}");
    }
    let id = create(&alice, 0.5).await;
    let (status, got) = alice.get(&format!("/api/v1/experiments/{id}")).await;
    assert_eq!((status, got["variants"][1]["name"].as_str()), (200, Some("heavy")));
    let (status, _) = mallory.get(&format!("/api/v1/experiments/{id}")).await;
    assert_eq!(status, 404, "another org's experiment is not found");
    let (status, _) = set(&mallory, &id, "running").await;
    assert_eq!(status, 404);
    let (_, list) = mallory.get("/api/v1/experiments").await;
    assert_eq!(list["total"], 0);
    let (_, list) = alice.get("/api/v1/experiments?status=draft").await;
    assert_eq!(list["total"], 1);
    let (status, reply) = alice.get("/api/v1/experiments?status=sleeping").await;
    assert_eq!((status, reply["errors"][0]["field"].as_str()), (422, Some("status")), "{reply}");
    let (status, _) = alice.get("/api/v1/experiments/not-a-uuid").await;
    assert_eq!(status, 422);
    let reader = app.user_with_scopes("reader", "acme", &["experiments:read"]);
    let (status, _) = reader.post("/api/v1/experiments", experiment_body(0.5)).await;
    assert_eq!(status, 403);
}

/// Drives a new experiment to `status` along allowed transitions.
async fn experiment_in(user: &TestUser<'_>, status: &str) -> String {
    let id = create(user, 1.0).await;
    let path: &[&str] = match status {
        "draft" => &[],
        "running" => &["running"],
        "paused" => &["running", "paused"],
        "completed" => &["running", "completed"],
        _ => &["running", "rolled_back"],
    };
    for step in path {
        let (code, body) = set(user, &id, step).await;
        assert_eq!(code, 200, "{step}: {body}");
    }
    id
}

async fn every_status_transition_is_allowed_or_refused_as_specified(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let alice = app.user_with_scopes("alice", "acme", SCOPES);
    let statuses = ["draft", "running", "paused", "completed", "rolled_back"];
    let allowed = [
        ("draft", "running"),
        ("running", "paused"),
        ("running", "completed"),
        ("running", "rolled_back"),
        ("paused", "running"),
        ("paused", "completed"),
        ("paused", "rolled_back"),
    ];
    for from in statuses {
        for to in statuses {
            let id = experiment_in(&alice, from).await;
            let (code, body) = set(&alice, &id, to).await;
            if allowed.contains(&(from, to)) {
                assert_eq!((code, body["status"].as_str()), (200, Some(to)), "{from} -> {to}: {body}");
            } else {
                assert_eq!(
                    (code, body["code"].as_str()),
                    (409, Some("INVALID_STATE_TRANSITION")),
                    "{from} -> {to}: {body}"
                );
            }
            // Leave nothing running for the next case.
            let (_, now) = alice.get(&format!("/api/v1/experiments/{id}")).await;
            if matches!(now["status"].as_str(), Some("running" | "paused")) {
                assert_eq!(set(&alice, &id, "completed").await.0, 200);
            }
        }
    }
    // Times and history.
    let id = experiment_in(&alice, "paused").await;
    let (_, paused) = alice.get(&format!("/api/v1/experiments/{id}")).await;
    assert!(paused["start_time"].is_string() && paused["end_time"].is_null(), "{paused}");
    let (_, resumed) = set(&alice, &id, "running").await;
    assert_eq!(resumed["start_time"], paused["start_time"], "start_time is the first run's");
    let (_, done) = set(&alice, &id, "rolled_back").await;
    assert!(done["end_time"].is_string(), "{done}");
    let (_, history) = alice.get(&format!("/api/v1/experiments/{id}/history")).await;
    let steps: Vec<(Option<&str>, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["old_status"].as_str(), h["new_status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            (None, "draft"),
            (Some("draft"), "running"),
            (Some("running"), "paused"),
            (Some("paused"), "running"),
            (Some("running"), "rolled_back")
        ]
    );
    // One running experiment per org.
    let first = experiment_in(&alice, "running").await;
    let second = create(&alice, 1.0).await;
    let (code, body) = set(&alice, &second, "running").await;
    assert_eq!((code, body["code"].as_str()), (409, Some("CONFLICT")), "{body}");
    assert_eq!(set(&alice, &first, "completed").await.0, 200);
    assert_eq!(set(&alice, &second, "running").await.0, 200);
}

async fn assignment_is_sticky_and_searches_run_under_the_variant(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let admin = app.user_with_scopes("admin", "acme", SCOPES);
    let id = create(&admin, 1.0).await;
    let alice = app.user_with_scopes("alice", "acme", SCOPES);
    let (code, body) = alice.post(&format!("/api/v1/experiments/{id}/assign"), json!({})).await;
    assert_eq!((code, body["code"].as_str()), (409, Some("CONFLICT")), "a draft assigns nobody: {body}");
    assert_eq!(set(&admin, &id, "running").await.0, 200);
    let (code, first) = alice.post(&format!("/api/v1/experiments/{id}/assign"), json!({})).await;
    assert_eq!(code, 200, "{first}");
    let variant = first["variant"].as_str().unwrap().to_owned();
    assert!(variant == "control" || variant == "heavy");
    for _ in 0..3 {
        let (_, again) = alice.post(&format!("/api/v1/experiments/{id}/assign"), json!({})).await;
        assert_eq!(again, first, "sticky");
    }
    let (_, stored) = alice.get(&format!("/api/v1/experiments/{id}/assignment")).await;
    assert_eq!(stored, first);

    // Searches of the org's users run under their variant.
    alice.remember("The zebra runbook lives in the ops wiki", json!({})).await;
    app.indexed().await;
    let (_, found) = alice.post("/api/v1/search", json!({ "query": "zebra runbook" })).await;
    assert_eq!(found["meta"]["mode"], "lexical", "the variant's mode: {found}");
    assert_eq!(found["meta"]["experiment"], json!({ "experiment_id": id, "variant": variant }), "{found}");
    // Feedback on that search is attributed to the variant.
    let (_, event) = alice
        .post(
            "/api/v1/feedback",
            json!({ "tool_name": "search", "outcome": "accepted", "query_id": found["query_id"], "result_index": 0 }),
        )
        .await;
    assert_eq!(
        (event["experiment_id"].as_str(), event["variant_id"].as_str()),
        (Some(id.as_str()), Some(variant.as_str())),
        "{event}"
    );
    // A request that sets its own weights is not in the experiment.
    let (_, own) = alice
        .post("/api/v1/search", json!({ "query": "zebra", "weights": { "vector": 1, "lexical": 1, "graph": 0 } }))
        .await;
    assert!(own["meta"]["experiment"].is_null(), "{own}");

    // Paused: nobody new, the assigned keep theirs.
    assert_eq!(set(&admin, &id, "paused").await.0, 200);
    let bob = app.user_with_scopes("bob", "acme", SCOPES);
    let (code, body) = bob.post(&format!("/api/v1/experiments/{id}/assign"), json!({})).await;
    assert_eq!((code, body["code"].as_str()), (409, Some("CONFLICT")), "{body}");
    let (code, _) = bob.get(&format!("/api/v1/experiments/{id}/assignment")).await;
    assert_eq!(code, 404);
    let (_, kept) = alice.post(&format!("/api/v1/experiments/{id}/assign"), json!({})).await;
    assert_eq!(kept, first);
    // Resumed: the same variant again.
    assert_eq!(set(&admin, &id, "running").await.0, 200);
    let (_, resumed) = alice.post(&format!("/api/v1/experiments/{id}/assign"), json!({})).await;
    assert_eq!(resumed, first);
}

loci_tests::on_both!(
    experiments_are_validated_and_stay_in_their_org,
    every_status_transition_is_allowed_or_refused_as_specified,
    assignment_is_sticky_and_searches_run_under_the_variant
);
