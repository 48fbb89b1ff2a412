//! [`GraphAnalytics`] on the embedded graph tables: the counts and rows the
//! shared algorithms need, all under the caller's [`SearchFilter`] (joined
//! to `memories`, as in `entity_queries`), and the merge of entities.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use loci_core::{MemoryId, OrgId, UserId};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, LikeExpr, Order, Query, SelectStatement};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use loci_index::analytics::{
    EntityAlias, EntityMemories, GraphStats, MentionGraph, MergeRefusal, MergeReport, RelationFacts,
};
use loci_index::extract::{EntityKind, ExtractedEntity};
use loci_index::relations::{ExtractedRelation, Predicate, RelationStatement};
use loci_index::{EntitySummary, GraphAnalytics, IndexError, SearchFilter};

use super::entity_queries::{co_mentions, counted, entity_named, summaries, visible_mentions, with_entity};
use super::{CHUNK, EmbeddedGraphIndex, MemoryGraph, filter, lock_org, mentions_col, replace_mentions};
use crate::entities::{graph_aliases, graph_entities, graph_mentions, graph_relations, memories};
use crate::repo::memory_analytics::{limit_of, numbers, visible_memories};
use crate::{StoreError, TenantTx};
use loci_core::model::now;

/// Counts from the visible mention graph (read once, in memory order):
/// a distinct-pairs self-join of every visible mention costs far more
/// than counting the pairs of each memory's few entities here.
async fn stats(tx: &TenantTx, filter: &SearchFilter) -> Result<GraphStats, StoreError> {
    let mut all = visible_memories(tx, filter);
    all.expr(Expr::cust("COUNT(*)"));
    let [memories] = numbers(tx, &all).await?;
    let graph = mention_graph(tx, filter, loci_index::analytics::MAX_GRAPH_MENTIONS).await?;
    Ok(GraphStats::of(memories, &graph))
}

async fn mention_graph(tx: &TenantTx, filter: &SearchFilter, max: usize) -> Result<MentionGraph, StoreError> {
    let gm = Alias::new("gm");
    let mut stmt = visible_mentions(tx, filter, &gm);
    stmt.expr(mentions_col(&gm, graph_mentions::Column::MemoryId))
        .expr(mentions_col(&gm, graph_mentions::Column::EntityId))
        .order_by((gm.clone(), graph_mentions::Column::MemoryId), Order::Asc)
        .order_by((gm.clone(), graph_mentions::Column::EntityId), Order::Asc)
        .limit(limit_of(max.saturating_add(1)));
    let rows = tx.conn().query_all(&stmt).await?;
    let mut pairs: Vec<(Uuid, Uuid)> = Vec::with_capacity(rows.len());
    for row in &rows {
        pairs.push((row.try_get_by_index(0)?, row.try_get_by_index(1)?));
    }
    let truncated = pairs.len() > max;
    if truncated {
        // The last memory may be cut short: leave it out whole.
        pairs.truncate(max);
        if let Some(&(last, _)) = pairs.last() {
            pairs.retain(|(m, _)| *m != last);
        }
    }

    let ids: Vec<Uuid> = pairs.iter().map(|(_, e)| *e).collect::<BTreeSet<_>>().into_iter().collect();
    let mut entities: Vec<(Uuid, EntitySummary)> = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<(Uuid, String, String, String)> = graph_entities::Entity::find()
            .select_only()
            .column(graph_entities::Column::Id)
            .column(graph_entities::Column::Name)
            .column(graph_entities::Column::DisplayName)
            .column(graph_entities::Column::Kind)
            .filter(graph_entities::Column::OrgId.eq(tx.org_str()))
            .filter(graph_entities::Column::Id.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(tx.conn())
            .await?;
        entities.extend(
            rows.into_iter()
                .map(|(id, name, display_name, kind)| (id, EntitySummary { name, display_name, kind, memories: 0 })),
        );
    }
    entities.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    let index: HashMap<Uuid, u32> =
        entities.iter().enumerate().map(|(i, (id, _))| (*id, u32::try_from(i).unwrap_or(u32::MAX))).collect();

    let mut memories: Vec<(MemoryId, Vec<u32>)> = Vec::new();
    for (memory, entity) in pairs {
        let Some(&i) = index.get(&entity) else { continue };
        if let Some(e) = entities.get_mut(i as usize) {
            e.1.memories += 1;
        }
        match memories.last_mut() {
            Some((m, list)) if m.as_uuid() == memory => list.push(i),
            _ => memories.push((MemoryId::from_uuid(memory), vec![i])),
        }
    }
    for (_, list) in &mut memories {
        list.sort_unstable();
    }
    Ok(MentionGraph { entities: entities.into_iter().map(|(_, e)| e).collect(), memories, truncated })
}

