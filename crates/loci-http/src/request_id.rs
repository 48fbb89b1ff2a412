//! Request ids and traces: the id taken from a well-formed incoming
//! `X-Request-Id` or minted, the W3C trace continued from `traceparent`;
//! both echoed on the response (`X-Request-Id`, `traceresponse`), attached
//! to the request's span (so every log line of the request names them) and
//! available to problem bodies for the duration of the request.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

tokio::task_local! {
    static REQUEST: (String, String);
}

/// The current request's id, when called while serving a request.
pub fn current() -> Option<String> {
    REQUEST.try_with(|(id, _)| id.clone()).ok()
}

/// The current request's trace id (32 hex digits).
pub fn current_trace() -> Option<String> {
    REQUEST.try_with(|(_, trace)| trace.clone()).ok()
}

/// Accepts client ids of 1..=128 characters from `[A-Za-z0-9._:-]`; anything
/// else is replaced, so a header cannot inject into logs.
fn accept_incoming(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    ok.then(|| s.to_owned())
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(accept_incoming)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = req.method().to_string();
    // The route template (never raw ids) once matched; the path otherwise.
    let span = tracing::info_span!(
        "http_request",
        otel.kind = "server",
        request_id = %id,
        method = %method,
        route = tracing::field::Empty,
        status = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    let traceparent = req.headers().get("traceparent").and_then(|v| v.to_str().ok());
    let trace = loci_app::telemetry::continue_trace(&span, traceparent);
    let started = Instant::now();
    let result = REQUEST.scope((id.clone(), trace.trace_id.clone()), next.call(req).instrument(span.clone())).await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    // Handler and extractor errors arrive here already rendered (inside the
    // request's scope, so their problem bodies carry the id). An `Err` only
    // comes from inner middleware; it is passed on unchanged.
    let mut res = match result {
        Ok(res) => res.map_into_boxed_body(),
        Err(e) => {
            span.in_scope(|| tracing::warn!(error = %e, latency_ms = elapsed_ms, "request failed"));
            return Err(e);
        }
    };
    let route = res.request().match_pattern().unwrap_or_else(|| "<unmatched>".to_owned());
    span.record("route", route.as_str());
    loci_app::telemetry::rename_span(&span, format!("{method} {route}"));
    let status = res.status().as_u16();
    span.record("status", status);
    if let Some(metrics) = res.request().app_data::<actix_web::web::Data<crate::Metrics>>() {
        metrics.request(&method, &route, status, elapsed_ms / 1000.0);
    }
    span.in_scope(|| tracing::info!(status, latency_ms = elapsed_ms, "request completed"));
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    if let Ok(value) = HeaderValue::from_str(&trace.traceresponse()) {
        res.headers_mut().insert(HeaderName::from_static("traceresponse"), value);
    }
    Ok(res)
}
