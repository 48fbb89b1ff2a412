//! MCP load figures against the real `loci-mcp` binary (release build):
//! tool-call round trips (add_memories, search_memory) over streamable HTTP
//! and over stdio, then many concurrent HTTP sessions.
//!
//! `cargo bench -p loci-mcp --bench mcp_load -- [CALLS] [SESSIONS] [CALLS_PER_SESSION]`
//! (defaults 300, 200, 10). Uses the local embedding model when
//! `scripts/fetch-model.sh` has fetched it (hybrid search), else lexical.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use loci_security::{LocalIssuer, MintRequest};
use rmcp::model::{CallToolRequestParams, ClientCapabilities, Implementation, InitializeRequestParams};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

const BINARY: &str = env!("CARGO_BIN_EXE_loci-mcp");

type Client = RunningService<RoleClient, InitializeRequestParams>;

fn model_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var("HOME").ok()?).join(".cache/loci-models/all-MiniLM-L6-v2");
    dir.join("model.safetensors").is_file().then_some(dir)
}

fn token(data_dir: &Path) -> String {
    LocalIssuer::load_or_create(data_dir)
        .unwrap()
        .mint(&MintRequest {
            issuer: "loci-local".into(),
            audience: "loci".into(),
            subject: "bench".into(),
            org_id: "bench".into(),
            scopes: ["memories:read", "memories:write", "memories:delete"].map(String::from).to_vec(),
            roles: vec![],
            grants: vec![],
            client_id: None,
            ttl: Duration::from_secs(7200),
            dpop_jkt: None,
        })
        .unwrap()
}

fn env(cmd: &mut Command, data_dir: &Path) {
    cmd.env("LOCI__DATA_DIR", data_dir).env("RUST_LOG", "error").env("LOCI__SERVER__WORKERS", "2");
    match model_dir() {
        Some(m) => cmd.env("LOCI__EMBEDDINGS__MODEL_DIR", m),
        None => cmd.env("LOCI__EMBEDDINGS__PROVIDER", "none"),
    };
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_http(data_dir: &Path) -> (Server, u16) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cmd = Command::new(BINARY);
    cmd.arg("http").env("LOCI__SERVER__PORT", port.to_string()).stdout(Stdio::null()).stderr(Stdio::inherit());
    env(&mut cmd, data_dir);
    let child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "loci-mcp http did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Server(child), port)
}

fn info(name: &str) -> InitializeRequestParams {
    InitializeRequestParams::new(ClientCapabilities::default(), Implementation::new(name, "1"))
}

async fn http_client(port: u16, token: &str) -> Result<Client, String> {
    let config = StreamableHttpClientTransportConfig::with_uri(format!("http://127.0.0.1:{port}/mcp"))
        .auth_header(token.to_owned());
    info("bench-http").serve(StreamableHttpClientTransport::from_config(config)).await.map_err(|e| e.to_string())
}

async fn stdio_client(data_dir: &Path, token: &str) -> Client {
    let mut cmd = tokio::process::Command::new(BINARY);
    cmd.arg("stdio").env("LOCI_TOKEN", token).env("LOCI__DATA_DIR", data_dir).env("RUST_LOG", "error");
    match model_dir() {
        Some(m) => cmd.env("LOCI__EMBEDDINGS__MODEL_DIR", m),
        None => cmd.env("LOCI__EMBEDDINGS__PROVIDER", "none"),
    };
    info("bench-stdio").serve(TokioChildProcess::new(cmd).unwrap()).await.unwrap()
}

async fn call(client: &Client, tool: &str, args: Value) -> Result<Value, String> {
    let Value::Object(args) = args else { unreachable!() };
    let result = client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args))
        .await
        .map_err(|e| e.to_string())?;
    if result.is_error == Some(true) {
        return Err(format!("{:?}", result.structured_content));
    }
    result.structured_content.ok_or_else(|| "no content".into())
}

