//! The embedded graph index: tables in the relational store.
//!
//! - `graph_entities`: the entities of an org, one row per normalised name
//!   (unique per org), with the name as first written and its
//!   [`EntityKind`] (the highest kind it was ever found with).
//! - `graph_mentions`: which memory mentions which entity, with the kind
//!   that memory's text gave it (`source_kind`).
//! - `graph_edges`: co-mention edges, one row per entity pair with `a < b`,
//!   whose `weight` is the number of memories mentioning both. Kept exact
//!   incrementally: every upsert and delete applies the difference between a
//!   memory's old and new entity pairs.
//! - `graph_relations`: the typed relations each memory states between two
//!   of its entities (`loci_index::relations`), replaced with its mentions.
//! - `graph_aliases`: names merged into another entity (see
//!   `analytics`). Extraction and name lookups follow them, so a merged name
//!   never comes back; `clear` (reindexing) keeps them.
//!
//! Queries join `memories`, the source of truth, so a hit always passes the
//! store's own visibility SQL and the current state and fields of the memory
//! (see [`SearchFilter`]); nothing but ids is copied into the index. Every
//! statement runs in a [`TenantTx`] and filters on its org; on PostgreSQL
//! the three tables are under row-level security as well. Writers of one org
//! are serialised (a transaction-scoped advisory lock on PostgreSQL, the one
//! writer connection on SQLite), so concurrent indexers cannot corrupt the
//! edge weights or drop an entity another writer is about to mention.
//! Entities that no memory mentions any more are deleted.
//!
//! Ranking of [`GraphIndex::memories_mentioning`]: a memory scores the
//! inverse document frequency of each query entity it mentions (so a rare
//! name counts for more than a common one, and an entity in more than
//! [`COMMON_ENTITY_SHARE`] of the org's memories not at all), plus
//! [`HOP_WEIGHT`] per *neighbour* entity it mentions, counting at most
//! [`MAX_HOPS_COUNTED`] of them. Neighbours are entities
//! joined to a query entity by an edge of weight at least
//! [`MIN_EDGE_WEIGHT`] (the [`MAX_NEIGHBOURS`] strongest). Ties go to the
//! newer memory, then the greater id.

mod analytics;
mod entity_queries;

pub(crate) use entity_queries::count;
pub(crate) mod filter;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use async_trait::async_trait;
use loci_core::{MemoryId, OrgId};
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, Func, JoinType, OnConflict, Query, SelectStatement};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, Order, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};
use uuid::Uuid;

use loci_index::extract::{
    EntityKind, ExtractedEntity, MAX_NAME_CHARS, MAX_QUERY_ENTITIES, MAX_QUERY_TOKENS, batch_entities, doc_entities,
    normalise, query_candidates,
};
use loci_index::relations::{ExtractedRelation, doc_relations};

use crate::entities::{graph_aliases, graph_edges, graph_entities, graph_mentions, graph_relations, memories};
use crate::repo::memories::visibility_condition;
use crate::{Database, StoreError, TenantTx};
use loci_core::model::now;
use loci_index::{GraphIndex, Hit, IndexDoc, IndexError, SearchFilter};

/// Most neighbour entities one query expands to.
pub const MAX_NEIGHBOURS: usize = 32;
/// Least weight of an edge that expands a query.
pub const MIN_EDGE_WEIGHT: i32 = 2;
/// Score of a mentioned neighbour entity.
pub const HOP_WEIGHT: f32 = 0.25;
/// Most neighbour entities counted in one memory's score.
pub const MAX_HOPS_COUNTED: i64 = 3;

/// Values per `IN` list or multi-row insert (well under both engines'
/// bound-parameter limits).
pub(crate) const CHUNK: usize = 500;
/// First key of the PostgreSQL advisory lock serialising one org's writers
/// (the second is the hash of the org).
const LOCK_CLASS: i32 = 0x4c47_5248;

/// The graph index over the relational store (see the module docs).
#[derive(Debug, Clone)]
pub struct EmbeddedGraphIndex {
    db: Database,
}

impl EmbeddedGraphIndex {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn mentions_col(alias: &Alias, col: graph_mentions::Column) -> Expr {
    Expr::col((alias.clone(), col))
}

/// Serialises the graph writers of the transaction's org (PostgreSQL; the
/// SQLite writer pool has one connection, which serialises already).
async fn lock_org(tx: &TenantTx) -> Result<(), StoreError> {
    if tx.conn().get_database_backend() == DbBackend::Postgres {
        tx.conn()
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                [LOCK_CLASS.into(), tx.org_str().into()],
            ))
            .await?;
    }
    Ok(())
}

