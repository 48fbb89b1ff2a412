//! Memories: create, get, list, update, state changes and soft delete, each
//! with its history and outbox rows in the same transaction.

use std::collections::{BTreeMap, HashMap};

use loci_core::{AccessEntity, AppId, MemoryId, MemoryState, Scope, UserId, content_hash};
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, Func, LikeExpr, Query, UnionType};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Select,
};

use crate::entities::{memories, memory_categories, memory_status_history};
use crate::repo::outbox::{self, OutboxOperation};
use crate::{StoreError, TenantTx, repo};
use loci_core::model::{
    Memory, MemoryFilter, MemoryMetadata, MemoryUpdate, NewMemory, Page, PageRequest, SortDirection, SortField,
    SortKey, SortValue, StatusChange, Visibility, now,
};

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
        categories: Vec::new(),
        created_at: m.created_at,
        updated_at: m.updated_at,
        archived_at: m.archived_at,
        deleted_at: m.deleted_at,
        valid_to: m.valid_to,
        superseded_by: m.superseded_by.map(MemoryId::from_uuid),
    })
}

fn json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(value).map_err(StoreError::corrupt)
}

fn scoped(tx: &TenantTx) -> Select<memories::Entity> {
    memories::Entity::find().filter(memories::Column::OrgId.eq(tx.org_str()))
}

