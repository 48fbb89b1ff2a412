//! Rate limiting and circuit breakers (40-operations.md "Rate limiting",
//! "Resilience"), against real servers: budgets in process and in a shared
//! Valkey, the fallback when Valkey is gone, MCP tool calls, and the
//! database's breaker opening on a real outage and closing after it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use loci_settings::{RateLimitFallback, RatePlan};
use loci_tests::{AppOptions, Engine, TestApp, ThrowawayValkey, valkey_url};
use serde_json::{Value, json};

/// Every org on the `tiny` plan: 3 reads, 2 writes, 2 searches per minute.
fn tiny_plan(options: AppOptions) -> AppOptions {
    options.with(|s| {
        s.rate_limit.plans =
            BTreeMap::from([("tiny".to_owned(), RatePlan { window_secs: 60, read: 3, write: 2, search: 2 })]);
        s.rate_limit.default_plan = "tiny".into();
    })
}

/// An org no other run of the suite uses (budgets in a shared Valkey
/// outlive a test).
fn fresh_org(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::new_v4().simple())
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn send(app: &TestApp, token: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Answer {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.json().await.unwrap_or(Value::Null);
    Answer { status, headers, body }
}

fn header<'a>(answer: &'a Answer, name: &str) -> Option<&'a str> {
    answer.headers.get(name).and_then(|v| v.to_str().ok())
}

async fn read(app: &TestApp, token: &str) -> Answer {
    send(app, token, reqwest::Method::GET, "/api/v1/memories", None).await
}

async fn write(app: &TestApp, token: &str, text: &str) -> Answer {
    let body = json!({ "text": text, "app": "cli" });
    send(app, token, reqwest::Method::POST, "/api/v1/memories", Some(body)).await
}

#[tokio::test]
async fn in_process_budgets_count_exactly_and_answer_429_with_retry_after() {
    let app = TestApp::spawn_with(Engine::Sqlite, tiny_plan(AppOptions::default())).await;
    let alice = app.mint_full("alice", "acme", &[], &["editor"], &[], None);

    for remaining in [2, 1, 0] {
        let answer = read(&app, &alice).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(header(&answer, "ratelimit-policy"), Some("\"tiny-read\";q=3;w=60"));
        let current = header(&answer, "ratelimit").expect("RateLimit header");
        assert!(current.starts_with(&format!("\"tiny-read\";r={remaining};t=")), "{current}");
    }
    let refused = read(&app, &alice).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.body["code"], "RATE_LIMITED");
    // One read costs 60 s / 3 = 20 s of budget: that is when the next one fits.
    assert_eq!(header(&refused, "retry-after"), Some("20"));
    assert_eq!(refused.body["retry_after"], 20);
    assert!(header(&refused, "ratelimit").is_some_and(|v| v.contains(";r=0;")));
    assert!(refused.headers.get("content-type").is_some_and(|v| v == "application/problem+json"));

    // Other groups, other users and other orgs keep their own budgets.
    assert_eq!(write(&app, &alice, "writes have a budget of their own").await.status, 201);
    let bob = app.mint_full("bob", "acme", &[], &["editor"], &[], None);
    assert_eq!(read(&app, &bob).await.status, 200);
    let carol = app.mint_full("alice", "other-org", &[], &["editor"], &[], None);
    assert_eq!(read(&app, &carol).await.status, 200);
    // Health routes are exempt.
    for _ in 0..5 {
        assert_eq!(app.get("/health/live").await.status().as_u16(), 200);
    }

    let admin = app.mint_full("ops", "acme", &["admin:read"], &[], &[], None);
    let metrics = app.client.get(app.url("/metrics")).bearer_auth(&admin).send().await.expect("metrics");
    assert_eq!(metrics.status().as_u16(), 200);
    let text = metrics.text().await.expect("text");
    assert!(text.contains("rate_limited_total{group=\"read\"} 1"), "{text}");
    assert!(text.contains("circuit_breaker_state{service=\"database\"} 0"), "{text}");
}

