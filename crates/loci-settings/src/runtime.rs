//! Settings an operator changes while Loci runs (`PUT /api/v1/config`):
//! fusion weights, rate-limit plans and the log level. They are kept in
//! `<data_dir>/runtime-settings.json`, written atomically, and applied over
//! the file and the environment at the next start, so a restart keeps them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{RatePlan, Settings, SettingsError};

/// A change of (or the whole set of) runtime settings; absent fields are
/// left as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<RuntimeSearch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RuntimeRateLimit>,
    /// A `tracing` filter directive, e.g. `info` or `loci_domain=debug,info`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
}

/// Fusion weights of searches that do not choose their own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeSearch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_vector: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_lexical: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_graph: Option<f32>,
}

/// Rate limiting: on/off, the plans and which org is on which.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeRateLimit {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_plan: Option<String>,
    /// Replaces the whole set of plans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plans: Option<BTreeMap<String, RatePlan>>,
    /// Replaces the whole assignment of orgs to plans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_plans: Option<BTreeMap<String, String>>,
}

impl RuntimeSettings {
    pub const FILE_NAME: &'static str = "runtime-settings.json";

    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(Self::FILE_NAME)
    }

    /// The persisted runtime settings (empty when none were ever changed).
    pub fn load(data_dir: &Path) -> Result<Self, SettingsError> {
        let path = Self::path(data_dir);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| SettingsError::Load(format!("{}: {e}", path.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(SettingsError::Load(format!("{}: {e}", path.display()))),
        }
    }

    /// Writes the file atomically (a temporary file renamed over it), so a
    /// crash leaves the old or the new settings, never half of them.
    pub fn save(&self, data_dir: &Path) -> Result<(), SettingsError> {
        let path = Self::path(data_dir);
        let io = |e: std::io::Error| SettingsError::Load(format!("{}: {e}", path.display()));
        std::fs::create_dir_all(data_dir).map_err(io)?;
        let json = serde_json::to_vec_pretty(self).map_err(|e| SettingsError::Load(e.to_string()))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }

    /// `change` over `self`: what it sets wins.
    pub fn merged(&self, change: &RuntimeSettings) -> RuntimeSettings {
        let search = match (self.search, change.search) {
            (Some(old), Some(new)) => Some(RuntimeSearch {
                weight_vector: new.weight_vector.or(old.weight_vector),
                weight_lexical: new.weight_lexical.or(old.weight_lexical),
                weight_graph: new.weight_graph.or(old.weight_graph),
            }),
            (old, new) => new.or(old),
        };
        let rate_limit = match (&self.rate_limit, &change.rate_limit) {
            (Some(old), Some(new)) => Some(RuntimeRateLimit {
                enabled: new.enabled.or(old.enabled),
                default_plan: new.default_plan.clone().or_else(|| old.default_plan.clone()),
                plans: new.plans.clone().or_else(|| old.plans.clone()),
                org_plans: new.org_plans.clone().or_else(|| old.org_plans.clone()),
            }),
            (old, new) => new.clone().or_else(|| old.clone()),
        };
        RuntimeSettings { search, rate_limit, log_level: change.log_level.clone().or_else(|| self.log_level.clone()) }
    }

    /// Writes these values into `settings`.
    pub fn apply(&self, settings: &mut Settings) {
        if let Some(search) = self.search {
            let s = &mut settings.search;
            s.weight_vector = search.weight_vector.unwrap_or(s.weight_vector);
            s.weight_lexical = search.weight_lexical.unwrap_or(s.weight_lexical);
            s.weight_graph = search.weight_graph.unwrap_or(s.weight_graph);
        }
        if let Some(rl) = &self.rate_limit {
            let r = &mut settings.rate_limit;
            r.enabled = rl.enabled.unwrap_or(r.enabled);
            if let Some(plan) = &rl.default_plan {
                r.default_plan.clone_from(plan);
            }
            if let Some(plans) = &rl.plans {
                r.plans.clone_from(plans);
            }
            if let Some(org_plans) = &rl.org_plans {
                r.org_plans.clone_from(org_plans);
            }
        }
        if let Some(level) = &self.log_level {
            settings.telemetry.log_level.clone_from(level);
        }
    }

    /// The sections present but naming no setting (`"search": {}`): a
    /// change must say what it changes.
    pub fn empty_sections(&self) -> Vec<&'static str> {
        let mut empty = Vec::new();
        if self.search.is_some_and(|s| s == RuntimeSearch::default()) {
            empty.push("search");
        }
        if self.rate_limit.as_ref().is_some_and(|r| *r == RuntimeRateLimit::default()) {
            empty.push("rate_limit");
        }
        empty
    }

    /// The setting keys this change sets (for the audit event).
    pub fn keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if let Some(s) = self.search {
            for (set, key) in [
                (s.weight_vector.is_some(), "search.weight_vector"),
                (s.weight_lexical.is_some(), "search.weight_lexical"),
                (s.weight_graph.is_some(), "search.weight_graph"),
            ] {
                if set {
                    keys.push(key);
                }
            }
        }
        if let Some(r) = &self.rate_limit {
            for (set, key) in [
                (r.enabled.is_some(), "rate_limit.enabled"),
                (r.default_plan.is_some(), "rate_limit.default_plan"),
                (r.plans.is_some(), "rate_limit.plans"),
                (r.org_plans.is_some(), "rate_limit.org_plans"),
            ] {
                if set {
                    keys.push(key);
                }
            }
        }
        if self.log_level.is_some() {
            keys.push("telemetry.log_level");
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_merges_field_by_field_and_applies_over_settings() {
        let saved = RuntimeSettings {
            search: Some(RuntimeSearch { weight_vector: Some(0.5), ..Default::default() }),
            log_level: Some("debug".into()),
            ..Default::default()
        };
        let change = RuntimeSettings {
            search: Some(RuntimeSearch { weight_lexical: Some(0.9), ..Default::default() }),
            rate_limit: Some(RuntimeRateLimit { default_plan: Some("free".into()), ..Default::default() }),
            ..Default::default()
        };
        let merged = saved.merged(&change);
        let mut settings = Settings::default();
        merged.apply(&mut settings);
        assert_eq!((settings.search.weight_vector, settings.search.weight_lexical), (0.5, 0.9));
        assert_eq!(settings.rate_limit.default_plan, "free");
        assert_eq!(settings.telemetry.log_level, "debug");
        assert_eq!(change.keys(), ["search.weight_lexical", "rate_limit.default_plan"]);
        assert!(change.empty_sections().is_empty());
        let hollow = RuntimeSettings { rate_limit: Some(RuntimeRateLimit::default()), ..saved };
        assert_eq!(hollow.empty_sections(), ["rate_limit"]);
    }

    #[test]
    fn saved_settings_survive_a_reload_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(RuntimeSettings::load(dir.path()).expect("load"), RuntimeSettings::default());
        let s = RuntimeSettings { log_level: Some("warn".into()), ..Default::default() };
        s.save(dir.path()).expect("save");
        assert_eq!(RuntimeSettings::load(dir.path()).expect("reload"), s);
        std::fs::write(RuntimeSettings::path(dir.path()), b"{\"nope\": 1}").expect("write");
        assert!(RuntimeSettings::load(dir.path()).is_err(), "an unknown key is refused, not ignored");
    }
}
