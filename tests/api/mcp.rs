//! MCP over streamable HTTP at `/mcp`: rmcp's own client for the protocol
//! (initialize, list, every tool), raw HTTP for what a well-behaved client
//! never sends (foreign sessions, other DPoP keys, hostile hosts).

use std::collections::BTreeSet;
use std::time::Duration;

use loci_mcp::tools::TOOLS;
use loci_security::testing::TestKey;
use loci_tests::{AppOptions, Engine, TestApp, valkey_url};
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientCapabilities, Implementation, InitializeRequestParams};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

type Client = RunningService<RoleClient, InitializeRequestParams>;

pub(crate) async fn connect(app: &TestApp, token: &str) -> Client {
    let config = StreamableHttpClientTransportConfig::with_uri(app.url("/mcp")).auth_header(token.to_owned());
    let transport = StreamableHttpClientTransport::from_config(config);
    let info = InitializeRequestParams::new(ClientCapabilities::default(), Implementation::new("test-agent", "1.0"));
    info.serve(transport).await.expect("MCP initialize over HTTP")
}

async fn call(client: &Client, tool: &str, args: Value) -> CallToolResult {
    let Value::Object(args) = args else { panic!("arguments must be an object") };
    client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"))
}

/// The structured result of a successful call.
pub(crate) async fn ok(client: &Client, tool: &str, args: Value) -> Value {
    let result = call(client, tool, args).await;
    assert_ne!(result.is_error, Some(true), "{tool} failed: {:?}", result.structured_content);
    assert!(!result.content.is_empty(), "{tool}: a text rendering accompanies the structured result");
    result.structured_content.unwrap_or_else(|| panic!("{tool}: no structured content"))
}

/// The structured error of a failed call.
async fn err(client: &Client, tool: &str, args: Value) -> Value {
    let result = call(client, tool, args).await;
    assert_eq!(result.is_error, Some(true), "{tool} should fail: {:?}", result.structured_content);
    result.structured_content.unwrap_or_else(|| panic!("{tool}: no structured error"))
}