/// `%`, `_` and the escape character taken literally in a LIKE pattern.
fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

async fn search_entities(
    tx: &TenantTx,
    filter: &SearchFilter,
    needle: &str,
    limit: usize,
) -> Result<Vec<EntitySummary>, StoreError> {
    let gm = Alias::new("gm");
    let name = || Expr::col((graph_entities::Entity, graph_entities::Column::Name));
    let literal = like_literal(needle);
    let mut stmt = visible_mentions(tx, filter, &gm);
    with_entity(&mut stmt, tx, &gm);
    stmt.expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
        .and_where(name().like(LikeExpr::new(format!("%{literal}%")).escape('\\')))
        .order_by_expr(
            Expr::case(name().eq(needle), 0)
                .case(name().like(LikeExpr::new(format!("{literal}%")).escape('\\')), 1)
                .finally(2)
                .into(),
            Order::Asc,
        )
        .order_by_expr(Expr::cust("COUNT(*)"), Order::Desc)
        .order_by((graph_entities::Entity, graph_entities::Column::Name), Order::Asc)
        .limit(limit_of(limit));
    Ok(summaries(tx, &stmt).await?.into_iter().map(|(_, s)| s).collect())
}

async fn entity_memories(
    tx: &TenantTx,
    filter: &SearchFilter,
    name: &str,
    limit: usize,
    offset: usize,
) -> Result<Option<EntityMemories>, StoreError> {
    let Some((id, entity)) = entity_named(tx, filter, name).await? else {
        return Ok(None);
    };
    let gm = Alias::new("gm");
    let mut stmt = visible_mentions(tx, filter, &gm);
    stmt.column((memories::Entity, memories::Column::Id))
        .and_where(mentions_col(&gm, graph_mentions::Column::EntityId).eq(id))
        .order_by((memories::Entity, memories::Column::CreatedAt), Order::Desc)
        .order_by((memories::Entity, memories::Column::Id), Order::Desc)
        .limit(limit_of(limit))
        .offset(limit_of(offset));
    let rows = tx.conn().query_all(&stmt).await?;
    let ids = rows
        .iter()
        .map(|row| Ok(MemoryId::from_uuid(row.try_get_by_index::<Uuid>(0)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Some(EntityMemories { entity, ids }))
}

/// `graph_relations AS r` joined to the memories the filter admits:
/// `(subject, predicate, object, memory, created_at)` rows.
fn visible_statements(tx: &TenantTx, filter: &SearchFilter) -> SelectStatement {
    let r = Alias::new("r");
    let col = |c: graph_relations::Column| Expr::col((r.clone(), c));
    Query::select()
        .expr(col(graph_relations::Column::SubjectId))
        .expr(col(graph_relations::Column::Predicate))
        .expr(col(graph_relations::Column::ObjectId))
        .column((memories::Entity, memories::Column::Id))
        .column((memories::Entity, memories::Column::CreatedAt))
        .from_as(graph_relations::Entity, r.clone())
        .join(
            sea_orm::sea_query::JoinType::InnerJoin,
            memories::Entity,
            Expr::col((memories::Entity, memories::Column::Id)).equals((r.clone(), graph_relations::Column::MemoryId)),
        )
        .and_where(col(graph_relations::Column::OrgId).eq(tx.org_str()))
        .cond_where(filter::search_filter_condition(tx, filter))
        .order_by((memories::Entity, memories::Column::CreatedAt), Order::Asc)
        .order_by((memories::Entity, memories::Column::Id), Order::Asc)
        .to_owned()
}

type StatementRow = (Uuid, String, Uuid, Uuid, DateTime<Utc>);

async fn statement_rows(tx: &TenantTx, stmt: &SelectStatement) -> Result<Vec<StatementRow>, StoreError> {
    let rows = tx.conn().query_all(stmt).await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get_by_index(0)?,
                row.try_get_by_index(1)?,
                row.try_get_by_index(2)?,
                row.try_get_by_index(3)?,
                row.try_get_by_index(4)?,
            ))
        })
        .collect()
}

