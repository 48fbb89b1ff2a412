//! Feedback events: written one at a time, listed by user, query,
//! experiment, tool and time, aggregated in SQL, purged by age.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use loci_core::model::{FeedbackCounts, FeedbackEvent, Page, PageRequest};
use loci_core::{FeedbackOutcome, MemoryId, UserId};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::entities::feedback_events;
use crate::{StoreError, TenantTx};

/// Which events a query or an aggregate covers (all set ones must hold).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeedbackFilter {
    pub user_id: Option<UserId>,
    pub query_id: Option<String>,
    pub experiment_id: Option<Uuid>,
    pub tool_name: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

fn matching(tx: &TenantTx, f: &FeedbackFilter) -> Condition {
    let mut all = Condition::all().add(feedback_events::Column::OrgId.eq(tx.org_str()));
    if let Some(u) = f.user_id {
        all = all.add(feedback_events::Column::UserId.eq(u.as_uuid()));
    }
    if let Some(q) = &f.query_id {
        all = all.add(feedback_events::Column::QueryId.eq(q.clone()));
    }
    if let Some(e) = f.experiment_id {
        all = all.add(feedback_events::Column::ExperimentId.eq(e));
    }
    if let Some(t) = &f.tool_name {
        all = all.add(feedback_events::Column::ToolName.eq(t.clone()));
    }
    if let Some(from) = f.from {
        all = all.add(feedback_events::Column::OccurredAt.gte(from));
    }
    if let Some(to) = f.to {
        all = all.add(feedback_events::Column::OccurredAt.lt(to));
    }
    all
}

fn to_event(m: feedback_events::Model) -> Result<FeedbackEvent, StoreError> {
    Ok(FeedbackEvent {
        event_id: m.id,
        user_id: UserId::from_uuid(m.user_id),
        query_id: m.query_id,
        session_id: m.session_id,
        tool_name: m.tool_name,
        outcome: m.outcome.parse().map_err(StoreError::corrupt)?,
        feedback_type: m.feedback_type.parse().map_err(StoreError::corrupt)?,
        timestamp: m.occurred_at,
        decision_time_ms: m.decision_time_ms,
        rrf_weights: m.rrf_weights,
        reranker_used: m.reranker_used,
        result_index: m.result_index,
        result_id: m.result_id.map(MemoryId::from_uuid),
        sources: m.sources.map(serde_json::from_value).transpose().map_err(StoreError::corrupt)?,
        experiment_id: m.experiment_id,
        variant_id: m.variant_id,
        metadata: m.metadata,
    })
}

/// Stores an event of the transaction's tenant (its `event_id` new).
pub async fn insert(tx: &TenantTx, e: &FeedbackEvent) -> Result<(), StoreError> {
    let sources = e.sources.as_ref().map(serde_json::to_value).transpose().map_err(StoreError::corrupt)?;
    let row = feedback_events::ActiveModel {
        id: Set(e.event_id),
        org_id: Set(tx.org_str()),
        user_id: Set(e.user_id.as_uuid()),
        query_id: Set(e.query_id.clone()),
        session_id: Set(e.session_id.clone()),
        tool_name: Set(e.tool_name.clone()),
        outcome: Set(e.outcome.as_str().to_owned()),
        feedback_type: Set(e.feedback_type.as_str().to_owned()),
        occurred_at: Set(e.timestamp),
        decision_time_ms: Set(e.decision_time_ms),
        rrf_weights: Set(e.rrf_weights.clone()),
        reranker_used: Set(e.reranker_used.clone()),
        result_index: Set(e.result_index),
        result_id: Set(e.result_id.map(|m| m.as_uuid())),
        sources: Set(sources),
        experiment_id: Set(e.experiment_id),
        variant_id: Set(e.variant_id.clone()),
        metadata: Set(e.metadata.clone()),
    };
    feedback_events::Entity::insert(row).exec_without_returning(tx.conn()).await?;
    Ok(())
}

/// A page of events, newest first.
pub async fn list(tx: &TenantTx, f: &FeedbackFilter, page: PageRequest) -> Result<Page<FeedbackEvent>, StoreError> {
    let query = feedback_events::Entity::find().filter(matching(tx, f));
    let total = query.clone().count(tx.conn()).await?;
    let rows = query
        .order_by_desc(feedback_events::Column::OccurredAt)
        .order_by_desc(feedback_events::Column::Id)
        .offset(page.page.saturating_sub(1).saturating_mul(page.size))
        .limit(page.size)
        .all(tx.conn())
        .await?;
    let items = rows.into_iter().map(to_event).collect::<Result<Vec<_>, _>>()?;
    Ok(Page::new(items, total, page))
}

