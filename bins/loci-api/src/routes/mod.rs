use actix_web::web;
use loci_http::method_not_allowed;

pub(crate) mod apps;
pub(crate) mod backup;
pub(crate) mod entities;
pub(crate) mod memories;
pub(crate) mod meta;
pub(crate) mod search;

/// The REST API and its documentation.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/openapi.json").route(web::get().to(meta::openapi)).default_service(method_not_allowed("GET")),
    )
    .service(web::resource("/docs").route(web::get().to(meta::docs_page)).default_service(method_not_allowed("GET")))
    .service(
        web::resource("/docs/{file}").route(web::get().to(meta::docs_asset)).default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/api/v1/whoami").route(web::get().to(meta::whoami)).default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/api/v1/memories")
            .route(web::post().to(memories::create))
            .route(web::get().to(memories::list))
            .route(web::delete().to(memories::delete))
            .default_service(method_not_allowed("GET, POST, DELETE")),
    )
    .service(
        web::resource("/api/v1/memories/filter")
            .route(web::post().to(memories::filter))
            .default_service(method_not_allowed("POST")),
    )
    .service(
        web::resource("/api/v1/memories/categories")
            .route(web::get().to(memories::categories))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/api/v1/memories/actions/{action}")
            .route(web::post().to(memories::action))
            .default_service(method_not_allowed("POST")),
    )
    .service(
        web::resource("/api/v1/memories/{id}")
            .route(web::get().to(memories::get))
            .route(web::put().to(memories::update))
            .default_service(method_not_allowed("GET, PUT")),
    )
    .service(
        web::resource("/api/v1/memories/{id}/history")
            .route(web::get().to(memories::history))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/api/v1/memories/{id}/access-log")
            .route(web::get().to(memories::access_log))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/api/v1/memories/{id}/related")
            .route(web::get().to(memories::related))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/api/v1/memories/{id}/similar")
            .route(web::get().to(search::similar))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/api/v1/search")
            .route(web::post().to(search::search))
            .default_service(method_not_allowed("POST")),
    )
    .service(
        web::resource("/api/v1/search/lexical")
            .route(web::post().to(search::lexical))
            .default_service(method_not_allowed("POST")),
    )
    .service(
        web::resource("/api/v1/search/semantic")
            .route(web::post().to(search::semantic))
            .default_service(method_not_allowed("POST")),
    )
    .service(web::resource("/api/v1/apps").route(web::get().to(apps::list)).default_service(method_not_allowed("GET")))
    .service(
        web::resource("/api/v1/apps/{id}")
            .route(web::get().to(apps::get))
            .route(web::put().to(apps::update))
            .default_service(method_not_allowed("GET, PUT")),
    )
    .service(
        web::resource("/api/v1/apps/{id}/memories")
            .route(web::get().to(apps::memories))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/api/v1/apps/{id}/accessed")
            .route(web::get().to(apps::accessed))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/api/v1/stats").route(web::get().to(apps::stats)).default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/api/v1/entities")
            .route(web::get().to(entities::list))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/api/v1/entities/path/{from}/{to}")
            .route(web::get().to(entities::path))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/api/v1/entities/{name}")
            .route(web::get().to(entities::get))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/api/v1/entities/{name}/network")
            .route(web::get().to(entities::network))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/api/v1/backup/export")
            .route(web::post().to(backup::export))
            .default_service(method_not_allowed("POST")),
    )
    .service(
        web::resource("/api/v1/backup/import")
            .route(web::post().to(backup::import))
            .default_service(method_not_allowed("POST")),
    );
}
