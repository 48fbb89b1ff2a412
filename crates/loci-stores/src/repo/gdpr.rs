//! What the relational store holds about one user, for the GDPR routes:
//! the rows of a subject access export, page by page, the erasure of every
//! row, the audit of both, and the user's data key.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use loci_core::{MemoryId, UserId};
use sea_orm::sea_query::OnConflict;
use sea_orm::sea_query::{Expr, ExprTrait, Query, SelectStatement};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};
use serde_json::Value;
use uuid::Uuid;

use crate::entities::*;
use crate::{StoreError, TenantTx};

/// Stands in for an erased user where another user's row names them (who
/// changed a memory's state, created an experiment, merged two entities):
/// those rows belong to others and stay, without the person.
pub const ERASED_USER: Uuid = Uuid::nil();

/// Rows per statement where ids are listed.
const CHUNK: usize = 500;

/// The parts of the relational store a subject access export reads, in the
/// order of the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectRows {
    /// The user row.
    User,
    /// The apps the user owns.
    Apps,
    /// Every memory of the user, in every state (deleted ones too).
    Memories,
    /// The state changes of the user's memories.
    History,
    /// Reads of the user's memories, and the user's reads of others'.
    AccessLogs,
    /// The user's asynchronous jobs (requests included).
    Jobs,
    /// The user's feedback events.
    Feedback,
    /// The experiment variants the user was assigned.
    ExperimentAssignments,
    /// The GDPR audit rows about the user.
    GdprAudit,
}

impl SubjectRows {
    pub const ALL: [Self; 9] = [
        Self::User,
        Self::Apps,
        Self::Memories,
        Self::History,
        Self::AccessLogs,
        Self::Jobs,
        Self::Feedback,
        Self::ExperimentAssignments,
        Self::GdprAudit,
    ];

    /// The name of the section in the export document (the table's name).
    pub fn name(self) -> &'static str {
        match self {
            Self::User => "users",
            Self::Apps => "apps",
            Self::Memories => "memories",
            Self::History => "memory_status_history",
            Self::AccessLogs => "memory_access_logs",
            Self::Jobs => "memory_jobs",
            Self::Feedback => "feedback_events",
            Self::ExperimentAssignments => "experiment_assignments",
            Self::GdprAudit => "gdpr_audit_logs",
        }
    }
}

/// The ids of the user's memories, as a sub-select.
fn memories_of(tx: &TenantTx, user: UserId) -> SelectStatement {
    Query::select()
        .column(memories::Column::Id)
        .from(memories::Entity)
        .and_where(Expr::col(memories::Column::OrgId).eq(tx.org_str()))
        .and_where(Expr::col(memories::Column::UserId).eq(user.as_uuid()))
        .to_owned()
}

/// Up to `limit` rows of `section` after the key `after`, as JSON objects
/// (the table's own columns), with the key to continue from (`None` at the
/// end).
pub async fn page(
    tx: &TenantTx,
    section: SubjectRows,
    user: UserId,
    subject_hash: &str,
    after: Option<Uuid>,
    limit: u64,
) -> Result<(Vec<Value>, Option<Uuid>), StoreError> {
    let org = tx.org_str();
    let u = user.as_uuid();
    macro_rules! rows {
        ($module:ident, $key:ident, $field:ident, $cond:expr) => {{
            let mut query = $module::Entity::find()
                .filter($module::Column::OrgId.eq(org.clone()))
                .filter($cond)
                .order_by_asc($module::Column::$key)
                .limit(limit);
            if let Some(after) = after {
                query = query.filter($module::Column::$key.gt(after));
            }
            let rows = query.all(tx.conn()).await?;
            let last = if rows.len() as u64 == limit { rows.last().map(|r| r.$field) } else { None };
            let values =
                rows.iter().map(serde_json::to_value).collect::<Result<Vec<_>, _>>().map_err(StoreError::corrupt)?;
            Ok((values, last))
        }};
    }
    match section {
        SubjectRows::User => rows!(users, Id, id, users::Column::Id.eq(u)),
        SubjectRows::Apps => rows!(apps, Id, id, apps::Column::OwnerId.eq(u)),
        SubjectRows::Memories => rows!(memories, Id, id, memories::Column::UserId.eq(u)),
        SubjectRows::History => {
            rows!(
                memory_status_history,
                Id,
                id,
                memory_status_history::Column::MemoryId.in_subquery(memories_of(tx, user))
            )
        }
        SubjectRows::AccessLogs => rows!(
            memory_access_logs,
            Id,
            id,
            Condition::any()
                .add(memory_access_logs::Column::UserId.eq(u))
                .add(memory_access_logs::Column::MemoryId.in_subquery(memories_of(tx, user)))
        ),
        SubjectRows::Jobs => rows!(memory_jobs, Id, id, memory_jobs::Column::UserId.eq(u)),
        SubjectRows::Feedback => rows!(feedback_events, Id, id, feedback_events::Column::UserId.eq(u)),
        SubjectRows::ExperimentAssignments => {
            rows!(experiment_assignments, ExperimentId, experiment_id, experiment_assignments::Column::UserId.eq(u))
        }
        SubjectRows::GdprAudit => {
            rows!(gdpr_audit_logs, Id, id, gdpr_audit_logs::Column::SubjectHash.eq(subject_hash.to_owned()))
        }
    }
}

