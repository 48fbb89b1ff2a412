//! Engine selection: which implementation backs each index port, from
//! `[embeddings]`, `[vector]`, `[lexical]` and `[graph]`.

use std::sync::Arc;

use loci_core::breaker::CircuitBreaker;
use loci_domain::indexer::Indexes;
use loci_index::guarded::Guarded;
use loci_index::{CodeGraph, GraphEngine, IndexError, LexicalIndex, VectorIndex};
use loci_index_embedded::{EmbeddedLexicalIndex, EmbeddedVectorIndex, VectorOptions};
use loci_settings::{EmbeddingsProvider, GraphBackend, LexicalBackend, Settings, VectorBackend};
use loci_stores::graph::EmbeddedGraphIndex;
use loci_stores::{Database, DependencyCheck, StoreError};

use crate::AppError;

/// The configured indexes and embedder. A missing local model is not an
/// error: search then runs without the vector index (lexical and graph
/// only) and says so in every response and at start.
///
/// The engine adapters are checked here (on a helper thread, as this runs
/// inside the servers' runtimes): an engine that does not answer stops the
/// start with a typed error, and the collection, index or schema each needs
/// is created when missing.
pub fn open(settings: &Settings, db: &Database) -> Result<Indexes, AppError> {
    Ok(open_with_graph_api(settings, db)?.0)
}

/// [`open`], and the graph and entity API (`/api/v1/graph`,
/// `/api/v1/entities`) on the same graph engine.
pub fn open_with_graph_api(settings: &Settings, db: &Database) -> Result<(Indexes, Arc<dyn GraphEngine>), AppError> {
    open_guarded(settings, db).map(|opened| (opened.indexes, opened.graph_api))
}

/// The circuit breaker of each out-of-process engine, by name.
pub type EngineBreakers = Vec<(&'static str, Arc<CircuitBreaker>)>;

/// What [`open_guarded`] opens.
#[derive(Debug)]
pub struct OpenedIndexes {
    pub indexes: Indexes,
    /// The graph and entity API's engine.
    pub graph_api: Arc<dyn GraphEngine>,
    /// The code graph's engine when the graph backend is one (Neo4j); the
    /// relational code tables otherwise.
    pub code_graph: Option<Arc<dyn CodeGraph>>,
    /// Each out-of-process engine's circuit breaker, for the metrics.
    pub breakers: EngineBreakers,
}

/// [`open_with_graph_api`], with a circuit breaker (`[resilience]`) in front
/// of each out-of-process engine, and the code graph's engine.
pub fn open_guarded(settings: &Settings, db: &Database) -> Result<OpenedIndexes, AppError> {
    let mut breakers: EngineBreakers = Vec::new();
    let mut guard_breaker = |name: &'static str| {
        let breaker = Arc::new(CircuitBreaker::new(loci_stores::breaker_config(&settings.resilience)));
        breakers.push((name, Arc::clone(&breaker)));
        breaker
    };
    let embedder = match loci_embed::from_settings(&settings.embeddings, &settings.data_dir) {
        Ok(e) => e,
        Err(loci_embed::EmbedError::ModelMissing { dir, missing }) => {
            tracing::warn!(
                dir = %dir.display(),
                missing = %missing,
                "embedding model not found: semantic search is off (run scripts/fetch-model.sh); lexical and graph search work"
            );
            None
        }
        Err(e) => return Err(e.into()),
    };
    let vector: Option<Arc<dyn VectorIndex>> = match &embedder {
        None => None,
        Some(e) => Some(match settings.vector.backend {
            VectorBackend::Embedded => {
                let dir =
                    settings.vector.path.clone().unwrap_or_else(|| settings.data_dir.join("vector")).join(e.model());
                Arc::new(EmbeddedVectorIndex::open(&dir, e.dimensions(), VectorOptions::default())?)
            }
            VectorBackend::Qdrant => {
                Arc::new(Guarded::new(qdrant(settings, e.model(), e.dimensions())?, guard_breaker("qdrant")))
            }
        }),
    };
    let lexical: Arc<dyn LexicalIndex> = match settings.lexical.backend {
        LexicalBackend::Embedded => {
            let dir = settings.lexical.path.clone().unwrap_or_else(|| settings.data_dir.join("lexical"));
            Arc::new(EmbeddedLexicalIndex::open(&dir)?)
        }
        LexicalBackend::Opensearch => Arc::new(Guarded::new(opensearch(settings)?, guard_breaker("opensearch"))),
    };
    let (graph, code_graph): (Arc<dyn GraphEngine>, Option<Arc<dyn CodeGraph>>) = match settings.graph.backend {
        GraphBackend::Embedded => (Arc::new(EmbeddedGraphIndex::new(db.clone())), None),
        GraphBackend::Neo4j => {
            let (graph, code) = neo4j(settings, guard_breaker("neo4j"))?;
            (graph, Some(code))
        }
    };
    Ok(OpenedIndexes {
        indexes: Indexes { vector, lexical, graph: graph.clone(), embedder },
        graph_api: graph,
        code_graph,
        breakers,
    })
}

