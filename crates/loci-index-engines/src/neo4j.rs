//! The Neo4j graph index (Bolt, crate `neo4rs`).
//!
//! `(:Memory {org_id, id, ..})-[:MENTIONS]->(:Entity {org_id, name})`: every
//! node carries its org and every statement is built, fully parameterised, by
//! [`engine_queries::neo4j`] (user values only ever travel as parameters).
//! Opening checks the server and creates the schema of
//! [`schema`](engine_queries::neo4j::schema) (uniqueness constraints on
//! `(org_id, id)` and `(org_id, name)`, indexes on `org_id`; all
//! `IF NOT EXISTS`).
//!
//! The entities of a document are those of the embedded graph
//! ([`doc_entities`]: the structured `entity` plus the deterministic
//! extractor), and queries find entities in a text the same way
//! ([`query_candidates`]), so both graphs agree on names. Each org's upserts
//! and deletes run in one transaction, which also removes the entities no
//! memory mentions any more. Unlike the embedded graph, which joins the
//! relational store, the memory's filter fields are copied onto its node and
//! `memories_mentioning` ranks by the number of query entities mentioned
//! (then recency), without the embedded graph's IDF weights and co-mention
//! expansion.

mod api;
mod code;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use loci_core::breaker::CircuitBreaker;
use loci_core::{MemoryId, OrgId};
use neo4rs::{BoltType, ConfigBuilder, Graph, Query};
use tokio::sync::OnceCell;

use crate::engines::{parse_memory_id, run_at_start};
use crate::queries::neo4j::{self as cy, CypherQuery};
use loci_index::IndexError;
use loci_index::extract::{
    EntityKind, ExtractedEntity, MAX_QUERY_ENTITIES, MAX_QUERY_TOKENS, batch_entities, doc_entities, normalise,
    query_candidates,
};
use loci_index::relations::{ExtractedRelation, doc_relations};
use loci_index::{GraphIndex, Hit, IndexDoc, SearchFilter};

const ENGINE: &str = "neo4j";

/// Where the Neo4j server is.
#[derive(Clone)]
pub struct Neo4jOptions {
    /// e.g. `bolt://neo4j:7687` (or `neo4j+s://` for TLS).
    pub url: String,
    pub username: String,
    pub password: String,
    /// Per statement (and for connecting).
    pub timeout: Duration,
    pub max_connections: usize,
}

/// Bolt connections to Neo4j.
const MAX_CONNECTIONS: usize = 16;

impl Neo4jOptions {
    /// From `[graph]`: `graph.url` is required; the user defaults to `neo4j`.
    pub fn from_settings(graph: &loci_settings::GraphSettings) -> Result<Self, IndexError> {
        Ok(Self {
            url: graph.url.clone().ok_or_else(|| IndexError::Config("graph.url is required for neo4j".into()))?,
            username: graph.username.clone().unwrap_or_else(|| "neo4j".to_owned()),
            password: graph.password.as_ref().map(|p| p.expose().to_owned()).unwrap_or_default(),
            timeout: crate::ENGINE_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        })
    }
}

impl std::fmt::Debug for Neo4jOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Neo4jOptions")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &"[REDACTED]")
            .field("timeout", &self.timeout)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// [`GraphIndex`] over Neo4j (see the module docs).
pub struct Neo4jGraphIndex {
    options: Neo4jOptions,
    /// Connected on first use, on the caller's runtime.
    graph: OnceCell<Graph>,
    /// Opened by consecutive timeouts: then calls fail at once.
    breaker: Option<Arc<CircuitBreaker>>,
}

impl std::fmt::Debug for Neo4jGraphIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Neo4jGraphIndex").field("options", &self.options).finish()
    }
}

fn err(e: neo4rs::Error) -> IndexError {
    IndexError::Failed(format!("{ENGINE}: {e}"))
}

fn unavailable(e: impl std::fmt::Display) -> IndexError {
    IndexError::Unavailable { engine: ENGINE, reason: e.to_string() }
}

/// A built statement as the driver's query, every parameter converted.
pub fn to_query(q: &CypherQuery) -> Result<Query, IndexError> {
    let mut params: Vec<(String, BoltType)> = Vec::with_capacity(q.params.len());
    for (name, value) in &q.params {
        let value = BoltType::try_from(value.clone())
            .map_err(|e| IndexError::Failed(format!("{ENGINE}: parameter {name}: {e}")))?;
        params.push((name.clone(), value));
    }
    Ok(Query::new(q.text.clone()).params(params))
}

