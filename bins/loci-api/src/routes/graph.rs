//! `/api/v1/graph` (graph:read): stats, counts by dimension, tags, graph
//! search, timeline, connectivity and communities of the caller's visible
//! memories.

use actix_web::{HttpResponse, web};
use loci_domain::entities::EntityList;
use loci_domain::graph::{
    AggregateView, CommunitiesQuery, ConnectivityView, CooccurrenceQuery, DimensionName, EntityCommunitiesView,
    GraphSearchQuery, GraphSearchView, GraphStatsView, LimitQuery, MemoryCommunitiesView, RelatedTagsView,
    TagCooccurrenceView, TimelineQuery, TimelineView,
};
use loci_domain::rules::MAX_SEARCH_LIMIT;
use loci_security::scopes::GRAPH_READ;

use loci_app::Services;
use loci_http::{Authenticated, Problem};

#[utoipa::path(get, path = "/api/v1/graph/stats", tag = "graph", responses((status = 200, description = "Sizes of the caller's visible graph", body = GraphStatsView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn stats(state: web::Data<Services>, auth: Authenticated) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[GRAPH_READ])?;
    Ok(HttpResponse::Ok().json(state.graph.stats(p).await?))
}

#[utoipa::path(get, path = "/api/v1/graph/aggregate/{dimension}", tag = "graph", params(("dimension" = DimensionName, Path, description = "What the memories are counted by"), LimitQuery), responses((status = 200, description = "Visible memories counted by the dimension, most first", body = AggregateView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn aggregate(
    state: web::Data<Services>,
    auth: Authenticated,
    dimension: web::Path<String>,
    q: web::Query<LimitQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[GRAPH_READ])?;
    let limit = q.parse()?;
    Ok(HttpResponse::Ok().json(state.graph.aggregate(p, &dimension, limit).await?))
}

#[utoipa::path(get, path = "/api/v1/graph/tags/cooccurrence", tag = "graph", params(CooccurrenceQuery), responses((status = 200, description = "Pairs of tags set on the same visible memories, most first", body = TagCooccurrenceView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn tag_cooccurrence(
    state: web::Data<Services>,
    auth: Authenticated,
    q: web::Query<CooccurrenceQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[GRAPH_READ])?;
    let (limit, min) = q.parse()?;
    Ok(HttpResponse::Ok().json(state.graph.tag_cooccurrence(p, limit, min).await?))
}

#[utoipa::path(get, path = "/api/v1/graph/tags/{key}/related", tag = "graph", params(("key" = String, Path, max_length = 128), LimitQuery), responses((status = 200, description = "Tags set together with the key on visible memories", body = RelatedTagsView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn related_tags(
    state: web::Data<Services>,
    auth: Authenticated,
    key: web::Path<String>,
    q: web::Query<LimitQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[GRAPH_READ])?;
    let limit = q.parse()?;
    Ok(HttpResponse::Ok().json(state.graph.related_tags(p, &key, limit).await?))
}

#[utoipa::path(get, path = "/api/v1/graph/search/memories", tag = "graph", params(GraphSearchQuery), responses((status = 200, description = "Visible memories mentioning the entities the query names", body = GraphSearchView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn search_memories(
    state: web::Data<Services>,
    auth: Authenticated,
    q: web::Query<GraphSearchQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[GRAPH_READ])?;
    let (query, limit) = q.parse(MAX_SEARCH_LIMIT)?;
    Ok(HttpResponse::Ok().json(state.graph.search_memories(p, &query, limit).await?))
}

#[utoipa::path(get, path = "/api/v1/graph/search/entities", tag = "graph", params(GraphSearchQuery), responses((status = 200, description = "Visible entities whose name contains the query: equal first, then starting with it, then most mentioned", body = EntityList), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn search_entities(
    state: web::Data<Services>,
    auth: Authenticated,
    q: web::Query<GraphSearchQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[GRAPH_READ])?;
    let (query, limit) = q.parse(MAX_SEARCH_LIMIT)?;
    let items = state.graph.search_entities(p, &query, limit).await?;
    Ok(HttpResponse::Ok().json(EntityList { total: items.len(), items }))
}

#[utoipa::path(get, path = "/api/v1/graph/timeline", tag = "graph", params(TimelineQuery), responses((status = 200, description = "Events of the visible memories (recorded, changed, dates their text names), oldest first", body = TimelineView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn timeline(
    state: web::Data<Services>,
    auth: Authenticated,
    q: web::Query<TimelineQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[GRAPH_READ])?;
    let req = q.parse()?;
    Ok(HttpResponse::Ok().json(state.graph.timeline(p, &req).await?))
}

#[utoipa::path(get, path = "/api/v1/graph/analytics/connectivity", tag = "graph", responses((status = 200, description = "Components, density and degree of the visible co-mention graph", body = ConnectivityView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn connectivity(state: web::Data<Services>, auth: Authenticated) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[GRAPH_READ])?;
    Ok(HttpResponse::Ok().json(state.graph.connectivity(p).await?))
}

#[utoipa::path(get, path = "/api/v1/graph/analytics/communities/entities", tag = "graph", params(CommunitiesQuery), responses((status = 200, description = "Communities of entities (seeded label propagation over co-mentions), largest first", body = EntityCommunitiesView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn entity_communities(
    state: web::Data<Services>,
    auth: Authenticated,
    q: web::Query<CommunitiesQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[GRAPH_READ])?;
    let req = q.parse()?;
    Ok(HttpResponse::Ok().json(state.graph.entity_communities(p, req).await?))
}

#[utoipa::path(get, path = "/api/v1/graph/analytics/communities/memories", tag = "graph", params(CommunitiesQuery), responses((status = 200, description = "Communities of memories (each joins the entity community of most of its entities), largest first", body = MemoryCommunitiesView), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn memory_communities(
    state: web::Data<Services>,
    auth: Authenticated,
    q: web::Query<CommunitiesQuery>,
) -> Result<HttpResponse, Problem> {
    let p = auth.require(&[GRAPH_READ])?;
    let req = q.parse()?;
    Ok(HttpResponse::Ok().json(state.graph.memory_communities(p, req).await?))
}
