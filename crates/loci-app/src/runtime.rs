//! Runtime configuration (`PUT /api/v1/config`): the settings an operator
//! changes without a restart — fusion weights, rate-limit plans, the log
//! level — validated as a whole, persisted, then applied to the running
//! services. Changes are serialised; a refused change changes nothing.

use std::sync::Arc;

use loci_domain::search::Weights;
use loci_settings::{Profile, RuntimeSettings, Settings};

use crate::{Services, telemetry};

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeChangeError {
    /// The settings it would give are invalid: `(key, message)` pairs.
    #[error("invalid settings: {0:?}")]
    Invalid(Vec<(String, String)>),
    #[error("the change could not be saved: {0}")]
    Persist(String),
}

/// The runtime settings in force (what the file holds), one change at a time.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    current: Arc<tokio::sync::Mutex<RuntimeSettings>>,
}

impl RuntimeConfig {
    pub fn new(current: RuntimeSettings) -> Self {
        Self { current: Arc::new(tokio::sync::Mutex::new(current)) }
    }
}

/// Whether `org` may change settings every tenant shares: one of
/// `auth.operator_orgs`, or anyone with `admin:write` in the embedded
/// profile when none are listed.
pub fn is_operator(settings: &Settings, org: &str) -> bool {
    if settings.auth.operator_orgs.is_empty() {
        settings.profile == Profile::Embedded
    } else {
        settings.auth.operator_orgs.iter().any(|o| o == org)
    }
}

impl Services {
    /// The settings in force: the loaded ones with the runtime changes.
    pub async fn effective_settings(&self) -> Settings {
        let mut settings = Settings::clone(&self.settings);
        self.runtime.current.lock().await.apply(&mut settings);
        settings
    }

    /// Validates `change` over the settings in force, saves it to
    /// `<data_dir>/runtime-settings.json` and applies it; returns the
    /// settings now in force.
    pub async fn change_runtime_settings(&self, change: &RuntimeSettings) -> Result<Settings, RuntimeChangeError> {
        let mut current = self.runtime.current.lock().await;
        let merged = current.merged(change);
        let mut candidate = Settings::clone(&self.settings);
        merged.apply(&mut candidate);
        let mut problems: Vec<(String, String)> =
            candidate.problems().into_iter().map(|p| (p.key.clone(), p.message.clone())).collect();
        if let Some(level) = &change.log_level
            && let Err(e) = telemetry::check_log_level(level)
        {
            problems.push(("telemetry.log_level".to_owned(), format!("not a log filter: {e}")));
        }
        if !problems.is_empty() {
            return Err(RuntimeChangeError::Invalid(problems));
        }
        merged.save(&self.settings.data_dir).map_err(|e| RuntimeChangeError::Persist(e.to_string()))?;
        let s = &candidate.search;
        let weights = Weights { vector: s.weight_vector, lexical: s.weight_lexical, graph: s.weight_graph };
        if let Err(e) = self.search.set_default_weights(weights) {
            // Settings validation bounds the weights as the search does.
            tracing::error!(error = %e, "fusion weights refused after validation");
        }
        self.rate_limiter.set_policy(loci_security::RatePolicy::from_settings(&candidate.rate_limit));
        if let Some(level) = &change.log_level
            && let Err(e) = telemetry::set_log_level(level)
        {
            tracing::error!(error = %e, "log level not changed");
        }
        *current = merged;
        Ok(candidate)
    }
}
