//! `/api/v1/apps` (apps:read / apps:write) and `/api/v1/stats` (stats:read).

use actix_web::{HttpResponse, web};
use loci_core::AppId;
use loci_domain::FieldViolation;
use loci_domain::apps::{AppQuery, AppSort};
use loci_security::scopes::{APPS_READ, APPS_WRITE, STATS_READ};
use serde::Deserialize;
use serde_json::json;

use loci_app::Services;
use loci_domain::inputs::{self as params, PageQuery};
use loci_http::ValidJson;
use loci_http::{Authenticated, Problem};

fn app_id(raw: &str) -> Result<AppId, Problem> {
    let mut out = Vec::new();
    params::id::<AppId>("id", raw, &mut out).ok_or_else(|| out.into())
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AppListQuery {
    name: Option<String>,
    is_active: Option<bool>,
    /// name, memories or memories_accessed.
    sort_by: Option<String>,
    /// asc or desc.
    sort_direction: Option<String>,
    #[param(value_type = Option<u64>, minimum = 1)]
    page: Option<String>,
    #[param(value_type = Option<u64>, minimum = 1, maximum = 100)]
    size: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/apps", tag = "apps", params(AppListQuery), responses((status = 200, description = "A page of apps with counts", body = loci_core::model::Page<loci_core::model::AppSummary>), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<Services>,
    auth: Authenticated,
    q: web::Query<AppListQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[APPS_READ])?;
    let mut out: Vec<FieldViolation> = Vec::new();
    let page = params::page(q.page.as_deref(), q.size.as_deref(), &mut out);
    let sort = match q.sort_by.as_deref() {
        None | Some("name") => AppSort::Name,
        Some("memories") => AppSort::Memories,
        Some("memories_accessed") => AppSort::MemoriesAccessed,
        Some(_) => {
            out.push(FieldViolation::new("sort_by", "must be name, memories or memories_accessed"));
            AppSort::Name
        }
    };
    let descending = match q.sort_direction.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => {
            out.push(FieldViolation::new("sort_direction", "must be asc or desc"));
            false
        }
    };
    if !out.is_empty() {
        return Err(out.into());
    }
    let query = AppQuery { name: q.name.clone(), is_active: q.is_active, sort, descending };
    Ok(HttpResponse::Ok().json(state.apps.list(p, &query, page).await?))
}

#[utoipa::path(get, path = "/api/v1/apps/{id}", tag = "apps", params(("id" = String, Path, format = Uuid)), responses((status = 200, description = "The app with counts", body = loci_core::model::AppSummary), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn get(
    state: web::Data<Services>,
    auth: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[APPS_READ])?;
    Ok(HttpResponse::Ok().json(state.apps.get(p, app_id(&id)?).await?))
}

#[utoipa::path(get, path = "/api/v1/apps/{id}/memories", tag = "apps", params(("id" = String, Path, format = Uuid), PageQuery), responses((status = 200, description = "Memories created through the app", body = loci_core::model::Page<loci_domain::memories::MemoryView>), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn memories(
    state: web::Data<Services>,
    auth: Authenticated,
    id: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[APPS_READ])?;
    let page = q.parse()?;
    Ok(HttpResponse::Ok().json(state.apps.memories(p, app_id(&id)?, page).await?))
}

#[utoipa::path(get, path = "/api/v1/apps/{id}/accessed", tag = "apps", params(("id" = String, Path, format = Uuid), PageQuery), responses((status = 200, description = "Memories read through the app", body = loci_core::model::Page<loci_domain::apps::AccessedMemory>), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn accessed(
    state: web::Data<Services>,
    auth: Authenticated,
    id: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[APPS_READ])?;
    let page = q.parse()?;
    Ok(HttpResponse::Ok().json(state.apps.accessed(p, app_id(&id)?, page).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppUpdate {
    is_active: bool,
}

#[utoipa::path(put, path = "/api/v1/apps/{id}", tag = "apps", params(("id" = String, Path, format = Uuid)), request_body = AppUpdate, responses((status = 200, description = "The app", body = loci_core::model::AppSummary), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn update(
    state: web::Data<Services>,
    auth: Authenticated,
    id: web::Path<String>,
    body: ValidJson<AppUpdate>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[APPS_WRITE])?;
    Ok(HttpResponse::Ok().json(state.apps.set_active(p, app_id(&id)?, body.0.is_active).await?))
}

#[utoipa::path(get, path = "/api/v1/stats", tag = "apps", responses((status = 200, description = "Counts for the caller", body = Object), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn stats(state: web::Data<Services>, auth: Authenticated) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[STATS_READ])?;
    let memories = state.memories.stats(p).await?;
    let apps = state.apps.summaries(p).await?;
    Ok(HttpResponse::Ok().json(json!({
        "total_memories": memories.total_memories,
        "total_apps": apps.len(),
        "memories_by_state": memories.by_state,
        "memories_by_category": memories.by_category,
        "apps": apps,
    })))
}
