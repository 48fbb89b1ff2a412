//! The index outbox: one row per memory change, written in the same
//! transaction as the change, consumed by the indexers.

use loci_core::MemoryId;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde::Serialize;

use crate::entities::outbox;
use crate::records::now;
use crate::{Database, StoreError, TenantTx};

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
