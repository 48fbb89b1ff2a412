//! The composition root: everything a Loci process runs, built from
//! [`Settings`] in one place and shared by every entry point (`loci serve`,
//! `loci-api`, `loci-mcp http|stdio`, the CLI's admin commands, the tests).
//!
//! - [`Services`]: the stores, the indexes and the domain services over them.
//! - [`Security`]: the authenticator, the embedded profile's signing key and
//!   the MCP session store.
//! - [`Background`]: the tasks a serving process runs (the outbox indexer,
//!   SQLite's periodic optimise), with one stop handle that also flushes the
//!   access log.
//! - [`indexes::open`]: which index engine backs each index. The engine
//!   adapters are compiled in only with this crate's `qdrant`, `opensearch`
//!   and `neo4j` features (all on in the shipped binaries); without one,
//!   choosing that backend is a configuration error at start.
//!
//! Architecture invariant: this crate wires, it holds no rule. It knows no
//! HTTP and no MCP; transports take what they need from it.

mod background;
pub mod indexes;
pub mod recovery;
pub mod runtime;
mod security;
pub mod shredding;
pub mod telemetry;

use std::sync::Arc;

use loci_domain::Provisioner;
use loci_domain::access_log::AccessLog;
use loci_domain::apps::AppService;
use loci_domain::backup::BackupService;
use loci_domain::code::{CodeConfig, CodeService};
use loci_domain::context::ContextService;
use loci_domain::entities::EntityService;
use loci_domain::episodic::EpisodicService;
use loci_domain::experiments::ExperimentService;
use loci_domain::feedback::FeedbackService;
use loci_domain::gdpr::GdprService;
use loci_domain::graph::GraphService;
use loci_domain::health::HealthService;
use loci_domain::indexer::{Indexer, IndexingOptions};
use loci_domain::infer::{InferConfig, InferService};
use loci_domain::knowledge_graph::KnowledgeGraphService;
use loci_domain::memories::MemoryService;
use loci_domain::search::{SearchConfig, SearchService};
use loci_domain::validation::Limits;
use loci_settings::Settings;
use loci_stores::episodic::{EpisodicStore, InProcessEpisodicStore, ValkeyEpisodicStore};
use loci_stores::{Database, DependencyCheck, PoolConfig, Valkey};

pub use background::{Background, Tasks};
pub use security::{Security, uses_local_issuer};

