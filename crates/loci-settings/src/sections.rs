//! Typed configuration sections. Every field has a compiled-in default so an
//! empty configuration is a working embedded setup.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};
use validator::Validate;

use crate::Secret;

/// Accepts either `"a"` or `["a", "b"]` (a TOML file may use either form, an
/// environment variable gives a comma-separated list).
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        OneOrMany::Many(v) => v,
    })
}

fn paths_one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    Ok(one_or_many(d)?.into_iter().map(PathBuf::from).collect())
}

fn secrets_one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Secret>, D::Error> {
    Ok(one_or_many(d)?.into_iter().map(Secret::new).collect())
}

/// Deployment profile: decides which settings are required and which
/// components run (local signing key and in-process caches in `embedded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// One process, no external service, no API key: SQLite, in-process cache,
    /// embedded indexes and a locally generated signing key.
    #[default]
    Embedded,
    /// PostgreSQL, Valkey and an external identity provider (JWKS) are required.
    Production,
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Profile::Embedded => "embedded",
            Profile::Production => "production",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    #[validate(length(min = 1))]
    pub host: String,
    /// 0 asks the OS for a free port (used by tests).
    pub port: u16,
    /// Worker threads; 0 means one per core.
    #[validate(range(max = 512))]
    pub workers: usize,
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    #[validate(range(min = 1, max = 600))]
    pub shutdown_timeout_secs: u64,
    /// Public base URL when behind a proxy (used for DPoP `htu` and metadata).
    #[validate(url)]
    pub external_base_url: Option<String>,
    /// Whether `/health/deps` is served without a token.
    pub public_health_deps: bool,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            workers: 0,
            shutdown_timeout_secs: 30,
            external_base_url: None,
            public_health_deps: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://...` or `sqlite://...`. Embedded default: `<data_dir>/loci.db`.
    pub url: Option<Secret>,
    /// Owner role used by `loci migrate` when it differs from the app role.
    pub migration_url: Option<Secret>,
    #[validate(range(min = 1, max = 1000))]
    pub max_connections: u32,
    #[validate(range(max = 1000))]
    pub min_connections: u32,
    #[validate(range(min = 1, max = 300))]
    pub connect_timeout_secs: u64,
    #[validate(range(min = 1, max = 300))]
    pub acquire_timeout_secs: u64,
    #[validate(range(min = 1, max = 86400))]
    pub idle_timeout_secs: u64,
    #[validate(range(min = 1, max = 600_000))]
    pub sqlite_busy_timeout_ms: u64,
    /// SQLite: bytes of the database file each connection reads through a
    /// memory map, in MiB (0: none). Resident memory counts the mapped pages
    /// once per connection, so it is bounded by (max_connections + 1) x this.
    #[validate(range(max = 4096))]
    pub sqlite_mmap_mib: u64,
    /// Apply pending migrations when the server starts.
    pub auto_migrate: bool,
    /// PostgreSQL only: start even if the app role bypasses row-level security
    /// (superuser or BYPASSRLS). Off by default: RLS is part of tenant isolation.
    pub allow_rls_bypass: bool,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            migration_url: None,
            max_connections: 16,
            min_connections: 1,
            connect_timeout_secs: 5,
            acquire_timeout_secs: 5,
            idle_timeout_secs: 600,
            sqlite_busy_timeout_ms: 5000,
            sqlite_mmap_mib: 32,
            auto_migrate: true,
            allow_rls_bypass: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct ValkeySettings {
    /// `redis://`, `rediss://` or `valkey://` URL; absent = in-process cache
    /// (embedded only).
    pub url: Option<Secret>,
    #[validate(range(min = 1, max = 128))]
    pub pool_size: usize,
    #[validate(range(min = 1, max = 60_000))]
    pub timeout_ms: u64,
    /// Prefix of every key Loci writes, so several deployments can share a server.
    #[validate(length(min = 1, max = 64))]
    pub key_prefix: String,
}

