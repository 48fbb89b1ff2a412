//! `HttpEmbedder` against a small OpenAI-style server spun up in each test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use loci_embed::{BreakerConfig, BreakerState, EmbedError, Embedder, HttpConfig, HttpEmbedder, RetryPolicy};
use loci_settings::Secret;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    authorization: Option<String>,
    body: Value,
}

/// What the server answers.
struct Reply {
    status: u16,
    body: String,
    delay: Duration,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Self { status, body: body.to_string(), delay: Duration::ZERO }
    }

    fn slow(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Handler = dyn Fn(usize, &Value) -> Reply + Send + Sync;

struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    /// Serves each request with `handler(request number from 0, JSON body)`, one request per
    /// connection (`Connection: close`).
    async fn start(handler: impl Fn(usize, &Value) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let count = Arc::new(AtomicUsize::new(0));
        let seen2 = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (handler, seen, count) = (Arc::clone(&handler), Arc::clone(&seen2), Arc::clone(&count));
                tokio::spawn(async move { serve(socket, &*handler, &seen, &count).await });
            }
        });
        Self { addr, seen }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn requests(&self) -> Vec<Seen> {
        self.seen.lock().await.clone()
    }
}

async fn serve(mut socket: TcpStream, handler: &Handler, seen: &Mutex<Vec<Seen>>, count: &AtomicUsize) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while buf.len() < head_end + length {
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body: Value = serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or(Value::Null);
    let path = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
    seen.lock().await.push(Seen { path, authorization: header("authorization"), body: body.clone() });

    let n = count.fetch_add(1, Ordering::SeqCst);
    let reply = handler(n, &body);
    tokio::time::sleep(reply.delay).await;
    let response = format!(
        "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
        reply.status,
        reply.body.len(),
        reply.body
    );
    let _ = socket.write_all(response.as_bytes()).await;
    let _ = socket.shutdown().await;
}

/// An OpenAI answer for `body.input`, with `dims` components per vector: text i gets
/// `[i + 1, 1, 0, ...]` (not normalised), and the items come in reverse order.
fn answer(body: &Value, dims: usize) -> Reply {
    let inputs = body["input"].as_array().cloned().unwrap_or_default();
    let data: Vec<Value> = (0..inputs.len())
        .rev()
        .map(|i| {
            let mut v = vec![0.0f32; dims];
            v[0] = (i + 1) as f32;
            v[1] = 1.0;
            json!({"object": "embedding", "index": i, "embedding": v})
        })
        .collect();
    Reply::json(200, json!({"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": 1}}))
}

fn config(url: String) -> HttpConfig {
    HttpConfig {
        base_url: url,
        api_key: None,
        model: "text-embedding-test".into(),
        dimensions: 3,
        timeout: Duration::from_secs(5),
        batch_size: 16,
        retry: RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(40),
        },
        breaker: BreakerConfig { failure_threshold: 100, cool_down: Duration::from_secs(60) },
    }
}

fn texts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("text {i}")).collect()
}

fn unit(i: usize) -> Vec<f32> {
    let x = (i + 1) as f32;
    let n = (x * x + 1.0).sqrt();
    vec![x / n, 1.0 / n, 0.0]
}

fn assert_close(got: &[Vec<f32>], want: &[Vec<f32>]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!(g.iter().zip(w).all(|(a, b)| (a - b).abs() < 1e-6), "{got:?} != {want:?}");
    }
}

#[tokio::test]
async fn vectors_come_back_in_input_order_normalised_with_the_key_and_model() {
    let server = Server::start(|_, body| answer(body, 3)).await;
    let e =
        HttpEmbedder::new(HttpConfig { api_key: Some(Secret::new("sk-test-123")), ..config(server.url()) }).unwrap();
    assert_eq!(e.endpoint(), format!("{}/v1/embeddings", server.url()));
    let got = e.embed(&texts(3)).await.unwrap();
    assert_close(&got, &[unit(0), unit(1), unit(2)]);

    let seen = server.requests().await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/embeddings");
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer sk-test-123"));
    assert_eq!(seen[0].body, json!({"model": "text-embedding-test", "input": ["text 0", "text 1", "text 2"]}));
    assert_eq!(e.breaker_state(), BreakerState::Closed);
}

#[tokio::test]
async fn a_base_url_ending_in_v1_works_and_no_key_sends_no_header() {
    let server = Server::start(|_, body| answer(body, 3)).await;
    let e = HttpEmbedder::new(config(format!("{}/v1/", server.url()))).unwrap();
    e.embed_one("q").await.unwrap();
    let seen = server.requests().await;
    assert_eq!(seen[0].path, "/v1/embeddings");
    assert_eq!(seen[0].authorization, None);
}

