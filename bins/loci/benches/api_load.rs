//! Load benchmark of the memories API on a realistic dataset.
//!
//! `cargo bench -p loci --bench api_load -- sqlite|postgres [BIG] [SMALL] [SECONDS]`
//! (defaults: 100000 memories in one tenant, 10 other tenants of 10000, 10 s
//! per case). Seeds the database through the store layer, starts the release
//! `loci serve` as its own process, drives it with 32 concurrent connections
//! for POST /api/v1/memories, GET /api/v1/memories/{id}, a filtered first
//! page of GET /api/v1/memories, its unfiltered first page and its page 200,
//! and reads the server's peak RSS (VmHWM).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use loci_core::model::{MemoryMetadata, NewMemory};
use loci_core::{MemoryId, MemoryState, OrgId};
use loci_stores::repo::memories::ImportedTimes;
use loci_stores::repo::{apps, memories, orgs, users};
use loci_stores::testing::{Engine, TestDatabase};
use loci_stores::{Database, PoolConfig};

const WORDS: &[&str] = &[
    "deploy", "rollback", "schema", "index", "latency", "queue", "cache", "token", "tenant", "replica", "backup",
    "budget", "review", "incident", "runbook", "owner", "service", "gateway", "retry", "timeout",
];

fn sentence(i: usize) -> String {
    let w = |k: usize| WORDS[(i / k + k) % WORDS.len()];
    format!("Note {i}: the {} {} needs a {} before the {} ({})", w(1), w(3), w(7), w(11), i % 97)
}

/// Seeds `count` memories for one user of `org` through the bulk store path;
/// returns every 97th id.
async fn seed(db: &Database, org: &str, subject: &str, count: usize) -> Vec<MemoryId> {
    let org = OrgId::parse(org).unwrap();
    let mut ids = Vec::new();
    let mut done = 0;
    while done < count {
        let tx = db.begin_tenant(&org).await.unwrap();
        orgs::ensure(&tx).await.unwrap();
        let user = users::ensure(&tx, subject).await.unwrap();
        let app = apps::ensure(&tx, user.id, "bench").await.unwrap();
        let end = (done + 5000).min(count);
        let batch = (done..end)
            .map(|i| {
                let t = chrono::Utc::now();
                let input = NewMemory {
                    user_id: user.id,
                    app_id: app.id,
                    content: sentence(i),
                    metadata: MemoryMetadata::default(),
                    categories: vec![format!("c{}", i % 20)],
                };
                let times = ImportedTimes {
                    state: MemoryState::Active,
                    created_at: t,
                    updated_at: t,
                    archived_at: None,
                    deleted_at: None,
                };
                (input, times)
            })
            .collect();
        let created = memories::create_many(&tx, batch).await.unwrap();
        tx.commit().await.unwrap();
        ids.extend(created.into_iter().step_by(97));
        done = end;
    }
    ids
}

