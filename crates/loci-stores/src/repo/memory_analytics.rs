//! Counts and rows over the visible memories themselves (not the graph):
//! aggregates by a structured field or tag, the tag sets that tag analyses
//! read, and dated memories for timelines. They answer from the relational
//! store, the source of truth, whichever graph engine is configured; the
//! filter is a [`SearchFilter`] as for index queries (the same SQL).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use loci_core::MemoryId;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query, SelectStatement};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use loci_index::SearchFilter;
use loci_index::algorithms::tag_counts;
use loci_index::analytics::{Aggregate, Bucket, DatedMemory, Dimension, TagSet};

use crate::entities::{apps, memories};
use crate::graph::{CHUNK, count, filter};
use crate::{StoreError, TenantTx};

pub(crate) fn limit_of(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Visible memories: `SELECT ... FROM memories WHERE <filter>`.
pub(crate) fn visible_memories(tx: &TenantTx, filter: &SearchFilter) -> SelectStatement {
    Query::select().from(memories::Entity).cond_where(filter::search_filter_condition(tx, filter)).to_owned()
}

/// One row of `N` counts.
pub(crate) async fn numbers<const N: usize>(tx: &TenantTx, stmt: &SelectStatement) -> Result<[u64; N], StoreError> {
    let mut out = [0; N];
    if let Some(row) = tx.conn().query_one(stmt).await? {
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = count(row.try_get_by_index::<Option<i64>>(i)?.unwrap_or(0));
        }
    }
    Ok(out)
}

/// The `memories` column of a dimension (all but `tag`).
fn dimension_column(dimension: Dimension) -> Option<memories::Column> {
    Some(match dimension {
        Dimension::Category => memories::Column::Category,
        Dimension::Scope => memories::Column::Scope,
        Dimension::ArtifactType => memories::Column::ArtifactType,
        Dimension::ArtifactRef => memories::Column::ArtifactRef,
        Dimension::Entity => memories::Column::Entity,
        Dimension::App => memories::Column::AppId,
        Dimension::Source => memories::Column::Source,
        Dimension::State => memories::Column::State,
        Dimension::Tag => return None,
    })
}

pub async fn aggregate(
    tx: &TenantTx,
    filter: &SearchFilter,
    dimension: Dimension,
    limit: usize,
) -> Result<Aggregate, StoreError> {
    let Some(column) = dimension_column(dimension) else {
        return tag_aggregate(tx, filter, limit).await;
    };
    let col = || Expr::col((memories::Entity, column));
    let mut totals = visible_memories(tx, filter);
    totals.expr(Expr::cust("COUNT(*)")).expr(col().count()).expr(col().count_distinct());
    let [memories_n, with_value, values] = numbers(tx, &totals).await?;

    let mut groups = visible_memories(tx, filter);
    groups
        .expr(col())
        .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
        .and_where(col().is_not_null())
        .group_by_col((memories::Entity, column))
        .order_by_expr(Expr::cust("COUNT(*)"), Order::Desc)
        .order_by((memories::Entity, column), Order::Asc)
        .limit(limit_of(limit));
    let rows = tx.conn().query_all(&groups).await?;
    let mut buckets = Vec::with_capacity(rows.len());
    for row in &rows {
        let value = if dimension == Dimension::App {
            row.try_get_by_index::<Uuid>(0)?.to_string()
        } else {
            row.try_get_by_index::<String>(0)?
        };
        buckets.push(Bucket { value, label: None, memories: count(row.try_get_by_index::<i64>(1)?) });
    }
    if dimension == Dimension::App && !buckets.is_empty() {
        let ids: Vec<Uuid> = buckets.iter().filter_map(|b| b.value.parse().ok()).collect();
        let names: HashMap<Uuid, String> = apps::Entity::find()
            .select_only()
            .column(apps::Column::Id)
            .column(apps::Column::Name)
            .filter(apps::Column::OrgId.eq(tx.org_str()))
            .filter(apps::Column::Id.is_in(ids))
            .into_tuple::<(Uuid, String)>()
            .all(tx.conn())
            .await?
            .into_iter()
            .collect();
        for bucket in &mut buckets {
            bucket.label = bucket.value.parse::<Uuid>().ok().and_then(|id| names.get(&id).cloned());
        }
    }
    Ok(Aggregate { buckets, values, memories: memories_n, without_value: memories_n - with_value, truncated: false })
}

async fn tag_aggregate(tx: &TenantTx, filter: &SearchFilter, limit: usize) -> Result<Aggregate, StoreError> {
    let mut all = visible_memories(tx, filter);
    all.expr(Expr::cust("COUNT(*)"));
    let [memories_n] = numbers(tx, &all).await?;
    let (sets, truncated) = memory_tags(tx, filter, None, loci_index::analytics::MAX_SCANNED_MEMORIES).await?;
    let counts = tag_counts(&sets);
    let tagged = sets.len() as u64;
    Ok(Aggregate {
        values: counts.len() as u64,
        buckets: counts
            .into_iter()
            .take(limit)
            .map(|(value, memories)| Bucket { value, label: None, memories })
            .collect(),
        memories: memories_n,
        // Read memories only: with more tagged memories than were read,
        // this is a lower bound of those without tags.
        without_value: memories_n.saturating_sub(tagged),
        truncated,
    })
}

