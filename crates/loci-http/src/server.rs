//! Building an HTTP server from the composed services (zero2prod's
//! `Application::build`): bind the listener (port 0 = any free port), mount
//! the common routes and what the caller adds (REST, `/mcp`), start the
//! background tasks, serve.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{DefaultHeaders, ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, web};
use loci_app::{Background, Security, Services, Tasks};

use crate::auth::AuthContext;
use crate::json::JsonLimits;
use crate::metrics::Metrics;
use crate::problem::{Problem, ensure_problem_body, not_found};
use crate::{HttpError, common, request_id};

/// What an HTTP process runs on: the services, authentication and the
/// metrics. Handlers never get it whole: each part is registered as app data
/// of its own (plus the extractor's [`AuthContext`]).
#[derive(Debug, Clone)]
pub struct HttpState {
    pub services: Services,
    pub security: Security,
    pub metrics: Metrics,
}

impl HttpState {
    /// Composes the services and authentication from settings.
    pub async fn init(settings: loci_settings::Settings) -> Result<Self, HttpError> {
        let services = Services::build(settings).await?;
        let security = Security::build(&services.settings, services.valkey.as_ref(), services.sessions.clone()).await?;
        let metrics = Metrics::new(services.settings.telemetry.metrics_enabled)
            .map_err(|e| HttpError::Startup(format!("metrics: {e}")))?;
        Ok(Self { services, security, metrics })
    }

    /// The context of the `Authenticated` extractor.
    pub fn auth_context(&self) -> AuthContext {
        AuthContext {
            authenticator: self.security.auth.clone(),
            metrics: self.metrics.clone(),
            external_base_url: self.services.settings.server.external_base_url.clone(),
            rate_limiter: self.services.rate_limiter.clone(),
        }
    }
}

/// Routes mounted next to the common ones (health, metadata, metrics).
pub type Mount = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// A bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
    state: HttpState,
    background: Background,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application").field("port", &self.port).finish_non_exhaustive()
    }
}

impl Application {
    /// Binds `server.host:server.port` and serves the common routes plus
    /// `mounts`; starts the background tasks of a server.
    pub fn build(state: HttpState, mounts: Vec<Mount>) -> Result<Self, HttpError> {
        let settings = state.services.settings.clone();
        let s = &settings.server;
        let addr = format!("{}:{}", s.host, s.port);
        let listener = TcpListener::bind(&addr).map_err(|source| HttpError::Bind { addr: addr.clone(), source })?;
        let port = listener.local_addr()?.port();
        let workers =
            if s.workers == 0 { std::thread::available_parallelism().map_or(2, usize::from) } else { s.workers };
        let shutdown = s.shutdown_timeout_secs;
        let limits = settings.limits.clone();
        let cors_settings = settings.cors.clone();
        let services = web::Data::new(state.services.clone());
        let security = web::Data::new(state.security.clone());
        let metrics = web::Data::new(state.metrics.clone());
        let auth = web::Data::new(state.auth_context());
        let json_limits = web::Data::new(JsonLimits { max_depth: limits.max_json_depth });

        let server = HttpServer::new(move || {
            App::new()
                .app_data(services.clone())
                .app_data(security.clone())
                .app_data(metrics.clone())
                .app_data(auth.clone())
                .app_data(json_limits.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(limits.max_body_bytes)
                        .error_handler(|err, _req| Problem::from_json_error(&err).into()),
                )
                .app_data(web::QueryConfig::default().error_handler(|err, _req| Problem::from_query_error(&err).into()))
                .app_data(web::PayloadConfig::new(limits.max_body_bytes))
                .configure(common::configure)
                .configure(|cfg| {
                    for mount in &mounts {
                        mount(cfg);
                    }
                })
                .default_service(web::to(not_found))
                // Order matters: the last `wrap` is outermost. Request ids wrap
                // everything so even rendered errors carry them.
                .wrap(ErrorHandlers::new().default_handler(ensure_problem_body))
                .wrap(from_fn(crate::auth::rate_limit_headers))
                // `/api/v1/memories/` and `/api/v1/memories` are one resource.
                .wrap(actix_web::middleware::NormalizePath::trim())
                .wrap(cors(&cors_settings))
                .wrap(security_headers())
                .wrap(from_fn(request_id::middleware))
        })
        .workers(workers)
        // actix handles SIGTERM/SIGINT: stop accepting, let in-flight
        // requests finish for up to this long, then exit.
        .shutdown_timeout(shutdown)
        .client_request_timeout(Duration::from_secs(limits.request_timeout_secs))
        .listen(listener)?
        .run();
        // The indexer drains the outbox in the background; it stops with the
        // server (what it has not completed stays in the outbox).
        let background = Background::start(&state.services, Tasks::SERVER);
        let semantic = state.services.search.has_embedder();
        tracing::info!(port, workers, profile = %settings.profile, semantic, "loci-api listening");
        Ok(Self { port, server, state, background })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &HttpState {
        &self.state
    }

    /// A handle to stop the server gracefully from elsewhere (tests).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until a signal or [`ServerHandle::stop`]; in-flight requests drain.
    /// Then stops the background tasks and flushes the access log.
    pub async fn run_until_stopped(self) -> Result<(), HttpError> {
        let served = self.server.await;
        self.background.shutdown().await;
        served?;
        tracing::info!("loci-api stopped");
        Ok(())
    }
}

/// CORS from settings: only the listed origins (a wildcard only without
/// credentials, which settings validation enforces). Requests from other
/// origins get no CORS headers, so browsers block them.
fn cors(settings: &loci_settings::CorsSettings) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "DELETE", "OPTIONS"])
        .allowed_headers(["authorization", "dpop", "content-type", "x-request-id", "traceparent", "tracestate"])
        .expose_headers([
            "x-request-id",
            "www-authenticate",
            "dpop-nonce",
            "traceresponse",
            "ratelimit",
            "ratelimit-policy",
            "retry-after",
        ])
        .max_age(usize::try_from(settings.max_age_secs).ok())
        .block_on_origin_mismatch(false);
    for origin in &settings.allowed_origins {
        cors = if origin == "*" { cors.allow_any_origin() } else { cors.allowed_origin(origin) };
    }
    if settings.allow_credentials {
        cors = cors.supports_credentials();
    }
    cors
}

/// The hardening headers of 10-security.md, on every response (errors and 404s too).
fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
             font-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'self'",
        ))
        .add(("Strict-Transport-Security", "max-age=31536000; includeSubDomains"))
        .add(("X-Frame-Options", "DENY"))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "strict-origin-when-cross-origin"))
        .add(("Permissions-Policy", "geolocation=(), camera=(), microphone=(), payment=(), usb=()"))
}
