//! `/api/v1/memories` (memories:read / memories:write / memories:delete).

use actix_web::{HttpResponse, web};
use loci_core::model::CategoryRecord;
use loci_core::{JobId, MemoryId};
use loci_domain::infer::AddOutcome;
use loci_domain::memories::StateAction;
use loci_domain::memories::{BulkOutcome, MemoryView};
use loci_domain::validation::{CreateMemoryInput, UpdateMemoryInput};
use loci_security::scopes::{MEMORIES_DELETE, MEMORIES_READ, MEMORIES_WRITE};
use serde::{Deserialize, Serialize};

use loci_app::Services;
use loci_domain::inputs::{self as params, ActionBody, FilterBody, IdsBody, ListQuery, PageQuery, ScopedQuery};
use loci_http::ValidJson;
use loci_http::{Authenticated, Problem};

/// Categories in use by the caller's visible memories.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CategoryList {
    categories: Vec<CategoryRecord>,
    total: usize,
}

/// An updated memory and the state of its index refreshes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UpdatedMemory {
    memory: MemoryView,
    /// Indexes already refreshed.
    indexes_refreshed: Vec<String>,
    /// Indexes whose refresh is queued in the outbox (`vector`, `lexical`,
    /// `graph`; vector only with an embedder).
    indexes_pending: Vec<String>,
}

/// Result of a bulk delete.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeleteOutcome {
    deleted: Vec<MemoryId>,
    skipped: Vec<MemoryId>,
}

/// What a create answers with 201: the memory, or with `infer` the facts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // the document's shape only: handlers serialise the variants' types
pub enum Created {
    Memory(Box<MemoryView>),
    Inferred(loci_domain::infer::InferOutcome),
}

/// Related memories.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RelatedList {
    items: Vec<MemoryView>,
    total: usize,
}

fn memory_id(raw: &str) -> Result<MemoryId, Problem> {
    let mut out = Vec::new();
    params::id::<MemoryId>("id", raw, &mut out).ok_or_else(|| out.into())
}

#[utoipa::path(post, path = "/api/v1/memories", tag = "memories", request_body = loci_domain::validation::CreateMemoryInput, responses(
    (status = 201, description = "Created: the memory; with `infer`, the facts and what each did (at least one stored)", body = Created),
    (status = 200, description = "With `infer`: the facts and what each did, none stored (all already known or retractions)", body = loci_domain::infer::InferOutcome),
    (status = 202, description = "With `infer`: queued as a job (`async`, or a large input); `GET /api/v1/memories/jobs/{id}` reports it", body = loci_domain::infer::JobView),
    (status = 429, description = "With `infer` as a job: the org has `infer.max_pending_jobs_per_org` jobs queued or running", body = loci_http::Problem, content_type = "application/problem+json"),
    loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn create(
    state: web::Data<Services>,
    metrics: web::Data<loci_http::Metrics>,
    auth: Authenticated,
    body: ValidJson<CreateMemoryInput>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[MEMORIES_WRITE])?;
    let outcome = state.infer.add(p, body.0).await?;
    metrics.memories_created(outcome.stored());
    Ok(match outcome {
        AddOutcome::Created(view) => HttpResponse::Created().json(view),
        AddOutcome::Inferred(outcome) if outcome.created_any() => HttpResponse::Created().json(outcome),
        AddOutcome::Inferred(outcome) => HttpResponse::Ok().json(outcome),
        AddOutcome::Queued(job) => HttpResponse::Accepted()
            .insert_header(("Location", format!("/api/v1/memories/jobs/{}", job.job_id)))
            .json(job),
    })
}

#[utoipa::path(get, path = "/api/v1/memories/jobs/{id}", tag = "memories", params(("id" = String, Path, format = Uuid)), responses((status = 200, description = "An asynchronous add of the caller: queued, running, done (with its results) or failed (with its error)", body = loci_domain::infer::JobView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn job(
    state: web::Data<Services>,
    auth: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[MEMORIES_READ])?;
    let mut out = Vec::new();
    let id = params::id::<JobId>("id", &id, &mut out).ok_or_else(|| Problem::from(out))?;
    Ok(HttpResponse::Ok().json(state.infer.job(p, id).await?))
}

#[utoipa::path(get, path = "/api/v1/memories", tag = "memories", params(ListQuery), responses((status = 200, description = "A page of memories", body = loci_core::model::Page<loci_domain::memories::MemoryView>), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<Services>,
    auth: Authenticated,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[MEMORIES_READ])?;
    let (filter, page) = query.parse()?;
    Ok(HttpResponse::Ok().json(state.memories.list(p, filter, page).await?))
}

#[utoipa::path(get, path = "/api/v1/memories/scoped", tag = "memories", params(ScopedQuery), responses((status = 200, description = "A scoped retrieval: visible active memories with identical content (normalised) kept once, in the copy of the highest scope precedence (tie: newest), paginated after deduplication", body = loci_domain::memories::ScopedListView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn scoped(
    state: web::Data<Services>,
    auth: Authenticated,
    query: web::Query<ScopedQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[MEMORIES_READ])?;
    let (filter, page) = query.parse()?;
    Ok(HttpResponse::Ok().json(state.memories.scoped_list(p, filter, page).await?))
}

#[utoipa::path(post, path = "/api/v1/memories/filter", tag = "memories", request_body = FilterBody, responses((status = 200, description = "A page of memories", body = loci_core::model::Page<loci_domain::memories::MemoryView>), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn filter(
    state: web::Data<Services>,
    auth: Authenticated,
    body: ValidJson<FilterBody>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[MEMORIES_READ])?;
    let (filter, page) = body.0.parse()?;
    Ok(HttpResponse::Ok().json(state.memories.list(p, filter, page).await?))
}

