//! Typed configuration for every Loci binary.
//!
//! Layers, lowest first: compiled-in defaults < optional TOML file
//! (`--config` / `LOCI_CONFIG`) < environment (`LOCI__SECTION__KEY`).
//! `LOCI_PROFILE` (or `LOCI__PROFILE`) picks the profile.
//!
//! Architecture invariant: loading never half-succeeds. [`Settings::load`]
//! returns either settings that passed every field and cross-field rule of
//! their profile, or [`SettingsError::Invalid`] listing every problem at once.
//! Secrets are [`Secret`]s and print as `[REDACTED]`.

pub mod runtime;
mod secret;
mod sections;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use validator::{Validate, ValidationErrors, ValidationErrorsKind};

pub use runtime::RuntimeSettings;
pub use secret::Secret;
pub use sections::*;

/// Environment variables of list-valued settings (comma-separated).
const LIST_KEYS: &[&str] = &[
    "auth.audience",
    "auth.algorithms",
    "auth.hmac_keys",
    "auth.operator_orgs",
    "cors.allowed_origins",
    "mcp.allowed_hosts",
    "mcp.allowed_origins",
];

/// Algorithms Loci knows how to verify.
pub const KNOWN_ALGORITHMS: &[&str] =
    &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256"];

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read configuration: {0}")]
    Load(String),
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

/// One configuration problem: the dotted key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl Problem {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Where to load settings from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// TOML file; when `None`, `LOCI_CONFIG` from `env` is used if set.
    pub file: Option<PathBuf>,
    /// Environment variables (injected so tests need not touch the process env).
    pub env: HashMap<String, String>,
}

impl Sources {
    /// The process environment and an optional explicit file.
    pub fn from_process(file: Option<PathBuf>) -> Self {
        Self { file, env: std::env::vars().collect() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub profile: Profile,
    /// Where the embedded profile keeps its database, indexes, keys and models.
    pub data_dir: PathBuf,
    #[validate(nested)]
    pub server: ServerSettings,
    #[validate(nested)]
    pub database: DatabaseSettings,
    #[validate(nested)]
    pub valkey: ValkeySettings,
    #[validate(nested)]
    pub auth: AuthSettings,
    #[validate(nested)]
    pub dpop: DpopSettings,
    #[validate(nested)]
    pub cors: CorsSettings,
    #[validate(nested)]
    pub embeddings: EmbeddingsSettings,
    #[validate(nested)]
    pub reranker: RerankerSettings,
    #[validate(nested)]
    pub vector: VectorSettings,
    #[validate(nested)]
    pub lexical: LexicalSettings,
    #[validate(nested)]
    pub graph: GraphSettings,
    #[validate(nested)]
    pub telemetry: TelemetrySettings,
    #[validate(nested)]
    pub limits: LimitsSettings,
    #[validate(nested)]
    pub categorizer: CategorizerSettings,
    #[validate(nested)]
    pub search: SearchSettings,
    #[validate(nested)]
    pub mcp: McpSettings,
    #[validate(nested)]
    pub episodic: EpisodicSettings,
    #[validate(nested)]
    pub infer: InferSettings,
    #[validate(nested)]
    pub feedback: FeedbackSettings,
    #[validate(nested)]
    pub gdpr: GdprSettings,
    #[validate(nested)]
    pub rate_limit: RateLimitSettings,
    #[validate(nested)]
    pub resilience: ResilienceSettings,
    #[validate(nested)]
    pub code: CodeSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            profile: Profile::Embedded,
            data_dir: PathBuf::from("loci-data"),
            server: ServerSettings::default(),
            database: DatabaseSettings::default(),
            valkey: ValkeySettings::default(),
            auth: AuthSettings::default(),
            dpop: DpopSettings::default(),
            cors: CorsSettings::default(),
            embeddings: EmbeddingsSettings::default(),
            reranker: RerankerSettings::default(),
            vector: VectorSettings::default(),
            lexical: LexicalSettings::default(),
            graph: GraphSettings::default(),
            telemetry: TelemetrySettings::default(),
            limits: LimitsSettings::default(),
            categorizer: CategorizerSettings::default(),
            search: SearchSettings::default(),
            mcp: McpSettings::default(),
            episodic: EpisodicSettings::default(),
            infer: InferSettings::default(),
            feedback: FeedbackSettings::default(),
            gdpr: GdprSettings::default(),
            rate_limit: RateLimitSettings::default(),
            resilience: ResilienceSettings::default(),
            code: CodeSettings::default(),
        }
    }
}

