//! `/api/v1/config`: the effective settings, secrets redacted (admin:read),
//! and the change of the runtime-tunable ones (admin:write, operators only).

use actix_web::{HttpResponse, web};
use loci_app::Services;
use loci_app::runtime::{RuntimeChangeError, is_operator};
use loci_core::ErrorCode;
use loci_http::{Authenticated, FieldError, Problem, ValidJson, mask};
use loci_security::scopes::{ADMIN_READ, ADMIN_WRITE};
use loci_settings::RuntimeSettings;

#[utoipa::path(get, path = "/api/v1/config", tag = "config", responses((status = 200, description = "The effective settings (defaults < file < environment < runtime changes), every secret as [REDACTED]", body = Object), loci_http::ProblemResponses), security(("bearer" = [])))]
pub async fn get(state: web::Data<Services>, auth: Authenticated) -> Result<HttpResponse, Problem> {
    auth.require(&[ADMIN_READ])?;
    let settings = state.effective_settings().await;
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(&settings))
}

#[utoipa::path(put, path = "/api/v1/config", tag = "config", request_body(content = Object, description = "Any of `search` {weight_vector, weight_lexical, weight_graph}, `rate_limit` {enabled, default_plan, plans, org_plans}, `log_level`; what is absent stays as it is"), responses((status = 200, description = "The settings now in force, secrets redacted; kept across restarts", body = Object), loci_http::ProblemResponses), security(("bearer" = [])))]
/// Changes runtime-tunable settings for every tenant of this process (and
/// its restarts): only callers of an operator org (`auth.operator_orgs`).
pub async fn put(
    state: web::Data<Services>,
    auth: Authenticated,
    body: ValidJson<RuntimeSettings>,
) -> Result<HttpResponse, Problem> {
    let principal = auth.require(&[ADMIN_WRITE])?;
    if !is_operator(&state.settings, principal.org_id.as_str()) {
        return Err(Problem::new(
            ErrorCode::OperatorRequired,
            "runtime settings are shared by every tenant: only an org listed in auth.operator_orgs may change them",
        ));
    }
    let change = body.0;
    let mut errors: Vec<FieldError> = change
        .empty_sections()
        .into_iter()
        .map(|section| FieldError { field: section.into(), message: "names no setting to change".into() })
        .collect();
    if change.keys().is_empty() && errors.is_empty() {
        errors.push(FieldError {
            field: "body".into(),
            message: "names no setting to change (search, rate_limit, log_level)".into(),
        });
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    match state.change_runtime_settings(&change).await {
        Ok(settings) => {
            tracing::info!(
                target: "audit",
                event = "config.changed",
                org = %mask(principal.org_id.as_str()),
                actor = %mask(&principal.subject),
                keys = ?change.keys(),
            );
            Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(&settings))
        }
        Err(RuntimeChangeError::Invalid(problems)) => Err(Problem::validation(
            problems.into_iter().map(|(field, message)| FieldError { field, message }).collect(),
        )),
        Err(e @ RuntimeChangeError::Persist(_)) => {
            tracing::error!(error = %e, "runtime settings not saved");
            Err(Problem::new(ErrorCode::Internal, "the change could not be saved; nothing was changed"))
        }
    }
}