struct Outcome {
    ok: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Outcome {
    fn line(&self, name: &str) -> String {
        let pct = |q: f64| {
            let i = ((self.latencies.len() as f64 * q) as usize).min(self.latencies.len().saturating_sub(1));
            self.latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        format!(
            "{name:<40} {:>9.0} {:>9.2} {:>9.2} {:>7}",
            self.ok as f64 / self.elapsed.as_secs_f64(),
            pct(0.5),
            pct(0.99),
            self.errors
        )
    }
}

async fn load(
    client: &reqwest::Client,
    duration: Duration,
    make: Arc<dyn Fn(usize) -> reqwest::RequestBuilder + Send + Sync>,
) -> Outcome {
    let started = Instant::now();
    let counter = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (make, counter, errors) = (make.clone(), counter.clone(), errors.clone());
        let _ = client;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while started.elapsed() < duration {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                match make(n).send().await {
                    Ok(res) if res.status().is_success() => {
                        let _ = res.bytes().await;
                        lat.push(t.elapsed());
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            lat
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    latencies.sort();
    Outcome { ok: latencies.len(), errors: errors.load(Ordering::Relaxed), elapsed: started.elapsed(), latencies }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let engine = match args.first().map(String::as_str) {
        Some("postgres") => Engine::Postgres,
        _ => Engine::Sqlite,
    };
    let big: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let small: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let seconds: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(10);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    let test_db = rt.block_on(TestDatabase::new(engine));
    let started = Instant::now();
    let ids = rt.block_on(async {
        let db = Database::connect(&test_db.secret_url(), &PoolConfig::default()).await.unwrap();
        db.migrate_up().await.unwrap();
        for t in 0..10 {
            seed(&db, &format!("bench-small-{t}"), "someone", small).await;
        }
        let ids = seed(&db, "bench-big", "bench-user", big).await;
        db.close().await.unwrap();
        ids
    });
    let seeded = big + 10 * small;
    let seed_secs = started.elapsed().as_secs_f64();

    let data = tempfile::tempdir().unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_loci"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOCI__DATA_DIR", data.path())
        .env("LOCI__DATABASE__URL", &test_db.url)
        .env("LOCI__SERVER__PORT", "0")
        .env("LOCI__TELEMETRY__LOG_LEVEL", "warn,loci_http::server=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let port = loop {
        let line = lines.next().expect("server output").unwrap();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
            && v["message"] == "loci-api listening"
        {
            break v["port"].as_u64().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let token = String::from_utf8(
        Command::new(env!("CARGO_BIN_EXE_loci"))
            .args(["token", "--user", "bench-user", "--org", "bench-big", "--roles", "editor", "--ttl", "2h"])
            .env_clear()
            .env("LOCI__DATA_DIR", data.path())
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();

    let base = format!("http://127.0.0.1:{port}");
    if std::env::var_os("LOCI_BENCH_HOLD").is_some() {
        // For profiling by hand: the seeded server stays up until stdin closes.
        println!("holding: server pid {} at {base}\ntoken {token}\ndatabase {}", server.id(), test_db.url);
        let _ = std::io::stdin().lines().count();
    }
    let client = reqwest::Client::builder().pool_max_idle_per_host(32).build().unwrap();
    let duration = Duration::from_secs(seconds);
    println!(
        "api_load: {engine:?}, {seeded} memories ({big} in the measured tenant + 10 x {small}), seeded in {seed_secs:.0} s"
    );
    println!("{:<40} {:>9} {:>9} {:>9} {:>7}", "case (32 connections)", "req/s", "p50 ms", "p99 ms", "errors");
    // Peak anonymous memory (heap) by sampling: VmHWM also counts the SQLite
    // file's pages once per memory-mapping reader connection.
    let server_pid = server.id();
    let peak_anon = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let peak_anon = peak_anon.clone();
        std::thread::spawn(move || {
            while let Ok(status) = std::fs::read_to_string(format!("/proc/{server_pid}/status")) {
                let kb = status
                    .lines()
                    .find(|l| l.starts_with("RssAnon:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                peak_anon.fetch_max(kb, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let results = rt.block_on(async {
        let (c, b, t) = (client.clone(), base.clone(), token.clone());
        let post = load(
            &client,
            duration,
            Arc::new(move |n| {
                c.post(format!("{b}/api/v1/memories"))
                    .bearer_auth(&t)
                    .json(&serde_json::json!({"text": sentence(1_000_000 + n), "app": "bench", "metadata": {"categories": ["c1"]}}))
            }),
        )
        .await;
        let (c, b, t, ids) = (client.clone(), base.clone(), token.clone(), Arc::new(ids));
        let get = load(
            &client,
            duration,
            Arc::new(move |n| c.get(format!("{b}/api/v1/memories/{}", ids[n % ids.len()])).bearer_auth(&t)),
        )
        .await;
        let (c, b, t) = (client.clone(), base.clone(), token.clone());
        let list = load(
            &client,
            duration,
            Arc::new(move |n| {
                c.get(format!("{b}/api/v1/memories?categories=c{}&size=50", n % 20)).bearer_auth(&t)
            }),
        )
        .await;
        let (c, b, t) = (client.clone(), base.clone(), token.clone());
        let first = load(&client, duration, Arc::new(move |_| c.get(format!("{b}/api/v1/memories?size=50")).bearer_auth(&t)))
            .await;
        let (c, b, t) = (client.clone(), base.clone(), token.clone());
        let deep = load(
            &client,
            duration,
            Arc::new(move |_| c.get(format!("{b}/api/v1/memories?size=50&page=200")).bearer_auth(&t)),
        )
        .await;
        (post, get, list, first, deep)
    });
    println!("{}", results.0.line("POST /api/v1/memories"));
    println!("{}", results.1.line("GET /api/v1/memories/{id}"));
    println!("{}", results.2.line("GET /api/v1/memories?categories=cN (page 1)"));
    println!("{}", results.3.line("GET /api/v1/memories (page 1)"));
    println!("{}", results.4.line("GET /api/v1/memories (page 200)"));
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.id())).unwrap_or_default();
    let peak = status.lines().find(|l| l.starts_with("VmHWM")).unwrap_or("VmHWM: unknown").to_owned();
    println!(
        "server peak memory: {} kB anonymous (heap), {} resident incl. mapped files",
        peak_anon.load(Ordering::Relaxed),
        peak.trim_start_matches("VmHWM:").trim()
    );
    let _ = server.kill();
    let _ = server.wait();
    let _ = sampler.join();
}
