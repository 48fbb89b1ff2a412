//! actix-web adapter of loci-security: the `Authenticated` extractor turns the
//! request's credentials into a principal, or into a 401/403/503 problem with
//! the exact challenge headers. Failures are audit-logged (never the token)
//! and counted.

use std::future::Future;
use std::pin::Pin;

use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use loci_core::ErrorCode;
use loci_security::{AuthError, AuthRejection, AuthRequest, Authenticator, Principal};

use crate::{Metrics, Problem};

/// What authenticating a request needs, and nothing more: the
/// authenticator, the metrics that count failures, and the external base
/// URL that DPoP proofs are checked against. Registered as app data by
/// [`crate::Application`].
#[derive(Debug, Clone)]
pub struct AuthContext {
    pub authenticator: Arc<Authenticator>,
    pub metrics: Metrics,
    /// `server.external_base_url`; `None` uses the request's scheme and Host.
    pub external_base_url: Option<String>,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal, AuthContext);

impl Authenticated {
    /// Ok when every scope is held; otherwise a 403 naming the missing ones.
    pub fn require(&self, scopes: &[&str]) -> Result<&Principal, Problem> {
        match self.0.require_scopes(scopes) {
            Ok(()) => Ok(&self.0),
            Err(AuthError::InsufficientScope(missing)) => {
                let rejection = self.1.authenticator.insufficient_scope(missing);
                Err(rejection_problem(&self.1, &rejection, &self.0.org_id.to_string()))
            }
            Err(other) => Err(Problem::new(other.code(), other.to_string())),
        }
    }
}

pub use loci_core::mask;

/// Renders a rejection, logs it as an audit event and counts it.
pub fn rejection_problem(ctx: &AuthContext, rejection: &AuthRejection, org: &str) -> Problem {
    let code = rejection.error.code();
    ctx.metrics.auth_failure(code.code());
    let reason = rejection.error.to_string();
    if rejection.error == AuthError::DpopReplay {
        tracing::warn!(target: "audit", event = "auth.dpop_replay", code = code.code(), org = %mask(org), reason = %reason);
    } else {
        tracing::warn!(target: "audit", event = "auth.failed", code = code.code(), org = %mask(org), reason = %reason);
    }
    let mut problem = Problem::new(code, reason);
    if let AuthError::InsufficientScope(missing) = &rejection.error {
        problem = problem.with_member("required_scope", missing.join(" "));
    }
    if let Some(www) = &rejection.www_authenticate {
        problem = problem.with_header("WWW-Authenticate", www.clone());
    }
    if let Some(nonce) = &rejection.dpop_nonce {
        problem = problem.with_header("DPoP-Nonce", nonce.clone());
    }
    problem
}

/// The absolute URL the client addressed, for DPoP `htu`: the configured
/// external base URL (deployments behind a proxy must set it), else the
/// request's own scheme and Host. `Forwarded`/`X-Forwarded-*` headers are
/// ignored: a client could set them to match a proof made for another server.
pub fn request_base(ctx: &AuthContext, req: &HttpRequest) -> String {
    match &ctx.external_base_url {
        Some(base) => base.trim_end_matches('/').to_owned(),
        None => {
            let scheme = if req.app_config().secure() { "https" } else { "http" };
            let host = req
                .headers()
                .get(actix_web::http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or_else(|| req.app_config().host());
            format!("{scheme}://{host}")
        }
    }
}

fn request_url(ctx: &AuthContext, req: &HttpRequest) -> String {
    let path = req.uri().path_and_query().map_or_else(|| req.path().to_owned(), |p| p.as_str().to_owned());
    format!("{}{path}", request_base(ctx, req))
}

/// Authenticates one request: its token and DPoP proof, with challenges that
/// point at this server's RFC 9728 metadata. Used by the extractor and by
/// handlers that read the body themselves (MCP).
pub async fn authenticate(ctx: &AuthContext, req: &HttpRequest) -> Result<Principal, Problem> {
    let url = request_url(ctx, req);
    let metadata = format!("{}/.well-known/oauth-protected-resource", request_base(ctx, req));
    let authorization = req.headers().get("authorization").and_then(|v| v.to_str().ok());
    let dpop: Vec<&str> = req.headers().get_all("dpop").filter_map(|v| v.to_str().ok()).collect();
    let auth_req = AuthRequest {
        method: req.method().as_str(),
        url: &url,
        authorization,
        dpop: &dpop,
        resource_metadata: Some(&metadata),
    };
    ctx.authenticator.authenticate(&auth_req).await.map_err(|rejection| rejection_problem(ctx, &rejection, "-"))
}

impl FromRequest for Authenticated {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let ctx = req
                .app_data::<web::Data<AuthContext>>()
                .ok_or_else(|| Problem::new(ErrorCode::Internal, "authentication context missing"))?;
            let principal = authenticate(ctx, &req).await?;
            Ok(Authenticated(principal, AuthContext::clone(ctx)))
        })
    }
}
