//! Authentication and authorisation, framework-agnostic.
//!
//! [`Authenticator::authenticate`] takes a method, a URL and the two
//! credential headers and returns a [`Principal`] or an [`AuthRejection`]
//! (typed error plus the exact `WWW-Authenticate` challenge). It validates
//! JWT access tokens (JWKS with rotation, algorithm allowlist, RFC 8725
//! claim checks) and DPoP proofs (RFC 9449, RFC 7638 thumbprints, replay
//! protection through a [`ReplayCache`]).
//!
//! Architecture invariants:
//! - Fails closed: any doubt (unknown key, unreachable replay cache, missing
//!   claim) rejects the request.
//! - No web framework here; the bins adapt requests to [`AuthRequest`].
//! - The token itself is never logged or put into an error message.

mod authenticator;
mod dpop;
mod error;
mod jwks;
mod jwt;
mod local_issuer;
mod principal;
pub mod rate_limit;
mod replay;
pub mod scopes;
pub mod sealing;
mod session;
mod thumbprint;

pub use authenticator::{AuthRequest, Authenticator, AuthenticatorConfig};
pub use dpop::{DpopConfig, ath_for, normalise_htu};
pub use error::{AuthError, AuthRejection};
pub use jwks::{JwksSource, KeyStore};
pub use jwt::{Algorithm, TokenValidator, ValidatedToken};
pub use local_issuer::{LocalIssuer, MAX_MINT_TTL, MintRequest};
pub use principal::Principal;
pub use rate_limit::{InProcessRateStore, RateLimitError, RateLimiter, RatePolicy, RateStatus, RateStore, RouteGroup};
pub use replay::{InMemoryReplayCache, ReplayCache, ReplayCacheError};
pub use session::{BindingMismatch, InMemorySessionStore, SessionBinding, SessionStore, SessionStoreError};
pub use thumbprint::jwk_thumbprint;
#[cfg(feature = "testing")]
pub mod testing;

/// Errors of setting up security components (keys, JWKS sources).
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("key error: {0}")]
    Key(String),
    #[error("JWKS error: {0}")]
    Jwks(String),
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    #[error("configuration error: {0}")]
    Config(String),
    /// A token the local issuer was asked to mint would be invalid.
    #[error("invalid token request: {0}")]
    InvalidMint(String),
}
