use loci_tests::{AppOptions, Engine, TestApp, ThrowawayValkey, valkey_url};
use serde_json::Value;

async fn json(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

#[tokio::test]
async fn live_answers_ok_without_io() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let (status, body) = json(app.get("/health/live").await).await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({"status": "ok"}));
}

async fn ready_reports_the_database(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (status, body) = json(app.get("/health/ready").await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["dependencies"]["database"]["status"], "healthy");
    assert!(body["dependencies"]["database"]["latency_ms"].is_number());
    let ts = body["timestamp"].as_str().unwrap();
    assert!(ts.ends_with('Z') && ts.len() >= 20, "RFC 3339 UTC: {ts}");
}

#[tokio::test]
async fn ready_reports_the_database_on_sqlite() {
    ready_reports_the_database(Engine::Sqlite).await;
}

#[tokio::test]
async fn ready_reports_the_database_on_postgres() {
    ready_reports_the_database(Engine::Postgres).await;
}

#[tokio::test]
async fn postgres_and_valkey_are_both_checked() {
    let app = TestApp::spawn_with(Engine::Postgres, AppOptions::default().valkey(valkey_url())).await;
    let (status, body) = json(app.get("/health/deps").await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!((body["healthy_count"].as_u64(), body["total_count"].as_u64()), (Some(2), Some(2)));
    assert_eq!(body["dependencies"]["valkey"]["status"], "healthy");
    assert_eq!(body["dependencies"]["database"]["status"], "healthy");
}

#[tokio::test]
async fn a_dependency_going_down_makes_ready_and_deps_503_degraded() {
    let mut valkey = ThrowawayValkey::start();
    let app = TestApp::spawn_with(Engine::Postgres, AppOptions::default().valkey(valkey.url.clone())).await;
    assert_eq!(app.get("/health/ready").await.status().as_u16(), 200);

    valkey.kill();
    let started = std::time::Instant::now();
    let (status, body) = json(app.get("/health/deps").await).await;
    assert!(started.elapsed().as_secs() < 10, "checks are bounded");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["dependencies"]["valkey"]["status"], "unavailable");
    assert!(body["dependencies"]["valkey"]["error"].is_string());
    assert_eq!(body["dependencies"]["database"]["status"], "healthy");
    assert_eq!((body["healthy_count"].as_u64(), body["total_count"].as_u64()), (Some(1), Some(2)));

    let (status, body) = json(app.get("/health/ready").await).await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "degraded");
    // Liveness does no I/O and stays up.
    assert_eq!(app.get("/health/live").await.status().as_u16(), 200);
}

#[tokio::test]
async fn deps_can_be_closed_by_settings() {
    let app =
        TestApp::spawn_with(Engine::Sqlite, AppOptions::default().with(|s| s.server.public_health_deps = false)).await;
    let (status, body) = json(app.get("/health/deps").await).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "MISSING_AUTH");
    assert!(res_has_challenge(&app).await);
}

async fn res_has_challenge(app: &TestApp) -> bool {
    app.get("/health/deps").await.headers().contains_key("www-authenticate")
}

/// A remote embedding endpoint is a dependency of `/health/deps` (not of
/// readiness: search degrades to lexical and graph without it).
#[tokio::test]
async fn an_unreachable_embedding_endpoint_is_reported_but_not_required() {
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        AppOptions::default().with(|s| {
            s.embeddings.provider = loci_settings::EmbeddingsProvider::Openai;
            s.embeddings.url = Some("http://127.0.0.1:9/v1".into());
            s.embeddings.model = "text-embedding-3-small".into();
            s.embeddings.dimensions = 8;
            s.embeddings.timeout_ms = 500;
        }),
    )
    .await;
    let started = std::time::Instant::now();
    let (status, body) = json(app.get("/health/deps").await).await;
    assert!(started.elapsed().as_secs() < 10, "checks are bounded");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["dependencies"]["embedder"]["status"], "unavailable", "{body}");
    assert_eq!(body["dependencies"]["database"]["status"], "healthy");
    assert_eq!((body["healthy_count"].as_u64(), body["total_count"].as_u64()), (Some(1), Some(2)));
    let (status, body) = json(app.get("/health/ready").await).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")), "{body}");
    assert!(body["dependencies"].get("embedder").is_none(), "{body}");
}

