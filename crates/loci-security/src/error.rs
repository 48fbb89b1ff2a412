//! Authentication failures and their RFC 6750 / RFC 9449 challenges.

use loci_core::ErrorCode;

/// Why a request was not authenticated or authorised. Messages never contain
/// the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials were presented")]
    MissingAuth,
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("the token has expired")]
    TokenExpired,
    #[error("invalid claims: {0}")]
    InvalidClaims(String),
    #[error("the token's iat is too far in the future")]
    InvalidIat,
    #[error("invalid DPoP proof: {0}")]
    InvalidDpopProof(String),
    #[error("a DPoP nonce from the server is required")]
    UseDpopNonce,
    #[error("the DPoP proof was already used (replay)")]
    DpopReplay,
    #[error("missing scope: {}", .0.join(" "))]
    InsufficientScope(Vec<String>),
    #[error("the DPoP replay cache is unavailable")]
    ReplayCacheUnavailable,
}

impl AuthError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::MissingAuth => ErrorCode::MissingAuth,
            Self::InvalidToken(_) => ErrorCode::InvalidToken,
            Self::TokenExpired => ErrorCode::TokenExpired,
            Self::InvalidClaims(_) => ErrorCode::InvalidClaims,
            Self::InvalidIat => ErrorCode::InvalidIat,
            Self::InvalidDpopProof(_) | Self::DpopReplay => ErrorCode::InvalidDpopProof,
            Self::UseDpopNonce => ErrorCode::UseDpopNonce,
            Self::InsufficientScope(_) => ErrorCode::InsufficientScope,
            Self::ReplayCacheUnavailable => ErrorCode::DependencyUnavailable,
        }
    }
}

/// A rejected request: the error plus what the response must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRejection {
    pub error: AuthError,
    /// The `WWW-Authenticate` header value, when the status calls for one.
    pub www_authenticate: Option<String>,
    /// A fresh `DPoP-Nonce` header value, when nonces are in use.
    pub dpop_nonce: Option<String>,
}

impl std::fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

/// Quotes a value for an auth-param (RFC 9110 quoted-string).
pub(crate) fn quote(value: &str) -> String {
    let cleaned: String =
        value.chars().filter(|c| !c.is_control()).map(|c| if c == '"' || c == '\\' { '\'' } else { c }).collect();
    format!("\"{cleaned}\"")
}