#[tokio::test]
async fn long_inputs_are_split_into_batches() {
    let server = Server::start(|_, body| answer(body, 3)).await;
    let e = HttpEmbedder::new(HttpConfig { batch_size: 2, ..config(server.url()) }).unwrap();
    let got = e.embed(&texts(5)).await.unwrap();
    // Each batch numbers its own inputs from 0.
    assert_close(&got, &[unit(0), unit(1), unit(0), unit(1), unit(0)]);
    let sizes: Vec<usize> =
        server.requests().await.iter().map(|s| s.body["input"].as_array().map_or(0, Vec::len)).collect();
    assert_eq!(sizes, [2, 2, 1]);
}

#[tokio::test]
async fn a_503_is_retried_then_succeeds() {
    let server = Server::start(
        |n, body| {
            if n == 0 { Reply::json(503, json!({"error": "overloaded"})) } else { answer(body, 3) }
        },
    )
    .await;
    let e = HttpEmbedder::new(config(server.url())).unwrap();
    let got = e.embed(&texts(2)).await.unwrap();
    assert_close(&got, &[unit(0), unit(1)]);
    assert_eq!(server.requests().await.len(), 2);
}

#[tokio::test]
async fn a_429_is_retried() {
    let server =
        Server::start(|n, body| if n == 0 { Reply::json(429, json!({"error": "slow down"})) } else { answer(body, 3) })
            .await;
    let e = HttpEmbedder::new(config(server.url())).unwrap();
    e.embed(&texts(1)).await.unwrap();
    assert_eq!(server.requests().await.len(), 2);
}