/// Why a process could not be composed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Settings(#[from] loci_settings::SettingsError),
    #[error(transparent)]
    Store(#[from] loci_stores::StoreError),
    #[error(transparent)]
    Index(#[from] loci_index::IndexError),
    #[error(transparent)]
    Embed(#[from] loci_embed::EmbedError),
    #[error(transparent)]
    Security(#[from] loci_security::SecurityError),
    #[error("data directory: {0}")]
    DataDir(#[from] std::io::Error),
    #[error("{0}")]
    Startup(String),
}

/// The stores and the domain services of one process; cheap to clone.
#[derive(Debug, Clone)]
pub struct Services {
    pub settings: Arc<Settings>,
    pub database: Database,
    pub valkey: Option<Valkey>,
    pub health: HealthService,
    pub memories: MemoryService,
    pub apps: AppService,
    pub backup: BackupService,
    pub search: SearchService,
    pub entities: EntityService,
    pub graph: GraphService,
    pub knowledge_graph: KnowledgeGraphService,
    pub episodic: EpisodicService,
    pub context: ContextService,
    pub infer: InferService,
    pub feedback: FeedbackService,
    pub experiments: ExperimentService,
    pub gdpr: GdprService,
    pub code: CodeService,
    /// MCP session bindings (shared with [`Security`]).
    pub sessions: Arc<dyn loci_security::SessionStore>,
    /// Request budgets of REST routes and MCP tool calls (in Valkey when
    /// configured, so every instance shares them).
    pub rate_limiter: Arc<loci_security::RateLimiter>,
    /// The circuit breaker of each dependency that has one, by name (the
    /// `circuit_breaker_state{service}` metric).
    pub breakers: Vec<(&'static str, Arc<loci_core::breaker::CircuitBreaker>)>,
    /// Settings changed at run time (`PUT /api/v1/config`).
    pub runtime: runtime::RuntimeConfig,
    pub indexer: Arc<Indexer>,
    access_log: AccessLog,
}

/// The categoriser's LLM endpoint as a dependency of `/health/deps` (not
/// required: categorisation is asynchronous and never blocks a write).
#[derive(Debug)]
struct LlmCheck(loci_llm::ChatCategorizer);

#[async_trait::async_trait]
impl DependencyCheck for LlmCheck {
    fn name(&self) -> &'static str {
        "llm"
    }

    fn required(&self) -> bool {
        false
    }

    async fn check(&self) -> Result<(), loci_stores::StoreError> {
        self.0.ping().await.map_err(|e| loci_stores::StoreError::Unavailable(e.to_string()))
    }
}

impl Services {
    /// Connects every configured store (applying migrations when
    /// `database.auto_migrate` is on), opens the indexes and builds the
    /// services. Starts the access-log writer; nothing else runs until
    /// [`Background::start`].
    pub async fn build(mut settings: Settings) -> Result<Self, AppError> {
        // What operators changed at run time before (already applied when
        // the settings came from `Settings::load`; applying twice is harmless).
        let runtime_settings = loci_settings::RuntimeSettings::load(&settings.data_dir)?;
        runtime_settings.apply(&mut settings);
        let database = connect_database(&settings).await?;
        let valkey = match &settings.valkey.url {
            Some(url) => Some(
                Valkey::connect(url, &settings.valkey)
                    .await?
                    .with_breaker(loci_stores::breaker_config(&settings.resilience)),
            ),
            None => None,
        };
        let mut breakers = vec![("database", database.breaker())];
        if let Some(v) = &valkey {
            breakers.push(("valkey", v.breaker()));
        }
        let mut checks: Vec<Arc<dyn DependencyCheck>> = vec![Arc::new(database.clone())];
        if let Some(v) = &valkey {
            checks.push(Arc::new(v.clone()));
        }
        let limits = Limits::from(&settings.limits);
        let provisioner = Provisioner::default();
        let access_log = AccessLog::start(database.clone());
        let mut memories = MemoryService::new(database.clone(), provisioner.clone(), access_log.clone(), limits);
        if settings.categorizer.enabled {
            let chat = loci_llm::ChatCategorizer::from_settings(&settings.categorizer)
                .map_err(|e| AppError::Startup(format!("categorizer: {e}")))?;
            checks.push(Arc::new(LlmCheck(chat.clone())));
            breakers.push(("llm_categorizer", chat.breaker()));
            let auto = loci_domain::categorize::AutoCategorizer::start(database.clone(), Arc::new(chat));
            memories = memories.with_auto_categorizer(auto);
        }
        let apps = AppService::new(database.clone(), provisioner.clone(), memories.clone());
        let backup = BackupService::new(database.clone(), provisioner.clone(), limits);
        let new_vectors = indexes::embedded_vectors_are_new(&settings);
        let opened = indexes::open_guarded(&settings, &database)?;
        let (indexes, graph_engine, code_graph) = (opened.indexes, opened.graph_api, opened.code_graph);
        breakers.extend(opened.breakers);
        checks.extend(indexes::dependency_checks(&settings, &indexes, &graph_engine));
        if let Some(breaker) = indexes.embedder.as_ref().and_then(|e| e.breaker()) {
            breakers.push(("embedder", breaker));
        }
        let health = HealthService::new(checks, HealthService::DEFAULT_TIMEOUT);
        let graph_api: Arc<dyn loci_index::GraphApi> = graph_engine;
        let gdpr_graph = Arc::clone(&graph_api);
        let graph_api = Some(graph_api);
        let entities = EntityService::new(memories.clone(), graph_api.clone());
        let indexer = Arc::new(Indexer::new(
            database.clone(),
            indexes.clone(),
            IndexingOptions::from_settings(&settings.search),
            settings.search.indexer_batch,
        ));
        if new_vectors && indexes.embedder.is_some() {
            // Another model (or a new vector directory): its vectors are made
            // from the stored memories by the outbox indexer.
            let queued = indexer
                .queue_rebuild(&[loci_domain::indexer::VECTOR])
                .await
                .map_err(|e| AppError::Startup(format!("queueing the new model's vectors: {e}")))?;
            if queued > 0 {
                tracing::info!(
                    model = %settings.embeddings.model,
                    memories = queued,
                    "new vector index for this embedding model: every memory queued to be embedded"
                );
            }
        }
        let mut infer =
            InferService::new(memories.clone(), indexes.clone(), InferConfig::from_settings(&settings.infer));
        if settings.infer.llm {
            let model = loci_llm::ChatFactModel::from_settings(&settings.infer, &settings.categorizer)
                .map_err(|e| AppError::Startup(format!("infer: {e}")))?;
            breakers.push(("llm_facts", model.breaker()));
            infer = infer.with_model(Arc::new(model));
        }
        let experiments = ExperimentService::new(memories.clone());
        let mut search =
            SearchService::new(memories.clone(), indexes.clone(), SearchConfig::from_settings(&settings.search))
                .with_experiments(experiments.clone());
        if let Some(reranker) = loci_embed::reranker_from_settings(&settings.reranker)
            .map_err(|e| AppError::Startup(format!("reranker: {e}")))?
        {
            if let Some(breaker) = reranker.breaker() {
                breakers.push(("reranker", breaker));
            }
            search = search.with_reranker(reranker, settings.reranker.candidates);
        }
        let feedback = FeedbackService::new(
            memories.clone(),
            search.recent_queries().clone(),
            std::time::Duration::from_secs(settings.feedback.retention_days * 86_400),
            SearchConfig::from_settings(&settings.search).weights,
        );
        let graph = GraphService::new(memories.clone(), search.clone(), graph_api);
        let knowledge_graph = KnowledgeGraphService::new(memories.clone());
        // Sessions are shared by every instance when Valkey is there.
        let episodic_store: Arc<dyn EpisodicStore> = match &valkey {
            Some(v) => Arc::new(ValkeyEpisodicStore::new(v.clone())),
            None => Arc::new(InProcessEpisodicStore::new()),
        };
        let sessions = security::session_store(valkey.as_ref());
        let rate_limiter = Arc::new(security::rate_limiter(&settings, valkey.as_ref()));
        let code_embedder = indexes.embedder.clone();
        let gdpr = GdprService::new(
            database.clone(),
            indexes,
            Arc::clone(&episodic_store),
            Arc::clone(&sessions),
            provisioner.clone(),
            memories.clone(),
        )
        .with_graph_api(gdpr_graph);
        let episodic = EpisodicService::new(
            episodic_store,
            memories.clone(),
            limits,
            std::time::Duration::from_secs(settings.episodic.ttl_secs),
            settings.episodic.max_items_per_session,
        );
        let context = ContextService::new(memories.clone(), search.clone(), episodic.clone());
        let mut code = CodeService::new(
            memories.clone(),
            search.clone(),
            indexes::open_code(&settings, code_embedder, &mut breakers)?,
            CodeConfig::from_settings(&settings),
        );
        if let Some(graph) = code_graph {
            code = code.with_graph(graph);
        }
        if settings.code.llm_summary {
            let explainer = loci_llm::ChatCodeExplainer::from_settings(&settings.infer, &settings.categorizer)
                .map_err(|e| AppError::Startup(format!("code.llm_summary: {e}")))?;
            breakers.push(("llm_code", explainer.breaker()));
            code = code.with_explainer(Arc::new(explainer));
        }
        Ok(Self {
            settings: Arc::new(settings),
            database,
            valkey,
            health,
            memories,
            apps,
            backup,
            search,
            entities,
            graph,
            knowledge_graph,
            episodic,
            context,
            infer,
            feedback,
            experiments,
            gdpr,
            code,
            sessions,
            rate_limiter,
            breakers,
            runtime: runtime::RuntimeConfig::new(runtime_settings),
            indexer,
            access_log,
        })
    }

    /// The access-log writer (flushed by [`Background::shutdown`]).
    pub fn access_log(&self) -> &AccessLog {
        &self.access_log
    }
}

/// The application's database, migrated first when `database.auto_migrate`
/// is on (as the owner role when one is configured), with planner
/// statistics refreshed.
pub async fn connect_database(settings: &Settings) -> Result<Database, AppError> {
    if settings.database.url.is_none() {
        settings.ensure_data_dir()?;
    }
    if settings.database.auto_migrate {
        let owner = Database::connect(&settings.migration_database_url(), &PoolConfig::from_settings(settings)).await?;
        owner.migrate_up().await?;
        owner.close().await?;
    }
    let database = Database::from_settings(settings).await?;
    database.optimize().await?;
    Ok(database)
}
