//! The real `loci` binary: configuration failures, `config check`, migrations
//! and `serve` with graceful shutdown on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const LOCI: &str = env!("CARGO_BIN_EXE_loci");

/// A command with a clean environment: no LOCI_* variable leaks in from the
/// developer's shell.
fn loci(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(LOCI);
    cmd.current_dir(dir).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn production_with_nothing_set_refuses_to_start_and_names_every_missing_setting() {
    let dir = tempfile::tempdir().unwrap();
    let out = loci(dir.path()).env("LOCI_PROFILE", "production").arg("serve").output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for key in ["database.url", "valkey.url", "auth.issuer", "auth.audience", "auth.jwks_url"] {
        assert!(stderr.contains(key), "{key} missing from:\n{stderr}");
    }
    assert!(stderr.contains("5 problems"), "{stderr}");
    assert!(!dir.path().join("loci-data").exists(), "nothing was created");
}

#[test]
fn config_check_prints_the_effective_configuration_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let out = loci(dir.path())
        .env("LOCI__DATABASE__URL", "postgres://loci:pg-secret-value@db/loci")
        .env("LOCI__VALKEY__URL", "redis://:valkey-secret-value@cache:6379")
        .env("LOCI__EMBEDDINGS__API_KEY", "sk-embedding-secret")
        .env("LOCI__SERVER__PORT", "9999")
        .args(["config", "check"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("port = 9999"), "{stdout}");
    assert!(stdout.contains("[REDACTED]"));
    for secret in ["pg-secret-value", "valkey-secret-value", "sk-embedding-secret"] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret), "{secret} leaked");
    }
}

#[test]
fn config_check_exits_non_zero_and_lists_problems() {
    let dir = tempfile::tempdir().unwrap();
    let out = loci(dir.path())
        .env("LOCI__AUTH__ALGORITHMS", "HS256")
        .env("LOCI__AUTH__HMAC_KEYS", "too-short-hmac")
        .env("LOCI__CORS__ALLOWED_ORIGINS", "*")
        .env("LOCI__CORS__ALLOW_CREDENTIALS", "true")
        .args(["config", "check"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("auth.hmac_keys[0]") && stderr.contains("cors.allowed_origins"), "{stderr}");
    assert!(!stdout.contains("too-short-hmac") && !stderr.contains("too-short-hmac"));
}

#[test]
fn unknown_settings_and_missing_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = loci(dir.path()).env("LOCI__SERVER__PROT", "1").args(["config", "check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = loci(dir.path()).args(["--config", "/nonexistent.toml", "config", "check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("does not exist"));
}

#[test]
fn migrate_up_status_and_guarded_fresh_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let out = loci(dir.path()).args(["migrate", "status"]).output().unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(text(&out).0.starts_with("pending\tm20261125_000001_core"), "{:?}", text(&out));
    let out = loci(dir.path()).args(["migrate", "up"]).output().unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    let out = loci(dir.path()).args(["migrate", "status"]).output().unwrap();
    assert!(text(&out).0.starts_with("applied\tm20261125_000001_core"), "{:?}", text(&out));
    assert!(dir.path().join("loci-data/loci.db").exists());
    let out = loci(dir.path()).args(["migrate", "fresh"]).output().unwrap();
    assert!(!out.status.success(), "fresh needs --yes");
    let out = loci(dir.path()).args(["migrate", "fresh", "--yes"]).output().unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    // `down` reverts the newest migration only; `--steps` more.
    let out = loci(dir.path()).args(["migrate", "down"]).output().unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    let out = loci(dir.path()).args(["migrate", "status"]).output().unwrap();
    let status = text(&out).0;
    let lines: Vec<&str> = status.lines().collect();
    assert!(lines.len() >= 2, "{status}");
    assert!(lines[..lines.len() - 1].iter().all(|l| l.starts_with("applied")), "{status}");
    assert!(lines[lines.len() - 1].starts_with("pending"), "{status}");
    let steps = lines.len().to_string();
    let out = loci(dir.path()).args(["migrate", "down", "--steps", &steps]).output().unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    let out = loci(dir.path()).args(["migrate", "status"]).output().unwrap();
    assert!(text(&out).0.lines().all(|l| l.starts_with("pending")), "{:?}", text(&out));
}