async fn relation_statements(
    tx: &TenantTx,
    filter: &SearchFilter,
    name: &str,
    max: usize,
) -> Result<Option<RelationFacts>, StoreError> {
    let Some((id, entity)) = entity_named(tx, filter, name).await? else {
        return Ok(None);
    };
    let r = Alias::new("r");
    let col = |c: graph_relations::Column| Expr::col((r.clone(), c));
    let mut around = visible_statements(tx, filter);
    around
        .cond_where(
            sea_orm::sea_query::Condition::any()
                .add(col(graph_relations::Column::SubjectId).eq(id))
                .add(col(graph_relations::Column::ObjectId).eq(id)),
        )
        .limit(limit_of(max.saturating_add(1)));
    let mut rows = statement_rows(tx, &around).await?;
    let truncated = rows.len() > max;
    rows.truncate(max);
    // When did the subjects of exclusive relations state another object?
    let exclusive: Vec<&str> = Predicate::ALL.iter().filter(|p| p.exclusive()).map(|p| p.as_str()).collect();
    let subjects: BTreeSet<Uuid> = rows
        .iter()
        .filter(|(s, p, _, _, _)| *s != id && exclusive.contains(&p.as_str()))
        .map(|(s, _, _, _, _)| *s)
        .collect();
    if !subjects.is_empty() {
        let mut others = visible_statements(tx, filter);
        others
            .and_where(col(graph_relations::Column::SubjectId).is_in(subjects.into_iter().take(CHUNK)))
            .and_where(col(graph_relations::Column::Predicate).is_in(exclusive.iter().map(|p| (*p).to_owned())))
            .and_where(col(graph_relations::Column::ObjectId).ne(id))
            .limit(limit_of(max));
        rows.extend(statement_rows(tx, &others).await?);
    }
    let ids: Vec<Uuid> = rows
        .iter()
        .flat_map(|(s, _, o, _, _)| [*s, *o])
        .filter(|e| *e != id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut named: HashMap<Uuid, EntitySummary> = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        named.extend(counted(tx, filter, None, Some(chunk), 1, None).await?);
    }
    named.insert(id, entity.clone());
    let statements = rows
        .into_iter()
        .filter_map(|(s, p, o, memory, stated_at)| {
            Some(RelationStatement {
                subject: named.get(&s)?.name.clone(),
                predicate: Predicate::parse(&p)?,
                object: named.get(&o)?.name.clone(),
                memory: MemoryId::from_uuid(memory),
                stated_at,
            })
        })
        .collect();
    named.remove(&id);
    let mut entities: Vec<EntitySummary> = named.into_values().collect();
    entities.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Some(RelationFacts { entity, statements, entities, truncated }))
}

/// Visible memories mentioning `source`, and of those, mentioning `target`.
async fn merge_counts(
    tx: &TenantTx,
    filter: &SearchFilter,
    source: Uuid,
    target: Uuid,
) -> Result<(u64, u64), StoreError> {
    let (mut stmt, a, b) = co_mentions(tx, filter);
    stmt.expr(Expr::cust("COUNT(*)"))
        .and_where(mentions_col(&a, graph_mentions::Column::EntityId).eq(source))
        .and_where(mentions_col(&b, graph_mentions::Column::EntityId).eq(target));
    let [both] = numbers(tx, &stmt).await?;
    let moved = counted(tx, filter, None, Some(&[source]), 1, Some(1)).await?.pop().map_or(0, |(_, s)| s.memories);
    Ok((moved, both))
}

async fn alias_of(tx: &TenantTx, name: &str) -> Result<Option<String>, StoreError> {
    Ok(graph_aliases::Entity::find()
        .select_only()
        .column(graph_aliases::Column::EntityName)
        .filter(graph_aliases::Column::OrgId.eq(tx.org_str()))
        .filter(graph_aliases::Column::Alias.eq(name))
        .into_tuple::<String>()
        .one(tx.conn())
        .await?)
}

