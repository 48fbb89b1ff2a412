//! `/api/v1/entities` (entities:read; the merge entities:write): the entities
//! of the caller's visible memories, one entity, its co-mention network, its
//! relations and memories, the path between two, centrality, duplicates and
//! their merge.

use actix_web::{HttpResponse, web};
use loci_domain::entities::{
    CentralityView, DuplicatesView, EntityDetail, EntityList, EntityListQuery, EntityMemoriesQuery, EntityMemoriesView,
    MergeRequest, MergeView, NetworkQuery, NetworkView, PathQuery, PathView, RelationsQuery, RelationsView,
};
use loci_domain::graph::LimitQuery;
use loci_domain::knowledge_graph::{KgImport, KgImportRequest};
use loci_security::scopes::{ENTITIES_READ, ENTITIES_WRITE, MEMORIES_WRITE};

use loci_app::Services;
use loci_http::{Authenticated, Problem, ValidJson};

#[utoipa::path(get, path = "/api/v1/entities", tag = "entities", params(EntityListQuery), responses((status = 200, description = "Entities of the caller's visible memories, most mentioned first", body = EntityList), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<Services>,
    auth: Authenticated,
    q: web::Query<EntityListQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[ENTITIES_READ])?;
    let (min_memories, limit) = q.parse()?;
    Ok(HttpResponse::Ok().json(state.entities.list(p, min_memories, limit).await?))
}

#[utoipa::path(get, path = "/api/v1/entities/{name}", tag = "entities", params(("name" = String, Path, description = "The entity's name (normalised: case, possessive and punctuation do not matter)", max_length = 200)), responses((status = 200, description = "The entity, with the names merged into it", body = EntityDetail), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn get(
    state: web::Data<Services>,
    auth: Authenticated,
    name: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[ENTITIES_READ])?;
    Ok(HttpResponse::Ok().json(state.entities.get(p, &name).await?))
}

/// `GET /api/v1/entities/import`: the entity named `import` (the path is
/// also the import route's, which takes POST).
pub async fn get_named_import(state: web::Data<Services>, auth: Authenticated) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[ENTITIES_READ])?;
    Ok(HttpResponse::Ok().json(state.entities.get(p, "import").await?))
}

#[utoipa::path(get, path = "/api/v1/entities/{name}/network", tag = "entities", params(("name" = String, Path, max_length = 200), NetworkQuery), responses((status = 200, description = "The entity and the entities co-mentioned with it in visible memories", body = NetworkView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn network(
    state: web::Data<Services>,
    auth: Authenticated,
    name: web::Path<String>,
    q: web::Query<NetworkQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[ENTITIES_READ])?;
    let limit = q.parse()?;
    Ok(HttpResponse::Ok().json(state.entities.network(p, &name, limit).await?))
}

#[utoipa::path(get, path = "/api/v1/entities/path/{from}/{to}", tag = "entities", params(("from" = String, Path, max_length = 200), ("to" = String, Path, max_length = 200), PathQuery), responses((status = 200, description = "The shortest chain of co-mentions in visible memories (found: false when none within max_hops)", body = PathView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn path(
    state: web::Data<Services>,
    auth: Authenticated,
    ends: web::Path<(String, String)>,
    q: web::Query<PathQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[ENTITIES_READ])?;
    let max_hops = q.parse()?;
    let (from, to) = ends.into_inner();
    Ok(HttpResponse::Ok().json(state.entities.path(p, &from, &to, max_hops).await?))
}

#[utoipa::path(get, path = "/api/v1/entities/{name}/relations", tag = "entities", params(("name" = String, Path, max_length = 200), RelationsQuery), responses((status = 200, description = "The entities related to it in visible memories", body = RelationsView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn relations(
    state: web::Data<Services>,
    auth: Authenticated,
    name: web::Path<String>,
    q: web::Query<RelationsQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[ENTITIES_READ])?;
    let req = q.parse()?;
    Ok(HttpResponse::Ok().json(state.entities.relations(p, &name, &req).await?))
}

#[utoipa::path(get, path = "/api/v1/entities/{name}/memories", tag = "entities", params(("name" = String, Path, max_length = 200), EntityMemoriesQuery), responses((status = 200, description = "Visible memories mentioning the entity, newest first", body = EntityMemoriesView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn memories(
    state: web::Data<Services>,
    auth: Authenticated,
    name: web::Path<String>,
    q: web::Query<EntityMemoriesQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[ENTITIES_READ])?;
    let (limit, offset) = q.parse()?;
    Ok(HttpResponse::Ok().json(state.entities.memories(p, &name, limit, offset).await?))
}

#[utoipa::path(get, path = "/api/v1/entities/analytics/centrality", tag = "entities", params(LimitQuery), responses((status = 200, description = "The most central visible entities (weighted PageRank and degree over co-mentions)", body = CentralityView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn centrality(
    state: web::Data<Services>,
    auth: Authenticated,
    q: web::Query<LimitQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[ENTITIES_READ])?;
    let limit = q.parse()?;
    Ok(HttpResponse::Ok().json(state.entities.centrality(p, limit).await?))
}

#[utoipa::path(get, path = "/api/v1/entities/normalization/duplicates", tag = "entities", params(LimitQuery), responses((status = 200, description = "Pairs of visible entities that likely name one thing, surest first", body = DuplicatesView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn duplicates(
    state: web::Data<Services>,
    auth: Authenticated,
    q: web::Query<LimitQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[ENTITIES_READ])?;
    let limit = q.parse()?;
    Ok(HttpResponse::Ok().json(state.entities.duplicates(p, limit).await?))
}

#[utoipa::path(post, path = "/api/v1/entities/normalization/merge", tag = "entities", request_body = MergeRequest, responses((status = 200, description = "What the merge does (dry run, the default) or did", body = MergeView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn merge(
    state: web::Data<Services>,
    auth: Authenticated,
    body: ValidJson<MergeRequest>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[ENTITIES_WRITE])?;
    Ok(HttpResponse::Ok().json(state.entities.merge(p, body.0).await?))
}

#[utoipa::path(post, path = "/api/v1/entities/import", tag = "entities", request_body = KgImportRequest, responses((status = 200, description = "The knowledge graph of an MCP memory-server file, stored as the caller's memories (existing entities and relations skipped; bad lines reported)", body = KgImport), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn import(
    state: web::Data<Services>,
    auth: Authenticated,
    body: ValidJson<KgImportRequest>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[MEMORIES_WRITE])?;
    Ok(HttpResponse::Ok().json(state.knowledge_graph.import_jsonl(p, &body.0.jsonl).await?))
}
