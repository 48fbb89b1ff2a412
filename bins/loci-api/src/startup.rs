//! Building the server from settings (zero2prod's `Application::build`):
//! connect the stores, bind the listener (port 0 = any free port), serve.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{DefaultHeaders, ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, web};
use loci_domain::Provisioner;
use loci_domain::access_log::AccessLog;
use loci_domain::apps::AppService;
use loci_domain::backup::BackupService;
use loci_domain::health::HealthService;
use loci_domain::indexer::{Indexer, Indexes, IndexingOptions};
use loci_domain::memories::MemoryService;
use loci_domain::search::{SearchConfig, SearchService, Weights};
use loci_domain::validation::Limits;
use loci_security::{
    Authenticator, AuthenticatorConfig, InMemoryReplayCache, InMemorySessionStore, LocalIssuer, ReplayCache,
    SessionStore,
};
use loci_settings::{Profile, Settings};
use loci_stores::{Database, DependencyCheck, PoolConfig, Valkey, ValkeyReplayCache, ValkeySessionStore};

use crate::metrics::Metrics;
use crate::problem::{Problem, ensure_problem_body, not_found};
use crate::{ApiError, request_id, routes as route_table};

/// Shared per-process state handed to handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub database: Database,
    pub valkey: Option<Valkey>,
    pub health: HealthService,
    pub auth: Arc<Authenticator>,
    /// The embedded profile's signing key (its JWKS is served); never in production.
    pub local_issuer: Option<Arc<LocalIssuer>>,
    pub metrics: Metrics,
    pub memories: MemoryService,
    pub apps: AppService,
    pub backup: BackupService,
    pub search: SearchService,
    pub indexer: Arc<Indexer>,
    /// MCP session bindings (Valkey when configured, else in process).
    pub sessions: Arc<dyn SessionStore>,
}

impl AppState {
    /// Connects every configured store; applies migrations when
    /// `database.auto_migrate` is on.
    pub async fn init(settings: Settings) -> Result<Self, ApiError> {
        if settings.database.url.is_none() {
            settings.ensure_data_dir()?;
        }
        if settings.database.auto_migrate {
            // Migrations run as the owner role when one is configured.
            let owner =
                Database::connect(&settings.migration_database_url(), &PoolConfig::from_settings(&settings)).await?;
            owner.migrate_up().await?;
            owner.close().await?;
        }
        let database = Database::from_settings(&settings).await?;
        database.optimize().await?;
        // Keep planner statistics fresh as data grows (SQLite; a no-op elsewhere).
        let maintenance = database.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(3600));
            every.tick().await;
            loop {
                every.tick().await;
                if let Err(e) = maintenance.optimize().await {
                    tracing::warn!(error = %e, "database optimize failed");
                }
            }
        });
        let valkey = match &settings.valkey.url {
            Some(url) => Some(Valkey::connect(url, &settings.valkey).await?),
            None => None,
        };
        let mut checks: Vec<Arc<dyn DependencyCheck>> = vec![Arc::new(database.clone())];
        if let Some(v) = &valkey {
            checks.push(Arc::new(v.clone()));
        }
        let health = HealthService::new(checks, HealthService::DEFAULT_TIMEOUT);

        let local_issuer = match settings.profile {
            Profile::Embedded => Some(Arc::new(LocalIssuer::load_or_create(settings.ensure_data_dir()?)?)),
            Profile::Production => None,
        };
        let replay: Arc<dyn ReplayCache> = match &valkey {
            Some(v) => Arc::new(ValkeyReplayCache::new(v.clone())),
            None => Arc::new(InMemoryReplayCache::new(settings.dpop.replay_cache_capacity)),
        };
        let sessions: Arc<dyn SessionStore> = match &valkey {
            Some(v) => Arc::new(ValkeySessionStore::new(v.clone())),
            None => Arc::new(InMemorySessionStore::default()),
        };
        let config = AuthenticatorConfig::from_settings(&settings, local_issuer.as_deref()).await?;
        let auth = Arc::new(Authenticator::new(config, replay));
        let metrics = Metrics::new().map_err(|e| ApiError::Startup(format!("metrics: {e}")))?;
        let provisioner = Provisioner::default();
        let access = AccessLog::start(database.clone());
        let mut memories =
            MemoryService::new(database.clone(), provisioner.clone(), access, Limits::from(&settings.limits));
        if settings.categorizer.enabled {
            let chat = loci_llm::ChatCategorizer::from_settings(&settings.categorizer)
                .map_err(|e| ApiError::Startup(format!("categorizer: {e}")))?;
            let auto = loci_domain::categorize::AutoCategorizer::start(database.clone(), Arc::new(chat));
            memories = memories.with_auto_categorizer(auto);
        }
        let apps = AppService::new(database.clone(), provisioner.clone(), memories.clone());
        let backup = BackupService::new(database.clone(), provisioner, Limits::from(&settings.limits));
        let indexes = Indexes::open(&settings, &database).map_err(|e| ApiError::Startup(format!("indexes: {e}")))?;
        let s = &settings.search;
        let options = IndexingOptions { context_window: s.context_window as u64, embed_context: false };
        let indexer = Arc::new(Indexer::new(database.clone(), indexes.clone(), options, s.indexer_batch));
        let config = SearchConfig {
            rrf_k: s.rrf_k,
            weights: Weights { vector: s.weight_vector, lexical: s.weight_lexical, graph: s.weight_graph },
            candidates: s.candidates,
        };
        let search = SearchService::new(memories.clone(), indexes, config);
        Ok(Self {
            settings: Arc::new(settings),
            database,
            valkey,
            health,
            auth,
            local_issuer,
            metrics,
            memories,
            apps,
            backup,
            search,
            indexer,
            sessions,
        })
    }
}