#[tokio::test]
async fn an_agent_initializes_lists_the_tools_and_uses_every_one_over_http() {
    let app = TestApp::spawn_with(Engine::Sqlite, AppOptions::default().with_model()).await;
    let alice = app.user("alice", "acme", &[]).token;
    let client = connect(&app, &alice).await;
    let server = client.peer_info().expect("server info");
    assert_eq!(server.server_info.as_ref().map(|i| i.name.as_str()), Some("loci"));
    assert!(server.capabilities.tools.is_some());

    let tools = client.list_all_tools().await.unwrap();
    let names: BTreeSet<String> = tools.iter().map(|t| t.name.to_string()).collect();
    let expected: BTreeSet<String> = TOOLS.iter().map(|t| t.name.to_owned()).collect();
    assert_eq!(names, expected);
    for tool in &tools {
        assert_eq!(tool.input_schema.get("type"), Some(&json!("object")), "{}", tool.name);
        assert!(tool.description.as_deref().is_some_and(|d| !d.is_empty()), "{}", tool.name);
    }
    // Result limits advertise the deployment's cap (`mcp.max_results`, 50 by default).
    let search = tools.iter().find(|t| t.name == "search_memory").expect("search_memory");
    assert_eq!(search.input_schema["properties"]["limit"]["maximum"], json!(50));

    let me = ok(&client, "whoami", json!({})).await;
    assert_eq!((me["user"].as_str(), me["org"].as_str()), (Some("alice"), Some("acme")));

    let first = ok(
        &client,
        "add_memories",
        json!({ "text": "The payments-service deploys with Argo CD from the main branch",
                "category": "decision", "entity": "payments-service", "tags": { "team": "core" } }),
    )
    .await;
    let m1 = first["memories"][0]["id"].as_str().unwrap().to_owned();
    // The MCP client's name is the app.
    assert_eq!(first["memories"][0]["app_name"], "test-agent");
    let second = ok(
        &client,
        "add_memories",
        json!({ "text": "Rollbacks of payments-service go through Argo CD history", "entity": "payments-service" }),
    )
    .await;
    let m2 = second["memories"][0]["id"].as_str().unwrap().to_owned();

    let bad = err(&client, "add_memories", json!({ "text": "" })).await;
    assert_eq!(bad["code"], "INVALID_INPUT");
    assert_eq!(bad["errors"][0]["field"], "text");
    let bad = err(&client, "add_memories", json!({ "text": "x", "colour": "red" })).await;
    assert_eq!((bad["code"].as_str(), bad["errors"][0]["field"].as_str()), (Some("INVALID_INPUT"), Some("colour")));
    let bad = err(&client, "add_memories", json!({ "infer": true, "messages": [] })).await;
    assert_eq!((bad["code"].as_str(), bad["errors"][0]["field"].as_str()), (Some("INVALID_INPUT"), Some("messages")));
    let bad = err(&client, "add_memories", json!({ "text": "x", "category": "nonsense" })).await;
    assert_eq!(bad["code"], "INVALID_INPUT");

    app.indexed().await;
    let found = ok(&client, "search_memory", json!({ "query": "how does payments deploy", "limit": 5 })).await;
    assert_eq!(found["results"][0]["memory_id"], m1.as_str(), "{found}");
    let reported = ok(
        &client,
        "report_feedback",
        json!({ "outcome": "accepted", "query_id": found["query_id"], "result_index": 0, "decision_time_ms": 1200 }),
    )
    .await;
    assert_eq!(reported["tool_name"], "search_memory", "{reported}");
    assert!(reported["sources"].as_array().is_some_and(|s| !s.is_empty()), "sources from the search: {reported}");
    let bad = err(&client, "report_feedback", json!({ "outcome": "meh" })).await;
    assert_eq!(bad["errors"][0]["field"], "outcome", "{bad}");
    let lexical = ok(&client, "search_memory", json!({ "query": "rollbacks", "mode": "lexical" })).await;
    assert_eq!(lexical["results"][0]["memory_id"], m2.as_str());
    let bad = err(&client, "search_memory", json!({ "query": "x", "limit": 51 })).await;
    assert_eq!((bad["code"].as_str(), bad["errors"][0]["field"].as_str()), (Some("INVALID_INPUT"), Some("limit")));
    let bad = err(&client, "search_memory", json!({ "query": "x", "filters": { "category": "nope" } })).await;
    assert_eq!(bad["errors"][0]["field"], "filters.category");

    let page = ok(&client, "list_memories", json!({ "size": 1 })).await;
    assert_eq!((page["total"].as_u64(), page["items"].as_array().map(Vec::len)), (Some(2), Some(1)));
    let got = ok(&client, "get_memory", json!({ "memory_id": m1 })).await;
    assert!(got["content"].as_str().unwrap().contains("Argo CD"));
    let bad = err(&client, "get_memory", json!({ "memory_id": "not-a-uuid" })).await;
    assert_eq!(bad["code"], "INVALID_INPUT");

    let updated = ok(
        &client,
        "update_memory",
        json!({ "memory_id": m1, "text": "The payments-service deploys with Argo CD v3" }),
    )
    .await;
    assert_eq!(updated["memory"]["content"], "The payments-service deploys with Argo CD v3");
    let missing = uuid::Uuid::new_v4().to_string();
    let batch = ok(
        &client,
        "update_memory",
        json!({ "updates": [ { "memory_id": m2, "metadata": { "tags": { "reviewed": "yes" } } },
                             { "memory_id": missing, "text": "nothing there" } ] }),
    )
    .await;
    assert_eq!(batch["updated"], 1);
    assert_eq!(
        (batch["results"][0]["ok"].as_bool(), batch["results"][1]["code"].as_str()),
        (Some(true), Some("NOT_FOUND"))
    );

    app.indexed().await;
    let related = ok(&client, "graph_related_memories", json!({ "memory_id": m1 })).await;
    assert!(related["items"].as_array().unwrap().iter().any(|m| m["id"] == m2.as_str()), "{related}");
    let similar = ok(&client, "graph_similar_memories", json!({ "memory_id": m1, "limit": 3 })).await;
    assert_eq!(similar["items"][0]["memory_id"], m2.as_str());
    let info = ok(&client, "get_embedder_info", json!({})).await;
    assert_eq!(info["available"], true);
    let job = err(&client, "add_memories_status", json!({ "job_id": "j-1" })).await;
    assert_eq!((job["code"].as_str(), job["errors"][0]["field"].as_str()), (Some("INVALID_INPUT"), Some("job_id")));
    let job = err(&client, "add_memories_status", json!({ "job_id": uuid::Uuid::now_v7().to_string() })).await;
    assert_eq!(job["code"], "NOT_FOUND");
    // Inference over MCP: within the call, and as a job.
    let inferred = ok(
        &client,
        "add_memories",
        json!({ "infer": true, "messages": [{ "name": "Dana", "content": "I live in Oslo. Thanks!", "id": "x1" }] }),
    )
    .await;
    assert_eq!(inferred["engine"], "local", "{inferred}");
    assert_eq!(inferred["results"][0]["event"], "ADD");
    assert_eq!(inferred["results"][0]["fact"], "Dana lives in Oslo");
    let queued =
        ok(&client, "add_memories", json!({ "infer": true, "async": true, "text": "Dana moved to Bergen" })).await;
    let job_id = queued["job_id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let done = loop {
        let job = ok(&client, "add_memories_status", json!({ "job_id": job_id })).await;
        if job["status"] == "done" {
            break job;
        }
        assert!(std::time::Instant::now() < deadline, "{job}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(done["result"]["results"][0]["event"], "UPDATE", "{done}");
    assert_eq!(done["result"]["results"][0]["replaces"], inferred["results"][0]["memory_id"], "{done}");
    let missing_entity = err(&client, "graph_subgraph", json!({})).await;
    assert_eq!(missing_entity["code"], "INVALID_INPUT", "{missing_entity}");
    assert!(
        client.call_tool(CallToolRequestParams::new("no_such_tool")).await.is_err(),
        "an unknown tool is a protocol error"
    );

    let deleted = ok(&client, "delete_memories", json!({ "memory_ids": [m1, missing] })).await;
    assert_eq!(
        (deleted["deleted"][0].as_str(), deleted["skipped"][0].as_str()),
        (Some(m1.as_str()), Some(missing.as_str()))
    );
    let all = ok(&client, "delete_all_memories", json!({})).await;
    let deleted: Vec<&str> = all["deleted"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
    assert!(deleted.contains(&m2.as_str()), "{all}");
    assert_eq!(deleted.len(), 3, "m2 and the two inferred ones (one superseded): {all}");
    let page = ok(&client, "list_memories", json!({})).await;
    assert_eq!(page["total"], 0);
    // Reads through MCP are in the access log.
    app.flush_access_log().await;
    assert!(app.count_rows("acme", "memory_access_logs").await > 0);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn every_tool_checks_its_scopes_first() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let nobody = app.token("alice", "acme", &[]);
    let client = connect(&app, &nobody).await;
    // Arguments are valid for none of the tools: the scope check comes first.
    for spec in TOOLS.iter().filter(|t| !t.scopes.is_empty()) {
        let e = err(&client, spec.name, json!({ "bogus": true })).await;
        assert_eq!(e["code"], "INSUFFICIENT_SCOPE", "{}", spec.name);
        assert_eq!(e["required_scope"], spec.scopes.join(" "), "{}", spec.name);
    }
    // whoami needs only a valid token.
    let me = ok(&client, "whoami", json!({})).await;
    assert_eq!(me["scopes"], json!([]));
    // A reader reads but cannot write or delete.
    let reader = connect(&app, &app.token("bob", "acme", &["memories:read"])).await;
    ok(&reader, "list_memories", json!({})).await;
    assert_eq!(err(&reader, "add_memories", json!({ "text": "x" })).await["required_scope"], "memories:write");
    assert_eq!(err(&reader, "delete_all_memories", json!({})).await["required_scope"], "memories:delete");
    assert_eq!(err(&reader, "graph_related_memories", json!({})).await["required_scope"], "graph:read");
}

#[tokio::test]
async fn another_tenant_or_an_ungranted_user_sees_nothing_through_any_tool() {
    let app = TestApp::spawn(Engine::Postgres).await;
    let alice = connect(&app, &app.user("alice", "acme", &[]).token).await;
    let added = ok(&alice, "add_memories", json!({ "text": "zebra quartz launch codes", "entity": "zebra" })).await;
    let id = added["memories"][0]["id"].as_str().unwrap().to_owned();
    ok(&alice, "add_memories", json!({ "text": "zebra quartz backup plan", "entity": "zebra" })).await;
    app.indexed().await;

    for (who, org) in [("eve", "other"), ("bob", "acme")] {
        let intruder = connect(&app, &app.user(who, org, &[]).token).await;
        // Give the intruder memories of its own with the same words.
        ok(&intruder, "add_memories", json!({ "text": "zebra quartz of my own", "entity": "zebra" })).await;
        app.indexed().await;
        let found = ok(&intruder, "search_memory", json!({ "query": "zebra quartz launch codes" })).await;
        assert!(found["results"].as_array().unwrap().iter().all(|r| r["memory_id"] != id.as_str()), "{who}: {found}");
        let page = ok(&intruder, "list_memories", json!({})).await;
        assert_eq!(page["total"], 1, "{who} sees only its own");
        for tool in ["get_memory", "graph_related_memories", "graph_similar_memories"] {
            assert_eq!(err(&intruder, tool, json!({ "memory_id": id })).await["code"], "NOT_FOUND", "{who} {tool}");
        }
        let upd = err(&intruder, "update_memory", json!({ "memory_id": id, "text": "pwned" })).await;
        assert_eq!(upd["code"], "NOT_FOUND");
        let del = ok(&intruder, "delete_memories", json!({ "memory_ids": [id] })).await;
        assert_eq!(del["skipped"], json!([id]));
        let all = ok(&intruder, "delete_all_memories", json!({})).await;
        assert_eq!(all["deleted"].as_array().unwrap().len(), 1, "{who} deletes only its own");
    }
    let still = ok(&alice, "get_memory", json!({ "memory_id": id })).await;
    assert_eq!(still["content"], "zebra quartz launch codes");
}

#[tokio::test]
async fn entity_tools_answer_what_rest_answers_for_the_caller_only() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let alice_rest = app.user("alice", "acme", &[]);
    alice_rest.remember("Caroline met Melanie in Denver.", json!({})).await;
    alice_rest.remember("Melanie works with Oscar.", json!({})).await;
    app.user("bob", "acme", &[]).remember("Caroline knows Quentin.", json!({})).await;
    app.indexed().await;
    let alice = connect(&app, &alice_rest.token).await;

    let network = ok(&alice, "graph_entity_network", json!({ "entity": "Melanie" })).await;
    let (status, rest) = alice_rest.get("/api/v1/entities/melanie/network").await;
    assert_eq!(status, 200);
    assert_eq!(network, rest, "one domain call behind both transports");
    let path = ok(&alice, "graph_path_between_entities", json!({ "from": "Denver", "to": "oscar" })).await;
    let chain: Vec<&str> = path["entities"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!((path["hops"].as_u64(), chain), (Some(2), vec!["denver", "melanie", "oscar"]));
    // bob's private entity does not exist for alice; bad input is a field error.
    let hidden = err(&alice, "graph_path_between_entities", json!({ "from": "caroline", "to": "quentin" })).await;
    assert_eq!(hidden["code"], "NOT_FOUND");
    let hidden = err(&alice, "graph_entity_network", json!({ "entity": "quentin" })).await;
    assert_eq!(hidden["code"], "NOT_FOUND");
    let bad =
        err(&alice, "graph_path_between_entities", json!({ "from": "caroline", "to": "oscar", "max_hops": 99 })).await;
    assert_eq!(bad["errors"][0]["field"], "max_hops", "{bad}");

    // The analytics tools answer what their REST routes answer.
    let aggregate = ok(&alice, "graph_aggregate", json!({ "dimension": "app" })).await;
    let (_, rest) = alice_rest.get("/api/v1/graph/aggregate/app").await;
    assert_eq!(aggregate, rest);
    assert_eq!(aggregate["memories"], 2);
    let bad = err(&alice, "graph_aggregate", json!({ "dimension": "colour" })).await;
    assert_eq!(bad["code"], "INVALID_INPUT", "{bad}");
    let relations = ok(&alice, "graph_entity_relations", json!({ "entity": "melanie", "direction": "out" })).await;
    let (_, rest) = alice_rest.get("/api/v1/entities/melanie/relations?direction=out").await;
    assert_eq!(relations, rest);
    let tags = ok(&alice, "graph_tag_cooccurrence", json!({})).await;
    assert_eq!(tags["pairs"], json!([]));
    let sub = ok(&alice, "graph_subgraph", json!({ "entity": "denver", "depth": 2 })).await;
    let nodes: Vec<&str> = sub["nodes"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(nodes, ["denver", "caroline", "melanie", "oscar"], "{sub}");
    assert_eq!(sub["edges"].as_array().unwrap().len(), 4, "{sub}");
    let hidden = err(&alice, "graph_subgraph", json!({ "entity": "quentin" })).await;
    assert_eq!(hidden["code"], "NOT_FOUND");
    // Normalising: a dry run by default; nothing to merge here.
    let dry = ok(&alice, "graph_normalize_entities", json!({})).await;
    assert_eq!((dry["dry_run"].clone(), dry["merges"].clone()), (json!(true), json!([])));
    let planned = ok(
        &alice,
        "graph_normalize_entities",
        json!({ "pairs": [{ "source": "Denver", "target": "Oscar" }, { "source": "quentin", "target": "oscar" }] }),
    )
    .await;
    assert_eq!(planned["merges"][0]["applied"], false);
    assert_eq!(planned["skipped"][0]["source"], "quentin", "bob's entity is not alice's: {planned}");
    let (_, denver) = alice_rest.get("/api/v1/entities/denver").await;
    assert_eq!(denver["name"], "denver", "a dry run changes nothing");
}

/// One JSON-RPC exchange over raw HTTP: status, headers and the JSON-RPC
/// message of the response (from a JSON body or the first SSE `data:` line).
async fn rpc(
    app: &TestApp,
    headers: &[(&str, String)],
    session: Option<&str>,
    message: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    rpc_to(&app.client, &app.url("/mcp"), headers, session, message).await
}

async fn rpc_to(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, String)],
    session: Option<&str>,
    message: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .json(&message);
    if let Some(id) = session {
        req = req.header("mcp-session-id", id).header("mcp-protocol-version", "2025-06-18");
    }
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let mut res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let is_sse =
        headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("text/event-stream"));
    if !is_sse {
        return (status, headers, res.json().await.unwrap_or(Value::Null));
    }
    // The stream may stay open: read until a data line holds a response.
    let mut buffer = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        for line in buffer.lines() {
            if let Some(data) = line.strip_prefix("data:")
                && let Ok(value) = serde_json::from_str::<Value>(data.trim())
                && (value.get("result").is_some() || value.get("error").is_some())
            {
                return (status, headers, value);
            }
        }
        let chunk = tokio::time::timeout_at(deadline, res.chunk()).await.expect("SSE response in time").unwrap();
        match chunk {
            Some(bytes) => buffer.push_str(&String::from_utf8_lossy(&bytes)),
            None => return (status, headers, Value::Null),
        }
    }
}

