//! `/api/v1/search` (search:read) and the similar-memories route.

use actix_web::{HttpResponse, web};
use loci_core::MemoryId;
use loci_domain::search::{SearchInput, SearchMode, SearchResult};
use loci_security::scopes::{MEMORIES_READ, SEARCH_READ};
use serde::Serialize;

use loci_app::Services;
use loci_domain::inputs as params;
use loci_http::ValidJson;
use loci_http::{Authenticated, Problem};

async fn run(
    state: web::Data<Services>,
    metrics: web::Data<loci_http::Metrics>,
    auth: Authenticated,
    body: ValidJson<SearchInput>,
    forced: Option<SearchMode>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[SEARCH_READ])?;
    let request = body.0.parse(forced)?;
    let response = state.search.search(p, request).await?;
    metrics.search(&response);
    Ok(HttpResponse::Ok().json(response))
}

#[utoipa::path(post, path = "/api/v1/search", tag = "search", request_body = SearchInput, responses((status = 200, description = "Ranked results", body = loci_domain::search::SearchResponse), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn search(
    state: web::Data<Services>,
    metrics: web::Data<loci_http::Metrics>,
    auth: Authenticated,
    body: ValidJson<SearchInput>,
) -> Result<HttpResponse, Problem> {
    run(state, metrics, auth, body, None).await
}

#[utoipa::path(post, path = "/api/v1/search/lexical", tag = "search", request_body = SearchInput, responses((status = 200, description = "BM25 results only", body = loci_domain::search::SearchResponse), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn lexical(
    state: web::Data<Services>,
    metrics: web::Data<loci_http::Metrics>,
    auth: Authenticated,
    body: ValidJson<SearchInput>,
) -> Result<HttpResponse, Problem> {
    run(state, metrics, auth, body, Some(SearchMode::Lexical)).await
}

#[utoipa::path(post, path = "/api/v1/search/semantic", tag = "search", request_body = SearchInput, responses((status = 200, description = "Vector results only (503 EMBEDDER_UNAVAILABLE without an embedder)", body = loci_domain::search::SearchResponse), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn semantic(
    state: web::Data<Services>,
    metrics: web::Data<loci_http::Metrics>,
    auth: Authenticated,
    body: ValidJson<SearchInput>,
) -> Result<HttpResponse, Problem> {
    run(state, metrics, auth, body, Some(SearchMode::Semantic)).await
}

/// Memories similar to one memory.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SimilarList {
    items: Vec<SearchResult>,
    total: usize,
}

#[utoipa::path(get, path = "/api/v1/memories/{id}/similar", tag = "memories", params(("id" = String, Path, format = Uuid)), responses((status = 200, description = "Nearest memories by embedding", body = SimilarList), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn similar(
    state: web::Data<Services>,
    auth: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[MEMORIES_READ])?;
    let mut out = Vec::new();
    let id = params::id::<MemoryId>("id", &id, &mut out).ok_or_else(|| Problem::from(out))?;
    let items = state.search.similar(p, id, 10).await?;
    Ok(HttpResponse::Ok().json(SimilarList { total: items.len(), items }))
}
