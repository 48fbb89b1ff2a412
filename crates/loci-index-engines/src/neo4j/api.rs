//! The graph and entity API ([`EntityGraph`], [`GraphAnalytics`]) on
//! Neo4j, with the embedded graph's semantics: the queries of
//! [`crate::queries::neo4j_api`] count under the caller's filter, and the
//! rest (breadth-first paths, truncation of the mention graph, the folding
//! of relation statements, the merge's refusals) is done here the way the
//! embedded graph does it, so both engines answer the same for the same
//! visible data. The contract suite (`loci_index::contract::graph_api_contract`)
//! checks that on both.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use loci_core::{MemoryId, OrgId, UserId};
use neo4rs::Row;

use super::{ENGINE, Neo4jGraphIndex};
use crate::engines::parse_memory_id;
use crate::queries::neo4j_api as api;
use loci_index::analytics::{
    EntityAlias, EntityMemories, GraphStats, MAX_GRAPH_MENTIONS, MentionGraph, MergeRefusal, MergeReport, RelationFacts,
};
use loci_index::entities::shortest_chain;
use loci_index::relations::{Predicate, RelationStatement};
use loci_index::{EntityGraph, EntityNetwork, EntitySummary, GraphAnalytics, IndexError, Neighbour, SearchFilter};

/// Names per list parameter of one statement.
const CHUNK: usize = 500;
/// Most merges one alias listing returns (as the embedded graph).
const MAX_ALIASES: usize = 1000;

