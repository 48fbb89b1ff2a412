//! The HTTP layer both transports share (REST in `loci-api`, `/mcp` in
//! `loci-mcp`): the `Authenticated` extractor, RFC 9457 problem details,
//! request ids, the metrics middleware, the JSON body extractor, the common
//! routes (health, protected-resource metadata, JWKS, metrics) and the
//! server itself ([`Application`]), which mounts what each binary adds.
//!
//! Architecture invariants: every error leaves as a problem with a stable
//! `code` and the request id; nothing internal (SQL, stack traces, secrets)
//! reaches a body; handlers get the parts they need as app data
//! ([`loci_app::Services`], [`loci_app::Security`], [`Metrics`],
//! [`AuthContext`]), never a whole-process state.

// Problems are big (headers, extension members) but built once per failed
// request; boxing them would only add an allocation to every error path.
#![allow(clippy::result_large_err)]

mod auth;
pub mod common;
pub mod health;
mod json;
mod metrics;
mod problem;
mod request_id;
mod server;

pub use auth::{AuthContext, Authenticated, authenticate, mask, rate_limit_problem, rejection_problem, request_base};
pub use json::{JsonLimits, ValidJson, parse_body};
pub use metrics::Metrics;
pub use problem::{FieldError, Problem, ProblemResponses, method_not_allowed};
pub use request_id::REQUEST_ID_HEADER;
pub use server::{Application, HttpState, Mount};

/// Errors that stop an HTTP server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(transparent)]
    App(#[from] loci_app::AppError),
    #[error("cannot bind {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("startup failed: {0}")]
    Startup(String),
}

/// Composes the process from `settings`, then serves the common routes plus
/// `mounts(&state)` on the current thread until SIGTERM/SIGINT.
pub fn serve(
    settings: loci_settings::Settings,
    mounts: impl FnOnce(&HttpState) -> Vec<Mount>,
) -> Result<(), HttpError> {
    actix_web::rt::System::new().block_on(async move {
        let state = HttpState::init(settings).await?;
        let mounts = mounts(&state);
        Application::build(state, mounts)?.run_until_stopped().await
    })
}