/// Routes mounted next to the common ones (health, metadata, metrics).
pub type Mount = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// What a server serves: the REST API, and/or extra services such as `/mcp`.
#[derive(Clone)]
pub struct Routes {
    pub rest: bool,
    pub extra: Option<Mount>,
}

impl Routes {
    /// The REST API alone (the `loci-api` binary).
    pub fn rest() -> Self {
        Self { rest: true, extra: None }
    }
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes").field("rest", &self.rest).field("extra", &self.extra.is_some()).finish()
    }
}

/// A bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
    /// Dropping it stops the background indexer.
    _stop_indexer: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application").field("port", &self.port).finish_non_exhaustive()
    }
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, ApiError> {
        let state = AppState::init(settings).await?;
        Self::build_with_state(state, Routes::rest())
    }

    pub fn build_with_state(state: AppState, routes: Routes) -> Result<Self, ApiError> {
        let s = &state.settings.server;
        let addr = format!("{}:{}", s.host, s.port);
        let listener = TcpListener::bind(&addr).map_err(|source| ApiError::Bind { addr: addr.clone(), source })?;
        let port = listener.local_addr()?.port();
        let workers =
            if s.workers == 0 { std::thread::available_parallelism().map_or(2, usize::from) } else { s.workers };
        let shutdown = s.shutdown_timeout_secs;
        let limits = state.settings.limits.clone();
        let cors_settings = state.settings.cors.clone();
        let data = web::Data::new(state.clone());

        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(limits.max_body_bytes)
                        .error_handler(|err, _req| Problem::from_json_error(&err).into()),
                )
                .app_data(web::QueryConfig::default().error_handler(|err, _req| Problem::from_query_error(&err).into()))
                .app_data(web::PayloadConfig::new(limits.max_body_bytes))
                .configure(route_table::configure_common)
                .configure(|cfg| {
                    if routes.rest {
                        route_table::configure_rest(cfg);
                    }
                    if let Some(extra) = &routes.extra {
                        extra(cfg);
                    }
                })
                .default_service(web::to(not_found))
                // Order matters: the last `wrap` is outermost. Request ids wrap
                // everything so even rendered errors carry them.
                .wrap(ErrorHandlers::new().default_handler(ensure_problem_body))
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
        let (stop_indexer, stopped) = tokio::sync::watch::channel(false);
        let poll = Duration::from_millis(state.settings.search.indexer_poll_ms);
        tokio::spawn(state.indexer.clone().run(poll, stopped));
        let semantic = state.search.has_embedder();
        tracing::info!(port, workers, profile = %state.settings.profile, semantic, "loci-api listening");
        Ok(Self { port, server, state, _stop_indexer: stop_indexer })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// A handle to stop the server gracefully from elsewhere (tests).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until a signal or [`ServerHandle::stop`]; in-flight requests drain.
    pub async fn run_until_stopped(self) -> Result<(), ApiError> {
        self.server.await?;
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
        .allowed_headers(["authorization", "dpop", "content-type", "x-request-id"])
        .expose_headers(["x-request-id", "www-authenticate", "dpop-nonce"])
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