#[tokio::test]
async fn a_4xx_is_not_retried() {
    let server = Server::start(|_, _| Reply::json(400, json!({"error": {"message": "unknown model"}}))).await;
    let e = HttpEmbedder::new(config(server.url())).unwrap();
    match e.embed(&texts(1)).await {
        Err(EmbedError::Rejected { status: 400, message }) => assert!(message.contains("unknown model"), "{message}"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(server.requests().await.len(), 1);
    assert_eq!(e.breaker_state(), BreakerState::Closed, "a 4xx shows the endpoint is up");
}

#[tokio::test]
async fn repeated_5xx_give_unavailable_after_the_retries() {
    let server = Server::start(|_, _| Reply::json(500, json!({}))).await;
    let e = HttpEmbedder::new(config(server.url())).unwrap();
    let err = e.embed(&texts(1)).await.unwrap_err();
    assert!(matches!(&err, EmbedError::Unavailable(m) if m.contains("500") && m.contains("3 attempts")), "{err}");
    assert!(err.is_transient());
    assert_eq!(server.requests().await.len(), 3);
}

#[tokio::test]
async fn the_circuit_opens_fails_fast_then_closes_after_a_good_trial() {
    let healthy = Arc::new(AtomicBool::new(false));
    let h = Arc::clone(&healthy);
    let server = Server::start(
        move |_, body| if h.load(Ordering::SeqCst) { answer(body, 3) } else { Reply::json(502, json!({})) },
    )
    .await;
    let e = HttpEmbedder::new(HttpConfig {
        retry: RetryPolicy { max_retries: 5, ..config(String::new()).retry },
        breaker: BreakerConfig { failure_threshold: 3, cool_down: Duration::from_millis(300) },
        ..config(server.url())
    })
    .unwrap();

    // The retries stop as soon as the breaker opens.
    let err = e.embed(&texts(1)).await.unwrap_err();
    assert!(matches!(err, EmbedError::Unavailable(_)), "{err}");
    assert_eq!(server.requests().await.len(), 3);
    assert_eq!(e.breaker_state(), BreakerState::Open);

    // Open: no request reaches the server, the error comes at once.
    let t = Instant::now();
    let err = e.embed(&texts(1)).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());
    assert!(matches!(&err, EmbedError::Unavailable(m) if m.contains("circuit breaker open")), "{err}");
    assert_eq!(server.requests().await.len(), 3);

    // After the cool-down one trial goes through; it succeeds and closes the breaker.
    healthy.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(e.breaker_state(), BreakerState::HalfOpen);
    e.embed(&texts(2)).await.unwrap();
    assert_eq!(e.breaker_state(), BreakerState::Closed);
    assert_eq!(server.requests().await.len(), 4);
}

#[tokio::test]
async fn a_failed_trial_opens_the_circuit_again() {
    let server = Server::start(|_, _| Reply::json(503, json!({}))).await;
    let e = HttpEmbedder::new(HttpConfig {
        retry: RetryPolicy { max_retries: 0, ..config(String::new()).retry },
        breaker: BreakerConfig { failure_threshold: 1, cool_down: Duration::from_millis(200) },
        ..config(server.url())
    })
    .unwrap();
    assert!(e.embed(&texts(1)).await.is_err());
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(e.embed(&texts(1)).await.is_err()); // the trial
    assert_eq!(server.requests().await.len(), 2);
    assert_eq!(e.breaker_state(), BreakerState::Open);
    let err = e.embed(&texts(1)).await.unwrap_err();
    assert!(matches!(&err, EmbedError::Unavailable(m) if m.contains("circuit breaker open")), "{err}");
    assert_eq!(server.requests().await.len(), 2);
}

#[tokio::test]
async fn wrong_dimensions_are_an_error() {
    let server = Server::start(|_, body| answer(body, 4)).await;
    let e = HttpEmbedder::new(config(server.url())).unwrap();
    assert!(matches!(e.embed(&texts(2)).await, Err(EmbedError::DimensionMismatch { expected: 3, got: 4 })));
    assert_eq!(server.requests().await.len(), 1, "not retried");
}

#[tokio::test]
async fn a_garbled_answer_is_a_bad_response_and_not_retried() {
    let server =
        Server::start(|_, _| Reply { status: 200, body: "<html>oops</html>".into(), delay: Duration::ZERO }).await;
    let e = HttpEmbedder::new(config(server.url())).unwrap();
    assert!(matches!(e.embed(&texts(1)).await, Err(EmbedError::BadResponse(_))));
    assert_eq!(server.requests().await.len(), 1);
}

#[tokio::test]
async fn a_timeout_is_retried() {
    let server = Server::start(|n, body| {
        let reply = answer(body, 3);
        if n == 0 { reply.slow(Duration::from_secs(3)) } else { reply }
    })
    .await;
    let e = HttpEmbedder::new(HttpConfig { timeout: Duration::from_millis(300), ..config(server.url()) }).unwrap();
    let t = Instant::now();
    let got = e.embed(&texts(1)).await.unwrap();
    assert_close(&got, &[unit(0)]);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(server.requests().await.len(), 2);
}

#[tokio::test]
async fn a_timeout_without_retries_is_unavailable_within_the_timeout() {
    let server = Server::start(|_, body| answer(body, 3).slow(Duration::from_secs(3))).await;
    let e = HttpEmbedder::new(HttpConfig {
        timeout: Duration::from_millis(300),
        retry: RetryPolicy { max_retries: 0, ..config(String::new()).retry },
        ..config(server.url())
    })
    .unwrap();
    let t = Instant::now();
    let err = e.embed(&texts(1)).await.unwrap_err();
    assert!(matches!(&err, EmbedError::Unavailable(m) if m.contains("timed out")), "{err}");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

#[tokio::test]
async fn a_closed_port_is_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let e = HttpEmbedder::new(config(format!("http://{addr}"))).unwrap();
    let err = e.embed(&texts(1)).await.unwrap_err();
    assert!(matches!(&err, EmbedError::Unavailable(m) if m.contains("3 attempts")), "{err}");
}

#[tokio::test]
async fn empty_texts_are_refused_before_any_request() {
    let server = Server::start(|_, body| answer(body, 3)).await;
    let e = HttpEmbedder::new(config(server.url())).unwrap();
    assert!(matches!(e.embed(&["ok".into(), "".into()]).await, Err(EmbedError::InvalidInput(_))));
    assert!(e.embed(&[]).await.unwrap().is_empty());
    assert!(server.requests().await.is_empty());
}

#[test]
fn the_api_key_never_shows_in_debug_output() {
    let e = HttpEmbedder::new(HttpConfig {
        api_key: Some(Secret::new("sk-very-secret")),
        ..config("http://127.0.0.1:9".into())
    })
    .unwrap();
    let debug = format!("{e:?}");
    assert!(!debug.contains("sk-very-secret") && debug.contains("[REDACTED]"), "{debug}");
}

// ---- HTTP rerankers, against the same server speaking Cohere's and TEI's rerank protocols.

fn reranker(url: String, api: loci_settings::RerankApi) -> loci_embed::HttpReranker {
    loci_embed::HttpReranker::new(&url, api, "rerank-test".into(), Some(Secret::new("rk-1")), Duration::from_secs(2))
        .unwrap()
        .with_retry(RetryPolicy {
            max_retries: 1,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(10),
        })
}

/// A recorded Cohere `/v1/rerank` answer: results sorted by relevance (the
/// protocol's order), each naming its input index; the relevance of a
/// document is the share of the query's words it contains.
fn cohere_answer(body: &Value) -> Reply {
    let query: Vec<String> =
        body["query"].as_str().unwrap_or_default().split_whitespace().map(str::to_lowercase).collect();
    let docs = body["documents"].as_array().cloned().unwrap_or_default();
    let mut results: Vec<(usize, f64)> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let text = d.as_str().unwrap_or_default().to_lowercase();
            (i, query.iter().filter(|w| text.contains(w.as_str())).count() as f64 / query.len().max(1) as f64)
        })
        .collect();
    results.sort_by(|a, b| b.1.total_cmp(&a.1));
    let results: Vec<Value> = results.iter().map(|(i, s)| json!({"index": i, "relevance_score": s})).collect();
    Reply::json(200, json!({"id": "r-1", "results": results, "meta": {"billed_units": {"search_units": 1}}}))
}

