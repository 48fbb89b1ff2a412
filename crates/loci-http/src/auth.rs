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
use loci_security::{
    AuthError, AuthRejection, AuthRequest, Authenticator, Principal, RateLimitError, RateLimiter, RouteGroup,
};

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
    /// Spends the caller's budget once authenticated.
    pub rate_limiter: Arc<RateLimiter>,
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

/// The caller's budget status of this request, read by
/// [`rate_limit_headers`] to answer with `RateLimit` headers.
#[derive(Debug, Clone)]
struct SpentBudget(loci_security::RateStatus);

/// Spends one request of the caller's budget for the request's route group.
async fn spend_budget(ctx: &AuthContext, req: &HttpRequest, principal: &Principal) -> Result<(), Problem> {
    use actix_web::HttpMessage;
    let group = RouteGroup::of_request(req.method().as_str(), req.path());
    match ctx.rate_limiter.check(principal, group).await {
        Ok(Some(status)) => {
            req.extensions_mut().insert(SpentBudget(status));
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => Err(rate_limit_problem(&ctx.metrics, principal, &e)),
    }
}

/// A refused request: 429 with `Retry-After` and the budget headers, or 503
/// when the limiter's store is down and the fallback refuses; counted and logged.
pub fn rate_limit_problem(metrics: &Metrics, principal: &Principal, e: &RateLimitError) -> Problem {
    let mut problem =
        Problem::new(e.code(), e.to_string()).with_header("Retry-After", e.retry_after_secs().to_string());
    if let RateLimitError::Limited { status, retry_after_secs } = e {
        metrics.rate_limited(status.group.as_str());
        tracing::info!(
            event = "rate_limited",
            org = %mask(principal.org_id.as_str()),
            group = status.group.as_str(),
            plan = %status.plan,
            retry_after_secs,
        );
        for (name, value) in loci_security::rate_limit::rate_limit_headers(status) {
            problem = problem.with_header(name, value);
        }
        problem = problem.with_member("retry_after", *retry_after_secs);
    }
    problem
}

/// Middleware: a response to a request that spent budget carries
/// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers).
pub async fn rate_limit_headers(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::HttpMessage;
    let mut res = next.call(req).await?;
    let spent = res.request().extensions().get::<SpentBudget>().cloned();
    if let Some(SpentBudget(status)) = spent {
        let headers = res.headers_mut();
        for (name, value) in loci_security::rate_limit::rate_limit_headers(&status) {
            if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&value) {
                headers.insert(actix_web::http::header::HeaderName::from_static(name), value);
            }
        }
    }
    Ok(res)
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
            // Health routes are exempt (a restricted `/health/deps` authenticates too).
            if !req.path().starts_with("/health") {
                spend_budget(ctx, &req, &principal).await?;
            }
            Ok(Authenticated(principal, AuthContext::clone(ctx)))
        })
    }
}
