//! Streamable HTTP at `/mcp`: rmcp's transport, behind Loci's HTTP security.
//!
//! Each request, in this order (10-security.md "MCP over HTTP"):
//! 1. `Host` must be an allowed host and a present `Origin` an allowed origin
//!    (DNS-rebinding protection), else 403;
//! 2. the token and DPoP proof are validated exactly as for REST (401 with a
//!    `resource_metadata` challenge), before the session id is looked at;
//! 3. a request naming a session must come from the session's owner: same
//!    user, org and DPoP key (403 `SESSION_BINDING_INVALID`); an unknown or
//!    expired session is a 404 `SESSION_NOT_FOUND` (the client starts anew);
//! 4. rmcp handles the protocol; the principal travels in the request's
//!    extensions to the tools.
//!
//! A successful `initialize` creates the binding (in Valkey when configured,
//! so any instance serves the session: rmcp restores it from the binding).

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use loci_app::{Security, Services};
use loci_core::ErrorCode;
use loci_http::{AuthContext, HttpState, Mount, Problem, mask, method_not_allowed};
use loci_security::{Principal, SessionBinding, SessionStore};
use rmcp::model::InitializeRequestParams;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::{SessionState, SessionStore as RmcpSessionStore};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::handler::{Identity, LociMcp};
use crate::tools::Tools;

const SESSION_HEADER: &str = "mcp-session-id";

/// The `/mcp` service of one process.
#[derive(Clone)]
pub struct McpHttp {
    service: StreamableHttpService<LociMcp, LocalSessionManager>,
    sessions: Arc<dyn SessionStore>,
    ttl: Duration,
}

impl std::fmt::Debug for McpHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpHttp").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

/// rmcp's view of the bindings: it restores a session another instance
/// created from the `initialize` parameters kept in the binding. Writes go
/// through [`McpHttp`] (which knows the principal), so `store` and `delete`
/// have nothing to add.
struct BindingState {
    sessions: Arc<dyn SessionStore>,
    ttl: Duration,
}

#[async_trait::async_trait]
impl RmcpSessionStore for BindingState {
    async fn load(
        &self,
        session_id: &str,
    ) -> Result<Option<SessionState>, rmcp::transport::streamable_http_server::session::SessionStoreError> {
        let Some(binding) = self.sessions.get(session_id, self.ttl).await? else {
            return Ok(None);
        };
        let Some(state) = binding.state else {
            return Ok(None);
        };
        let params: InitializeRequestParams = serde_json::from_value(state)?;
        Ok(Some(SessionState::new(params)))
    }

    async fn store(
        &self,
        _session_id: &str,
        _state: &SessionState,
    ) -> Result<(), rmcp::transport::streamable_http_server::session::SessionStoreError> {
        Ok(())
    }

    async fn delete(
        &self,
        _session_id: &str,
    ) -> Result<(), rmcp::transport::streamable_http_server::session::SessionStoreError> {
        Ok(())
    }
}

impl McpHttp {
    pub fn new(services: &Services, security: &Security) -> Self {
        Self::with_tools(services, security, Tools::from_services(services))
    }

    fn with_tools(services: &Services, security: &Security, tools: Tools) -> Self {
        let tools = Arc::new(tools);
        let ttl = Duration::from_secs(services.settings.mcp.session_ttl_secs);
        let mut config = StreamableHttpServerConfig::default()
            // Host and Origin are checked here, with Loci's settings and errors.
            .disable_allowed_hosts()
            .disable_allowed_origins()
            .with_legacy_session_mode(true)
            .with_max_request_body_bytes(services.settings.limits.max_body_bytes);
        config.session_store = Some(Arc::new(BindingState { sessions: security.sessions.clone(), ttl }));
        let service = StreamableHttpService::new(
            move || Ok(LociMcp::new(tools.clone(), Identity::PerRequest)),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        Self { service, sessions: security.sessions.clone(), ttl }
    }

    /// `/mcp` for the services and security of an HTTP server.
    pub fn for_server(state: &HttpState) -> Self {
        Self::with_tools(
            &state.services,
            &state.security,
            Tools::from_services(&state.services).with_metrics(state.metrics.clone()),
        )
    }

    /// Mounts `/mcp` (POST, GET, DELETE).
    pub fn mount(self) -> Mount {
        let data = web::Data::new(self);
        Arc::new(move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(data.clone()).service(
                web::resource("/mcp")
                    .route(web::post().to(handle))
                    .route(web::get().to(handle))
                    .route(web::delete().to(handle))
                    .default_service(method_not_allowed("GET, POST, DELETE")),
            );
        })
    }
}

fn allowed_host(host: &str, allowed: &[String]) -> bool {
    let host = host.trim().to_ascii_lowercase();
    // `[::1]:8080`, `example.com:443`, `localhost`
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("").to_owned()
    } else {
        host.rsplit_once(':').map_or(host.as_str(), |(n, _)| n).to_owned()
    };
    allowed.iter().any(|a| {
        let a = a.trim().to_ascii_lowercase();
        a == host || a == name || a.trim_start_matches('[').trim_end_matches(']') == name
    })
}

/// Refuses requests addressed to a host this server does not serve, or sent
/// by a web page of a foreign origin.
fn check_host_and_origin(settings: &loci_settings::McpSettings, req: &HttpRequest) -> Result<(), Problem> {
    let mcp = settings;
    let host = req.headers().get(actix_web::http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !allowed_host(host, &mcp.allowed_hosts) {
        tracing::warn!(target: "audit", event = "mcp.host_refused", host = %host);
        return Err(Problem::new(ErrorCode::HostNotAllowed, format!("`{host}` is not in mcp.allowed_hosts")));
    }
    if let Some(origin) = req.headers().get(actix_web::http::header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("").trim_end_matches('/');
        if !mcp.allowed_origins.iter().any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin)) {
            tracing::warn!(target: "audit", event = "mcp.origin_refused", origin = %origin);
            return Err(Problem::new(ErrorCode::OriginNotAllowed, format!("origin `{origin}` is not allowed")));
        }
    }
    Ok(())
}

