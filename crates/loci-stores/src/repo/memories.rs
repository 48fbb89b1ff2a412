//! Memories: create, get, list, update, state changes and soft delete, each
//! with its history and outbox rows in the same transaction.

use std::collections::BTreeMap;

use loci_core::{AccessEntity, AppId, MemoryId, MemoryState, UserId, content_hash};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Select,
};

use crate::entities::{memories, memory_status_history};
use crate::records::{
    Memory, MemoryFilter, MemoryMetadata, MemoryUpdate, NewMemory, Page, PageRequest, SortDirection, SortField,
    StatusChange, now,
};
use crate::repo::outbox::{self, OutboxOperation};
use crate::{StoreError, TenantTx, repo};

fn parse_opt<T: std::str::FromStr>(value: Option<String>) -> Result<Option<T>, StoreError>
where
    T::Err: std::fmt::Display,
{
    value.map(|v| v.parse::<T>().map_err(StoreError::corrupt)).transpose()
}

fn to_record(tx: &TenantTx, m: memories::Model) -> Result<Memory, StoreError> {
    let evidence: Vec<String> = serde_json::from_value(m.evidence).map_err(StoreError::corrupt)?;
    let tags: BTreeMap<String, serde_json::Value> = serde_json::from_value(m.tags).map_err(StoreError::corrupt)?;
    let extra = match m.metadata {
        serde_json::Value::Object(map) => map,
        other => return Err(StoreError::corrupt(format!("memory metadata is not an object: {other}"))),
    };
    Ok(Memory {
        id: MemoryId::from_uuid(m.id),
        org_id: tx.org().clone(),
        user_id: UserId::from_uuid(m.user_id),
        app_id: AppId::from_uuid(m.app_id),
        content: m.content,
        content_hash: m.content_hash,
        metadata: MemoryMetadata {
            category: parse_opt(m.category)?,
            scope: parse_opt(m.scope)?,
            artifact_type: parse_opt(m.artifact_type)?,
            artifact_ref: m.artifact_ref,
            entity: m.entity,
            source: parse_opt(m.source)?,
            access_entity: parse_opt::<AccessEntity>(m.access_entity)?,
            evidence,
            tags,
            extra,
        },
        state: m.state.parse().map_err(StoreError::corrupt)?,
        created_at: m.created_at,
        updated_at: m.updated_at,
        archived_at: m.archived_at,
        deleted_at: m.deleted_at,
    })
}

fn json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(value).map_err(StoreError::corrupt)
}

fn scoped(tx: &TenantTx) -> Select<memories::Entity> {
    memories::Entity::find().filter(memories::Column::OrgId.eq(tx.org_str()))
}

async fn record_history(
    tx: &TenantTx,
    memory: MemoryId,
    old: Option<MemoryState>,
    new: MemoryState,
    actor: Option<UserId>,
) -> Result<(), StoreError> {
    let row = memory_status_history::ActiveModel {
        id: Set(uuid_v7()),
        org_id: Set(tx.org_str()),
        memory_id: Set(memory.as_uuid()),
        old_state: Set(old.map(|s| s.as_str().to_owned())),
        new_state: Set(new.as_str().to_owned()),
        changed_by: Set(actor.map(|a| a.as_uuid())),
        changed_at: Set(now()),
    };
    memory_status_history::Entity::insert(row).exec_without_returning(tx.conn()).await?;
    Ok(())
}

fn uuid_v7() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}

/// Creates a memory in the transaction's tenant. The user and app must belong
/// to that tenant (and the app to the user); otherwise `NotFound`.
/// Writes the initial history row and an outbox row.
pub async fn create(tx: &TenantTx, input: NewMemory) -> Result<Memory, StoreError> {
    let app = repo::apps::get(tx, input.app_id).await?.ok_or(StoreError::NotFound("app"))?;
    if app.owner_id != input.user_id {
        return Err(StoreError::NotFound("app"));
    }
    if repo::users::get(tx, input.user_id).await?.is_none() {
        return Err(StoreError::NotFound("user"));
    }
    let id = MemoryId::new();
    let t = now();
    let md = &input.metadata;
    let row = memories::ActiveModel {
        id: Set(id.as_uuid()),
        org_id: Set(tx.org_str()),
        user_id: Set(input.user_id.as_uuid()),
        app_id: Set(input.app_id.as_uuid()),
        content_hash: Set(content_hash(&input.content)),
        content: Set(input.content.clone()),
        category: Set(md.category.map(|c| c.as_str().to_owned())),
        scope: Set(md.scope.map(|s| s.as_str().to_owned())),
        artifact_type: Set(md.artifact_type.map(|a| a.as_str().to_owned())),
        artifact_ref: Set(md.artifact_ref.clone()),
        entity: Set(md.entity.clone()),
        source: Set(md.source.map(|s| s.as_str().to_owned())),
        access_entity: Set(md.access_entity.as_ref().map(ToString::to_string)),
        evidence: Set(json(&md.evidence)?),
        tags: Set(json(&md.tags)?),
        metadata: Set(serde_json::Value::Object(md.extra.clone())),
        state: Set(MemoryState::Active.as_str().to_owned()),
        created_at: Set(t),
        updated_at: Set(t),
        archived_at: Set(None),
        deleted_at: Set(None),
    };
    memories::Entity::insert(row).exec_without_returning(tx.conn()).await?;
    record_history(tx, id, None, MemoryState::Active, Some(input.user_id)).await?;
    outbox::enqueue_memory(tx, id, OutboxOperation::Upsert).await?;
    get_any_state(tx, id).await?.ok_or(StoreError::NotFound("memory"))
}