/// [`scoped`] for a query that finds its rows by primary key (`id IN
/// (..)`). SQLite, without statistics, preferred an org-prefixed index to
/// the key (reading every memory of the org to probe the list); a unary `+`
/// keeps the org term out of index selection there while still checking it.
fn scoped_by_key(tx: &TenantTx) -> Select<memories::Entity> {
    if tx.conn().get_database_backend() != sea_orm::DbBackend::Sqlite {
        return scoped(tx);
    }
    memories::Entity::find().filter(Expr::cust_with_values(r#"+"memories"."org_id" = ?"#, [tx.org_str()]))
}

async fn record_history(
    tx: &TenantTx,
    memory: MemoryId,
    old: Option<MemoryState>,
    new: MemoryState,
    actor: Option<UserId>,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    let row = memory_status_history::ActiveModel {
        id: Set(uuid_v7()),
        org_id: Set(tx.org_str()),
        memory_id: Set(memory.as_uuid()),
        old_state: Set(old.map(|s| s.as_str().to_owned())),
        new_state: Set(new.as_str().to_owned()),
        changed_by: Set(actor.map(|a| a.as_uuid())),
        changed_at: Set(now()),
        reason: Set(reason.map(str::to_owned)),
    };
    memory_status_history::Entity::insert(row).exec_without_returning(tx.conn()).await?;
    Ok(())
}

fn uuid_v7() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}

/// The row of a new memory with id `id`, in the transaction's tenant.
fn new_row(
    tx: &TenantTx,
    id: MemoryId,
    input: &NewMemory,
    times: &ImportedTimes,
) -> Result<memories::ActiveModel, StoreError> {
    let md = &input.metadata;
    Ok(memories::ActiveModel {
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
        state: Set(times.state.as_str().to_owned()),
        created_at: Set(times.created_at),
        updated_at: Set(times.updated_at),
        archived_at: Set(times.archived_at),
        deleted_at: Set(times.deleted_at),
        valid_to: Set(None),
        superseded_by: Set(None),
    })
}

/// Inserts a new memory with its categories, one history row (nothing ->
/// its state) and an outbox row, after checking that user and app belong to
/// the tenant (and the app to the user); otherwise `NotFound`.
async fn insert(
    tx: &TenantTx,
    input: NewMemory,
    times: ImportedTimes,
    reason: Option<&str>,
) -> Result<Memory, StoreError> {
    let app = repo::apps::get(tx, input.app_id).await?.ok_or(StoreError::NotFound("app"))?;
    if app.owner_id != input.user_id {
        return Err(StoreError::NotFound("app"));
    }
    if repo::users::get(tx, input.user_id).await?.is_none() {
        return Err(StoreError::NotFound("user"));
    }
    let id = MemoryId::new();
    memories::Entity::insert(new_row(tx, id, &input, &times)?).exec_without_returning(tx.conn()).await?;
    repo::categories::assign(tx, id, &input.categories).await?;
    record_history(tx, id, None, times.state, Some(input.user_id), reason).await?;
    let op = if times.state == MemoryState::Deleted { OutboxOperation::Delete } else { OutboxOperation::Upsert };
    outbox::enqueue_memory(tx, id, op).await?;
    get_any_state(tx, id).await?.ok_or(StoreError::NotFound("memory"))
}

/// Creates an active memory in the transaction's tenant (see [`insert`]).
pub async fn create(tx: &TenantTx, input: NewMemory) -> Result<Memory, StoreError> {
    create_because(tx, input, None).await
}

/// [`create`], with why in its history row (an `infer` decision).
pub async fn create_because(tx: &TenantTx, input: NewMemory, reason: Option<&str>) -> Result<Memory, StoreError> {
    let t = now();
    insert(
        tx,
        input,
        ImportedTimes { state: MemoryState::Active, created_at: t, updated_at: t, archived_at: None, deleted_at: None },
        reason,
    )
    .await
}

/// Records a decision that changed nothing (an `infer` NOOP: the memory
/// already says it) as a history row whose state stays the same.
pub async fn note_unchanged(
    tx: &TenantTx,
    id: MemoryId,
    actor: Option<UserId>,
    reason: &str,
) -> Result<bool, StoreError> {
    let Some(memory) = get(tx, id).await? else {
        return Ok(false);
    };
    record_history(tx, id, Some(memory.state), memory.state, actor, Some(reason)).await?;
    Ok(true)
}

/// The memory unless it is deleted; `None` for another tenant's memory.
pub async fn get(tx: &TenantTx, id: MemoryId) -> Result<Option<Memory>, StoreError> {
    Ok(get_any_state(tx, id).await?.filter(|m| m.state != MemoryState::Deleted))
}

/// The memory in any state, including deleted (history and audit paths).
pub async fn get_any_state(tx: &TenantTx, id: MemoryId) -> Result<Option<Memory>, StoreError> {
    let Some(model) = scoped(tx).filter(memories::Column::Id.eq(id.as_uuid())).one(tx.conn()).await? else {
        return Ok(None);
    };
    let mut memory = to_record(tx, model)?;
    memory.categories = repo::categories::names_for(tx, &[id]).await?.remove(&id).unwrap_or_default();
    Ok(Some(memory))
}

/// Escapes `%`, `_` and `\` for a `LIKE` pattern with `\` as escape.
pub(crate) fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// `LIKE` pattern matching `prefix` literally, then anything.
fn starts_with(prefix: &str) -> LikeExpr {
    LikeExpr::new(format!("{}%", like_escape(prefix))).escape('\\')
}

/// The visibility rule inside the query: the owner, or an access entity that
/// one of the caller's grants covers.
pub(crate) fn visibility_condition(v: &Visibility) -> Condition {
    Condition::any()
        .add(memories::Column::UserId.eq(v.user_id.as_uuid()))
        .add(grants_condition(memories::Column::AccessEntity, &v.grants))
}

/// An access entity in `column` that one of `grants` covers (itself
/// exactly; `org:X` also `project:X/*` and `team:X/*`; `project:X/P` also
/// `team:X/P/*`).
fn grants_condition<C: ColumnTrait>(column: C, grants: &[AccessEntity]) -> Condition {
    let col = || Expr::col((column.entity_name(), column));
    let mut any = Condition::any();
    for grant in grants {
        any = any.add(col().eq(grant.to_string()));
        match grant {
            AccessEntity::Org(org) => {
                any = any
                    .add(col().like(starts_with(&format!("project:{org}/"))))
                    .add(col().like(starts_with(&format!("team:{org}/"))));
            }
            AccessEntity::Project { org, project } => {
                any = any.add(col().like(starts_with(&format!("team:{org}/{project}/"))));
            }
            AccessEntity::User(_) | AccessEntity::Team { .. } => {}
        }
    }
    any
}

/// The filter as one condition (the tenant is added by `scoped`).
fn filter_condition(tx: &TenantTx, filter: &MemoryFilter) -> Condition {
    match &filter.visible_to {
        Some(v) => base_condition(tx, filter).add(visibility_condition(v)),
        None => base_condition(tx, filter),
    }
}

/// The filter as one condition without its visibility rule (and without its
/// keyset position, which only a page applies).
fn base_condition(tx: &TenantTx, filter: &MemoryFilter) -> Condition {
    let mut all = Condition::all();
    if !filter.ids.is_empty() {
        all = all.add(memories::Column::Id.is_in(filter.ids.iter().map(|m| m.as_uuid())));
    }
    if let Some(user) = filter.user_id {
        all = all.add(memories::Column::UserId.eq(user.as_uuid()));
    }
    if !filter.content_hashes.is_empty() {
        all = all.add(memories::Column::ContentHash.is_in(filter.content_hashes.iter().cloned()));
    }
    if let Some(app) = filter.app_id {
        all = all.add(memories::Column::AppId.eq(app.as_uuid()));
    }
    if !filter.app_ids.is_empty() {
        all = all.add(memories::Column::AppId.is_in(filter.app_ids.iter().map(|a| a.as_uuid())));
    }
    if !filter.states.is_empty() {
        all = all.add(memories::Column::State.is_in(filter.states.iter().map(|s| s.as_str())));
    }
    if let Some(at) = filter.as_of {
        all = all
            .add(memories::Column::CreatedAt.lte(at))
            .add(Condition::any().add(memories::Column::ValidTo.is_null()).add(memories::Column::ValidTo.gt(at)));
    }
    if let Some(category) = filter.category {
        all = all.add(memories::Column::Category.eq(category.as_str()));
    }
    if !filter.categories.is_empty() {
        all = all.add(memories::Column::Category.is_in(filter.categories.iter().map(|c| c.as_str())));
    }
    if !filter.scopes.is_empty() {
        all = all.add(memories::Column::Scope.is_in(filter.scopes.iter().map(|c| c.as_str())));
    }
    if !filter.artifact_types.is_empty() {
        all = all.add(memories::Column::ArtifactType.is_in(filter.artifact_types.iter().map(|c| c.as_str())));
    }
    if !filter.sources.is_empty() {
        all = all.add(memories::Column::Source.is_in(filter.sources.iter().map(|c| c.as_str())));
    }
    if !filter.entities.is_empty() {
        all = all.add(memories::Column::Entity.is_in(filter.entities.iter().cloned()));
    }
    if !filter.category_names.is_empty() || !filter.category_ids.is_empty() {
        all = all.add(memories::Column::Id.in_subquery(repo::categories::memory_ids_in(
            tx,
            &filter.category_names,
            &filter.category_ids,
        )));
    }
    for (key, value) in &filter.tags {
        all = all.add(repo::json_text_equals(tx, "tags", key, value));
    }
    if let Some(from) = filter.from {
        all = all.add(memories::Column::CreatedAt.gte(from));
    }
    if let Some(to) = filter.to {
        all = all.add(memories::Column::CreatedAt.lte(to));
    }
    if let Some(needle) = filter.search.as_deref().filter(|s| !s.is_empty()) {
        let pattern = format!("%{}%", like_escape(&needle.to_lowercase()));
        all = all.add(
            Expr::expr(Func::lower(Expr::col(memories::Column::Content))).like(LikeExpr::new(pattern).escape('\\')),
        );
    }
    all
}

/// The filter with category names replaced by the ids they name, so the
/// link table is read through its covering (org, category, memory) index
/// instead of a nested subquery; `None` when names were asked for and none
/// exists (nothing can match).
async fn with_category_ids(tx: &TenantTx, filter: &MemoryFilter) -> Result<Option<MemoryFilter>, StoreError> {
    if filter.category_names.is_empty() {
        return Ok(Some(filter.clone()));
    }
    let named = repo::categories::ids_named(tx, &filter.category_names).await?;
    if named.is_empty() && filter.category_ids.is_empty() {
        return Ok(None);
    }
    let mut resolved = filter.clone();
    resolved.category_names.clear();
    resolved.category_ids.extend(named);
    Ok(Some(resolved))
}

/// The memories matching a resolved filter (category names already ids).
fn matching(tx: &TenantTx, filter: &MemoryFilter) -> Select<memories::Entity> {
    scoped(tx).filter(filter_condition(tx, filter))
}

/// [`matching`] as the queries of a list: with a visibility rule, one arm
/// for the caller's own memories and one for others' memories that a grant
/// covers. Each arm is served by an index in the list's order (an `OR` of
/// owner and grants is not: SQLite sorted all 100,000 rows of a user for
/// one page), and the two never overlap.
fn arms(tx: &TenantTx, filter: &MemoryFilter) -> Vec<Select<memories::Entity>> {
    let Some(v) = &filter.visible_to else {
        return vec![matching(tx, filter)];
    };
    let base = || scoped(tx).filter(base_condition(tx, filter));
    let mine = memories::Column::UserId.eq(v.user_id.as_uuid());
    let mut arms = vec![base().filter(mine)];
    if !v.grants.is_empty() {
        let theirs = memories::Column::UserId.ne(v.user_id.as_uuid());
        arms.push(base().filter(theirs).filter(grants_condition(memories::Column::AccessEntity, &v.grants)));
    }
    arms
}

/// Memories after `key` in the `(sort column, id)` order of `filter`;
/// `None` when the order has no keyset ([`SortField::has_keyset`]).
fn after_condition(filter: &MemoryFilter, key: &SortKey) -> Option<Expr> {
    let column = match filter.sort {
        SortField::CreatedAt => memories::Column::CreatedAt,
        SortField::UpdatedAt => memories::Column::UpdatedAt,
        SortField::Content | SortField::AppName => return None,
    };
    Some(keyset_after(filter.direction, key, Expr::col(column), Expr::col(memories::Column::Id)))
}

/// Rows whose `(time, id)` come after `key` in `direction`.
fn keyset_after(direction: SortDirection, key: &SortKey, time: Expr, id: Expr) -> Expr {
    let value: sea_orm::Value = match &key.value {
        SortValue::Time(t) => (*t).into(),
    };
    // A row comparison, `(col, id) < (value, id)`: both engines read it as
    // one range of the (.., created_at, id) indexes. (The equivalent `OR`
    // made PostgreSQL walk the index from its start.)
    let row = Expr::tuple([time, id]);
    let at = Expr::tuple([Expr::val(value), Expr::val(key.id.as_uuid())]);
    match direction {
        SortDirection::Desc => row.lt(at),
        SortDirection::Asc => row.gt(at),
    }
}

/// The one category of a list that its links alone serve in list order:
/// a caller's list of one category, by creation time, filtered by nothing
/// else but states (see [`link_arms`]).
fn link_served_category(filter: &MemoryFilter) -> Option<uuid::Uuid> {
    let [category] = filter.category_ids.as_slice() else {
        return None;
    };
    let rest = MemoryFilter { category_ids: Vec::new(), ..filter.clone() };
    let served = filter.visible_to.is_some() && filter.sort == SortField::CreatedAt && rest.only_states();
    served.then(|| category.as_uuid())
}

/// The arms of a list of one category read from its links, which carry
/// copies of their memory's owner, state, access entity and creation time
/// (kept by triggers): the caller's own links are one range of
/// `(org, category, user, created_at, memory)` and the shared ones one range
/// of `(org, category, access_entity, created_at, memory)` per grant, so
/// neither the page nor its count looks up a memory it does not return.
fn link_arms(tx: &TenantTx, filter: &MemoryFilter, category: uuid::Uuid) -> Vec<Select<memory_categories::Entity>> {
    let Some(v) = &filter.visible_to else {
        return Vec::new();
    };
    let base = || {
        let links = memory_categories::Entity::find()
            .filter(memory_categories::Column::OrgId.eq(tx.org_str()))
            .filter(memory_categories::Column::CategoryId.eq(category));
        if filter.states.is_empty() {
            return links;
        }
        links.filter(memory_categories::Column::State.is_in(filter.states.iter().map(|s| s.as_str())))
    };
    let mut arms = vec![base().filter(memory_categories::Column::UserId.eq(v.user_id.as_uuid()))];
    if !v.grants.is_empty() {
        arms.push(
            base()
                .filter(memory_categories::Column::UserId.ne(v.user_id.as_uuid()))
                .filter(grants_condition(memory_categories::Column::AccessEntity, &v.grants)),
        );
    }
    arms
}

/// [`link_arms`] as arms of a page: the memories of the arm's first
/// `window` links after the filter's keyset position.
fn linked_page_arms(
    tx: &TenantTx,
    filter: &MemoryFilter,
    category: uuid::Uuid,
    order: &sea_orm::Order,
    window: u64,
) -> Vec<Select<memories::Entity>> {
    let after = filter.after.as_ref().map(|key| {
        keyset_after(
            filter.direction,
            key,
            Expr::col((memory_categories::Entity, memory_categories::Column::CreatedAt)),
            Expr::col((memory_categories::Entity, memory_categories::Column::MemoryId)),
        )
    });
    link_arms(tx, filter, category)
        .into_iter()
        .map(|links| {
            let first = links
                .apply_if(after.clone(), QueryFilter::filter)
                .order_by(memory_categories::Column::CreatedAt, order.clone())
                .order_by(memory_categories::Column::MemoryId, order.clone())
                .limit(window)
                .select_only()
                .column(memory_categories::Column::MemoryId);
            scoped_by_key(tx).filter(memories::Column::Id.in_subquery(QueryTrait::into_query(first)))
        })
        .collect()
}

/// One page of [`matching`], in the filter's order; the id breaks ties so
/// pages never overlap or skip rows. With a keyset position the page starts
/// after it instead of at an offset.
///
/// Two arms become `SELECT .. FROM (mine UNION ALL theirs) AS memories
/// ORDER BY .. LIMIT .. OFFSET ..`, which SQLite runs as a merge of the two
/// arms each read in index order. PostgreSQL does not merge a bare `UNION
/// ALL` that way (it sorted every row of both arms), so there each arm is
/// `SELECT * FROM (arm ORDER BY .. LIMIT n)` with n = offset + size: each
/// reads its index in order and stops, and a merge append takes the page.
fn page_query(tx: &TenantTx, filter: &MemoryFilter, page: PageRequest) -> Select<memories::Entity> {
    let order = match filter.direction {
        SortDirection::Asc => sea_orm::Order::Asc,
        SortDirection::Desc => sea_orm::Order::Desc,
    };
    let ordered = |query: Select<memories::Entity>| {
        let query = match filter.sort {
            SortField::CreatedAt => query.order_by(memories::Column::CreatedAt, order.clone()),
            SortField::UpdatedAt => query.order_by(memories::Column::UpdatedAt, order.clone()),
            SortField::Content => query.order_by(memories::Column::Content, order.clone()),
            SortField::AppName => query.order_by(repo::apps::name_of_memory_app(), order.clone()),
        };
        query.order_by(memories::Column::Id, order.clone())
    };
    let after = filter.after.as_ref().and_then(|key| after_condition(filter, key));
    let offset = if after.is_some() { 0 } else { page.page.saturating_sub(1).saturating_mul(page.size) };
    let window = offset.saturating_add(page.size);
    let arms = match link_served_category(filter) {
        Some(category) => linked_page_arms(tx, filter, category, &order, window),
        None => arms(tx, filter),
    };
    let mut arms = arms.into_iter().map(|arm| match &after {
        Some(after) => arm.filter(after.clone()),
        None => arm,
    });
    let (mine, theirs) = match (arms.next(), arms.next()) {
        (Some(mine), Some(theirs)) => (mine, theirs),
        (Some(only), None) => return ordered(only).offset(offset).limit(page.size),
        _ => return ordered(matching(tx, filter).apply_if(after, QueryFilter::filter)).offset(offset).limit(page.size),
    };
    let sqlite = tx.conn().get_database_backend() == sea_orm::DbBackend::Sqlite;
    let arm = |select: Select<memories::Entity>, alias: &str| {
        if sqlite {
            return QueryTrait::into_query(select);
        }
        let limited = QueryTrait::into_query(ordered(select).limit(window));
        Query::select().column(sea_orm::sea_query::Asterisk).from_subquery(limited, Alias::new(alias)).to_owned()
    };
    let mut union = arm(mine, "mine");
    union.union(UnionType::All, arm(theirs, "theirs"));
    let mut outer = memories::Entity::find();
    QueryTrait::query(&mut outer).from_clear().from_subquery(union, memories::Entity);
    ordered(outer).offset(offset).limit(page.size)
}

/// The exact number of memories matching `filter`, in one statement: the sum
/// of the arms' counts. The caller's own memories by state alone are read
/// from `memory_counts` (kept by triggers) instead of counted.
///
/// Each count is a plain `SELECT COUNT(*)` of its arm (sea-orm's `count()`
/// wraps the query as `SELECT COUNT(*) FROM (SELECT memories.* ...)`, which
/// SQLite ran by reading every matching row).
async fn total(tx: &TenantTx, filter: &MemoryFilter) -> Result<u64, StoreError> {
    let row = tx.conn().query_one(&total_query(tx, filter)).await?;
    let n: i64 = match row {
        Some(row) => row.try_get("", "n")?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The statement of [`total`].
fn total_query(tx: &TenantTx, filter: &MemoryFilter) -> sea_orm::sea_query::SelectStatement {
    let count = |arm: Select<memories::Entity>| {
        Expr::from(QueryTrait::into_query(arm.select_only().column_as(Expr::cust("COUNT(*)"), "n")))
    };
    let mut parts: Vec<Expr> = Vec::new();
    if let Some(category) = link_served_category(filter) {
        for links in link_arms(tx, filter, category) {
            parts.push(Expr::from(QueryTrait::into_query(links.select_only().column_as(Expr::cust("COUNT(*)"), "n"))));
        }
    }
    let counted = if parts.is_empty() { arms(tx, filter) } else { Vec::new() };
    for (i, arm) in counted.into_iter().enumerate() {
        match &filter.visible_to {
            Some(v) if i == 0 && filter.only_states() => parts.push(stored_count(tx, v.user_id, &filter.states)),
            _ => parts.push(count(arm)),
        }
    }
    let sum = parts.into_iter().reduce(|a, b| a.add(b)).unwrap_or_else(|| Expr::val(0i64));
    Query::select().expr_as(sum, Alias::new("n")).to_owned()
}

/// The caller's memories in `states` (all states when empty) from the
/// counts the triggers keep: a sum over a few rows per state.
fn stored_count(tx: &TenantTx, user: UserId, states: &[MemoryState]) -> Expr {
    let mut q = Query::select();
    q.expr(Expr::cust("CAST(COALESCE(SUM(\"n\"), 0) AS BIGINT)"))
        .from(Alias::new("memory_counts"))
        .and_where(Expr::col(Alias::new("org_id")).eq(tx.org_str()))
        .and_where(Expr::col(Alias::new("user_id")).eq(user.as_uuid()));
    if !states.is_empty() {
        q.and_where(Expr::col(Alias::new("state")).is_in(states.iter().map(|s| s.as_str())));
    }
    Expr::from(q.to_owned())
}

/// A page of memories matching `filter`, with the exact total.
pub async fn list(tx: &TenantTx, filter: &MemoryFilter, page: PageRequest) -> Result<Page<Memory>, StoreError> {
    let Some(filter) = with_category_ids(tx, filter).await? else {
        return Ok(Page::new(Vec::new(), 0, page));
    };
    let filter = &filter;
    let total = total(tx, filter).await?;
    let models = page_query(tx, filter, page).all(tx.conn()).await?;
    let mut items = models.into_iter().map(|m| to_record(tx, m)).collect::<Result<Vec<_>, _>>()?;
    let ids: Vec<MemoryId> = items.iter().map(|m| m.id).collect();
    let mut names = repo::categories::names_for(tx, &ids).await?;
    for m in &mut items {
        m.categories = names.remove(&m.id).unwrap_or_default();
    }
    Ok(Page::new(items, total, page))
}

/// The first memory matching `filter`, without counting the rest (the
/// by-id read path).
pub async fn first(tx: &TenantTx, filter: &MemoryFilter) -> Result<Option<Memory>, StoreError> {
    let Some(model) = matching(tx, filter).one(tx.conn()).await? else {
        return Ok(None);
    };
    let mut memory = to_record(tx, model)?;
    memory.categories = repo::categories::names_for(tx, &[memory.id]).await?.remove(&memory.id).unwrap_or_default();
    Ok(Some(memory))
}

/// Ids of the memories matching `filter` (for bulk actions), capped.
pub async fn ids_matching(tx: &TenantTx, filter: &MemoryFilter, cap: u64) -> Result<Vec<MemoryId>, StoreError> {
    let rows: Vec<uuid::Uuid> = scoped(tx)
        .filter(filter_condition(tx, filter))
        .select_only()
        .column(memories::Column::Id)
        .order_by_asc(memories::Column::Id)
        .limit(cap)
        .into_tuple()
        .all(tx.conn())
        .await?;
    Ok(rows.into_iter().map(MemoryId::from_uuid).collect())
}

/// Counts of the filter's memories by state and by structured category.
pub async fn stats(tx: &TenantTx, filter: &MemoryFilter) -> Result<loci_core::model::MemoryStats, StoreError> {
    let by_state: Vec<(String, i64)> = scoped(tx)
        .filter(filter_condition(tx, filter))
        .select_only()
        .column(memories::Column::State)
        .column_as(memories::Column::Id.count(), "n")
        .group_by(memories::Column::State)
        .into_tuple()
        .all(tx.conn())
        .await?;
    let by_category: Vec<(Option<String>, i64)> = scoped(tx)
        .filter(filter_condition(tx, filter))
        .select_only()
        .column(memories::Column::Category)
        .column_as(memories::Column::Id.count(), "n")
        .group_by(memories::Column::Category)
        .into_tuple()
        .all(tx.conn())
        .await?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(loci_core::model::MemoryStats {
        total_memories: by_state.iter().map(|(_, n)| count(*n)).sum(),
        by_state: by_state.into_iter().map(|(s, n)| (s, count(n))).collect(),
        by_category: by_category
            .into_iter()
            .map(|(c, n)| (c.unwrap_or_else(|| "uncategorised".to_owned()), count(n)))
            .collect(),
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
    if let Some(names) = &change.categories {
        repo::categories::replace(tx, id, names).await?;
    }
    outbox::enqueue_memory(tx, id, OutboxOperation::Upsert).await?;
    let mut memory = to_record(tx, updated)?;
    memory.categories = repo::categories::names_for(tx, &[id]).await?.remove(&id).unwrap_or_default();
    Ok(Some(memory))
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
    set_state_because(tx, id, next, actor, None).await
}

/// [`set_state`], with why in its history row.
async fn set_state_because(
    tx: &TenantTx,
    id: MemoryId,
    next: MemoryState,
    actor: Option<UserId>,
    reason: Option<&str>,
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
        MemoryState::Active => {
            // Made current again by its owner: no longer superseded.
            row.archived_at = Set(None);
            row.valid_to = Set(None);
            row.superseded_by = Set(None);
        }
        MemoryState::Paused => {}
    }
    let updated = row.update(tx.conn()).await?;
    record_history(tx, id, Some(current), next, actor, reason).await?;
    let op = if next == MemoryState::Deleted { OutboxOperation::Delete } else { OutboxOperation::Upsert };
    outbox::enqueue_memory(tx, id, op).await?;
    let mut memory = to_record(tx, updated)?;
    memory.categories = repo::categories::names_for(tx, &[id]).await?.remove(&id).unwrap_or_default();
    Ok(Some(memory))
}

/// Ends a current (active or paused) memory: archived, with `valid_to` now
/// and `superseded_by` the memory that replaces it (none: retracted), in
/// the caller's transaction, with its history row (saying why, when
/// `reason` is given) and outbox entry. `None` for a missing memory; a
/// memory not current is an invalid transition.
pub async fn end_validity(
    tx: &TenantTx,
    id: MemoryId,
    superseded_by: Option<MemoryId>,
    actor: Option<UserId>,
    reason: Option<&str>,
) -> Result<Option<Memory>, StoreError> {
    let Some(mut memory) = set_state_because(tx, id, MemoryState::Archived, actor, reason).await? else {
        return Ok(None);
    };
    let at = memory.archived_at.unwrap_or_else(now);
    memories::Entity::update_many()
        .col_expr(memories::Column::ValidTo, Expr::value(at))
        .col_expr(memories::Column::SupersededBy, Expr::value(superseded_by.map(|m| m.as_uuid())))
        .filter(memories::Column::OrgId.eq(tx.org_str()))
        .filter(memories::Column::Id.eq(id.as_uuid()))
        .exec(tx.conn())
        .await?;
    memory.valid_to = Some(at);
    memory.superseded_by = superseded_by;
    Ok(Some(memory))
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
                reason: r.reason,
            })
        })
        .collect()
}

