//! [`EntityGraph`] on the embedded graph tables.
//!
//! Every answer counts mentions through `memories` under the caller's
//! [`SearchFilter`] (the same SQL as search), never the org-wide
//! `graph_edges` weights: those count memories the caller may not see.

use std::collections::HashMap;

use async_trait::async_trait;
use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, JoinType, Order, Query, SelectStatement};
use uuid::Uuid;

use loci_index::entities::shortest_chain;
use loci_index::{EntityGraph, EntityNetwork, EntitySummary, IndexError, Neighbour, SearchFilter};

use super::{CHUNK, EmbeddedGraphIndex, filter, mentions_col};
use crate::entities::{graph_entities, graph_mentions, memories};
use crate::{StoreError, TenantTx};

/// `graph_mentions AS <alias>` joined to the memories the filter admits.
pub(super) fn visible_mentions(tx: &TenantTx, filter: &SearchFilter, alias: &Alias) -> SelectStatement {
    Query::select()
        .from_as(graph_mentions::Entity, alias.clone())
        .join(
            JoinType::InnerJoin,
            memories::Entity,
            Expr::col((memories::Entity, memories::Column::Id))
                .equals((alias.clone(), graph_mentions::Column::MemoryId)),
        )
        .cond_where(
            Condition::all()
                .add(mentions_col(alias, graph_mentions::Column::OrgId).eq(tx.org_str()))
                .add(filter::search_filter_condition(tx, filter)),
        )
        .to_owned()
}

/// Adds `graph_entities` for the entity in `alias`'s `entity_id`, and its
/// columns (id, name, display name, kind) to the selection.
pub(super) fn with_entity(stmt: &mut SelectStatement, tx: &TenantTx, alias: &Alias) {
    stmt.join(
        JoinType::InnerJoin,
        graph_entities::Entity,
        Expr::col((graph_entities::Entity, graph_entities::Column::Id))
            .equals((alias.clone(), graph_mentions::Column::EntityId)),
    )
    .and_where(Expr::col((graph_entities::Entity, graph_entities::Column::OrgId)).eq(tx.org_str()))
    .columns([
        (graph_entities::Entity, graph_entities::Column::Id),
        (graph_entities::Entity, graph_entities::Column::Name),
        (graph_entities::Entity, graph_entities::Column::DisplayName),
        (graph_entities::Entity, graph_entities::Column::Kind),
    ])
    .group_by_columns([
        (graph_entities::Entity, graph_entities::Column::Id),
        (graph_entities::Entity, graph_entities::Column::Name),
        (graph_entities::Entity, graph_entities::Column::DisplayName),
        (graph_entities::Entity, graph_entities::Column::Kind),
    ]);
}

pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Reads `(id, name, display name, kind, count)` rows.
pub(super) async fn summaries(tx: &TenantTx, stmt: &SelectStatement) -> Result<Vec<(Uuid, EntitySummary)>, StoreError> {
    let rows = tx.conn().query_all(stmt).await?;
    rows.iter()
        .map(|row| {
            let summary = EntitySummary {
                name: row.try_get_by_index(1)?,
                display_name: row.try_get_by_index(2)?,
                kind: row.try_get_by_index(3)?,
                memories: count(row.try_get_by_index::<i64>(4)?),
            };
            Ok((row.try_get_by_index(0)?, summary))
        })
        .collect()
}