/// Every memory id of the user, in any state.
pub async fn memory_ids(tx: &TenantTx, user: UserId) -> Result<Vec<MemoryId>, StoreError> {
    let ids: Vec<Uuid> = memories::Entity::find()
        .select_only()
        .column(memories::Column::Id)
        .filter(memories::Column::OrgId.eq(tx.org_str()))
        .filter(memories::Column::UserId.eq(user.as_uuid()))
        .into_tuple()
        .all(tx.conn())
        .await?;
    Ok(ids.into_iter().map(MemoryId::from_uuid).collect())
}

/// The category names the user's memories are filed under.
pub async fn category_names(tx: &TenantTx, user: UserId) -> Result<Vec<String>, StoreError> {
    let names: Vec<String> = categories::Entity::find()
        .select_only()
        .column(categories::Column::Name)
        .filter(categories::Column::OrgId.eq(tx.org_str()))
        .filter(
            categories::Column::Id.in_subquery(
                Query::select()
                    .column(memory_categories::Column::CategoryId)
                    .from(memory_categories::Entity)
                    .and_where(Expr::col(memory_categories::Column::OrgId).eq(tx.org_str()))
                    .and_where(Expr::col(memory_categories::Column::MemoryId).in_subquery(memories_of(tx, user)))
                    .to_owned(),
            ),
        )
        .order_by_asc(categories::Column::Name)
        .into_tuple()
        .all(tx.conn())
        .await?;
    Ok(names)
}

/// What an erasure removed (rows per table) and rewrote (rows of other
/// users that named the erased one, now naming [`ERASED_USER`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErasedRows {
    pub deleted: BTreeMap<&'static str, u64>,
    pub pseudonymised: BTreeMap<&'static str, u64>,
}

impl ErasedRows {
    pub fn total(&self) -> u64 {
        self.deleted.values().sum::<u64>() + self.pseudonymised.values().sum::<u64>()
    }
}

