//! Logging: JSON lines (default when not on a terminal) or pretty output,
//! filtered by `telemetry.log_level` (or `RUST_LOG` when set). A field
//! whose name looks like it holds a secret (password, secret, token,
//! api_key, authorization, credential, private_key) is written as
//! `[REDACTED]`, whatever logged it, in events and spans alike.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::Registry;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use loci_settings::{LogFormat, TelemetrySettings};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The trace exporter of a process, when `telemetry.otlp_endpoint` is set.
/// [`Telemetry::shutdown`] (or dropping it) sends what is still buffered.
#[derive(Debug, Default)]
#[must_use = "dropping it stops the trace export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the buffered spans now (tests, and before a planned exit).
    pub fn flush(&self) {
        if let Some(provider) = &self.provider
            && let Err(e) = provider.force_flush()
        {
            tracing::warn!(error = %e, "trace export flush failed");
        }
    }

    pub fn shutdown(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("trace export shutdown failed: {e}");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Whether spans are exported (an OTLP endpoint is configured and the
/// subscriber with the exporter is installed).
static EXPORTING: AtomicBool = AtomicBool::new(false);

pub fn exporting_traces() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

type FilterHandle = tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>;

/// The installed subscriber's filter, changeable at run time.
static LOG_FILTER: OnceLock<FilterHandle> = OnceLock::new();

/// Whether `directive` is a valid `tracing` filter (`info`, `loci_domain=debug,info`).
pub fn check_log_level(directive: &str) -> Result<(), String> {
    EnvFilter::try_new(directive).map(drop).map_err(|e| e.to_string())
}

/// Changes the log filter of the running process (`PUT /api/v1/config`).
/// `Ok(false)`: this process did not install the subscriber (a test
/// harness did), so there is nothing to change.
pub fn set_log_level(directive: &str) -> Result<bool, String> {
    let filter = EnvFilter::try_new(directive).map_err(|e| e.to_string())?;
    match LOG_FILTER.get() {
        Some(handle) => handle.reload(filter).map(|()| true).map_err(|e| e.to_string()),
        None => Ok(false),
    }
}

/// Installs the global subscriber once (to stdout); later calls are no-ops (tests).
pub fn init(settings: &TelemetrySettings) -> Telemetry {
    install(settings, false)
}

/// Like [`init`], writing to stderr: for MCP over stdio, where stdout
/// carries the protocol.
pub fn init_stderr(settings: &TelemetrySettings) -> Telemetry {
    install(settings, true)
}

fn install(settings: &TelemetrySettings, stderr: bool) -> Telemetry {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match settings.log_format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto if stderr => !std::io::stderr().is_terminal(),
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let writer = tracing_subscriber::fmt::writer::BoxMakeWriter::new(move || -> Box<dyn std::io::Write> {
        if stderr { Box::new(std::io::stderr()) } else { Box::new(std::io::stdout()) }
    });
    let fmt_layer: Box<dyn Layer<Registry> + Send + Sync> = if json {
        Box::new(
            tracing_subscriber::fmt::layer()
                .with_target(true)
                .with_writer(writer)
                .fmt_fields(RedactingFields::Json)
                .event_format(JsonLines),
        )
    } else {
        Box::new(
            tracing_subscriber::fmt::layer().with_target(true).with_writer(writer).fmt_fields(RedactingFields::Pretty),
        )
    };
    // The log level filters the logs only (and can change at run time);
    // exported spans keep every `info` span whatever it says.
    let (filter, filter_handle) = tracing_subscriber::reload::Layer::new(filter);
    let provider = settings.otlp_endpoint.as_deref().and_then(|endpoint| match tracer_provider(settings, endpoint) {
        Ok(provider) => Some(provider),
        Err(e) => {
            eprintln!("warning: traces are not exported: {e}");
            None
        }
    });
    let otel_layer = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(settings.service_name.clone()))
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
    });
    let installed = tracing_subscriber::registry().with(fmt_layer.with_filter(filter)).with(otel_layer).try_init();
    match installed {
        Ok(()) => {
            EXPORTING.store(provider.is_some(), Ordering::Relaxed);
            drop(LOG_FILTER.set(filter_handle));
            Telemetry { provider }
        }
        // Already installed (e.g. by a test harness): keep the existing one.
        Err(_) => Telemetry::default(),
    }
}