/// Visible entities with their visible mention counts: those named, those
/// with the given ids, or all (at least `min` mentions, `limit` of them).
pub(super) async fn counted(
    tx: &TenantTx,
    filter: &SearchFilter,
    names: Option<&[String]>,
    ids: Option<&[Uuid]>,
    min: u64,
    limit: Option<usize>,
) -> Result<Vec<(Uuid, EntitySummary)>, StoreError> {
    let gm = Alias::new("gm");
    let mut stmt = visible_mentions(tx, filter, &gm);
    with_entity(&mut stmt, tx, &gm);
    stmt.expr_as(Expr::cust("COUNT(*)"), Alias::new("n"));
    if let Some(names) = names {
        stmt.and_where(Expr::col((graph_entities::Entity, graph_entities::Column::Name)).is_in(names.iter().cloned()));
    }
    if let Some(ids) = ids {
        stmt.and_where(Expr::col((graph_entities::Entity, graph_entities::Column::Id)).is_in(ids.iter().copied()));
    }
    if min > 1 {
        stmt.and_having(Expr::cust("COUNT(*)").gte(i64::try_from(min).unwrap_or(i64::MAX)));
    }
    stmt.order_by_expr(Expr::cust("COUNT(*)"), Order::Desc)
        .order_by((graph_entities::Entity, graph_entities::Column::Name), Order::Asc);
    if let Some(limit) = limit {
        stmt.limit(u64::try_from(limit).unwrap_or(u64::MAX));
    }
    summaries(tx, &stmt).await
}

/// The visible entity named `name`, or the one `name` was merged into.
pub(super) async fn entity_named(
    tx: &TenantTx,
    filter: &SearchFilter,
    name: &str,
) -> Result<Option<(Uuid, EntitySummary)>, StoreError> {
    if let Some(found) = counted(tx, filter, Some(&[name.to_owned()]), None, 1, Some(1)).await?.pop() {
        return Ok(Some(found));
    }
    match super::resolve_aliases(tx, &[name.to_owned()]).await?.remove(name) {
        Some(merged_into) => Ok(counted(tx, filter, Some(&[merged_into]), None, 1, Some(1)).await?.pop()),
        None => Ok(None),
    }
}

/// Visible mentions `a` joined to every other mention `b` of the same
/// memory: one row per (memory, entity, co-mentioned entity).
pub(super) fn co_mentions(tx: &TenantTx, filter: &SearchFilter) -> (SelectStatement, Alias, Alias) {
    let (a, b) = (Alias::new("a"), Alias::new("b"));
    let mut stmt = visible_mentions(tx, filter, &a);
    stmt.join_as(
        JoinType::InnerJoin,
        graph_mentions::Entity,
        b.clone(),
        Condition::all()
            .add(
                mentions_col(&b, graph_mentions::Column::MemoryId)
                    .equals((a.clone(), graph_mentions::Column::MemoryId)),
            )
            .add(mentions_col(&b, graph_mentions::Column::OrgId).eq(tx.org_str()))
            .add(
                mentions_col(&b, graph_mentions::Column::EntityId)
                    .not_equals((a.clone(), graph_mentions::Column::EntityId)),
            ),
    );
    (stmt, a, b)
}

/// The entities co-mentioned with `entity` in visible memories, with the
/// number of those memories, most first (then by name).
async fn co_mentioned(
    tx: &TenantTx,
    filter: &SearchFilter,
    entity: Uuid,
    limit: usize,
) -> Result<Vec<(Uuid, EntitySummary)>, StoreError> {
    let (mut stmt, a, b) = co_mentions(tx, filter);
    stmt.and_where(mentions_col(&a, graph_mentions::Column::EntityId).eq(entity));
    with_entity(&mut stmt, tx, &b);
    stmt.expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
        .order_by_expr(Expr::cust("COUNT(*)"), Order::Desc)
        .order_by((graph_entities::Entity, graph_entities::Column::Name), Order::Asc)
        .limit(u64::try_from(limit).unwrap_or(u64::MAX));
    summaries(tx, &stmt).await
}

/// Every `(from, to, to's name)` with `from` in `frontier` and `to`
/// co-mentioned with it in a visible memory.
async fn steps(
    tx: &TenantTx,
    filter: &SearchFilter,
    frontier: &[Uuid],
) -> Result<Vec<(Uuid, Uuid, String)>, StoreError> {
    let mut out = Vec::new();
    for chunk in frontier.chunks(CHUNK) {
        let (mut stmt, a, b) = co_mentions(tx, filter);
        stmt.distinct()
            .expr(mentions_col(&a, graph_mentions::Column::EntityId))
            .expr(mentions_col(&b, graph_mentions::Column::EntityId))
            .column((graph_entities::Entity, graph_entities::Column::Name))
            .join(
                JoinType::InnerJoin,
                graph_entities::Entity,
                Expr::col((graph_entities::Entity, graph_entities::Column::Id))
                    .equals((b.clone(), graph_mentions::Column::EntityId)),
            )
            .and_where(Expr::col((graph_entities::Entity, graph_entities::Column::OrgId)).eq(tx.org_str()))
            .and_where(mentions_col(&a, graph_mentions::Column::EntityId).is_in(chunk.iter().copied()));
        for row in tx.conn().query_all(&stmt).await? {
            out.push((row.try_get_by_index(0)?, row.try_get_by_index(1)?, row.try_get_by_index(2)?));
        }
    }
    Ok(out)
}

