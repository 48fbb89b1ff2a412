//! Time to authenticate one request: ES256 access token + ES256 DPoP proof +
//! replay check, with the in-process replay cache and with Valkey.
//!
//! `cargo bench -p loci-api --bench authenticate` prints criterion's estimate
//! and then, from a separate pass of single timed calls, p50/p99.
//! Valkey comes from LOCI_TEST_VALKEY_URL (default redis://127.0.0.1:6379).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion};
use loci_security::testing::{TestKey, claims, jwks};
use loci_security::{AuthRequest, Authenticator, AuthenticatorConfig, InMemoryReplayCache, ReplayCache};
use loci_settings::{Secret, Settings, ValkeySettings};
use loci_stores::{Valkey, ValkeyReplayCache};

const URL: &str = "https://api.loci.test/api/v1/memories";

struct Setup {
    auth: Authenticator,
    token: String,
    proof_key: TestKey,
    _dir: tempfile::TempDir,
}

async fn setup(replay: Arc<dyn ReplayCache>) -> Setup {
    let signing = TestKey::es256(Some("bench"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks(&[&signing]).to_string()).unwrap();
    let mut s = Settings::default();
    s.auth.issuer = Some("https://idp.loci.test/".into());
    s.auth.audience = vec!["loci-api".into()];
    s.auth.jwks_path = Some(path);
    let auth = Authenticator::new(AuthenticatorConfig::from_settings(&s, None).await.unwrap(), replay);
    let proof_key = TestKey::es256(None);
    let mut c = claims("https://idp.loci.test/", "loci-api");
    c["exp"] = serde_json::json!(chrono_now() + 3600);
    c["cnf"] = serde_json::json!({ "jkt": proof_key.thumbprint() });
    let token = signing.token(&c);
    Setup { auth, token, proof_key, _dir: dir }
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

async fn authenticate(s: &Setup, authorization: &str, proof: &str) {
    let req = AuthRequest {
        method: "GET",
        url: URL,
        authorization: Some(authorization),
        dpop: &[proof],
        resource_metadata: None,
    };
    s.auth.authenticate(&req).await.expect("valid request");
}

/// p50/p99 of single calls (criterion reports central estimates only).
fn percentiles(rt: &tokio::runtime::Runtime, s: &Setup, name: &str, n: usize) {
    let authorization = format!("DPoP {}", s.token);
    let proofs: Vec<String> = (0..n).map(|_| s.proof_key.proof("GET", URL, Some(&s.token))).collect();
    let mut samples: Vec<Duration> = Vec::with_capacity(n);
    rt.block_on(async {
        for proof in &proofs {
            let started = Instant::now();
            authenticate(s, &authorization, proof).await;
            samples.push(started.elapsed());
        }
    });
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{name}: n={n} p50={:.1} µs p99={:.1} µs max={:.1} µs",
        at(0.50).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        at(1.0).as_secs_f64() * 1e6
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut criterion = Criterion::default().configure_from_args().measurement_time(Duration::from_secs(5));

    let in_process = rt.block_on(setup(Arc::new(InMemoryReplayCache::new(5_000_000))));
    let valkey_url = std::env::var("LOCI_TEST_VALKEY_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let settings = ValkeySettings { key_prefix: "loci-bench".into(), ..ValkeySettings::default() };
    let valkey = rt
        .block_on(Valkey::connect(&Secret::new(valkey_url.clone()), &settings))
        .unwrap_or_else(|e| panic!("Valkey at {valkey_url} is required for this benchmark: {e}"));
    let with_valkey = rt.block_on(setup(Arc::new(ValkeyReplayCache::new(valkey))));

    for (name, s) in [("in_process_replay_cache", &in_process), ("valkey_replay_cache", &with_valkey)] {
        let authorization = format!("DPoP {}", s.token);
        criterion.bench_function(&format!("authenticate_es256_dpop/{name}"), |b| {
            b.to_async(&rt).iter_batched(
                || s.proof_key.proof("GET", URL, Some(&s.token)),
                |proof| {
                    let authorization = authorization.clone();
                    async move { authenticate(s, &authorization, &proof).await }
                },
                BatchSize::SmallInput,
            )
        });
    }
    criterion.final_summary();
    percentiles(&rt, &in_process, "authenticate_es256_dpop/in_process_replay_cache", 5_000);
    percentiles(&rt, &with_valkey, "authenticate_es256_dpop/valkey_replay_cache", 5_000);
}
