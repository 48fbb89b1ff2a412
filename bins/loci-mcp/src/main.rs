//! `loci-mcp`: the MCP server. `loci-mcp` (or `loci-mcp stdio`) serves one
//! agent on stdin/stdout with the identity of `LOCI_TOKEN`; `loci-mcp http`
//! serves streamable HTTP at `/mcp` (plus health and metadata routes) on
//! `server.host:server.port`. `loci serve` also mounts `/mcp` next to REST.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use loci_settings::{Settings, Sources};

#[derive(Parser)]
#[command(name = "loci-mcp", version, about = "Loci MCP server (stdio and streamable HTTP)")]
struct Cli {
    /// A settings file (TOML); environment variables LOCI__* override it.
    #[arg(long, global = true)]
    config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    transport: Option<Transport>,
}

#[derive(Subcommand)]
enum Transport {
    /// stdin/stdout, identity from LOCI_TOKEN (the default).
    Stdio,
    /// Streamable HTTP at /mcp.
    Http,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(&Sources::from_process(cli.config)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.transport.unwrap_or(Transport::Stdio) {
        Transport::Stdio => {
            let _telemetry = loci_app::telemetry::init_stderr(&settings.telemetry);
            loci_mcp::run_stdio(settings)
        }
        Transport::Http => {
            let _telemetry = loci_app::telemetry::init(&settings.telemetry);
            loci_http::serve(settings, |state| vec![loci_mcp::mount(state)]).map_err(loci_mcp::McpError::from)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