/// Which of `ids` are memories of the transaction's org (in any state).
async fn existing_memories(tx: &TenantTx, ids: &[Uuid]) -> Result<HashSet<Uuid>, StoreError> {
    let mut out = HashSet::new();
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<Uuid> = memories::Entity::find()
            .select_only()
            .column(memories::Column::Id)
            .filter(memories::Column::OrgId.eq(tx.org_str()))
            .filter(memories::Column::Id.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(tx.conn())
            .await?;
        out.extend(rows);
    }
    Ok(out)
}

/// Ids of the named entities, created on first mention; a stored kind below
/// the wanted one is raised.
async fn ensure_entities(
    tx: &TenantTx,
    wanted: &BTreeMap<String, (String, EntityKind)>,
) -> Result<HashMap<String, Uuid>, StoreError> {
    let names: Vec<&String> = wanted.keys().collect();
    let mut ids = HashMap::new();
    for chunk in names.chunks(CHUNK) {
        let rows = chunk.iter().filter_map(|name| {
            let (display, kind) = wanted.get(*name)?;
            Some(graph_entities::ActiveModel {
                id: Set(Uuid::now_v7()),
                org_id: Set(tx.org_str()),
                name: Set((*name).clone()),
                display_name: Set(display.chars().take(MAX_NAME_CHARS).collect()),
                kind: Set(kind.as_str().to_owned()),
                created_at: Set(now()),
            })
        });
        graph_entities::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([graph_entities::Column::OrgId, graph_entities::Column::Name])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(tx.conn())
            .await?;
        let stored = graph_entities::Entity::find()
            .filter(graph_entities::Column::OrgId.eq(tx.org_str()))
            .filter(graph_entities::Column::Name.is_in(chunk.iter().map(|n| (*n).clone())))
            .all(tx.conn())
            .await?;
        for entity in stored {
            if let Some((_, kind)) = wanted.get(&entity.name)
                && EntityKind::parse(&entity.kind).is_none_or(|have| have < *kind)
            {
                graph_entities::Entity::update_many()
                    .col_expr(graph_entities::Column::Kind, Expr::value(kind.as_str()))
                    .filter(graph_entities::Column::OrgId.eq(tx.org_str()))
                    .filter(graph_entities::Column::Id.eq(entity.id))
                    .exec(tx.conn())
                    .await?;
            }
            ids.insert(entity.name, entity.id);
        }
    }
    Ok(ids)
}

/// Every pair `(a, b)` with `a < b` of the set.
fn pairs(set: &BTreeSet<Uuid>) -> impl Iterator<Item = (Uuid, Uuid)> + '_ {
    set.iter().enumerate().flat_map(move |(i, a)| set.iter().skip(i + 1).map(move |b| (*a, *b)))
}

/// Adds the weight deltas to the edges (creating missing ones), then drops
/// the edges left without weight.
async fn apply_edge_deltas(tx: &TenantTx, deltas: &BTreeMap<(Uuid, Uuid), i32>) -> Result<(), StoreError> {
    let rows: Vec<graph_edges::ActiveModel> = deltas
        .iter()
        .map(|((a, b), delta)| graph_edges::ActiveModel {
            org_id: Set(tx.org_str()),
            a: Set(*a),
            b: Set(*b),
            weight: Set(*delta),
        })
        .collect();
    for chunk in rows.chunks(CHUNK) {
        graph_edges::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([graph_edges::Column::OrgId, graph_edges::Column::A, graph_edges::Column::B])
                    .value(
                        graph_edges::Column::Weight,
                        Expr::col((graph_edges::Entity, graph_edges::Column::Weight))
                            .add(Expr::col((Alias::new("excluded"), graph_edges::Column::Weight))),
                    )
                    .to_owned(),
            )
            .exec_without_returning(tx.conn())
            .await?;
    }
    let lowered: Vec<Uuid> =
        deltas.iter().filter(|(_, d)| **d < 0).map(|((a, _), _)| *a).collect::<BTreeSet<_>>().into_iter().collect();
    for chunk in lowered.chunks(CHUNK) {
        graph_edges::Entity::delete_many()
            .filter(graph_edges::Column::OrgId.eq(tx.org_str()))
            .filter(graph_edges::Column::A.is_in(chunk.iter().copied()))
            .filter(graph_edges::Column::Weight.lte(0))
            .exec(tx.conn())
            .await?;
    }
    Ok(())
}

