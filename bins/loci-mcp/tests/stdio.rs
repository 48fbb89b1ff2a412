//! MCP over stdio against the real `loci-mcp` binary, driven by rmcp's
//! client: the identity comes from `LOCI_TOKEN`, validated at start.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use loci_security::{LocalIssuer, MintRequest};
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

const BINARY: &str = env!("CARGO_BIN_EXE_loci-mcp");

fn token(data_dir: &Path, scopes: &[&str], ttl: Duration) -> String {
    let issuer = LocalIssuer::load_or_create(data_dir).unwrap();
    issuer
        .mint(&MintRequest {
            issuer: "loci-local".into(),
            audience: "loci".into(),
            subject: "alice".into(),
            org_id: "acme".into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            roles: vec![],
            grants: vec![],
            client_id: None,
            ttl,
            dpop_jkt: None,
        })
        .unwrap()
}

fn command(data_dir: &Path, token: Option<&str>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(BINARY);
    cmd.arg("stdio")
        .env("LOCI__DATA_DIR", data_dir)
        .env("LOCI__EMBEDDINGS__PROVIDER", "none")
        .env("LOCI__SEARCH__INDEXER_POLL_MS", "50")
        .env("RUST_LOG", "warn")
        .env_remove("LOCI_TOKEN");
    if let Some(t) = token {
        cmd.env("LOCI_TOKEN", t);
    }
    cmd
}

async fn start(data_dir: &Path, token: &str) -> RunningService<RoleClient, ()> {
    let transport = TokioChildProcess::new(command(data_dir, Some(token))).unwrap();
    ().serve(transport).await.expect("initialize over stdio")
}

async fn call(client: &RunningService<RoleClient, ()>, tool: &str, args: Value) -> CallToolResult {
    let Value::Object(args) = args else { panic!("object expected") };
    client.call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args)).await.unwrap()
}