impl Default for ValkeySettings {
    fn default() -> Self {
        Self { url: None, pool_size: 4, timeout_ms: 2000, key_prefix: "loci".into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Expected `iss`. Embedded default: `loci-local`.
    pub issuer: Option<String>,
    /// Accepted `aud` values (a token matches if any of its audiences is listed).
    #[serde(deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    #[validate(url)]
    pub jwks_url: Option<String>,
    pub jwks_path: Option<PathBuf>,
    /// Accepted JWS algorithms.
    #[serde(deserialize_with = "one_or_many")]
    pub algorithms: Vec<String>,
    /// Accepted HMAC keys for HS256 (each >= 32 bytes; several for rotation).
    #[serde(deserialize_with = "secrets_one_or_many")]
    pub hmac_keys: Vec<Secret>,
    #[validate(range(max = 600))]
    pub leeway_secs: u64,
    #[validate(range(max = 600))]
    pub max_iat_skew_secs: u64,
    /// Minimum interval between JWKS refreshes triggered by an unknown `kid`.
    #[validate(range(min = 1, max = 3600))]
    pub jwks_refresh_min_interval_secs: u64,
    /// How long fetched keys are used before the JWKS is read again (so a
    /// removed key stops being accepted).
    #[validate(range(min = 1, max = 86400))]
    pub jwks_cache_ttl_secs: u64,
    /// Role name -> scopes it grants.
    pub roles: BTreeMap<String, Vec<String>>,
    /// Orgs whose `admin:write` callers may change process-wide settings
    /// (`PUT /api/v1/config`: fusion weights, rate-limit plans, log level),
    /// which every tenant shares. Empty: in the embedded profile (one
    /// tenant, one machine) any `admin:write` caller; in production nobody.
    #[serde(deserialize_with = "one_or_many")]
    pub operator_orgs: Vec<String>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            issuer: None,
            audience: Vec::new(),
            jwks_url: None,
            jwks_path: None,
            algorithms: ["RS256", "PS256", "ES256", "EdDSA"].map(String::from).to_vec(),
            hmac_keys: Vec::new(),
            leeway_secs: 30,
            max_iat_skew_secs: 30,
            jwks_refresh_min_interval_secs: 30,
            jwks_cache_ttl_secs: 300,
            roles: BTreeMap::new(),
            operator_orgs: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DpopPolicy {
    Off,
    #[default]
    Optional,
    Required,
}

#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct DpopSettings {
    pub policy: DpopPolicy,
    #[validate(range(min = 1, max = 3600))]
    pub max_age_secs: u64,
    #[validate(range(max = 300))]
    pub future_skew_secs: u64,
    /// Require server-issued nonces (`DPoP-Nonce`) in proofs.
    pub require_nonce: bool,
    /// Secret for stateless nonces; instances that share it accept each
    /// other's nonces. Random per process when absent.
    pub nonce_secret: Option<Secret>,
    #[validate(range(min = 10, max = 3600))]
    pub nonce_window_secs: u64,
    /// Capacity of the in-process replay cache (embedded profile).
    #[validate(range(min = 1000, max = 10_000_000))]
    pub replay_cache_capacity: usize,
}

impl Default for DpopSettings {
    fn default() -> Self {
        Self {
            policy: DpopPolicy::Optional,
            max_age_secs: 60,
            future_skew_secs: 5,
            require_nonce: false,
            nonce_secret: None,
            nonce_window_secs: 300,
            replay_cache_capacity: 200_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct CorsSettings {
    /// Exact origins allowed; `*` allows any origin (only without credentials).
    #[serde(deserialize_with = "one_or_many")]
    pub allowed_origins: Vec<String>,
    pub allow_credentials: bool,
    #[validate(range(max = 86400))]
    pub max_age_secs: u64,
}

impl Default for CorsSettings {
    fn default() -> Self {
        Self { allowed_origins: Vec::new(), allow_credentials: false, max_age_secs: 600 }
    }
}

/// The MCP server (stdio and streamable HTTP at `/mcp`).
#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct McpSettings {
    /// Host names (or `host:port`) the HTTP transport answers to; anything
    /// else is refused (DNS-rebinding protection). Public deployments list
    /// their own names.
    #[serde(deserialize_with = "one_or_many")]
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed to call `/mcp` (exact `scheme://host[:port]`).
    /// Requests without an `Origin` header (agents, IDEs) are not affected.
    #[serde(deserialize_with = "one_or_many")]
    pub allowed_origins: Vec<String>,
    /// An HTTP session expires after this long without a request.
    #[validate(range(min = 1, max = 604800))]
    pub session_ttl_secs: u64,
    /// Largest `limit` a search or list tool accepts.
    #[validate(range(min = 1, max = 1000))]
    pub max_results: u64,
}

impl Default for McpSettings {
    fn default() -> Self {
        Self {
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            allowed_origins: Vec::new(),
            session_ttl_secs: 1800,
            max_results: 50,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddingsProvider {
    None,
    #[default]
    Local,
    Openai,
}

#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddingsSettings {
    pub provider: EmbeddingsProvider,
    /// Directory with model.safetensors, tokenizer.json and config.json.
    /// Default: `<data_dir>/models/all-MiniLM-L6-v2`.
    pub model_dir: Option<PathBuf>,
    /// Base URL of an OpenAI-compatible endpoint.
    #[validate(url)]
    pub url: Option<String>,
    pub api_key: Option<Secret>,
    #[validate(length(min = 1))]
    pub model: String,
    #[validate(range(min = 1, max = 8192))]
    pub dimensions: usize,
    #[validate(range(min = 1, max = 120_000))]
    pub timeout_ms: u64,
    #[validate(range(min = 1, max = 1024))]
    pub batch_size: usize,
    /// How a local model's token vectors become one vector: `mean` or `cls`.
    /// Default: what the model directory's `1_Pooling/config.json` says
    /// (sentence-transformers layout), else `mean`.
    pub pooling: Option<Pooling>,
    /// Text put before a search query (e5: `"query: "`, bge:
    /// `"Represent this sentence for searching relevant passages: "`).
    /// Default: the `prompts.query` of the model directory's
    /// `config_sentence_transformers.json`, else none.
    #[validate(length(max = 256))]
    pub query_prefix: Option<String>,
    /// Text put before a stored memory (e5: `"passage: "`). Default: the
    /// `prompts.passage` (or `document`) of the same file, else none.
    #[validate(length(max = 256))]
    pub passage_prefix: Option<String>,
}

/// Pooling of a local embedding model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The mean of the token vectors under the attention mask (MiniLM, e5, gte).
    Mean,
    /// The first token's vector (bge).
    Cls,
}

/// Where the reranker of search results runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RerankerProvider {
    #[default]
    None,
    /// A BERT-family cross-encoder (e.g. ms-marco-MiniLM-L-6-v2) from `model_dir`, in process.
    Local,
    /// An HTTP rerank endpoint (`api`: Cohere-compatible or TEI).
    Http,
}

/// The request and answer shape of an HTTP rerank endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RerankApi {
    /// `POST {url}/v1/rerank` `{model, query, documents, top_n}` -> `{results: [{index,
    /// relevance_score}]}`: Cohere, Jina, Voyage, vLLM, Infinity, LocalAI.
    #[default]
    Cohere,
    /// `POST {url}/rerank` `{query, texts}` -> `[{index, score}]`: Hugging Face TEI.
    Tei,
}

/// `[reranker]`: an optional second stage that reorders the best fused results.
#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct RerankerSettings {
    pub provider: RerankerProvider,
    /// Directory of a local cross-encoder: model.safetensors, config.json, tokenizer.json.
    pub model_dir: Option<PathBuf>,
    /// Base URL of an HTTP rerank endpoint.
    #[validate(url)]
    pub url: Option<String>,
    pub api: RerankApi,
    pub api_key: Option<Secret>,
    /// The `model` field of an HTTP request; a local model's name defaults to its directory's.
    #[validate(length(max = 256))]
    pub model: Option<String>,
    /// How many of the best fused results are reranked (the rest keep their order after them).
    #[validate(range(min = 1, max = 200))]
    pub candidates: usize,
    #[validate(range(min = 1, max = 120_000))]
    pub timeout_ms: u64,
    /// Query-document pairs per forward pass of a local model.
    #[validate(range(min = 1, max = 256))]
    pub batch_size: usize,
}

impl Default for RerankerSettings {
    fn default() -> Self {
        Self {
            provider: RerankerProvider::None,
            model_dir: None,
            url: None,
            api: RerankApi::Cohere,
            api_key: None,
            model: None,
            candidates: 30,
            timeout_ms: 2_000,
            batch_size: 16,
        }
    }
}

impl Default for EmbeddingsSettings {
    fn default() -> Self {
        Self {
            provider: EmbeddingsProvider::Local,
            model_dir: None,
            url: None,
            api_key: None,
            model: "all-MiniLM-L6-v2".into(),
            dimensions: 384,
            timeout_ms: 10_000,
            batch_size: 32,
            pooling: None,
            query_prefix: None,
            passage_prefix: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VectorBackend {
    #[default]
    Embedded,
    Qdrant,
}

#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct VectorSettings {
    pub backend: VectorBackend,
    #[validate(url)]
    pub url: Option<String>,
    pub api_key: Option<Secret>,
    /// Embedded index directory. Default: `<data_dir>/vector`.
    pub path: Option<PathBuf>,
}

impl Default for VectorSettings {
    fn default() -> Self {
        Self { backend: VectorBackend::Embedded, url: None, api_key: None, path: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LexicalBackend {
    #[default]
    Embedded,
    Opensearch,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct LexicalSettings {
    pub backend: LexicalBackend,
    #[validate(url)]
    pub url: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Embedded index directory. Default: `<data_dir>/lexical`.
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GraphBackend {
    #[default]
    Embedded,
    Neo4j,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct GraphSettings {
    pub backend: GraphBackend,
    /// e.g. `bolt://neo4j:7687`.
    #[validate(url)]
    pub url: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// JSON when stdout is not a terminal, pretty otherwise.
    #[default]
    Auto,
    Json,
    Pretty,
}

#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    pub log_format: LogFormat,
    /// `tracing` filter directive, e.g. `info` or `loci_api=debug,info`.
    #[validate(length(min = 1))]
    pub log_level: String,
    /// OTLP endpoint for traces; absent = no export.
    #[validate(url)]
    pub otlp_endpoint: Option<String>,
    #[validate(length(min = 1))]
    pub service_name: String,
    pub metrics_enabled: bool,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Auto,
            log_level: "info".into(),
            otlp_endpoint: None,
            service_name: "loci".into(),
            metrics_enabled: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSettings {
    /// Largest JSON request body.
    #[validate(range(min = 1024, max = 67_108_864))]
    pub max_body_bytes: usize,
    /// Largest multipart upload (backup import).
    #[validate(range(min = 1024, max = 1_073_741_824))]
    pub max_upload_bytes: usize,
    #[validate(range(min = 1, max = 1_048_576))]
    pub max_content_bytes: usize,
    #[validate(range(min = 1, max = 1_048_576))]
    pub max_metadata_bytes: usize,
    #[validate(range(min = 1, max = 1024))]
    pub max_tags: usize,
    #[validate(range(min = 1, max = 256))]
    pub max_json_depth: usize,
    /// How long a client may take to send a request's head (slow-loris guard).
    #[validate(range(min = 1, max = 3600))]
    pub request_timeout_secs: u64,
}

impl Default for LimitsSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 1_048_576,
            max_upload_bytes: 104_857_600,
            max_content_bytes: 16 * 1024,
            max_metadata_bytes: 16 * 1024,
            max_tags: 64,
            max_json_depth: 32,
            request_timeout_secs: 30,
        }
    }
}

/// Automatic categorisation of new memories through an OpenAI-compatible
/// chat endpoint. Off by default; asynchronous, so it never delays or fails a
/// write. Client-supplied categories are always kept.
#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct CategorizerSettings {
    pub enabled: bool,
    /// Base URL of the API, e.g. `http://localhost:11434/v1` (Ollama) or
    /// `https://api.openai.com/v1`.
    #[validate(url)]
    pub url: Option<String>,
    #[validate(length(min = 1, max = 200))]
    pub model: String,
    pub api_key: Option<Secret>,
    #[validate(range(min = 100, max = 120_000))]
    pub timeout_ms: u64,
    /// At most this many categories are added per memory.
    #[validate(range(min = 1, max = 20))]
    pub max_categories: usize,
}

impl Default for CategorizerSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            url: None,
            model: "gpt-4o-mini".into(),
            api_key: None,
            timeout_ms: 10_000,
            max_categories: 3,
        }
    }
}

/// Hybrid search and the indexers feeding it.
#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct SearchSettings {
    /// How the sources' lists are fused: `score` (each list's scores
    /// min-max normalised, weighted and summed) or `rrf` (weighted
    /// reciprocal rank fusion).
    pub fusion: FusionMethod,
    /// Reciprocal rank fusion constant: a result at rank r of a source adds
    /// weight / (k + r).
    #[validate(range(min = 1.0, max = 10_000.0))]
    pub rrf_k: f32,
    #[validate(range(min = 0.0, max = 100.0))]
    pub weight_vector: f32,
    #[validate(range(min = 0.0, max = 100.0))]
    pub weight_lexical: f32,
    #[validate(range(min = 0.0, max = 100.0))]
    pub weight_graph: f32,
    /// Results taken from each source before fusion.
    #[validate(range(min = 1, max = 1000))]
    pub candidates: usize,
    /// Neighbouring memories of the same app stream (before and after)
    /// indexed as context of a memory (0 = none): a conversation turn is
    /// found through what surrounds it.
    #[validate(range(max = 8))]
    pub context_window: usize,
    /// Whether the embedded text of a memory includes that context too.
    pub embed_context: bool,
    /// Ranking signals over the best `signal_depth` fused results (0 = off):
    /// share of the better fused score of a result's stream neighbours added
    /// to its own ...
    #[validate(range(min = 0.0, max = 10.0))]
    pub neighbour_weight: f32,
    /// ... relative boost of a result naming an entity the query names ...
    #[validate(range(min = 0.0, max = 10.0))]
    pub entity_boost: f32,
    /// ... relative boost of a result with a time expression, for a question
    /// asking when.
    #[validate(range(min = 0.0, max = 10.0))]
    pub temporal_boost: f32,
    #[validate(range(max = 500))]
    pub signal_depth: usize,
    /// The lexical query leaves out question words and auxiliaries ("what",
    /// "did", "how"...), which match every turn that asks something.
    pub strip_question_words: bool,
    /// Outbox rows an indexer claims at once.
    #[validate(range(min = 1, max = 10_000))]
    pub indexer_batch: u64,
    /// Pause of an idle indexer before it polls the outbox again.
    #[validate(range(min = 10, max = 60_000))]
    pub indexer_poll_ms: u64,
}

impl Default for SearchSettings {
    fn default() -> Self {
        Self {
            rrf_k: 60.0,
            // Chosen on LoCoMo by leave-one-conversation-out (R@10 + MRR,
            // docs/BENCHMARKS.md): the graph list adds nothing there once
            // the entities a query names boost the memories naming them.
            fusion: FusionMethod::Score,
            weight_vector: 0.40,
            weight_lexical: 0.60,
            weight_graph: 0.0,
            candidates: 100,
            context_window: 1,
            embed_context: true,
            neighbour_weight: 0.4,
            entity_boost: 1.5,
            temporal_boost: 1.0,
            signal_depth: 50,
            strip_question_words: true,
            indexer_batch: 256,
            indexer_poll_ms: 200,
        }
    }
}

/// How search fuses its sources' lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FusionMethod {
    /// Min-max normalised scores, weighted and summed.
    #[default]
    Score,
    /// Weighted reciprocal rank fusion.
    Rrf,
}

/// Episodic (session) memory: what an agent keeps for one session. On Valkey
/// when `valkey.url` is set (shared by every instance), in process otherwise.
#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct EpisodicSettings {
    /// How long an item lives after it was added (the session's index lives
    /// as long as its newest item).
    #[validate(range(min = 1, max = 2_592_000))]
    pub ttl_secs: u64,
    /// Most items one session keeps: adding more drops the oldest.
    #[validate(range(min = 1, max = 100_000))]
    pub max_items_per_session: usize,
}

