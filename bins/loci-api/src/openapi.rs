//! The OpenAPI 3.1 document, generated from the handlers' annotations and the
//! request/response types, served at `/openapi.json`, browsable at `/docs`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::Problem;

/// Every error a route can answer with: an RFC 9457 problem.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum ProblemResponses {
    #[response(status = 400, description = "Malformed request", content_type = "application/problem+json")]
    BadRequest(#[to_schema] Problem),
    #[response(status = 401, description = "Missing or invalid credentials", content_type = "application/problem+json")]
    Unauthorized(Problem),
    #[response(status = 403, description = "Missing scope or paused app", content_type = "application/problem+json")]
    Forbidden(Problem),
    #[response(status = 404, description = "Not found (or not visible)", content_type = "application/problem+json")]
    NotFound(Problem),
    #[response(status = 405, description = "Method not allowed", content_type = "application/problem+json")]
    MethodNotAllowed(Problem),
    #[response(status = 409, description = "Illegal state transition", content_type = "application/problem+json")]
    Conflict(Problem),
    #[response(status = 413, description = "Body too large", content_type = "application/problem+json")]
    TooLarge(Problem),
    #[response(status = 415, description = "Not JSON", content_type = "application/problem+json")]
    UnsupportedMediaType(Problem),
    #[response(status = 422, description = "Invalid fields", content_type = "application/problem+json")]
    Invalid(Problem),
    #[response(status = 503, description = "A dependency is unavailable", content_type = "application/problem+json")]
    Unavailable(Problem),
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token; DPoP-bound tokens use `Authorization: DPoP` with a `DPoP` proof.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Loci", description = "Memory and retrieval server for AI agents. Errors are RFC 9457 problems; see docs/errors.md."),
    paths(
        crate::routes::health::live,
        crate::routes::health::ready,
        crate::routes::health::deps,
        crate::routes::meta::whoami,
        crate::routes::meta::protected_resource,
        crate::routes::memories::create,
        crate::routes::memories::list,
        crate::routes::memories::filter,
        crate::routes::memories::categories,
        crate::routes::memories::get,
        crate::routes::memories::update,
        crate::routes::memories::delete,
        crate::routes::memories::action,
        crate::routes::memories::history,
        crate::routes::memories::access_log,
        crate::routes::memories::related,
        crate::routes::search::similar,
        crate::routes::search::search,
        crate::routes::search::lexical,
        crate::routes::search::semantic,
        crate::routes::apps::list,
        crate::routes::apps::get,
        crate::routes::apps::memories,
        crate::routes::apps::accessed,
        crate::routes::apps::update,
        crate::routes::apps::stats,
        crate::routes::backup::export,
        crate::routes::backup::import,
    ),
    components(schemas(Problem, crate::FieldError)),
    modifiers(&Security),
    tags(
        (name = "health", description = "Liveness and dependencies (public)"),
        (name = "memories", description = "Store, list, filter, change and delete memories"),
        (name = "apps", description = "The apps a user writes through"),
        (name = "search", description = "Hybrid (vector + lexical + graph) search"),
        (name = "backup", description = "Export and import of a user's memories"),
        (name = "identity", description = "Who the caller is; protected-resource metadata"),
    )
)]
pub struct ApiDoc;

/// The document as JSON.
pub fn document() -> String {
    ApiDoc::openapi().to_json().unwrap_or_else(|_| "{}".to_owned())
}