/// One memory's entities and relations with merged names replaced by the
/// entity they were merged into: each entity once, with the display name
/// and highest kind `batch` gives it ([`batch_entities`]); relations
/// between two distinct entities, each once.
fn follow_aliases(
    aliases: &HashMap<String, String>,
    batch: &BTreeMap<String, (String, EntityKind)>,
    entities: Vec<ExtractedEntity>,
    relations: Vec<ExtractedRelation>,
) -> (Vec<ExtractedEntity>, Vec<ExtractedRelation>) {
    let key = |name: String| aliases.get(&name).cloned().unwrap_or(name);
    let mut kept: Vec<ExtractedEntity> = Vec::with_capacity(entities.len());
    for e in entities {
        let name = key(e.name);
        if kept.iter().any(|k| k.name == name) {
            continue;
        }
        let (display, kind) = batch.get(&name).cloned().unwrap_or((e.display, e.kind));
        kept.push(ExtractedEntity { name, display, kind });
    }
    let mut stated: Vec<ExtractedRelation> = Vec::with_capacity(relations.len());
    for mut r in relations {
        r.subject = key(r.subject);
        r.object = key(r.object);
        if r.subject != r.object && !stated.contains(&r) {
            stated.push(r);
        }
    }
    (kept, stated)
}

/// The distinct normalised names of `entities`, at most
/// [`MAX_QUERY_ENTITIES`] (as the embedded graph).
fn query_names(entities: &[String]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for name in entities.iter().filter_map(|e| normalise(e)) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names.truncate(MAX_QUERY_ENTITIES);
    names
}

impl Neo4jGraphIndex {
    fn lazy(options: Neo4jOptions) -> Self {
        Self { options, graph: OnceCell::new(), breaker: None }
    }

    /// Guards every call to the server with `breaker`.
    pub fn with_breaker(mut self, breaker: Arc<CircuitBreaker>) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// Connects, checks the server and creates the schema.
    pub async fn connect(options: Neo4jOptions) -> Result<Self, IndexError> {
        let index = Self::lazy(options);
        index.prepare().await?;
        Ok(index)
    }

    /// [`Self::connect`] for synchronous start-up code: an unreachable
    /// server or refused credentials are [`IndexError::Unavailable`].
    pub fn open(options: Neo4jOptions) -> Result<Self, IndexError> {
        let probe = options.clone();
        run_at_start(ENGINE, move || async move { Self::lazy(probe).prepare().await })?;
        Ok(Self::lazy(options))
    }

    async fn graph(&self) -> Result<&Graph, IndexError> {
        self.graph
            .get_or_try_init(|| async {
                let config = ConfigBuilder::default()
                    .uri(self.options.url.as_str())
                    .user(self.options.username.as_str())
                    .password(self.options.password.as_str())
                    .max_connections(self.options.max_connections.max(1))
                    .build()
                    .map_err(unavailable)?;
                match tokio::time::timeout(self.options.timeout, Graph::connect(config)).await {
                    Ok(Ok(graph)) => Ok(graph),
                    Ok(Err(e)) => Err(unavailable(e)),
                    Err(_) => Err(unavailable("connection timed out")),
                }
            })
            .await
    }

    async fn timed<T>(&self, what: &str, f: impl Future<Output = Result<T, neo4rs::Error>>) -> Result<T, IndexError> {
        let bounded = async {
            match tokio::time::timeout(self.options.timeout, f).await {
                Ok(r) => r.map_err(err),
                Err(_) => Err(IndexError::Timeout(format!("{ENGINE}: {what}"))),
            }
        };
        match &self.breaker {
            Some(breaker) => match breaker.call(bounded, IndexError::is_outage).await {
                Ok(outcome) => outcome,
                Err(refusal) => Err(IndexError::CircuitOpen { engine: ENGINE, refusal }),
            },
            None => bounded.await,
        }
    }