impl Default for EpisodicSettings {
    fn default() -> Self {
        Self { ttl_secs: 86_400, max_items_per_session: 1_000 }
    }
}

/// Fact inference (`infer=true` on a create or `add_memories`): an input
/// becomes atomic facts, each added, merged with (NOOP), superseding
/// (UPDATE) or retracting (DELETE) what the caller already has. The local
/// path needs no LLM; with `llm = true` an OpenAI-compatible model extracts
/// and decides, and the local path takes over whenever it fails.
#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct InferSettings {
    /// A fact this close (cosine) to a current memory is already known.
    #[validate(range(min = 0.5, max = 1.0))]
    pub noop_similarity: f32,
    /// A retraction ends the closest current memory at least this close to
    /// what it retracts, when no memory has the same subject and attribute.
    #[validate(range(min = 0.3, max = 1.0))]
    pub retract_similarity: f32,
    /// Current memories compared with each fact, per index.
    #[validate(range(min = 1, max = 100))]
    pub candidates: usize,
    /// Most messages in one input.
    #[validate(range(min = 1, max = 10_000))]
    pub max_messages: usize,
    /// Inputs longer than this (characters, all messages together) run as a
    /// job (202 with its id) rather than within the request.
    #[validate(range(min = 1, max = 10_000_000))]
    pub async_threshold_chars: usize,
    /// Jobs run at once by one process.
    #[validate(range(min = 1, max = 64))]
    pub job_concurrency: usize,
    /// Jobs one org may have queued or running (more: 429).
    #[validate(range(min = 1, max = 100_000))]
    pub max_pending_jobs_per_org: u64,
    /// A job's lease: its worker extends it while the job runs; a worker
    /// that died gives its jobs back when it ends.
    #[validate(range(min = 1, max = 86_400))]
    pub job_lease_secs: u64,
    /// Attempts before a job is marked failed.
    #[validate(range(min = 1, max = 100))]
    pub job_max_attempts: u32,
    /// Ask an LLM (`url`, or the categoriser's when unset).
    pub llm: bool,
    #[validate(url)]
    pub url: Option<String>,
    #[validate(length(min = 1, max = 200))]
    pub model: Option<String>,
    pub api_key: Option<Secret>,
    #[validate(range(min = 100, max = 300_000))]
    pub timeout_ms: u64,
    /// Retries of a failed call (timeouts, 5xx, malformed answers).
    #[validate(range(min = 0, max = 10))]
    pub retries: u32,
    /// Consecutive failed calls that open the circuit breaker; it stays
    /// open (the local path answers at once) for `breaker_cool_down_secs`.
    #[validate(range(min = 1, max = 1_000))]
    pub breaker_failures: u32,
    #[validate(range(min = 1, max = 3_600))]
    pub breaker_cool_down_secs: u64,
}

