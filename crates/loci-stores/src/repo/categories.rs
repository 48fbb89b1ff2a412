//! Categories: org-wide names, filed on memories through `memory_categories`.

use std::collections::HashMap;

use loci_core::{CategoryId, MemoryId};
use sea_orm::sea_query::{OnConflict, Query, SelectStatement};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::entities::{categories, memory_categories};
use crate::{StoreError, TenantTx};
use loci_core::model::now;

/// Ids of the named categories, created in the org on first use.
async fn ensure(tx: &TenantTx, names: &[String]) -> Result<Vec<CategoryId>, StoreError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    for name in names {
        let row = categories::ActiveModel {
            id: Set(CategoryId::new().as_uuid()),
            org_id: Set(tx.org_str()),
            name: Set(name.clone()),
            description: Set(None),
            created_at: Set(now()),
        };
        categories::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([categories::Column::OrgId, categories::Column::Name]).do_nothing().to_owned(),
            )
            .exec_without_returning(tx.conn())
            .await?;
    }
    let rows = categories::Entity::find()
        .filter(categories::Column::OrgId.eq(tx.org_str()))
        .filter(categories::Column::Name.is_in(names.iter().cloned()))
        .all(tx.conn())
        .await?;
    Ok(rows.into_iter().map(|r| CategoryId::from_uuid(r.id)).collect())
}

/// Files `memory` under `names` (in addition to what it has).
pub async fn assign(tx: &TenantTx, memory: MemoryId, names: &[String]) -> Result<(), StoreError> {
    for id in ensure(tx, names).await? {
        let row = memory_categories::ActiveModel {
            memory_id: Set(memory.as_uuid()),
            category_id: Set(id.as_uuid()),
            org_id: Set(tx.org_str()),
            ..Default::default()
        };
        memory_categories::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([memory_categories::Column::MemoryId, memory_categories::Column::CategoryId])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(tx.conn())
            .await?;
    }
    Ok(())
}

/// Files each memory under its names, with multi-row inserts (bulk loads).
pub async fn assign_many(tx: &TenantTx, filed: &[(MemoryId, &[String])]) -> Result<(), StoreError> {
    let mut names: Vec<String> = filed.iter().flat_map(|(_, n)| n.iter().cloned()).collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        return Ok(());
    }
    ensure(tx, &names).await?;
    let by_name: HashMap<String, uuid::Uuid> = categories::Entity::find()
        .filter(categories::Column::OrgId.eq(tx.org_str()))
        .filter(categories::Column::Name.is_in(names))
        .all(tx.conn())
        .await?
        .into_iter()
        .map(|c| (c.name, c.id))
        .collect();
    let mut rows = Vec::new();
    for (memory, names) in filed {
        let mut seen = std::collections::HashSet::new();
        for id in names.iter().filter_map(|n| by_name.get(n)).filter(|id| seen.insert(**id)) {
            rows.push(memory_categories::ActiveModel {
                memory_id: Set(memory.as_uuid()),
                category_id: Set(*id),
                org_id: Set(tx.org_str()),
                ..Default::default()
            });
        }
    }
    // Three columns per row: far below the bound-parameter limits.
    for chunk in rows.chunks(2000) {
        memory_categories::Entity::insert_many(chunk.to_vec()).exec_without_returning(tx.conn()).await?;
    }
    Ok(())
}

/// Files `memory` under exactly `names`.
pub async fn replace(tx: &TenantTx, memory: MemoryId, names: &[String]) -> Result<(), StoreError> {
    memory_categories::Entity::delete_many()
        .filter(memory_categories::Column::OrgId.eq(tx.org_str()))
        .filter(memory_categories::Column::MemoryId.eq(memory.as_uuid()))
        .exec(tx.conn())
        .await?;
    assign(tx, memory, names).await
}

/// Category names of each memory, sorted.
/// (memory id, category name) of the memories' categories.
pub(crate) fn names_query(tx: &TenantTx, memories: &[MemoryId]) -> sea_orm::Select<memory_categories::Entity> {
    let to_category: sea_orm::RelationDef = memory_categories::Entity::belongs_to(categories::Entity)
        .from(memory_categories::Column::CategoryId)
        .to(categories::Column::Id)
        .into();
    memory_categories::Entity::find()
        .select_only()
        .column(memory_categories::Column::MemoryId)
        .column(categories::Column::Name)
        .join(sea_orm::JoinType::InnerJoin, to_category)
        .filter(categories::Column::OrgId.eq(tx.org_str()))
        .filter(memory_categories::Column::MemoryId.is_in(memories.iter().map(|m| m.as_uuid())))
}

pub async fn names_for(tx: &TenantTx, memories: &[MemoryId]) -> Result<HashMap<MemoryId, Vec<String>>, StoreError> {
    let mut out: HashMap<MemoryId, Vec<String>> = HashMap::new();
    if memories.is_empty() {
        return Ok(out);
    }
    // One statement. The link table is filtered on its primary key's first
    // column only, so the planner has one sensible index for it whatever
    // its statistics say (an `org_id` term there once made SQLite without
    // statistics walk the org's (org, category, memory) index: every link of
    // the tenant). The tenant filter sits on the category.
    let rows: Vec<(uuid::Uuid, String)> = names_query(tx, memories).into_tuple().all(tx.conn()).await?;
    for (memory, name) in rows {
        out.entry(MemoryId::from_uuid(memory)).or_default().push(name);
    }
    for list in out.values_mut() {
        list.sort();
    }
    Ok(out)
}

/// Ids of the named categories that exist in the org.
pub async fn ids_named(tx: &TenantTx, names: &[String]) -> Result<Vec<CategoryId>, StoreError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<uuid::Uuid> = categories::Entity::find()
        .select_only()
        .column(categories::Column::Id)
        .filter(categories::Column::OrgId.eq(tx.org_str()))
        .filter(categories::Column::Name.is_in(names.iter().cloned()))
        .into_tuple()
        .all(tx.conn())
        .await?;
    Ok(rows.into_iter().map(CategoryId::from_uuid).collect())
}

/// `SELECT memory_id FROM memory_categories ...` for memories filed under any
/// of the names or ids (tenant-filtered), for use in `IN (subquery)`.
pub(crate) fn memory_ids_in(tx: &TenantTx, names: &[String], ids: &[CategoryId]) -> SelectStatement {
    let mut by_category = sea_orm::sea_query::Condition::any();
    if !ids.is_empty() {
        by_category = by_category.add(memory_categories::Column::CategoryId.is_in(ids.iter().map(|c| c.as_uuid())));
    }
    if !names.is_empty() {
        let named = Query::select()
            .column(categories::Column::Id)
            .from(categories::Entity)
            .and_where(categories::Column::OrgId.eq(tx.org_str()))
            .and_where(categories::Column::Name.is_in(names.iter().cloned()))
            .to_owned();
        by_category = by_category.add(memory_categories::Column::CategoryId.in_subquery(named));
    }
    Query::select()
        .column(memory_categories::Column::MemoryId)
        .from(memory_categories::Entity)
        .and_where(memory_categories::Column::OrgId.eq(tx.org_str()))
        .cond_where(by_category)
        .to_owned()
}

/// Every category of the org by name (used to resolve names for listings).
pub async fn all(tx: &TenantTx) -> Result<Vec<(CategoryId, String)>, StoreError> {
    let rows = categories::Entity::find()
        .filter(categories::Column::OrgId.eq(tx.org_str()))
        .order_by_asc(categories::Column::Name)
        .all(tx.conn())
        .await?;
    Ok(rows.into_iter().map(|r| (CategoryId::from_uuid(r.id), r.name)).collect())
}
