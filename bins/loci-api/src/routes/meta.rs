//! Identity and metadata routes: whoami, RFC 9728 protected-resource
//! metadata, the embedded profile's JWKS, Prometheus metrics.

use actix_web::{HttpRequest, HttpResponse, web};
use loci_core::ErrorCode;
use loci_security::scopes;
use loci_settings::DpopPolicy;
use serde_json::json;

use crate::{AppState, Authenticated, Problem};

#[utoipa::path(get, path = "/api/v1/whoami", tag = "identity", responses((status = 200, description = "The caller", body = Object), crate::openapi::ProblemResponses), security(("bearer" = [])))]
/// `GET /api/v1/whoami`: who the token says the caller is (any valid token).
pub async fn whoami(auth: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(auth.0.summary())
}

#[utoipa::path(get, path = "/.well-known/oauth-protected-resource", tag = "identity", responses((status = 200, description = "RFC 9728 metadata", body = Object)))]
/// `GET /.well-known/oauth-protected-resource` (RFC 9728).
pub async fn protected_resource(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let resource = crate::auth::request_base(&state, &req);
    HttpResponse::Ok().json(json!({
        "resource": resource,
        "authorization_servers": [state.settings.issuer()],
        "bearer_methods_supported": ["header"],
        "scopes_supported": scopes::ALL,
        "dpop_signing_alg_values_supported": state.auth.dpop_algorithms(),
        "dpop_bound_access_tokens_required": state.auth.dpop_policy() == DpopPolicy::Required,
        "resource_name": "Loci",
    }))
}

/// `GET /.well-known/jwks.json`: the public key of locally minted tokens
/// (embedded profile only; in production the identity provider serves keys).
pub async fn jwks(state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    let Some(issuer) = &state.local_issuer else {
        return Err(Problem::new(ErrorCode::NotFound, "this deployment has no local signing key"));
    };
    let key = serde_json::Value::Object(issuer.public_jwk().as_ref().clone());
    Ok(HttpResponse::Ok().json(json!({ "keys": [key] })))
}

/// `GET /metrics` (admin:read).
pub async fn metrics(state: web::Data<AppState>, auth: Authenticated) -> Result<HttpResponse, Problem> {
    auth.require(&state, &[scopes::ADMIN_READ])?;
    match state.indexer.lag().await {
        Ok(lag) => state.metrics.outbox(lag.pending, lag.oldest_seconds),
        Err(e) => tracing::warn!(error = %e, "reading the outbox lag failed"),
    }
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render()))
}

/// `GET /openapi.json`: the OpenAPI 3.1 document (public).
pub async fn openapi() -> HttpResponse {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let doc = DOCUMENT.get_or_init(crate::openapi::document);
    HttpResponse::Ok().content_type("application/json").body(doc.clone())
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