#[tokio::test]
async fn an_agent_stores_and_finds_memories_over_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let t = token(
        dir.path(),
        &[
            "memories:read",
            "memories:write",
            "memories:delete",
            "graph:read",
            "graph:write",
            "search:read",
            "entities:write",
            "feedback:write",
            "gdpr:read",
        ],
        Duration::from_secs(600),
    );
    let client = start(dir.path(), &t).await;
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), loci_mcp::tools::TOOLS.len());

    let me = call(&client, "whoami", json!({})).await.structured_content.unwrap();
    assert_eq!(me["user"], "alice");
    let added =
        call(&client, "add_memories", json!({ "text": "Staging database is refreshed every Sunday night" })).await;
    assert_ne!(added.is_error, Some(true), "{:?}", added.structured_content);
    let id = added.structured_content.unwrap()["memories"][0]["id"].as_str().unwrap().to_owned();

    // The process indexes its own writes: the memory becomes searchable.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let found = call(&client, "search_memory", json!({ "query": "when is staging refreshed" })).await;
        let found = found.structured_content.unwrap();
        if found["results"][0]["memory_id"] == id.as_str() {
            assert_eq!(found["meta"]["degraded_mode"], true, "no embedder in this test: lexical + graph");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never found: {found}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = call(&client, "get_memory", json!({ "memory_id": id })).await.structured_content.unwrap();
    assert_eq!(got["content"], "Staging database is refreshed every Sunday night");

    // Every tool answers over stdio (the HTTP suite checks each one in depth).
    for spec in loci_mcp::tools::TOOLS {
        let args = match spec.name {
            "add_memories" => json!({ "text": "one more" }),
            "search_memory" => json!({ "query": "staging" }),
            "get_memory" | "graph_related_memories" | "graph_similar_memories" => json!({ "memory_id": id }),
            "update_memory" => json!({ "memory_id": id, "text": "Staging database is refreshed every Sunday night" }),
            "delete_memories" => continue,
            // Both end the memory the loop uses; tools/mcp.rs runs them.
            "supersede_memory" | "retract_memory" => continue,
            "delete_all_memories" => continue,
            "add_memories_status" => json!({ "job_id": "00000000-0000-7000-8000-000000000000" }),
            "report_feedback" => json!({ "outcome": "accepted", "result_index": 0 }),
            "graph_entity_network" => json!({ "entity": "nobody here" }),
            "graph_path_between_entities" => json!({ "from": "nobody", "to": "nothing" }),
            "graph_subgraph" | "graph_entity_relations" => json!({ "entity": "nobody here" }),
            "graph_aggregate" => json!({ "dimension": "category" }),
            // The knowledge-graph tools, without writing (the count below).
            "create_entities" => json!({ "entities": [] }),
            "create_relations" | "delete_relations" => json!({ "relations": [] }),
            "add_observations" => json!({ "observations": [] }),
            "delete_entities" => json!({ "entityNames": ["nobody"] }),
            "delete_observations" => json!({ "deletions": [] }),
            "search_nodes" => json!({ "query": "staging" }),
            "open_nodes" => json!({ "names": ["staging"] }),
            "session_context_add" => json!({ "session_id": "stdio", "content": "a note for now" }),
            "session_context_get" => json!({ "session_id": "stdio" }),
            // The code tools on nothing indexed (tests/api/code.rs indexes).
            "index_codebase" => json!({ "path": "/nowhere" }),
            "index_codebase_status" => json!({ "job_id": "00000000-0000-7000-8000-000000000000" }),
            "search_code_hybrid" => json!({ "query": "parse orders" }),
            "find_callers" | "find_callees" | "impact_analysis" | "explain_code" => json!({ "symbol": "parse_orders" }),
            // Promoting would add a memory (the count below): an unknown item.
            "session_context_promote" => {
                json!({ "session_id": "stdio", "item_id": "00000000-0000-7000-8000-000000000000" })
            }
            _ => json!({}),
        };
        let result = call(&client, spec.name, args).await;
        let body = result.structured_content.unwrap();
        match spec.name {
            "add_memories_status"
            | "graph_entity_network"
            | "graph_path_between_entities"
            | "graph_subgraph"
            | "graph_entity_relations"
            | "session_context_promote"
            | "index_codebase_status"
            | "find_callers"
            | "find_callees"
            | "impact_analysis"
            | "explain_code" => {
                assert_eq!(body["code"], "NOT_FOUND", "{}: {body}", spec.name)
            }
            // No code.allowed_roots: a local path is refused, saying why.
            "index_codebase" => assert_eq!(body["code"], "INVALID_INPUT", "{body}"),
            "graph_similar_memories" => assert_eq!(body["code"], "EMBEDDER_UNAVAILABLE"),
            name => assert_ne!(result.is_error, Some(true), "{name}: {body}"),
        }
    }
    let deleted = call(&client, "delete_memories", json!({ "memory_ids": [id] })).await.structured_content.unwrap();
    assert_eq!(deleted["deleted"][0], id.as_str());
    let all = call(&client, "delete_all_memories", json!({})).await.structured_content.unwrap();
    assert_eq!(all["deleted"].as_array().unwrap().len(), 1, "the other memory: {all}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn scopes_and_expiry_are_enforced_over_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let t = token(dir.path(), &["memories:read"], Duration::from_secs(4));
    let client = start(dir.path(), &t).await;
    let denied = call(&client, "add_memories", json!({ "text": "x" })).await;
    assert_eq!(denied.is_error, Some(true));
    let body = denied.structured_content.unwrap();
    assert_eq!(
        (body["code"].as_str(), body["required_scope"].as_str()),
        (Some("INSUFFICIENT_SCOPE"), Some("memories:write"))
    );
    assert_ne!(call(&client, "list_memories", json!({})).await.is_error, Some(true));
    // The token expires during the session: calls stop working.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let expired = call(&client, "list_memories", json!({})).await;
    assert_eq!(expired.structured_content.unwrap()["code"], "TOKEN_EXPIRED");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_missing_or_invalid_token_stops_the_server_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for (token, expected) in [(None, "LOCI_TOKEN is not set"), (Some("not-a-token"), "was refused")] {
        let out = command(dir.path(), token).stdin(std::process::Stdio::null()).output().await.unwrap();
        assert!(!out.status.success(), "must not start without a valid token");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{stderr}");
        assert!(out.stdout.is_empty(), "nothing but protocol on stdout");
    }
}
