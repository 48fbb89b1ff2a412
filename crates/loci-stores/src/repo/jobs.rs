//! Asynchronous jobs: the tenant's record (`memory_jobs`, under RLS) and the
//! cross-tenant queue the workers claim from (`job_queue`, ids and times
//! only, like the outbox).
//!
//! Exactly once: a worker's claim is a lease; the job's effect, its record
//! becoming `done` and its queue row's removal commit in one transaction
//! ([`finish`]). A worker that dies mid-way commits nothing, and the job is
//! claimed again when its lease ends.

use std::time::Duration;

use chrono::{DateTime, Utc};
use loci_core::model::now;
use loci_core::{JobId, JobStatus, OrgId, UserId};
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, Query};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};

use crate::entities::{job_queue, memory_jobs};
use crate::{Database, StoreError, TenantTx};

/// A job as its owner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: JobId,
    pub user_id: UserId,
    pub kind: String,
    pub status: JobStatus,
    pub request: serde_json::Value,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A queue row a worker holds the lease of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    pub id: JobId,
    pub org_id: OrgId,
    /// Claims so far, this one included.
    pub attempts: i32,
}

fn record(m: memory_jobs::Model) -> Result<JobRecord, StoreError> {
    Ok(JobRecord {
        id: JobId::from_uuid(m.id),
        user_id: UserId::from_uuid(m.user_id),
        kind: m.kind,
        status: m.status.parse().map_err(StoreError::corrupt)?,
        request: m.request,
        result: m.result,
        error: m.error,
        attempts: m.attempts,
        created_at: m.created_at,
        started_at: m.started_at,
        finished_at: m.finished_at,
    })
}

/// Records a queued job of `user` and puts it on the queue, in the
/// caller's transaction.
pub async fn enqueue(
    tx: &TenantTx,
    user: UserId,
    kind: &str,
    request: serde_json::Value,
) -> Result<JobRecord, StoreError> {
    let id = JobId::new();
    let t = now();
    let row = memory_jobs::ActiveModel {
        id: Set(id.as_uuid()),
        org_id: Set(tx.org_str()),
        user_id: Set(user.as_uuid()),
        kind: Set(kind.to_owned()),
        status: Set(JobStatus::Queued.as_str().to_owned()),
        request: Set(request),
        result: Set(None),
        error: Set(None),
        attempts: Set(0),
        created_at: Set(t),
        started_at: Set(None),
        finished_at: Set(None),
    };
    memory_jobs::Entity::insert(row).exec_without_returning(tx.conn()).await?;
    let queued = job_queue::ActiveModel {
        id: Set(id.as_uuid()),
        org_id: Set(tx.org_str()),
        available_at: Set(t),
        attempts: Set(0),
        created_at: Set(t),
        kind: Set(kind.to_owned()),
    };
    job_queue::Entity::insert(queued).exec_without_returning(tx.conn()).await?;
    get(tx, id).await?.ok_or(StoreError::NotFound("job"))
}

/// A job of the transaction's tenant.
pub async fn get(tx: &TenantTx, id: JobId) -> Result<Option<JobRecord>, StoreError> {
    memory_jobs::Entity::find()
        .filter(memory_jobs::Column::OrgId.eq(tx.org_str()))
        .filter(memory_jobs::Column::Id.eq(id.as_uuid()))
        .one(tx.conn())
        .await?
        .map(record)
        .transpose()
}

/// Jobs of `org` not finished yet (queued or running).
pub async fn pending_in_org(db: &Database, org: &OrgId) -> Result<u64, StoreError> {
    Ok(job_queue::Entity::find().filter(job_queue::Column::OrgId.eq(org.as_str())).count(db.writer()).await?)
}

/// Claims up to `limit` due jobs of `kind`, oldest first, leasing them for
/// `lease`. On PostgreSQL concurrent workers skip each other's locked rows.
pub async fn claim(db: &Database, kind: &str, limit: u64, lease: Duration) -> Result<Vec<ClaimedJob>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let t = now();
    let until = t + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
    let mut due = Query::select()
        .column(job_queue::Column::Id)
        .from(job_queue::Entity)
        .and_where(job_queue::Column::AvailableAt.lte(t))
        .and_where(job_queue::Column::Kind.eq(kind))
        .order_by(job_queue::Column::CreatedAt, sea_orm::Order::Asc)
        .limit(limit)
        .to_owned();
    if db.kind() == crate::DatabaseKind::Postgres {
        due.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let mut rows = job_queue::Entity::update_many()
        .col_expr(job_queue::Column::AvailableAt, Expr::value(until))
        .col_expr(job_queue::Column::Attempts, Expr::col(job_queue::Column::Attempts).add(1))
        .filter(job_queue::Column::Id.in_subquery(due))
        .exec_with_returning(db.writer())
        .await?;
    rows.sort_by_key(|r| (r.created_at, r.id));
    rows.into_iter()
        .map(|r| {
            Ok(ClaimedJob {
                id: JobId::from_uuid(r.id),
                org_id: OrgId::parse(&r.org_id).map_err(StoreError::corrupt)?,
                attempts: r.attempts,
            })
        })
        .collect()
}

