//! `/api/v1/memories` (memories:read / memories:write / memories:delete).

use actix_web::{HttpResponse, web};
use loci_core::MemoryId;
use loci_domain::memories::StateAction;
use loci_domain::validation::{CreateMemoryInput, UpdateMemoryInput};
use loci_security::scopes::{MEMORIES_DELETE, MEMORIES_READ, MEMORIES_WRITE};
use serde::Deserialize;
use serde_json::json;

use super::params::{self, ActionBody, FilterBody, IdsBody, ListQuery, PageQuery};
use crate::json::ValidJson;
use crate::{AppState, Authenticated, Problem};

fn memory_id(raw: &str) -> Result<MemoryId, Problem> {
    let mut out = Vec::new();
    params::id::<MemoryId>("id", raw, &mut out).ok_or_else(|| out.into())
}

pub async fn create(
    state: web::Data<AppState>,
    auth: Authenticated,
    body: ValidJson<CreateMemoryInput>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&state, &[MEMORIES_WRITE])?;
    let view = state.memories.create(p, body.0).await?;
    Ok(HttpResponse::Created().json(view))
}

pub async fn list(
    state: web::Data<AppState>,
    auth: Authenticated,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&state, &[MEMORIES_READ])?;
    let (filter, page) = query.parse()?;
    Ok(HttpResponse::Ok().json(state.memories.list(p, filter, page).await?))
}

pub async fn filter(
    state: web::Data<AppState>,
    auth: Authenticated,
    body: ValidJson<FilterBody>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&state, &[MEMORIES_READ])?;
    let (filter, page) = body.0.parse()?;
    Ok(HttpResponse::Ok().json(state.memories.list(p, filter, page).await?))
}

pub async fn categories(state: web::Data<AppState>, auth: Authenticated) -> Result<HttpResponse, Problem> {
    let p = auth.require(&state, &[MEMORIES_READ])?;
    let items = state.memories.categories(p).await?;
    Ok(HttpResponse::Ok().json(json!({ "categories": items, "total": items.len() })))
}

pub async fn get(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&state, &[MEMORIES_READ])?;
    Ok(HttpResponse::Ok().json(state.memories.get(p, memory_id(&id)?).await?))
}

pub async fn update(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<String>,
    body: ValidJson<UpdateMemoryInput>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&state, &[MEMORIES_WRITE])?;
    let view = state.memories.update(p, memory_id(&id)?, body.0).await?;
    // Index refreshes go through the outbox; the indexers arrive with the
    // retrieval issue, so none is reported as refreshed yet.
    Ok(HttpResponse::Ok().json(json!({ "memory": view, "indexes_refreshed": [], "indexes_pending": ["outbox"] })))
}

pub async fn delete(
    state: web::Data<AppState>,
    auth: Authenticated,
    body: ValidJson<IdsBody>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&state, &[MEMORIES_DELETE])?;
    let ids = body.0.parse()?;
    let outcome = state.memories.delete(p, &ids).await?;
    Ok(HttpResponse::Ok().json(json!({ "deleted": outcome.changed, "skipped": outcome.skipped })))
}

#[derive(Debug, Deserialize)]
pub struct ActionPath {
    action: String,
}

pub async fn action(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<ActionPath>,
    body: ValidJson<ActionBody>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&state, &[MEMORIES_WRITE])?;
    let action = match path.action.as_str() {
        "pause" => StateAction::Pause,
        "resume" => StateAction::Resume,
        "archive" => StateAction::Archive,
        _ => return Err(Problem::new(loci_core::ErrorCode::NotFound, "unknown action (pause, resume or archive)")),
    };
    let selection = body.0.parse()?;
    let outcome = state.memories.change_state(p, selection, action).await?;
    Ok(HttpResponse::Ok().json(json!({ "changed": outcome.changed, "skipped": outcome.skipped })))
}

pub async fn history(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&state, &[MEMORIES_READ])?;
    Ok(HttpResponse::Ok().json(state.memories.history(p, memory_id(&id)?).await?))
}

pub async fn access_log(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&state, &[MEMORIES_READ])?;
    let page = query.parse()?;
    Ok(HttpResponse::Ok().json(state.memories.access_log_of(p, memory_id(&id)?, page).await?))
}

pub async fn related(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&state, &[MEMORIES_READ])?;
    let items = state.memories.related(p, memory_id(&id)?, 20).await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items, "total": items.len() })))
}