/// The memory unless it is deleted; `None` for another tenant's memory.
pub async fn get(tx: &TenantTx, id: MemoryId) -> Result<Option<Memory>, StoreError> {
    Ok(get_any_state(tx, id).await?.filter(|m| m.state != MemoryState::Deleted))
}

/// The memory in any state, including deleted (history and audit paths).
pub async fn get_any_state(tx: &TenantTx, id: MemoryId) -> Result<Option<Memory>, StoreError> {
    scoped(tx).filter(memories::Column::Id.eq(id.as_uuid())).one(tx.conn()).await?.map(|m| to_record(tx, m)).transpose()
}

/// A page of memories matching `filter`, with the exact total.
pub async fn list(tx: &TenantTx, filter: &MemoryFilter, page: PageRequest) -> Result<Page<Memory>, StoreError> {
    let mut query = scoped(tx);
    if let Some(user) = filter.user_id {
        query = query.filter(memories::Column::UserId.eq(user.as_uuid()));
    }
    if let Some(app) = filter.app_id {
        query = query.filter(memories::Column::AppId.eq(app.as_uuid()));
    }
    if !filter.states.is_empty() {
        query = query.filter(memories::Column::State.is_in(filter.states.iter().map(|s| s.as_str())));
    }
    if let Some(category) = filter.category {
        query = query.filter(memories::Column::Category.eq(category.as_str()));
    }
    if let Some(from) = filter.from {
        query = query.filter(memories::Column::CreatedAt.gte(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(memories::Column::CreatedAt.lte(to));
    }
    if let Some(needle) = filter.search.as_deref().filter(|s| !s.is_empty()) {
        let escaped = needle.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        query = query.filter(
            Expr::expr(Func::lower(Expr::col(memories::Column::Content)))
                .like(LikeExpr::new(format!("%{escaped}%")).escape('\\')),
        );
    }
    let total = query.clone().count(tx.conn()).await?;
    let column = match filter.sort {
        SortField::CreatedAt => memories::Column::CreatedAt,
        SortField::UpdatedAt => memories::Column::UpdatedAt,
        SortField::Content => memories::Column::Content,
    };
    let order = match filter.direction {
        SortDirection::Asc => sea_orm::Order::Asc,
        SortDirection::Desc => sea_orm::Order::Desc,
    };
    // The id breaks ties so pages never overlap or skip rows.
    let models = query
        .order_by(column, order.clone())
        .order_by(memories::Column::Id, order)
        .offset((page.page.saturating_sub(1)).saturating_mul(page.size))
        .limit(page.size)
        .all(tx.conn())
        .await?;
    let items = models.into_iter().map(|m| to_record(tx, m)).collect::<Result<Vec<_>, _>>()?;
    Ok(Page {
        items,
        total,
        page: page.page,
        size: page.size,
        pages: if page.size == 0 { 0 } else { total.div_ceil(page.size) },
    })
}

/// Updates content and/or structured fields (tags merge). `None` and no
/// change for another tenant's or a deleted memory. Writes an outbox row.
pub async fn update(tx: &TenantTx, id: MemoryId, change: MemoryUpdate) -> Result<Option<Memory>, StoreError> {
    let Some(model) = scoped(tx)
        .filter(memories::Column::Id.eq(id.as_uuid()))
        .filter(memories::Column::State.ne(MemoryState::Deleted.as_str()))
        .one(tx.conn())
        .await?
    else {
        return Ok(None);
    };
    let mut tags: BTreeMap<String, serde_json::Value> =
        serde_json::from_value(model.tags.clone()).map_err(StoreError::corrupt)?;
    for (key, value) in change.tags_merge {
        if serde_json::Value::is_null(&value) {
            tags.remove(&key);
        } else {
            tags.insert(key, value);
        }
    }
    let mut row = model.into_active_model();
    if let Some(content) = change.content {
        row.content_hash = Set(content_hash(&content));
        row.content = Set(content);
    }
    if let Some(v) = change.category {
        row.category = Set(v.map(|c| c.as_str().to_owned()));
    }
    if let Some(v) = change.scope {
        row.scope = Set(v.map(|c| c.as_str().to_owned()));
    }
    if let Some(v) = change.artifact_type {
        row.artifact_type = Set(v.map(|c| c.as_str().to_owned()));
    }
    if let Some(v) = change.artifact_ref {
        row.artifact_ref = Set(v);
    }
    if let Some(v) = change.entity {
        row.entity = Set(v);
    }
    if let Some(v) = change.source {
        row.source = Set(v.map(|c| c.as_str().to_owned()));
    }
    if let Some(v) = change.access_entity {
        row.access_entity = Set(v.map(|a| a.to_string()));
    }
    if let Some(v) = change.evidence {
        row.evidence = Set(json(&v)?);
    }
    if let Some(v) = change.extra {
        row.metadata = Set(serde_json::Value::Object(v));
    }
    row.tags = Set(json(&tags)?);
    row.updated_at = Set(now());
    let updated = row.update(tx.conn()).await?;
    outbox::enqueue_memory(tx, id, OutboxOperation::Upsert).await?;
    to_record(tx, updated).map(Some)
}

/// Moves a memory to `next` under the state machine. `None` for another
/// tenant's memory; `InvalidTransition` for an illegal change. Writes a history
/// row and an outbox row (a delete removes the memory from every index).
pub async fn set_state(
    tx: &TenantTx,
    id: MemoryId,
    next: MemoryState,
    actor: Option<UserId>,
) -> Result<Option<Memory>, StoreError> {
    let Some(model) = scoped(tx).filter(memories::Column::Id.eq(id.as_uuid())).one(tx.conn()).await? else {
        return Ok(None);
    };
    let current: MemoryState = model.state.parse().map_err(StoreError::corrupt)?;
    if !current.can_transition_to(next) {
        return Err(StoreError::InvalidTransition { from: current, to: next });
    }
    let t = now();
    let mut row = model.into_active_model();
    row.state = Set(next.as_str().to_owned());
    row.updated_at = Set(t);
    match next {
        MemoryState::Archived => row.archived_at = Set(Some(t)),
        MemoryState::Deleted => row.deleted_at = Set(Some(t)),
        MemoryState::Active => row.archived_at = Set(None),
        MemoryState::Paused => {}
    }
    let updated = row.update(tx.conn()).await?;
    record_history(tx, id, Some(current), next, actor).await?;
    let op = if next == MemoryState::Deleted { OutboxOperation::Delete } else { OutboxOperation::Upsert };
    outbox::enqueue_memory(tx, id, op).await?;
    to_record(tx, updated).map(Some)
}

/// Soft delete: `true` if the memory is (now or already) deleted, `false` for
/// another tenant's or a missing memory. Idempotent.
pub async fn delete(tx: &TenantTx, id: MemoryId, actor: Option<UserId>) -> Result<bool, StoreError> {
    match get_any_state(tx, id).await? {
        None => Ok(false),
        Some(m) if m.state == MemoryState::Deleted => Ok(true),
        Some(_) => Ok(set_state(tx, id, MemoryState::Deleted, actor).await?.is_some()),
    }
}

/// State history of a memory, oldest first; empty for another tenant's memory.
pub async fn history(tx: &TenantTx, id: MemoryId) -> Result<Vec<StatusChange>, StoreError> {
    let rows = memory_status_history::Entity::find()
        .filter(memory_status_history::Column::OrgId.eq(tx.org_str()))
        .filter(memory_status_history::Column::MemoryId.eq(id.as_uuid()))
        .order_by_asc(memory_status_history::Column::ChangedAt)
        .order_by_asc(memory_status_history::Column::Id)
        .all(tx.conn())
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok(StatusChange {
                memory_id: id,
                old_state: parse_opt(r.old_state)?,
                new_state: r.new_state.parse().map_err(StoreError::corrupt)?,
                changed_by: r.changed_by.map(UserId::from_uuid),
                changed_at: r.changed_at,
            })
        })
        .collect()
}