/// Deletes those of `candidates` that no memory mentions any more.
async fn remove_orphans(tx: &TenantTx, candidates: &BTreeSet<Uuid>) -> Result<(), StoreError> {
    let candidates: Vec<Uuid> = candidates.iter().copied().collect();
    let mentioned = Query::select()
        .expr(Expr::val(1))
        .from(graph_mentions::Entity)
        .and_where(
            Expr::col((graph_mentions::Entity, graph_mentions::Column::OrgId))
                .equals((graph_entities::Entity, graph_entities::Column::OrgId)),
        )
        .and_where(
            Expr::col((graph_mentions::Entity, graph_mentions::Column::EntityId))
                .equals((graph_entities::Entity, graph_entities::Column::Id)),
        )
        .to_owned();
    for chunk in candidates.chunks(CHUNK) {
        graph_entities::Entity::delete_many()
            .filter(graph_entities::Column::OrgId.eq(tx.org_str()))
            .filter(graph_entities::Column::Id.is_in(chunk.iter().copied()))
            .filter(Expr::exists(mentioned.clone()).not())
            .exec(tx.conn())
            .await?;
    }
    Ok(())
}

/// What one memory contributes to the graph.
#[derive(Debug, Clone, Default)]
struct MemoryGraph {
    entities: Vec<ExtractedEntity>,
    relations: Vec<ExtractedRelation>,
}

impl MemoryGraph {
    fn of(doc: &IndexDoc) -> Self {
        let entities = doc_entities(doc);
        let relations = doc_relations(doc, &entities);
        Self { entities, relations }
    }
}