impl Default for InferSettings {
    fn default() -> Self {
        Self {
            noop_similarity: 0.9,
            retract_similarity: 0.7,
            candidates: 8,
            max_messages: 1_000,
            async_threshold_chars: 32_768,
            job_concurrency: 2,
            max_pending_jobs_per_org: 100,
            job_lease_secs: 30,
            job_max_attempts: 3,
            llm: false,
            url: None,
            model: None,
            api_key: None,
            timeout_ms: 30_000,
            retries: 2,
            breaker_failures: 5,
            breaker_cool_down_secs: 30,
        }
    }
}

/// Feedback on retrieval (`/api/v1/feedback`, the `report_feedback` tool).
#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct FeedbackSettings {
    /// Events older than this are purged.
    #[validate(range(min = 1, max = 3650))]
    pub retention_days: u64,
}

impl Default for FeedbackSettings {
    fn default() -> Self {
        Self { retention_days: 30 }
    }
}

/// GDPR: crypto-shredded backups and the purge of deleted memories.
#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct GdprSettings {
    /// Base64 of 32 random bytes: wraps the per-user data keys that seal
    /// each user's rows in backup archives. Embedded default: the key file
    /// `<data_dir>/keys/backup-master.key`, created on first use.
    /// Production: required by `loci backup` and `loci restore`.
    pub master_key: Option<Secret>,
    /// A deleted memory is kept this many days, then hard-deleted with its
    /// history and access logs (`purge_after = deleted_at + this`): by the
    /// server every hour, or by `loci purge`.
    #[validate(range(min = 1, max = 3650))]
    pub deleted_retention_days: u64,
}