/// Rewrites the mentions of `source` as mentions of `target` in every
/// memory of the org, through the same path as indexing (edge weights and
/// orphans kept exact). Returns the number of memories changed.
async fn move_mentions(tx: &TenantTx, source: Uuid, target: &EntitySummary) -> Result<u64, StoreError> {
    let memory_ids: Vec<Uuid> = graph_mentions::Entity::find()
        .select_only()
        .column(graph_mentions::Column::MemoryId)
        .filter(graph_mentions::Column::OrgId.eq(tx.org_str()))
        .filter(graph_mentions::Column::EntityId.eq(source))
        .into_tuple()
        .all(tx.conn())
        .await?;
    let mut current: BTreeMap<Uuid, MemoryGraph> = BTreeMap::new();
    let mut names: HashMap<Uuid, String> = HashMap::from([(source, target.name.clone())]);
    for chunk in memory_ids.chunks(CHUNK) {
        let rows: Vec<(Uuid, Uuid, String, String, String)> = graph_mentions::Entity::find()
            .select_only()
            .column(graph_mentions::Column::MemoryId)
            .column(graph_mentions::Column::EntityId)
            .column(graph_mentions::Column::SourceKind)
            .column_as(Expr::col((graph_entities::Entity, graph_entities::Column::Name)), "name")
            .column_as(Expr::col((graph_entities::Entity, graph_entities::Column::DisplayName)), "display_name")
            .join(
                sea_orm::JoinType::InnerJoin,
                graph_mentions::Entity::belongs_to(graph_entities::Entity)
                    .from(graph_mentions::Column::EntityId)
                    .to(graph_entities::Column::Id)
                    .into(),
            )
            .filter(graph_mentions::Column::OrgId.eq(tx.org_str()))
            .filter(graph_mentions::Column::MemoryId.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(tx.conn())
            .await?;
        for (memory, entity, kind, name, display) in rows {
            let kind = EntityKind::parse(&kind).unwrap_or(EntityKind::Term);
            let mention = if entity == source {
                ExtractedEntity { name: target.name.clone(), display: target.display_name.clone(), kind }
            } else {
                names.insert(entity, name.clone());
                ExtractedEntity { name, display, kind }
            };
            current.entry(memory).or_default().entities.push(mention);
        }
        let relations: Vec<(Uuid, Uuid, String, Uuid)> = graph_relations::Entity::find()
            .select_only()
            .column(graph_relations::Column::MemoryId)
            .column(graph_relations::Column::SubjectId)
            .column(graph_relations::Column::Predicate)
            .column(graph_relations::Column::ObjectId)
            .filter(graph_relations::Column::OrgId.eq(tx.org_str()))
            .filter(graph_relations::Column::MemoryId.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(tx.conn())
            .await?;
        for (memory, subject, predicate, object) in relations {
            if let (Some(subject), Some(predicate), Some(object)) =
                (names.get(&subject), Predicate::parse(&predicate), names.get(&object))
            {
                current.entry(memory).or_default().relations.push(ExtractedRelation {
                    subject: subject.clone(),
                    predicate,
                    object: object.clone(),
                });
            }
        }
    }
    let changes: Vec<(Uuid, MemoryGraph)> = current.into_iter().collect();
    replace_mentions(tx, &changes).await?;
    Ok(changes.len() as u64)
}

async fn merge(
    tx: &TenantTx,
    filter: &SearchFilter,
    source: &str,
    target: &str,
    actor: &UserId,
    apply: bool,
) -> Result<Result<MergeReport, MergeRefusal>, StoreError> {
    if apply {
        lock_org(tx).await?;
    }
    let Some((target_id, target_entity)) = entity_named(tx, filter, target).await? else {
        return Ok(Err(MergeRefusal::UnknownEntity(target.to_owned())));
    };
    let Some((source_id, _)) = counted(tx, filter, Some(&[source.to_owned()]), None, 1, Some(1)).await?.pop() else {
        // Gone already: merged before, into this target or elsewhere.
        return Ok(MergeReport::for_gone_source(source, &target_entity.name, alias_of(tx, source).await?));
    };
    if source_id == target_id {
        return Ok(Err(MergeRefusal::SameEntity(target_entity.name)));
    }
    let (moved, both) = merge_counts(tx, filter, source_id, target_id).await?;
    let mut report = MergeReport {
        source: source.to_owned(),
        target: target_entity.name.clone(),
        memories_moved: moved,
        memories_mentioning_both: both,
        already_merged: false,
        applied: false,
    };
    if !apply {
        return Ok(Ok(report));
    }
    // Earlier aliases of `source` follow it; then `source` becomes one.
    graph_aliases::Entity::update_many()
        .col_expr(graph_aliases::Column::EntityName, Expr::value(target_entity.name.clone()))
        .filter(graph_aliases::Column::OrgId.eq(tx.org_str()))
        .filter(graph_aliases::Column::EntityName.eq(source))
        .exec(tx.conn())
        .await?;
    let memories_moved = move_mentions(tx, source_id, &target_entity).await?;
    graph_aliases::Entity::insert(graph_aliases::ActiveModel {
        org_id: Set(tx.org_str()),
        alias: Set(source.to_owned()),
        entity_name: Set(target_entity.name.clone()),
        merged_by: Set(actor.as_uuid()),
        merged_at: Set(now()),
        memories_moved: Set(i64::try_from(memories_moved).unwrap_or(i64::MAX)),
    })
    .exec_without_returning(tx.conn())
    .await?;
    report.applied = true;
    Ok(Ok(report))
}

async fn aliases(tx: &TenantTx, entity: Option<&str>) -> Result<Vec<EntityAlias>, StoreError> {
    let mut query = graph_aliases::Entity::find().filter(graph_aliases::Column::OrgId.eq(tx.org_str()));
    if let Some(entity) = entity {
        query = query.filter(graph_aliases::Column::EntityName.eq(entity));
    }
    let rows = query
        .order_by_desc(graph_aliases::Column::MergedAt)
        .order_by_asc(graph_aliases::Column::Alias)
        .limit(1000)
        .all(tx.conn())
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| EntityAlias {
            alias: r.alias,
            entity: r.entity_name,
            merged_by: UserId::from_uuid(r.merged_by),
            merged_at: r.merged_at,
            memories_moved: u64::try_from(r.memories_moved).unwrap_or(0),
        })
        .collect())
}