/// Makes each memory of `changes` mention exactly its entities and state
/// exactly its relations (none: the memory leaves the graph), keeping the
/// edge weights exact and deleting entities nothing mentions any more.
/// Memory ids must be distinct.
async fn replace_mentions(tx: &TenantTx, changes: &[(Uuid, MemoryGraph)]) -> Result<(), StoreError> {
    if changes.is_empty() {
        return Ok(());
    }
    let org = tx.org_str();
    let memory_ids: Vec<Uuid> = changes.iter().map(|(id, _)| *id).collect();

    let mut before: HashMap<Uuid, BTreeSet<Uuid>> = HashMap::new();
    for chunk in memory_ids.chunks(CHUNK) {
        let rows: Vec<(Uuid, Uuid)> = graph_mentions::Entity::find()
            .select_only()
            .column(graph_mentions::Column::MemoryId)
            .column(graph_mentions::Column::EntityId)
            .filter(graph_mentions::Column::OrgId.eq(org.as_str()))
            .filter(graph_mentions::Column::MemoryId.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(tx.conn())
            .await?;
        for (memory, entity) in rows {
            before.entry(memory).or_default().insert(entity);
        }
    }

    // Merged names land on the entity they were merged into.
    let extracted: Vec<String> =
        changes.iter().flat_map(|(_, graph)| graph.entities.iter().map(|e| e.name.clone())).collect();
    let aliases = resolve_aliases(tx, &extracted).await?;
    let key = |name: &String| aliases.get(name).unwrap_or(name).clone();
    let wanted = batch_entities(changes.iter().flat_map(|(_, graph)| &graph.entities), &aliases);
    let ids = ensure_entities(tx, &wanted).await?;

    let mut after: HashMap<Uuid, BTreeSet<Uuid>> = HashMap::new();
    let mut rows: Vec<graph_mentions::ActiveModel> = Vec::new();
    let mut relation_rows: BTreeSet<(Uuid, Uuid, &'static str, Uuid)> = BTreeSet::new();
    for (memory, graph) in changes {
        for r in &graph.relations {
            if let (Some(s), Some(o)) = (ids.get(&key(&r.subject)), ids.get(&key(&r.object)))
                && s != o
            {
                relation_rows.insert((*memory, *s, r.predicate.as_str(), *o));
            }
        }
        let set = after.entry(*memory).or_default();
        for entity in &graph.entities {
            if let Some(id) = ids.get(&key(&entity.name))
                && set.insert(*id)
            {
                rows.push(graph_mentions::ActiveModel {
                    org_id: Set(org.clone()),
                    memory_id: Set(*memory),
                    entity_id: Set(*id),
                    source_kind: Set(entity.kind.as_str().to_owned()),
                });
            }
        }
    }

    let empty = BTreeSet::new();
    let mut deltas: BTreeMap<(Uuid, Uuid), i32> = BTreeMap::new();
    let mut dropped: BTreeSet<Uuid> = BTreeSet::new();
    for memory in &memory_ids {
        let old = before.get(memory).unwrap_or(&empty);
        let new = after.get(memory).unwrap_or(&empty);
        for (a, b) in pairs(old).filter(|(a, b)| !(new.contains(a) && new.contains(b))) {
            *deltas.entry((a, b)).or_default() -= 1;
        }
        for (a, b) in pairs(new).filter(|(a, b)| !(old.contains(a) && old.contains(b))) {
            *deltas.entry((a, b)).or_default() += 1;
        }
        dropped.extend(old.difference(new));
    }
    deltas.retain(|_, delta| *delta != 0);

    for chunk in memory_ids.chunks(CHUNK) {
        graph_relations::Entity::delete_many()
            .filter(graph_relations::Column::OrgId.eq(org.as_str()))
            .filter(graph_relations::Column::MemoryId.is_in(chunk.iter().copied()))
            .exec(tx.conn())
            .await?;
        graph_mentions::Entity::delete_many()
            .filter(graph_mentions::Column::OrgId.eq(org.as_str()))
            .filter(graph_mentions::Column::MemoryId.is_in(chunk.iter().copied()))
            .exec(tx.conn())
            .await?;
    }
    for chunk in rows.chunks(CHUNK) {
        graph_mentions::Entity::insert_many(chunk.to_vec()).exec_without_returning(tx.conn()).await?;
    }
    let relation_rows: Vec<graph_relations::ActiveModel> = relation_rows
        .into_iter()
        .map(|(memory, subject, predicate, object)| graph_relations::ActiveModel {
            org_id: Set(org.clone()),
            memory_id: Set(memory),
            subject_id: Set(subject),
            predicate: Set(predicate.to_owned()),
            object_id: Set(object),
        })
        .collect();
    for chunk in relation_rows.chunks(CHUNK) {
        graph_relations::Entity::insert_many(chunk.to_vec()).exec_without_returning(tx.conn()).await?;
    }
    apply_edge_deltas(tx, &deltas).await?;
    remove_orphans(tx, &dropped).await
}

/// Takes `ids` out of the graph (their mentions and relations, the edge
/// weights they gave, the entities only they mentioned), in the caller's
/// transaction; the number of mentions removed.
pub(crate) async fn forget_memories(tx: &TenantTx, ids: &[MemoryId]) -> Result<u64, StoreError> {
    let mut removed = 0;
    for chunk in ids.chunks(CHUNK) {
        removed += graph_mentions::Entity::find()
            .filter(graph_mentions::Column::OrgId.eq(tx.org_str()))
            .filter(graph_mentions::Column::MemoryId.is_in(chunk.iter().map(|id| id.as_uuid())))
            .count(tx.conn())
            .await?;
        let changes: Vec<(Uuid, MemoryGraph)> = chunk.iter().map(|id| (id.as_uuid(), MemoryGraph::default())).collect();
        replace_mentions(tx, &changes).await?;
    }
    Ok(removed)
}

/// The entity each of `names` that was merged away is now: alias -> name.
async fn resolve_aliases(tx: &TenantTx, names: &[String]) -> Result<HashMap<String, String>, StoreError> {
    let names: BTreeSet<&String> = names.iter().collect();
    let names: Vec<&String> = names.into_iter().collect();
    let mut out = HashMap::new();
    for chunk in names.chunks(CHUNK) {
        let rows: Vec<(String, String)> = graph_aliases::Entity::find()
            .select_only()
            .column(graph_aliases::Column::Alias)
            .column(graph_aliases::Column::EntityName)
            .filter(graph_aliases::Column::OrgId.eq(tx.org_str()))
            .filter(graph_aliases::Column::Alias.is_in(chunk.iter().map(|n| (*n).clone())))
            .into_tuple()
            .all(tx.conn())
            .await?;
        out.extend(rows);
    }
    Ok(out)
}

/// Ids of the named entities of the org (merged names count as the entity
/// they were merged into).
async fn entity_ids(tx: &TenantTx, names: &[String]) -> Result<Vec<Uuid>, StoreError> {
    let aliases = resolve_aliases(tx, names).await?;
    let names: BTreeSet<String> = names.iter().map(|n| aliases.get(n).unwrap_or(n).clone()).collect();
    Ok(graph_entities::Entity::find()
        .select_only()
        .column(graph_entities::Column::Id)
        .filter(graph_entities::Column::OrgId.eq(tx.org_str()))
        .filter(graph_entities::Column::Name.is_in(names))
        .order_by_asc(graph_entities::Column::Id)
        .into_tuple()
        .all(tx.conn())
        .await?)
}

/// Entities joined to one of `direct` by an edge of weight at least
/// [`MIN_EDGE_WEIGHT`], strongest first, at most [`MAX_NEIGHBOURS`].
async fn neighbours(tx: &TenantTx, direct: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
    let edges: Vec<(Uuid, Uuid)> = graph_edges::Entity::find()
        .select_only()
        .column(graph_edges::Column::A)
        .column(graph_edges::Column::B)
        .filter(graph_edges::Column::OrgId.eq(tx.org_str()))
        .filter(graph_edges::Column::Weight.gte(MIN_EDGE_WEIGHT))
        .filter(
            Condition::any()
                .add(graph_edges::Column::A.is_in(direct.iter().copied()))
                .add(graph_edges::Column::B.is_in(direct.iter().copied())),
        )
        .order_by_desc(graph_edges::Column::Weight)
        .order_by_asc(graph_edges::Column::A)
        .order_by_asc(graph_edges::Column::B)
        .limit(u64::try_from(MAX_NEIGHBOURS * 8).unwrap_or(u64::MAX))
        .into_tuple()
        .all(tx.conn())
        .await?;
    let direct: HashSet<Uuid> = direct.iter().copied().collect();
    let mut seen = HashSet::new();
    Ok(edges
        .into_iter()
        .flat_map(|(a, b)| [a, b])
        .filter(|e| !direct.contains(e) && seen.insert(*e))
        .take(MAX_NEIGHBOURS)
        .collect())
}

fn limit_of(limit: usize) -> u64 {
    u64::try_from(limit).unwrap_or(u64::MAX)
}

/// Reads the `(memory id, count, count)` rows of a ranking query (the second
/// count is 0 when the query has only one).
async fn ranked_rows(
    tx: &TenantTx,
    stmt: &SelectStatement,
    counts: usize,
) -> Result<Vec<(Uuid, i64, i64)>, StoreError> {
    let rows = tx.conn().query_all(stmt).await?;
    rows.iter()
        .map(|row| {
            let second = if counts > 1 { row.try_get_by_index::<i64>(2)? } else { 0 };
            Ok((row.try_get_by_index::<Uuid>(0)?, row.try_get_by_index::<i64>(1)?, second))
        })
        .collect()
}

/// Share of an org's memories above which an entity no longer
/// discriminates (a conversation partner's own name, say): such entities are
/// left out of the ranking, unless the org is too small to tell.
pub const COMMON_ENTITY_SHARE: f64 = 0.2;
/// Orgs with fewer memories than this rank by every entity.
pub const SMALL_ORG_MEMORIES: u64 = 20;
/// Most mention rows one ranking reads.
const MAX_RANKED_ROWS: u64 = 50_000;

/// How much mentioning entity `e` says: inverse document frequency over the
/// org's memories, `ln((n + 1) / (df + 0.5))`, floored so that every kept
/// entity still counts; `None` for an entity too common to discriminate.
fn entity_weight(df: u64, n: u64) -> Option<f32> {
    if n >= SMALL_ORG_MEMORIES && df as f64 > COMMON_ENTITY_SHARE * n as f64 {
        return None;
    }
    Some(((n as f64 + 1.0) / (df as f64 + 0.5)).ln().max(0.1) as f32)
}

/// Number of memories mentioning each of `entities`.
async fn mention_counts(tx: &TenantTx, entities: &[Uuid]) -> Result<HashMap<Uuid, u64>, StoreError> {
    let rows: Vec<(Uuid, i64)> = graph_mentions::Entity::find()
        .select_only()
        .column(graph_mentions::Column::EntityId)
        .column_as(graph_mentions::Column::MemoryId.count(), "n")
        .filter(graph_mentions::Column::OrgId.eq(tx.org_str()))
        .filter(graph_mentions::Column::EntityId.is_in(entities.iter().copied()))
        .group_by(graph_mentions::Column::EntityId)
        .into_tuple()
        .all(tx.conn())
        .await?;
    Ok(rows.into_iter().map(|(e, n)| (e, u64::try_from(n).unwrap_or(0))).collect())
}

/// Number of memories of the org (the IDF denominator).
async fn org_memories(tx: &TenantTx) -> Result<u64, StoreError> {
    Ok(memories::Entity::find().filter(memories::Column::OrgId.eq(tx.org_str())).count(tx.conn()).await?)
}

async fn mentioning(
    tx: &TenantTx,
    names: &[String],
    filter: &SearchFilter,
    limit: usize,
) -> Result<Vec<Hit>, StoreError> {
    let direct = entity_ids(tx, names).await?;
    if direct.is_empty() {
        return Ok(Vec::new());
    }
    let df = mention_counts(tx, &direct).await?;
    let n = org_memories(tx).await?;
    let weights: HashMap<Uuid, f32> =
        direct.iter().filter_map(|e| entity_weight(df.get(e).copied().unwrap_or(0), n).map(|w| (*e, w))).collect();
    if weights.is_empty() {
        return Ok(Vec::new());
    }
    let kept: Vec<Uuid> = direct.iter().filter(|e| weights.contains_key(e)).copied().collect();
    let hops: HashSet<Uuid> = neighbours(tx, &kept).await?.into_iter().collect();
    let mut all = kept.clone();
    all.extend(hops.iter().copied());

    let gm = Alias::new("gm");
    let stmt = Query::select()
        .expr(mentions_col(&gm, graph_mentions::Column::MemoryId))
        .expr(mentions_col(&gm, graph_mentions::Column::EntityId))
        .column((memories::Entity, memories::Column::CreatedAt))
        .from_as(graph_mentions::Entity, gm.clone())
        .join(
            JoinType::InnerJoin,
            memories::Entity,
            Expr::col((memories::Entity, memories::Column::Id)).equals((gm.clone(), graph_mentions::Column::MemoryId)),
        )
        .cond_where(
            Condition::all()
                .add(mentions_col(&gm, graph_mentions::Column::OrgId).eq(tx.org_str()))
                .add(mentions_col(&gm, graph_mentions::Column::EntityId).is_in(all))
                .add(filter::search_filter_condition(tx, filter)),
        )
        .limit(MAX_RANKED_ROWS)
        .to_owned();
    let rows = tx.conn().query_all(&stmt).await?;
    // memory -> (weight of its query entities, neighbours mentioned, created)
    let mut scored: HashMap<Uuid, (f32, i64, chrono::DateTime<chrono::Utc>)> = HashMap::new();
    for row in rows {
        let memory: Uuid = row.try_get_by_index(0)?;
        let entity: Uuid = row.try_get_by_index(1)?;
        let created: chrono::DateTime<chrono::Utc> = row.try_get_by_index(2)?;
        let entry = scored.entry(memory).or_insert((0.0, 0, created));
        match weights.get(&entity) {
            Some(w) => entry.0 += w,
            None => entry.1 += 1,
        }
    }
    let mut hits: Vec<(Uuid, f32, chrono::DateTime<chrono::Utc>)> = scored
        .into_iter()
        .map(|(id, (direct, hops, created))| {
            (id, direct + HOP_WEIGHT * hops.clamp(0, MAX_HOPS_COUNTED) as f32, created)
        })
        .collect();
    hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.2.cmp(&a.2)).then(b.0.cmp(&a.0)));
    Ok(hits.into_iter().take(limit).map(|(id, score, _)| Hit::new(MemoryId::from_uuid(id), score)).collect())
}

