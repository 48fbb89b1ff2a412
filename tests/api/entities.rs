//! `/api/v1/entities`: what a caller sees of the entity graph, its bad
//! inputs, and tenant and visibility isolation end to end.

use loci_tests::{Engine, TestApp};
use serde_json::json;

fn names(body: &serde_json::Value, list: &str) -> Vec<String> {
    body[list].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_owned()).collect()
}

async fn entities_follow_visibility_and_tenancy(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let alice = app.user("alice", "acme", &[]);
    let bob = app.user("bob", "acme", &[]);
    let team = app.user("tess", "acme", &["team:acme/core"]);
    let stranger = app.user("eve", "globex", &[]);
    alice.remember("Caroline met Melanie in Denver.", json!({})).await;
    alice.remember("Melanie works with Oscar.", json!({})).await;
    alice.remember("Oscar shared the Kafka runbook.", json!({ "access_entity": "team:acme/core" })).await;
    bob.remember("Caroline knows Quentin.", json!({})).await;
    stranger.remember("Caroline met Zoe.", json!({})).await;
    app.indexed().await;

    let (status, body) = alice.get("/api/v1/entities").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(names(&body, "items"), ["melanie", "oscar", "caroline", "denver", "kafka"]);
    assert_eq!(body["total"], 5);
    assert_eq!(body["items"][0]["memories"], 2);

    // bob's private memory is his only: quentin is not alice's, nor his count of caroline.
    let (status, body) = alice.get("/api/v1/entities/Caroline's").await;
    assert_eq!((status, body["memories"].clone()), (200, json!(1)), "{body}");
    let (status, body) = alice.get("/api/v1/entities/quentin").await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")), "{body}");
    let (_, body) = bob.get("/api/v1/entities").await;
    assert_eq!(names(&body, "items"), ["caroline", "quentin"]);
    // The team member sees the shared memory's entities and nothing private.
    let (_, body) = team.get("/api/v1/entities").await;
    assert_eq!(names(&body, "items"), ["kafka", "oscar"]);
    // Another org sees its own graph only.
    let (_, body) = stranger.get("/api/v1/entities").await;
    assert_eq!(names(&body, "items"), ["caroline", "zoe"]);

    let (status, body) = alice.get("/api/v1/entities/melanie/network?limit=10").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["entity"]["name"], "melanie");
    let around: Vec<(String, u64)> = body["neighbours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["entity"]["name"].as_str().unwrap().to_owned(), n["shared_memories"].as_u64().unwrap()))
        .collect();
    assert_eq!(around, [("caroline".to_owned(), 1), ("denver".to_owned(), 1), ("oscar".to_owned(), 1)]);

    let (status, body) = alice.get("/api/v1/entities/path/Denver/Kafka?max_hops=6").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["found"].clone(), body["hops"].clone()), (json!(true), json!(3)));
    assert_eq!(names(&body, "entities"), ["denver", "melanie", "oscar", "kafka"]);
    let (_, body) = alice.get("/api/v1/entities/path/denver/kafka?max_hops=2").await;
    assert_eq!((body["found"].clone(), body["entities"].clone()), (json!(false), json!([])));
    // An entity the caller cannot see ends no path, and says so.
    let (status, _) = alice.get("/api/v1/entities/path/caroline/quentin").await;
    assert_eq!(status, 404);
    let (status, _) = stranger.get("/api/v1/entities/path/caroline/melanie").await;
    assert_eq!(status, 404);
}

async fn bad_entity_input_is_a_422_with_field_errors(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let alice = app.user("alice", "acme", &[]);
    alice.remember("Caroline met Melanie.", json!({})).await;
    app.indexed().await;
    let long = "x".repeat(10_000);
    for (path, field) in [
        ("/api/v1/entities?limit=0".to_owned(), "limit"),
        ("/api/v1/entities?limit=501".to_owned(), "limit"),
        ("/api/v1/entities?min_memories=abc".to_owned(), "min_memories"),
        ("/api/v1/entities/caroline/network?limit=-1".to_owned(), "limit"),
        ("/api/v1/entities/path/caroline/melanie?max_hops=99".to_owned(), "max_hops"),
        ("/api/v1/entities/path/caroline/melanie?max_hops=1".to_owned(), "max_hops"),
        (format!("/api/v1/entities/{long}"), "name"),
        ("/api/v1/entities/path/...%20/melanie".to_owned(), "from"),
    ] {
        let (status, body) = alice.get(&path).await;
        assert_eq!(status, 422, "{path}: {body}");
        let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().filter_map(|e| e["field"].as_str()).collect();
        assert!(fields.contains(&field), "{path}: {body}");
    }
    // Without entities:read, nothing.
    let reader = app.user_with_scopes("alice", "acme", &["memories:read"]);
    let (status, _) = reader.get("/api/v1/entities").await;
    assert_eq!(status, 403);
}

loci_tests::on_both!(entities_follow_visibility_and_tenancy, bad_entity_input_is_a_422_with_field_errors);
