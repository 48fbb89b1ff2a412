//! The MCP server (rmcp): the same tools over stdio and streamable HTTP.
//!
//! - [`tools`]: the tool table (names, scopes, input schemas) and dispatch
//!   into loci-domain; the only place tools are defined.
//! - [`handler`]: the rmcp `ServerHandler` (protocol versions, list, call).
//! - [`http`]: `/mcp` on a `loci-http` server, with the same authentication
//!   as REST, Host/Origin checks and session binding in front of rmcp's
//!   streamable HTTP service.
//! - [`stdio`]: one identity from `LOCI_TOKEN`.
//!
//! Architecture invariants: every tool checks its scopes before anything
//! else; no tool runs without a principal; a session is served only to the
//! user, org and DPoP key that created it.

// Problems (the HTTP layer's errors) are big but built once per failed
// request; boxing them would add an allocation to every error path.
#![allow(clippy::result_large_err)]

mod code_tools;
mod handler;
pub mod http;
pub mod stdio;
pub mod tools;

pub use handler::{Identity, LociMcp};
pub use http::McpHttp;
pub use stdio::{TOKEN_ENV, run_stdio, serve_stdio};

/// Errors that stop the MCP server.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error(transparent)]
    App(#[from] loci_app::AppError),
    #[error(transparent)]
    Http(#[from] loci_http::HttpError),
    #[error(
        "{TOKEN_ENV} is not set: mint one with `loci token` (embedded profile) or get one from your identity provider"
    )]
    MissingToken,
    #[error("the token in {TOKEN_ENV} was refused: {0}")]
    Token(String),
    #[error("MCP protocol error: {0}")]
    Protocol(String),
}

/// `/mcp`, to mount on a `loci-http` server next to the REST API (`loci
/// serve`) or alone (`loci-mcp http`).
pub fn mount(state: &loci_http::HttpState) -> loci_http::Mount {
    McpHttp::for_server(state).mount()
}