/// Marks a claimed job running (its attempt count from the claim).
pub async fn start(tx: &TenantTx, id: JobId, attempts: i32) -> Result<(), StoreError> {
    memory_jobs::Entity::update_many()
        .col_expr(memory_jobs::Column::Status, Expr::value(JobStatus::Running.as_str()))
        .col_expr(memory_jobs::Column::StartedAt, Expr::value(now()))
        .col_expr(memory_jobs::Column::Attempts, Expr::value(attempts))
        .filter(memory_jobs::Column::OrgId.eq(tx.org_str()))
        .filter(memory_jobs::Column::Id.eq(id.as_uuid()))
        .exec(tx.conn())
        .await?;
    Ok(())
}

/// Ends a job (`done` with its result, or `failed` with its error) and
/// takes it off the queue, in the caller's transaction: the transaction
/// that also writes the job's effect. `false` when the job had ended
/// already (another worker finished it): the caller must roll back, so a
/// job takes effect once even when two workers ran it.
pub async fn finish(tx: &TenantTx, id: JobId, outcome: Result<serde_json::Value, String>) -> Result<bool, StoreError> {
    let (status, result, error) = match outcome {
        Ok(result) => (JobStatus::Done, Some(result), None),
        Err(error) => (JobStatus::Failed, None, Some(error)),
    };
    // Row-locking update: a second worker's finish waits for the first's
    // commit, then finds the job ended and changes nothing.
    let ended = memory_jobs::Entity::update_many()
        .col_expr(memory_jobs::Column::Status, Expr::value(status.as_str()))
        .col_expr(memory_jobs::Column::Result, Expr::value(result))
        .col_expr(memory_jobs::Column::Error, Expr::value(error))
        .col_expr(memory_jobs::Column::FinishedAt, Expr::value(now()))
        .filter(memory_jobs::Column::OrgId.eq(tx.org_str()))
        .filter(memory_jobs::Column::Id.eq(id.as_uuid()))
        .filter(memory_jobs::Column::Status.is_in([JobStatus::Queued.as_str(), JobStatus::Running.as_str()]))
        .exec(tx.conn())
        .await?
        .rows_affected
        == 1;
    job_queue::Entity::delete_many()
        .filter(job_queue::Column::OrgId.eq(tx.org_str()))
        .filter(job_queue::Column::Id.eq(id.as_uuid()))
        .exec(tx.conn())
        .await?;
    Ok(ended)
}

/// The tenant's jobs of `kind` not ended yet (queued or running), oldest
/// first.
pub async fn unfinished(tx: &TenantTx, kind: &str) -> Result<Vec<JobRecord>, StoreError> {
    memory_jobs::Entity::find()
        .filter(memory_jobs::Column::OrgId.eq(tx.org_str()))
        .filter(memory_jobs::Column::Kind.eq(kind))
        .filter(memory_jobs::Column::Status.is_in([JobStatus::Queued.as_str(), JobStatus::Running.as_str()]))
        .order_by_asc(memory_jobs::Column::CreatedAt)
        .all(tx.conn())
        .await?
        .into_iter()
        .map(record)
        .collect()
}

/// Records how far a running job got (in its `result`, until it ends).
pub async fn set_progress(tx: &TenantTx, id: JobId, progress: serde_json::Value) -> Result<(), StoreError> {
    memory_jobs::Entity::update_many()
        .col_expr(memory_jobs::Column::Result, Expr::value(Some(progress)))
        .filter(memory_jobs::Column::OrgId.eq(tx.org_str()))
        .filter(memory_jobs::Column::Id.eq(id.as_uuid()))
        .filter(memory_jobs::Column::Status.eq(JobStatus::Running.as_str()))
        .exec(tx.conn())
        .await?;
    Ok(())
}

/// Cancels a job that has not ended: `cancelled`, off the queue. `false`
/// when it had ended already (or is not the tenant's). A running worker
/// sees the status at its next step and stops.
pub async fn cancel(tx: &TenantTx, id: JobId) -> Result<bool, StoreError> {
    let cancelled = memory_jobs::Entity::update_many()
        .col_expr(memory_jobs::Column::Status, Expr::value(JobStatus::Cancelled.as_str()))
        .col_expr(memory_jobs::Column::FinishedAt, Expr::value(now()))
        .filter(memory_jobs::Column::OrgId.eq(tx.org_str()))
        .filter(memory_jobs::Column::Id.eq(id.as_uuid()))
        .filter(memory_jobs::Column::Status.is_in([JobStatus::Queued.as_str(), JobStatus::Running.as_str()]))
        .exec(tx.conn())
        .await?
        .rows_affected
        == 1;
    job_queue::Entity::delete_many()
        .filter(job_queue::Column::OrgId.eq(tx.org_str()))
        .filter(job_queue::Column::Id.eq(id.as_uuid()))
        .exec(tx.conn())
        .await?;
    Ok(cancelled)
}

/// Makes a claimed job claimable again after `delay`: a retry after a
/// failure, or (called while it runs) its worker extending its lease.
pub async fn available_after(db: &Database, id: JobId, delay: Duration) -> Result<(), StoreError> {
    let at = now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(5));
    job_queue::Entity::update_many()
        .col_expr(job_queue::Column::AvailableAt, Expr::value(at))
        .filter(job_queue::Column::Id.eq(id.as_uuid()))
        .exec(db.writer())
        .await?;
    Ok(())
}
