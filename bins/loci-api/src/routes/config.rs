//! `/api/v1/config` (admin:read): the effective settings, secrets redacted.
//! Changing runtime-tunable settings over the API is not built yet.

use actix_web::{HttpResponse, web};
use loci_security::scopes::ADMIN_READ;

use loci_app::Services;
use loci_http::{Authenticated, Problem};

#[utoipa::path(get, path = "/api/v1/config", tag = "config", responses((status = 200, description = "The effective settings (defaults < file < environment), every secret as [REDACTED]", body = Object), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn get(state: web::Data<Services>, auth: Authenticated) -> Result<HttpResponse, Problem> {
    auth.require(&[ADMIN_READ])?;
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(&*state.settings))
}
