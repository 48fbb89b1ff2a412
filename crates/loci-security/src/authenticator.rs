//! The authenticator: credentials in, principal or challenge out.

use std::sync::Arc;
use std::time::Duration;

use josekit::jwk::Jwk;
use loci_settings::{DpopPolicy, Profile, Settings};

use crate::dpop::{DpopConfig, NonceIssuer, verify_proof};
use crate::error::quote;
use crate::jwks::{JwksSource, KeyStore};
use crate::jwt::{Algorithm, TokenValidator};
use crate::{AuthError, AuthRejection, LocalIssuer, Principal, ReplayCache, SecurityError, scopes};

/// The parts of an HTTP request authentication needs.
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The absolute URL the client addressed (scheme, host, port, path).
    pub url: &'a str,
    /// The `Authorization` header, if present.
    pub authorization: Option<&'a str>,
    /// Every `DPoP` header value (more than one is an error).
    pub dpop: &'a [&'a str],
    /// The RFC 9728 metadata URL to advertise in challenges
    /// (`resource_metadata`, required by MCP clients to discover the issuer).
    pub resource_metadata: Option<&'a str>,
}

/// Everything the authenticator needs, built from settings.
#[derive(Debug)]
pub struct AuthenticatorConfig {
    pub tokens: TokenValidator,
    pub dpop: DpopConfig,
}

impl AuthenticatorConfig {
    /// Keys come from `auth.jwks_path`, else `auth.jwks_url`, else (embedded
    /// profile only) the local signing key; HMAC keys are added for HS256.
    pub async fn from_settings(settings: &Settings, local: Option<&LocalIssuer>) -> Result<Self, SecurityError> {
        let auth = &settings.auth;
        let source = if let Some(path) = &auth.jwks_path {
            JwksSource::File(path.clone())
        } else if let Some(url) = &auth.jwks_url {
            JwksSource::Url(url.clone())
        } else if let (Profile::Embedded, Some(local)) = (settings.profile, local) {
            JwksSource::Static(vec![local.public_jwk()])
        } else {
            return Err(SecurityError::Config("no JWKS configured (auth.jwks_url or auth.jwks_path)".into()));
        };
        let keys = KeyStore::new(
            source,
            Duration::from_secs(auth.jwks_cache_ttl_secs),
            Duration::from_secs(auth.jwks_refresh_min_interval_secs),
        )
        .await?;
        let mut hmac_keys = Vec::new();
        for key in &auth.hmac_keys {
            let mut jwk = Jwk::new("oct");
            jwk.set_key_value(key.expose().as_bytes());
            hmac_keys.push(jwk);
        }
        let allowed: Vec<Algorithm> = auth.algorithms.iter().filter_map(|a| Algorithm::parse(a)).collect();
        let tokens = TokenValidator::new(
            keys,
            hmac_keys,
            allowed.clone(),
            settings.issuer().to_owned(),
            settings.audiences(),
            Duration::from_secs(auth.leeway_secs),
            Duration::from_secs(auth.max_iat_skew_secs),
            scopes::role_bundles(&auth.roles),
        );
        let d = &settings.dpop;
        let nonce = if d.require_nonce {
            let secret: Vec<u8> = match &d.nonce_secret {
                Some(s) => s.expose().as_bytes().to_vec(),
                None => {
                    uuid::Uuid::new_v4().as_bytes().iter().chain(uuid::Uuid::new_v4().as_bytes()).copied().collect()
                }
            };
            Some(NonceIssuer::new(&secret, Duration::from_secs(d.nonce_window_secs))?)
        } else {
            None
        };
        let mut proof_algs: Vec<Algorithm> = allowed.into_iter().filter(|a| !a.is_symmetric()).collect();
        if proof_algs.is_empty() {
            proof_algs = vec![Algorithm::Es256, Algorithm::EdDsa];
        }
        let dpop = DpopConfig {
            policy: d.policy,
            algorithms: proof_algs,
            max_age: Duration::from_secs(d.max_age_secs),
            future_skew: Duration::from_secs(d.future_skew_secs),
            nonce,
            verifiers: Default::default(),
        };
        Ok(Self { tokens, dpop })
    }
}

/// Authenticates requests. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Authenticator {
    config: AuthenticatorConfig,
    replay: Arc<dyn ReplayCache>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Dpop,
}

impl Authenticator {
    pub fn new(config: AuthenticatorConfig, replay: Arc<dyn ReplayCache>) -> Self {
        Self { config, replay }
    }

    pub fn keys(&self) -> &KeyStore {
        self.config.tokens.keys()
    }

    pub fn dpop_policy(&self) -> DpopPolicy {
        self.config.dpop.policy
    }

