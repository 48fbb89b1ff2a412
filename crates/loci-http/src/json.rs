//! `ValidJson<T>`: the JSON body extractor of every write route. It checks,
//! in order: content type (415), size (413), UTF-8 and syntax (400), nesting
//! depth (400), then shape (422 with the failing field path) — so bad input
//! never becomes a 500.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use loci_core::ErrorCode;
use serde::de::DeserializeOwned;

use crate::{FieldError, Problem};

#[derive(Debug)]
pub struct ValidJson<T>(pub T);

/// Deepest nesting of arrays and objects, ignoring brackets inside strings.
fn depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Reads a JSON object body of type `T`: UTF-8 and syntax (400), nesting
/// depth (400), an object at the top (422), then shape (422 with the failing
/// field path). The checks of [`ValidJson`] after content type and size;
/// public for the fuzz targets.
pub fn parse_body<T: DeserializeOwned>(body: &[u8], max_depth: usize) -> Result<T, Problem> {
    if std::str::from_utf8(body).is_err() {
        return Err(Problem::new(ErrorCode::MalformedRequest, "the body is not valid UTF-8"));
    }
    if depth(body) > max_depth {
        return Err(Problem::new(ErrorCode::MalformedRequest, format!("JSON nesting deeper than {max_depth}")));
    }
    // Every body of the API is an object: serde would also read a
    // struct from an array (`[null, null]`), which no client means.
    if body.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|b| *b != b'{') {
        return Err(Problem::validation(vec![FieldError {
            field: "body".to_owned(),
            message: "must be a JSON object".to_owned(),
        }]));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => match de.end() {
            Ok(()) => Ok(v),
            Err(_) => Err(Problem::new(ErrorCode::MalformedRequest, "trailing characters after the JSON body")),
        },
        Err(e) if e.inner().is_data() => {
            let path = e.path().to_string();
            let field = if path == "." || path.is_empty() { "body".to_owned() } else { path };
            Err(Problem::validation(vec![FieldError { field, message: e.inner().to_string() }]))
        }
        Err(e) => Err(Problem::new(ErrorCode::MalformedRequest, format!("the body is not valid JSON: {}", e.inner()))),
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for ValidJson<T> {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let bytes = web::Bytes::from_request(&req, payload);
        Box::pin(async move {
            let is_json = req
                .headers()
                .get(actix_web::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .is_some_and(|v| {
                    let v = v.trim().to_ascii_lowercase();
                    v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
                });
            if !is_json {
                return Err(Problem::new(ErrorCode::UnsupportedMediaType, "expected Content-Type: application/json"));
            }
            let body = bytes.await.map_err(|e| {
                if e.as_response_error().status_code() == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE {
                    Problem::new(ErrorCode::PayloadTooLarge, "the body is too large")
                } else {
                    Problem::new(ErrorCode::MalformedRequest, "the body could not be read")
                }
            })?;
            let max_depth = req.app_data::<web::Data<JsonLimits>>().map_or(32, |l| l.max_depth);
            parse_body(&body, max_depth).map(ValidJson)
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(super::depth(br#"{"a":[1,{"b":"[[[{{{"}]}"#), 3);
        assert_eq!(super::depth(br#""\"[""#), 0);
        assert_eq!(super::depth(b"[[[[]]]]"), 4);
    }
}

/// Limits of [`ValidJson`] bodies (registered as app data).
#[derive(Debug, Clone, Copy)]
pub struct JsonLimits {
    /// Deepest nesting of arrays and objects (`limits.max_json_depth`).
    pub max_depth: usize,
}