#[tokio::test]
async fn cohere_rerank_scores_come_back_in_input_order_with_key_and_model() {
    use loci_embed::Reranker;
    let server = Server::start(|_, body| cohere_answer(body)).await;
    let r = reranker(server.url(), loci_settings::RerankApi::Cohere);
    let docs = vec!["nothing here".to_owned(), "redis cache eviction".to_owned(), "redis".to_owned()];
    let scores = r.score("redis eviction", &docs).await.unwrap();
    assert_eq!(scores, vec![0.0, 1.0, 0.5]);
    let seen = server.requests().await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/rerank");
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer rk-1"));
    assert_eq!(seen[0].body["model"], "rerank-test");
    assert_eq!(seen[0].body["top_n"], 3);
    assert!(r.score("redis", &[]).await.unwrap().is_empty(), "no documents, no request");
    assert_eq!(server.requests().await.len(), 1);
}

#[tokio::test]
async fn tei_rerank_is_spoken_too() {
    use loci_embed::Reranker;
    let server = Server::start(|_, body| {
        let n = body["texts"].as_array().map_or(0, Vec::len);
        // TEI answers a list sorted by score, indexes into `texts`.
        let items: Vec<Value> = (0..n).rev().map(|i| json!({"index": i, "score": i as f64 * 0.25})).collect();
        Reply::json(200, Value::Array(items))
    })
    .await;
    let r = reranker(server.url(), loci_settings::RerankApi::Tei);
    let scores = r.score("q", &["a".into(), "b".into(), "c".into()]).await.unwrap();
    assert_eq!(scores, vec![0.0, 0.25, 0.5]);
    assert_eq!(server.requests().await[0].path, "/rerank");
    assert_eq!(server.requests().await[0].body["texts"], json!(["a", "b", "c"]));
}

#[tokio::test]
async fn rerank_failures_are_typed() {
    use loci_embed::Reranker;
    // A 503 then a good answer: retried.
    let server = Server::start(|n, body| if n == 0 { Reply::json(503, json!({})) } else { cohere_answer(body) }).await;
    let r = reranker(server.url(), loci_settings::RerankApi::Cohere);
    assert_eq!(r.score("a", &["a".into()]).await.unwrap(), vec![1.0]);
    assert_eq!(server.requests().await.len(), 2);

    // A bad key: rejected at once, with the endpoint's message.
    let server = Server::start(|_, _| Reply::json(401, json!({"message": "invalid api token"}))).await;
    let r = reranker(server.url(), loci_settings::RerankApi::Cohere);
    match r.score("a", &["a".into()]).await {
        Err(EmbedError::Rejected { status: 401, message }) => assert!(message.contains("invalid api token")),
        other => panic!("expected a 401 rejection, got {other:?}"),
    }
    assert_eq!(server.requests().await.len(), 1);

    // Always 500: unavailable after the retry (a search keeps its fused order).
    let server = Server::start(|_, _| Reply::json(500, json!({}))).await;
    let r = reranker(server.url(), loci_settings::RerankApi::Cohere);
    assert!(matches!(r.score("a", &["a".into()]).await, Err(EmbedError::Unavailable(_))));

    // A score missing for one document, or an answer of another protocol.
    let server =
        Server::start(|_, _| Reply::json(200, json!({"results": [{"index": 0, "relevance_score": 0.3}]}))).await;
    let r = reranker(server.url(), loci_settings::RerankApi::Cohere);
    assert!(matches!(r.score("a", &["a".into(), "b".into()]).await, Err(EmbedError::BadResponse(_))));
    let r = reranker(server.url(), loci_settings::RerankApi::Tei);
    assert!(matches!(r.score("a", &["a".into()]).await, Err(EmbedError::BadResponse(_))));

    // Too slow: a timeout is unavailable too.
    let server = Server::start(|_, body| cohere_answer(body).slow(Duration::from_secs(5))).await;
    let r = loci_embed::HttpReranker::new(
        &server.url(),
        loci_settings::RerankApi::Cohere,
        String::new(),
        None,
        Duration::from_millis(100),
    )
    .unwrap()
    .with_retry(RetryPolicy { max_retries: 0, ..RetryPolicy::default() });
    let t = Instant::now();
    assert!(matches!(r.score("a", &["a".into()]).await, Err(EmbedError::Unavailable(_))));
    assert!(t.elapsed() < Duration::from_secs(3));
}