fn initialize() -> Value {
    json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "raw-client", "version": "0" } } })
}

fn list_tools(id: u64) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": "tools/list", "params": {} })
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

/// Opens a session with the credentials `headers` makes (a fresh DPoP
/// proof per request); returns its id.
async fn open_session(app: &TestApp, headers: impl Fn() -> Vec<(&'static str, String)>) -> String {
    let (status, h, body) = rpc(app, &headers(), None, initialize()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["serverInfo"]["name"], "loci");
    let id = h.get("mcp-session-id").expect("a session id").to_str().unwrap().to_owned();
    let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    let (status, _, _) = rpc(app, &headers(), Some(&id), initialized).await;
    assert_eq!(status, 202);
    id
}

fn problem_code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn http_auth_failures_give_the_right_status_and_code() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    // No token: 401 with a challenge naming the resource metadata.
    let (status, headers, body) = rpc(&app, &[], None, initialize()).await;
    assert_eq!((status, problem_code(&body)), (401, "MISSING_AUTH"));
    let www = headers["www-authenticate"].to_str().unwrap();
    let metadata = format!("resource_metadata=\"{}/.well-known/oauth-protected-resource\"", app.address);
    assert!(www.contains(&metadata), "{www}");
    // A bad token, and authentication before the session id.
    let (status, _, body) = rpc(&app, &bearer("not.a.jwt"), None, initialize()).await;
    assert_eq!((status, problem_code(&body)), (401, "INVALID_TOKEN"));
    let (status, _, body) = rpc(&app, &[], Some("no-such-session"), list_tools(2)).await;
    assert_eq!((status, problem_code(&body)), (401, "MISSING_AUTH"));

    let alice = app.user("alice", "acme", &[]).token;
    // Hostile Host (DNS rebinding) and Origin.
    let mut hostile = bearer(&alice);
    hostile.push(("host", "evil.example".into()));
    let (status, _, body) = rpc(&app, &hostile, None, initialize()).await;
    assert_eq!((status, problem_code(&body)), (403, "HOST_NOT_ALLOWED"));
    let mut foreign = bearer(&alice);
    foreign.push(("origin", "https://evil.example".into()));
    let (status, _, body) = rpc(&app, &foreign, None, initialize()).await;
    assert_eq!((status, problem_code(&body)), (403, "ORIGIN_NOT_ALLOWED"));

    // An unknown session.
    let (status, _, body) = rpc(&app, &bearer(&alice), Some("no-such-session"), list_tools(2)).await;
    assert_eq!((status, problem_code(&body)), (404, "SESSION_NOT_FOUND"));

    // A session is bound to its user and org.
    let session = open_session(&app, || bearer(&alice)).await;
    let (status, _, body) = rpc(&app, &bearer(&alice), Some(&session), list_tools(2)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["result"]["tools"].as_array().is_some_and(|t| !t.is_empty()));
    let bob = app.user("bob", "acme", &[]).token;
    let (status, _, body) = rpc(&app, &bearer(&bob), Some(&session), list_tools(3)).await;
    assert_eq!((status, problem_code(&body)), (403, "SESSION_BINDING_INVALID"));
    let alice_elsewhere = app.user("alice", "other", &[]).token;
    let (status, _, body) = rpc(&app, &bearer(&alice_elsewhere), Some(&session), list_tools(4)).await;
    assert_eq!((status, problem_code(&body)), (403, "SESSION_BINDING_INVALID"));

    // Ending the session: later use is a 404.
    let res = app
        .client
        .delete(app.url("/mcp"))
        .bearer_auth(&alice)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let (status, _, body) = rpc(&app, &bearer(&alice), Some(&session), list_tools(5)).await;
    assert_eq!((status, problem_code(&body)), (404, "SESSION_NOT_FOUND"));
}