/// `SELECT id FROM memories WHERE <tenant> AND <filter>`, for subqueries.
pub(crate) fn matching_ids_query(tx: &TenantTx, filter: &MemoryFilter) -> sea_orm::sea_query::SelectStatement {
    sea_orm::sea_query::Query::select()
        .column(memories::Column::Id)
        .from(memories::Entity)
        .and_where(memories::Column::OrgId.eq(tx.org_str()))
        .cond_where(filter_condition(tx, filter))
        .to_owned()
}

/// Number of memories per app among those matching `filter`.
pub async fn count_by_app(
    tx: &TenantTx,
    filter: &MemoryFilter,
) -> Result<std::collections::BTreeMap<AppId, u64>, StoreError> {
    let rows: Vec<(uuid::Uuid, i64)> = scoped(tx)
        .filter(filter_condition(tx, filter))
        .select_only()
        .column(memories::Column::AppId)
        .column_as(memories::Column::Id.count(), "n")
        .group_by(memories::Column::AppId)
        .into_tuple()
        .all(tx.conn())
        .await?;
    Ok(rows.into_iter().map(|(a, n)| (AppId::from_uuid(a), u64::try_from(n).unwrap_or(0))).collect())
}

/// State and times of an imported memory (from a backup).
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedTimes {
    pub state: MemoryState,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub archived_at: Option<chrono::DateTime<chrono::Utc>>,
    pub deleted_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Creates a memory from a backup, with a fresh id, its original state and
/// times; one history row records the import, and an outbox row re-indexes it.
pub async fn import(tx: &TenantTx, input: NewMemory, times: ImportedTimes) -> Result<Memory, StoreError> {
    insert(tx, input, times, None).await
}

/// Rows per multi-row `INSERT`: the widest table (memories, 21 columns) stays
/// under SQLite's and PostgreSQL's bound-parameter limits.
const BULK_CHUNK: usize = 500;

/// Creates many memories at once, as [`create`] and [`import`] do one by one
/// (same checks, categories, history and outbox rows), with multi-row inserts:
/// the bulk load path of imports and benchmarks. Returns the new ids in input
/// order.
pub async fn create_many(tx: &TenantTx, inputs: Vec<(NewMemory, ImportedTimes)>) -> Result<Vec<MemoryId>, StoreError> {
    let mut checked = std::collections::HashSet::new();
    for (input, _) in &inputs {
        if checked.insert((input.user_id, input.app_id)) {
            let app = repo::apps::get(tx, input.app_id).await?.ok_or(StoreError::NotFound("app"))?;
            if app.owner_id != input.user_id || repo::users::get(tx, input.user_id).await?.is_none() {
                return Err(StoreError::NotFound("app"));
            }
        }
    }
    let ids: Vec<MemoryId> = inputs.iter().map(|_| MemoryId::new()).collect();
    let mut rows = Vec::with_capacity(inputs.len());
    let mut history = Vec::with_capacity(inputs.len());
    let mut outbox_rows = Vec::with_capacity(inputs.len());
    for ((input, times), id) in inputs.iter().zip(&ids) {
        rows.push(new_row(tx, *id, input, times)?);
        history.push(memory_status_history::ActiveModel {
            id: Set(uuid_v7()),
            org_id: Set(tx.org_str()),
            memory_id: Set(id.as_uuid()),
            old_state: Set(None),
            new_state: Set(times.state.as_str().to_owned()),
            changed_by: Set(Some(input.user_id.as_uuid())),
            changed_at: Set(now()),
            reason: Set(None),
        });
        let op = if times.state == MemoryState::Deleted { OutboxOperation::Delete } else { OutboxOperation::Upsert };
        outbox_rows.push(outbox::memory_row(tx, *id, op));
    }
    for chunk in rows.chunks(BULK_CHUNK) {
        memories::Entity::insert_many(chunk.to_vec()).exec_without_returning(tx.conn()).await?;
    }
    for chunk in history.chunks(BULK_CHUNK) {
        memory_status_history::Entity::insert_many(chunk.to_vec()).exec_without_returning(tx.conn()).await?;
    }
    let filed: Vec<(MemoryId, &[String])> =
        inputs.iter().zip(&ids).map(|((input, _), id)| (*id, input.categories.as_slice())).collect();
    repo::categories::assign_many(tx, &filed).await?;
    for chunk in outbox_rows.chunks(BULK_CHUNK) {
        crate::entities::outbox::Entity::insert_many(chunk.to_vec()).exec_without_returning(tx.conn()).await?;
    }
    Ok(ids)
}

/// Contents of up to `window` memories written just before and just after
/// `m` through the same app by the same user (its stream, in creation order,
/// deleted ones skipped): the context the indexers store with a memory.
pub async fn neighbours(tx: &TenantTx, m: &Memory, window: u64) -> Result<(Vec<String>, Vec<String>), StoreError> {
    if window == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    let stream = || {
        scoped(tx)
            .select_only()
            .filter(memories::Column::AppId.eq(m.app_id.as_uuid()))
            .filter(memories::Column::UserId.eq(m.user_id.as_uuid()))
            .filter(memories::Column::State.ne(MemoryState::Deleted.as_str()))
    };
    // Plain range conditions on created_at, so the (org, app, created_at)
    // index drives both lookups (an `OR` for ties made them scan the whole
    // stream: quadratic over a bulk index). Ties on created_at are settled by
    // id here, with a margin of extra rows.
    let (t, id) = (m.created_at, m.id.as_uuid());
    let margin = window + 16;
    let rows: Vec<(uuid::Uuid, chrono::DateTime<chrono::Utc>, String)> = stream()
        .column(memories::Column::Id)
        .column(memories::Column::CreatedAt)
        .column(memories::Column::Content)
        .filter(memories::Column::CreatedAt.lte(t))
        .filter(memories::Column::Id.ne(id))
        .order_by_desc(memories::Column::CreatedAt)
        .order_by_desc(memories::Column::Id)
        .limit(margin)
        .into_tuple()
        .all(tx.conn())
        .await?;
    let mut before: Vec<String> = rows
        .into_iter()
        .filter(|(other, at, _)| *at < t || *other < id)
        .take(usize::try_from(window).unwrap_or(usize::MAX))
        .map(|(_, _, content)| content)
        .collect();
    before.reverse();
    let rows: Vec<(uuid::Uuid, chrono::DateTime<chrono::Utc>, String)> = stream()
        .column(memories::Column::Id)
        .column(memories::Column::CreatedAt)
        .column(memories::Column::Content)
        .filter(memories::Column::CreatedAt.gte(t))
        .filter(memories::Column::Id.ne(id))
        .order_by_asc(memories::Column::CreatedAt)
        .order_by_asc(memories::Column::Id)
        .limit(margin)
        .into_tuple()
        .all(tx.conn())
        .await?;
    let after: Vec<String> = rows
        .into_iter()
        .filter(|(other, at, _)| *at > t || *other > id)
        .take(usize::try_from(window).unwrap_or(usize::MAX))
        .map(|(_, _, content)| content)
        .collect();
    Ok((before, after))
}

/// The memory just before and just after each of `ids` in its stream (same
/// app and user, creation order, deleted ones skipped), in one statement:
/// search uses them as evidence that a turn's neighbours match. Ids of
/// other orgs give no row.
pub async fn stream_neighbours(
    tx: &TenantTx,
    ids: &[MemoryId],
) -> Result<Vec<(MemoryId, Option<MemoryId>, Option<MemoryId>)>, StoreError> {
    use memories::Column as C;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let (c, m) = (Alias::new("c"), Alias::new("m"));
    // One correlated lookup per direction, driven by the (org, app,
    // created_at) index with a range on created_at; ties go by id.
    let adjacent = |before: bool| -> Expr {
        let (m, c) = (m.clone(), c.clone());
        let (time, id) = (Expr::col((m.clone(), C::CreatedAt)), Expr::col((m.clone(), C::Id)));
        let (their_time, their_id) = (Expr::col((c.clone(), C::CreatedAt)), Expr::col((c.clone(), C::Id)));
        let (range, strictly, tie, order) = if before {
            (time.clone().lte(their_time.clone()), time.lt(their_time.clone()), id.lt(their_id), sea_orm::Order::Desc)
        } else {
            (time.clone().gte(their_time.clone()), time.gt(their_time.clone()), id.gt(their_id), sea_orm::Order::Asc)
        };
        let same_time = Expr::col((m.clone(), C::CreatedAt)).eq(Expr::col((c.clone(), C::CreatedAt)));
        let sub = Query::select()
            .expr(Expr::col((m.clone(), C::Id)))
            .from_as(memories::Entity, m.clone())
            .and_where(Expr::col((m.clone(), C::OrgId)).eq(Expr::col((c.clone(), C::OrgId))))
            .and_where(Expr::col((m.clone(), C::AppId)).eq(Expr::col((c.clone(), C::AppId))))
            .and_where(Expr::col((m.clone(), C::UserId)).eq(Expr::col((c.clone(), C::UserId))))
            .and_where(Expr::col((m.clone(), C::State)).ne(MemoryState::Deleted.as_str()))
            .and_where(range)
            .cond_where(Condition::any().add(strictly).add(Condition::all().add(same_time).add(tie)))
            .order_by((m.clone(), C::CreatedAt), order.clone())
            .order_by((m, C::Id), order)
            .limit(1)
            .to_owned();
        Expr::SubQuery(None, Box::new(sub.into()))
    };
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let stmt = Query::select()
            .expr(Expr::col((c.clone(), C::Id)))
            .expr(adjacent(true))
            .expr(adjacent(false))
            .from_as(memories::Entity, c.clone())
            .and_where(Expr::col((c.clone(), C::OrgId)).eq(tx.org_str()))
            .and_where(Expr::col((c.clone(), C::Id)).is_in(chunk.iter().map(|id| id.as_uuid())))
            .to_owned();
        for row in tx.conn().query_all(&stmt).await? {
            let id: uuid::Uuid = row.try_get_by_index(0)?;
            let before: Option<uuid::Uuid> = row.try_get_by_index(1)?;
            let after: Option<uuid::Uuid> = row.try_get_by_index(2)?;
            out.push((MemoryId::from_uuid(id), before.map(MemoryId::from_uuid), after.map(MemoryId::from_uuid)));
        }
    }
    Ok(out)
}