#[tokio::test]
async fn serve_runs_the_embedded_profile_logs_json_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = loci(dir.path())
        .env("LOCI__SERVER__PORT", "0")
        .env("LOCI__SERVER__SHUTDOWN_TIMEOUT_SECS", "5")
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let port = loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("server starts");
        let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        lines.push(event.clone());
        if event["message"] == "loci-api listening" {
            assert_eq!(event["profile"], "embedded");
            break event["port"].as_u64().unwrap();
        }
    };
    let res = reqwest::get(format!("http://127.0.0.1:{port}/health/live")).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();

    // The new-user flow: mint a token with the CLI, use it with curl-like calls.
    let out = loci(dir.path())
        .args(["token", "--user", "alice", "--org", "acme", "--scopes", "memories:read"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    let token = text(&out).0.trim().to_owned();
    let client = reqwest::Client::new();
    let me: serde_json::Value = client
        .get(format!("http://127.0.0.1:{port}/api/v1/whoami"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((me["user"].as_str(), me["org"].as_str()), (Some("alice"), Some("acme")), "{me}");
    let denied = client.get(format!("http://127.0.0.1:{port}/api/v1/whoami")).send().await.unwrap();
    assert_eq!(denied.status().as_u16(), 401);

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "server did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "graceful exit, got {status:?}");
    lines.extend(rx.try_iter().map(|l| serde_json::from_str::<serde_json::Value>(&l).unwrap()));
    let completed = lines
        .iter()
        .find(|e| e["message"] == "request completed")
        .unwrap_or_else(|| panic!("no request log in {lines:?}"));
    assert_eq!(completed["span"]["request_id"], request_id.as_str());
    assert_eq!(completed["span"]["route"], "/health/live");
    assert_eq!(completed["status"], 200);
    assert!(lines.iter().any(|e| e["message"] == "loci-api stopped"));
}

#[test]
fn token_mints_with_a_local_key_created_on_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let out = loci(dir.path())
        .args(["token", "--user", "alice", "--org", "acme", "--scopes", "memories:read memories:write", "--ttl", "30m"])
        .args(["--roles", "viewer", "--grants", "team:acme/core", "--dpop-jkt", "abc"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let token = stdout.trim();
    assert_eq!(token.split('.').count(), 3);
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&base64_url_decode(payload)).unwrap();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["org_id"], "acme");
    assert_eq!(claims["scope"], "memories:read memories:write");
    assert_eq!(claims["roles"], serde_json::json!(["viewer"]));
    assert_eq!(claims["grants"], serde_json::json!(["team:acme/core"]));
    assert_eq!(claims["cnf"]["jkt"], "abc");
    assert_eq!(claims["iss"], "loci-local");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 1800);
    assert!(dir.path().join("loci-data/keys/local-signing-key.jwk").exists());
}

fn base64_url_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap()
}