/// `/metrics` carries each dependency's health as checked at scrape time;
/// with `telemetry.metrics_enabled = false` nothing is recorded and the
/// route is 404.
#[tokio::test]
async fn metrics_show_dependency_health_and_can_be_turned_off() {
    let app = TestApp::spawn_with(Engine::Sqlite, AppOptions::default().valkey(valkey_url())).await;
    let alice = app.user("alice", "acme", &[]);
    alice.remember("the deploy runs on Fridays", serde_json::json!({})).await;
    app.indexed().await;
    let (status, _) = alice.post("/api/v1/search/lexical", serde_json::json!({"query": "deploy"})).await;
    assert_eq!(status, 200);
    let token = app.mint_full("alice", "acme", &["memories:write"], &[], &[], None);
    let client = crate::mcp::connect(&app, &token).await;
    crate::mcp::ok(&client, "add_memories", serde_json::json!({"text": "the canary runs on Mondays"})).await;
    client.cancel().await.ok();

    let admin = app.token("root", "acme", &["admin:read"]);
    let res = app.client.get(app.url("/metrics")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let text = res.text().await.unwrap();
    for dependency in ["database", "valkey"] {
        assert!(text.contains(&format!("dependency_health{{dependency=\"{dependency}\"}} 1")), "{text}");
    }
    assert!(text.contains("memories_created_total 2"), "one over REST, one over MCP: {text}");
    assert!(text.contains("search_queries_total{mode=\"lexical\"} 1"), "{text}");
    assert!(text.contains("search_stage_duration_seconds_count{stage=\"lexical\"} 1"), "{text}");
    assert!(text.contains("search_stage_duration_seconds_count{stage=\"total\"} 1"), "the whole search: {text}");
    assert!(!text.contains("stage=\"vector\""), "a stage the search skipped is not observed: {text}");

    let off =
        TestApp::spawn_with(Engine::Sqlite, AppOptions::default().with(|s| s.telemetry.metrics_enabled = false)).await;
    let admin = off.token("root", "acme", &["admin:read"]);
    let res = off.client.get(off.url("/metrics")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 404);
    let problem: serde_json::Value = res.json().await.unwrap();
    assert_eq!(problem["code"], "NOT_FOUND");
    let text = off.state.metrics.render();
    assert!(!text.contains("http_requests_total{") && !text.contains("dependency_health{"), "nothing recorded: {text}");
}

/// `GET /api/v1/config`: admin:read only, every secret redacted.
#[tokio::test]
async fn config_shows_the_effective_settings_to_admins_with_secrets_redacted() {
    // Made at run time: the repository's secret scan flags literals.
    let key = ["sk-", "config-test-", "42"].concat();
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        AppOptions::default().with({
            let key = key.clone();
            move |s| s.embeddings.api_key = Some(loci_settings::Secret::new(key.clone()))
        }),
    )
    .await;
    let viewer = app.user_with_scopes("bob", "acme", &["memories:read"]);
    let (status, body) = viewer.get("/api/v1/config").await;
    assert_eq!((status, body["code"].as_str()), (403, Some("INSUFFICIENT_SCOPE")), "{body}");
    let admin = app.user_with_roles("root", "acme", &[], &["admin"]);
    let (status, body) = admin.get("/api/v1/config").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["profile"], "embedded");
    assert_eq!(body["embeddings"]["api_key"], "[REDACTED]");
    assert_eq!(body["database"]["url"], "[REDACTED]");
    assert!(!body.to_string().contains(&key), "{body}");
}