    async fn prepare(&self) -> Result<(), IndexError> {
        let graph = self.graph().await?;
        match tokio::time::timeout(self.options.timeout, graph.run(Query::new("RETURN 1".to_owned()))).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(unavailable(e)),
            Err(_) => return Err(unavailable("no answer to RETURN 1")),
        }
        for statement in cy::schema().into_iter().chain(crate::queries::neo4j_code::schema()) {
            self.timed("schema", graph.run(Query::new(statement.to_owned()))).await?;
        }
        Ok(())
    }

    /// Runs `queries` in one transaction.
    async fn write(&self, queries: Vec<CypherQuery>) -> Result<(), IndexError> {
        if queries.is_empty() {
            return Ok(());
        }
        let graph = self.graph().await?;
        let mut txn = self.timed("begin", graph.start_txn()).await?;
        for q in &queries {
            let query = to_query(q)?;
            self.timed("write", txn.run(query)).await?;
        }
        self.timed("commit", txn.commit()).await
    }

    /// The rows of `q`, each read by `read`.
    async fn rows<T>(
        &self,
        q: &CypherQuery,
        read: impl Fn(&neo4rs::Row) -> Result<T, IndexError>,
    ) -> Result<Vec<T>, IndexError> {
        let graph = self.graph().await?;
        let mut stream = self.timed("query", graph.execute(to_query(q)?)).await?;
        let mut out = Vec::new();
        while let Some(row) = self.timed("fetch", stream.next()).await? {
            out.push(read(&row)?);
        }
        Ok(out)
    }

    async fn ranked(&self, q: &CypherQuery) -> Result<Vec<Hit>, IndexError> {
        self.rows(q, |row| {
            let id: String = row.get("id").map_err(|e| IndexError::Failed(format!("{ENGINE}: id: {e}")))?;
            let score: i64 = row.get("score").map_err(|e| IndexError::Failed(format!("{ENGINE}: score: {e}")))?;
            Ok(Hit::new(parse_memory_id(ENGINE, &id)?, score as f32))
        })
        .await
    }
}

#[async_trait]
impl GraphIndex for Neo4jGraphIndex {
    async fn ping(&self) -> Result<(), IndexError> {
        let graph = self.graph().await?;
        self.timed("ping", graph.run(Query::new("RETURN 1".to_owned()))).await
    }

