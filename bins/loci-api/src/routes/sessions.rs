//! `/api/v1/sessions/{session_id}` (memories:read; changes memories:write):
//! the caller's episodic memory of one agent session (see
//! `loci_domain::episodic`).

use actix_web::{HttpResponse, web};
use loci_domain::context::{ContextRequest, ContextView};
use loci_domain::episodic::{
    AddEpisodicInput, EpisodicCount, EpisodicItemView, EpisodicList, EpisodicListQuery, PromoteInput, PromotedView,
    SummarisedInput,
};
use loci_security::scopes::{MEMORIES_READ, MEMORIES_WRITE};
use uuid::Uuid;

use loci_app::Services;
use loci_domain::inputs::id;
use loci_http::{Authenticated, Problem, ValidJson};

/// A session item's id from the path: a malformed one is a 422 on
/// `item_id` (a problem document, as every error).
fn item_id(raw: &str) -> Result<Uuid, Problem> {
    let mut out = Vec::new();
    id::<Uuid>("item_id", raw, &mut out).ok_or_else(|| out.into())
}

#[utoipa::path(post, path = "/api/v1/sessions/{session_id}/items", tag = "sessions", params(("session_id" = String, Path, description = "1 to 128 of A-Z a-z 0-9 . _ -", max_length = 128)), request_body = AddEpisodicInput, responses((status = 201, description = "The item, kept for episodic.ttl_secs", body = EpisodicItemView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn add(
    state: web::Data<Services>,
    auth: Authenticated,
    session: web::Path<String>,
    body: ValidJson<AddEpisodicInput>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[MEMORIES_WRITE])?;
    Ok(HttpResponse::Created().json(state.episodic.add(p, &session, body.0).await?))
}

#[utoipa::path(get, path = "/api/v1/sessions/{session_id}/items", tag = "sessions", params(("session_id" = String, Path, max_length = 128), EpisodicListQuery), responses((status = 200, description = "The session's live items, most recent first (summarised ones only when asked)", body = EpisodicList), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<Services>,
    auth: Authenticated,
    session: web::Path<String>,
    q: web::Query<EpisodicListQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[MEMORIES_READ])?;
    Ok(HttpResponse::Ok().json(state.episodic.list(p, &session, &q).await?))
}

#[utoipa::path(get, path = "/api/v1/sessions/{session_id}/items/{item_id}", tag = "sessions", params(("session_id" = String, Path, max_length = 128), ("item_id" = String, Path, format = Uuid)), responses((status = 200, description = "The item", body = EpisodicItemView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn get(
    state: web::Data<Services>,
    auth: Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[MEMORIES_READ])?;
    let (session, id) = path.into_inner();
    let id = item_id(&id)?;
    Ok(HttpResponse::Ok().json(state.episodic.get(p, &session, id).await?))
}

#[utoipa::path(delete, path = "/api/v1/sessions/{session_id}/items/{item_id}", tag = "sessions", params(("session_id" = String, Path, max_length = 128), ("item_id" = String, Path, format = Uuid)), responses((status = 204, description = "Deleted"), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn delete(
    state: web::Data<Services>,
    auth: Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[MEMORIES_WRITE])?;
    let (session, id) = path.into_inner();
    let id = item_id(&id)?;
    state.episodic.delete(p, &session, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/api/v1/sessions/{session_id}/items/{item_id}/promote", tag = "sessions", params(("session_id" = String, Path, max_length = 128), ("item_id" = String, Path, format = Uuid)), request_body = PromoteInput, responses((status = 201, description = "The long-term memory the item became (created as POST /api/v1/memories creates; the item is marked promoted and summarised; a second call answers the same memory)", body = PromotedView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn promote(
    state: web::Data<Services>,
    auth: Authenticated,
    path: web::Path<(String, String)>,
    body: ValidJson<PromoteInput>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[MEMORIES_WRITE])?;
    let (session, id) = path.into_inner();
    let id = item_id(&id)?;
    Ok(HttpResponse::Created().json(state.episodic.promote(p, &session, id, body.0).await?))
}

#[utoipa::path(post, path = "/api/v1/sessions/{session_id}/summarised", tag = "sessions", params(("session_id" = String, Path, max_length = 128)), request_body = SummarisedInput, responses((status = 200, description = "How many live items were newly marked summarised", body = EpisodicCount), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn summarised(
    state: web::Data<Services>,
    auth: Authenticated,
    session: web::Path<String>,
    body: ValidJson<SummarisedInput>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[MEMORIES_WRITE])?;
    Ok(HttpResponse::Ok().json(state.episodic.mark_summarised(p, &session, &body.0).await?))
}

#[utoipa::path(post, path = "/api/v1/sessions/{session_id}/decay", tag = "sessions", params(("session_id" = String, Path, max_length = 128)), responses((status = 200, description = "How many live items had their recency multiplied by 0.9 (their TTL is kept)", body = EpisodicCount), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn decay(
    state: web::Data<Services>,
    auth: Authenticated,
    session: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[MEMORIES_WRITE])?;
    Ok(HttpResponse::Ok().json(state.episodic.decay(p, &session).await?))
}

#[utoipa::path(delete, path = "/api/v1/sessions/{session_id}", tag = "sessions", params(("session_id" = String, Path, max_length = 128)), responses((status = 200, description = "The session is gone: how many live items it held", body = EpisodicCount), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn expire(
    state: web::Data<Services>,
    auth: Authenticated,
    session: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[MEMORIES_WRITE])?;
    Ok(HttpResponse::Ok().json(state.episodic.expire(p, &session).await?))
}

#[utoipa::path(post, path = "/api/v1/context", tag = "sessions", request_body = ContextRequest, responses((status = 200, description = "What an agent should see now, within max_tokens: the user's profile facts, the session's recent items and the memories most relevant to the query (current only, each content once, with ids)", body = ContextView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn context(
    state: web::Data<Services>,
    auth: Authenticated,
    body: ValidJson<ContextRequest>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[MEMORIES_READ])?;
    Ok(HttpResponse::Ok().json(state.context.assemble(p, body.0).await?))
}