const TOPICS: &[&str] = &[
    "deploys",
    "rollbacks",
    "database migrations",
    "on-call rotation",
    "API versioning",
    "feature flags",
    "incident reviews",
    "code owners",
    "release trains",
    "cache invalidation",
];

fn text(i: usize) -> String {
    format!("Team note {i}: how the {} of service-{} work, decided in review {}", TOPICS[i % TOPICS.len()], i % 37, i)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(label: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    println!(
        "{label:<34} n={:<5} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
        ms.len(),
        percentile(&ms, 0.50),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or(f64::NAN)
    );
}

/// Round trips of add_memories then search_memory on one client.
async fn round_trips(transport: &str, client: &Client, calls: usize) {
    let mut add = Vec::with_capacity(calls);
    for i in 0..calls {
        let t = Instant::now();
        call(client, "add_memories", json!({ "text": text(i) })).await.unwrap();
        add.push(t.elapsed().as_secs_f64() * 1e3);
    }
    // Let the indexer catch up so searches see a full index.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut search = Vec::with_capacity(calls);
    for i in 0..calls {
        let query = format!("how do {} work for service-{}", TOPICS[(i * 7) % TOPICS.len()], i % 37);
        let t = Instant::now();
        call(client, "search_memory", json!({ "query": query, "limit": 10 })).await.unwrap();
        search.push(t.elapsed().as_secs_f64() * 1e3);
    }
    report(&format!("{transport} add_memories"), add);
    report(&format!("{transport} search_memory"), search);
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let calls = args.first().copied().unwrap_or(300);
    let sessions = args.get(1).copied().unwrap_or(200);
    let per_session = args.get(2).copied().unwrap_or(10);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    println!(
        "loci-mcp load: {calls} sequential calls per tool; {sessions} concurrent HTTP sessions x {per_session} calls; search: {}",
        if model_dir().is_some() { "hybrid (local model)" } else { "lexical (no model)" }
    );
    rt.block_on(async {
        let http_dir = tempfile::tempdir().unwrap();
        let http_token = token(http_dir.path());
        let (_server, port) = start_http(http_dir.path());
        let client = http_client(port, &http_token).await.unwrap();
        round_trips("HTTP", &client, calls).await;

        let stdio_dir = tempfile::tempdir().unwrap();
        let stdio_token = token(stdio_dir.path());
        let stdio = stdio_client(stdio_dir.path(), &stdio_token).await;
        round_trips("stdio", &stdio, calls).await;
        drop(stdio.cancel().await);

        // Many sessions at once: each initializes, then alternates search
        // and add calls.
        let token = Arc::new(http_token);
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(sessions);
        for s in 0..sessions {
            let token = token.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_session);
                let mut errors = 0usize;
                let client = match http_client(port, &token).await {
                    Ok(c) => c,
                    Err(_) => return (latencies, per_session + 1),
                };
                for i in 0..per_session {
                    let t = Instant::now();
                    let outcome = if i % 2 == 0 {
                        // Distinct queries: each one is embedded (no query-cache hits).
                        let query = format!("{} of service-{s} in review {i}", TOPICS[(s + i) % TOPICS.len()]);
                        call(&client, "search_memory", json!({ "query": query, "limit": 5 })).await
                    } else {
                        call(&client, "add_memories", json!({ "text": text(s * 100 + i) })).await
                    };
                    match outcome {
                        Ok(_) => latencies.push(t.elapsed().as_secs_f64() * 1e3),
                        Err(_) => errors += 1,
                    }
                }
                drop(client.cancel().await);
                (latencies, errors)
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, e) = t.await.unwrap();
            all.extend(l);
            errors += e;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let ok = all.len();
        println!(
            "{sessions} concurrent HTTP sessions: {ok} calls ok, {errors} errors in {elapsed:.2} s = {:.0} calls/s (sessions opened included)",
            ok as f64 / elapsed
        );
        report("concurrent calls (search+add)", all);
    });
}
