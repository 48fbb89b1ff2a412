//! The REST server (actix-web) over loci-domain.
//!
//! Architecture invariants: handlers only translate HTTP to domain calls and
//! back; every error leaves as an RFC 9457 problem with a stable `code` and the
//! request id; nothing internal (SQL, stack traces, secrets) reaches a body.

// Problems are big (headers, extension members) but built once per failed
// request; boxing them would only add an allocation to every error path.
#![allow(clippy::result_large_err)]

mod auth;
mod json;
mod metrics;
mod openapi;
mod problem;
mod request_id;
mod routes;
mod startup;
pub mod telemetry;

pub use auth::{Authenticated, authenticate, mask, rejection_problem};
pub use metrics::Metrics;
pub use problem::{FieldError, Problem};
pub use request_id::REQUEST_ID_HEADER;
pub use startup::{AppState, Application, Mount, Routes};

/// Request bodies shared with other transports (MCP tools take the same shapes).
pub mod inputs {
    pub use crate::routes::params::{FilterBody, IdsBody};
}

/// Errors that stop the server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Settings(#[from] loci_settings::SettingsError),
    #[error(transparent)]
    Store(#[from] loci_stores::StoreError),
    #[error("cannot bind {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Security(#[from] loci_security::SecurityError),
    #[error("startup failed: {0}")]
    Startup(String),
}

/// Runs the server on the current thread until SIGTERM/SIGINT (used by
/// `loci serve` and the `loci-api` binary).
pub fn serve(settings: loci_settings::Settings) -> Result<(), ApiError> {
    serve_with(settings, |_| Routes::rest())
}

/// Like [`serve`], with routes chosen once the state exists (`loci serve`
/// adds `/mcp` on the same port).
pub fn serve_with(settings: loci_settings::Settings, routes: impl FnOnce(&AppState) -> Routes) -> Result<(), ApiError> {
    actix_web::rt::System::new().block_on(async move {
        let state = AppState::init(settings).await?;
        let routes = routes(&state);
        Application::build_with_state(state, routes)?.run_until_stopped().await
    })
}