#[test]
fn token_rejects_bad_input_and_refuses_in_production() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["token", "--user", "alice", "--org", "acme", "--scopes", "memories:everything"],
        vec!["token", "--user", "alice", "--org", "bad org", "--scopes", "memories:read"],
        vec!["token", "--user", "alice", "--org", "acme", "--ttl", "forever"],
        vec!["token", "--user", "alice", "--org", "acme", "--grants", "group:x"],
        vec!["token", "--user", "alice", "--org", "acme", "--roles", "superuser"],
    ] {
        let out = loci(dir.path()).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {:?}", text(&out));
    }
    // An embedded server that trusts an identity provider's keys would
    // reject a locally signed token: minting one is refused.
    let out = loci(dir.path())
        .env("LOCI__AUTH__JWKS_URL", "https://idp.example/jwks.json")
        .args(["token", "--user", "alice", "--org", "acme"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    assert!(text(&out).1.contains("does not trust"), "{:?}", text(&out));
    let out = loci(dir.path())
        .env("LOCI_PROFILE", "production")
        .env("LOCI__DATABASE__URL", "postgres://x@127.0.0.1:1/x")
        .env("LOCI__VALKEY__URL", "redis://127.0.0.1:1")
        .env("LOCI__AUTH__ISSUER", "https://idp.example/")
        .env("LOCI__AUTH__AUDIENCE", "loci")
        .env("LOCI__AUTH__JWKS_URL", "https://idp.example/jwks.json")
        .args(["token", "--user", "alice", "--org", "acme"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("identity provider"), "{:?}", text(&out));
    assert!(!dir.path().join("loci-data").exists(), "no key is created in production");
}

/// Starts `loci serve` in `dir` and returns the child and its port.
fn start_server(dir: &std::path::Path) -> (std::process::Child, u64) {
    start_server_with(dir, &[])
}

/// [`start_server`] with more settings.
fn start_server_with(dir: &std::path::Path, env: &[(&str, String)]) -> (std::process::Child, u64) {
    let mut child = loci(dir)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("LOCI__SERVER__PORT", "0")
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<u64>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
                && event["message"] == "loci-api listening"
            {
                let _ = tx.send(event["port"].as_u64().unwrap());
            }
        }
    });
    let port = rx.recv_timeout(Duration::from_secs(60)).expect("server starts");
    (child, port)
}