#[tokio::test]
async fn two_instances_sharing_valkey_share_one_budget_and_other_tenants_are_unaffected() {
    let options = tiny_plan(AppOptions::default().valkey(valkey_url()));
    let a = TestApp::spawn_with(Engine::Postgres, options.clone()).await;
    let b = TestApp::spawn_with(Engine::Postgres, options).await;
    let org = fresh_org("shared");
    // Each instance has its own signing key: the same caller, a token from each.
    let on_a = a.mint_full("alice", &org, &[], &["editor"], &[], None);
    let on_b = b.mint_full("alice", &org, &[], &["editor"], &[], None);

    assert_eq!(write(&a, &on_a, "first write, through a").await.status, 201);
    let second = write(&b, &on_b, "second write, through b").await;
    assert_eq!(second.status, 201, "{}", second.body);
    assert!(header(&second, "ratelimit").is_some_and(|v| v.contains(";r=0;")), "b saw a's write");
    let third = write(&a, &on_a, "third write, over the shared budget").await;
    assert_eq!(third.status, 429, "{}", third.body);
    assert_eq!(header(&third, "retry-after"), Some("30"));
    assert_eq!(write(&b, &on_b, "still over budget on b").await.status, 429);

    let other_org = fresh_org("neighbour");
    let neighbour = b.mint_full("alice", &other_org, &[], &["editor"], &[], None);
    assert_eq!(write(&b, &neighbour, "another tenant writes freely").await.status, 201);
}

#[tokio::test]
async fn without_valkey_reads_pass_and_writes_are_refused_by_default() {
    let mut valkey = ThrowawayValkey::start();
    let options = tiny_plan(AppOptions::default().valkey(valkey.url.clone())).with(|s| s.valkey.timeout_ms = 300);
    let app = TestApp::spawn_with(Engine::Sqlite, options).await;
    let alice = app.mint_full("alice", "acme", &[], &["editor"], &[], None);
    assert_eq!(write(&app, &alice, "written while valkey is up").await.status, 201);

    valkey.kill();
    // Reads are let through unlimited (more than the plan's 3), without budget headers.
    for _ in 0..4 {
        let answer = read(&app, &alice).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert!(header(&answer, "ratelimit").is_none());
    }
    let refused = write(&app, &alice, "refused while valkey is down").await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.body["code"], "DEPENDENCY_UNAVAILABLE");
    assert!(header(&refused, "retry-after").is_some());
}

#[tokio::test]
async fn the_fallback_can_let_everything_through_or_refuse_everything() {
    let mut valkey = ThrowawayValkey::start();
    let open = tiny_plan(AppOptions::default().valkey(valkey.url.clone())).with(|s| {
        s.valkey.timeout_ms = 300;
        s.rate_limit.when_store_unavailable = RateLimitFallback::AllowAll;
    });
    let closed = tiny_plan(AppOptions::default().valkey(valkey.url.clone())).with(|s| {
        s.valkey.timeout_ms = 300;
        s.rate_limit.when_store_unavailable = RateLimitFallback::RefuseAll;
    });
    let lenient = TestApp::spawn_with(Engine::Sqlite, open).await;
    let strict = TestApp::spawn_with(Engine::Sqlite, closed).await;
    valkey.kill();
    let token = lenient.mint_full("alice", "acme", &[], &["editor"], &[], None);
    assert_eq!(write(&lenient, &token, "allowed without a limiter").await.status, 201);
    let token = strict.mint_full("alice", "acme", &[], &["editor"], &[], None);
    assert_eq!(read(&strict, &token).await.status, 503);
}

#[tokio::test]
async fn mcp_tool_calls_spend_the_same_budget() {
    use rmcp::model::CallToolRequestParams;
    let app = TestApp::spawn_with(Engine::Sqlite, tiny_plan(AppOptions::default())).await;
    let token = app.mint_full("alice", "acme", &[], &["editor"], &[], None);
    let client = super::mcp::connect(&app, &token).await;
    let whoami = || CallToolRequestParams::new("whoami".to_owned());
    for _ in 0..3 {
        let result = client.call_tool(whoami()).await.expect("whoami");
        assert_ne!(result.is_error, Some(true), "{:?}", result.structured_content);
    }
    let refused = client.call_tool(whoami()).await.expect("a tool error, not a protocol error");
    assert_eq!(refused.is_error, Some(true));
    let body = refused.structured_content.expect("structured error");
    assert_eq!((body["code"].as_str(), body["status"].as_u64()), (Some("RATE_LIMITED"), Some(429)));
    assert_eq!(body["retry_after"], 20);
    // REST reads share the budget the tool calls spent.
    assert_eq!(read(&app, &token).await.status, 429);
}

