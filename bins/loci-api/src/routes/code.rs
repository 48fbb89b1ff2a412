//! `/api/v1/code`: code intelligence (see `loci_domain::code`).
//! Repositories and jobs: graph:read, changes graph:write; code search:
//! search:read; symbols, callers, callees, impact: graph:read.

use actix_web::{HttpResponse, web};
use loci_domain::code::{
    CallTreeView, CodeJobView, CodeSearchInput, CodeSearchView, ExplainView, ImpactView, RepoInput, RepoList, RepoView,
    SymbolQueryInput, SymbolRef, SymbolView, parse_depth,
};
use loci_domain::inputs::id;
use loci_security::scopes::{GRAPH_READ, GRAPH_WRITE, SEARCH_READ};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use loci_app::Services;
use loci_http::{Authenticated, Problem, ValidJson};

/// A repository registered, and its indexing job.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IndexAccepted {
    repo: RepoView,
    job: CodeJobView,
}

/// How far a walk goes.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DepthQuery {
    /// 1 to 10 steps (default 3).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 10)]
    depth: Option<String>,
}

fn uuid_path(field: &str, raw: &str) -> Result<Uuid, Problem> {
    let mut out = Vec::new();
    id::<Uuid>(field, raw, &mut out).ok_or_else(|| out.into())
}

/// The caller (graph:read), the symbol and the depth of a walk.
fn walk_input<'a>(
    auth: &'a Authenticated,
    path: &str,
    q: &DepthQuery,
) -> Result<(&'a loci_security::Principal, SymbolRef, u32), Problem> {
    let p = auth.require(&[GRAPH_READ])?;
    let target = SymbolRef::Id(uuid_path("id", path)?);
    Ok((p, target, parse_depth(q.depth.as_deref())?))
}

#[utoipa::path(post, path = "/api/v1/code/repos", tag = "code", request_body = RepoInput, responses((status = 202, description = "The repository (registered, or the one of that name and source) and its indexing job (the running one when it has one); 429 RATE_LIMITED when the org has code.max_queued_jobs jobs queued", body = IndexAccepted), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn index(
    state: web::Data<Services>,
    auth: Authenticated,
    body: ValidJson<RepoInput>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[GRAPH_WRITE])?;
    let (repo, job) = state.code.index(p, body.0).await?;
    Ok(HttpResponse::Accepted().json(IndexAccepted { repo, job }))
}

#[utoipa::path(get, path = "/api/v1/code/repos", tag = "code", responses((status = 200, description = "The org's repositories by name, each with what it depends on", body = RepoList), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn repos(state: web::Data<Services>, auth: Authenticated) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[GRAPH_READ])?;
    Ok(HttpResponse::Ok().json(state.code.repos(p).await?))
}

#[utoipa::path(get, path = "/api/v1/code/repos/{id}", tag = "code", params(("id" = String, Path, format = Uuid)), responses((status = 200, description = "The repository", body = RepoView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn repo(
    state: web::Data<Services>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[GRAPH_READ])?;
    Ok(HttpResponse::Ok().json(state.code.repo(p, uuid_path("id", &path)?).await?))
}

#[utoipa::path(delete, path = "/api/v1/code/repos/{id}", tag = "code", params(("id" = String, Path, format = Uuid)), responses((status = 204, description = "The repository and everything indexed from it are gone"), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn delete_repo(
    state: web::Data<Services>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[GRAPH_WRITE])?;
    state.code.delete(p, uuid_path("id", &path)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/api/v1/code/repos/{id}/index", tag = "code", params(("id" = String, Path, format = Uuid)), responses((status = 202, description = "Its indexing job (the running one when it has one): only changed files are parsed again", body = CodeJobView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn reindex(
    state: web::Data<Services>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[GRAPH_WRITE])?;
    Ok(HttpResponse::Accepted().json(state.code.reindex(p, uuid_path("id", &path)?).await?))
}