/// `tags` is not the empty object (and has `key`).
fn tagged(tx: &TenantTx, key: Option<&str>) -> Expr {
    let postgres = tx.conn().get_database_backend() == DbBackend::Postgres;
    match (postgres, key) {
        (true, None) => Expr::cust("(\"tags\" <> '{}'::jsonb)"),
        (false, None) => Expr::cust("(\"tags\" <> '{}')"),
        (true, Some(key)) => Expr::cust_with_values("jsonb_exists(\"tags\", $1)", [key.to_owned()]),
        (false, Some(key)) => {
            let path = format!("$.\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\""));
            Expr::cust_with_values("(json_type(\"tags\", ?) IS NOT NULL)", [path])
        }
    }
}

/// A tag value as text: strings as they are, anything else as JSON.
fn tag_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub async fn memory_tags(
    tx: &TenantTx,
    filter: &SearchFilter,
    key: Option<&str>,
    max: usize,
) -> Result<(Vec<TagSet>, bool), StoreError> {
    let mut stmt = visible_memories(tx, filter);
    stmt.column((memories::Entity, memories::Column::Tags))
        .and_where(tagged(tx, None))
        .order_by((memories::Entity, memories::Column::CreatedAt), Order::Desc)
        .order_by((memories::Entity, memories::Column::Id), Order::Desc)
        .limit(limit_of(max.saturating_add(1)));
    if let Some(key) = key {
        stmt.and_where(tagged(tx, Some(key)));
    }
    let rows = tx.conn().query_all(&stmt).await?;
    let truncated = rows.len() > max;
    let mut sets = Vec::with_capacity(rows.len().min(max));
    for row in rows.iter().take(max) {
        let tags: serde_json::Value = row.try_get_by_index(0)?;
        if let serde_json::Value::Object(map) = tags {
            sets.push(map.iter().map(|(k, v)| (k.clone(), tag_text(v))).collect::<TagSet>());
        }
    }
    Ok((sets, truncated))
}

/// The newest `max` visible memories with their dates: all of them, or
/// those among `ids` (e.g. the memories of an entity the graph found).
pub async fn dated_memories(
    tx: &TenantTx,
    filter: &SearchFilter,
    ids: Option<&[MemoryId]>,
    max: usize,
) -> Result<Vec<DatedMemory>, StoreError> {
    let query = |only: Option<&[MemoryId]>| {
        let mut stmt = visible_memories(tx, filter);
        stmt.columns([
            (memories::Entity, memories::Column::Id),
            (memories::Entity, memories::Column::Content),
            (memories::Entity, memories::Column::Category),
            (memories::Entity, memories::Column::CreatedAt),
            (memories::Entity, memories::Column::UpdatedAt),
        ])
        .order_by((memories::Entity, memories::Column::CreatedAt), Order::Desc)
        .order_by((memories::Entity, memories::Column::Id), Order::Desc)
        .limit(limit_of(max));
        if let Some(only) = only {
            stmt.and_where(Expr::col((memories::Entity, memories::Column::Id)).is_in(only.iter().map(|m| m.as_uuid())));
        }
        stmt
    };
    let mut dated = Vec::new();
    match ids {
        None => dated_rows(tx, &query(None), &mut dated).await?,
        Some(ids) => {
            for chunk in ids.chunks(CHUNK) {
                dated_rows(tx, &query(Some(chunk)), &mut dated).await?;
            }
            dated.sort_by_key(|d| std::cmp::Reverse((d.created_at, d.id)));
            dated.truncate(max);
        }
    }
    Ok(dated)
}

async fn dated_rows(tx: &TenantTx, stmt: &SelectStatement, out: &mut Vec<DatedMemory>) -> Result<(), StoreError> {
    for row in tx.conn().query_all(stmt).await? {
        out.push(DatedMemory {
            id: MemoryId::from_uuid(row.try_get_by_index(0)?),
            content: row.try_get_by_index(1)?,
            category: row.try_get_by_index(2)?,
            created_at: row.try_get_by_index::<DateTime<Utc>>(3)?,
            updated_at: row.try_get_by_index::<DateTime<Utc>>(4)?,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use loci_index::algorithms::tag_label;

    #[test]
    fn tag_values_are_text() {
        assert_eq!(tag_text(&serde_json::json!("x")), "x");
        assert_eq!(tag_text(&serde_json::json!(3)), "3");
        assert_eq!(tag_label("k", &tag_text(&serde_json::json!(true))), "k=true");
    }
}