impl Settings {
    /// Loads and validates settings; every problem is reported at once.
    pub fn load(sources: &Sources) -> Result<Self, SettingsError> {
        let mut settings = Self::load_unchecked(sources)?;
        // What operators changed at run time, last (PUT /api/v1/config).
        RuntimeSettings::load(&settings.data_dir)?.apply(&mut settings);
        let problems = settings.problems();
        if problems.is_empty() { Ok(settings) } else { Err(SettingsError::Invalid(problems)) }
    }

    /// Loads without the validation pass (for `loci config check`, which prints
    /// the effective settings and the problems side by side).
    pub fn load_unchecked(sources: &Sources) -> Result<Self, SettingsError> {
        let mut builder = config::Config::builder();
        let file = sources
            .file
            .clone()
            .or_else(|| sources.env.get("LOCI_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(SettingsError::Load(format!("configuration file {} does not exist", path.display())));
            }
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        let mut env = config::Environment::with_prefix("LOCI")
            .prefix_separator("__")
            .separator("__")
            .list_separator(",")
            .source(Some(sources.env.clone()));
        for key in LIST_KEYS {
            env = env.with_list_parse_key(key);
        }
        builder = builder.add_source(env);
        if let Some(profile) = sources.env.get("LOCI_PROFILE").filter(|v| !v.is_empty()) {
            builder =
                builder.set_override("profile", profile.as_str()).map_err(|e| SettingsError::Load(e.to_string()))?;
        }
        builder
            .build()
            .and_then(config::Config::try_deserialize::<Settings>)
            .map_err(|e| SettingsError::Load(e.to_string()))
    }

    /// Every field and cross-field problem, in a stable order.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if let Err(errors) = self.validate() {
            flatten_validation_errors("", &errors, &mut problems);
        }
        self.cross_field_problems(&mut problems);
        problems.sort_by(|a, b| a.key.cmp(&b.key).then(a.message.cmp(&b.message)));
        problems.dedup();
        problems
    }

    fn cross_field_problems(&self, out: &mut Vec<Problem>) {
        let production = self.profile == Profile::Production;

        // Database.
        match self.database.url.as_ref().map(|u| DatabaseKind::of(u.expose())) {
            None if production => out.push(Problem::new(
                "database.url",
                "required in the production profile (a postgres:// URL); set LOCI__DATABASE__URL",
            )),
            Some(Err(())) => {
                out.push(Problem::new("database.url", "must start with postgres://, postgresql:// or sqlite:"))
            }
            Some(Ok(DatabaseKind::Sqlite)) if production => {
                out.push(Problem::new("database.url", "the production profile needs PostgreSQL, not SQLite"))
            }
            _ => {}
        }
        if self.database.min_connections > self.database.max_connections {
            out.push(Problem::new("database.min_connections", "must not exceed database.max_connections"));
        }

        // Code intelligence: local repositories only in the embedded profile.
        if production && !self.code.allowed_roots.is_empty() {
            out.push(Problem::new(
                "code.allowed_roots",
                "local repository paths are for the embedded profile only; register git URLs in production",
            ));
        }
        for scheme in &self.code.allowed_git_schemes {
            if !["https", "http", "ssh", "git", "file"].contains(&scheme.as_str()) {
                out.push(Problem::new(
                    "code.allowed_git_schemes",
                    format!("unknown scheme `{scheme}` (https, http, ssh, git, file)"),
                ));
            }
        }

        // Rate limiting: every plan named must exist.
        let plans = &self.rate_limit.plans;
        if !plans.contains_key(&self.rate_limit.default_plan) {
            out.push(Problem::new("rate_limit.default_plan", "must name a plan of rate_limit.plans"));
        }
        for (org, plan) in &self.rate_limit.org_plans {
            if !plans.contains_key(plan) {
                out.push(Problem::new(format!("rate_limit.org_plans.{org}"), "must name a plan of rate_limit.plans"));
            }
        }

        // Valkey.
        match &self.valkey.url {
            None if production => out.push(Problem::new(
                "valkey.url",
                "required in the production profile (a redis:// or rediss:// URL); set LOCI__VALKEY__URL",
            )),
            Some(url)
                if !(url.expose().starts_with("redis://")
                    || url.expose().starts_with("rediss://")
                    || url.expose().starts_with("valkey://")) =>
            {
                out.push(Problem::new("valkey.url", "must start with redis://, rediss:// or valkey://"))
            }
            _ => {}
        }

        // Identity provider.
        if production {
            if self.auth.issuer.as_deref().is_none_or(str::is_empty) {
                out.push(Problem::new(
                    "auth.issuer",
                    "required in the production profile (the identity provider's `iss`); set LOCI__AUTH__ISSUER",
                ));
            }
            if self.auth.audience.is_empty() {
                out.push(Problem::new(
                    "auth.audience",
                    "required in the production profile (this API's `aud`); set LOCI__AUTH__AUDIENCE",
                ));
            }
            if self.auth.jwks_url.is_none() && self.auth.jwks_path.is_none() {
                out.push(Problem::new(
                    "auth.jwks_url",
                    "required in the production profile (or auth.jwks_path); set LOCI__AUTH__JWKS_URL",
                ));
            }
        }
        if self.auth.algorithms.is_empty() {
            out.push(Problem::new("auth.algorithms", "at least one algorithm is required"));
        }
        for alg in &self.auth.algorithms {
            if alg.eq_ignore_ascii_case("none") {
                out.push(Problem::new("auth.algorithms", "`none` is never accepted"));
            } else if !KNOWN_ALGORITHMS.contains(&alg.as_str()) {
                out.push(Problem::new(
                    "auth.algorithms",
                    format!("unknown algorithm `{alg}` (known: {})", KNOWN_ALGORITHMS.join(", ")),
                ));
            }
        }
        let hs256 = self.auth.algorithms.iter().any(|a| a == "HS256");
        if production && hs256 {
            out.push(Problem::new(
                "auth.algorithms",
                "HS256 (shared secrets) is for the embedded profile only; use an asymmetric algorithm",
            ));
        }
        if production && self.dpop.require_nonce && self.dpop.nonce_secret.is_none() {
            out.push(Problem::new(
                "dpop.nonce_secret",
                "required with dpop.require_nonce in production, so every instance accepts the same nonces",
            ));
        }
        if hs256 && self.auth.hmac_keys.is_empty() {
            out.push(Problem::new("auth.hmac_keys", "HS256 is enabled but no HMAC key is configured"));
        }
        if self.dpop.nonce_secret.as_ref().is_some_and(|s| s.expose().len() < 32) {
            out.push(Problem::new("dpop.nonce_secret", "must be at least 32 bytes"));
        }
        for (i, key) in self.auth.hmac_keys.iter().enumerate() {
            if key.expose().len() < 32 {
                out.push(Problem::new(format!("auth.hmac_keys[{i}]"), "an HMAC key must be at least 32 bytes"));
            }
        }
        for (role, scopes) in &self.auth.roles {
            if role.is_empty() || scopes.iter().any(|s| !s.contains(':')) {
                out.push(Problem::new(
                    format!("auth.roles.{role}"),
                    "a role maps to scopes of the form resource:action",
                ));
            }
        }

        // CORS.
        let wildcard = self.cors.allowed_origins.iter().any(|o| o == "*");
        if wildcard && self.cors.allow_credentials {
            out.push(Problem::new(
                "cors.allowed_origins",
                "a wildcard origin cannot be combined with cors.allow_credentials = true",
            ));
        }
        for origin in self.cors.allowed_origins.iter().filter(|o| *o != "*") {
            let ok = url::Url::parse(origin)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.path() == "/" && !origin.ends_with('/'));
            if !ok {
                out.push(Problem::new(
                    "cors.allowed_origins",
                    format!("`{origin}` is not an origin (scheme://host[:port], no path)"),
                ));
            }
        }

        // External engines need their URL.
        if self.vector.backend == VectorBackend::Qdrant && self.vector.url.is_none() {
            out.push(Problem::new("vector.url", "required when vector.backend = \"qdrant\""));
        }
        if self.lexical.backend == LexicalBackend::Opensearch && self.lexical.url.is_none() {
            out.push(Problem::new("lexical.url", "required when lexical.backend = \"opensearch\""));
        }
        if self.graph.backend == GraphBackend::Neo4j && self.graph.url.is_none() {
            out.push(Problem::new("graph.url", "required when graph.backend = \"neo4j\""));
        }
        if self.infer.llm && self.infer.url.is_none() && self.categorizer.url.is_none() {
            out.push(Problem::new("infer.url", "required when infer.llm = true (or set categorizer.url)"));
        }
        if self.code.llm_summary && self.infer.url.is_none() && self.categorizer.url.is_none() {
            out.push(Problem::new("infer.url", "required when code.llm_summary = true (or set categorizer.url)"));
        }
        if self.categorizer.enabled && self.categorizer.url.is_none() {
            out.push(Problem::new("categorizer.url", "required when categorizer.enabled = true"));
        }
        if self.embeddings.provider == EmbeddingsProvider::Openai && self.embeddings.url.is_none() {
            out.push(Problem::new("embeddings.url", "required when embeddings.provider = \"openai\""));
        }
        if self.reranker.provider == RerankerProvider::Http && self.reranker.url.is_none() {
            out.push(Problem::new("reranker.url", "required when reranker.provider = \"http\""));
        }
        if self.reranker.provider == RerankerProvider::Local && self.reranker.model_dir.is_none() {
            out.push(Problem::new("reranker.model_dir", "required when reranker.provider = \"local\""));
        }
    }

    /// The database URL in effect: the configured one, or the embedded SQLite
    /// file under `data_dir`.
    pub fn database_url(&self) -> Secret {
        match &self.database.url {
            Some(url) => url.clone(),
            None => Secret::new(format!("sqlite://{}?mode=rwc", self.data_dir.join("loci.db").display())),
        }
    }

    /// The URL `loci migrate` uses: `database.migration_url`, else the app URL.
    pub fn migration_database_url(&self) -> Secret {
        self.database.migration_url.clone().unwrap_or_else(|| self.database_url())
    }

    /// The issuer tokens must carry (`loci-local` for locally minted tokens).
    pub fn issuer(&self) -> &str {
        self.auth.issuer.as_deref().unwrap_or("loci-local")
    }

    /// The audiences tokens may carry (`loci` for locally minted tokens).
    pub fn audiences(&self) -> Vec<String> {
        if self.auth.audience.is_empty() { vec!["loci".to_owned()] } else { self.auth.audience.clone() }
    }

    /// The effective settings as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> Result<String, SettingsError> {
        toml::to_string_pretty(self).map_err(|e| SettingsError::Load(e.to_string()))
    }

    /// Ensures `data_dir` exists (embedded profile state lives there).
    pub fn ensure_data_dir(&self) -> std::io::Result<&Path> {
        std::fs::create_dir_all(&self.data_dir)?;
        Ok(&self.data_dir)
    }
}

