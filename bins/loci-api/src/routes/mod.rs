use actix_web::web;

mod health;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/health")
            .route("/live", web::get().to(health::live))
            .route("/ready", web::get().to(health::ready))
            .route("/deps", web::get().to(health::deps)),
    );
}