/// Reads run in one read transaction of the filter's org; the merge in one
/// write transaction holding the org's graph writer lock.
#[async_trait]
impl GraphAnalytics for EmbeddedGraphIndex {
    async fn stats(&self, filter: &SearchFilter) -> Result<GraphStats, IndexError> {
        let tx = self.db.begin_tenant_read(&filter.org).await?;
        let out = stats(&tx, filter).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn mention_graph(&self, filter: &SearchFilter, max_mentions: usize) -> Result<MentionGraph, IndexError> {
        let tx = self.db.begin_tenant_read(&filter.org).await?;
        let out = mention_graph(&tx, filter, max_mentions).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn search_entities(
        &self,
        filter: &SearchFilter,
        needle: &str,
        limit: usize,
    ) -> Result<Vec<EntitySummary>, IndexError> {
        let tx = self.db.begin_tenant_read(&filter.org).await?;
        let out = search_entities(&tx, filter, needle, limit).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn entity_memories(
        &self,
        filter: &SearchFilter,
        name: &str,
        limit: usize,
        offset: usize,
    ) -> Result<Option<EntityMemories>, IndexError> {
        let tx = self.db.begin_tenant_read(&filter.org).await?;
        let out = entity_memories(&tx, filter, name, limit, offset).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn relation_statements(
        &self,
        filter: &SearchFilter,
        name: &str,
        max: usize,
    ) -> Result<Option<RelationFacts>, IndexError> {
        let tx = self.db.begin_tenant_read(&filter.org).await?;
        let out = relation_statements(&tx, filter, name, max).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn merge(
        &self,
        filter: &SearchFilter,
        source: &str,
        target: &str,
        actor: &UserId,
        apply: bool,
    ) -> Result<Result<MergeReport, MergeRefusal>, IndexError> {
        let tx = if apply {
            self.db.begin_tenant(&filter.org).await?
        } else {
            self.db.begin_tenant_read(&filter.org).await?
        };
        let out = merge(&tx, filter, source, target, actor, apply).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn aliases(&self, org: &OrgId, entity: Option<&str>) -> Result<Vec<EntityAlias>, IndexError> {
        let tx = self.db.begin_tenant_read(org).await?;
        let out = aliases(&tx, entity).await?;
        tx.commit().await?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(like_literal(r"50%_a\b"), r"50\%\_a\\b");
    }
}
