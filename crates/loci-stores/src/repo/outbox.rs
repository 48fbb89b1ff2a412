//! The index outbox: one row per memory change, written in the same
//! transaction as the change, consumed by the indexers.

use std::time::Duration;

use loci_core::{MemoryId, OrgId};
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, Query};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;

use crate::entities::outbox;
use crate::{Database, StoreError, TenantTx};
use loci_core::model::now;

/// What an indexer must do for an aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxOperation {
    Upsert,
    Delete,
}

impl OutboxOperation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Upsert => "upsert",
            Self::Delete => "delete",
        }
    }
}

/// Records that `memory` changed; part of the caller's transaction.
pub async fn enqueue_memory(tx: &TenantTx, memory: MemoryId, op: OutboxOperation) -> Result<(), StoreError> {
    outbox::Entity::insert(memory_row(tx, memory, op)).exec_without_returning(tx.conn()).await?;
    Ok(())
}

/// The outbox row recording that `memory` changed (for bulk inserts).
pub(crate) fn memory_row(tx: &TenantTx, memory: MemoryId, op: OutboxOperation) -> outbox::ActiveModel {
    let t = now();
    outbox::ActiveModel {
        org_id: Set(tx.org_str()),
        aggregate_type: Set("memory".into()),
        aggregate_id: Set(memory.as_uuid()),
        operation: Set(op.as_str().into()),
        payload: Set(serde_json::json!({})),
        created_at: Set(t),
        available_at: Set(t),
        attempts: Set(0),
        last_error: Set(None),
        processed_at: Set(None),
        ..Default::default()
    }
}

/// Pending outbox rows for one memory in this tenant, oldest first.
pub async fn pending_for_memory(tx: &TenantTx, memory: MemoryId) -> Result<Vec<OutboxOperation>, StoreError> {
    let rows = outbox::Entity::find()
        .filter(outbox::Column::OrgId.eq(tx.org_str()))
        .filter(outbox::Column::AggregateId.eq(memory.as_uuid()))
        .filter(outbox::Column::ProcessedAt.is_null())
        .all(tx.conn())
        .await?;
    let mut rows = rows;
    rows.sort_by_key(|r| r.id);
    rows.into_iter()
        .map(|r| match r.operation.as_str() {
            "upsert" => Ok(OutboxOperation::Upsert),
            "delete" => Ok(OutboxOperation::Delete),
            other => Err(StoreError::corrupt(format!("outbox operation `{other}`"))),
        })
        .collect()
}

/// Number of unprocessed rows across all tenants (the indexers' backlog).
pub async fn pending_count(db: &Database) -> Result<u64, StoreError> {
    Ok(outbox::Entity::find().filter(outbox::Column::ProcessedAt.is_null()).count(db.writer()).await?)
}

/// An outbox row claimed by an indexer.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    pub id: i64,
    pub org_id: OrgId,
    pub memory_id: MemoryId,
    pub operation: OutboxOperation,
    /// Claims so far, this one included.
    pub attempts: i32,
    /// Index names this row is for (`None`: every index), from `loci reindex`.
    pub only: Option<Vec<String>>,
}

/// Claims up to `limit` due rows, oldest first, leasing them for `lease`: a
/// consumer that dies without completing them gives them back when the lease
/// ends (at-least-once). On PostgreSQL concurrent consumers skip each other's
/// locked rows.
pub async fn claim(db: &Database, limit: u64, lease: Duration) -> Result<Vec<OutboxEntry>, StoreError> {
    let t = now();
    let until = t + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
    let mut due = Query::select()
        .column(outbox::Column::Id)
        .from(outbox::Entity)
        .and_where(outbox::Column::ProcessedAt.is_null())
        .and_where(outbox::Column::AvailableAt.lte(t))
        .order_by(outbox::Column::Id, sea_orm::Order::Asc)
        .limit(limit)
        .to_owned();
    if db.kind() == crate::DatabaseKind::Postgres {
        due.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let mut rows = outbox::Entity::update_many()
        .col_expr(outbox::Column::AvailableAt, Expr::value(until))
        .col_expr(outbox::Column::Attempts, Expr::col(outbox::Column::Attempts).add(1))
        .filter(outbox::Column::Id.in_subquery(due))
        .exec_with_returning(db.writer())
        .await?;
    rows.sort_by_key(|r| r.id);
    rows.into_iter()
        .map(|r| {
            let operation = match r.operation.as_str() {
                "delete" => OutboxOperation::Delete,
                _ => OutboxOperation::Upsert,
            };
            let only = r.payload.get("only").and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok());
            Ok(OutboxEntry {
                id: r.id,
                org_id: OrgId::parse(&r.org_id).map_err(StoreError::corrupt)?,
                memory_id: MemoryId::from_uuid(r.aggregate_id),
                operation,
                attempts: r.attempts,
                only,
            })
        })
        .collect()
}