    /// Algorithms accepted for DPoP proofs.
    pub fn dpop_algorithms(&self) -> Vec<&'static str> {
        self.config.dpop.algorithms.iter().map(|a| a.name()).collect()
    }

    /// Validates the credentials of one request.
    pub async fn authenticate(&self, req: &AuthRequest<'_>) -> Result<Principal, AuthRejection> {
        let (scheme, token) = match parse_authorization(req.authorization) {
            Ok(v) => v,
            Err(error) => return Err(self.reject(error, None, req.resource_metadata)),
        };
        self.authenticate_token(req, scheme, token)
            .await
            .map_err(|error| self.reject(error, Some(scheme), req.resource_metadata))
    }

    async fn authenticate_token(
        &self,
        req: &AuthRequest<'_>,
        scheme: Scheme,
        token: &str,
    ) -> Result<Principal, AuthError> {
        let policy = self.config.dpop.policy;
        if scheme == Scheme::Dpop && policy == DpopPolicy::Off {
            return Err(AuthError::InvalidToken("DPoP is not enabled on this server".into()));
        }
        let validated = self.config.tokens.validate(token).await?;
        if req.dpop.len() > 1 && policy != DpopPolicy::Off {
            return Err(AuthError::InvalidDpopProof("more than one DPoP header".into()));
        }
        let proof = req.dpop.first().copied().filter(|_| policy != DpopPolicy::Off);
        let bound = validated.cnf_jkt.as_deref();
        match (scheme, bound) {
            (Scheme::Bearer, Some(_)) => {
                return Err(AuthError::InvalidToken("a DPoP-bound token must use the DPoP scheme".into()));
            }
            (Scheme::Dpop, None) => return Err(AuthError::InvalidToken("the token is not DPoP-bound".into())),
            (Scheme::Bearer, None) if policy == DpopPolicy::Required => {
                return Err(AuthError::InvalidToken("this server requires DPoP-bound tokens".into()));
            }
            _ => {}
        }
        let proof = match (scheme, proof) {
            (Scheme::Dpop, None) => return Err(AuthError::InvalidDpopProof("missing DPoP proof".into())),
            (_, proof) => proof,
        };
        if let Some(proof) = proof {
            let verified = verify_proof(&self.config.dpop, proof, req.method, req.url, Some(token))?;
            if bound.is_some_and(|jkt| verified.jkt != jkt) {
                return Err(AuthError::InvalidDpopProof("the proof key does not match the token's cnf.jkt".into()));
            }
            let ttl = self.config.dpop.max_age + self.config.dpop.future_skew + Duration::from_secs(5);
            let key = format!("dpop:{}:{}", verified.jkt, verified.jti);
            match self.replay.first_use(&key, ttl).await {
                Ok(true) => {}
                Ok(false) => return Err(AuthError::DpopReplay),
                Err(e) => {
                    tracing::error!(error = %e, "DPoP replay cache unavailable; rejecting (fail closed)");
                    return Err(AuthError::ReplayCacheUnavailable);
                }
            }
        }
        Ok(validated.principal)
    }

    /// A 403 for a principal that lacks scopes (with the RFC 6750 challenge).
    pub fn insufficient_scope(&self, missing: Vec<String>) -> AuthRejection {
        let challenge =
            format!("Bearer realm=\"loci\", error=\"insufficient_scope\", scope={}", quote(&missing.join(" ")));
        AuthRejection {
            error: AuthError::InsufficientScope(missing),
            www_authenticate: Some(challenge),
            dpop_nonce: None,
        }
    }

    fn reject(&self, error: AuthError, scheme: Option<Scheme>, resource_metadata: Option<&str>) -> AuthRejection {
        let dpop = &self.config.dpop;
        let metadata = resource_metadata.map(|url| format!(", resource_metadata={}", quote(url))).unwrap_or_default();
        let algs = format!("algs={}{metadata}", quote(&dpop.algs_param()));
        let bearer = format!("Bearer realm=\"loci\"{metadata}");
        let dpop_plain = format!("DPoP {algs}");
        let describe = |code: &str| match &error {
            AuthError::InvalidToken(d) | AuthError::InvalidClaims(d) | AuthError::InvalidDpopProof(d) => {
                format!("error=\"{code}\", error_description={}", quote(d))
            }
            other => format!("error=\"{code}\", error_description={}", quote(&other.to_string())),
        };
        let www = match (&error, scheme) {
            // RFC 6750 3.1: no error attribute when no credentials were sent.
            (AuthError::MissingAuth, _) => Some(match dpop.policy {
                DpopPolicy::Off => bearer,
                DpopPolicy::Optional => format!("{bearer}, {dpop_plain}"),
                DpopPolicy::Required => dpop_plain,
            }),
            (AuthError::InvalidDpopProof(_) | AuthError::DpopReplay, _) => {
                Some(format!("DPoP {algs}, {}", describe("invalid_dpop_proof")))
            }
            (AuthError::UseDpopNonce, _) => Some(format!("DPoP {algs}, {}", describe("use_dpop_nonce"))),
            (AuthError::ReplayCacheUnavailable, _) => None,
            (AuthError::InsufficientScope(_), _) => None,
            // Token problems: answer in the scheme the client used, and steer
            // bound or required-DPoP tokens to the DPoP scheme.
            (_, Some(Scheme::Dpop)) if dpop.policy != DpopPolicy::Off => {
                Some(format!("DPoP {algs}, {}", describe("invalid_token")))
            }
            (AuthError::InvalidToken(d), Some(Scheme::Bearer))
                if d.contains("DPoP-bound") || d.contains("requires DPoP") =>
            {
                Some(format!("DPoP {algs}, {}", describe("invalid_token")))
            }
            (_, _) => Some(format!("{bearer}, {}", describe("invalid_token"))),
        };
        let dpop_nonce = dpop.nonce.as_ref().and_then(NonceIssuer::current);
        AuthRejection { error, www_authenticate: www, dpop_nonce }
    }
}

/// Splits `Authorization` into scheme and token. Absent, empty or another
/// scheme (Basic, ...) means no usable credentials.
fn parse_authorization(header: Option<&str>) -> Result<(Scheme, &str), AuthError> {
    let header = header.map(str::trim).filter(|h| !h.is_empty()).ok_or(AuthError::MissingAuth)?;
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return Err(AuthError::MissingAuth);
    };
    let token = rest.trim();
    if token.is_empty() || token.contains(' ') {
        return Err(AuthError::InvalidToken("empty or malformed credentials".into()));
    }
    Ok((scheme, token))
}
