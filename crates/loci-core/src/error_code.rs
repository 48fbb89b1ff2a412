//! The one table of machine error codes. REST problem bodies and MCP tool
//! errors both take `status`, `code` and `title` from here, so a client sees the
//! same code whatever the transport. Codes are stable across versions; see
//! docs/errors.md.

use std::fmt;

macro_rules! error_codes {
    ($($variant:ident = ($status:literal, $code:literal, $title:literal);)+) => {
        /// Stable machine-readable error codes.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $($variant),+ }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            /// HTTP status the code maps to.
            pub const fn status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status),+ }
            }

            /// The stable `code` member of problem bodies.
            pub const fn code(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code),+ }
            }

            /// Short human summary (the problem's `title`).
            pub const fn title(self) -> &'static str {
                match self { $(ErrorCode::$variant => $title),+ }
            }
        }
    };
}

error_codes! {
    MalformedRequest = (400, "MALFORMED_REQUEST", "The request could not be parsed");
    MissingAuth = (401, "MISSING_AUTH", "Authentication is required");
    InvalidToken = (401, "INVALID_TOKEN", "The access token is invalid");
    TokenExpired = (401, "TOKEN_EXPIRED", "The access token has expired");
    InvalidClaims = (401, "INVALID_CLAIMS", "The access token's claims are not acceptable");
    InvalidIat = (401, "INVALID_IAT", "The access token's issue time is not acceptable");
    InvalidDpopProof = (401, "INVALID_DPOP_PROOF", "The DPoP proof is invalid");
    UseDpopNonce = (401, "USE_DPOP_NONCE", "A DPoP nonce from the server is required");
    InsufficientScope = (403, "INSUFFICIENT_SCOPE", "The access token lacks a required scope");
    AppPaused = (403, "APP_PAUSED", "The app is paused");
    SessionBindingInvalid = (403, "SESSION_BINDING_INVALID", "The session belongs to another identity");
    HostNotAllowed = (403, "HOST_NOT_ALLOWED", "The Host header names a host this server does not serve");
    OriginNotAllowed = (403, "ORIGIN_NOT_ALLOWED", "The request's Origin is not allowed");
    OperatorRequired = (403, "OPERATOR_REQUIRED", "Only an operator org may change settings every tenant shares");
    NotFound = (404, "NOT_FOUND", "The resource does not exist");
    SessionNotFound = (404, "SESSION_NOT_FOUND", "The MCP session is unknown or has expired");
    MethodNotAllowed = (405, "METHOD_NOT_ALLOWED", "The method is not allowed on this resource");
    InvalidStateTransition = (409, "INVALID_STATE_TRANSITION", "The state change is not allowed");
    Conflict = (409, "CONFLICT", "The request conflicts with the current state");
    PayloadTooLarge = (413, "PAYLOAD_TOO_LARGE", "The request body is too large");
    UnsupportedMediaType = (415, "UNSUPPORTED_MEDIA_TYPE", "The content type is not supported");
    ValidationFailed = (422, "VALIDATION_FAILED", "The request has invalid fields");
    InvalidInput = (422, "INVALID_INPUT", "The tool arguments are invalid");
    InferUnavailable = (422, "INFER_UNAVAILABLE", "Fact inference is not configured");
    RateLimited = (429, "RATE_LIMITED", "Too many requests");
    Internal = (500, "INTERNAL", "An internal error occurred");
    NotImplemented = (501, "NOT_IMPLEMENTED", "This capability is not implemented yet");
    DependencyUnavailable = (503, "DEPENDENCY_UNAVAILABLE", "A required dependency is unavailable");
    EmbedderUnavailable = (503, "EMBEDDER_UNAVAILABLE", "The embedding model is unavailable");
    GraphAnalyticsUnavailable = (503, "GRAPH_ANALYTICS_UNAVAILABLE", "The graph engine cannot run this analysis");
    Timeout = (504, "TIMEOUT", "The operation timed out");
}

impl ErrorCode {
    /// RFC 9457 `type`: a URI naming the problem kind, documented in docs/errors.md.
    pub fn type_uri(self) -> String {
        format!("urn:loci:problem:{}", self.code().to_ascii_lowercase())
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_upper_snake_case_with_error_statuses() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.code()), "duplicate {}", code.code());
            assert!(code.code().chars().all(|c| c.is_ascii_uppercase() || c == '_'));
            assert!((400..600).contains(&code.status()));
        }
    }

    #[test]
    fn type_uri_names_the_code() {
        assert_eq!(ErrorCode::NotFound.type_uri(), "urn:loci:problem:not_found");
    }
}