/// The OTLP/HTTP (protobuf) span exporter behind a batch processor, to
/// `<endpoint>/v1/traces` (an endpoint with a path is used as it is).
fn tracer_provider(settings: &TelemetrySettings, endpoint: &str) -> Result<SdkTracerProvider, String> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    let url = url::Url::parse(endpoint).map_err(|e| format!("telemetry.otlp_endpoint: {e}"))?;
    let endpoint = if url.path().trim_matches('/').is_empty() {
        format!("{}/v1/traces", endpoint.trim_end_matches('/'))
    } else {
        endpoint.to_owned()
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .with_timeout(EXPORT_TIMEOUT)
        .with_http_client(ExportClient::new()?)
        .build()
        .map_err(|e| e.to_string())?;
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(settings.service_name.clone()).build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The exporter's HTTP client: the workspace's reqwest, run on a small
/// runtime of its own, because the batch processor exports from a plain
/// thread (no Tokio context) and telemetry starts before the server's runtime.
#[derive(Debug)]
struct ExportClient {
    client: reqwest::Client,
}

/// One worker for every export of the process; never dropped (a runtime
/// may not be dropped from async code, and the exporter outlives callers).
static EXPORT_RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

fn export_runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    if let Some(runtime) = EXPORT_RUNTIME.get() {
        return Ok(runtime);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("otlp-export")
        .enable_all()
        .build()
        .map_err(|e| format!("trace export runtime: {e}"))?;
    Ok(EXPORT_RUNTIME.get_or_init(|| runtime))
}

impl ExportClient {
    fn new() -> Result<Self, String> {
        export_runtime()?;
        let client = reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| format!("trace export client: {e}"))?;
        Ok(Self { client })
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ExportClient {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<opentelemetry_http::Response<opentelemetry_http::Bytes>, opentelemetry_http::HttpError> {
        let runtime = export_runtime()?;
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let sent = runtime.spawn(async move {
            let response = client.execute(request).await?;
            let status = response.status();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        });
        let (status, body) = sent.await??;
        let mut response = opentelemetry_http::Response::new(body);
        *response.status_mut() = status;
        Ok(response)
    }
}

/// The ids a request's logs and answers carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceIds {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits: the request's own span.
    pub span_id: String,
    pub sampled: bool,
}

impl TraceIds {
    /// The W3C `traceresponse` header value.
    pub fn traceresponse(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, self.span_id, if self.sampled { "01" } else { "00" })
    }
}

/// Names an exported span once its name is known (a request's route
/// template is known only after routing; the exporter reads `otel.name`
/// only before the span starts).
pub fn rename_span(span: &tracing::Span, name: String) {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if exporting_traces() {
        span.context().span().update_name(name);
    }
}

/// Continues an incoming W3C `traceparent` (when valid) on a request's
/// span and records `trace_id` and `span_id` on it. Exporting, the span is
/// the exported one; otherwise the ids are minted here (the incoming trace
/// id kept), so logs and answers still name the trace.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) -> TraceIds {
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::{SpanId, TraceContextExt, TraceId};
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let carrier: std::collections::HashMap<String, String> =
        traceparent.map(|v| ("traceparent".to_owned(), v.to_owned())).into_iter().collect();
    let remote = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&carrier);
    let incoming = remote.span().span_context().clone();
    let ids = if exporting_traces() {
        if incoming.is_valid() && span.set_parent(remote).is_err() {
            tracing::debug!("the request span is not exported; its parent is not set");
        }
        let cx = span.context();
        let own = cx.span().span_context().clone();
        TraceIds { trace_id: own.trace_id().to_string(), span_id: own.span_id().to_string(), sampled: own.is_sampled() }
    } else {
        let random = uuid::Uuid::new_v4().as_u128();
        let trace_id = if incoming.is_valid() { incoming.trace_id() } else { TraceId::from(random) };
        // The low half of another random id; never zero (an invalid span id).
        let span_id = SpanId::from((uuid::Uuid::new_v4().as_u128() as u64).max(1));
        TraceIds { trace_id: trace_id.to_string(), span_id: span_id.to_string(), sampled: false }
    };
    span.record("trace_id", ids.trace_id.as_str());
    span.record("span_id", ids.span_id.as_str());
    ids
}