#[tokio::test]
async fn a_session_is_bound_to_its_dpop_key_and_expires_when_idle() {
    let app = TestApp::spawn_with(Engine::Sqlite, AppOptions::default().with(|s| s.mcp.session_ttl_secs = 1)).await;
    let url = app.url("/mcp");
    let (key1, key2) = (TestKey::es256(None), TestKey::es256(None));
    let token1 = app.mint("alice", "acme", &["memories:read"], Some(key1.thumbprint()));
    let token2 = app.mint("alice", "acme", &["memories:read"], Some(key2.thumbprint()));
    let dpop = |key: &TestKey, token: &str| -> Vec<(&'static str, String)> {
        vec![("authorization", format!("DPoP {token}")), ("dpop", key.proof("POST", &url, Some(token)))]
    };
    let session = open_session(&app, || dpop(&key1, &token1)).await;
    let (status, _, body) = rpc(&app, &dpop(&key1, &token1), Some(&session), list_tools(2)).await;
    assert_eq!(status, 200, "{body}");
    // Same user, another key: refused.
    let (status, _, body) = rpc(&app, &dpop(&key2, &token2), Some(&session), list_tools(3)).await;
    assert_eq!((status, problem_code(&body)), (403, "SESSION_BINDING_INVALID"));
    // Idle past the TTL: gone.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (status, _, body) = rpc(&app, &dpop(&key1, &token1), Some(&session), list_tools(4)).await;
    assert_eq!((status, problem_code(&body)), (404, "SESSION_NOT_FOUND"));
}