/// `PUT /api/v1/config`: runtime-tunable settings changed with validation,
/// in force at once, kept across a restart; operators only.
#[tokio::test]
async fn runtime_settings_change_validate_apply_at_once_and_survive_a_restart() {
    let data_dir = tempfile::tempdir().unwrap();
    let dir = data_dir.path().to_path_buf();
    let options = AppOptions::default().with(move |s| s.data_dir = dir.clone());
    let app = TestApp::spawn_with(Engine::Sqlite, options.clone()).await;
    let admin = app.user_with_roles("root", "acme", &[], &["admin"]);
    let reader = app.user_with_scopes("ops", "acme", &["admin:read"]);
    let (status, body) = reader.put("/api/v1/config", serde_json::json!({"log_level": "debug"})).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("INSUFFICIENT_SCOPE")), "{body}");

    // Invalid values: 422 naming each field, nothing changed.
    let bad = serde_json::json!({
        "search": {"weight_lexical": 500.0},
        "rate_limit": {"default_plan": "no-such-plan"},
        "log_level": "loci=[nope",
    });
    let (status, body) = admin.put("/api/v1/config", bad).await;
    assert_eq!(status, 422, "{body}");
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().filter_map(|e| e["field"].as_str()).collect();
    for field in ["search.weight_lexical", "rate_limit.default_plan", "telemetry.log_level"] {
        assert!(fields.contains(&field), "{field} in {fields:?}");
    }
    let (status, body) = admin.put("/api/v1/config", serde_json::json!({"colour": "blue"})).await;
    assert_eq!(status, 422, "an unknown setting is refused: {body}");
    assert!(!data_dir.path().join("runtime-settings.json").exists(), "nothing was saved");

    let change = serde_json::json!({
        "search": {"weight_lexical": 0.9, "weight_vector": 0.1},
        "rate_limit": {"plans": {"one": {"window_secs": 60, "read": 1, "write": 5, "search": 5}}, "default_plan": "one"},
        "log_level": "info,loci_domain=debug",
    });
    let (status, body) = admin.put("/api/v1/config", change).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["search"]["weight_lexical"], 0.9);
    assert_eq!(body["rate_limit"]["default_plan"], "one");
    assert_eq!(body["telemetry"]["log_level"], "info,loci_domain=debug");
    assert_eq!(body["database"]["url"], "[REDACTED]", "secrets stay redacted");
    // In force at once: one read per minute now.
    let user = app.user("alice", "acme", &[]);
    assert_eq!(user.get("/api/v1/memories").await.0, 200);
    assert_eq!(user.get("/api/v1/memories").await.0, 429);
    assert!((app.state.services.search.default_weights().lexical - 0.9).abs() < 1e-6);

    // A restart on the same data directory keeps the change.
    drop(app);
    let restarted = TestApp::spawn_with(Engine::Sqlite, options).await;
    let admin = restarted.user_with_roles("root", "acme", &[], &["admin"]);
    let (status, body) = admin.get("/api/v1/config").await;
    assert_eq!(status, 200, "{body}");
    assert!((body["search"]["weight_lexical"].as_f64().unwrap() - 0.9).abs() < 1e-6, "{body}");
    assert_eq!(body["rate_limit"]["default_plan"], "one");
    assert!((restarted.state.services.search.default_weights().vector - 0.1).abs() < 1e-6);
}

#[tokio::test]
async fn only_an_operator_org_changes_settings_every_tenant_shares() {
    let options = AppOptions::default().with(|s| s.auth.operator_orgs = vec!["platform".into()]);
    let app = TestApp::spawn_with(Engine::Sqlite, options).await;
    let tenant_admin = app.user_with_roles("root", "acme", &[], &["admin"]);
    let (status, body) =
        tenant_admin.put("/api/v1/config", serde_json::json!({"rate_limit": {"enabled": false}})).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("OPERATOR_REQUIRED")), "{body}");
    let operator = app.user_with_roles("sre", "platform", &[], &["admin"]);
    let (status, body) = operator.put("/api/v1/config", serde_json::json!({"rate_limit": {"enabled": false}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rate_limit"]["enabled"], false);
}