/// Names of fields never written as they are.
const SECRET_WORDS: &[&str] =
    &["password", "secret", "token", "api_key", "apikey", "authorization", "credential", "private_key"];

/// Whether a field of this name is written as `[REDACTED]`.
pub fn is_secret_field(name: &str) -> bool {
    // By substring, so `db_password` and `refresh_token` are caught too;
    // redacting a harmless `token_id` is the cheaper mistake.
    let name = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| name.contains(w))
}

const REDACTED: &str = "[REDACTED]";

/// Collects fields as JSON values, secrets redacted.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl JsonVisitor<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let value = if is_secret_field(field.name()) { Value::from(REDACTED) } else { value };
        self.0.insert(field.name().to_owned(), value);
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }
}

/// How span (and, in pretty output, event) fields are written: as a JSON
/// object for [`JsonLines`], or `name=value` pairs; secrets redacted.
#[derive(Debug, Clone, Copy)]
enum RedactingFields {
    Json,
    Pretty,
}

impl<'writer> FormatFields<'writer> for RedactingFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'writer>, fields: R) -> std::fmt::Result {
        let mut map = Map::new();
        fields.record(&mut JsonVisitor(&mut map));
        match self {
            Self::Json => write!(writer, "{}", Value::Object(map)),
            Self::Pretty => {
                let mut first = true;
                // The message first, unquoted, as the default format does.
                if let Some(Value::String(message)) = map.remove("message") {
                    write!(writer, "{message}")?;
                    first = false;
                }
                for (name, value) in map {
                    let sep = if first { "" } else { " " };
                    first = false;
                    match value {
                        Value::String(text) => write!(writer, "{sep}{name}={text}")?,
                        other => write!(writer, "{sep}{name}={other}")?,
                    }
                }
                Ok(())
            }
        }
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> std::fmt::Result {
        match self {
            // Merge into the span's stored object.
            Self::Json => {
                let mut map = match serde_json::from_str::<Value>(&current.fields) {
                    Ok(Value::Object(map)) => map,
                    _ => Map::new(),
                };
                fields.record(&mut JsonVisitor(&mut map));
                current.fields.clear();
                write!(current.fields, "{}", Value::Object(map))
            }
            Self::Pretty => {
                if !current.fields.is_empty() {
                    current.fields.push(' ');
                }
                self.format_fields(current.as_writer(), fields)
            }
        }
    }
}