fn get<T: serde::de::DeserializeOwned>(row: &Row, key: &str) -> Result<T, IndexError> {
    row.get::<T>(key).map_err(|e| IndexError::Failed(format!("{ENGINE}: {key}: {e}")))
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn micros(key: &str, n: i64) -> Result<DateTime<Utc>, IndexError> {
    DateTime::<Utc>::from_timestamp_micros(n).ok_or_else(|| IndexError::Failed(format!("{ENGINE}: {key}: {n}")))
}

fn summary(row: &Row) -> Result<EntitySummary, IndexError> {
    Ok(EntitySummary {
        name: get(row, "name")?,
        display_name: get(row, "display_name")?,
        kind: get(row, "kind")?,
        memories: count(get(row, "n")?),
    })
}

impl Neo4jGraphIndex {
    async fn summaries(&self, q: &crate::queries::neo4j::CypherQuery) -> Result<Vec<EntitySummary>, IndexError> {
        self.rows(q, summary).await
    }

    async fn number(&self, q: &crate::queries::neo4j::CypherQuery) -> Result<u64, IndexError> {
        Ok(self.rows(q, |row| get::<i64>(row, "n")).await?.first().map_or(0, |n| count(*n)))
    }

    /// The entity each of `names` was merged into (merged names only).
    pub(super) async fn aliases_of(
        &self,
        org: &OrgId,
        names: &[String],
    ) -> Result<HashMap<String, String>, IndexError> {
        let mut out = HashMap::new();
        for chunk in names.chunks(CHUNK) {
            let rows = self
                .rows(&api::aliases_of(org, chunk), |row| {
                    Ok((get::<String>(row, "name")?, get::<String>(row, "entity")?))
                })
                .await?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// Visible summaries of `names`, by name.
    async fn counted(&self, f: &SearchFilter, names: &[String]) -> Result<HashMap<String, EntitySummary>, IndexError> {
        let mut out = HashMap::new();
        for chunk in names.chunks(CHUNK) {
            for s in self.summaries(&api::entities(f, Some(chunk), 1, chunk.len())).await? {
                out.insert(s.name.clone(), s);
            }
        }
        Ok(out)
    }

    /// The visible entity named `name`, or the one `name` was merged into.
    async fn entity_named(&self, f: &SearchFilter, name: &str) -> Result<Option<EntitySummary>, IndexError> {
        let named = |n: String| api::entities(f, Some(&[n]), 1, 1);
        if let Some(found) = self.summaries(&named(name.to_owned())).await?.pop() {
            return Ok(Some(found));
        }
        match self.aliases_of(&f.org, &[name.to_owned()]).await?.remove(name) {
            Some(into) => Ok(self.summaries(&named(into)).await?.pop()),
            None => Ok(None),
        }
    }

    async fn statement_rows(
        &self,
        q: &crate::queries::neo4j::CypherQuery,
    ) -> Result<Vec<(String, String, String, MemoryId, DateTime<Utc>)>, IndexError> {
        self.rows(q, |row| {
            let memory: String = get(row, "memory")?;
            Ok((
                get(row, "subject")?,
                get(row, "predicate")?,
                get(row, "object")?,
                parse_memory_id(ENGINE, &memory)?,
                micros("created_at", get(row, "created_at")?)?,
            ))
        })
        .await
    }
}

/// The mention graph of `rows` (memory, entity), ordered by memory then
/// name, of which at most `max` are kept: a memory cut short is left out
/// whole, as in the embedded graph.
fn mention_graph_of(mut rows: Vec<(MemoryId, EntitySummary)>, max: usize) -> MentionGraph {
    let truncated = rows.len() > max;
    if truncated {
        rows.truncate(max);
        if let Some(last) = rows.last().map(|(m, _)| *m) {
            rows.retain(|(m, _)| *m != last);
        }
    }
    let mut entities: BTreeMap<String, EntitySummary> = BTreeMap::new();
    for (_, e) in &rows {
        entities.entry(e.name.clone()).or_insert_with(|| EntitySummary { memories: 0, ..e.clone() }).memories += 1;
    }
    let index: HashMap<&str, u32> =
        entities.keys().enumerate().map(|(i, name)| (name.as_str(), u32::try_from(i).unwrap_or(u32::MAX))).collect();
    let mut memories: Vec<(MemoryId, Vec<u32>)> = Vec::new();
    for (memory, e) in &rows {
        let Some(&i) = index.get(e.name.as_str()) else { continue };
        match memories.last_mut() {
            Some((m, list)) if m == memory => list.push(i),
            _ => memories.push((*memory, vec![i])),
        }
    }
    for (_, list) in &mut memories {
        list.sort_unstable();
    }
    MentionGraph { entities: entities.into_values().collect(), memories, truncated }
}

#[async_trait]
impl EntityGraph for Neo4jGraphIndex {
    async fn entities(
        &self,
        filter: &SearchFilter,
        min_memories: u64,
        limit: usize,
    ) -> Result<Vec<EntitySummary>, IndexError> {
        self.summaries(&api::entities(filter, None, min_memories.max(1), limit)).await
    }

    async fn entity(&self, filter: &SearchFilter, name: &str) -> Result<Option<EntitySummary>, IndexError> {
        self.entity_named(filter, name).await
    }

    async fn network(
        &self,
        filter: &SearchFilter,
        name: &str,
        limit: usize,
    ) -> Result<Option<EntityNetwork>, IndexError> {
        let Some(entity) = self.entity_named(filter, name).await? else {
            return Ok(None);
        };
        let shared = self.summaries(&api::co_mentioned(filter, &entity.name, limit)).await?;
        let names: Vec<String> = shared.iter().map(|s| s.name.clone()).collect();
        let totals = self.counted(filter, &names).await?;
        let neighbours = shared
            .into_iter()
            .map(|mut s| {
                let shared_memories = s.memories;
                s.memories = totals.get(&s.name).map_or(shared_memories, |t| t.memories);
                Neighbour { entity: s, shared_memories }
            })
            .collect();
        Ok(Some(EntityNetwork { entity, neighbours }))
    }

    async fn path(
        &self,
        filter: &SearchFilter,
        from: &str,
        to: &str,
        max_hops: usize,
    ) -> Result<Option<Vec<EntitySummary>>, IndexError> {
        let (Some(from), Some(to)) = (self.entity_named(filter, from).await?, self.entity_named(filter, to).await?)
        else {
            return Ok(None);
        };
        let step = |frontier: Vec<String>| async move {
            let mut out = Vec::new();
            for chunk in frontier.chunks(CHUNK) {
                let pairs = self
                    .rows(&api::steps(filter, chunk), |row| {
                        Ok((get::<String>(row, "source")?, get::<String>(row, "target")?))
                    })
                    .await?;
                out.extend(pairs.into_iter().map(|(a, b)| (a, b.clone(), b)));
            }
            Ok::<_, IndexError>(out)
        };
        let Some(chain) = shortest_chain((from.name.clone(), from.name), &to.name, max_hops, step).await? else {
            return Ok(None);
        };
        let mut by_name = self.counted(filter, &chain).await?;
        Ok(chain.iter().map(|n| by_name.remove(n)).collect::<Option<Vec<_>>>())
    }
}

#[async_trait]
impl GraphAnalytics for Neo4jGraphIndex {
    async fn stats(&self, filter: &SearchFilter) -> Result<GraphStats, IndexError> {
        let memories = self.number(&api::count_memories(filter)).await?;
        let graph = self.mention_graph(filter, MAX_GRAPH_MENTIONS).await?;
        Ok(GraphStats::of(memories, &graph))
    }

    async fn mention_graph(&self, filter: &SearchFilter, max_mentions: usize) -> Result<MentionGraph, IndexError> {
        let rows = self
            .rows(&api::mentions(filter, max_mentions.saturating_add(1)), |row| {
                let memory: String = get(row, "memory")?;
                let entity = EntitySummary {
                    name: get(row, "name")?,
                    display_name: get(row, "display_name")?,
                    kind: get(row, "kind")?,
                    memories: 0,
                };
                Ok((parse_memory_id(ENGINE, &memory)?, entity))
            })
            .await?;
        Ok(mention_graph_of(rows, max_mentions))
    }

    async fn search_entities(
        &self,
        filter: &SearchFilter,
        needle: &str,
        limit: usize,
    ) -> Result<Vec<EntitySummary>, IndexError> {
        self.summaries(&api::search_entities(filter, needle, limit)).await
    }

    async fn entity_memories(
        &self,
        filter: &SearchFilter,
        name: &str,
        limit: usize,
        offset: usize,
    ) -> Result<Option<EntityMemories>, IndexError> {
        let Some(entity) = self.entity_named(filter, name).await? else {
            return Ok(None);
        };
        let ids = self
            .rows(&api::entity_memories(filter, &entity.name, limit, offset), |row| {
                parse_memory_id(ENGINE, &get::<String>(row, "id")?)
            })
            .await?;
        Ok(Some(EntityMemories { entity, ids }))
    }

    async fn relation_statements(
        &self,
        filter: &SearchFilter,
        name: &str,
        max: usize,
    ) -> Result<Option<RelationFacts>, IndexError> {
        let Some(entity) = self.entity_named(filter, name).await? else {
            return Ok(None);
        };
        let mut rows = self.statement_rows(&api::statements_about(filter, &entity.name, max.saturating_add(1))).await?;
        let truncated = rows.len() > max;
        rows.truncate(max);
        // When did the subjects of exclusive relations state another object?
        let exclusive: Vec<&str> = Predicate::ALL.iter().filter(|p| p.exclusive()).map(|p| p.as_str()).collect();
        let subjects: Vec<String> = rows
            .iter()
            .filter(|(s, p, _, _, _)| *s != entity.name && exclusive.contains(&p.as_str()))
            .map(|(s, _, _, _, _)| s.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .take(CHUNK)
            .collect();
        if !subjects.is_empty() {
            let others = api::exclusive_statements(filter, &subjects, &exclusive, &entity.name, max);
            rows.extend(self.statement_rows(&others).await?);
        }
        let names: Vec<String> = rows
            .iter()
            .flat_map(|(s, _, o, _, _)| [s.clone(), o.clone()])
            .filter(|n| *n != entity.name)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let named = self.counted(filter, &names).await?;
        let known = |n: &String| *n == entity.name || named.contains_key(n);
        let statements = rows
            .into_iter()
            .filter(|(s, _, o, _, _)| known(s) && known(o))
            .filter_map(|(subject, p, object, memory, stated_at)| {
                Some(RelationStatement { subject, predicate: Predicate::parse(&p)?, object, memory, stated_at })
            })
            .collect();
        let mut entities: Vec<EntitySummary> = named.into_values().collect();
        entities.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Some(RelationFacts { entity, statements, entities, truncated }))
    }

    async fn merge(
        &self,
        filter: &SearchFilter,
        source: &str,
        target: &str,
        actor: &UserId,
        apply: bool,
    ) -> Result<Result<MergeReport, MergeRefusal>, IndexError> {
        let Some(target_entity) = self.entity_named(filter, target).await? else {
            return Ok(Err(MergeRefusal::UnknownEntity(target.to_owned())));
        };
        let Some(source_entity) = self.summaries(&api::entities(filter, Some(&[source.to_owned()]), 1, 1)).await?.pop()
        else {
            // Gone already: merged before, into this target or elsewhere.
            let merged_into = self.aliases_of(&filter.org, &[source.to_owned()]).await?.remove(source);
            return Ok(MergeReport::for_gone_source(source, &target_entity.name, merged_into));
        };
        if source_entity.name == target_entity.name {
            return Ok(Err(MergeRefusal::SameEntity(target_entity.name)));
        }
        let both = self.number(&api::count_both(filter, &source_entity.name, &target_entity.name)).await?;
        let mut report = MergeReport {
            source: source_entity.name.clone(),
            target: target_entity.name.clone(),
            memories_moved: source_entity.memories,
            memories_mentioning_both: both,
            already_merged: false,
            applied: false,
        };
        if apply {
            let statements =
                api::merge(&filter.org, &source_entity.name, &target_entity.name, actor, loci_core::model::now());
            self.write(statements).await?;
            report.applied = true;
        }
        Ok(Ok(report))
    }

    async fn aliases(&self, org: &OrgId, entity: Option<&str>) -> Result<Vec<EntityAlias>, IndexError> {
        self.rows(&api::aliases(org, entity, MAX_ALIASES), |row| {
            let merged_by: String = get(row, "merged_by")?;
            Ok(EntityAlias {
                alias: get(row, "name")?,
                entity: get(row, "entity")?,
                merged_by: merged_by
                    .parse::<uuid::Uuid>()
                    .map(UserId::from_uuid)
                    .map_err(|e| IndexError::Failed(format!("{ENGINE}: merged_by: {e}")))?,
                merged_at: micros("merged_at", get(row, "merged_at")?)?,
                memories_moved: count(get(row, "memories_moved")?),
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(name: &str) -> EntitySummary {
        EntitySummary { name: name.into(), display_name: name.to_uppercase(), kind: "term".into(), memories: 0 }
    }

    #[test]
    fn the_mention_graph_counts_indexes_and_cuts_whole_memories() {
        let (m1, m2) = (MemoryId::new(), MemoryId::new());
        let rows = vec![(m1, e("b")), (m1, e("c")), (m2, e("a")), (m2, e("b"))];
        let g = mention_graph_of(rows.clone(), 10);
        assert!(!g.truncated);
        let names: Vec<(&str, u64)> = g.entities.iter().map(|e| (e.name.as_str(), e.memories)).collect();
        assert_eq!(names, [("a", 1), ("b", 2), ("c", 1)]);
        assert_eq!(g.memories, [(m1, vec![1, 2]), (m2, vec![0, 1])]);
        // Three rows fit, the fourth does not: m2 is left out whole.
        let cut = mention_graph_of(rows, 3);
        assert!(cut.truncated);
        assert_eq!(cut.memories, [(m1, vec![0, 1])]);
        assert_eq!(cut.entities.len(), 2);
    }
}
