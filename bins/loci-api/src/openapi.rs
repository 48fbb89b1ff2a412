//! The OpenAPI 3.1 document, generated from the handlers' annotations and the
//! request/response types, served at `/openapi.json`, browsable at `/docs`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use loci_http::Problem;

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
        loci_http::health::live,
        loci_http::health::ready,
        loci_http::health::deps,
        crate::routes::meta::whoami,
        loci_http::common::protected_resource,
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
    components(schemas(Problem, loci_http::FieldError)),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use loci_domain::rules::MAX_PAGE_SIZE;
    use serde_json::Value;

    use super::*;

    /// utoipa takes the bounds of query parameters as literals: this keeps
    /// them equal to the domain's rules.
    #[test]
    fn page_size_bounds_match_the_domain_rules() {
        let doc: Value = serde_json::from_str(&document()).unwrap();
        let mut checked = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (_, op) in item.as_object().unwrap() {
                for param in op["parameters"].as_array().into_iter().flatten() {
                    if param["name"] == "size" {
                        assert_eq!(param["schema"]["maximum"], Value::from(MAX_PAGE_SIZE), "{path}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked >= 2, "the paged routes declare `size` ({checked} found)");
    }
}