async fn related_to(tx: &TenantTx, id: MemoryId, filter: &SearchFilter, limit: usize) -> Result<Vec<Hit>, StoreError> {
    // The starting memory must be one the caller may see (in any state), or
    // its entities would leak through the hits.
    let mut source =
        Condition::all().add(memories::Column::OrgId.eq(tx.org_str())).add(memories::Column::Id.eq(id.as_uuid()));
    if let Some(v) = &filter.visible_to {
        source = source.add(visibility_condition(v));
    }
    let visible: Option<Uuid> = memories::Entity::find()
        .select_only()
        .column(memories::Column::Id)
        .filter(source)
        .into_tuple()
        .one(tx.conn())
        .await?;
    if visible.is_none() {
        return Ok(Vec::new());
    }

    let (m1, m2) = (Alias::new("m1"), Alias::new("m2"));
    let shared = Func::count(mentions_col(&m2, graph_mentions::Column::EntityId));
    let stmt = Query::select()
        .expr(mentions_col(&m2, graph_mentions::Column::MemoryId))
        .expr(shared.clone())
        .from_as(graph_mentions::Entity, m1.clone())
        .join_as(
            JoinType::InnerJoin,
            graph_mentions::Entity,
            m2.clone(),
            Condition::all()
                .add(
                    mentions_col(&m2, graph_mentions::Column::OrgId)
                        .equals((m1.clone(), graph_mentions::Column::OrgId)),
                )
                .add(
                    mentions_col(&m2, graph_mentions::Column::EntityId)
                        .equals((m1.clone(), graph_mentions::Column::EntityId)),
                ),
        )
        .join(
            JoinType::InnerJoin,
            memories::Entity,
            Expr::col((memories::Entity, memories::Column::Id)).equals((m2.clone(), graph_mentions::Column::MemoryId)),
        )
        .cond_where(
            Condition::all()
                .add(mentions_col(&m1, graph_mentions::Column::OrgId).eq(tx.org_str()))
                .add(mentions_col(&m1, graph_mentions::Column::MemoryId).eq(id.as_uuid()))
                .add(mentions_col(&m2, graph_mentions::Column::MemoryId).ne(id.as_uuid()))
                .add(filter::search_filter_condition(tx, filter)),
        )
        .group_by_col((m2.clone(), graph_mentions::Column::MemoryId))
        .group_by_col((memories::Entity, memories::Column::CreatedAt))
        .order_by_expr(shared.into(), Order::Desc)
        .order_by((memories::Entity, memories::Column::CreatedAt), Order::Desc)
        .order_by((m2.clone(), graph_mentions::Column::MemoryId), Order::Desc)
        .limit(limit_of(limit))
        .to_owned();
    Ok(ranked_rows(tx, &stmt, 1)
        .await?
        .into_iter()
        .map(|(id, shared, _)| Hit::new(MemoryId::from_uuid(id), shared as f32))
        .collect())
}

