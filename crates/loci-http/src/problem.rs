//! RFC 9457 problem details with Loci's stable error codes.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, error::JsonPayloadError, error::QueryPayloadError};
use loci_core::ErrorCode;
use serde::Serialize;

use crate::request_id;

/// One invalid field of a 422 response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// An error response: `application/problem+json` with `type`, `title`,
/// `status`, `detail`, the machine `code` and the `request_id`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    #[schema(value_type = String)]
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    #[schema(value_type = String, example = "NOT_FOUND")]
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The W3C trace the request belongs to (32 hex digits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Extension members, e.g. `required_scope`.
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// Response headers that belong to this problem (`WWW-Authenticate`, ...).
    #[serde(skip)]
    #[schema(ignore)]
    pub headers: Vec<(&'static str, String)>,
    #[serde(skip)]
    #[schema(ignore)]
    error_code: ErrorCode,
}

impl Problem {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            type_uri: code.type_uri(),
            title: code.title(),
            status: code.status(),
            detail: detail.into(),
            code: code.code(),
            request_id: request_id::current(),
            trace_id: request_id::current_trace(),
            errors: Vec::new(),
            extra: serde_json::Map::new(),
            headers: Vec::new(),
            error_code: code,
        }
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let mut p = Self::new(ErrorCode::ValidationFailed, "one or more fields are invalid");
        p.errors = errors;
        p
    }

    pub fn code(&self) -> ErrorCode {
        self.error_code
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn with_member(mut self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extra.insert(name.to_owned(), value.into());
        self
    }

    /// Maps JSON body extraction failures: wrong content type 415, too large
    /// 413, unparseable 400, well-formed but wrong shape 422.
    pub fn from_json_error(err: &JsonPayloadError) -> Self {
        match err {
            JsonPayloadError::ContentType => {
                Self::new(ErrorCode::UnsupportedMediaType, "expected Content-Type: application/json")
            }
            JsonPayloadError::Overflow { limit } | JsonPayloadError::OverflowKnownLength { limit, .. } => {
                Self::new(ErrorCode::PayloadTooLarge, format!("the body exceeds {limit} bytes"))
            }
            JsonPayloadError::Deserialize(e) if e.is_data() => {
                Self::validation(vec![FieldError { field: "body".into(), message: e.to_string() }])
            }
            JsonPayloadError::Deserialize(e) => {
                Self::new(ErrorCode::MalformedRequest, format!("the body is not valid JSON: {e}"))
            }
            other => Self::new(ErrorCode::MalformedRequest, other.to_string()),
        }
    }

    pub fn from_query_error(err: &QueryPayloadError) -> Self {
        Self::validation(vec![FieldError { field: "query".into(), message: err.to_string() }])
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = self.clone();
        if body.request_id.is_none() {
            body.request_id = request_id::current();
        }
        if body.trace_id.is_none() {
            body.trace_id = request_id::current_trace();
        }
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json")));
        for (name, value) in &self.headers {
            if let Ok(value) = HeaderValue::from_str(value) {
                res.append_header((*name, value));
            }
        }
        res.json(body)
    }
}

/// Fallback for unknown routes: a 404 problem, never an empty body.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, Problem> {
    Err(Problem::new(ErrorCode::NotFound, format!("no route for {} {}", req.method(), req.path())))
}

/// The answer of a resource to a method it does not serve: 405 with the
/// `Allow` header RFC 9110 requires (mount with `Resource::default_service`).
pub fn method_not_allowed(allow: &'static str) -> actix_web::Route {
    actix_web::web::route().to(move |req: HttpRequest| async move {
        Err::<HttpResponse, Problem>(
            Problem::new(ErrorCode::MethodNotAllowed, format!("{} is not allowed on {}", req.method(), req.path()))
                .with_header("Allow", allow),
        )
    })
}

/// Gives error responses that have no body of their own (actix's 405, 413,
/// 400s from the HTTP layer, ...) a problem body with the request id.
/// Responses with a content type (problems, health reports) pass unchanged.
pub fn ensure_problem_body<B>(
    res: actix_web::dev::ServiceResponse<B>,
) -> actix_web::Result<actix_web::middleware::ErrorHandlerResponse<B>> {
    use actix_web::middleware::ErrorHandlerResponse;
    if res.headers().contains_key(header::CONTENT_TYPE) {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let code = match status.as_u16() {
        400 | 411 => ErrorCode::MalformedRequest,
        401 => ErrorCode::MissingAuth,
        404 => ErrorCode::NotFound,
        409 => ErrorCode::Conflict,
        405 => ErrorCode::MethodNotAllowed,
        408 | 504 => ErrorCode::Timeout,
        413 => ErrorCode::PayloadTooLarge,
        415 => ErrorCode::UnsupportedMediaType,
        422 => ErrorCode::ValidationFailed,
        429 => ErrorCode::RateLimited,
        503 => ErrorCode::DependencyUnavailable,
        s if s >= 500 => ErrorCode::Internal,
        _ => ErrorCode::MalformedRequest,
    };
    let detail = match code {
        ErrorCode::MethodNotAllowed => format!("{} is not allowed on {}", res.request().method(), res.request().path()),
        _ => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    let mut problem = Problem::new(code, detail);
    // Keep the status actix chose (e.g. 408) even where the code's default differs.
    problem.status = status.as_u16();
    let (req, _) = res.into_parts();
    let rendered = problem.error_response();
    Ok(ErrorHandlerResponse::Response(actix_web::dev::ServiceResponse::new(req, rendered).map_into_right_body()))
}

impl From<Vec<loci_domain::FieldViolation>> for Problem {
    fn from(errors: Vec<loci_domain::FieldViolation>) -> Self {
        Problem::validation(errors.into_iter().map(|e| FieldError { field: e.field, message: e.message }).collect())
    }
}

impl From<loci_domain::DomainError> for Problem {
    fn from(e: loci_domain::DomainError) -> Self {
        match e {
            loci_domain::DomainError::Validation(errors) => errors.into(),
            other => {
                let problem = Problem::new(other.code(), other.public_detail());
                // A busy or unreachable dependency: tell clients when to retry
                // (RFC 9110 10.2.3) instead of leaving them to guess.
                if other.code() == ErrorCode::DependencyUnavailable {
                    let wait = other.retry_after().map_or(1, |d| d.as_secs() + u64::from(d.subsec_nanos() > 0));
                    problem.with_header("Retry-After", wait.max(1).to_string())
                } else {
                    problem
                }
            }
        }
    }
}

/// Every error a route can answer with: an RFC 9457 problem.
#[derive(Debug, utoipa::IntoResponses)]
#[allow(dead_code)] // only its derive is used, by the OpenAPI document
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
    #[response(
        status = 429,
        description = "Rate limited: wait Retry-After seconds",
        content_type = "application/problem+json"
    )]
    TooManyRequests(Problem),
    #[response(status = 503, description = "A dependency is unavailable", content_type = "application/problem+json")]
    Unavailable(Problem),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn an_unavailable_dependency_is_a_503_with_retry_after() {
        let e = loci_domain::DomainError::SearchUnavailable(vec!["lexical".into()]);
        let problem = Problem::from(e);
        assert_eq!((problem.status, problem.code), (503, "DEPENDENCY_UNAVAILABLE"));
        assert!(problem.headers.contains(&("Retry-After", "1".to_owned())));
        let other = Problem::from(loci_domain::DomainError::NotFound("memory"));
        assert!(other.headers.is_empty());
    }
}
