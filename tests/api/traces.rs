//! Traces over OTLP/HTTP: a real receiver in the test decodes what the
//! server exports (`ExportTraceServiceRequest` protobuf) and checks the
//! request span continues the caller's `traceparent`, with child spans for
//! the store and the search stages.

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpResponse, HttpServer, web};
use loci_tests::{AppOptions, Engine, TestApp};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;

type Received = Arc<Mutex<Vec<Span>>>;

async fn receive(body: web::Bytes, received: web::Data<Received>) -> HttpResponse {
    match ExportTraceServiceRequest::decode(body) {
        Ok(request) => {
            let spans = request.resource_spans.into_iter().flat_map(|r| r.scope_spans).flat_map(|s| s.spans);
            received.lock().expect("lock").extend(spans);
            HttpResponse::Ok().content_type("application/x-protobuf").body(Vec::new())
        }
        Err(e) => HttpResponse::BadRequest().body(e.to_string()),
    }
}

/// An OTLP/HTTP trace receiver on a free port; its base URL and what it got.
fn start_receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let data = web::Data::new(Arc::clone(&received));
    let server =
        HttpServer::new(move || App::new().app_data(data.clone()).route("/v1/traces", web::post().to(receive)))
            .workers(1)
            .bind(("127.0.0.1", 0))
            .expect("bind receiver");
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    (format!("http://127.0.0.1:{port}"), received)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_span_continues_the_callers_trace_with_store_and_search_children() {
    let (endpoint, received) = start_receiver();
    let telemetry_settings = loci_settings::TelemetrySettings {
        otlp_endpoint: Some(endpoint),
        service_name: "loci-trace-test".into(),
        ..Default::default()
    };
    // This process's subscriber (nextest runs each test in its own).
    let telemetry = loci_app::telemetry::init(&telemetry_settings);
    assert!(loci_app::telemetry::exporting_traces(), "the OTLP layer is installed");

    let app = TestApp::spawn_with(Engine::Sqlite, AppOptions::default()).await;
    let alice = app.user("alice", "acme", &[]);
    alice.remember("the deploy script lives in ops/deploy.sh", json!({})).await;
    app.indexed().await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let res = app
        .client
        .post(app.url("/api/v1/search"))
        .bearer_auth(&alice.token)
        .header("traceparent", format!("00-{trace_id}-{parent}-01"))
        .json(&json!({ "query": "deploy script", "mode": "lexical" }))
        .send()
        .await
        .expect("search");
    assert_eq!(res.status().as_u16(), 200);
    let traceresponse = res.headers().get("traceresponse").and_then(|v| v.to_str().ok()).expect("traceresponse");
    assert!(traceresponse.starts_with(&format!("00-{trace_id}-")), "{traceresponse}");

    // A problem body names the trace too.
    let res = app
        .client
        .get(app.url("/api/v1/memories/not-a-uuid"))
        .bearer_auth(&alice.token)
        .header("traceparent", format!("00-{trace_id}-{parent}-01"))
        .send()
        .await
        .expect("bad id");
    let problem: serde_json::Value = res.json().await.expect("problem");
    assert_eq!(problem["trace_id"], trace_id, "{problem}");

    // Export what is buffered (blocking: off the runtime's threads).
    tokio::task::spawn_blocking(move || telemetry.flush()).await.expect("flush");
    let spans = received.lock().expect("lock").clone();
    let in_trace: Vec<&Span> = spans.iter().filter(|s| hex(&s.trace_id) == trace_id).collect();
    let names: Vec<&str> = in_trace.iter().map(|s| s.name.as_str()).collect();

    let request = in_trace
        .iter()
        .find(|s| s.name == "POST /api/v1/search")
        .unwrap_or_else(|| panic!("the request span, named by its route: {names:?}"));
    assert_eq!(hex(&request.parent_span_id), parent, "the caller's span is the parent");
    assert!(traceresponse.contains(&hex(&request.span_id)), "traceresponse names the request span");

    // Every stage that ran is a descendant of the request span.
    let by_id: std::collections::HashMap<Vec<u8>, &Span> = in_trace.iter().map(|s| (s.span_id.clone(), *s)).collect();
    let under_request = |span: &Span| {
        let mut current = span;
        for _ in 0..16 {
            if current.parent_span_id == request.span_id {
                return true;
            }
            match by_id.get(&current.parent_span_id) {
                Some(parent) => current = parent,
                None => return false,
            }
        }
        false
    };
    for stage in ["search.lexical", "search.fusion", "search.hydrate", "db.begin"] {
        let span = in_trace
            .iter()
            .find(|s| s.name == stage)
            .unwrap_or_else(|| panic!("a {stage} span in the trace: {names:?}"));
        assert!(under_request(span), "{stage} is a child of the request span");
    }
}