/// Writes commit with their outbox rows before they are answered, so a
/// SIGKILL while the indexer works loses nothing: the restarted server
/// drains the outbox and every write becomes searchable.
#[tokio::test]
async fn sigkill_during_indexing_loses_no_write() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port) = start_server(dir.path());
    let out =
        loci(dir.path()).args(["token", "--user", "alice", "--org", "acme", "--roles", "admin"]).output().unwrap();
    let token = text(&out).0.trim().to_owned();
    let client = reqwest::Client::new();
    let n = 60;
    for i in 0..n {
        let res = client
            .post(format!("http://127.0.0.1:{port}/api/v1/memories"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "text": format!("note about zebra{i} and its stripes"), "app": "cli" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 201);
    }
    // Killed at once: the background indexer is mid-way through the outbox.
    child.kill().unwrap();
    child.wait().unwrap();

    let (mut child, port) = start_server(dir.path());
    // Rows the killed indexer had claimed come back when their 30 s lease ends.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let metrics = client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.lines().any(|l| l == "loci_outbox_pending 0") {
            break;
        }
        assert!(Instant::now() < deadline, "outbox not drained after restart:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 0..n {
        let body: serde_json::Value = client
            .post(format!("http://127.0.0.1:{port}/api/v1/search/lexical"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "query": format!("zebra{i}") }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let first = body["results"][0]["content"].as_str().unwrap_or_default().to_owned();
        assert_eq!(first, format!("note about zebra{i} and its stripes"), "{body}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// An OpenAI-compatible chat endpoint for the job test: extracts three
/// facts and adds each; while `slow` is set it answers after 30 s.
fn fact_model(slow: std::sync::Arc<std::sync::atomic::AtomicBool>) -> String {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let server = HttpServer::new(move || {
        let slow = slow.clone();
        App::new().route(
            "/v1/chat/completions",
            web::post().to(move |body: web::Json<serde_json::Value>| {
                let slow = slow.clone();
                async move {
                    if slow.load(std::sync::atomic::Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                    let content = if body["response_format"]["json_schema"]["name"] == "facts" {
                        serde_json::json!({ "facts": [
                            { "text": "Alice keeps bees", "messages": [0] },
                            { "text": "Alice sells honey at the market", "messages": [0] },
                            { "text": "Alice has twelve hives", "messages": [0] }
                        ]})
                    } else {
                        let decisions: Vec<serde_json::Value> = (0..3)
                            .map(|i| serde_json::json!({ "fact": i, "event": "ADD", "known": null, "reason": "new" }))
                            .collect();
                        serde_json::json!({ "decisions": decisions })
                    };
                    HttpResponse::Ok().json(serde_json::json!({
                        "choices": [{ "message": { "role": "assistant", "content": content.to_string() } }]
                    }))
                }
            }),
        )
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    format!("http://127.0.0.1:{port}/v1")
}

/// A job's effect and its end commit together: killed while a job runs,
/// the restarted server runs it again once its lease ends, and its
/// memories exist exactly once.
#[tokio::test]
async fn sigkill_during_a_job_runs_it_again_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let slow = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let url = fact_model(slow.clone());
    let env = [
        ("LOCI__INFER__LLM", "true".to_owned()),
        ("LOCI__INFER__URL", url),
        ("LOCI__INFER__TIMEOUT_MS", "60000".to_owned()),
        ("LOCI__INFER__JOB_LEASE_SECS", "2".to_owned()),
    ];
    let (mut child, port) = start_server_with(dir.path(), &env);
    let out =
        loci(dir.path()).args(["token", "--user", "alice", "--org", "acme", "--roles", "admin"]).output().unwrap();
    let token = text(&out).0.trim().to_owned();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let body =
        serde_json::json!({ "infer": true, "async": true, "text": "I keep bees and sell honey from my twelve hives." });
    let res = client.post(format!("{base}/api/v1/memories")).bearer_auth(&token).json(&body).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 202);
    let job: serde_json::Value = res.json().await.unwrap();
    let id = job["job_id"].as_str().unwrap().to_owned();
    let status = |base: String| {
        let (client, token, id) = (client.clone(), token.clone(), id.clone());
        async move {
            let job: serde_json::Value = client
                .get(format!("{base}/api/v1/memories/jobs/{id}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            job
        }
    };
    // Killed while the job waits for the model.
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(base.clone()).await["status"] != "running" {
        assert!(Instant::now() < deadline, "the job never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();

    slow.store(false, std::sync::atomic::Ordering::SeqCst);
    let (mut child, port) = start_server_with(dir.path(), &env);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let job = loop {
        let job = status(base.clone()).await;
        if job["status"] == "done" {
            break job;
        }
        assert!(Instant::now() < deadline, "the job never finished: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(job["attempts"], 2, "{job}");
    assert_eq!(job["result"]["engine"], "llm", "{job}");
    // A while later: still exactly one copy of each fact.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let list: serde_json::Value = client
        .get(format!("{base}/api/v1/memories?size=100"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut contents: Vec<&str> =
        list["items"].as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
    contents.sort_unstable();
    assert_eq!(contents, ["Alice has twelve hives", "Alice keeps bees", "Alice sells honey at the market"]);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Memories in a fresh embedded server, grown through REST; the server is
/// stopped (SIGTERM) before the data is moved.
async fn embedded_server_with_memories(dir: &std::path::Path, n: usize) {
    let (mut child, port) = start_server(dir);
    let out = loci(dir).args(["token", "--user", "alice", "--org", "acme", "--roles", "editor"]).output().unwrap();
    let token = text(&out).0.trim().to_owned();
    let client = reqwest::Client::new();
    for i in 0..n {
        let body = serde_json::json!({
            "text": format!("Note {i}: Alice Martin met Bob Stone about the Atlas release {}", i % 7),
            "metadata": { "categories": [format!("topic-{}", i % 3)] },
        });
        let res = client
            .post(format!("http://127.0.0.1:{port}/api/v1/memories"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 201);
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    child.wait().unwrap();
}

/// `loci backup` and `loci backup verify` as an operator runs them: a
/// verified archive exits 0, a damaged one exits 1 and says what is wrong.
#[tokio::test]
async fn backup_and_verify_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    embedded_server_with_memories(dir.path(), 30).await;
    let out = loci(dir.path()).args(["backup", "--output", "nightly.zip"]).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("backup written: nightly.zip") && stdout.contains("valkey"), "{stdout}");
    let out = loci(dir.path()).args(["backup", "--output", "nightly.zip"]).output().unwrap();
    assert!(!out.status.success(), "an archive is never overwritten");

    let out = loci(dir.path()).args(["backup", "verify", "nightly.zip"]).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("all 24 tables match the manifest") && stdout.contains("VERIFIED"), "{stdout}");

    // A directory: its newest loci-backup-*.zip; and a schedule that stopped.
    std::fs::copy(dir.path().join("nightly.zip"), dir.path().join("loci-backup-20261207T000000Z.zip")).unwrap();
    let out = loci(dir.path()).args(["backup", "verify", "."]).output().unwrap();
    let (stdout, _) = text(&out);
    assert!(out.status.success() && stdout.contains("loci-backup-20261207T000000Z.zip"), "{stdout}");
    let out = loci(dir.path()).args(["backup", "verify", ".", "--max-age-hours", "0"]).output().unwrap();
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("PROBLEM  stale"), "{stdout}");
    let out = loci(dir.path()).args(["backup", "verify", "missing.zip"]).output().unwrap();
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("cannot read it"), "{stdout}");

    let path = dir.path().join("nightly.zip");
    let mut bytes = std::fs::read(&path).unwrap();
    // Inside the compressed rows of the memories member (past its local
    // header, file name and zip64 extra field).
    let name = b"tables/memories.jsonl";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len() + 40;
    bytes[at] ^= 0xff;
    std::fs::write(dir.path().join("damaged.zip"), &bytes).unwrap();
    let out = loci(dir.path()).args(["backup", "verify", "damaged.zip", "--json"]).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["ok"], false);
    let problems = report["archive_problems"].to_string();
    assert!(problems.contains("memories"), "the damaged table is named: {report}");

    // Restored into a new data directory, with the indexes rebuilt: the
    // rows are sealed, so without the live keys nothing is restored...
    let out = loci(dir.path())
        .env("LOCI__DATA_DIR", dir.path().join("restored"))
        .args(["restore", "nightly.zip"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success() && stderr.contains("--keys-from"), "{stdout}\n{stderr}");
    // ...and with the master key and the database that holds the data keys,
    // everything is.
    let master = std::fs::read_to_string(dir.path().join("loci-data/keys/backup-master.key")).unwrap();
    let live = format!("sqlite://{}", dir.path().join("loci-data/loci.db").display());
    let out = loci(dir.path())
        .env("LOCI__DATA_DIR", dir.path().join("restored"))
        .env("LOCI__GDPR__MASTER_KEY", master.trim())
        .args(["restore", "nightly.zip", "--force", "--keys-from", &live])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("30 memories re-indexed"), "{stdout}");
    let out = loci(dir.path())
        .env("LOCI__DATA_DIR", dir.path().join("restored"))
        .args(["restore", "nightly.zip"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert!(!out.status.success() && stderr.contains("--force"), "{stderr}");
}

/// The embedded user moves to PostgreSQL with one command; killed mid-way,
/// the move resumes where it stopped and ends verified; run again, it has
/// nothing to do.
#[tokio::test]
async fn migrate_data_killed_midway_resumes_verified_and_then_has_nothing_to_do() {
    let dir = tempfile::tempdir().unwrap();
    embedded_server_with_memories(dir.path(), 120).await;
    let target = loci_stores::testing::TestDatabase::postgres().await;
    target.migrated().await.close().await.unwrap();
    let from = format!("sqlite://{}?mode=ro", dir.path().join("loci-data/loci.db").display());
    let to = target.maintenance_url().expose().to_owned();
    let checkpoint = dir.path().join("move.json");
    let run = || {
        let mut cmd = loci(dir.path());
        cmd.env("LOCI__DATA_DIR", dir.path().join("production-indexes")).args([
            "migrate-data",
            "--from",
            &from,
            "--to",
            &to,
            "--batch",
            "1",
            "--checkpoint",
            checkpoint.to_str().unwrap(),
        ]);
        cmd
    };
    let mut child = run().stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let copied = std::fs::read(&checkpoint)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|c| c["rows"]["memories"].as_u64())
            .unwrap_or(0);
        if copied >= 10 {
            break;
        }
        assert!(Instant::now() < deadline, "the move never reached the memories");
        assert!(child.try_wait().unwrap().is_none(), "the move ended before it could be killed");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(&checkpoint).unwrap()).unwrap();
    assert_eq!(state["verified"], false, "{state}");

    let out = run().output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("resumed after") && stdout.contains(": 25 tables, ") && stdout.contains(" rows match"),
        "{stdout}"
    );
    let out = run().output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("nothing to do"), "{stdout}");

    let db =
        loci_stores::Database::connect(&target.maintenance_url(), &loci_stores::PoolConfig::default()).await.unwrap();
    assert_eq!(db.count_all("memories").await.unwrap(), 120);
    assert_eq!(db.count_all("memory_categories").await.unwrap(), 120);
    db.close().await.unwrap();
}

/// `migrate down` first reverts inside a transaction it rolls back, to
/// report the tables and columns it would drop that hold data; it refuses
/// to lose them unless told to.
#[tokio::test]
async fn migrate_down_names_the_rows_at_risk_and_refuses_without_yes() {
    let dir = tempfile::tempdir().unwrap();
    embedded_server_with_memories(dir.path(), 12).await;
    let status = || text(&loci(dir.path()).args(["migrate", "status"]).output().unwrap()).0;
    let before = status();
    // Back through m20261207_000001_category_links, whose columns of
    // memory_categories hold a copy of each link's memory.
    let steps = before.lines().rev().position(|l| l.ends_with("m20261207_000001_category_links")).unwrap() + 1;
    let steps = steps.to_string();
    let out = loci(dir.path()).args(["migrate", "down", "--steps", &steps, "--check"]).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("at risk: 12 rows with a value in memory_categories.user_id"), "{stdout}");
    assert_eq!(status(), before, "a check changes nothing");
    let out = loci(dir.path()).args(["migrate", "down", "--steps", &steps]).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success() && stderr.contains("--yes"), "{stdout}\n{stderr}");
    assert_eq!(status(), before, "nothing was reverted");
    let out = loci(dir.path()).args(["migrate", "down", "--steps", &steps, "--yes"]).output().unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    assert_ne!(status(), before);
    let out = loci(dir.path()).args(["migrate", "up", "--verify"]).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("row counts unchanged"), "{stdout}");
}

/// The production example of deploy/ is a valid configuration once the
/// secrets it leaves to the environment are given.
#[test]
fn the_deploy_production_example_passes_config_check() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/loci.production.toml");
    let out = loci(dir.path())
        .env("LOCI_CONFIG", &example)
        .env("LOCI__DATABASE__URL", "postgres://loci_app@postgres:5432/loci")
        .env("LOCI__VALKEY__URL", "redis://valkey:6379")
        .args(["config", "check"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("profile production") && stdout.contains("# configuration OK"), "{stdout}");
}

/// `loci purge` runs the purge of deleted memories with the configured
/// retention (the purge itself: tests/api/gdpr.rs), and a retention out of
/// range is a configuration error.
#[tokio::test]
async fn purge_runs_with_the_configured_retention() {
    let dir = tempfile::tempdir().unwrap();
    embedded_server_with_memories(dir.path(), 3).await;
    let out = loci(dir.path()).env("LOCI__GDPR__DELETED_RETENTION_DAYS", "7").arg("purge").output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("purged 0 memories deleted more than 7 days ago"), "{stdout}");
    let out = loci(dir.path()).env("LOCI__GDPR__DELETED_RETENTION_DAYS", "0").arg("purge").output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("gdpr.deleted_retention_days"), "{stderr}");
}