impl Default for GdprSettings {
    fn default() -> Self {
        Self { master_key: None, deleted_retention_days: 30 }
    }
}

/// What the rate limiter does when its store (Valkey) cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitFallback {
    /// Reads and searches go through unlimited; writes are refused with 503
    /// `DEPENDENCY_UNAVAILABLE` (a flood of writes is what hurts most).
    #[default]
    AllowReads,
    /// Everything goes through unlimited.
    AllowAll,
    /// Everything is refused with 503.
    RefuseAll,
}

/// One plan's budget per route group: `read` (GET), `write` (changes),
/// `search` (searches and graph queries), each this many requests per
/// `window_secs` and caller (org + user), refilled evenly (GCRA), so a
/// full window's budget may be spent at once and then one more request
/// every `window_secs / limit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct RatePlan {
    #[validate(range(min = 1, max = 86_400))]
    pub window_secs: u64,
    #[validate(range(min = 1, max = 100_000_000))]
    pub read: u64,
    #[validate(range(min = 1, max = 100_000_000))]
    pub write: u64,
    #[validate(range(min = 1, max = 100_000_000))]
    pub search: u64,
}

impl RatePlan {
    pub const fn hourly(limit: u64) -> Self {
        Self { window_secs: 3600, read: limit, write: limit, search: limit }
    }
}