/// Categories filed on the memories matching `filter` (here rather than in
/// `categories`, which memories already depends on), with how many of them
/// each holds, by name.
pub async fn categories_in_use(
    tx: &TenantTx,
    filter: &loci_core::model::MemoryFilter,
) -> Result<Vec<loci_core::model::CategoryRecord>, StoreError> {
    use sea_orm::QuerySelect;
    let rows: Vec<(uuid::Uuid, i64)> = memory_categories::Entity::find()
        .filter(memory_categories::Column::OrgId.eq(tx.org_str()))
        .filter(memory_categories::Column::MemoryId.in_subquery(matching_ids_query(tx, filter)))
        .select_only()
        .column(memory_categories::Column::CategoryId)
        .column_as(memory_categories::Column::MemoryId.count(), "n")
        .group_by(memory_categories::Column::CategoryId)
        .into_tuple()
        .all(tx.conn())
        .await?;
    let counts: HashMap<uuid::Uuid, u64> = rows.into_iter().map(|(c, n)| (c, u64::try_from(n).unwrap_or(0))).collect();
    let mut out: Vec<loci_core::model::CategoryRecord> = repo::categories::all(tx)
        .await?
        .into_iter()
        .filter_map(|(id, name)| {
            counts.get(&id.as_uuid()).map(|n| loci_core::model::CategoryRecord { id, name, memory_count: *n })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The plans the engine chooses now for the hot reads of a caller (`vis`):
/// a memory by id, the categories of a page, the first list page unfiltered
/// and filtered by one category, and the list's count. SQLite answers
/// `EXPLAIN QUERY PLAN`, PostgreSQL `EXPLAIN`. Test support: the plan tests
/// run them on databases grown through the API, without a fresh ANALYZE.
#[cfg(feature = "testing")]
pub async fn hot_read_plans(
    tx: &TenantTx,
    vis: &Visibility,
    id: MemoryId,
    category: loci_core::CategoryId,
) -> Result<Vec<(&'static str, String)>, StoreError> {
    use sea_orm::Statement;

    let listed = MemoryFilter {
        visible_to: Some(vis.clone()),
        states: vec![MemoryState::Active, MemoryState::Paused],
        ..Default::default()
    };
    let by_category = MemoryFilter { category_ids: vec![category], ..listed.clone() };
    let by_id = MemoryFilter { ids: vec![id], ..listed.clone() };
    let after = MemoryFilter { after: Some(SortKey { value: SortValue::Time(now()), id }), ..listed.clone() };
    let page = PageRequest { page: 1, size: 50 };
    let backend = tx.conn().get_database_backend();
    if backend == sea_orm::DbBackend::Postgres {
        // A test's few hundred rows make sequential scans and sorts the right
        // choice; discouraged, the plan shows which index serves the query
        // and its order (a sort that remains means no index could).
        tx.conn().execute_unprepared("SET LOCAL enable_seqscan = off").await?;
        tx.conn().execute_unprepared("SET LOCAL enable_sort = off").await?;
    }
    let statements = [
        ("memory by id", matching(tx, &by_id).limit(1).build(backend)),
        ("categories of a page", repo::categories::names_query(tx, &[id]).build(backend)),
        ("list page", page_query(tx, &listed, page).build(backend)),
        ("list page of one category", page_query(tx, &by_category, page).build(backend)),
        ("list page after a cursor", page_query(tx, &after, PageRequest { page: 200, size: 50 }).build(backend)),
        ("list count", backend.build(&total_query(tx, &listed))),
        ("list count of one category", backend.build(&total_query(tx, &by_category))),
    ];
    let mut plans = Vec::new();
    for (name, statement) in statements {
        let prefix = if backend == sea_orm::DbBackend::Sqlite { "EXPLAIN QUERY PLAN" } else { "EXPLAIN" };
        let explain =
            Statement { sql: format!("{prefix} {}", statement.sql), values: statement.values, db_backend: backend };
        let rows = tx.conn().query_all_raw(explain).await?;
        let lines: Vec<String> = rows
            .iter()
            .filter_map(|r| r.try_get::<String>("", "detail").or_else(|_| r.try_get::<String>("", "QUERY PLAN")).ok())
            .collect();
        plans.push((name, lines.join("\n")));
    }
    Ok(plans)
}

/// A page of a scoped retrieval (see [`scoped_page`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ScopedPage {
    pub items: Vec<Memory>,
    /// Memories the filter matches.
    pub total_before_dedup: u64,
    /// Of those, the distinct contents (one copy each).
    pub total_after_dedup: u64,
    /// Copies left out, by the scope of the copy left out.
    pub dedup_by_scope: BTreeMap<String, u64>,
}

/// `CASE` of a memory's scope precedence (a memory without a scope is
/// the user's own): text built from the constant scope names only.
fn precedence_sql() -> String {
    let mut sql = String::from("(CASE COALESCE(\"scope\", 'user')");
    for scope in Scope::ALL {
        sql.push_str(&format!(" WHEN '{}' THEN {}", scope.as_str(), scope.precedence()));
    }
    sql.push_str(" ELSE 0 END)");
    sql
}

/// The memories `filter` matches, with `rank` 1 for the copy of each
/// content that a scoped retrieval keeps: the higher scope precedence,
/// then the newer, then the greater id.
fn ranked_copies(tx: &TenantTx, filter: &MemoryFilter) -> sea_orm::sea_query::SelectStatement {
    let precedence = precedence_sql();
    let mut inner = QueryTrait::into_query(matching(tx, filter).select_only());
    inner
        .column((memories::Entity, memories::Column::Id))
        .column((memories::Entity, memories::Column::CreatedAt))
        .expr_as(Expr::cust("COALESCE(\"scope\", 'user')"), Alias::new("scope_name"))
        .expr_as(Expr::cust(precedence.clone()), Alias::new("precedence"))
        .expr_as(
            Expr::cust(format!(
                "ROW_NUMBER() OVER (PARTITION BY \"content_hash\" ORDER BY {precedence} DESC, \
                 \"memories\".\"created_at\" DESC, \"memories\".\"id\" DESC)"
            )),
            Alias::new("copy_rank"),
        );
    inner
}

/// A scoped retrieval (spec "Scoped memory"): the memories `filter` matches,
/// identical contents (the SHA-256 of the normalised content) kept once, in
/// the copy of the highest scope precedence (session 60 ... enterprise 10;
/// tie: the newest), ordered by precedence then creation, newest first,
/// and paginated after deduplication.
pub async fn scoped_page(tx: &TenantTx, filter: &MemoryFilter, page: PageRequest) -> Result<ScopedPage, StoreError> {
    let Some(filter) = with_category_ids(tx, filter).await? else {
        return Ok(ScopedPage {
            items: Vec::new(),
            total_before_dedup: 0,
            total_after_dedup: 0,
            dedup_by_scope: BTreeMap::new(),
        });
    };
    let copies = Alias::new("copies");
    let col = |name: &str| Expr::col((copies.clone(), Alias::new(name)));

    // One pass for every count: per scope, the copies and the kept ones.
    let mut counts = Query::select();
    counts
        .expr(col("scope_name"))
        .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
        .expr_as(Expr::cust("SUM(CASE WHEN \"copy_rank\" = 1 THEN 1 ELSE 0 END)"), Alias::new("kept"))
        .from_subquery(ranked_copies(tx, &filter), copies.clone())
        .group_by_col((copies.clone(), Alias::new("scope_name")));
    let (mut before, mut after) = (0u64, 0u64);
    let mut dedup_by_scope = BTreeMap::new();
    for row in tx.conn().query_all(&counts).await? {
        let scope: String = row.try_get_by_index(0)?;
        let n = u64::try_from(row.try_get_by_index::<i64>(1)?).unwrap_or(0);
        let kept = u64::try_from(row.try_get_by_index::<i64>(2)?).unwrap_or(0);
        before += n;
        after += kept;
        if n > kept {
            dedup_by_scope.insert(scope, n - kept);
        }
    }

    let mut ids_query = Query::select();
    ids_query
        .expr(col("id"))
        .from_subquery(ranked_copies(tx, &filter), copies.clone())
        .and_where(col("copy_rank").eq(1))
        .order_by(Alias::new("precedence"), sea_orm::Order::Desc)
        .order_by(Alias::new("created_at"), sea_orm::Order::Desc)
        .order_by(Alias::new("id"), sea_orm::Order::Desc)
        .limit(page.size)
        .offset(page.page.saturating_sub(1).saturating_mul(page.size));
    let mut ids: Vec<MemoryId> = Vec::new();
    for row in tx.conn().query_all(&ids_query).await? {
        ids.push(MemoryId::from_uuid(row.try_get_by_index::<uuid::Uuid>(0)?));
    }
    let mut items = Vec::with_capacity(ids.len());
    if !ids.is_empty() {
        let by_id = MemoryFilter { ids: ids.clone(), ..MemoryFilter::default() };
        let loaded = list(tx, &by_id, PageRequest { page: 1, size: ids.len() as u64 }).await?;
        let mut loaded: HashMap<MemoryId, Memory> = loaded.items.into_iter().map(|m| (m.id, m)).collect();
        items.extend(ids.iter().filter_map(|id| loaded.remove(id)));
    }
    Ok(ScopedPage { items, total_before_dedup: before, total_after_dedup: after, dedup_by_scope })
}
