//! `/health/live`, `/health/ready`, `/health/deps` (20-rest-api.md).

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use loci_domain::health::{DependencyStatus, HealthReport};
use serde::Serialize;

use loci_app::Services;

use crate::{Authenticated, Problem};

#[derive(Serialize)]
struct Live {
    status: &'static str,
}

#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, description = "Alive", body = Object)))]
/// Liveness: no I/O at all.
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(Live { status: "ok" })
}

#[derive(Serialize)]
struct Ready<'a> {
    status: &'static str,
    timestamp: String,
    dependencies: BTreeMap<&'static str, &'a DependencyStatus>,
}

fn by_name(report: &HealthReport) -> BTreeMap<&'static str, &DependencyStatus> {
    report.dependencies.iter().map(|d| (d.name, d)).collect()
}

fn timestamp(report: &HealthReport) -> String {
    report.checked_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[utoipa::path(get, path = "/health/ready", tag = "health", responses((status = 200, description = "Ready", body = Object), (status = 503, description = "Degraded", body = Object)))]
/// Readiness: required dependencies, checked concurrently (2 s each).
pub async fn ready(state: web::Data<Services>) -> HttpResponse {
    let report = state.health.readiness().await;
    let ok = report.all_healthy();
    let body = Ready {
        status: if ok { "ok" } else { "degraded" },
        timestamp: timestamp(&report),
        dependencies: by_name(&report),
    };
    if ok { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) }
}

#[derive(Serialize)]
struct Deps<'a> {
    status: &'static str,
    timestamp: String,
    dependencies: BTreeMap<&'static str, &'a DependencyStatus>,
    healthy_count: usize,
    total_count: usize,
}

#[utoipa::path(get, path = "/health/deps", tag = "health", responses((status = 200, description = "Every dependency healthy", body = Object), (status = 503, description = "Degraded or unavailable", body = Object), crate::ProblemResponses))]
/// Every configured dependency with counts; 503 `degraded` when some are down,
/// `unavailable` when all are.
pub async fn deps(state: web::Data<Services>, req: actix_web::HttpRequest) -> Result<HttpResponse, Problem> {
    if !state.settings.server.public_health_deps {
        // Restricted by settings: admin:read required.
        let auth = <Authenticated as actix_web::FromRequest>::extract(&req).await?;
        auth.require(&[loci_security::scopes::ADMIN_READ])?;
    }
    let report = state.health.all().await;
    let healthy = report.healthy_count();
    let total = report.dependencies.len();
    let status = match (healthy, total) {
        (h, t) if h == t => "ok",
        (0, _) => "unavailable",
        _ => "degraded",
    };
    let body = Deps {
        status,
        timestamp: timestamp(&report),
        dependencies: by_name(&report),
        healthy_count: healthy,
        total_count: total,
    };
    Ok(if status == "ok" { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) })
}