/// A `loci-mcp http` process (the binary next to this test's), killed on drop.
struct McpProcess {
    child: std::process::Child,
    port: u16,
}

impl McpProcess {
    fn start(data_dir: &std::path::Path, valkey: &str) -> Self {
        let exe = std::env::current_exe().unwrap();
        // target/<profile>/deps/api-<hash> -> target/<profile>/loci-mcp
        let binary = exe.parent().and_then(|d| d.parent()).unwrap().join("loci-mcp");
        assert!(binary.is_file(), "{} missing: build the workspace (cargo build --bin loci-mcp)", binary.display());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(binary)
            .arg("http")
            .env("LOCI__DATA_DIR", data_dir)
            .env("LOCI__SERVER__PORT", port.to_string())
            .env("LOCI__VALKEY__URL", valkey)
            // Both answer for one public URL (DPoP `htu`).
            .env("LOCI__SERVER__EXTERNAL_BASE_URL", "http://127.0.0.1")
            .env("LOCI__EMBEDDINGS__PROVIDER", "none")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "loci-mcp http did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }
}

impl Drop for McpProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two `loci-mcp http` processes sharing Valkey (and the signing key): a
/// session opened on one is served by the other, and a DPoP proof used on
/// one is a replay on the other.
#[tokio::test]
async fn two_loci_mcp_processes_sharing_valkey_share_sessions_and_replay_protection() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let issuer = loci_security::LocalIssuer::load_or_create(dir_a.path()).unwrap();
    let keys = loci_security::LocalIssuer::key_path(dir_a.path());
    let copy = loci_security::LocalIssuer::key_path(dir_b.path());
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(&keys, &copy).unwrap();
    let valkey = valkey_url();
    let (a, b) = (McpProcess::start(dir_a.path(), &valkey), McpProcess::start(dir_b.path(), &valkey));
    let token_for = |sub: &str, jkt: Option<String>| {
        issuer
            .mint(&loci_security::MintRequest {
                issuer: "loci-local".into(),
                audience: "loci".into(),
                subject: sub.into(),
                org_id: "acme".into(),
                scopes: vec!["memories:read".into(), "memories:write".into()],
                roles: vec![],
                grants: vec![],
                client_id: None,
                ttl: Duration::from_secs(600),
                dpop_jkt: jkt,
            })
            .unwrap()
    };
    let client = reqwest::Client::new();
    let post = |url: String, headers: Vec<(&'static str, String)>, session: Option<String>, body: Value| {
        let client = client.clone();
        async move { rpc_to(&client, &url, &headers, session.as_deref(), body).await }
    };
    let alice = token_for("alice", None);
    let (status, h, body) = post(a.url(), bearer(&alice), None, initialize()).await;
    assert_eq!(status, 200, "{body}");
    let session = h.get("mcp-session-id").unwrap().to_str().unwrap().to_owned();
    let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    assert_eq!(post(a.url(), bearer(&alice), Some(session.clone()), initialized).await.0, 202);