#[tokio::test]
async fn a_database_outage_opens_its_breaker_fails_fast_and_recovers() {
    let options = AppOptions::default().with(|s| {
        s.resilience.failure_threshold = 2;
        s.resilience.cool_down_secs = 2;
        s.database.acquire_timeout_secs = 1;
        s.database.connect_timeout_secs = 1;
    });
    let app = TestApp::spawn_with(Engine::Postgres, options).await;
    let alice = app.mint_full("alice", "acme", &[], &["editor"], &[], None);
    assert_eq!(write(&app, &alice, "stored before the outage").await.status, 201);

    app.db.accept_connections(false).await;
    for _ in 0..2 {
        let answer = read(&app, &alice).await;
        assert_eq!(answer.status, 503, "{}", answer.body);
        assert_eq!(answer.body["code"], "DEPENDENCY_UNAVAILABLE");
    }
    // Open: refused at once, saying when to come back.
    let started = Instant::now();
    let fast = read(&app, &alice).await;
    assert!(started.elapsed() < Duration::from_millis(500), "an open breaker fails fast");
    assert_eq!(fast.status, 503, "{}", fast.body);
    let wait: u64 = header(&fast, "retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
    assert!((1..=2).contains(&wait), "the rest of the cool-down: {wait}");
    let admin = app.mint_full("ops", "acme", &["admin:read"], &[], &[], None);
    let metrics = app.client.get(app.url("/metrics")).bearer_auth(&admin).send().await.expect("metrics");
    let text = metrics.text().await.expect("text");
    assert!(text.contains("circuit_breaker_state{service=\"database\"} 1"), "{text}");

    app.db.accept_connections(true).await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    // One trial goes through (a background task may be the one making it)
    // and closes the breaker; nothing was lost.
    let deadline = Instant::now() + Duration::from_secs(5);
    let answer = loop {
        let answer = read(&app, &alice).await;
        if answer.status == 200 || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["total"], 1, "{}", answer.body);
    assert_eq!(write(&app, &alice, "stored after the outage").await.status, 201);
}

#[tokio::test]
async fn a_valkey_outage_opens_its_breaker_and_a_successful_probe_closes_it() {
    let valkey = ThrowawayValkey::start();
    let options = tiny_plan(AppOptions::default().valkey(valkey.url.clone())).with(|s| {
        s.valkey.timeout_ms = 200;
        s.resilience.cool_down_secs = 1;
        s.rate_limit.plans.insert("roomy".into(), RatePlan { window_secs: 60, read: 100, write: 100, search: 100 });
        s.rate_limit.default_plan = "roomy".into();
    });
    let app = TestApp::spawn_with(Engine::Sqlite, options).await;
    let alice = app.mint_full("alice", "acme", &[], &["editor"], &[], None);
    assert_eq!(write(&app, &alice, "written while valkey is up").await.status, 201);

    valkey.pause();
    // Five timed-out commands (200 ms each) open the breaker ...
    for _ in 0..5 {
        let answer = write(&app, &alice, "refused: the limiter cannot count it").await;
        assert_eq!((answer.status, answer.body["code"].as_str()), (503, Some("DEPENDENCY_UNAVAILABLE")));
    }
    // ... then writes fail at once, never with a 500.
    let started = Instant::now();
    let fast = write(&app, &alice, "refused at once").await;
    assert!(started.elapsed() < Duration::from_millis(150), "took {:?}", started.elapsed());
    assert_eq!(fast.status, 503, "{}", fast.body);
    let admin = app.mint_full("ops", "acme", &["admin:read"], &[], &[], None);
    let text = app.client.get(app.url("/metrics")).bearer_auth(&admin).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("circuit_breaker_state{service=\"valkey\"} 1"), "{text}");

    valkey.resume();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let back = loop {
        let answer = write(&app, &alice, "written once valkey is back").await;
        if answer.status == 201 || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(back.status, 201, "{}", back.body);
    assert!(header(&back, "ratelimit").is_some(), "counted again");
    let text = app.client.get(app.url("/metrics")).bearer_auth(&admin).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("circuit_breaker_state{service=\"valkey\"} 0"), "{text}");
}
