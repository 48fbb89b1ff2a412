//! Requests per second of an unauthenticated GET (/health/live) against
//! authenticated GETs (/api/v1/whoami with a Bearer token, and with DPoP),
//! i.e. the auth overhead as a ratio, under the same local load.
//!
//! `cargo bench -p loci-api --bench http_auth [-- SECONDS CONCURRENCY]`
//! (default 10 s, 32 concurrent connections). The server runs in-process with
//! one worker; the client shares the machine, so absolute numbers are a floor.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use loci_http::{Application, HttpState};
use loci_security::MintRequest;
use loci_security::testing::TestKey;
use loci_settings::Settings;

struct Outcome {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Outcome {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&self, q: f64) -> f64 {
        let i = ((self.latencies.len() as f64 * q) as usize).min(self.latencies.len().saturating_sub(1));
        self.latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    }
}

/// Gives the headers of the next request, or `None` to stop.
type NextHeaders = dyn Fn() -> Option<Vec<(&'static str, String)>> + Send + Sync;

/// Runs `concurrency` loops for `duration`; `next` gives each request's
/// headers (None ends the run early, e.g. when pre-made proofs run out).
async fn load(
    client: &reqwest::Client,
    url: &str,
    duration: Duration,
    concurrency: usize,
    next: Arc<NextHeaders>,
) -> Outcome {
    let started = Instant::now();
    let errors = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, next, errors) = (client.clone(), url.to_owned(), next.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while started.elapsed() < duration {
                let Some(headers) = next() else { break };
                let mut req = client.get(&url);
                for (name, value) in headers {
                    req = req.header(name, value);
                }
                let t = Instant::now();
                match req.send().await {
                    Ok(res) if res.status().is_success() => {
                        let _ = res.bytes().await;
                        latencies.push(t.elapsed());
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Outcome { requests: latencies.len(), errors: errors.load(Ordering::Relaxed), elapsed, latencies }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let seconds: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(10);
    let concurrency: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(32);
    let duration = Duration::from_secs(seconds);

    let data = tempfile::tempdir().unwrap();
    let mut settings = Settings { data_dir: data.path().to_path_buf(), ..Settings::default() };
    settings.server.port = 0;
    settings.server.workers = 1;
    settings.telemetry.log_level = "warn".into();
    settings.dpop.replay_cache_capacity = 10_000_000;

    // The server gets its own runtime thread (actix system); the client runs here.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let state = HttpState::init(settings).await.unwrap();
            let app = Application::build(state, vec![loci_api::mount()]).unwrap();
            tx.send((app.port(), app.state().clone())).unwrap();
            app.run_until_stopped().await.unwrap();
        });
    });
    let (port, state) = rx.recv().unwrap();
    let issuer = state.security.local_issuer.clone().unwrap();
    let mint = |jkt: Option<String>| {
        issuer
            .mint(&MintRequest {
                issuer: "loci-local".into(),
                audience: "loci".into(),
                subject: "bench".into(),
                org_id: "bench".into(),
                scopes: vec!["memories:read".into()],
                roles: vec![],
                grants: vec![],
                client_id: None,
                ttl: Duration::from_secs(3600),
                dpop_jkt: jkt,
            })
            .unwrap()
    };
    let bearer = mint(None);
    let proof_key = TestKey::es256(None);
    let bound = mint(Some(proof_key.thumbprint()));
    let base = format!("http://127.0.0.1:{port}");

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();
    println!("http_auth: {seconds} s per case, {concurrency} connections, 1 server worker, client on the same machine");
    println!("{:<34} {:>10} {:>9} {:>9} {:>7}", "case", "req/s", "p50 ms", "p99 ms", "errors");

    let live =
        rt.block_on(load(&client, &format!("{base}/health/live"), duration, concurrency, Arc::new(|| Some(vec![]))));
    let auth_header = format!("Bearer {bearer}");
    let bearer_run = rt.block_on(load(
        &client,
        &format!("{base}/api/v1/whoami"),
        duration,
        concurrency,
        Arc::new(move || Some(vec![("authorization", auth_header.clone())])),
    ));
    // DPoP proofs are made before the run so signing does not load the client.
    let whoami = format!("{base}/api/v1/whoami");
    let budget = ((bearer_run.rps() * seconds as f64) as usize).clamp(1_000, 200_000);
    let proofs: Arc<Vec<String>> =
        Arc::new((0..budget).map(|_| proof_key.proof("GET", &whoami, Some(&bound))).collect());
    let cursor = Arc::new(AtomicUsize::new(0));
    let dpop_header = format!("DPoP {bound}");
    let dpop_run = rt.block_on(load(
        &client,
        &whoami,
        duration,
        concurrency,
        Arc::new(move || {
            let i = cursor.fetch_add(1, Ordering::Relaxed);
            proofs.get(i).map(|p| vec![("authorization", dpop_header.clone()), ("dpop", p.clone())])
        }),
    ));
    for (name, o) in [
        ("GET /health/live (no auth)", &live),
        ("GET /api/v1/whoami (Bearer EdDSA)", &bearer_run),
        ("GET /api/v1/whoami (DPoP ES256)", &dpop_run),
    ] {
        println!("{name:<34} {:>10.0} {:>9.2} {:>9.2} {:>7}", o.rps(), o.pct(0.5), o.pct(0.99), o.errors);
    }
    println!(
        "auth overhead: Bearer keeps {:.0}% of /health/live throughput, DPoP {:.0}%",
        100.0 * bearer_run.rps() / live.rps(),
        100.0 * dpop_run.rps() / live.rps()
    );
}