/// Deletes every row of the user in the transaction's org: memories in
/// every state with their category links, history, access logs (theirs and
/// of their memories), mentions and relations in the embedded graph (and
/// entities nothing mentions any more), outbox rows, jobs and their queue
/// entries, feedback, experiment assignments, counts, apps, the user row
/// and the user's data key. Others' rows that name the user keep their
/// content and lose the name. A second call finds nothing.
pub async fn erase_user(tx: &TenantTx, user: UserId) -> Result<ErasedRows, StoreError> {
    let org = tx.org_str();
    let u = user.as_uuid();
    let mut out = ErasedRows::default();
    let ids = memory_ids(tx, user).await?;

    // The embedded graph first, through its own bookkeeping (edge weights,
    // orphaned entities).
    let graph_rows = crate::graph::forget_memories(tx, &ids).await?;
    out.deleted.insert("graph_mentions", graph_rows);

    macro_rules! delete {
        ($module:ident, $cond:expr) => {{
            let n = $module::Entity::delete_many()
                .filter($module::Column::OrgId.eq(org.clone()))
                .filter($cond)
                .exec(tx.conn())
                .await?
                .rows_affected;
            *out.deleted.entry(stringify!($module)).or_default() += n;
        }};
    }
    macro_rules! rename {
        ($module:ident, $column:ident) => {{
            let n = $module::Entity::update_many()
                .col_expr($module::Column::$column, Expr::value(ERASED_USER))
                .filter($module::Column::OrgId.eq(org.clone()))
                .filter($module::Column::$column.eq(u))
                .exec(tx.conn())
                .await?
                .rows_affected;
            *out.pseudonymised.entry(stringify!($module)).or_default() += n;
        }};
    }

    delete!(
        memory_access_logs,
        Condition::any()
            .add(memory_access_logs::Column::UserId.eq(u))
            .add(memory_access_logs::Column::MemoryId.in_subquery(memories_of(tx, user)))
    );
    delete!(memory_status_history, memory_status_history::Column::MemoryId.in_subquery(memories_of(tx, user)));
    let n = memory_status_history::Entity::update_many()
        .col_expr(memory_status_history::Column::ChangedBy, Expr::value(Option::<Uuid>::None))
        .filter(memory_status_history::Column::OrgId.eq(org.clone()))
        .filter(memory_status_history::Column::ChangedBy.eq(u))
        .exec(tx.conn())
        .await?
        .rows_affected;
    out.pseudonymised.insert("memory_status_history", n);
    delete!(
        memory_categories,
        Condition::any()
            .add(memory_categories::Column::UserId.eq(u))
            .add(memory_categories::Column::MemoryId.in_subquery(memories_of(tx, user)))
    );
    delete!(graph_relations, graph_relations::Column::MemoryId.in_subquery(memories_of(tx, user)));
    for chunk in ids.chunks(CHUNK) {
        delete!(outbox, outbox::Column::AggregateId.is_in(chunk.iter().map(|id| id.as_uuid())));
    }
    delete!(
        job_queue,
        job_queue::Column::Id.in_subquery(
            Query::select()
                .column(memory_jobs::Column::Id)
                .from(memory_jobs::Entity)
                .and_where(Expr::col(memory_jobs::Column::OrgId).eq(org.clone()))
                .and_where(Expr::col(memory_jobs::Column::UserId).eq(u))
                .to_owned()
        )
    );
    delete!(memory_jobs, memory_jobs::Column::UserId.eq(u));
    delete!(feedback_events, feedback_events::Column::UserId.eq(u));
    delete!(experiment_assignments, experiment_assignments::Column::UserId.eq(u));
    // Memories that supersede one another all go together.
    delete!(memories, memories::Column::UserId.eq(u));
    // Derived by triggers, without an entity of its own.
    let backend = tx.conn().get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => "DELETE FROM memory_counts WHERE org_id = $1 AND user_id = $2",
        _ => "DELETE FROM memory_counts WHERE org_id = ? AND user_id = ?",
    };
    let n = tx
        .conn()
        .execute_raw(Statement::from_sql_and_values(backend, sql, [org.clone().into(), u.into()]))
        .await?
        .rows_affected();
    out.deleted.insert("memory_counts", n);
    delete!(apps, apps::Column::OwnerId.eq(u));
    delete!(users, users::Column::Id.eq(u));
    delete!(user_keys, user_keys::Column::UserId.eq(u));
    rename!(experiments, CreatedBy);
    rename!(experiment_history, ChangedBy);
    rename!(graph_aliases, MergedBy);
    out.deleted.retain(|_, n| *n > 0);
    out.pseudonymised.retain(|_, n| *n > 0);
    Ok(out)
}

/// One GDPR operation's audit row.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub id: Uuid,
    pub operation: String,
    pub status: String,
    pub subject_user_id: Option<UserId>,
    pub subject_hash: String,
    pub actor_user_id: Option<UserId>,
    pub reason: Option<String>,
    pub stores: Option<Value>,
    pub pending: Option<Value>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

fn audit_record(m: gdpr_audit_logs::Model) -> AuditRow {
    AuditRow {
        id: m.id,
        operation: m.operation,
        status: m.status,
        subject_user_id: m.subject_user_id.map(UserId::from_uuid),
        subject_hash: m.subject_hash,
        actor_user_id: m.actor_user_id.map(UserId::from_uuid),
        reason: m.reason,
        stores: m.stores,
        pending: m.pending,
        started_at: m.started_at,
        finished_at: m.finished_at,
    }
}

