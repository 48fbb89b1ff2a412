//! Feedback on retrieval: agents report what became of the results they
//! were given (accepted, modified, rejected, ignored), pointing at the
//! search by its `query_id` and at a result by its index or memory id.
//! Events are the caller's; aggregates are the caller's, or the org's for
//! an admin. When an event names a recent search, the sources that found
//! the result are taken from it, which is what the weight optimiser learns
//! from. Events older than `feedback.retention_days` are purged (on write,
//! at most hourly per org, and on an admin's request).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use loci_core::model::{FeedbackCounts, FeedbackEvent, Page, PageRequest, now};
use loci_core::{FeedbackOutcome, FeedbackType, MemoryId, OrgId};
use loci_security::Principal;
use loci_stores::repo::feedback::{self as store, FeedbackFilter};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::indexer::{GRAPH, LEXICAL, VECTOR};
use crate::inputs::{self, whole_number};
use crate::memories::{MemoryService, parse_time};
use crate::rules::{has_control, is_blank};
use crate::search::{RecentQueries, Weights};
use crate::validation::parse_enum;
use crate::{DomainError, FieldViolation};

/// Events a purge deletes per statement.
const PURGE_BATCH: u64 = 10_000;
/// How often a write purges its org's old events.
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// Events the optimiser reads (newest first).
const OPTIMISER_CAP: u64 = 100_000;
/// Fewest events with known sources the optimiser proposes from.
pub const MIN_OPTIMISER_EVENTS: usize = 100;
/// Largest change of one weight in a proposal.
pub const MAX_WEIGHT_CHANGE: f32 = 0.10;

/// A feedback event as a client reports it.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackInput {
    /// The search's `query_id` (from its answer).
    pub query_id: Option<String>,
    pub session_id: Option<String>,
    /// The tool or route the results came from, e.g. `search_memory`.
    pub tool_name: String,
    /// accepted, modified, rejected or ignored.
    pub outcome: String,
    /// implicit or explicit (default explicit).
    pub feedback_type: Option<String>,
    /// When it happened (default now); at most 365 days back.
    pub timestamp: Option<String>,
    /// 0 to 86,400,000.
    #[serde(default, deserialize_with = "whole_number::option")]
    pub decision_time_ms: Option<i64>,
    pub rrf_weights: Option<Weights>,
    pub reranker_used: Option<String>,
    /// The result's position in the answer (0 first), 0 to 999.
    #[serde(default, deserialize_with = "whole_number::option")]
    pub result_index: Option<i64>,
    /// The result's memory id.
    pub result_id: Option<String>,
    /// The sources that found the result (vector, lexical, graph); taken
    /// from the search when it is recent and this is left out.
    pub sources: Option<Vec<String>>,
    pub experiment_id: Option<String>,
    pub variant_id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
}

/// Which events to list or aggregate.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedbackQuery {
    /// `mine` (default) or `org` (every user's; needs admin:read).
    pub scope: Option<String>,
    pub query_id: Option<String>,
    pub experiment_id: Option<String>,
    pub tool_name: Option<String>,
    /// RFC 3339; events at or after it.
    pub from: Option<String>,
    /// RFC 3339; events before it.
    pub to: Option<String>,
    #[param(value_type = Option<u64>, minimum = 1)]
    pub page: Option<String>,
    #[param(value_type = Option<u64>, minimum = 1, maximum = 100)]
    pub size: Option<String>,
}

/// Aggregates of a set of events.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FeedbackMetrics {
    #[serde(flatten)]
    pub counts: FeedbackCounts,
    /// Per tool, the same counts.
    pub by_tool: BTreeMap<String, FeedbackCounts>,
}

/// Acceptance of the results one source found.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SourceEvidence {
    pub events: u64,
    pub accepted: u64,
    /// accepted / (events - ignored).
    pub acceptance_rate: f64,
}

/// New fusion weights proposed from feedback, with what they rest on.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WeightProposal {
    /// Whether there is a proposal (`reason` says why not).
    pub proposed: bool,
    pub reason: String,
    /// The weights in force, scaled to sum 1.
    pub current: Weights,
    /// The proposal (sum 1, no weight moved by more than 0.10).
    pub weights: Option<Weights>,
    /// Events with known sources used.
    pub events_used: u64,
    pub by_source: BTreeMap<String, SourceEvidence>,
}