/// Which relational engine a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Postgres,
    Sqlite,
}

impl DatabaseKind {
    #[allow(clippy::result_unit_err)]
    pub fn of(url: &str) -> Result<Self, ()> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else {
            Err(())
        }
    }
}

fn flatten_validation_errors(prefix: &str, errors: &ValidationErrors, out: &mut Vec<Problem>) {
    for (field, kind) in errors.errors() {
        let key = if prefix.is_empty() { field.to_string() } else { format!("{prefix}.{field}") };
        match kind {
            ValidationErrorsKind::Field(list) => {
                for e in list {
                    let message = match (&e.message, e.code.as_ref()) {
                        (Some(m), _) => m.to_string(),
                        (None, "range") => {
                            let bound = |n: &str| e.params.get(n).map(|v| v.to_string());
                            match (bound("min"), bound("max")) {
                                (Some(min), Some(max)) => format!("must be between {min} and {max}"),
                                (Some(min), None) => format!("must be at least {min}"),
                                (None, Some(max)) => format!("must be at most {max}"),
                                (None, None) => "out of range".into(),
                            }
                        }
                        (None, "url") => "must be a valid URL".into(),
                        (None, "length") => "has an invalid length".into(),
                        (None, code) => format!("is invalid ({code})"),
                    };
                    out.push(Problem::new(key.clone(), message));
                }
            }
            ValidationErrorsKind::Struct(inner) => flatten_validation_errors(&key, inner, out),
            ValidationErrorsKind::List(items) => {
                for (i, inner) in items {
                    flatten_validation_errors(&format!("{key}[{i}]"), inner, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
