//! Logging: JSON lines (default when not on a terminal) or pretty output,
//! filtered by `telemetry.log_level` (or `RUST_LOG` when set).

use std::io::IsTerminal;

use loci_settings::{LogFormat, TelemetrySettings};
use tracing_subscriber::EnvFilter;

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
        builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init()
    } else {
        builder.try_init()
    };
    // Already installed (e.g. by a test harness): keep the existing one.
    drop(result);
}