#[derive(Debug, Clone)]
pub struct FeedbackService {
    memories: MemoryService,
    recent: RecentQueries,
    retention: Duration,
    weights: Weights,
    purged: Arc<Mutex<HashMap<OrgId, Instant>>>,
}

impl FeedbackService {
    pub fn new(memories: MemoryService, recent: RecentQueries, retention: Duration, weights: Weights) -> Self {
        Self { memories, recent, retention, weights, purged: Arc::default() }
    }

    /// Stores an event of the caller.
    pub async fn record(&self, p: &Principal, input: FeedbackInput) -> Result<FeedbackEvent, DomainError> {
        let mut errors = Vec::new();
        let outcome = parse_enum::<FeedbackOutcome>("outcome", &Some(input.outcome.clone()), &mut errors);
        let feedback_type = parse_enum::<FeedbackType>("feedback_type", &input.feedback_type, &mut errors)
            .unwrap_or(FeedbackType::Explicit);
        let tool_name = token("tool_name", Some(&input.tool_name), 64, &mut errors);
        let query_id = token("query_id", input.query_id.as_ref(), 128, &mut errors);
        let session_id = token("session_id", input.session_id.as_ref(), 128, &mut errors);
        let reranker_used = token("reranker_used", input.reranker_used.as_ref(), 64, &mut errors);
        let variant_id = token("variant_id", input.variant_id.as_ref(), 64, &mut errors);
        let at = now();
        let timestamp = match &input.timestamp {
            Some(raw) => parse_time("timestamp", raw, &mut errors).filter(|t| {
                let ok = *t <= at + chrono::Duration::minutes(5) && *t >= at - chrono::Duration::days(365);
                if !ok {
                    errors.push(FieldViolation::new("timestamp", "within the last 365 days (and not in the future)"));
                }
                ok
            }),
            None => Some(at),
        };
        if input.decision_time_ms.is_some_and(|ms| !(0..=86_400_000).contains(&ms)) {
            errors.push(FieldViolation::new("decision_time_ms", "0 to 86400000"));
        }
        if input.result_index.is_some_and(|i| !(0..=999).contains(&i)) {
            errors.push(FieldViolation::new("result_index", "0 to 999"));
        }
        let result_id = input.result_id.as_deref().and_then(|r| inputs::id::<MemoryId>("result_id", r, &mut errors));
        let experiment_id =
            input.experiment_id.as_deref().and_then(|r| inputs::id::<Uuid>("experiment_id", r, &mut errors));
        if let Some(w) = &input.rrf_weights
            && [w.vector, w.lexical, w.graph].iter().any(|x| !x.is_finite() || *x < 0.0 || *x > 100.0)
        {
            errors.push(FieldViolation::new("rrf_weights", "each weight 0 to 100"));
        }
        if let Some(sources) = &input.sources
            && (sources.len() > 3 || sources.iter().any(|s| ![VECTOR, LEXICAL, GRAPH].contains(&s.as_str())))
        {
            errors.push(FieldViolation::new("sources", "any of vector, lexical, graph"));
        }
        let limits = self.memories.limits();
        if serde_json::to_vec(&input.metadata).map_or(usize::MAX, |v| v.len()) > limits.max_metadata_bytes {
            errors.push(FieldViolation::new("metadata", format!("at most {} bytes", limits.max_metadata_bytes)));
        }
        let (Some(outcome), Some(tool_name), Some(timestamp)) = (outcome, tool_name, timestamp) else {
            return Err(DomainError::Validation(errors));
        };
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors));
        }
        let me = self.memories.visibility(p).await?.user_id;
        // The result's sources and the search's experiment variant, from
        // the search it names (the caller's own).
        let mut sources = input.sources.clone();
        let (mut experiment_id, mut variant_id) = (experiment_id, variant_id);
        if let Some(q) = query_id.as_deref().and_then(|q| self.recent.get(&p.org_id, q)).filter(|q| q.user == me) {
            if sources.is_none() {
                let hit = match (input.result_index, result_id) {
                    (Some(i), _) => usize::try_from(i).ok().and_then(|i| q.results.get(i)),
                    (None, Some(id)) => q.results.iter().find(|(m, _)| *m == id),
                    (None, None) => None,
                };
                sources = hit.map(|(_, s)| s.iter().map(|s| (*s).to_owned()).collect());
            }
            if let (None, Some(tag)) = (experiment_id, &q.experiment) {
                experiment_id = Some(tag.experiment_id);
                variant_id = Some(tag.variant.clone());
            }
        }
        let event = FeedbackEvent {
            event_id: Uuid::now_v7(),
            user_id: me,
            query_id,
            session_id,
            tool_name,
            outcome,
            feedback_type,
            timestamp,
            decision_time_ms: input.decision_time_ms,
            rrf_weights: input.rrf_weights.map(|w| serde_json::json!(w)),
            reranker_used,
            result_index: input.result_index.and_then(|i| i32::try_from(i).ok()),
            result_id,
            sources,
            experiment_id,
            variant_id,
            metadata: Value::Object(input.metadata),
        };
        let tx = self.memories.db().begin_tenant(&p.org_id).await?;
        store::insert(&tx, &event).await?;
        tx.commit().await?;
        self.purge_now_and_then(&p.org_id).await;
        Ok(event)
    }

    /// Deletes the org's events older than the retention (admin:write is
    /// the caller's check); how many.
    pub async fn purge(&self, p: &Principal) -> Result<u64, DomainError> {
        Ok(self.purge_org(&p.org_id).await?)
    }

    /// Purges the org's old events after a write, at most every
    /// [`PURGE_EVERY`] per org; a failure is logged, never the writer's.
    async fn purge_now_and_then(&self, org: &OrgId) {
        let due = self.purged.lock().get(org).is_none_or(|at| at.elapsed() >= PURGE_EVERY);
        if due && let Err(e) = self.purge_org(org).await {
            tracing::warn!(error = %e, "feedback retention purge failed");
        }
    }

    async fn purge_org(&self, org: &OrgId) -> Result<u64, loci_stores::StoreError> {
        self.purged.lock().insert(org.clone(), Instant::now());
        let before = now() - chrono::Duration::from_std(self.retention).unwrap_or(chrono::Duration::days(30));
        let mut total = 0;
        loop {
            let tx = self.memories.db().begin_tenant(org).await?;
            let n = store::purge(&tx, before, PURGE_BATCH).await?;
            tx.commit().await?;
            total += n;
            if n < PURGE_BATCH {
                return Ok(total);
            }
        }
    }

    /// The filter of a query: the caller's events, or the org's for an admin.
    async fn filter(&self, p: &Principal, q: &FeedbackQuery) -> Result<(FeedbackFilter, PageRequest), DomainError> {
        let mut errors = Vec::new();
        let mut filter = FeedbackFilter {
            query_id: token("query_id", q.query_id.as_ref(), 128, &mut errors),
            experiment_id: q.experiment_id.as_deref().and_then(|r| inputs::id::<Uuid>("experiment_id", r, &mut errors)),
            tool_name: token("tool_name", q.tool_name.as_ref(), 64, &mut errors),
            from: q.from.as_deref().and_then(|r| parse_time("from", r, &mut errors)),
            to: q.to.as_deref().and_then(|r| parse_time("to", r, &mut errors)),
            user_id: None,
        };
        let page = inputs::page(q.page.as_deref(), q.size.as_deref(), &mut errors);
        match q.scope.as_deref() {
            None | Some("mine") => filter.user_id = Some(self.memories.visibility(p).await?.user_id),
            // Transports require admin:read for it first; this holds the line.
            Some("org") if p.has_scope(loci_security::scopes::ADMIN_READ) => {}
            Some("org") => errors.push(FieldViolation::new("scope", "org needs the admin:read scope")),
            Some(_) => errors.push(FieldViolation::new("scope", "mine or org")),
        }
        if errors.is_empty() { Ok((filter, page)) } else { Err(DomainError::Validation(errors)) }
    }

    /// A page of events, newest first.
    pub async fn list(&self, p: &Principal, q: &FeedbackQuery) -> Result<Page<FeedbackEvent>, DomainError> {
        let (filter, page) = self.filter(p, q).await?;
        let tx = self.memories.db().begin_tenant_read(&p.org_id).await?;
        let out = store::list(&tx, &filter, page).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Total, acceptance rate, outcome distribution, mean decision time,
    /// overall and per tool.
    pub async fn metrics(&self, p: &Principal, q: &FeedbackQuery) -> Result<FeedbackMetrics, DomainError> {
        let (filter, _) = self.filter(p, q).await?;
        let tx = self.memories.db().begin_tenant_read(&p.org_id).await?;
        let (counts, by_tool) = store::counts(&tx, &filter).await?;
        tx.commit().await?;
        Ok(FeedbackMetrics { counts, by_tool })
    }

    /// New fusion weights for the org from its feedback (see
    /// [`propose_weights`]).
    pub async fn proposal(&self, p: &Principal, q: &FeedbackQuery) -> Result<WeightProposal, DomainError> {
        let (mut filter, _) = self.filter(p, q).await?;
        // The org's events whatever the scope: weights are the org's.
        filter.user_id = None;
        let tx = self.memories.db().begin_tenant_read(&p.org_id).await?;
        let events = store::outcomes_with_sources(&tx, &filter, OPTIMISER_CAP).await?;
        tx.commit().await?;
        Ok(propose_weights(self.weights, &events))
    }
}

