//! `/api/v1/experiments` (experiments:read; changes experiments:write;
//! assigning oneself experiments:read): search configurations compared on
//! a share of the org's users (see `loci_domain::experiments`).

use actix_web::{HttpResponse, web};
use loci_core::model::{Assignment, Experiment, ExperimentChange};
use loci_domain::experiments::{ExperimentInput, ExperimentListQuery, StatusInput};
use loci_security::scopes::{EXPERIMENTS_READ, EXPERIMENTS_WRITE};
use serde::Serialize;
use uuid::Uuid;

use loci_app::Services;
use loci_domain::inputs::id;
use loci_http::{Authenticated, Problem, ValidJson};

/// The org's experiments.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExperimentList {
    items: Vec<Experiment>,
    total: usize,
}

fn experiment_id(raw: &str) -> Result<Uuid, Problem> {
    let mut out = Vec::new();
    id::<Uuid>("id", raw, &mut out).ok_or_else(|| out.into())
}

#[utoipa::path(get, path = "/api/v1/experiments", tag = "experiments", params(ExperimentListQuery), responses((status = 200, description = "The org's experiments, oldest first", body = ExperimentList), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<Services>,
    auth: Authenticated,
    q: web::Query<ExperimentListQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[EXPERIMENTS_READ])?;
    let items = state.experiments.list(p, &q).await?;
    Ok(HttpResponse::Ok().json(ExperimentList { total: items.len(), items }))
}

#[utoipa::path(post, path = "/api/v1/experiments", tag = "experiments", request_body = ExperimentInput, responses((status = 201, description = "The experiment, in draft", body = Experiment), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn create(
    state: web::Data<Services>,
    auth: Authenticated,
    body: ValidJson<ExperimentInput>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[EXPERIMENTS_WRITE])?;
    Ok(HttpResponse::Created().json(state.experiments.create(p, body.0).await?))
}

#[utoipa::path(get, path = "/api/v1/experiments/{id}", tag = "experiments", params(("id" = String, Path, format = Uuid)), responses((status = 200, description = "The experiment", body = Experiment), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn get(
    state: web::Data<Services>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[EXPERIMENTS_READ])?;
    Ok(HttpResponse::Ok().json(state.experiments.get(p, experiment_id(&path)?).await?))
}

#[utoipa::path(put, path = "/api/v1/experiments/{id}/status", tag = "experiments", params(("id" = String, Path, format = Uuid)), request_body = StatusInput, responses((status = 200, description = "The experiment in its new status (draft -> running; running -> paused, completed, rolled_back; paused -> running, completed, rolled_back; anything else 409 INVALID_STATE_TRANSITION; running while another runs: 409 CONFLICT)", body = Experiment), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn set_status(
    state: web::Data<Services>,
    auth: Authenticated,
    path: web::Path<String>,
    body: ValidJson<StatusInput>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[EXPERIMENTS_WRITE])?;
    let id = experiment_id(&path)?;
    Ok(HttpResponse::Ok().json(state.experiments.set_status(p, id, body.0).await?))
}

#[utoipa::path(post, path = "/api/v1/experiments/{id}/assign", tag = "experiments", params(("id" = String, Path, format = Uuid)), responses((status = 200, description = "The caller's assignment: the variant, or none when the traffic share leaves them out; the first one is kept (409 CONFLICT when the experiment is not running and the caller has none)", body = Assignment), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn assign(
    state: web::Data<Services>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[EXPERIMENTS_READ])?;
    Ok(HttpResponse::Ok().json(state.experiments.assign(p, experiment_id(&path)?).await?))
}

#[utoipa::path(get, path = "/api/v1/experiments/{id}/assignment", tag = "experiments", params(("id" = String, Path, format = Uuid)), responses((status = 200, description = "The caller's stored assignment (404 when none)", body = Assignment), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn assignment(
    state: web::Data<Services>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[EXPERIMENTS_READ])?;
    Ok(HttpResponse::Ok().json(state.experiments.assignment(p, experiment_id(&path)?).await?))
}

#[utoipa::path(get, path = "/api/v1/experiments/{id}/history", tag = "experiments", params(("id" = String, Path, format = Uuid)), responses((status = 200, description = "Status changes, oldest first", body = Vec<ExperimentChange>), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn history(
    state: web::Data<Services>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[EXPERIMENTS_READ])?;
    Ok(HttpResponse::Ok().json(state.experiments.history(p, experiment_id(&path)?).await?))
}