#[utoipa::path(get, path = "/api/v1/memories/categories", tag = "memories", responses((status = 200, description = "Categories in use", body = CategoryList), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn categories(state: web::Data<Services>, auth: Authenticated) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[MEMORIES_READ])?;
    let categories = state.memories.categories(p).await?;
    Ok(HttpResponse::Ok().json(CategoryList { total: categories.len(), categories }))
}

#[utoipa::path(get, path = "/api/v1/memories/{id}", tag = "memories", params(("id" = String, Path, format = Uuid)), responses((status = 200, description = "The memory", body = loci_domain::memories::MemoryView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn get(
    state: web::Data<Services>,
    auth: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[MEMORIES_READ])?;
    Ok(HttpResponse::Ok().json(state.memories.get(p, memory_id(&id)?).await?))
}

#[utoipa::path(post, path = "/api/v1/memories/{id}/supersede", tag = "memories", params(("id" = String, Path, format = Uuid)), request_body = CreateMemoryInput, responses((status = 201, description = "The new memory, and the old one archived with valid_to and superseded_by (one transaction); 409 when the old one is not current", body = loci_domain::memories::SupersededView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn supersede(
    state: web::Data<Services>,
    auth: Authenticated,
    id: web::Path<String>,
    body: ValidJson<CreateMemoryInput>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[MEMORIES_WRITE])?;
    Ok(HttpResponse::Created().json(state.memories.supersede(p, memory_id(&id)?, body.0).await?))
}

#[utoipa::path(post, path = "/api/v1/memories/{id}/retract", tag = "memories", params(("id" = String, Path, format = Uuid)), responses((status = 200, description = "The memory, no longer current: archived with valid_to set; 409 when it is not current", body = loci_domain::memories::MemoryView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn retract(
    state: web::Data<Services>,
    auth: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[MEMORIES_WRITE])?;
    Ok(HttpResponse::Ok().json(state.memories.retract(p, memory_id(&id)?).await?))
}

#[utoipa::path(put, path = "/api/v1/memories/{id}", tag = "memories", params(("id" = String, Path, format = Uuid)), request_body = loci_domain::validation::UpdateMemoryInput, responses((status = 200, description = "Updated", body = UpdatedMemory), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn update(
    state: web::Data<Services>,
    auth: Authenticated,
    id: web::Path<String>,
    body: ValidJson<UpdateMemoryInput>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[MEMORIES_WRITE])?;
    let view = state.memories.update(p, memory_id(&id)?, body.0).await?;
    // Index refreshes go through the outbox: none is done when this answers.
    Ok(HttpResponse::Ok().json(UpdatedMemory {
        memory: view,
        indexes_refreshed: Vec::new(),
        indexes_pending: state.search.index_names(),
    }))
}

#[utoipa::path(delete, path = "/api/v1/memories", tag = "memories", request_body = IdsBody, responses((status = 200, description = "Deleted and skipped ids", body = DeleteOutcome), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn delete(
    state: web::Data<Services>,
    auth: Authenticated,
    body: ValidJson<IdsBody>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[MEMORIES_DELETE])?;
    let ids = body.0.parse()?;
    let outcome = state.memories.delete(p, &ids).await?;
    Ok(HttpResponse::Ok().json(DeleteOutcome { deleted: outcome.changed, skipped: outcome.skipped }))
}

#[derive(Debug, Deserialize)]
pub struct ActionPath {
    action: String,
}

#[utoipa::path(post, path = "/api/v1/memories/actions/{action}", tag = "memories", params(("action" = String, Path, description = "pause, resume or archive")), request_body = ActionBody, responses((status = 200, description = "Changed and skipped ids", body = loci_domain::memories::BulkOutcome), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn action(
    state: web::Data<Services>,
    auth: Authenticated,
    path: web::Path<ActionPath>,
    body: ValidJson<ActionBody>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[MEMORIES_WRITE])?;
    let Some(action) = StateAction::from_name(&path.action) else {
        return Err(Problem::new(loci_core::ErrorCode::NotFound, "unknown action (pause, resume or archive)"));
    };
    let selection = body.0.parse()?;
    let outcome: BulkOutcome = state.memories.change_state(p, selection, action).await?;
    Ok(HttpResponse::Ok().json(outcome))
}

#[utoipa::path(get, path = "/api/v1/memories/{id}/history", tag = "memories", params(("id" = String, Path, format = Uuid)), responses((status = 200, description = "State changes, oldest first", body = Vec<loci_core::model::StatusChange>), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn history(
    state: web::Data<Services>,
    auth: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[MEMORIES_READ])?;
    Ok(HttpResponse::Ok().json(state.memories.history(p, memory_id(&id)?).await?))
}

#[utoipa::path(get, path = "/api/v1/memories/{id}/access-log", tag = "memories", params(("id" = String, Path, format = Uuid), PageQuery), responses((status = 200, description = "Reads, newest first", body = loci_core::model::Page<loci_core::model::AccessLogEntry>), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn access_log(
    state: web::Data<Services>,
    auth: Authenticated,
    id: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[MEMORIES_READ])?;
    let page = query.parse()?;
    Ok(HttpResponse::Ok().json(state.memories.access_log_of(p, memory_id(&id)?, page).await?))
}

#[utoipa::path(get, path = "/api/v1/memories/{id}/related", tag = "memories", params(("id" = String, Path, format = Uuid)), responses((status = 200, description = "Memories sharing categories or the entity", body = RelatedList), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn related(
    state: web::Data<Services>,
    auth: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[MEMORIES_READ])?;
    let items = state.memories.related(p, memory_id(&id)?, 20).await?;
    Ok(HttpResponse::Ok().json(RelatedList { total: items.len(), items }))
}
