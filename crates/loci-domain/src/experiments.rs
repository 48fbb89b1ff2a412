//! Experiments: variants of the search configuration (fusion weights,
//! mode) compared on a share of an org's users.
//!
//! - The status machine is enforced (`ExperimentStatus::can_transition_to`;
//!   anything else is 409 `INVALID_STATE_TRANSITION`), one experiment of an
//!   org runs at a time, and every change has a history row.
//! - Assignment happens only while an experiment runs, and is deterministic
//!   and sticky: a hash of the experiment and the user decides inclusion
//!   (against `traffic_percentage`) and then the variant (by cumulative
//!   weight); the first assignment is stored and kept, also when the
//!   experiment is paused, resumed or its process restarts.
//! - A search of a user in the org's running experiment gets the variant's
//!   configuration (unless the request sets weights itself), and names the
//!   experiment and variant in its answer and in the feedback on it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use loci_core::model::{Assignment, Experiment, ExperimentChange, Variant};
use loci_core::{ExperimentStatus, OrgId, UserId};
use loci_security::Principal;
use loci_stores::repo::experiments::{self as store, NewExperiment};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::memories::MemoryService;
use crate::rules::{has_control, is_blank};
use crate::search::{SearchMode, Weights};
use crate::{DomainError, FieldViolation};

/// Most variants of one experiment.
pub const MAX_VARIANTS: usize = 10;
/// How far the variants' weights may sum from 1.
pub const WEIGHT_TOLERANCE: f64 = 0.01;
/// How long a process trusts what it knows of an org's running experiment.
const RUNNING_TTL: Duration = Duration::from_secs(5);
/// Assignments remembered per process (they never change once stored).
const ASSIGNMENT_CACHE: usize = 100_000;

/// A new experiment.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExperimentInput {
    /// 1 to 128 characters.
    pub name: String,
    /// At most 2,000 characters.
    #[serde(default)]
    pub description: String,
    /// 2 to 10, weights summing to 1 (± 0.01), names unique.
    pub variants: Vec<Variant>,
    /// Share of the org's users in the experiment, 0 to 1.
    pub traffic_percentage: f64,
}

/// A status change.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusInput {
    /// draft, running, paused, completed or rolled_back.
    pub status: String,
}

/// Query of a listing.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExperimentListQuery {
    /// Only experiments in this status.
    pub status: Option<String>,
}

/// What a variant changes in a search.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantConfig {
    pub weights: Option<Weights>,
    pub mode: Option<SearchMode>,
}

/// The experiment and variant a search ran under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ExperimentTag {
    pub experiment_id: Uuid,
    pub variant: String,
}

/// A caller's variant of the running experiment, for a search.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveVariant {
    pub tag: ExperimentTag,
    pub config: VariantConfig,
}

/// Per org: when its running experiment was read, and what it was.
type RunningCache = Arc<Mutex<HashMap<OrgId, (Instant, Option<Experiment>)>>>;
/// Per (experiment, user): the stored variant (`None`: left out).
type AssignmentCache = Arc<Mutex<lru::LruCache<(Uuid, UserId), Option<String>>>>;

#[derive(Debug, Clone)]
pub struct ExperimentService {
    memories: MemoryService,
    running: RunningCache,
    assigned: AssignmentCache,
}