async fn network_of(
    tx: &TenantTx,
    filter: &SearchFilter,
    name: &str,
    limit: usize,
) -> Result<Option<EntityNetwork>, StoreError> {
    let Some((id, entity)) = entity_named(tx, filter, name).await? else {
        return Ok(None);
    };
    let shared = co_mentioned(tx, filter, id, limit).await?;
    let ids: Vec<Uuid> = shared.iter().map(|(id, _)| *id).collect();
    let totals: HashMap<Uuid, u64> =
        counted(tx, filter, None, Some(&ids), 1, None).await?.into_iter().map(|(id, s)| (id, s.memories)).collect();
    let neighbours = shared
        .into_iter()
        .map(|(id, mut s)| {
            let shared_memories = s.memories;
            s.memories = totals.get(&id).copied().unwrap_or(shared_memories);
            Neighbour { entity: s, shared_memories }
        })
        .collect();
    Ok(Some(EntityNetwork { entity, neighbours }))
}

async fn path_between(
    tx: &TenantTx,
    filter: &SearchFilter,
    from: &str,
    to: &str,
    max_hops: usize,
) -> Result<Option<Vec<EntitySummary>>, StoreError> {
    let (Some((from_id, from_entity)), Some((to_id, _))) =
        (entity_named(tx, filter, from).await?, entity_named(tx, filter, to).await?)
    else {
        return Ok(None);
    };
    let step = |frontier: Vec<Uuid>| async move { steps(tx, filter, &frontier).await };
    let Some(chain) = shortest_chain((from_id, from_entity.name), &to_id, max_hops, step).await? else {
        return Ok(None);
    };
    let mut by_id: HashMap<Uuid, EntitySummary> =
        counted(tx, filter, None, Some(&chain), 1, None).await?.into_iter().collect();
    Ok(chain.iter().map(|id| by_id.remove(id)).collect::<Option<Vec<_>>>())
}

/// Each query runs in one read transaction of the filter's org.
#[async_trait]
impl EntityGraph for EmbeddedGraphIndex {
    async fn entities(
        &self,
        filter: &SearchFilter,
        min_memories: u64,
        limit: usize,
    ) -> Result<Vec<EntitySummary>, IndexError> {
        let tx = self.db.begin_tenant_read(&filter.org).await?;
        let rows = counted(&tx, filter, None, None, min_memories, Some(limit)).await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(|(_, s)| s).collect())
    }

    async fn entity(&self, filter: &SearchFilter, name: &str) -> Result<Option<EntitySummary>, IndexError> {
        let tx = self.db.begin_tenant_read(&filter.org).await?;
        let found = entity_named(&tx, filter, name).await?;
        tx.commit().await?;
        Ok(found.map(|(_, s)| s))
    }

    async fn network(
        &self,
        filter: &SearchFilter,
        name: &str,
        limit: usize,
    ) -> Result<Option<EntityNetwork>, IndexError> {
        let tx = self.db.begin_tenant_read(&filter.org).await?;
        let network = network_of(&tx, filter, name, limit).await?;
        tx.commit().await?;
        Ok(network)
    }

    async fn path(
        &self,
        filter: &SearchFilter,
        from: &str,
        to: &str,
        max_hops: usize,
    ) -> Result<Option<Vec<EntitySummary>>, IndexError> {
        let tx = self.db.begin_tenant_read(&filter.org).await?;
        let path = path_between(&tx, filter, from, to, max_hops).await?;
        tx.commit().await?;
        Ok(path)
    }
}