/// Whether the embedded vector index of the configured model has no
/// directory yet (before [`open_guarded`] creates it): a first start, or a
/// new embedding model, whose vectors must be made from the stored memories.
/// Qdrant keeps a collection per model and dimensions; its rebuild is
/// `loci reindex --index vector`.
pub fn embedded_vectors_are_new(settings: &Settings) -> bool {
    settings.embeddings.provider != loci_settings::EmbeddingsProvider::None
        && settings.vector.backend == VectorBackend::Embedded
        && !settings
            .vector
            .path
            .clone()
            .unwrap_or_else(|| settings.data_dir.join("vector"))
            .join(&settings.embeddings.model)
            .exists()
}

/// The search indexes of code symbols, on the engines the memories use but
/// apart from theirs (see `loci_domain::code`): embedded under
/// `<data_dir>/code/`, or the OpenSearch code index (`loci_code_v1`, aliases
/// `code_tenant_<org>`) and the Qdrant code collection (`code_<model>_<dims>`)
/// shared by every instance; with the memories' embedder. Each engine gets
/// its own circuit breaker (`opensearch_code`, `qdrant_code`).
pub fn open_code(
    settings: &Settings,
    embedder: Option<Arc<dyn loci_embed::Embedder>>,
    breakers: &mut EngineBreakers,
) -> Result<loci_domain::code::CodeIndexes, AppError> {
    let mut guard_breaker = |name: &'static str| {
        let breaker = Arc::new(CircuitBreaker::new(loci_stores::breaker_config(&settings.resilience)));
        breakers.push((name, Arc::clone(&breaker)));
        breaker
    };
    let root = settings.data_dir.join("code");
    let (lexical, lexical_generation): (Arc<dyn LexicalIndex>, String) = match settings.lexical.backend {
        LexicalBackend::Embedded => {
            // A fresh id whenever the index directory is new (or replaced).
            let generation_file = root.join("generation");
            let fresh = !root.join("lexical").exists();
            let index = Arc::new(EmbeddedLexicalIndex::open(&root.join("lexical"))?);
            let generation = match std::fs::read_to_string(&generation_file) {
                Ok(id) if !fresh && !id.trim().is_empty() => id.trim().to_owned(),
                _ => {
                    let id = uuid::Uuid::new_v4().to_string();
                    std::fs::write(&generation_file, &id)?;
                    id
                }
            };
            (index, generation)
        }
        // Shared by every instance: one generation for all of them.
        LexicalBackend::Opensearch => {
            (Arc::new(Guarded::new(opensearch_code(settings)?, guard_breaker("opensearch_code"))), "opensearch".into())
        }
    };
    let vector: Option<(Arc<dyn VectorIndex>, &str)> = match &embedder {
        None => None,
        Some(e) => Some(match settings.vector.backend {
            VectorBackend::Embedded => (
                Arc::new(EmbeddedVectorIndex::open(
                    &root.join("vector").join(e.model()),
                    e.dimensions(),
                    VectorOptions::default(),
                )?),
                "embedded",
            ),
            VectorBackend::Qdrant => (
                Arc::new(Guarded::new(qdrant_code(settings, e.model(), e.dimensions())?, guard_breaker("qdrant_code"))),
                "qdrant",
            ),
        }),
    };
    // The vector engine and model are part of the generation: another
    // model, other vectors.
    let generation = match (&embedder, &vector) {
        (Some(e), Some((_, engine))) => format!("{lexical_generation}/{engine}/{}", e.model()),
        _ => lexical_generation,
    };
    Ok(loci_domain::code::CodeIndexes { lexical, vector: vector.map(|(v, _)| v), embedder, generation })
}