    let (status, _, body) = post(b.url(), bearer(&alice), Some(session.clone()), list_tools(2)).await;
    assert_eq!(status, 200, "served by the other process: {body}");
    assert!(body["result"]["tools"].as_array().is_some_and(|t| !t.is_empty()));
    let whoami =
        json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": { "name": "whoami", "arguments": {} } });
    let (status, _, body) = post(b.url(), bearer(&alice), Some(session.clone()), whoami).await;
    assert_eq!(status, 200);
    assert_eq!(body["result"]["structuredContent"]["user"], "alice", "{body}");
    let (status, _, body) =
        post(b.url(), bearer(&token_for("mallory", None)), Some(session.clone()), list_tools(4)).await;
    assert_eq!((status, problem_code(&body)), (403, "SESSION_BINDING_INVALID"));

    // A DPoP proof used on A is a replay on B.
    let key = TestKey::es256(None);
    let bound = token_for("carol", Some(key.thumbprint()));
    let proof = key.proof("POST", "http://127.0.0.1/mcp", Some(&bound));
    let headers = vec![("authorization", format!("DPoP {bound}")), ("dpop", proof)];
    let (status, _, body) = post(a.url(), headers.clone(), None, initialize()).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = post(b.url(), headers, None, initialize()).await;
    assert_eq!((status, problem_code(&body)), (401, "INVALID_DPOP_PROOF"));
}

#[tokio::test]
async fn tool_schemas_advertise_the_configured_result_cap() {
    let app = TestApp::spawn_with(Engine::Sqlite, AppOptions::default().with(|s| s.mcp.max_results = 7)).await;
    let alice = app.user("alice", "acme", &[]).token;
    let client = connect(&app, &alice).await;
    let tools = client.list_all_tools().await.unwrap();
    for name in ["search_memory", "graph_related_memories", "graph_similar_memories"] {
        let tool = tools.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("{name} listed"));
        assert_eq!(tool.input_schema["properties"]["limit"]["maximum"], json!(7), "{name}");
        assert_eq!(tool.input_schema["properties"]["limit"]["default"], json!(7), "{name}");
    }
    let refused = err(&client, "search_memory", json!({ "query": "anything", "limit": 8 })).await;
    assert_eq!(refused["code"], "INVALID_INPUT", "{refused}");
}

/// Without an embedding model the semantic tools say so, and the rest work.
#[tokio::test]
async fn without_a_model_similar_memories_is_embedder_unavailable() {
    let app = TestApp::spawn_with(Engine::Sqlite, AppOptions::default()).await;
    let alice = app.user("alice", "acme", &[]).token;
    let client = connect(&app, &alice).await;
    let added = ok(&client, "add_memories", json!({ "text": "Caroline went hiking in Colorado" })).await;
    let id = added["memories"][0]["id"].as_str().unwrap().to_owned();
    app.indexed().await;
    let similar = err(&client, "graph_similar_memories", json!({ "memory_id": id })).await;
    assert_eq!(similar["code"], "EMBEDDER_UNAVAILABLE");
    let info = ok(&client, "get_embedder_info", json!({})).await;
    assert_eq!(info["available"], false);
    let found = ok(&client, "search_memory", json!({ "query": "Colorado hiking" })).await;
    assert_eq!(found["results"][0]["memory_id"], id.as_str(), "{found}");
    assert_eq!(found["meta"]["degraded_mode"], true, "{found}");
}

