//! Load benchmark of the memories API on a realistic dataset.
//!
//! `cargo bench -p loci --bench api_load -- sqlite|postgres [BIG] [SMALL] [SECONDS] [--bulk] [--search] [--graph]`
//!
//! One org: a user with BIG memories (default 100,000) and nine more users
//! with SMALL each (default 10,000). By default the data is grown the way
//! users grow it: through `POST /api/v1/memories` on a fresh `loci serve`
//! (16 concurrent clients, indexing on), and measured right away, with only
//! the statistics the server gathers itself. `--bulk` seeds through the
//! store's bulk path instead (seconds, not minutes). Then each case runs for
//! SECONDS (default 10) with 32 concurrent connections: writes, reads by id
//! (also at 1,000 connections), list pages (first, one category, page 200 by
//! number and by cursor) and, with `--search` and the local model
//! (`~/.cache/loci-models/all-MiniLM-L6-v2`), lexical and hybrid search
//! twice: right after the growth, while the embedding indexer still works
//! through it, and once the indexers caught up. With `--graph` the memories
//! name people and projects (from pools of 1,200 and 300 names, three per
//! memory, with a structured category) and the graph and entity routes are
//! measured too: network, a path within 4 hops, aggregates, the entity list,
//! stats and centrality. Peak memory is the server's, sampled.

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

const ORG: &str = "bench";
const BIG_USER: &str = "bench-user";
/// The other users of the org.
const SMALL_USERS: usize = 9;

const WORDS: &[&str] = &[
    "deploy", "rollback", "schema", "index", "latency", "queue", "cache", "token", "tenant", "replica", "backup",
    "budget", "review", "incident", "runbook", "owner", "service", "gateway", "retry", "timeout",
];

fn sentence(i: usize) -> String {
    let w = |k: usize| WORDS[(i / k + k) % WORDS.len()];
    format!("Note {i}: the {} {} needs a {} before the {} ({})", w(1), w(3), w(7), w(11), i % 97)
}

const SYLLABLES: &[&str] = &["ka", "lo", "mi", "ren", "tor", "vu", "sa", "del", "qui", "bran", "ost", "fe"];
const PEOPLE: usize = 1_200;
const PROJECTS: usize = 300;
const CATEGORIES: &[&str] = &["decision", "convention", "architecture", "runbook", "glossary"];

/// A made-up capitalised name, distinct for each `n` below 12^3.
fn made_up_name(n: usize) -> String {
    let s = |k: usize| SYLLABLES[(n / SYLLABLES.len().pow(k as u32)) % SYLLABLES.len()];
    let name = format!("{}{}{}", s(0), s(1), s(2));
    let mut chars = name.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn person(i: usize) -> String {
    made_up_name(i % PEOPLE)
}

fn project(i: usize) -> String {
    format!("{} Service", made_up_name(PEOPLE + i % PROJECTS))
}

/// A memory naming two people and a project (with `--graph`).
fn graph_sentence(i: usize) -> String {
    let w = |k: usize| WORDS[(i / k + k) % WORDS.len()];
    format!(
        "Note {i}: {} works on the {} with {}; the {} needs a {} ({})",
        person(i.wrapping_mul(7919)),
        project(i.wrapping_mul(104_729)),
        person(i.wrapping_mul(31).wrapping_add(17)),
        w(3),
        w(7),
        i % 97
    )
}

fn small_user(t: usize) -> String {
    format!("user-{t}")
}

/// Seeds `count` memories for one user of the org through the store's bulk
/// path; returns every 97th id.
async fn seed(db: &Database, subject: &str, count: usize) -> Vec<MemoryId> {
    let org = OrgId::parse(ORG).unwrap();
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
    statuses: Vec<u16>,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Outcome {
    fn pct(&self, q: f64) -> f64 {
        let i = ((self.latencies.len() as f64 * q) as usize).min(self.latencies.len().saturating_sub(1));
        self.latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    }

    fn line(&self, name: &str) -> String {
        let mut statuses = self.statuses.clone();
        statuses.sort_unstable();
        statuses.dedup();
        format!(
            "{name:<46} {:>9.0} {:>9.2} {:>9.2} {:>9.2} {:>7} {}",
            self.ok as f64 / self.elapsed.as_secs_f64(),
            self.pct(0.5),
            self.pct(0.95),
            self.pct(0.99),
            self.errors,
            if statuses.is_empty() { String::new() } else { format!("{statuses:?}") }
        )
    }
}

type MakeRequest = Arc<dyn Fn(usize) -> reqwest::RequestBuilder + Send + Sync>;

/// `connections` clients sending `make(n)` in a loop for `duration`.
async fn load(connections: usize, duration: Duration, make: MakeRequest) -> Outcome {
    let started = Instant::now();
    let counter = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (make, counter) = (make.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors, mut statuses) = (Vec::new(), 0usize, Vec::new());
            while started.elapsed() < duration {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                match make(n).send().await {
                    Ok(res) if res.status().is_success() => {
                        let _ = res.bytes().await;
                        lat.push(t.elapsed());
                    }
                    Ok(res) => {
                        errors += 1;
                        statuses.push(res.status().as_u16());
                    }
                    Err(_) => errors += 1,
                }
            }
            (lat, errors, statuses)
        }));
    }
    let (mut latencies, mut errors, mut statuses) = (Vec::new(), 0, Vec::new());
    for t in tasks {
        let (lat, e, s) = t.await.unwrap();
        latencies.extend(lat);
        errors += e;
        statuses.extend(s);
    }
    latencies.sort();
    Outcome { ok: latencies.len(), errors, statuses, elapsed: started.elapsed(), latencies }
}