/// An out-of-process engine or model endpoint as a dependency of
/// `/health/deps`. Not required for readiness: without it search answers
/// degraded (`meta.missing_sources`) rather than failing.
#[derive(Debug)]
enum Probe {
    Vector(Arc<dyn VectorIndex>),
    Lexical(Arc<dyn LexicalIndex>),
    Graph(Arc<dyn GraphEngine>),
    Embedder(Arc<dyn loci_embed::Embedder>),
}

#[derive(Debug)]
struct EngineCheck {
    name: &'static str,
    probe: Probe,
}

#[async_trait::async_trait]
impl DependencyCheck for EngineCheck {
    fn name(&self) -> &'static str {
        self.name
    }

    fn required(&self) -> bool {
        false
    }

    async fn check(&self) -> Result<(), StoreError> {
        let outcome = match &self.probe {
            Probe::Vector(v) => v.ping().await.map_err(|e| e.to_string()),
            Probe::Lexical(l) => l.ping().await.map_err(|e| e.to_string()),
            Probe::Graph(g) => g.ping().await.map_err(|e| e.to_string()),
            Probe::Embedder(e) => e.ping().await.map_err(|e| e.to_string()),
        };
        outcome.map_err(StoreError::Unavailable)
    }
}

/// Health checks of the engines and endpoints outside this process (the
/// embedded indexes and a local model live in it and need none):
/// `vector`, `lexical`, `graph`, `embedder`.
pub fn dependency_checks(
    settings: &Settings,
    indexes: &Indexes,
    graph: &Arc<dyn GraphEngine>,
) -> Vec<Arc<dyn DependencyCheck>> {
    const EMBEDDED: &str = "embedded";
    let mut checks: Vec<Arc<dyn DependencyCheck>> = Vec::new();
    if let Some(v) = indexes.vector.as_ref().filter(|v| v.engine() != EMBEDDED) {
        checks.push(Arc::new(EngineCheck { name: "vector", probe: Probe::Vector(v.clone()) }));
    }
    if indexes.lexical.engine() != EMBEDDED {
        checks.push(Arc::new(EngineCheck { name: "lexical", probe: Probe::Lexical(indexes.lexical.clone()) }));
    }
    if graph.engine() != EMBEDDED {
        checks.push(Arc::new(EngineCheck { name: "graph", probe: Probe::Graph(graph.clone()) }));
    }
    if let Some(e) = indexes.embedder.as_ref().filter(|_| settings.embeddings.provider == EmbeddingsProvider::Openai) {
        checks.push(Arc::new(EngineCheck { name: "embedder", probe: Probe::Embedder(e.clone()) }));
    }
    checks
}

/// The error of a backend this build does not include (unused when every
/// engine feature is on).
#[cfg_attr(all(feature = "qdrant", feature = "opensearch", feature = "neo4j"), allow(dead_code))]
fn not_built(setting: &str, feature: &str) -> AppError {
    AppError::Index(IndexError::Config(format!(
        "{setting} needs the `{feature}` feature, and this build of Loci was compiled without it"
    )))
}

#[cfg(feature = "qdrant")]
fn qdrant(settings: &Settings, model: &str, dimensions: usize) -> Result<Arc<dyn VectorIndex>, AppError> {
    use loci_index_engines::qdrant::{QdrantOptions, QdrantVectorIndex};
    let options = QdrantOptions::from_settings(&settings.vector, model, dimensions)?;
    Ok(Arc::new(QdrantVectorIndex::open(options)?))
}

#[cfg(not(feature = "qdrant"))]
fn qdrant(_: &Settings, _: &str, _: usize) -> Result<Arc<dyn VectorIndex>, AppError> {
    Err(not_built("vector.backend = \"qdrant\"", "qdrant"))
}

#[cfg(feature = "qdrant")]
fn qdrant_code(settings: &Settings, model: &str, dimensions: usize) -> Result<Arc<dyn VectorIndex>, AppError> {
    use loci_index_engines::qdrant::{QdrantOptions, QdrantVectorIndex};
    let options = QdrantOptions::for_code(&settings.vector, model, dimensions)?;
    Ok(Arc::new(QdrantVectorIndex::open(options)?))
}