/// The counts of the matching events, overall and per tool.
pub async fn counts(
    tx: &TenantTx,
    f: &FeedbackFilter,
) -> Result<(FeedbackCounts, BTreeMap<String, FeedbackCounts>), StoreError> {
    let rows: Vec<(String, String, i64, Option<i64>, i64)> = feedback_events::Entity::find()
        .select_only()
        .column(feedback_events::Column::ToolName)
        .column(feedback_events::Column::Outcome)
        .column_as(Expr::cust("COUNT(*)"), "n")
        // SUM of a bigint is numeric on PostgreSQL: cast back for one type.
        .column_as(Expr::cust("CAST(COALESCE(SUM(\"decision_time_ms\"), 0) AS BIGINT)"), "ms")
        .column_as(Expr::cust("COUNT(\"decision_time_ms\")"), "timed")
        .filter(matching(tx, f))
        .group_by(feedback_events::Column::ToolName)
        .group_by(feedback_events::Column::Outcome)
        .into_tuple()
        .all(tx.conn())
        .await?;
    let mut overall: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_tool: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut ms: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let (mut all_ms, mut all_timed) = (0i64, 0i64);
    for (tool, outcome, n, sum_ms, timed) in rows {
        let n = u64::try_from(n).unwrap_or(0);
        *overall.entry(outcome.clone()).or_default() += n;
        *per_tool.entry(tool.clone()).or_default().entry(outcome).or_default() += n;
        let entry = ms.entry(tool).or_default();
        entry.0 += sum_ms.unwrap_or(0);
        entry.1 += timed;
        all_ms += sum_ms.unwrap_or(0);
        all_timed += timed;
    }
    let mean = |sum: i64, n: i64| (n > 0).then(|| sum as f64 / n as f64);
    let tools = per_tool
        .into_iter()
        .map(|(tool, outcomes)| {
            let (sum, n) = ms.get(&tool).copied().unwrap_or_default();
            let counts = FeedbackCounts::from_outcomes(&outcomes, mean(sum, n));
            (tool, counts)
        })
        .collect();
    Ok((FeedbackCounts::from_outcomes(&overall, mean(all_ms, all_timed)), tools))
}

/// Outcomes and sources of the newest `cap` matching events that name
/// their sources (what the weight optimiser learns from).
pub async fn outcomes_with_sources(
    tx: &TenantTx,
    f: &FeedbackFilter,
    cap: u64,
) -> Result<Vec<(FeedbackOutcome, Vec<String>)>, StoreError> {
    let rows: Vec<(String, Option<serde_json::Value>)> = feedback_events::Entity::find()
        .select_only()
        .column(feedback_events::Column::Outcome)
        .column(feedback_events::Column::Sources)
        .filter(matching(tx, f))
        .filter(feedback_events::Column::Sources.is_not_null())
        .order_by_desc(feedback_events::Column::OccurredAt)
        .limit(cap)
        .into_tuple()
        .all(tx.conn())
        .await?;
    rows.into_iter()
        .filter_map(|(outcome, sources)| sources.map(|s| (outcome, s)))
        .map(|(outcome, sources)| {
            Ok((
                outcome.parse().map_err(StoreError::corrupt)?,
                serde_json::from_value(sources).map_err(StoreError::corrupt)?,
            ))
        })
        .collect()
}

/// Deletes the tenant's events older than `before` (at most `batch`);
/// returns how many.
pub async fn purge(tx: &TenantTx, before: DateTime<Utc>, batch: u64) -> Result<u64, StoreError> {
    let ids: Vec<Uuid> = feedback_events::Entity::find()
        .select_only()
        .column(feedback_events::Column::Id)
        .filter(feedback_events::Column::OrgId.eq(tx.org_str()))
        .filter(feedback_events::Column::OccurredAt.lt(before))
        .limit(batch)
        .into_tuple()
        .all(tx.conn())
        .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let done = feedback_events::Entity::delete_many()
        .filter(feedback_events::Column::OrgId.eq(tx.org_str()))
        .filter(feedback_events::Column::Id.is_in(ids))
        .exec(tx.conn())
        .await?;
    Ok(done.rows_affected)
}