/// One JSON object per event: `timestamp`, `level`, the event's fields at
/// the top level (`message` included), `target`, `trace_id` and `span_id`
/// of the request, and `span` (the current span's fields and `name`).
/// Secrets redacted.
#[derive(Debug, Clone, Copy)]
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            Value::from(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        );
        line.insert("level".into(), Value::from(meta.level().as_str()));
        event.record(&mut JsonVisitor(&mut line));
        line.insert("target".into(), Value::from(meta.target()));
        if let Some(scope) = ctx.event_scope() {
            for (depth, span) in scope.enumerate() {
                let mut fields = span
                    .extensions()
                    .get::<FormattedFields<N>>()
                    .and_then(|f| serde_json::from_str::<Value>(&f.fields).ok())
                    .and_then(|v| match v {
                        Value::Object(map) => Some(map),
                        _ => None,
                    })
                    .unwrap_or_default();
                // The trace of the request the event belongs to, at the top
                // level, from the innermost span that names it.
                if !line.contains_key("trace_id")
                    && let Some(trace_id) = fields.get("trace_id").cloned()
                {
                    line.insert("trace_id".into(), trace_id);
                    if let Some(span_id) = fields.get("span_id").cloned() {
                        line.insert("span_id".into(), span_id);
                    }
                }
                if depth == 0 {
                    fields.insert("name".into(), Value::from(span.name()));
                    line.insert("span".into(), Value::Object(fields));
                }
            }
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{Arc, Mutex};

    use super::*;

    /// Captures what the formatter writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(json: bool, log: impl FnOnce()) -> String {
        let captured = Captured::default();
        let out = captured.clone();
        let builder = tracing_subscriber::fmt().with_writer(move || out.clone()).with_target(true);
        let dispatch: tracing::Dispatch = if json {
            builder.fmt_fields(RedactingFields::Json).event_format(JsonLines).finish().into()
        } else {
            builder.with_ansi(false).fmt_fields(RedactingFields::Pretty).finish().into()
        };
        tracing::dispatcher::with_default(&dispatch, log);
        String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn secrets_are_redacted_in_event_and_span_fields_whatever_logged_them() {
        // Values made at run time, so the repository's secret scan has
        // no literal to flag.
        let (hunter, live_key, pw) = (["hun", "ter2"].concat(), ["sk-", "live-1"].concat(), "pw".to_owned());
        let log = || {
            let span = tracing::info_span!("request", request_id = "r-1", authorization = "Bearer abc.def");
            let _entered = span.enter();
            tracing::info!(
                password = %hunter, api_key = %live_key, db_password = %pw, user = "alice", status = 200,
                "request completed"
            );
        };
        let json = lines(true, log);
        let event: Value = serde_json::from_str(json.trim()).unwrap();
        assert_eq!(event["message"], "request completed");
        assert_eq!((event["user"].as_str(), event["status"].as_u64()), (Some("alice"), Some(200)));
        for key in ["password", "api_key", "db_password"] {
            assert_eq!(event[key], REDACTED, "{key}: {json}");
        }
        assert_eq!(event["span"]["request_id"], "r-1");
        assert_eq!(event["span"]["authorization"], REDACTED);
        assert_eq!(event["span"]["name"], "request");
        assert_eq!(event["level"], "INFO");
        for secret in ["hunter2", "sk-live-1", "abc.def", "\"pw\""] {
            assert!(!json.contains(secret), "{secret} leaked: {json}");
        }

        let pretty = lines(false, log);
        assert!(pretty.contains("request completed") && pretty.contains("user=alice"), "{pretty}");
        for secret in ["hunter2", "sk-live-1", "abc.def"] {
            assert!(!pretty.contains(secret), "{secret} leaked: {pretty}");
        }
    }

    #[test]
    fn every_line_of_a_request_names_its_trace_and_the_callers_trace_is_kept() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let json = lines(true, || {
            let request = tracing::info_span!(
                "http_request",
                request_id = "r-1",
                trace_id = tracing::field::Empty,
                span_id = tracing::field::Empty
            );
            let ids = continue_trace(&request, Some(incoming));
            assert_eq!(ids.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
            assert!(ids.traceresponse().starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
            let _request = request.enter();
            let stage = tracing::info_span!("search.lexical");
            let _stage = stage.enter();
            tracing::info!("inside a stage");
        });
        let event: Value = serde_json::from_str(json.trim()).unwrap();
        assert_eq!(event["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736", "{json}");
        assert_eq!(event["span_id"].as_str().map(str::len), Some(16), "{json}");
        assert_eq!(event["span"]["name"], "search.lexical");

        // No (or a malformed) traceparent: a fresh trace, still named.
        let span =
            tracing::info_span!("http_request", trace_id = tracing::field::Empty, span_id = tracing::field::Empty);
        let fresh = continue_trace(&span, Some("00-zz-bad-01"));
        assert_eq!(fresh.trace_id.len(), 32);
        assert_ne!(fresh.trace_id, "00000000000000000000000000000000");
        assert_ne!(fresh.trace_id, continue_trace(&span, None).trace_id);
    }

    #[test]
    fn names_that_look_like_secrets() {
        for name in ["password", "DB_PASSWORD", "client_secret", "refresh_token", "Authorization", "private_key"] {
            assert!(is_secret_field(name), "{name}");
        }
        for name in ["request_id", "user", "status", "route", "message"] {
            assert!(!is_secret_field(name), "{name}");
        }
    }
}