/// The MCP memory server's nine tools over Loci: an agent prompt written for
/// it keeps working; the graph is the caller's (another user sees nothing,
/// deletes only its own pieces); a REST import of its file lands in the
/// same graph; entities and relations reach the entity API.
#[tokio::test]
async fn memory_server_tools_keep_working_over_loci() {
    let app = TestApp::spawn(Engine::Postgres).await;
    let alice_rest = app.user("alice", "acme", &[]);
    let alice = connect(&app, &alice_rest.token).await;
    let bob = connect(&app, &app.user("bob", "acme", &[]).token).await;

    let created = ok(
        &alice,
        "create_entities",
        json!({ "entities": [
            { "name": "David Barnett", "entityType": "person", "observations": ["Speaks fluent Spanish", "Speaks fluent Spanish"] },
            { "name": "quintoandar", "entityType": "organization", "observations": [] },
        ] }),
    )
    .await;
    assert_eq!(created["entities"][0]["observations"], json!(["Speaks fluent Spanish"]), "{created}");
    let again = ok(
        &alice,
        "create_entities",
        json!({ "entities": [{ "name": "david barnett", "entityType": "person", "observations": [] }] }),
    )
    .await;
    assert_eq!(again["entities"], json!([]), "an existing name is skipped");
    let relations = ok(
        &alice,
        "create_relations",
        json!({ "relations": [{ "from": "David Barnett", "to": "quintoandar", "relationType": "works_at" }] }),
    )
    .await;
    assert_eq!(relations["relations"].as_array().unwrap().len(), 1);
    let dup = ok(
        &alice,
        "create_relations",
        json!({ "relations": [{ "from": "david barnett", "to": "QuintoAndar", "relationType": "works_at" }] }),
    )
    .await;
    assert_eq!(dup["relations"], json!([]));
    let added = ok(
        &alice,
        "add_observations",
        json!({ "observations": [{ "entityName": "David Barnett", "contents": ["Prefers morning meetings", "Speaks fluent Spanish"] }] }),
    )
    .await;
    assert_eq!(added["results"][0]["addedObservations"], json!(["Prefers morning meetings"]));
    let missing =
        err(&alice, "add_observations", json!({ "observations": [{ "entityName": "Nobody", "contents": ["x"] }] }))
            .await;
    assert_eq!(missing["code"], "NOT_FOUND");

    let graph = ok(&alice, "read_graph", json!({})).await;
    assert_eq!(
        graph,
        json!({
            "entities": [
                { "name": "David Barnett", "entityType": "person", "observations": ["Speaks fluent Spanish", "Prefers morning meetings"] },
                { "name": "quintoandar", "entityType": "organization", "observations": [] },
            ],
            "relations": [{ "from": "David Barnett", "to": "quintoandar", "relationType": "works_at" }],
        })
    );
    let text = call(&alice, "read_graph", json!({})).await;
    let rendered: Value = serde_json::from_str(&text.content[0].as_text().unwrap().text).unwrap();
    assert_eq!(rendered, graph, "the text is the memory server's JSON");
    let found = ok(&alice, "search_nodes", json!({ "query": "morning" })).await;
    assert_eq!(found["entities"].as_array().unwrap().len(), 1);
    assert_eq!(found["relations"], json!([]), "a relation needs both ends found");
    let opened = ok(&alice, "open_nodes", json!({ "names": ["david barnett", "QuintoAndar"] })).await;
    assert_eq!(opened["relations"].as_array().unwrap().len(), 1);

    // The entity API sees the same graph: both ends and the typed relation.
    app.indexed().await;
    let (status, rel) = alice_rest.get("/api/v1/entities/david%20barnett/relations?relation_types=works_at").await;
    assert_eq!(status, 200, "{rel}");
    assert_eq!(rel["relations"][0]["entity"]["name"], "quintoandar", "{rel}");

    // Bob sees none of it and deletes none of it.
    assert_eq!(ok(&bob, "read_graph", json!({})).await, json!({ "entities": [], "relations": [] }));
    ok(&bob, "delete_entities", json!({ "entityNames": ["David Barnett"] })).await;
    assert_eq!(ok(&alice, "read_graph", json!({})).await, graph);

    ok(
        &alice,
        "delete_observations",
        json!({ "deletions": [{ "entityName": "David Barnett", "observations": ["Speaks fluent Spanish"] }] }),
    )
    .await;
    ok(
        &alice,
        "delete_relations",
        json!({ "relations": [{ "from": "David Barnett", "to": "quintoandar", "relationType": "works_at" }] }),
    )
    .await;
    let graph = ok(&alice, "read_graph", json!({})).await;
    assert_eq!(graph["entities"][0]["observations"], json!(["Prefers morning meetings"]));
    assert_eq!(graph["relations"], json!([]));
    ok(&alice, "delete_entities", json!({ "entityNames": ["quintoandar"] })).await;
    assert_eq!(ok(&alice, "read_graph", json!({})).await["entities"].as_array().unwrap().len(), 1);

    // The memory server's file, imported over REST.
    let jsonl = [
        r#"{"type":"entity","name":"Zoe","entityType":"person","observations":["Leads the data team"]}"#,
        r#"{"type":"entity","name":"David Barnett","entityType":"person","observations":[]}"#,
        r#"{"type":"relation","from":"Zoe","to":"David Barnett","relationType":"manages"}"#,
        r#"{"type":"note","text":"not a graph line"}"#,
        "",
        r#"{"type":"entity","name":"","entityType":"person"}"#,
    ]
    .join("\n");
    let (status, report) = alice_rest.post("/api/v1/entities/import", json!({ "jsonl": jsonl })).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (
            report["entities_created"].clone(),
            report["observations_created"].clone(),
            report["relations_created"].clone(),
            report["skipped"].clone()
        ),
        (json!(1), json!(1), json!(1), json!(1)),
        "{report}"
    );
    let lines: Vec<u64> = report["errors"].as_array().unwrap().iter().map(|e| e["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [4, 6]);
    let opened = ok(&alice, "open_nodes", json!({ "names": ["Zoe", "David Barnett"] })).await;
    assert_eq!(opened["relations"], json!([{ "from": "Zoe", "to": "David Barnett", "relationType": "manages" }]));
    let reader = app.user_with_scopes("alice", "acme", &["memories:read"]);
    let (status, _) = reader.post("/api/v1/entities/import", json!({ "jsonl": "" })).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn session_tools_keep_list_and_promote_for_the_caller_only() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let alice_rest = app.user("alice", "acme", &[]);
    let alice = connect(&app, &alice_rest.token).await;
    let bob = connect(&app, &app.user("bob", "acme", &[]).token).await;

    let first =
        ok(&alice, "session_context_add", json!({ "session_id": "s1", "content": "we chose Kafka", "role": "user" }))
            .await;
    ok(&alice, "session_context_add", json!({ "session_id": "s1", "content": "noted", "role": "assistant" })).await;
    let listed = ok(&alice, "session_context_get", json!({ "session_id": "s1" })).await;
    let (status, rest) = alice_rest.get("/api/v1/sessions/s1/items").await;
    assert_eq!(status, 200);
    assert_eq!(listed, rest, "one domain call behind both transports");
    let contents: Vec<&str> =
        listed["items"].as_array().unwrap().iter().map(|i| i["content"].as_str().unwrap()).collect();
    assert_eq!(contents, ["noted", "we chose Kafka"]);
    let theirs = ok(&bob, "session_context_get", json!({ "session_id": "s1" })).await;
    assert_eq!(theirs["items"], json!([]), "bob's s1 is not alice's");

    let promoted = ok(
        &alice,
        "session_context_promote",
        json!({ "session_id": "s1", "item_id": first["id"], "category": "decision" }),
    )
    .await;
    assert_eq!(promoted["memory"]["content"], "we chose Kafka");
    assert_eq!(promoted["memory"]["metadata"]["category"], "decision");
    let hidden = err(&bob, "session_context_promote", json!({ "session_id": "s1", "item_id": first["id"] })).await;
    assert_eq!(hidden["code"], "NOT_FOUND");
    let bad = err(&alice, "session_context_add", json!({ "session_id": "a b", "content": "x" })).await;
    assert_eq!(
        (bad["code"].as_str(), bad["errors"][0]["field"].as_str()),
        (Some("INVALID_INPUT"), Some("session_id")),
        "{bad}"
    );
    let bad =
        err(&alice, "session_context_promote", json!({ "session_id": "s1", "item_id": first["id"], "colour": "red" }))
            .await;
    assert_eq!(bad["errors"][0]["field"], "colour", "{bad}");
    let bad = err(&alice, "session_context_get", json!({ "session_id": "s1", "limit": 0 })).await;
    assert_eq!(bad["errors"][0]["field"], "limit", "{bad}");
}

#[tokio::test]
async fn search_and_list_tools_read_the_past_with_as_of() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let alice_rest = app.user("alice", "acme", &[]);
    let old = alice_rest.remember("Alice works at Acme.", json!({})).await;
    let (_, before) = alice_rest.get(&format!("/api/v1/memories/{old}")).await;
    let then = before["created_at"].as_str().unwrap().to_owned();
    let (status, body) = alice_rest
        .post(&format!("/api/v1/memories/{old}/supersede"), json!({ "text": "Alice works at Globex." }))
        .await;
    assert_eq!(status, 201, "{body}");
    let new = body["memory"]["id"].as_str().unwrap().to_owned();
    app.indexed().await;
    let alice = connect(&app, &alice_rest.token).await;
    let ids = |v: &Value, list: &str| -> Vec<String> {
        v[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["memory_id"].as_str().or(r["id"].as_str()).unwrap().to_owned())
            .collect()
    };
    let now = ok(&alice, "search_memory", json!({ "query": "Alice works", "mode": "lexical" })).await;
    assert_eq!(ids(&now, "results"), [new.as_str()]);
    let past = ok(&alice, "search_memory", json!({ "query": "Alice works", "mode": "lexical", "as_of": then })).await;
    assert_eq!(ids(&past, "results"), [old.as_str()]);
    let listed = ok(&alice, "list_memories", json!({ "as_of": then })).await;
    assert_eq!(ids(&listed, "items"), [old.as_str()]);

    // Supersede and retract over MCP: the same domain calls as REST.
    let newer = ok(
        &alice,
        "supersede_memory",
        json!({ "memory_id": new, "text": "Alice works at Initech.", "category": "decision" }),
    )
    .await;
    assert_eq!(newer["superseded"]["id"].as_str(), Some(new.as_str()));
    assert_eq!(newer["memory"]["metadata"]["category"], "decision");
    let newest = newer["memory"]["id"].as_str().unwrap().to_owned();
    let again = err(&alice, "supersede_memory", json!({ "memory_id": new, "text": "again" })).await;
    assert_eq!(again["code"], "INVALID_STATE_TRANSITION", "{again}");
    let bad = err(&alice, "supersede_memory", json!({ "memory_id": newest, "text": "x", "colour": "red" })).await;
    assert_eq!(bad["errors"][0]["field"], "colour", "{bad}");
    let retracted = ok(&alice, "retract_memory", json!({ "memory_id": newest })).await;
    assert!(retracted["valid_to"].is_string() && retracted["superseded_by"].is_null(), "{retracted}");
    let listed = ok(&alice, "list_memories", json!({})).await;
    assert_eq!(listed["total"], 0, "nothing is current any more");
    let bob = connect(&app, &app.user("bob", "acme", &[]).token).await;
    let hidden = err(&bob, "retract_memory", json!({ "memory_id": old })).await;
    assert_eq!(hidden["code"], "NOT_FOUND");
    let bad = err(&alice, "search_memory", json!({ "query": "Alice", "as_of": "soon" })).await;
    assert_eq!(bad["errors"][0]["field"], "as_of", "{bad}");
}