/// An identifier-like text: 1..=`max` characters, not blank, no control
/// characters.
fn token(field: &str, raw: Option<&String>, max: usize, out: &mut Vec<FieldViolation>) -> Option<String> {
    let raw = raw?;
    if is_blank(raw) || raw.chars().count() > max || has_control(raw) {
        out.push(FieldViolation::new(field, format!("1 to {max} characters, not blank, no control characters")));
        return None;
    }
    Some(raw.clone())
}

/// The optimiser: each source's acceptance rate (accepted / (events -
/// ignored) over the events whose result it found) against the mean of the
/// sources; a weight moves towards its source's relative acceptance, by at
/// most [`MAX_WEIGHT_CHANGE`], and the weights sum to 1. Declines with a
/// reason below [`MIN_OPTIMISER_EVENTS`] events with known sources.
pub fn propose_weights(current: Weights, events: &[(FeedbackOutcome, Vec<String>)]) -> WeightProposal {
    let names = [VECTOR, LEXICAL, GRAPH];
    let raw = [current.vector.max(0.0), current.lexical.max(0.0), current.graph.max(0.0)];
    let sum: f32 = raw.iter().sum();
    let now_w: [f32; 3] = if sum > 0.0 { raw.map(|w| w / sum) } else { [1.0 / 3.0; 3] };
    let current_view = Weights { vector: now_w[0], lexical: now_w[1], graph: now_w[2] };
    let mut by_source = BTreeMap::new();
    let mut rates = [None; 3];
    for (i, name) in names.iter().enumerate() {
        let mine: Vec<&FeedbackOutcome> =
            events.iter().filter(|(_, s)| s.iter().any(|s| s == name)).map(|(o, _)| o).collect();
        let accepted = mine.iter().filter(|o| ***o == FeedbackOutcome::Accepted).count() as u64;
        let ignored = mine.iter().filter(|o| ***o == FeedbackOutcome::Ignored).count() as u64;
        let considered = mine.len() as u64 - ignored;
        let rate = if considered == 0 { 0.0 } else { accepted as f64 / considered as f64 };
        if considered > 0 {
            rates[i] = Some(rate);
        }
        by_source
            .insert((*name).to_owned(), SourceEvidence { events: mine.len() as u64, accepted, acceptance_rate: rate });
    }
    let decline = |reason: String| WeightProposal {
        proposed: false,
        reason,
        current: current_view,
        weights: None,
        events_used: events.len() as u64,
        by_source: by_source.clone(),
    };
    if events.len() < MIN_OPTIMISER_EVENTS {
        return decline(format!(
            "{} events with known sources; at least {MIN_OPTIMISER_EVENTS} are needed",
            events.len()
        ));
    }
    let known: Vec<f64> = rates.iter().flatten().copied().collect();
    let mean = known.iter().sum::<f64>() / known.len().max(1) as f64;
    if mean <= 0.0 {
        return decline("no result was accepted: nothing tells the sources apart".into());
    }
    // Target: each weight scaled by its source's acceptance relative to the
    // mean (a source without evidence keeps its weight), then the change
    // bounded and the sum brought back to 1 within the bounds.
    let target: [f32; 3] = std::array::from_fn(|i| match rates[i] {
        Some(r) => now_w[i] * (r / mean) as f32,
        None => now_w[i],
    });
    let t_sum: f32 = target.iter().sum();
    let mut next: [f32; 3] = std::array::from_fn(|i| {
        let wanted = if t_sum > 0.0 { target[i] / t_sum } else { now_w[i] };
        wanted.clamp((now_w[i] - MAX_WEIGHT_CHANGE).max(0.0), (now_w[i] + MAX_WEIGHT_CHANGE).min(1.0))
    });
    for _ in 0..8 {
        let gap = 1.0 - next.iter().sum::<f32>();
        if gap.abs() < 1e-6 {
            break;
        }
        // Share the gap among the weights with room in its direction.
        let room: [f32; 3] = std::array::from_fn(|i| {
            if gap > 0.0 {
                ((now_w[i] + MAX_WEIGHT_CHANGE).min(1.0) - next[i]).max(0.0)
            } else {
                (next[i] - (now_w[i] - MAX_WEIGHT_CHANGE).max(0.0)).max(0.0)
            }
        });
        let total_room: f32 = room.iter().sum();
        if total_room <= 0.0 {
            break;
        }
        for i in 0..3 {
            next[i] += gap * room[i] / total_room;
        }
    }
    let round = |w: f32| (w * 1000.0).round() / 1000.0;
    let weights = Weights { vector: round(next[0]), lexical: round(next[1]), graph: round(next[2]) };
    WeightProposal {
        proposed: true,
        reason: format!(
            "from {} events: acceptance {}",
            events.len(),
            names
                .iter()
                .zip(rates)
                .map(|(n, r)| match r {
                    Some(r) => format!("{n} {r:.2}"),
                    None => format!("{n} unknown"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        current: current_view,
        weights: Some(weights),
        events_used: events.len() as u64,
        by_source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(n: usize, lexical_accept: f64, vector_accept: f64) -> Vec<(FeedbackOutcome, Vec<String>)> {
        (0..n)
            .map(|i| {
                let (source, rate) = if i % 2 == 0 { (LEXICAL, lexical_accept) } else { (VECTOR, vector_accept) };
                let accepted = ((i / 2) as f64 / (n / 2) as f64) < rate;
                let outcome = if accepted { FeedbackOutcome::Accepted } else { FeedbackOutcome::Rejected };
                (outcome, vec![source.to_owned()])
            })
            .collect()
    }

    #[test]
    fn lexical_accepted_more_moves_weight_to_lexical_within_the_bounds() {
        let current = Weights { vector: 0.5, lexical: 0.4, graph: 0.1 };
        let p = propose_weights(current, &events(400, 0.9, 0.2));
        assert!(p.proposed, "{p:?}");
        let w = p.weights.unwrap();
        assert!(w.lexical > 0.4 && w.vector < 0.5, "{w:?}");
        assert!(
            (w.lexical - 0.4).abs() <= MAX_WEIGHT_CHANGE + 1e-3 && (w.vector - 0.5).abs() <= MAX_WEIGHT_CHANGE + 1e-3
        );
        assert!((w.vector + w.lexical + w.graph - 1.0).abs() < 2e-3, "{w:?}");
        assert_eq!(p.by_source["lexical"].events, 200);
        assert!((p.by_source["lexical"].acceptance_rate - 0.9).abs() < 0.01);
    }

    #[test]
    fn too_few_events_decline_with_a_reason() {
        let p = propose_weights(Weights { vector: 0.3, lexical: 0.7, graph: 0.1 }, &events(99, 0.9, 0.1));
        assert!(!p.proposed && p.weights.is_none());
        assert!(p.reason.contains("at least 100"), "{}", p.reason);
        assert!((p.current.vector + p.current.lexical + p.current.graph - 1.0).abs() < 1e-5);
    }
}
