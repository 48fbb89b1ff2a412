//! `/api/v1/entities` (entities:read): the entities of the caller's visible
//! memories, one entity, its co-mention network, the path between two.

use actix_web::{HttpResponse, web};
use loci_domain::entities::{EntityList, EntityListQuery, EntityView, NetworkQuery, NetworkView, PathQuery, PathView};
use loci_security::scopes::ENTITIES_READ;

use loci_app::Services;
use loci_http::{Authenticated, Problem};

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

#[utoipa::path(get, path = "/api/v1/entities/{name}", tag = "entities", params(("name" = String, Path, description = "The entity's name (normalised: case, possessive and punctuation do not matter)", max_length = 200)), responses((status = 200, description = "The entity", body = EntityView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn get(
    state: web::Data<Services>,
    auth: Authenticated,
    name: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[ENTITIES_READ])?;
    Ok(HttpResponse::Ok().json(state.entities.get(p, &name).await?))
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