fn store_unavailable(e: loci_security::SessionStoreError) -> Problem {
    tracing::error!(error = %e, "MCP session store unavailable; refusing (fail closed)");
    Problem::new(ErrorCode::DependencyUnavailable, "the session store is unavailable; retry later")
}

/// The `initialize` parameters of a body that is an initialize request.
fn initialize_params(body: &[u8]) -> Option<serde_json::Value> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    (value.get("method")?.as_str()? == "initialize").then(|| value.get("params").cloned()).flatten()
}

async fn handle(
    req: HttpRequest,
    body: web::Bytes,
    services: web::Data<Services>,
    auth: web::Data<AuthContext>,
    mcp: web::Data<McpHttp>,
) -> Result<HttpResponse, Problem> {
    check_host_and_origin(&services.settings.mcp, &req)?;
    let principal = loci_http::authenticate(&auth, &req).await?;
    let session = req.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(id) = &session {
        let binding = mcp.sessions.get(id, mcp.ttl).await.map_err(store_unavailable)?;
        let Some(binding) = binding else {
            tracing::info!(target: "audit", event = "session.expired", session = %mask(id));
            return Err(Problem::new(ErrorCode::SessionNotFound, "unknown or expired session; initialize a new one"));
        };
        if let Err(mismatch) = binding.check(&principal) {
            tracing::error!(
                target: "audit", event = "session.hijack_attempt", severity = "critical",
                session = %mask(id), user = %mask(&principal.subject), org = %mask(principal.org_id.as_str()),
                reason = %mismatch
            );
            return Err(Problem::new(ErrorCode::SessionBindingInvalid, mismatch.to_string()));
        }
        tracing::debug!(target: "audit", event = "session.validated", session = %mask(id));
    }
    let init = match (&session, req.method() == actix_web::http::Method::POST) {
        (None, true) => initialize_params(&body),
        _ => None,
    };
    let deleting = req.method() == actix_web::http::Method::DELETE;

    let response = forward(&mcp, &req, body, principal.clone()).await?;

    if let Some(params) = init
        && response.status().is_success()
        && let Some(id) = response.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok())
    {
        let binding = SessionBinding::for_principal(&principal, Some(params));
        mcp.sessions.put(id, &binding, mcp.ttl).await.map_err(store_unavailable)?;
        tracing::info!(
            target: "audit", event = "session.created", session = %mask(id),
            user = %mask(&principal.subject), org = %mask(principal.org_id.as_str()), dpop_bound = principal.dpop_jkt.is_some()
        );
    }
    if deleting
        && response.status().is_success()
        && let Some(id) = &session
    {
        mcp.sessions.delete(id).await.map_err(store_unavailable)?;
        tracing::info!(target: "audit", event = "session.deleted", session = %mask(id));
        // rmcp answers 202; clients (the Python SDK) expect 200 or 204.
        return Ok(HttpResponse::NoContent().finish());
    }
    Ok(response)
}

/// Hands the request to rmcp (http 1 types) and streams its answer back.
async fn forward(mcp: &McpHttp, req: &HttpRequest, body: Bytes, principal: Principal) -> Result<HttpResponse, Problem> {
    let internal = |what: &str| {
        tracing::error!(what, "building the MCP request failed");
        Problem::new(ErrorCode::Internal, "an internal error occurred")
    };
    let uri = req.uri().path_and_query().map_or("/mcp", |p| p.as_str());
    let mut builder = http::Request::builder()
        .method(http::Method::from_bytes(req.method().as_str().as_bytes()).map_err(|_| internal("method"))?)
        .uri(uri);
    for (name, value) in req.headers() {
        builder = builder.header(name.as_str(), value.as_bytes());
    }
    let mut request = builder.body(Full::new(body)).map_err(|_| internal("request"))?;
    request.extensions_mut().insert(principal);

    let mut service = mcp.service.clone();
    let response = match tower_service::Service::call(&mut service, request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    let status = actix_web::http::StatusCode::from_u16(parts.status.as_u16()).map_err(|_| internal("status"))?;
    let mut out = HttpResponse::build(status);
    for (name, value) in &parts.headers {
        out.append_header((name.as_str(), value.as_bytes()));
    }
    // SSE responses stay open while the session streams; pass frames through.
    let stream = body.into_data_stream().map(|chunk| -> Result<Bytes, actix_web::Error> {
        match chunk {
            Ok(bytes) => Ok(bytes),
            Err(never) => match never {},
        }
    });
    Ok(out.streaming(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_by_name_or_exact_authority() {
        let allowed =
            vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned(), "mcp.example:8443".to_owned()];
        for ok in ["localhost", "localhost:8080", "127.0.0.1:9", "[::1]:80", "mcp.example:8443", "LOCALHOST"] {
            assert!(allowed_host(ok, &allowed), "{ok}");
        }
        for bad in ["", "evil.example", "evil.example:80", "mcp.example", "mcp.example:443", "localhost.evil"] {
            assert!(!allowed_host(bad, &allowed), "{bad}");
        }
    }

    #[test]
    fn only_initialize_bodies_yield_parameters() {
        let init = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#;
        assert_eq!(initialize_params(init).unwrap()["protocolVersion"], "2025-06-18");
        assert!(initialize_params(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).is_none());
        assert!(initialize_params(b"not json").is_none());
    }
}
