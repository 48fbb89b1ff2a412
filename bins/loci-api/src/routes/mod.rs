use actix_web::web;

pub(crate) mod apps;
pub(crate) mod backup;
pub(crate) mod memories;
pub(crate) mod meta;
pub(crate) mod search;

/// The REST API and its documentation.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/openapi.json").route(web::get().to(meta::openapi)))
        .service(web::resource("/docs").route(web::get().to(meta::docs_page)))
        .service(web::resource("/docs/{file}").route(web::get().to(meta::docs_asset)))
        .service(web::resource("/api/v1/whoami").route(web::get().to(meta::whoami)))
        .service(
            web::resource("/api/v1/memories")
                .route(web::post().to(memories::create))
                .route(web::get().to(memories::list))
                .route(web::delete().to(memories::delete)),
        )
        .service(web::resource("/api/v1/memories/filter").route(web::post().to(memories::filter)))
        .service(web::resource("/api/v1/memories/categories").route(web::get().to(memories::categories)))
        .service(web::resource("/api/v1/memories/actions/{action}").route(web::post().to(memories::action)))
        .service(
            web::resource("/api/v1/memories/{id}")
                .route(web::get().to(memories::get))
                .route(web::put().to(memories::update)),
        )
        .service(web::resource("/api/v1/memories/{id}/history").route(web::get().to(memories::history)))
        .service(web::resource("/api/v1/memories/{id}/access-log").route(web::get().to(memories::access_log)))
        .service(web::resource("/api/v1/memories/{id}/related").route(web::get().to(memories::related)))
        .service(web::resource("/api/v1/memories/{id}/similar").route(web::get().to(search::similar)))
        .service(web::resource("/api/v1/search").route(web::post().to(search::search)))
        .service(web::resource("/api/v1/search/lexical").route(web::post().to(search::lexical)))
        .service(web::resource("/api/v1/search/semantic").route(web::post().to(search::semantic)))
        .service(web::resource("/api/v1/apps").route(web::get().to(apps::list)))
        .service(web::resource("/api/v1/apps/{id}").route(web::get().to(apps::get)).route(web::put().to(apps::update)))
        .service(web::resource("/api/v1/apps/{id}/memories").route(web::get().to(apps::memories)))
        .service(web::resource("/api/v1/apps/{id}/accessed").route(web::get().to(apps::accessed)))
        .service(web::resource("/api/v1/stats").route(web::get().to(apps::stats)))
        .service(web::resource("/api/v1/backup/export").route(web::post().to(backup::export)))
        .service(web::resource("/api/v1/backup/import").route(web::post().to(backup::import)));
}