/// Marks claimed rows done.
pub async fn complete(db: &Database, ids: &[i64]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    outbox::Entity::update_many()
        .col_expr(outbox::Column::ProcessedAt, Expr::value(now()))
        .col_expr(outbox::Column::LastError, Expr::value(Option::<String>::None))
        .filter(outbox::Column::Id.is_in(ids.iter().copied()))
        .exec(db.writer())
        .await?;
    Ok(())
}

/// Deletes rows processed before `now - retention`, at most `batch` per
/// call, oldest first, and returns how many went. Each org's newest row is
/// kept, so [`orgs`] still names every org that ever wrote (`loci reindex`
/// walks them). Without this the outbox grows by one row per write forever.
pub async fn prune(db: &Database, retention: Duration, batch: u64) -> Result<u64, StoreError> {
    let cutoff = now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(1));
    let newest_per_org = Query::select()
        .expr(Expr::col(outbox::Column::Id).max())
        .from(outbox::Entity)
        .group_by_col(outbox::Column::OrgId)
        .to_owned();
    let old = Query::select()
        .column(outbox::Column::Id)
        .from(outbox::Entity)
        .and_where(outbox::Column::ProcessedAt.lt(cutoff))
        .and_where(outbox::Column::Id.not_in_subquery(newest_per_org))
        .order_by(outbox::Column::Id, sea_orm::Order::Asc)
        .limit(batch)
        .to_owned();
    let deleted = outbox::Entity::delete_many().filter(outbox::Column::Id.in_subquery(old)).exec(db.writer()).await?;
    Ok(deleted.rows_affected)
}

/// Gives claimed rows back, due again after `delay`, with the error seen.
pub async fn retry_later(db: &Database, ids: &[i64], error: &str, delay: Duration) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let at = now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(60));
    let error: String = error.chars().take(1000).collect();
    outbox::Entity::update_many()
        .col_expr(outbox::Column::AvailableAt, Expr::value(at))
        .col_expr(outbox::Column::LastError, Expr::value(Some(error)))
        .filter(outbox::Column::Id.is_in(ids.iter().copied()))
        .exec(db.writer())
        .await?;
    Ok(())
}

/// The indexers' lag: pending rows and the age of the oldest one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutboxLag {
    pub pending: u64,
    pub oldest_seconds: f64,
}

pub async fn lag(db: &Database) -> Result<OutboxLag, StoreError> {
    let pending = pending_count(db).await?;
    let oldest: Option<chrono::DateTime<chrono::Utc>> = outbox::Entity::find()
        .select_only()
        .column(outbox::Column::CreatedAt)
        .filter(outbox::Column::ProcessedAt.is_null())
        .order_by_asc(outbox::Column::Id)
        .into_tuple()
        .one(db.writer())
        .await?;
    let oldest_seconds = oldest.map_or(0.0, |t| Ord::max((now() - t).num_milliseconds(), 0) as f64 / 1000.0);
    Ok(OutboxLag { pending, oldest_seconds })
}

/// Enqueues every memory of `org` for re-indexing into `only` (all indexes
/// when `None`): `loci reindex`. Returns how many rows were enqueued.
pub async fn enqueue_all(tx: &TenantTx, only: Option<&[String]>) -> Result<u64, StoreError> {
    let ids: Vec<uuid::Uuid> = crate::entities::memories::Entity::find()
        .select_only()
        .column(crate::entities::memories::Column::Id)
        .filter(crate::entities::memories::Column::OrgId.eq(tx.org_str()))
        .into_tuple()
        .all(tx.conn())
        .await?;
    let payload = match only {
        Some(names) => serde_json::json!({ "only": names }),
        None => serde_json::json!({}),
    };
    let rows: Vec<outbox::ActiveModel> = ids
        .iter()
        .map(|id| {
            let mut row = memory_row(tx, MemoryId::from_uuid(*id), OutboxOperation::Upsert);
            row.payload = Set(payload.clone());
            row
        })
        .collect();
    for chunk in rows.chunks(2000) {
        outbox::Entity::insert_many(chunk.to_vec()).exec_without_returning(tx.conn()).await?;
    }
    Ok(ids.len() as u64)
}

/// Every org with a row in the outbox (the outbox is outside row-level
/// security, so this works without a tenant): `loci reindex` walks these.
pub async fn orgs(db: &Database) -> Result<Vec<OrgId>, StoreError> {
    let rows: Vec<String> = outbox::Entity::find()
        .select_only()
        .column(outbox::Column::OrgId)
        .distinct()
        .into_tuple()
        .all(db.writer())
        .await?;
    rows.into_iter().map(|o| OrgId::parse(&o).map_err(StoreError::corrupt)).collect()
}