/// Rate limiting (40-operations.md): per org and user from the token, per
/// route group, per org plan; in Valkey when one is configured (shared by
/// every instance), else in process. Health routes are exempt.
#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    pub enabled: bool,
    /// The plan of an org not listed in `org_plans`.
    #[validate(length(min = 1, max = 64))]
    pub default_plan: String,
    #[validate(nested)]
    pub plans: BTreeMap<String, RatePlan>,
    /// Org id -> plan name.
    pub org_plans: BTreeMap<String, String>,
    pub when_store_unavailable: RateLimitFallback,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            default_plan: "pro".into(),
            plans: BTreeMap::from([
                ("free".to_owned(), RatePlan::hourly(1_000)),
                ("pro".to_owned(), RatePlan::hourly(10_000)),
                ("enterprise".to_owned(), RatePlan::hourly(100_000)),
            ]),
            org_plans: BTreeMap::new(),
            when_store_unavailable: RateLimitFallback::AllowReads,
        }
    }
}

/// Circuit breakers, one per dependency (the database, Valkey, each index
/// engine, the embedding and LLM endpoints): after `failure_threshold`
/// consecutive failures a breaker opens and calls fail at once with 503
/// `DEPENDENCY_UNAVAILABLE` for `cool_down_secs`; then one trial call goes
/// through and its outcome closes or re-opens it.
#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct ResilienceSettings {
    #[validate(range(min = 1, max = 1000))]
    pub failure_threshold: u32,
    #[validate(range(min = 1, max = 3600))]
    pub cool_down_secs: u64,
}