fn token(data: &std::path::Path, subject: &str, role: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_loci"))
        .args(["token", "--user", subject, "--org", ORG, "--roles", role, "--ttl", "4h"])
        .env_clear()
        .env("LOCI__DATA_DIR", data)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Grows the org through REST: 16 clients, the users' writes interleaved;
/// returns every 97th id of the big user and prints the ingest rate.
async fn grow(
    client: &reqwest::Client,
    base: &str,
    tokens: &[String],
    big: usize,
    small: usize,
    graph: bool,
) -> Vec<MemoryId> {
    // (user, sequence) in an order that keeps every user writing throughout.
    let mut plan = Vec::with_capacity(big + SMALL_USERS * small);
    let mut next = [0usize; SMALL_USERS + 1];
    while plan.len() < big + SMALL_USERS * small {
        for (u, written) in next.iter_mut().enumerate() {
            // The big user writes about as much as all the others together.
            let (turns, quota) = if u == 0 { (SMALL_USERS, big) } else { (1, small) };
            for _ in 0..turns {
                if *written < quota {
                    plan.push((u, *written));
                    *written += 1;
                }
            }
        }
    }
    let plan = Arc::new(plan);
    let cursor = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (plan, cursor, done, client, base, tokens) =
            (plan.clone(), cursor.clone(), done.clone(), client.clone(), base.to_owned(), tokens.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let n = cursor.fetch_add(1, Ordering::Relaxed);
                let Some(&(user, i)) = plan.get(n) else { break };
                let body = if graph {
                    serde_json::json!({
                        "text": graph_sentence(i),
                        "app": "bench",
                        "metadata": {"categories": [format!("c{}", i % 20)], "category": CATEGORIES[i % CATEGORIES.len()]}
                    })
                } else {
                    serde_json::json!({
                        "text": sentence(i),
                        "app": "bench",
                        "metadata": {"categories": [format!("c{}", i % 20)]}
                    })
                };
                let res = loop {
                    match client
                        .post(format!("{base}/api/v1/memories"))
                        .bearer_auth(&tokens[user])
                        .json(&body)
                        .send()
                        .await
                    {
                        Ok(res) if res.status().is_success() => break res,
                        Ok(res) if res.status().as_u16() == 503 => tokio::time::sleep(Duration::from_millis(50)).await,
                        Ok(res) => panic!("POST answered {}", res.status()),
                        Err(e) => panic!("POST failed: {e}"),
                    }
                };
                if user == 0 && i % 97 == 0 {
                    let v: serde_json::Value = res.json().await.unwrap();
                    ids.push(v["id"].as_str().unwrap().parse::<MemoryId>().unwrap());
                }
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                if d % 20_000 == 0 {
                    let s = started.elapsed().as_secs_f64();
                    println!("  grown {d} memories in {s:.0} s ({:.0}/s so far)", d as f64 / s);
                }
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    let total = big + SMALL_USERS * small;
    let s = started.elapsed().as_secs_f64();
    println!("grown {total} memories through REST in {s:.0} s: {:.0} memories/s", total as f64 / s);
    ids
}

/// Waits until the indexers completed every outbox row; the time it took.
async fn indexed(client: &reqwest::Client, base: &str, admin: &str) -> Duration {
    let started = Instant::now();
    loop {
        let res = client.get(format!("{base}/metrics")).bearer_auth(admin).send().await.unwrap();
        assert!(res.status().is_success(), "/metrics answered {}", res.status());
        let text = res.text().await.unwrap();
        let pending = text
            .lines()
            .find(|l| l.starts_with("loci_outbox_pending "))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok());
        if pending == Some(0.0) || started.elapsed() > Duration::from_secs(3600) {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// A search in `mode` with a distinct query each time, so no cache answers.
fn search_request(client: &reqwest::Client, base: &str, token: &str, mode: &'static str) -> MakeRequest {
    let (c, b, t) = (client.clone(), base.to_owned(), token.to_owned());
    Arc::new(move |n| {
        let query = format!("{} {} {}", WORDS[n % 20], WORDS[(n / 20) % 20], n % 97);
        c.post(format!("{b}/api/v1/search"))
            .bearer_auth(&t)
            .json(&serde_json::json!({"query": query, "mode": mode, "limit": 10}))
    })
}

fn main() {
    let flags: Vec<String> = std::env::args().skip(1).filter(|a| a.starts_with("--")).collect();
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let engine = match args.first().map(String::as_str) {
        Some("postgres") => Engine::Postgres,
        _ => Engine::Sqlite,
    };
    let big: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let small: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let seconds: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(10);
    let bulk = flags.iter().any(|f| f == "--bulk");
    let search = flags.iter().any(|f| f == "--search");
    let graph = flags.iter().any(|f| f == "--graph");
    assert!(!(graph && bulk), "--graph grows its data through REST: leave out --bulk");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    let test_db = rt.block_on(TestDatabase::new(engine));
    let started = Instant::now();
    let seeded_ids = rt.block_on(async {
        let db = Database::connect(&test_db.secret_url(), &PoolConfig::default()).await.unwrap();
        db.migrate_up().await.unwrap();
        let mut ids = Vec::new();
        if bulk {
            for t in 0..SMALL_USERS {
                seed(&db, &small_user(t), small).await;
            }
            ids = seed(&db, BIG_USER, big).await;
        }
        db.close().await.unwrap();
        ids
    });
    let seed_secs = started.elapsed().as_secs_f64();

    let data = tempfile::tempdir().unwrap();
    let model =
        std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache/loci-models/all-MiniLM-L6-v2"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_loci"));
    command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOCI__DATA_DIR", data.path())
        .env("LOCI__DATABASE__URL", &test_db.url)
        .env("LOCI__SERVER__PORT", "0")
        .env("LOCI__TELEMETRY__LOG_LEVEL", "warn,loci_http::server=info");
    match model.filter(|m| search && m.join("config.json").exists()) {
        Some(dir) => command.env("LOCI__EMBEDDINGS__MODEL_DIR", dir),
        None if search => panic!("--search needs the local model: scripts/fetch-model.sh"),
        // No model: the indexers keep the lexical and graph indexes only.
        None => command.env("LOCI__EMBEDDINGS__PROVIDER", "none"),
    };
    let mut server = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
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
    let mut tokens = vec![token(data.path(), BIG_USER, "editor")];
    tokens.extend((0..SMALL_USERS).map(|t| token(data.path(), &small_user(t), "editor")));
    let admin = token(data.path(), "bench-admin", "admin");
    let token = tokens[0].clone();

    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().pool_max_idle_per_host(1000).build().unwrap();
    let duration = Duration::from_secs(seconds);
    let total = big + SMALL_USERS * small;
    println!("api_load: {engine:?}, one org: {big} memories of the measured user + {SMALL_USERS} x {small}");
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
    let ids = if bulk {
        println!("seeded {total} memories through the store's bulk path in {seed_secs:.0} s");
        seeded_ids
    } else {
        rt.block_on(grow(&client, &base, &tokens, big, small, graph))
    };
    if std::env::var_os("LOCI_BENCH_HOLD").is_some() {
        // For profiling by hand: the server stays up until stdin closes.
        println!("holding: server pid {server_pid} at {base}\ntoken {token}\ndatabase {}", test_db.url);
        let _ = std::io::stdin().lines().count();
    }
    if search {
        // The embedding indexer is still working through the growth: search
        // while it does (compare with the idle figures below).
        for mode in ["lexical", "hybrid"] {
            let outcome = rt.block_on(load(32, duration, search_request(&client, &base, &token, mode)));
            println!("{}", outcome.line(&format!("POST /api/v1/search ({mode}, while indexing)")));
        }
    }
    let waited = rt.block_on(indexed(&client, &base, &admin));
    println!("indexers caught up {:.0} s after the growth", waited.as_secs_f64());
    println!(
        "{:<46} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "case (32 connections unless said)", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"
    );
    let ids = Arc::new(ids);
    let get = |path: String| -> MakeRequest {
        let (c, b, t) = (client.clone(), base.clone(), token.clone());
        Arc::new(move |_| c.get(format!("{b}{path}")).bearer_auth(&t))
    };
    // Page 200, or the big user's last page when it has fewer.
    let deep = (big / 50).clamp(1, 200);
    let cases: Vec<(String, usize, MakeRequest)> = {
        let (c, b, t) = (client.clone(), base.clone(), token.clone());
        let post: MakeRequest = Arc::new(move |n| {
            c.post(format!("{b}/api/v1/memories")).bearer_auth(&t).json(
                &serde_json::json!({"text": sentence(1_000_000 + n), "app": "bench", "metadata": {"categories": ["c1"]}}),
            )
        });
        let by_id = |connections: usize| -> (String, usize, MakeRequest) {
            let (c, b, t, ids) = (client.clone(), base.clone(), token.clone(), ids.clone());
            let name = if connections == 32 {
                "GET /api/v1/memories/{id}".to_owned()
            } else {
                format!("GET /api/v1/memories/{{id}}, {connections} connections")
            };
            (
                name,
                connections,
                Arc::new(move |n| c.get(format!("{b}/api/v1/memories/{}", ids[n % ids.len()])).bearer_auth(&t)),
            )
        };
        let (c, b, t) = (client.clone(), base.clone(), token.clone());
        let category: MakeRequest =
            Arc::new(move |n| c.get(format!("{b}/api/v1/memories?categories=c{}&size=50", n % 20)).bearer_auth(&t));
        let deep_cursor = rt.block_on(async {
            let mut path = "/api/v1/memories?size=50".to_owned();
            for _ in 1..deep {
                let v: serde_json::Value =
                    client.get(format!("{base}{path}")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
                path = format!("/api/v1/memories?size=50&cursor={}", v["next_cursor"].as_str().unwrap());
            }
            path
        });
        vec![
            ("POST /api/v1/memories".to_owned(), 32, post),
            by_id(32),
            by_id(1000),
            ("GET /api/v1/memories (page 1)".to_owned(), 32, get("/api/v1/memories?size=50".to_owned())),
            ("GET /api/v1/memories?categories=cN (page 1)".to_owned(), 32, category),
            (
                format!("GET /api/v1/memories (page {deep} by number)"),
                32,
                get(format!("/api/v1/memories?size=50&page={deep}")),
            ),
            (format!("GET /api/v1/memories (page {deep} by cursor)"), 32, get(deep_cursor)),
        ]
    };
    // Writes run last: the memories they add keep the indexers (with the
    // model, the embedder) busy on the same cores during whatever follows.
    let (writes, reads): (Vec<_>, Vec<_>) = cases.into_iter().partition(|(name, _, _)| name.starts_with("POST"));
    for (name, connections, make) in reads {
        let outcome = rt.block_on(load(connections, duration, make));
        println!("{}", outcome.line(&name));
    }
    if search {
        for mode in ["lexical", "hybrid"] {
            let outcome = rt.block_on(load(32, duration, search_request(&client, &base, &token, mode)));
            println!("{}", outcome.line(&format!("POST /api/v1/search ({mode})")));
        }
    }
    if graph {
        let name_of = |n: usize| person(n.wrapping_mul(7919)).to_lowercase();
        let (c, b, t) = (client.clone(), base.clone(), token.clone());
        let network: MakeRequest =
            Arc::new(move |n| c.get(format!("{b}/api/v1/entities/{}/network?limit=50", name_of(n))).bearer_auth(&t));
        let (c, b, t) = (client.clone(), base.clone(), token.clone());
        let path: MakeRequest = Arc::new(move |n| {
            let (from, to) = (person(n.wrapping_mul(7919)), project(n.wrapping_mul(15_485_863)));
            c.get(format!("{b}/api/v1/entities/path/{from}/{to}?max_hops=4")).bearer_auth(&t)
        });
        let graph_cases: Vec<(String, usize, MakeRequest)> = vec![
            ("GET /api/v1/entities/{name}/network".to_owned(), 32, network),
            ("GET /api/v1/entities/path/{a}/{b}?max_hops=4".to_owned(), 32, path),
            ("GET /api/v1/graph/aggregate/category".to_owned(), 32, get("/api/v1/graph/aggregate/category".to_owned())),
            ("GET /api/v1/graph/aggregate/app".to_owned(), 32, get("/api/v1/graph/aggregate/app".to_owned())),
            ("GET /api/v1/entities?limit=50".to_owned(), 8, get("/api/v1/entities?limit=50".to_owned())),
            ("GET /api/v1/graph/stats".to_owned(), 8, get("/api/v1/graph/stats".to_owned())),
            (
                "GET /api/v1/entities/analytics/centrality".to_owned(),
                4,
                get("/api/v1/entities/analytics/centrality?limit=20".to_owned()),
            ),
        ];
        for (name, connections, make) in graph_cases {
            let outcome = rt.block_on(load(connections, duration, make));
            let label = if connections == 32 { name } else { format!("{name}, {connections} connections") };
            println!("{}", outcome.line(&label));
        }
    }
    for (name, connections, make) in writes {
        let outcome = rt.block_on(load(connections, duration, make));
        println!("{}", outcome.line(&name));
    }
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
