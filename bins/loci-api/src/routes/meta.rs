//! Identity and documentation routes: whoami, the OpenAPI document and its
//! viewer.

use actix_web::{HttpResponse, web};
use loci_core::ErrorCode;

use loci_app::Services;
use loci_http::{Authenticated, Problem};

#[utoipa::path(get, path = "/api/v1/whoami", tag = "identity", responses((status = 200, description = "The caller", body = Object), loci_http::ProblemResponses), security(("bearer" = [])))]
/// `GET /api/v1/whoami`: who the token says the caller is (any valid token).
pub async fn whoami(auth: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(auth.0.summary())
}

/// `GET /openapi.json`: the document, with this deployment's limits.
pub async fn openapi(state: web::Data<Services>) -> HttpResponse {
    let limits = loci_domain::validation::Limits::from(&state.settings.limits);
    HttpResponse::Ok().content_type("application/json").body(crate::openapi::document(&limits).to_string())
}

const DOCS_HTML: &str = include_str!("../../assets/docs/index.html");
const DOCS_INIT: &str = include_str!("../../assets/docs/init.js");

/// `GET /docs`: a browsable view of `/openapi.json`. Served from this
/// process (no CDN), so it works offline and under the strict CSP.
pub async fn docs_page() -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(DOCS_HTML)
}

pub async fn docs_asset(file: web::Path<String>) -> Result<HttpResponse, Problem> {
    match file.as_str() {
        "init.js" => Ok(HttpResponse::Ok().content_type("text/javascript; charset=utf-8").body(DOCS_INIT)),
        _ => Err(Problem::new(ErrorCode::NotFound, "no such documentation asset")),
    }
}