impl Default for ResilienceSettings {
    fn default() -> Self {
        Self { failure_threshold: 5, cool_down_secs: 30 }
    }
}

/// `[code]`: code intelligence (`/api/v1/code`, the MCP code tools).
/// Repositories are read from a local path (embedded profile only, inside
/// one of `allowed_roots`) or cloned from a git URL (`allowed_git_schemes`)
/// into `<data_dir>/code/checkouts`. Indexing runs as a job: at most
/// `max_queued_jobs` queued or running per org (more: 429), one per
/// repository.
#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct CodeSettings {
    /// Directories under which local repositories may be registered (after
    /// resolving symlinks); empty: no local path is accepted.
    #[serde(deserialize_with = "paths_one_or_many")]
    pub allowed_roots: Vec<PathBuf>,
    /// URL schemes a git source may use (`https`, `ssh`, `git`, `file`).
    #[serde(deserialize_with = "one_or_many")]
    pub allowed_git_schemes: Vec<String>,
    /// Larger files are skipped with a reason (never read).
    #[validate(range(min = 1024, max = 67_108_864))]
    pub max_file_bytes: u64,
    /// Files read per repository at most (the rest are reported skipped).
    #[validate(range(min = 1, max = 1_000_000))]
    pub max_files: u64,
    #[validate(range(min = 1, max = 1000))]
    pub max_queued_jobs: u64,
    /// Concurrent indexing jobs per process.
    #[validate(range(min = 1, max = 64))]
    pub job_concurrency: usize,
    /// How long a clone or fetch may take.
    #[validate(range(min = 1, max = 86_400))]
    pub git_timeout_secs: u64,
    /// `explain_code` adds a summary by the LLM of `[infer]` (its `url`,
    /// `model` and `api_key`, or the categoriser's); without an answer it
    /// explains without one (`missing_sources: ["llm"]`).
    pub llm_summary: bool,
}

impl Default for CodeSettings {
    fn default() -> Self {
        Self {
            allowed_roots: Vec::new(),
            allowed_git_schemes: vec!["https".into(), "ssh".into(), "git".into()],
            max_file_bytes: 1024 * 1024,
            max_files: 100_000,
            max_queued_jobs: 4,
            job_concurrency: 1,
            git_timeout_secs: 600,
            llm_summary: false,
        }
    }
}