#[cfg(not(feature = "qdrant"))]
fn qdrant_code(_: &Settings, _: &str, _: usize) -> Result<Arc<dyn VectorIndex>, AppError> {
    Err(not_built("vector.backend = \"qdrant\"", "qdrant"))
}

#[cfg(feature = "opensearch")]
fn opensearch_code(settings: &Settings) -> Result<Arc<dyn LexicalIndex>, AppError> {
    use loci_index_engines::opensearch::{OpenSearchLexicalIndex, OpenSearchOptions};
    Ok(Arc::new(OpenSearchLexicalIndex::open(OpenSearchOptions::for_code(&settings.lexical)?)?))
}

#[cfg(not(feature = "opensearch"))]
fn opensearch_code(_: &Settings) -> Result<Arc<dyn LexicalIndex>, AppError> {
    Err(not_built("lexical.backend = \"opensearch\"", "opensearch"))
}

#[cfg(feature = "opensearch")]
fn opensearch(settings: &Settings) -> Result<Arc<dyn LexicalIndex>, AppError> {
    use loci_index_engines::opensearch::{OpenSearchLexicalIndex, OpenSearchOptions};
    Ok(Arc::new(OpenSearchLexicalIndex::open(OpenSearchOptions::from_settings(&settings.lexical)?)?))
}

#[cfg(not(feature = "opensearch"))]
fn opensearch(_: &Settings) -> Result<Arc<dyn LexicalIndex>, AppError> {
    Err(not_built("lexical.backend = \"opensearch\"", "opensearch"))
}

/// The memories' graph and the code graph on one engine.
type GraphEngines = (Arc<dyn GraphEngine>, Arc<dyn CodeGraph>);

/// The memories' graph and the code graph on one Neo4j client.
#[cfg(feature = "neo4j")]
fn neo4j(settings: &Settings, breaker: Arc<CircuitBreaker>) -> Result<GraphEngines, AppError> {
    use loci_index_engines::neo4j::{Neo4jGraphIndex, Neo4jOptions};
    let options = Neo4jOptions::from_settings(&settings.graph)?;
    let index = Arc::new(Neo4jGraphIndex::open(options)?.with_breaker(breaker));
    Ok((index.clone(), index))
}

#[cfg(not(feature = "neo4j"))]
fn neo4j(_: &Settings, _: Arc<CircuitBreaker>) -> Result<GraphEngines, AppError> {
    Err(not_built("graph.backend = \"neo4j\"", "neo4j"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use loci_settings::EmbeddingsProvider;
    use loci_stores::PoolConfig;

    use super::*;

    async fn sqlite(settings: &Settings) -> Database {
        settings.ensure_data_dir().unwrap();
        Database::connect(&settings.database_url(), &PoolConfig::from_settings(settings)).await.unwrap()
    }

    /// With the adapter compiled in, a missing URL is named; without it,
    /// choosing the backend says the build lacks it. Either way the start
    /// stops with a configuration error, never a panic. (`.ci/run` runs this
    /// test both ways.)
    #[tokio::test]
    async fn an_engine_backend_without_its_url_or_its_feature_is_a_configuration_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings { data_dir: dir.path().to_path_buf(), ..Settings::default() };
        settings.embeddings.provider = EmbeddingsProvider::None;
        settings.lexical.backend = LexicalBackend::Opensearch;
        let db = sqlite(&settings).await;
        let message = match open(&settings, &db) {
            Err(AppError::Index(IndexError::Config(message))) => message,
            other => panic!("expected a configuration error, got {other:?}"),
        };
        if cfg!(feature = "opensearch") {
            assert!(message.contains("lexical.url is required"), "{message}");
        } else {
            assert!(message.contains("compiled without"), "{message}");
        }
    }

    #[tokio::test]
    async fn the_embedded_defaults_open_without_an_embedder() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings { data_dir: dir.path().to_path_buf(), ..Settings::default() };
        settings.embeddings.provider = EmbeddingsProvider::None;
        let db = sqlite(&settings).await;
        let indexes = open(&settings, &db).unwrap();
        assert!(indexes.vector.is_none() && indexes.embedder.is_none());
        assert_eq!((indexes.lexical.engine(), indexes.graph.engine()), ("embedded", "embedded"));
    }
}
