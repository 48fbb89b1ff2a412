//! Routes every Loci HTTP server has, whatever else it mounts: health,
//! RFC 9728 protected-resource metadata, the embedded profile's JWKS, and
//! Prometheus metrics.

use actix_web::{HttpRequest, HttpResponse, web};
use loci_app::{Security, Services};
use loci_core::ErrorCode;
use loci_security::scopes;
use loci_settings::DpopPolicy;
use serde_json::json;

use crate::auth::{AuthContext, request_base};
use crate::{Authenticated, Metrics, Problem, health, method_not_allowed};

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Resources (not bare routes) so a wrong method is a 405, not a 404.
    cfg.service(
        web::resource("/health/live").route(web::get().to(health::live)).default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/health/ready").route(web::get().to(health::ready)).default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/health/deps").route(web::get().to(health::deps)).default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/.well-known/oauth-protected-resource")
            .route(web::get().to(protected_resource))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/.well-known/jwks.json").route(web::get().to(jwks)).default_service(method_not_allowed("GET")),
    )
    .service(web::resource("/metrics").route(web::get().to(metrics)).default_service(method_not_allowed("GET")));
}

#[utoipa::path(get, path = "/.well-known/oauth-protected-resource", tag = "identity", responses((status = 200, description = "RFC 9728 metadata", body = Object)))]
pub async fn protected_resource(
    services: web::Data<Services>,
    auth: web::Data<AuthContext>,
    req: HttpRequest,
) -> HttpResponse {
    let resource = request_base(&auth, &req);
    HttpResponse::Ok().json(json!({
        "resource": resource,
        "authorization_servers": [services.settings.issuer()],
        "bearer_methods_supported": ["header"],
        "scopes_supported": scopes::ALL,
        "dpop_signing_alg_values_supported": auth.authenticator.dpop_algorithms(),
        "dpop_bound_access_tokens_required": auth.authenticator.dpop_policy() == DpopPolicy::Required,
        "resource_name": "Loci",
    }))
}

async fn jwks(security: web::Data<Security>) -> Result<HttpResponse, Problem> {
    let Some(issuer) = &security.local_issuer else {
        return Err(Problem::new(ErrorCode::NotFound, "this deployment has no local signing key"));
    };
    let key = serde_json::Value::Object(issuer.public_jwk().as_ref().clone());
    Ok(HttpResponse::Ok().json(json!({ "keys": [key] })))
}

async fn metrics(
    services: web::Data<Services>,
    metrics: web::Data<Metrics>,
    auth: Authenticated,
) -> Result<HttpResponse, Problem> {
    auth.require(&[scopes::ADMIN_READ])?;
    if !services.settings.telemetry.metrics_enabled {
        return Err(Problem::new(ErrorCode::NotFound, "metrics are off (telemetry.metrics_enabled = false)"));
    }
    let health = services.health.all().await;
    match services.indexer.lag().await {
        Ok(lag) => metrics.outbox(lag.pending, lag.oldest_seconds),
        Err(e) => tracing::warn!(error = %e, "reading the outbox lag failed"),
    }
    for dependency in &health.dependencies {
        metrics.dependency(dependency.name, dependency.status == loci_domain::health::DependencyState::Healthy);
    }
    for (service, breaker) in &services.breakers {
        metrics.breaker(service, breaker.state().gauge());
    }
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(metrics.render()))
}
