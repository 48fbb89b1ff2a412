//! The REST API (actix-web) over loci-domain: the `/api/v1` routes, the
//! OpenAPI document and its viewer. The server around them (common routes,
//! middleware, authentication) is `loci-http`'s; the services are
//! `loci-app`'s.
//!
//! Architecture invariant: handlers only translate HTTP to domain calls and
//! back; request shapes, bounds and error details come from loci-domain.

// Problems are big (headers, extension members) but built once per failed
// request; boxing them would only add an allocation to every error path.
#![allow(clippy::result_large_err)]

mod openapi;
mod routes;

use std::sync::Arc;

use loci_http::Mount;

/// The REST API and its documentation, to mount on a `loci_http` server.
pub fn mount() -> Mount {
    Arc::new(routes::configure)
}

/// The OpenAPI document (what `/openapi.json` serves) for a server with
/// these limits.
pub fn openapi_document(limits: &loci_domain::validation::Limits) -> String {
    openapi::document(limits).to_string()
}

/// Runs the REST server on the current thread until SIGTERM/SIGINT (the
/// `loci-api` binary).
pub fn serve(settings: loci_settings::Settings) -> Result<(), loci_http::HttpError> {
    loci_http::serve(settings, |_| vec![mount()])
}
