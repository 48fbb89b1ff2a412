//! `/api/v1/search` (search:read) and the similar-memories route.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use loci_core::{AppId, ArtifactType, Category, MemoryId, Scope, Source};
use loci_domain::FieldViolation;
use loci_domain::memories::parse_time;
use loci_domain::search::{SearchFilters, SearchMode, SearchRequest, SearchResult, Weights};
use loci_security::scopes::{MEMORIES_READ, SEARCH_READ};
use serde::{Deserialize, Serialize};

use super::params;
use crate::json::ValidJson;
use crate::{AppState, Authenticated, Problem};

/// Structured filters of a search.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchFiltersBody {
    pub category: Option<String>,
    pub scope: Option<String>,
    pub artifact_type: Option<String>,
    pub artifact_ref: Option<String>,
    pub entity: Option<String>,
    pub source: Option<String>,
    pub app_id: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// RFC 3339.
    pub from: Option<String>,
    /// RFC 3339.
    pub to: Option<String>,
}

/// `POST /api/v1/search` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    /// 1 to 2048 characters.
    pub query: String,
    /// 1 to 100 (default 10).
    pub limit: Option<i64>,
    #[serde(default)]
    pub filters: Option<SearchFiltersBody>,
    #[serde(default)]
    pub mode: Option<SearchMode>,
    /// Fusion weights (default from settings: 0.30 / 0.70 / 0.10).
    pub weights: Option<Weights>,
}

fn known<T: std::str::FromStr + ToString>(
    field: &str,
    raw: &Option<String>,
    out: &mut Vec<FieldViolation>,
) -> Option<String> {
    let raw = raw.as_deref()?;
    match raw.parse::<T>() {
        Ok(v) => Some(v.to_string()),
        Err(_) => {
            out.push(FieldViolation::new(field, format!("unknown value `{raw}`")));
            None
        }
    }
}

impl SearchBody {
    fn parse(self, forced: Option<SearchMode>) -> Result<SearchRequest, Vec<FieldViolation>> {
        let mut out = Vec::new();
        let limit = match self.limit {
            None => 10,
            Some(n) if (1..=loci_domain::search::MAX_LIMIT as i64).contains(&n) => n as usize,
            Some(_) => {
                out.push(FieldViolation::new("limit", "must be between 1 and 100"));
                10
            }
        };
        let f = self.filters.unwrap_or_default();
        let filters = SearchFilters {
            category: known::<Category>("filters.category", &f.category, &mut out),
            scope: known::<Scope>("filters.scope", &f.scope, &mut out),
            artifact_type: known::<ArtifactType>("filters.artifact_type", &f.artifact_type, &mut out),
            artifact_ref: f.artifact_ref,
            entity: f.entity,
            source: known::<Source>("filters.source", &f.source, &mut out),
            app_id: f.app_id.as_deref().and_then(|raw| params::id::<AppId>("filters.app_id", raw, &mut out)),
            tags: f.tags,
            from: f.from.as_deref().and_then(|raw| parse_time("filters.from", raw, &mut out)),
            to: f.to.as_deref().and_then(|raw| parse_time("filters.to", raw, &mut out)),
        };
        if !out.is_empty() {
            return Err(out);
        }
        Ok(SearchRequest {
            query: self.query,
            limit,
            filters,
            mode: forced.or(self.mode).unwrap_or_default(),
            weights: self.weights,
        })
    }
}

async fn run(
    state: web::Data<AppState>,
    auth: Authenticated,
    body: ValidJson<SearchBody>,
    forced: Option<SearchMode>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&state, &[SEARCH_READ])?;
    let request = body.0.parse(forced)?;
    Ok(HttpResponse::Ok().json(state.search.search(p, request).await?))
}

#[utoipa::path(post, path = "/api/v1/search", tag = "search", request_body = SearchBody, responses((status = 200, description = "Ranked results", body = loci_domain::search::SearchResponse), crate::openapi::ProblemResponses), security(("bearer" = [])))]
pub async fn search(
    state: web::Data<AppState>,
    auth: Authenticated,
    body: ValidJson<SearchBody>,
) -> Result<HttpResponse, Problem> {
    run(state, auth, body, None).await
}

#[utoipa::path(post, path = "/api/v1/search/lexical", tag = "search", request_body = SearchBody, responses((status = 200, description = "BM25 results only", body = loci_domain::search::SearchResponse), crate::openapi::ProblemResponses), security(("bearer" = [])))]
pub async fn lexical(
    state: web::Data<AppState>,
    auth: Authenticated,
    body: ValidJson<SearchBody>,
) -> Result<HttpResponse, Problem> {
    run(state, auth, body, Some(SearchMode::Lexical)).await
}

#[utoipa::path(post, path = "/api/v1/search/semantic", tag = "search", request_body = SearchBody, responses((status = 200, description = "Vector results only (503 EMBEDDER_UNAVAILABLE without an embedder)", body = loci_domain::search::SearchResponse), crate::openapi::ProblemResponses), security(("bearer" = [])))]
pub async fn semantic(
    state: web::Data<AppState>,
    auth: Authenticated,
    body: ValidJson<SearchBody>,
) -> Result<HttpResponse, Problem> {
    run(state, auth, body, Some(SearchMode::Semantic)).await
}

/// Memories similar to one memory.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SimilarList {
    items: Vec<SearchResult>,
    total: usize,
}

#[utoipa::path(get, path = "/api/v1/memories/{id}/similar", tag = "memories", params(("id" = String, Path, format = Uuid)), responses((status = 200, description = "Nearest memories by embedding", body = SimilarList), crate::openapi::ProblemResponses), security(("bearer" = [])))]
pub async fn similar(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&state, &[MEMORIES_READ])?;
    let mut out = Vec::new();
    let id = params::id::<MemoryId>("id", &id, &mut out).ok_or_else(|| Problem::from(out))?;
    let items = state.search.similar(p, id, 10).await?;
    Ok(HttpResponse::Ok().json(SimilarList { total: items.len(), items }))
}
