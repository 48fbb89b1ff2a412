//! `/api/v1/feedback` (feedback:write to report; feedback:read to read;
//! the org's events also admin:read; the purge admin:write): what agents
//! did with search results, its aggregates, and the fusion weights it
//! suggests (see `loci_domain::feedback`).

use actix_web::{HttpResponse, web};
use loci_domain::feedback::{FeedbackInput, FeedbackMetrics, FeedbackQuery, WeightProposal};
use loci_security::scopes::{ADMIN_READ, ADMIN_WRITE, FEEDBACK_READ, FEEDBACK_WRITE};
use serde::Serialize;

use loci_app::Services;
use loci_http::{Authenticated, Problem, ValidJson};

/// How many events a purge removed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Purged {
    purged: u64,
    retention_days: u64,
}

/// Per tool, the counts of `/metrics`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ByTool {
    tools: std::collections::BTreeMap<String, loci_core::model::FeedbackCounts>,
}

/// The scopes a read needs: the org's events also admin:read.
fn read_scopes(q: &FeedbackQuery) -> &'static [&'static str] {
    if q.scope.as_deref() == Some("org") { &[FEEDBACK_READ, ADMIN_READ] } else { &[FEEDBACK_READ] }
}

#[utoipa::path(post, path = "/api/v1/feedback", tag = "feedback", request_body = FeedbackInput, responses((status = 201, description = "The event as stored (with the result's sources when it names a recent search of the caller)", body = loci_core::model::FeedbackEvent), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn record(
    state: web::Data<Services>,
    auth: Authenticated,
    body: ValidJson<FeedbackInput>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[FEEDBACK_WRITE])?;
    Ok(HttpResponse::Created().json(state.feedback.record(p, body.0).await?))
}

#[utoipa::path(get, path = "/api/v1/feedback", tag = "feedback", params(FeedbackQuery), responses((status = 200, description = "Events, newest first", body = loci_core::model::Page<loci_core::model::FeedbackEvent>), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<Services>,
    auth: Authenticated,
    q: web::Query<FeedbackQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(read_scopes(&q))?;
    Ok(HttpResponse::Ok().json(state.feedback.list(p, &q).await?))
}

#[utoipa::path(get, path = "/api/v1/feedback/metrics", tag = "feedback", params(FeedbackQuery), responses((status = 200, description = "total_events, acceptance_rate = accepted / (total - ignored), outcome_distribution, average_decision_time_ms, and the same per tool", body = FeedbackMetrics), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn metrics(
    state: web::Data<Services>,
    auth: Authenticated,
    q: web::Query<FeedbackQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(read_scopes(&q))?;
    Ok(HttpResponse::Ok().json(state.feedback.metrics(p, &q).await?))
}

#[utoipa::path(get, path = "/api/v1/feedback/by-tool", tag = "feedback", params(FeedbackQuery), responses((status = 200, description = "The counts of /metrics per tool", body = ByTool), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn by_tool(
    state: web::Data<Services>,
    auth: Authenticated,
    q: web::Query<FeedbackQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(read_scopes(&q))?;
    Ok(HttpResponse::Ok().json(ByTool { tools: state.feedback.metrics(p, &q).await?.by_tool }))
}

#[utoipa::path(get, path = "/api/v1/feedback/weights/proposal", tag = "feedback", params(FeedbackQuery), responses((status = 200, description = "Fusion weights proposed from the org's feedback (at least 100 events with known sources; no weight moved by more than 0.10; sum 1), with the evidence; or why not", body = WeightProposal), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn proposal(
    state: web::Data<Services>,
    auth: Authenticated,
    q: web::Query<FeedbackQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[FEEDBACK_READ, ADMIN_READ])?;
    Ok(HttpResponse::Ok().json(state.feedback.proposal(p, &q).await?))
}

#[utoipa::path(post, path = "/api/v1/feedback/purge", tag = "feedback", responses((status = 200, description = "The org's events older than feedback.retention_days, deleted", body = Purged), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn purge(state: web::Data<Services>, auth: Authenticated) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[ADMIN_WRITE])?;
    let purged = state.feedback.purge(p).await?;
    Ok(HttpResponse::Ok().json(Purged { purged, retention_days: state.settings.feedback.retention_days }))
}
