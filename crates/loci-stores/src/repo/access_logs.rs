//! The memory access log: one row per read, written in batches off the
//! request path.

use std::collections::BTreeMap;

use loci_core::{AppId, MemoryId, OrgId, UserId};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::entities::memory_access_logs;
use crate::{Database, StoreError, TenantTx};
use loci_core::model::{AccessLogEntry, AccessRecord, Page, PageRequest};

/// Writes a batch of access records, one transaction per org (each under its
/// own tenant context). Records of memories that no longer exist are dropped
/// by the foreign key check failing for that org's batch, which is then
/// retried row by row.
pub async fn record(db: &Database, records: Vec<AccessRecord>) -> Result<usize, StoreError> {
    let mut by_org: BTreeMap<OrgId, Vec<AccessRecord>> = BTreeMap::new();
    for r in records {
        by_org.entry(r.org_id.clone()).or_default().push(r);
    }
    let mut written = 0;
    for (org, batch) in by_org {
        let rows = |batch: &[AccessRecord]| -> Vec<memory_access_logs::ActiveModel> {
            batch
                .iter()
                .map(|r| memory_access_logs::ActiveModel {
                    id: Set(uuid::Uuid::now_v7()),
                    org_id: Set(org.as_str().to_owned()),
                    memory_id: Set(r.memory_id.as_uuid()),
                    user_id: Set(r.user_id.as_uuid()),
                    app_id: Set(r.app_id.map(|a| a.as_uuid())),
                    access_type: Set(r.access_type.clone()),
                    metadata: Set(serde_json::json!({})),
                    accessed_at: Set(r.accessed_at),
                })
                .collect()
        };
        let tx = db.begin_tenant(&org).await?;
        let all = memory_access_logs::Entity::insert_many(rows(&batch)).exec_without_returning(tx.conn()).await;
        match all {
            Ok(_) => {
                tx.commit().await?;
                written += batch.len();
            }
            Err(_) => {
                tx.rollback().await?;
                for one in batch.chunks(1) {
                    let tx = db.begin_tenant(&org).await?;
                    if memory_access_logs::Entity::insert_many(rows(one))
                        .exec_without_returning(tx.conn())
                        .await
                        .is_ok()
                    {
                        tx.commit().await?;
                        written += 1;
                    } else {
                        tx.rollback().await?;
                    }
                }
            }
        }
    }
    Ok(written)
}

/// Reads of one memory, newest first.
pub async fn for_memory(
    tx: &TenantTx,
    memory: MemoryId,
    page: PageRequest,
) -> Result<Page<AccessLogEntry>, StoreError> {
    let query = memory_access_logs::Entity::find()
        .filter(memory_access_logs::Column::OrgId.eq(tx.org_str()))
        .filter(memory_access_logs::Column::MemoryId.eq(memory.as_uuid()));
    let total = query.clone().count(tx.conn()).await?;
    let rows = query
        .order_by_desc(memory_access_logs::Column::AccessedAt)
        .order_by_desc(memory_access_logs::Column::Id)
        .offset(page.page.saturating_sub(1).saturating_mul(page.size))
        .limit(page.size)
        .all(tx.conn())
        .await?;
    let items = rows
        .into_iter()
        .map(|r| AccessLogEntry {
            memory_id: MemoryId::from_uuid(r.memory_id),
            user_id: UserId::from_uuid(r.user_id),
            app_id: r.app_id.map(AppId::from_uuid),
            access_type: r.access_type,
            accessed_at: r.accessed_at,
        })
        .collect();
    Ok(Page::new(items, total, page))
}

type Time = chrono::DateTime<chrono::Utc>;

/// Reads through one app: how many, first and last.
pub type AppActivity = (u64, Option<Time>, Option<Time>);

/// Per app: number of reads, first and last read time.
pub async fn app_activity(tx: &TenantTx, apps: &[AppId]) -> Result<BTreeMap<AppId, AppActivity>, StoreError> {
    if apps.is_empty() {
        return Ok(BTreeMap::new());
    }
    type Row = (Option<uuid::Uuid>, i64, Option<Time>, Option<Time>);
    let rows: Vec<Row> = memory_access_logs::Entity::find()
        .filter(memory_access_logs::Column::OrgId.eq(tx.org_str()))
        .filter(memory_access_logs::Column::AppId.is_in(apps.iter().map(|a| a.as_uuid())))
        .select_only()
        .column(memory_access_logs::Column::AppId)
        .column_as(memory_access_logs::Column::Id.count(), "n")
        .column_as(memory_access_logs::Column::AccessedAt.min(), "first")
        .column_as(memory_access_logs::Column::AccessedAt.max(), "last")
        .group_by(memory_access_logs::Column::AppId)
        .into_tuple()
        .all(tx.conn())
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(app, n, first, last)| {
            app.map(|a| (AppId::from_uuid(a), (u64::try_from(n).unwrap_or(0), first, last)))
        })
        .collect())
}

/// Per memory: number of reads through `app`, most read first.
pub async fn accessed_through(tx: &TenantTx, app: AppId, limit: u64) -> Result<Vec<(MemoryId, u64)>, StoreError> {
    let rows: Vec<(uuid::Uuid, i64)> = memory_access_logs::Entity::find()
        .filter(memory_access_logs::Column::OrgId.eq(tx.org_str()))
        .filter(memory_access_logs::Column::AppId.eq(app.as_uuid()))
        .select_only()
        .column(memory_access_logs::Column::MemoryId)
        .column_as(memory_access_logs::Column::Id.count(), "n")
        .group_by(memory_access_logs::Column::MemoryId)
        .order_by_desc(memory_access_logs::Column::Id.count())
        .limit(limit)
        .into_tuple()
        .all(tx.conn())
        .await?;
    Ok(rows.into_iter().map(|(m, n)| (MemoryId::from_uuid(m), u64::try_from(n).unwrap_or(0))).collect())
}
