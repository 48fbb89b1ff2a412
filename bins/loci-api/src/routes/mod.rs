use actix_web::web;

mod health;
mod meta;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Resources (not bare routes) so a wrong method is a 405, not a 404.
    cfg.service(web::resource("/health/live").route(web::get().to(health::live)))
        .service(web::resource("/health/ready").route(web::get().to(health::ready)))
        .service(web::resource("/health/deps").route(web::get().to(health::deps)))
        .service(web::resource("/.well-known/oauth-protected-resource").route(web::get().to(meta::protected_resource)))
        .service(web::resource("/.well-known/jwks.json").route(web::get().to(meta::jwks)))
        .service(web::resource("/metrics").route(web::get().to(meta::metrics)))
        .service(web::resource("/api/v1/whoami").route(web::get().to(meta::whoami)));
}