/// Writes (or, same id, finishes) an audit row.
pub async fn write_audit(tx: &TenantTx, row: &AuditRow) -> Result<(), StoreError> {
    let model = gdpr_audit_logs::ActiveModel {
        id: Set(row.id),
        org_id: Set(tx.org_str()),
        operation: Set(row.operation.clone()),
        status: Set(row.status.clone()),
        subject_user_id: Set(row.subject_user_id.map(|u| u.as_uuid())),
        subject_hash: Set(row.subject_hash.clone()),
        actor_user_id: Set(row.actor_user_id.map(|u| u.as_uuid())),
        reason: Set(row.reason.clone()),
        stores: Set(row.stores.clone()),
        pending: Set(row.pending.clone()),
        started_at: Set(row.started_at),
        finished_at: Set(row.finished_at),
    };
    gdpr_audit_logs::Entity::insert(model)
        .on_conflict(
            OnConflict::column(gdpr_audit_logs::Column::Id)
                .update_columns([
                    gdpr_audit_logs::Column::Status,
                    gdpr_audit_logs::Column::Stores,
                    gdpr_audit_logs::Column::Pending,
                    gdpr_audit_logs::Column::FinishedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(tx.conn())
        .await?;
    Ok(())
}

/// The org's audit rows (only those about one subject, by its hash, when
/// given), newest first.
pub async fn audit_rows(tx: &TenantTx, subject_hash: Option<&str>, limit: u64) -> Result<Vec<AuditRow>, StoreError> {
    let mut query = gdpr_audit_logs::Entity::find().filter(gdpr_audit_logs::Column::OrgId.eq(tx.org_str()));
    if let Some(hash) = subject_hash {
        query = query.filter(gdpr_audit_logs::Column::SubjectHash.eq(hash.to_owned()));
    }
    let rows = query.order_by_desc(gdpr_audit_logs::Column::StartedAt).limit(limit).all(tx.conn()).await?;
    Ok(rows.into_iter().map(audit_record).collect())
}

/// The relations the user's memories state in the embedded graph.
pub async fn relations_of(tx: &TenantTx, user: UserId) -> Result<Vec<Value>, StoreError> {
    let relations = graph_relations::Entity::find()
        .filter(graph_relations::Column::OrgId.eq(tx.org_str()))
        .filter(graph_relations::Column::MemoryId.in_subquery(memories_of(tx, user)))
        .all(tx.conn())
        .await?;
    relations.iter().map(serde_json::to_value).collect::<Result<_, _>>().map_err(StoreError::corrupt)
}

/// Hard-deletes up to `limit` of the org's memories soft-deleted before
/// `before` (their purge date, `deleted_at + retention`, has passed), with
/// what hangs off them: history, access logs and category links (foreign
/// keys), graph mentions and relations (and entities only they mentioned),
/// outbox rows. Returns their ids, for the indexes.
pub async fn purge_deleted(tx: &TenantTx, before: DateTime<Utc>, limit: u64) -> Result<Vec<MemoryId>, StoreError> {
    let ids: Vec<Uuid> = memories::Entity::find()
        .select_only()
        .column(memories::Column::Id)
        .filter(memories::Column::OrgId.eq(tx.org_str()))
        .filter(memories::Column::State.eq(loci_core::MemoryState::Deleted.as_str()))
        .filter(memories::Column::DeletedAt.lt(before))
        .order_by_asc(memories::Column::DeletedAt)
        .limit(limit)
        .into_tuple()
        .all(tx.conn())
        .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let memory_ids: Vec<MemoryId> = ids.iter().copied().map(MemoryId::from_uuid).collect();
    crate::graph::forget_memories(tx, &memory_ids).await?;
    outbox::Entity::delete_many()
        .filter(outbox::Column::OrgId.eq(tx.org_str()))
        .filter(outbox::Column::AggregateId.is_in(ids.iter().copied()))
        .exec(tx.conn())
        .await?;
    // Another memory may name one of these as its successor.
    memories::Entity::update_many()
        .col_expr(memories::Column::SupersededBy, Expr::value(Option::<Uuid>::None))
        .filter(memories::Column::OrgId.eq(tx.org_str()))
        .filter(memories::Column::SupersededBy.is_in(ids.iter().copied()))
        .exec(tx.conn())
        .await?;
    memories::Entity::delete_many()
        .filter(memories::Column::OrgId.eq(tx.org_str()))
        .filter(memories::Column::Id.is_in(ids.iter().copied()))
        .exec(tx.conn())
        .await?;
    Ok(memory_ids)
}