#[utoipa::path(get, path = "/api/v1/code/jobs/{id}", tag = "code", params(("id" = String, Path, format = Uuid)), responses((status = 200, description = "The indexing job: its status, progress or report", body = CodeJobView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn job(
    state: web::Data<Services>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[GRAPH_READ])?;
    Ok(HttpResponse::Ok().json(state.code.job(p, uuid_path("id", &path)?).await?))
}

#[utoipa::path(post, path = "/api/v1/code/jobs/{id}/cancel", tag = "code", params(("id" = String, Path, format = Uuid)), responses((status = 200, description = "The job, cancelled (409 CONFLICT when it had ended)", body = CodeJobView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn cancel(
    state: web::Data<Services>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[GRAPH_WRITE])?;
    Ok(HttpResponse::Ok().json(state.code.cancel(p, uuid_path("id", &path)?).await?))
}

#[utoipa::path(post, path = "/api/v1/code/search", tag = "code", request_body = CodeSearchInput, responses((status = 200, description = "Symbols by lexical (code-aware tokens), vector and graph evidence, fused", body = CodeSearchView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn search(
    state: web::Data<Services>,
    auth: Authenticated,
    body: ValidJson<CodeSearchInput>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[SEARCH_READ])?;
    Ok(HttpResponse::Ok().json(state.code.search(p, &body.0).await?))
}

#[utoipa::path(get, path = "/api/v1/code/symbols", tag = "code", params(SymbolQueryInput), responses((status = 200, description = "Symbols with that exact name or qualified name", body = Vec<SymbolView>), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn symbols(
    state: web::Data<Services>,
    auth: Authenticated,
    q: web::Query<SymbolQueryInput>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[GRAPH_READ])?;
    Ok(HttpResponse::Ok().json(state.code.symbols(p, &q).await?))
}

#[utoipa::path(get, path = "/api/v1/code/symbols/{id}", tag = "code", params(("id" = String, Path, format = Uuid)), responses((status = 200, description = "The symbol explained: signature, docs, code, direct callers and callees, and memories that mention it (with memories:read)", body = ExplainView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn explain(
    state: web::Data<Services>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[GRAPH_READ])?;
    let target = SymbolRef::Id(uuid_path("id", &path)?);
    Ok(HttpResponse::Ok().json(state.code.explain(p, &target).await?))
}

#[utoipa::path(get, path = "/api/v1/code/symbols/{id}/callers", tag = "code", params(("id" = String, Path, format = Uuid), DepthQuery), responses((status = 200, description = "Who calls the symbol, breadth first", body = CallTreeView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn callers(
    state: web::Data<Services>,
    auth: Authenticated,
    path: web::Path<String>,
    q: web::Query<DepthQuery>,
) -> Result<HttpResponse, Problem> {
    let (p, target, depth) = walk_input(&auth, &path, &q)?;
    Ok(HttpResponse::Ok().json(state.code.callers(p, &target, depth).await?))
}

#[utoipa::path(get, path = "/api/v1/code/symbols/{id}/callees", tag = "code", params(("id" = String, Path, format = Uuid), DepthQuery), responses((status = 200, description = "What the symbol calls, breadth first (callees outside the repositories by name and module)", body = CallTreeView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn callees(
    state: web::Data<Services>,
    auth: Authenticated,
    path: web::Path<String>,
    q: web::Query<DepthQuery>,
) -> Result<HttpResponse, Problem> {
    let (p, target, depth) = walk_input(&auth, &path, &q)?;
    Ok(HttpResponse::Ok().json(state.code.callees(p, &target, depth).await?))
}

#[utoipa::path(get, path = "/api/v1/code/symbols/{id}/impact", tag = "code", params(("id" = String, Path, format = Uuid), DepthQuery), responses((status = 200, description = "What a change to the symbol affects: transitive callers here and in dependent repositories, ranked, each with its call path", body = ImpactView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn impact(
    state: web::Data<Services>,
    auth: Authenticated,
    path: web::Path<String>,
    q: web::Query<DepthQuery>,
) -> Result<HttpResponse, Problem> {
    let (p, target, depth) = walk_input(&auth, &path, &q)?;
    Ok(HttpResponse::Ok().json(state.code.impact(p, &target, depth).await?))
}
