//! The memories, apps and stats API end to end, on PostgreSQL (RLS on) and
//! on SQLite: happy paths, exact pagination, sorting, filters, the state
//! machine, tenant isolation and bad input.

use loci_tests::{Engine, TestApp, TestUser};
use serde_json::{Value, json};

fn ids(body: &Value) -> Vec<String> {
    body["items"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
}

fn contents(body: &Value) -> Vec<String> {
    body["items"].as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap().to_owned()).collect()
}

async fn crud_round_trip(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let alice = app.user("alice", "acme", &[]);
    let (status, m) = alice
        .post(
            "/api/v1/memories/",
            json!({"text": "  Deploys go through the release train  ", "app": "cli", "metadata": {
                "category": "workflow", "access_entity": "team:acme/core", "artifact_type": "service",
                "artifact_ref": "deployer", "entity": "release-train", "source": "user",
                "evidence": ["runbook §4"], "tags": {"env": "prod", "tier": "1"}, "categories": ["ops", "ops"],
                "ticket": "OPS-12"
            }}),
        )
        .await;
    assert_eq!(status, 201, "{m}");
    assert_eq!(m["content"], "Deploys go through the release train", "trimmed");
    assert_eq!(m["metadata"]["scope"], "team", "derived from the access entity");
    assert_eq!(m["metadata"]["extra"], json!({"ticket": "OPS-12"}));
    assert_eq!(m["categories"], json!(["ops"]));
    assert_eq!((m["app_name"].as_str(), m["state"].as_str()), (Some("cli"), Some("active")));
    assert!(m["created_at"].as_str().unwrap().ends_with('Z'));
    let id = m["id"].as_str().unwrap();

    let (status, got) = alice.get(&format!("/api/v1/memories/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(got["content"], m["content"]);

    let (status, updated) = alice
        .put(
            &format!("/api/v1/memories/{id}"),
            json!({"text": "Deploys go through the release train on Tuesdays",
                   "metadata": {"tags": {"tier": null, "owner": "sre"}, "categories": ["release"]}}),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    let u = &updated["memory"];
    assert_eq!(u["content"], "Deploys go through the release train on Tuesdays");
    assert_eq!(u["metadata"]["tags"], json!({"env": "prod", "owner": "sre"}), "tags merge, null removes");
    assert_eq!(u["categories"], json!(["release"]), "categories replace");
    assert_eq!(u["metadata"]["category"], "workflow", "untouched fields stay");

    let (_, listed) = alice.get("/api/v1/memories").await;
    assert_eq!(listed["total"], 1);
    let (status, deleted) = alice.delete("/api/v1/memories", json!({"memory_ids": [id, uuid::Uuid::new_v4()]})).await;
    assert_eq!(status, 200);
    assert_eq!(deleted["deleted"], json!([id]));
    assert_eq!(deleted["skipped"].as_array().unwrap().len(), 1);
    assert_eq!(alice.get(&format!("/api/v1/memories/{id}")).await.0, 404);
    let (_, listed) = alice.get("/api/v1/memories").await;
    assert_eq!(listed["total"], 0);
    let (status, problem) = alice.get(&format!("/api/v1/memories/{id}/history")).await;
    assert_eq!((status, problem["code"].as_str()), (404, Some("NOT_FOUND")), "deleted memories are gone for readers");
}

async fn pagination_sorting_and_filters_are_exact(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let alice = app.user("alice", "acme", &[]);
    let mut made = Vec::new();
    for (i, word) in ["delta", "alpha", "charlie", "bravo", "echo", "foxtrot", "golf"].iter().enumerate() {
        let metadata = if i % 2 == 0 { json!({"categories": ["even"], "tags": {"parity": "even"}}) } else { json!({}) };
        made.push(alice.remember(&format!("{word} note 100%"), metadata).await);
    }
    let (_, p1) = alice.get("/api/v1/memories?page=1&size=3").await;
    assert_eq!((p1["total"].as_u64(), p1["pages"].as_u64(), p1["size"].as_u64()), (Some(7), Some(3), Some(3)));
    assert_eq!(ids(&p1), [made[6].clone(), made[5].clone(), made[4].clone()], "newest first");
    let (_, p3) = alice.get("/api/v1/memories?page=3&size=3").await;
    assert_eq!(ids(&p3), [made[0].clone()]);
    let (_, p4) = alice.get("/api/v1/memories?page=4&size=3").await;
    assert_eq!((ids(&p4).len(), p4["total"].as_u64()), (0, Some(7)));

    let (_, by_content) = alice.get("/api/v1/memories?sort_column=content&sort_direction=asc&size=3").await;
    assert_eq!(contents(&by_content), ["alpha note 100%", "bravo note 100%", "charlie note 100%"]);
    let (_, search) = alice.get("/api/v1/memories?search_query=ECHO").await;
    assert_eq!(search["total"], 1);
    let (_, literal) = alice.get("/api/v1/memories?search_query=100%25").await;
    assert_eq!(literal["total"], 7, "% is literal");
    let (_, even) = alice.get("/api/v1/memories?categories=even").await;
    assert_eq!(even["total"], 4);
    let (_, filtered) = alice.post("/api/v1/memories/filter", json!({"tags": {"parity": "even"}, "size": 2})).await;
    assert_eq!((filtered["total"].as_u64(), ids(&filtered).len()), (Some(4), 2));

    // Archived memories are hidden unless asked for.
    let (status, _) = alice.post("/api/v1/memories/actions/archive", json!({"memory_ids": [made[0]]})).await;
    assert_eq!(status, 200);
    assert_eq!(alice.get("/api/v1/memories").await.1["total"], 6);
    assert_eq!(alice.get("/api/v1/memories?show_archived=true").await.1["total"], 7);
    assert_eq!(alice.get("/api/v1/memories?state=archived").await.1["total"], 1);

    let (_, cats) = alice.get("/api/v1/memories/categories").await;
    assert_eq!(cats["categories"][0]["name"], "even");
    let (_, stats) = alice.get("/api/v1/stats").await;
    assert_eq!(stats["total_memories"], 7);
    assert_eq!(stats["memories_by_state"], json!({"active": 6, "archived": 1}));
    assert_eq!(stats["total_apps"], 1);
}

/// Follows `next_cursor` from the first page of `path` (which has no query
/// string of its own beyond `?`) to the end; the ids in order and the
/// totals each page reported.
async fn walk(user: &TestUser<'_>, path: &str) -> (Vec<String>, Vec<u64>) {
    let (mut seen, mut totals) = (Vec::new(), Vec::new());
    let (status, mut page) = user.get(path).await;
    assert_eq!(status, 200, "{page}");
    loop {
        seen.extend(ids(&page));
        totals.push(page["total"].as_u64().unwrap());
        let Some(cursor) = page["next_cursor"].as_str() else { break };
        let (status, next) = user.get(&format!("{path}&cursor={cursor}")).await;
        assert_eq!(status, 200, "{next}");
        page = next;
    }
    (seen, totals)
}

async fn cursors_page_by_keyset_and_totals_stay_exact(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let alice = app.user("alice", "acme", &["team:acme/core"]);
    let bob = app.user("bob", "acme", &["team:acme/core"]);
    let mut mine = Vec::new();
    for i in 0..9 {
        mine.push(alice.remember(&format!("alice {i}"), json!({})).await);
    }
    // Others' memories a grant covers interleave with the caller's own.
    let shared = bob.remember("bob shared", json!({"access_entity": "team:acme/core"})).await;
    bob.remember("bob private", json!({})).await;
    mine.push(alice.remember("alice last", json!({})).await);

    let mut expected: Vec<String> = mine.clone();
    expected.insert(9, shared.clone());
    expected.reverse();
    let (seen, totals) = walk(&alice, "/api/v1/memories?size=3").await;
    assert_eq!(seen, expected, "newest first, the shared memory in its place, nothing twice");
    assert_eq!(totals, [11, 11, 11, 11]);
    let (_, p2) = alice.get("/api/v1/memories?size=3&page=2").await;
    let (_, first) = alice.get("/api/v1/memories?size=3").await;
    let (_, by_cursor) =
        alice.get(&format!("/api/v1/memories?size=3&cursor={}", first["next_cursor"].as_str().unwrap())).await;
    assert_eq!((ids(&by_cursor), by_cursor["page"].as_u64()), (ids(&p2), Some(2)), "same page either way");
    let (_, last) = alice.get("/api/v1/memories?size=3&page=4").await;
    assert!(last.get("next_cursor").is_none(), "the last page has no cursor: {last}");

    // Ascending, and orders without a keyset (their cursor is a page number).
    let (seen, _) = walk(&alice, "/api/v1/memories?size=4&sort_direction=asc").await;
    assert_eq!(seen, expected.iter().rev().cloned().collect::<Vec<_>>());
    let (seen, _) = walk(&alice, "/api/v1/memories?size=4&sort_column=content&sort_direction=asc").await;
    assert_eq!(seen.len(), 11);
    let (_, body) = alice.post("/api/v1/memories/filter", json!({"size": 3, "cursor": first["next_cursor"]})).await;
    assert_eq!(ids(&body), ids(&p2), "the filter route takes cursors too");

    // The stored counts follow state changes and deletes.
    alice.post("/api/v1/memories/actions/archive", json!({"memory_ids": [mine[0], mine[1]]})).await;
    alice.delete("/api/v1/memories", json!({"memory_ids": [mine[2]]})).await;
    assert_eq!(alice.get("/api/v1/memories").await.1["total"], 8);
    assert_eq!(alice.get("/api/v1/memories?show_archived=true").await.1["total"], 10);
    assert_eq!(alice.get("/api/v1/memories?state=archived").await.1["total"], 2);
    assert_eq!(bob.get("/api/v1/memories").await.1["total"], 2);

    // A cursor of another order or size, a forged one, or one next to a page number.
    let cursor = first["next_cursor"].as_str().unwrap();
    for query in [
        format!("size=4&cursor={cursor}"),
        format!("size=3&sort_direction=asc&cursor={cursor}"),
        "size=3&cursor=bm90IGEgY3Vyc29y".to_owned(),
        format!("size=3&page=2&cursor={cursor}"),
    ] {
        let (status, problem) = alice.get(&format!("/api/v1/memories?{query}")).await;
        assert_eq!((status, problem["code"].as_str()), (422, Some("VALIDATION_FAILED")), "{query}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "cursor", "{problem}");
    }
}

async fn state_machine_history_and_paused_apps(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let alice = app.user("alice", "acme", &[]);
    let id = alice.remember("stateful", json!({})).await;
    for (action, state) in [("pause", "paused"), ("resume", "active"), ("archive", "archived"), ("resume", "active")] {
        let (status, body) =
            alice.post(&format!("/api/v1/memories/actions/{action}"), json!({"memory_ids": [id]})).await;
        assert_eq!(status, 200, "{action}: {body}");
        assert_eq!(body["changed"], json!([id]));
        assert_eq!(alice.get(&format!("/api/v1/memories/{id}")).await.1["state"], state);
    }
    alice.post("/api/v1/memories/actions/archive", json!({"memory_ids": [id]})).await;
    let (status, problem) = alice.post("/api/v1/memories/actions/pause", json!({"memory_ids": [id]})).await;
    assert_eq!(status, 409, "archived -> paused is illegal");
    assert_eq!(problem["code"], "INVALID_STATE_TRANSITION");
    let (_, history) = alice.get(&format!("/api/v1/memories/{id}/history")).await;
    let states: Vec<&str> = history.as_array().unwrap().iter().map(|h| h["new_state"].as_str().unwrap()).collect();
    assert_eq!(states, ["active", "paused", "active", "archived", "active", "archived"]);
    assert_eq!(alice.post("/api/v1/memories/actions/explode", json!({"memory_ids": [id]})).await.0, 404);
    assert_eq!(alice.post("/api/v1/memories/actions/pause", json!({})).await.0, 422);

    // Pausing an app blocks writes through it, and only through it.
    let (_, apps) = alice.get("/api/v1/apps").await;
    let app_id = apps["items"][0]["app"]["id"].as_str().unwrap().to_owned();
    let (status, paused) = alice.put(&format!("/api/v1/apps/{app_id}"), json!({"is_active": false})).await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["app"]["is_active"], false);
    let (status, problem) = alice.post("/api/v1/memories", json!({"text": "blocked", "app": "cli"})).await;
    assert_eq!((status, problem["code"].as_str()), (403, Some("APP_PAUSED")));
    assert_eq!(alice.post("/api/v1/memories", json!({"text": "fine", "app": "other"})).await.0, 201);
    // Bulk by app: pause every memory of the other app.
    let (_, apps) = alice.get("/api/v1/apps?sort_by=name").await;
    let names: Vec<&str> =
        apps["items"].as_array().unwrap().iter().map(|a| a["app"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["cli", "other"]);
    let other = apps["items"][1]["app"]["id"].as_str().unwrap();
    let (_, bulk) = alice.post("/api/v1/memories/actions/pause", json!({"app_id": other})).await;
    assert_eq!(bulk["changed"].as_array().unwrap().len(), 1);
}

async fn reads_are_logged_and_counted_per_app(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let alice = app.user("alice", "acme", &[]);
    let id = alice.remember("read me", json!({})).await;
    for _ in 0..3 {
        alice.get(&format!("/api/v1/memories/{id}")).await;
    }
    app.flush_access_log().await;
    let (status, log) = alice.get(&format!("/api/v1/memories/{id}/access-log?size=2")).await;
    assert_eq!(status, 200, "{log}");
    assert_eq!((log["total"].as_u64(), log["items"].as_array().unwrap().len()), (Some(3), 2));
    assert_eq!(log["items"][0]["access_type"], "get");

    // Reads through a client count for that client's app.
    let via_cli = app.user_via_client("alice", "acme", "cli");
    via_cli.get(&format!("/api/v1/memories/{id}")).await;
    via_cli.get("/api/v1/memories").await;
    app.flush_access_log().await;
    let (_, apps) = alice.get("/api/v1/apps").await;
    assert_eq!(apps["items"][0]["app"]["name"], "cli");
    assert_eq!(apps["items"][0]["memories_accessed"], 2, "{apps}");
    assert!(apps["items"][0]["last_accessed"].is_string());
    let app_id = apps["items"][0]["app"]["id"].as_str().unwrap();
    let (_, accessed) = alice.get(&format!("/api/v1/apps/{app_id}/accessed")).await;
    assert_eq!(accessed["items"][0]["access_count"], 2, "{accessed}");
}

/// For every route that takes an id: a user of another org and a user of the
/// same org without a grant get 404; a grant gives read access only.
async fn tenant_isolation_matrix(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let alice = app.user("alice", "acme", &[]);
    let private = alice.remember("alice private", json!({"categories": ["x"]})).await;
    let shared =
        alice.remember("shared with core", json!({"access_entity": "team:acme/core", "categories": ["x"]})).await;
    let (_, apps) = alice.get("/api/v1/apps").await;
    let app_id = apps["items"][0]["app"]["id"].as_str().unwrap().to_owned();

    let bob = app.user("bob", "globex", &[]); // another org
    let carol = app.user("carol", "acme", &[]); // same org, no grant
    let dave = app.user("dave", "acme", &["team:acme/core"]); // same org, granted
    bob.remember("bob's own", json!({})).await;

    async fn denied(user: &TestUser<'_>, memory: &str, app_id: &str) {
        let who = user.token.len();
        for path in [
            format!("/api/v1/memories/{memory}"),
            format!("/api/v1/memories/{memory}/history"),
            format!("/api/v1/memories/{memory}/access-log"),
            format!("/api/v1/memories/{memory}/related"),
            format!("/api/v1/apps/{app_id}"),
            format!("/api/v1/apps/{app_id}/memories"),
            format!("/api/v1/apps/{app_id}/accessed"),
        ] {
            let (status, body) = user.get(&path).await;
            assert_eq!(status, 404, "GET {path} ({who}): {body}");
            assert_eq!(body["code"], "NOT_FOUND");
        }
        let (status, _) = user.put(&format!("/api/v1/memories/{memory}"), json!({"text": "hijack"})).await;
        assert_eq!(status, 404);
        let (status, _) = user.put(&format!("/api/v1/apps/{app_id}"), json!({"is_active": false})).await;
        assert_eq!(status, 404);
        let (_, d) = user.delete("/api/v1/memories", json!({"memory_ids": [memory]})).await;
        assert_eq!(d["deleted"], json!([]), "nothing deleted");
        let (_, a) = user.post("/api/v1/memories/actions/pause", json!({"memory_ids": [memory]})).await;
        assert_eq!(a["changed"], json!([]));
        let (_, a) = user.post("/api/v1/memories/actions/pause", json!({"app_id": app_id})).await;
        assert_eq!(a["changed"], json!([]));
    }
    for memory in [&private, &shared] {
        denied(&bob, memory, &app_id).await;
    }
    for memory in [&private, &shared] {
        denied(&carol, memory, &app_id).await;
    }
    denied(&dave, &private, &app_id).await;

    // Lists never contain what is not visible.
    for (user, expected) in [(&bob, vec!["bob's own"]), (&carol, vec![]), (&dave, vec!["shared with core"])] {
        let (_, list) = user.get("/api/v1/memories").await;
        assert_eq!(contents(&list), expected);
        let (_, filtered) = user.post("/api/v1/memories/filter", json!({"categories": ["x"]})).await;
        assert_eq!(filtered["total"].as_u64(), Some(u64::from(user.token == dave.token)));
    }
    // The grant gives read access, not write access.
    assert_eq!(dave.get(&format!("/api/v1/memories/{shared}")).await.0, 200);
    assert_eq!(dave.get(&format!("/api/v1/memories/{shared}/history")).await.0, 200);
    assert_eq!(dave.get(&format!("/api/v1/memories/{shared}/access-log")).await.0, 404, "owner only");
    assert_eq!(dave.put(&format!("/api/v1/memories/{shared}"), json!({"text": "edit"})).await.0, 404);
    let (_, d) = dave.delete("/api/v1/memories", json!({"memory_ids": [shared]})).await;
    assert_eq!(d["deleted"], json!([]));
    // The owner still sees both, unchanged.
    let (_, list) = alice.get("/api/v1/memories?sort_column=content&sort_direction=asc").await;
    assert_eq!(contents(&list), ["alice private", "shared with core"]);
}

/// name, method, path, content type, body, expected status, expected code.
type BadRequest = (&'static str, reqwest::Method, String, &'static str, Vec<u8>, u16, &'static str);

/// Bad input gets a 4xx problem, never a 500, and changes nothing.
async fn bad_input_is_rejected_without_side_effects(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let alice = app.user("alice", "acme", &[]);
    let id = alice.remember("keep me", json!({})).await;
    let before = app.count_rows("acme", "memories").await;
    let big = "x".repeat(16 * 1024 + 1);
    let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
    let cases: Vec<BadRequest> = vec![
        ("malformed JSON", reqwest::Method::POST, "/api/v1/memories".into(), "application/json", b"{\"text\": ".to_vec(), 400, "MALFORMED_REQUEST"),
        ("wrong type", reqwest::Method::POST, "/api/v1/memories".into(), "application/json", br#"{"text": 5}"#.to_vec(), 422, "VALIDATION_FAILED"),
        ("unknown field", reqwest::Method::POST, "/api/v1/memories".into(), "application/json", br#"{"text": "x", "user_id": "y"}"#.to_vec(), 422, "VALIDATION_FAILED"),
        ("oversized content", reqwest::Method::POST, "/api/v1/memories".into(), "application/json", json!({"text": big}).to_string().into_bytes(), 422, "VALIDATION_FAILED"),
        ("oversized metadata", reqwest::Method::POST, "/api/v1/memories".into(), "application/json", json!({"text": "x", "metadata": {"blob": "y".repeat(17 * 1024)}}).to_string().into_bytes(), 422, "VALIDATION_FAILED"),
        ("too many tags", reqwest::Method::POST, "/api/v1/memories".into(), "application/json", json!({"text": "x", "metadata": {"tags": (0..65).map(|i| (i.to_string(), json!(i))).collect::<serde_json::Map<_, _>>()}}).to_string().into_bytes(), 422, "VALIDATION_FAILED"),
        ("unknown enum", reqwest::Method::POST, "/api/v1/memories".into(), "application/json", br#"{"text": "x", "metadata": {"scope": "galaxy"}}"#.to_vec(), 422, "VALIDATION_FAILED"),
        ("scope disagrees", reqwest::Method::POST, "/api/v1/memories".into(), "application/json", br#"{"text": "x", "metadata": {"scope": "org", "access_entity": "user:alice"}}"#.to_vec(), 422, "VALIDATION_FAILED"),
        ("foreign org entity", reqwest::Method::POST, "/api/v1/memories".into(), "application/json", br#"{"text": "x", "metadata": {"access_entity": "org:globex"}}"#.to_vec(), 422, "VALIDATION_FAILED"),
        ("empty text", reqwest::Method::POST, "/api/v1/memories".into(), "application/json", br#"{"text": "   "}"#.to_vec(), 422, "VALIDATION_FAILED"),
        ("infer with messages and text", reqwest::Method::POST, "/api/v1/memories".into(), "application/json", br#"{"text": "x", "infer": true, "messages": [{"content": "y"}]}"#.to_vec(), 422, "VALIDATION_FAILED"),
        ("non-UTF-8", reqwest::Method::POST, "/api/v1/memories".into(), "application/json", vec![b'{', b'"', 0xff, 0xfe, b'"', b'}'], 400, "MALFORMED_REQUEST"),
        ("wrong content type", reqwest::Method::POST, "/api/v1/memories".into(), "text/plain", b"text=x".to_vec(), 415, "UNSUPPORTED_MEDIA_TYPE"),
        ("too deep", reqwest::Method::POST, "/api/v1/memories/filter".into(), "application/json", deep.into_bytes(), 400, "MALFORMED_REQUEST"),
        ("body too large", reqwest::Method::POST, "/api/v1/memories".into(), "application/json", json!({"text": "z".repeat(1_100_000)}).to_string().into_bytes(), 413, "PAYLOAD_TOO_LARGE"),
        ("invalid UUID in path", reqwest::Method::PUT, "/api/v1/memories/not-a-uuid".into(), "application/json", br#"{"text": "x"}"#.to_vec(), 422, "VALIDATION_FAILED"),
        ("invalid UUID in body", reqwest::Method::DELETE, "/api/v1/memories".into(), "application/json", br#"{"memory_ids": ["nope"]}"#.to_vec(), 422, "VALIDATION_FAILED"),
        ("empty id list", reqwest::Method::DELETE, "/api/v1/memories".into(), "application/json", br#"{"memory_ids": []}"#.to_vec(), 422, "VALIDATION_FAILED"),
        ("empty update", reqwest::Method::PUT, format!("/api/v1/memories/{id}"), "application/json", b"{}".to_vec(), 422, "VALIDATION_FAILED"),
        ("null text in an update (leave the field out)", reqwest::Method::PUT, format!("/api/v1/memories/{id}"), "application/json", br#"{"text": null, "metadata": {}}"#.to_vec(), 422, "VALIDATION_FAILED"),
        ("fractional page", reqwest::Method::POST, "/api/v1/memories/filter".into(), "application/json", br#"{"page": 1.5}"#.to_vec(), 422, "VALIDATION_FAILED"),
        ("bad filter enum", reqwest::Method::POST, "/api/v1/memories/filter".into(), "application/json", br#"{"scopes": ["nope"], "app_ids": ["x"]}"#.to_vec(), 422, "VALIDATION_FAILED"),
        ("bad app flag", reqwest::Method::PUT, "/api/v1/apps/00000000-0000-0000-0000-000000000000".into(), "application/json", br#"{"is_active": "yes"}"#.to_vec(), 422, "VALIDATION_FAILED"),
    ];
    for (name, method, path, content_type, body, status, code) in cases {
        let (got, problem) = alice.raw(method, &path, content_type, body).await;
        assert_eq!(got, status, "{name}: {problem}");
        assert_eq!(problem["code"], code, "{name}");
        assert!(problem["request_id"].is_string(), "{name}");
    }
    for (path, field) in [
        ("/api/v1/memories?page=0", "page"),
        ("/api/v1/memories?size=1000", "size"),
        ("/api/v1/memories?size=abc", "size"),
        ("/api/v1/memories?app_id=zzz", "app_id"),
        ("/api/v1/memories?from=yesterday", "from"),
        ("/api/v1/memories?sort_column=secret", "sort_column"),
        ("/api/v1/memories?state=deleted", "state"),
        ("/api/v1/memories/not-a-uuid", "id"),
        ("/api/v1/apps?sort_by=evil", "sort_by"),
    ] {
        let (status, problem) = alice.get(path).await;
        assert_eq!(status, 422, "{path}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{path}");
    }
    let (status, _) = alice.get("/api/v1/memories?unknown=1").await;
    assert_eq!(status, 422);
    assert_eq!(app.count_rows("acme", "memories").await, before, "no bad request stored anything");
    assert_eq!(alice.get(&format!("/api/v1/memories/{id}")).await.1["content"], "keep me");
}

async fn scopes_are_enforced_per_route(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let reader = app.user_with_scopes("rita", "acme", &["memories:read"]);
    let (status, problem) = reader.post("/api/v1/memories", json!({"text": "x"})).await;
    assert_eq!((status, problem["required_scope"].as_str()), (403, Some("memories:write")));
    let (status, problem) = reader.delete("/api/v1/memories", json!({"memory_ids": [uuid::Uuid::new_v4()]})).await;
    assert_eq!((status, problem["required_scope"].as_str()), (403, Some("memories:delete")));
    assert_eq!(reader.get("/api/v1/apps").await.1["required_scope"], "apps:read");
    assert_eq!(reader.get("/api/v1/stats").await.1["required_scope"], "stats:read");
    assert_eq!(reader.get("/api/v1/memories").await.0, 200);
    let anonymous = app.client.get(app.url("/api/v1/memories")).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
}

loci_tests::on_both!(
    crud_round_trip,
    pagination_sorting_and_filters_are_exact,
    cursors_page_by_keyset_and_totals_stay_exact,
    state_machine_history_and_paused_apps,
    reads_are_logged_and_counted_per_app,
    tenant_isolation_matrix,
    bad_input_is_rejected_without_side_effects,
    scopes_are_enforced_per_route,
);