async fn known_names(tx: &TenantTx, candidates: &[String]) -> Result<HashSet<String>, StoreError> {
    let mut known = HashSet::new();
    for chunk in candidates.chunks(CHUNK) {
        let names: Vec<String> = graph_entities::Entity::find()
            .select_only()
            .column(graph_entities::Column::Name)
            .filter(graph_entities::Column::OrgId.eq(tx.org_str()))
            .filter(graph_entities::Column::Name.is_in(chunk.iter().cloned()))
            .into_tuple()
            .all(tx.conn())
            .await?;
        known.extend(names);
        // A merged name is known: it finds the entity it was merged into.
        known.extend(resolve_aliases(tx, chunk).await?.into_keys());
    }
    Ok(known)
}

/// The index operations on the relational store's own error type; the
/// [`GraphIndex`] impl below converts at the boundary.
impl EmbeddedGraphIndex {
    /// One transaction per org. The last document of a memory wins; a memory
    /// that no longer exists in the store leaves the graph.
    async fn store_upsert(&self, docs: &[IndexDoc]) -> Result<(), StoreError> {
        let mut by_org: BTreeMap<&OrgId, BTreeMap<Uuid, &IndexDoc>> = BTreeMap::new();
        for doc in docs {
            by_org.entry(&doc.org_id).or_default().insert(doc.id.as_uuid(), doc);
        }
        for (org, docs) in by_org {
            let tx = self.db.begin_tenant(org).await?;
            lock_org(&tx).await?;
            let ids: Vec<Uuid> = docs.keys().copied().collect();
            let existing = existing_memories(&tx, &ids).await?;
            let changes: Vec<(Uuid, MemoryGraph)> = docs
                .iter()
                .map(|(id, doc)| {
                    (*id, if existing.contains(id) { MemoryGraph::of(doc) } else { MemoryGraph::default() })
                })
                .collect();
            replace_mentions(&tx, &changes).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    async fn store_delete(&self, org: &OrgId, ids: &[MemoryId]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let distinct: BTreeSet<Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
        let changes: Vec<(Uuid, MemoryGraph)> = distinct.into_iter().map(|id| (id, MemoryGraph::default())).collect();
        let tx = self.db.begin_tenant(org).await?;
        lock_org(&tx).await?;
        replace_mentions(&tx, &changes).await?;
        tx.commit().await
    }

    /// Candidates are every run of one to three words of the text and what
    /// the extractor finds in it (see [`query_candidates`]), looked up in one
    /// `name IN (..)` per chunk; known ones come back in text order.
    async fn store_entities_in(&self, org: &OrgId, text: &str) -> Result<Vec<String>, StoreError> {
        let candidates = query_candidates(text, MAX_QUERY_TOKENS);
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let tx = self.db.begin_tenant_read(org).await?;
        let known = known_names(&tx, &candidates).await?;
        tx.commit().await?;
        Ok(candidates.into_iter().filter(|c| known.contains(c)).collect())
    }

    async fn store_memories_mentioning(
        &self,
        entities: &[String],
        filter: &SearchFilter,
        limit: usize,
    ) -> Result<Vec<Hit>, StoreError> {
        let mut names: Vec<String> = Vec::new();
        for name in entities.iter().filter_map(|e| normalise(e)) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names.truncate(MAX_QUERY_ENTITIES);
        if names.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let tx = self.db.begin_tenant_read(&filter.org).await?;
        let hits = mentioning(&tx, &names, filter, limit).await?;
        tx.commit().await?;
        Ok(hits)
    }

    /// Also returns nothing when memory `id` is not visible to the filter's
    /// caller (its state and fields do not matter).
    async fn store_related(&self, id: MemoryId, filter: &SearchFilter, limit: usize) -> Result<Vec<Hit>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let tx = self.db.begin_tenant_read(&filter.org).await?;
        let hits = related_to(&tx, id, filter, limit).await?;
        tx.commit().await?;
        Ok(hits)
    }

    /// Relational writes are durable when their transaction commits.
    async fn store_flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// For every org (`None`), PostgreSQL truncates the tables: `TRUNCATE` is
    /// not subject to row-level security, and the role that ran the
    /// migrations owns them.
    async fn store_clear(&self, org: Option<&OrgId>) -> Result<(), StoreError> {
        match org {
            Some(org) => {
                let tx = self.db.begin_tenant(org).await?;
                lock_org(&tx).await?;
                graph_relations::Entity::delete_many()
                    .filter(graph_relations::Column::OrgId.eq(tx.org_str()))
                    .exec(tx.conn())
                    .await?;
                graph_edges::Entity::delete_many()
                    .filter(graph_edges::Column::OrgId.eq(tx.org_str()))
                    .exec(tx.conn())
                    .await?;
                graph_mentions::Entity::delete_many()
                    .filter(graph_mentions::Column::OrgId.eq(tx.org_str()))
                    .exec(tx.conn())
                    .await?;
                graph_entities::Entity::delete_many()
                    .filter(graph_entities::Column::OrgId.eq(tx.org_str()))
                    .exec(tx.conn())
                    .await?;
                tx.commit().await
            }
            None => {
                let conn = self.db.writer();
                if conn.get_database_backend() == DbBackend::Postgres {
                    conn.execute_unprepared("TRUNCATE graph_relations, graph_edges, graph_mentions, graph_entities")
                        .await?;
                } else {
                    for table in ["graph_relations", "graph_edges", "graph_mentions", "graph_entities"] {
                        conn.execute_unprepared(&format!("DELETE FROM \"{table}\"")).await?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Number of entities of `org`.
    async fn store_count(&self, org: &OrgId) -> Result<u64, StoreError> {
        let tx = self.db.begin_tenant_read(org).await?;
        let n = graph_entities::Entity::find()
            .filter(graph_entities::Column::OrgId.eq(tx.org_str()))
            .count(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(n)
    }
}

#[async_trait]
impl GraphIndex for EmbeddedGraphIndex {
    fn engine(&self) -> &'static str {
        "embedded"
    }

    async fn upsert(&self, docs: &[IndexDoc]) -> Result<(), IndexError> {
        Ok(self.store_upsert(docs).await?)
    }

    async fn delete(&self, org: &OrgId, ids: &[MemoryId]) -> Result<(), IndexError> {
        Ok(self.store_delete(org, ids).await?)
    }

    async fn entities_in(&self, org: &OrgId, text: &str) -> Result<Vec<String>, IndexError> {
        Ok(self.store_entities_in(org, text).await?)
    }

    async fn memories_mentioning(
        &self,
        entities: &[String],
        filter: &SearchFilter,
        limit: usize,
    ) -> Result<Vec<Hit>, IndexError> {
        Ok(self.store_memories_mentioning(entities, filter, limit).await?)
    }

    async fn related(&self, id: MemoryId, filter: &SearchFilter, limit: usize) -> Result<Vec<Hit>, IndexError> {
        Ok(self.store_related(id, filter, limit).await?)
    }

    async fn flush(&self) -> Result<(), IndexError> {
        Ok(self.store_flush().await?)
    }

    async fn clear(&self, org: Option<&OrgId>) -> Result<(), IndexError> {
        Ok(self.store_clear(org).await?)
    }

    async fn count(&self, org: &OrgId) -> Result<u64, IndexError> {
        Ok(self.store_count(org).await?)
    }
}

/// Test support: memories in the relational store, for the graph contract
/// (the embedded graph joins the store, so its memories must exist there).
#[cfg(feature = "testing")]
mod fixture {
    #![allow(clippy::unwrap_used)]

    use async_trait::async_trait;
    use loci_core::model::{App, MemoryMetadata, NewMemory, User};
    use loci_core::{MemoryState, OrgId};
    use loci_index::IndexDoc;
    use loci_index::contract::GraphFixture;

    use crate::Database;
    use crate::repo::{apps, memories, orgs, users};

    /// Memories in the relational store.
    #[derive(Debug, Clone)]
    pub struct StoredMemories(pub Database);

    impl StoredMemories {
        async fn user(&self, org: &OrgId, owner: &str) -> (User, App) {
            let tx = self.0.begin_tenant(org).await.unwrap();
            orgs::ensure(&tx).await.unwrap();
            let user = users::ensure(&tx, owner).await.unwrap();
            let app = apps::ensure(&tx, user.id, "contract").await.unwrap();
            tx.commit().await.unwrap();
            (user, app)
        }
    }

    #[async_trait]
    impl GraphFixture for StoredMemories {
        async fn memory(&self, org: &OrgId, owner: &str, content: &str, metadata: MemoryMetadata) -> IndexDoc {
            let (user, app) = self.user(org, owner).await;
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
            let tx = self.0.begin_tenant(org).await.unwrap();
            let input =
                NewMemory { user_id: user.id, app_id: app.id, content: content.into(), metadata, categories: vec![] };
            let m = memories::create(&tx, input).await.unwrap();
            tx.commit().await.unwrap();
            IndexDoc::from_memory(&m)
        }

        async fn set_state(&self, doc: &IndexDoc, state: MemoryState) -> IndexDoc {
            let tx = self.0.begin_tenant(&doc.org_id).await.unwrap();
            let m = memories::set_state(&tx, doc.id, state, Some(doc.user_id)).await.unwrap().unwrap();
            tx.commit().await.unwrap();
            IndexDoc::from_memory(&m)
        }
    }
}

#[cfg(feature = "testing")]
pub use fixture::StoredMemories;