    fn engine(&self) -> &'static str {
        ENGINE
    }

    /// One transaction per org; the last document of a memory wins. Names
    /// merged into another entity land on it (see `GraphAnalytics::merge`).
    async fn upsert(&self, docs: &[IndexDoc]) -> Result<(), IndexError> {
        let mut by_org: BTreeMap<&OrgId, BTreeMap<MemoryId, &IndexDoc>> = BTreeMap::new();
        for doc in docs {
            by_org.entry(&doc.org_id).or_default().insert(doc.id, doc);
        }
        for (org, docs) in by_org {
            let graphs: Vec<(&IndexDoc, Vec<ExtractedEntity>, Vec<ExtractedRelation>)> = docs
                .values()
                .map(|doc| {
                    let entities = doc_entities(doc);
                    let relations = doc_relations(doc, &entities);
                    (*doc, entities, relations)
                })
                .collect();
            let names: Vec<String> = graphs.iter().flat_map(|(_, e, _)| e.iter().map(|e| e.name.clone())).collect();
            let aliases = self.aliases_of(org, &names).await?;
            let batch = batch_entities(graphs.iter().flat_map(|(_, e, _)| e), &aliases);
            let mut queries: Vec<CypherQuery> = graphs
                .into_iter()
                .map(|(doc, entities, relations)| {
                    let (entities, relations) = follow_aliases(&aliases, &batch, entities, relations);
                    cy::upsert_memory(doc, &entities, &relations)
                })
                .collect();
            queries.push(cy::remove_orphans(org));
            self.write(queries).await?;
        }
        Ok(())
    }

    async fn delete(&self, org: &OrgId, ids: &[MemoryId]) -> Result<(), IndexError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.write(vec![cy::delete_memories(org, ids), cy::remove_orphans(org)]).await
    }

    async fn entities_in(&self, org: &OrgId, text: &str) -> Result<Vec<String>, IndexError> {
        let candidates = query_candidates(text, MAX_QUERY_TOKENS);
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let mut known: Vec<String> = self
            .rows(&cy::known_entities(org, &candidates), |row| {
                row.get::<String>("name").map_err(|e| IndexError::Failed(format!("{ENGINE}: name: {e}")))
            })
            .await?;
        // A merged name is known: it finds the entity it was merged into.
        known.extend(self.aliases_of(org, &candidates).await?.into_keys());
        Ok(candidates.into_iter().filter(|c| known.contains(c)).collect())
    }

    async fn memories_mentioning(
        &self,
        entities: &[String],
        filter: &SearchFilter,
        limit: usize,
    ) -> Result<Vec<Hit>, IndexError> {
        let names = query_names(entities);
        if names.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let aliases = self.aliases_of(&filter.org, &names).await?;
        let names: Vec<String> = names.into_iter().map(|n| aliases.get(&n).cloned().unwrap_or(n)).collect();
        self.ranked(&cy::memories_mentioning(&names, filter, limit)).await
    }

    async fn related(&self, id: MemoryId, filter: &SearchFilter, limit: usize) -> Result<Vec<Hit>, IndexError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.ranked(&cy::related(id, filter, limit)).await
    }

    /// Committed transactions are durable.
    async fn flush(&self) -> Result<(), IndexError> {
        Ok(())
    }

    async fn clear(&self, org: Option<&OrgId>) -> Result<(), IndexError> {
        match org {
            Some(org) => self.write(cy::clear_org(org)).await,
            None => self.write(cy::clear_all()).await,
        }
    }

    /// Number of entities of `org` (as the embedded graph).
    async fn count(&self, org: &OrgId) -> Result<u64, IndexError> {
        let n = self
            .rows(&cy::count_entities(org), |row| {
                row.get::<i64>("n").map_err(|e| IndexError::Failed(format!("{ENGINE}: n: {e}")))
            })
            .await?;
        Ok(n.first().map_or(0, |n| u64::try_from(*n).unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queries::fixtures::{HOSTILE, doc, full_filter, hostile_doc};

    #[test]
    fn every_parameter_converts() {
        let names = vec!["kubernetes".to_owned(), HOSTILE.to_owned()];
        for q in [
            cy::memories_mentioning(&names, &full_filter(), 5),
            cy::related(MemoryId::new(), &full_filter(), 5),
            cy::upsert_memory(&hostile_doc(), &doc_entities(&hostile_doc()), &[]),
            cy::upsert_memory(&doc(), &[], &[]),
            cy::known_entities(&doc().org_id, &names),
            cy::delete_memories(&doc().org_id, &[MemoryId::new()]),
        ] {
            assert!(to_query(&q).is_ok(), "{}", q.text);
        }
    }

    #[test]
    fn merged_names_land_on_their_entity_once() {
        use loci_index::relations::Predicate;
        let entity = |name: &str, kind| ExtractedEntity { name: name.into(), display: name.to_uppercase(), kind };
        let relation = |s: &str, o: &str| ExtractedRelation {
            subject: s.into(),
            predicate: Predicate::WorksWith,
            object: o.into(),
        };
        let aliases = HashMap::from([("caro".to_owned(), "caroline".to_owned())]);
        let mentions = vec![
            entity("caroline", EntityKind::Term),
            entity("caro", EntityKind::Person),
            entity("mel", EntityKind::Term),
        ];
        let batch = batch_entities(&mentions, &aliases);
        let (entities, relations) = follow_aliases(
            &aliases,
            &batch,
            mentions,
            vec![relation("caro", "caroline"), relation("caro", "mel"), relation("caroline", "mel")],
        );
        let kept: Vec<(&str, EntityKind)> = entities.iter().map(|e| (e.name.as_str(), e.kind)).collect();
        assert_eq!(kept, [("caroline", EntityKind::Person), ("mel", EntityKind::Term)]);
        assert_eq!(entities[0].display, "CAROLINE", "its own display name, not the merged one's");
        assert_eq!(relations, [relation("caroline", "mel")], "no self relation, no repeat");
    }

    #[test]
    fn query_names_are_normalised_distinct_and_bounded() {
        let names = query_names(&["Caroline's".into(), "caroline".into(), "  ".into(), "Melanie".into()]);
        assert_eq!(names, vec!["caroline", "melanie"]);
        let many: Vec<String> = (0..200).map(|i| format!("name{i}")).collect();
        assert_eq!(query_names(&many).len(), MAX_QUERY_ENTITIES);
    }

    #[test]
    fn options_do_not_print_the_password() {
        let o = Neo4jOptions {
            url: "bolt://n:7687".into(),
            username: "neo4j".into(),
            password: "s3cret".into(),
            timeout: Duration::from_secs(1),
            max_connections: 4,
        };
        assert!(!format!("{o:?}").contains("s3cret"));
    }

    #[test]
    fn an_unreachable_server_is_a_typed_error_at_open() {
        let o = Neo4jOptions {
            url: "bolt://127.0.0.1:9".into(),
            username: "neo4j".into(),
            password: "x".into(),
            timeout: Duration::from_secs(2),
            max_connections: 1,
        };
        assert!(matches!(Neo4jGraphIndex::open(o), Err(IndexError::Unavailable { engine: "neo4j", .. })));
    }
}