/// A number in [0, 1) from the experiment, the user and what it decides;
/// the same on every process and after every restart.
pub fn bucket(experiment: Uuid, user: UserId, purpose: &str) -> f64 {
    let digest = Sha256::digest(format!("{experiment}:{purpose}:{user}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
}

/// The variant `user` gets, or `None` when the traffic share leaves them
/// out.
pub fn variant_for(experiment: &Experiment, user: UserId) -> Option<String> {
    if bucket(experiment.experiment_id, user, "traffic") >= experiment.traffic_percentage {
        return None;
    }
    let total: f64 = experiment.variants.iter().map(|v| v.weight).sum();
    let point = bucket(experiment.experiment_id, user, "variant") * total;
    let mut cumulative = 0.0;
    for v in &experiment.variants {
        cumulative += v.weight;
        if point < cumulative {
            return Some(v.name.clone());
        }
    }
    experiment.variants.last().map(|v| v.name.clone())
}

fn parse_config(field: &str, config: &serde_json::Value, out: &mut Vec<FieldViolation>) -> Option<VariantConfig> {
    match serde_json::from_value::<VariantConfig>(config.clone()) {
        Ok(c) => {
            if let Some(w) = c.weights {
                let ws = [w.vector, w.lexical, w.graph];
                if ws.iter().any(|x| !x.is_finite() || *x < 0.0 || *x > 100.0) || ws.iter().all(|x| *x == 0.0) {
                    out.push(FieldViolation::new(format!("{field}.weights"), "each 0 to 100, not all 0"));
                    return None;
                }
            }
            Some(c)
        }
        Err(e) => {
            out.push(FieldViolation::new(field, format!("{{weights?, mode?}}: {e}")));
            None
        }
    }
}

impl ExperimentService {
    pub fn new(memories: MemoryService) -> Self {
        let cap = std::num::NonZeroUsize::new(ASSIGNMENT_CACHE).unwrap_or(std::num::NonZeroUsize::MIN);
        Self { memories, running: Arc::default(), assigned: Arc::new(Mutex::new(lru::LruCache::new(cap))) }
    }

    /// Creates a draft experiment.
    pub async fn create(&self, p: &Principal, input: ExperimentInput) -> Result<Experiment, DomainError> {
        let mut errors = Vec::new();
        if is_blank(&input.name) || input.name.chars().count() > 128 || has_control(&input.name) {
            errors.push(FieldViolation::new("name", "1 to 128 characters, not blank, no control characters"));
        }
        if input.description.chars().count() > 2000 {
            errors.push(FieldViolation::new("description", "at most 2000 characters"));
        }
        if !(0.0..=1.0).contains(&input.traffic_percentage) {
            errors.push(FieldViolation::new("traffic_percentage", "0 to 1"));
        }
        if !(2..=MAX_VARIANTS).contains(&input.variants.len()) {
            errors.push(FieldViolation::new("variants", format!("2 to {MAX_VARIANTS} variants")));
        }
        let mut names = HashSet::new();
        for (i, v) in input.variants.iter().enumerate() {
            let valid_name = !v.name.is_empty()
                && v.name.len() <= 64
                && v.name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !valid_name {
                errors.push(FieldViolation::new(format!("variants[{i}].name"), "1 to 64 of A-Z a-z 0-9 . _ -"));
            } else if !names.insert(v.name.as_str()) {
                errors.push(FieldViolation::new(format!("variants[{i}].name"), "names must be unique"));
            }
            if !(0.0..=1.0).contains(&v.weight) {
                errors.push(FieldViolation::new(format!("variants[{i}].weight"), "0 to 1"));
            }
            parse_config(&format!("variants[{i}].config"), &v.config, &mut errors);
        }
        let sum: f64 = input.variants.iter().map(|v| v.weight).sum();
        if input.variants.len() >= 2 && (sum - 1.0).abs() > WEIGHT_TOLERANCE {
            errors.push(FieldViolation::new("variants", format!("weights must sum to 1 (± 0.01), not {sum}")));
        }
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors));
        }
        let me = self.memories.visibility(p).await?.user_id;
        let tx = self.memories.db().begin_tenant(&p.org_id).await?;
        let created = store::create(
            &tx,
            NewExperiment {
                name: input.name.trim().to_owned(),
                description: input.description,
                variants: input.variants,
                traffic_percentage: input.traffic_percentage,
                created_by: me,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    pub async fn list(&self, p: &Principal, q: &ExperimentListQuery) -> Result<Vec<Experiment>, DomainError> {
        let status = match q.status.as_deref() {
            Some(raw) => Some(
                raw.parse::<ExperimentStatus>()
                    .map_err(|e| DomainError::Validation(vec![FieldViolation::new("status", e.to_string())]))?,
            ),
            None => None,
        };
        let tx = self.memories.db().begin_tenant_read(&p.org_id).await?;
        let out = store::list(&tx, status).await?;
        tx.commit().await?;
        Ok(out)
    }

    pub async fn get(&self, p: &Principal, id: Uuid) -> Result<Experiment, DomainError> {
        let tx = self.memories.db().begin_tenant_read(&p.org_id).await?;
        let out = store::get(&tx, id).await?;
        tx.commit().await?;
        out.ok_or(DomainError::NotFound("experiment"))
    }

    /// Moves an experiment along its machine; one experiment of an org runs
    /// at a time.
    pub async fn set_status(&self, p: &Principal, id: Uuid, input: StatusInput) -> Result<Experiment, DomainError> {
        let next = input
            .status
            .parse::<ExperimentStatus>()
            .map_err(|e| DomainError::Validation(vec![FieldViolation::new("status", e.to_string())]))?;
        let me = self.memories.visibility(p).await?.user_id;
        let tx = self.memories.db().begin_tenant(&p.org_id).await?;
        let Some(current) = store::get(&tx, id).await? else {
            tx.rollback().await?;
            return Err(DomainError::NotFound("experiment"));
        };
        if !current.status.can_transition_to(next) {
            tx.rollback().await?;
            return Err(DomainError::InvalidExperimentTransition { from: current.status, to: next });
        }
        if next == ExperimentStatus::Running
            && store::list(&tx, Some(ExperimentStatus::Running)).await?.iter().any(|e| e.experiment_id != id)
        {
            tx.rollback().await?;
            return Err(DomainError::Conflict(
                "another experiment of the org is running; pause or end it first".into(),
            ));
        }
        if !store::change_status(&tx, id, current.status, next, me).await? {
            tx.rollback().await?;
            return Err(DomainError::Conflict("the experiment changed meanwhile; read it and retry".into()));
        }
        let updated = store::get(&tx, id).await?.ok_or(DomainError::NotFound("experiment"))?;
        tx.commit().await?;
        self.running.lock().remove(&p.org_id);
        Ok(updated)
    }

    pub async fn history(&self, p: &Principal, id: Uuid) -> Result<Vec<ExperimentChange>, DomainError> {
        let tx = self.memories.db().begin_tenant_read(&p.org_id).await?;
        let exists = store::get(&tx, id).await?.is_some();
        let out = if exists { store::history(&tx, id).await? } else { Vec::new() };
        tx.commit().await?;
        if exists { Ok(out) } else { Err(DomainError::NotFound("experiment")) }
    }

    /// The caller's stored assignment.
    pub async fn assignment(&self, p: &Principal, id: Uuid) -> Result<Assignment, DomainError> {
        let me = self.memories.visibility(p).await?.user_id;
        let tx = self.memories.db().begin_tenant_read(&p.org_id).await?;
        let exists = store::get(&tx, id).await?.is_some();
        let out = store::assignment(&tx, id, me).await?;
        tx.commit().await?;
        if !exists {
            return Err(DomainError::NotFound("experiment"));
        }
        out.ok_or(DomainError::NotFound("assignment"))
    }

    /// Assigns the caller (only while the experiment runs; an assignment
    /// made before is kept and answered in any status).
    pub async fn assign(&self, p: &Principal, id: Uuid) -> Result<Assignment, DomainError> {
        let me = self.memories.visibility(p).await?.user_id;
        let tx = self.memories.db().begin_tenant(&p.org_id).await?;
        let Some(experiment) = store::get(&tx, id).await? else {
            tx.rollback().await?;
            return Err(DomainError::NotFound("experiment"));
        };
        if let Some(existing) = store::assignment(&tx, id, me).await? {
            tx.commit().await?;
            return Ok(existing);
        }
        if experiment.status != ExperimentStatus::Running {
            tx.rollback().await?;
            return Err(DomainError::Conflict(format!(
                "the experiment is {}: only a running experiment assigns users",
                experiment.status
            )));
        }
        let assigned = store::assign(&tx, id, me, variant_for(&experiment, me).as_deref()).await?;
        tx.commit().await?;
        self.assigned.lock().put((id, me), assigned.variant.clone());
        Ok(assigned)
    }

    /// The org's running experiment, as this process last saw it.
    async fn running(&self, org: &OrgId) -> Result<Option<Experiment>, DomainError> {
        if let Some((at, known)) = self.running.lock().get(org)
            && at.elapsed() < RUNNING_TTL
        {
            return Ok(known.clone());
        }
        let tx = self.memories.db().begin_tenant_read(org).await?;
        let running = store::list(&tx, Some(ExperimentStatus::Running)).await?.into_iter().next();
        tx.commit().await?;
        self.running.lock().insert(org.clone(), (Instant::now(), running.clone()));
        Ok(running)
    }

    /// The caller's variant of the org's running experiment (assigned now
    /// if need be), or `None`.
    pub async fn active_variant(&self, p: &Principal, user: UserId) -> Result<Option<ActiveVariant>, DomainError> {
        let Some(experiment) = self.running(&p.org_id).await? else {
            return Ok(None);
        };
        let id = experiment.experiment_id;
        let cached = self.assigned.lock().get(&(id, user)).cloned();
        let variant = match cached {
            Some(v) => v,
            None => {
                let tx = self.memories.db().begin_tenant(&p.org_id).await?;
                let stored = match store::assignment(&tx, id, user).await? {
                    Some(a) => a,
                    None => store::assign(&tx, id, user, variant_for(&experiment, user).as_deref()).await?,
                };
                tx.commit().await?;
                self.assigned.lock().put((id, user), stored.variant.clone());
                stored.variant
            }
        };
        let Some(name) = variant else {
            return Ok(None);
        };
        let config = experiment
            .variants
            .iter()
            .find(|v| v.name == name)
            .and_then(|v| serde_json::from_value::<VariantConfig>(v.config.clone()).ok())
            .unwrap_or_default();
        Ok(Some(ActiveVariant { tag: ExperimentTag { experiment_id: id, variant: name }, config }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn experiment(traffic: f64, weights: &[(&str, f64)]) -> Experiment {
        let t = chrono::Utc::now();
        Experiment {
            experiment_id: Uuid::from_u128(0x0123_4567_89ab_cdef),
            name: "x".into(),
            description: String::new(),
            variants: weights
                .iter()
                .map(|(n, w)| Variant { name: (*n).into(), weight: *w, config: serde_json::json!({}) })
                .collect(),
            traffic_percentage: traffic,
            status: ExperimentStatus::Running,
            created_by: UserId::from_uuid(Uuid::nil()),
            created_at: t,
            updated_at: t,
            start_time: Some(t),
            end_time: None,
        }
    }

    #[test]
    fn the_split_over_ten_thousand_users_matches_the_weights() {
        let e = experiment(1.0, &[("a", 0.5), ("b", 0.3), ("c", 0.2)]);
        let mut counts: HashMap<String, usize> = HashMap::new();
        for i in 0..10_000u128 {
            let user = UserId::from_uuid(Uuid::from_u128(i * 7_919 + 13));
            *counts.entry(variant_for(&e, user).unwrap()).or_default() += 1;
        }
        for (name, weight) in [("a", 0.5), ("b", 0.3), ("c", 0.2)] {
            let share = counts[name] as f64 / 10_000.0;
            assert!((share - weight).abs() <= 0.02, "{name}: {share} vs {weight}");
        }
    }

    #[test]
    fn traffic_decides_who_is_in_and_the_answer_never_changes() {
        let e = experiment(0.25, &[("a", 0.5), ("b", 0.5)]);
        let included = (0..10_000u128)
            .filter(|i| variant_for(&e, UserId::from_uuid(Uuid::from_u128(*i))).is_some())
            .count() as f64
            / 10_000.0;
        assert!((included - 0.25).abs() <= 0.02, "{included}");
        let user = UserId::from_uuid(Uuid::from_u128(42));
        let first = variant_for(&e, user);
        assert!((0..100).all(|_| variant_for(&e, user) == first));
        // The same inputs give the same number on every process.
        let b = bucket(Uuid::nil(), UserId::from_uuid(Uuid::nil()), "traffic");
        assert!((0.0..1.0).contains(&b));
        assert_eq!(b, bucket(Uuid::nil(), UserId::from_uuid(Uuid::nil()), "traffic"));
    }
}
