//! A drop-in for the MCP project's example "memory" server (a JSONL
//! knowledge graph of entities with observations and relations): its nine
//! tools, and an import of its file, over Loci's memories and graph.
//!
//! Every piece is a memory of the caller, with its `entity` field set and a
//! `kg` tag saying what it is:
//! - an entity: `"<name> is a <type>."`, tags `kg=entity`, `kg_type=<type>`;
//! - an observation: its text, tags `kg=observation`, `kg_type=<type>`;
//! - a relation: ``"<from> <relation type in words> `<to>`"``, tags `kg=relation`,
//!   `kg_relation=<relationType>`, `kg_to=<to>`, entity `from`.
//!
//! So the graph index sees both ends of a relation as entities of the
//! memory, search finds observations, and every rule of memories holds:
//! tenancy, visibility (an agent sees its own graph and what others shared
//! with it), history, export and erasure. Names are matched in their
//! normalised form (`Alice` and `alice` are one entity), as everywhere in
//! Loci; the first written form is the one shown. A caller deletes only its
//! own pieces.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use loci_core::MemoryId;
use loci_core::model::{MemoryFilter, PageRequest, SortDirection, SortField};
use loci_index::extract::normalise;
use loci_security::Principal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::memories::{MemoryService, MemoryView};
use crate::validation::{CreateMemoryInput, MetadataInput};
use crate::{DomainError, FieldViolation};

/// The tag saying what a memory is to the knowledge graph.
pub const KG_TAG: &str = "kg";
/// Most pieces (entities, observations, relations) of one kind read.
pub const MAX_PIECES: u64 = 10_000;
/// Most items one call creates or deletes.
pub const MAX_ITEMS_PER_CALL: usize = 500;
/// Longest entity type or relation type.
pub const MAX_TYPE_CHARS: usize = 100;
/// Most lines one import reads.
pub const MAX_IMPORT_LINES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KgEntity {
    pub name: String,
    pub entity_type: String,
    #[serde(default)]
    pub observations: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KgRelation {
    pub from: String,
    pub to: String,
    pub relation_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
pub struct KnowledgeGraph {
    pub entities: Vec<KgEntity>,
    pub relations: Vec<KgRelation>,
}

/// Observations to add to (or delete from) one entity.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KgObservations {
    pub entity_name: String,
    /// `add_observations` names them `contents`, `delete_observations`
    /// `observations`.
    #[serde(alias = "observations")]
    pub contents: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddedObservations {
    pub entity_name: String,
    pub added_observations: Vec<String>,
}

/// `POST /api/v1/entities/import` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KgImportRequest {
    /// The memory server's file (`memory.jsonl`): one JSON object per line,
    /// `{"type":"entity",...}` or `{"type":"relation",...}`.
    pub jsonl: String,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
pub struct KgImport {
    pub entities_created: usize,
    pub observations_created: usize,
    pub relations_created: usize,
    /// Entities and relations the graph had already.
    pub skipped: usize,
    /// Lines that are not an entity or a relation: `{line, message}`.
    pub errors: Vec<KgImportError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct KgImportError {
    /// 1-based.
    pub line: usize,
    pub message: String,
}

/// One line of the memory server's file.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum JsonlLine {
    Entity {
        name: String,
        #[serde(rename = "entityType")]
        entity_type: String,
        #[serde(default)]
        observations: Vec<String>,
    },
    Relation {
        from: String,
        to: String,
        #[serde(rename = "relationType")]
        relation_type: String,
    },
}

/// A piece read back: its memory, whether the caller owns it.
#[derive(Debug, Clone)]
struct Piece {
    id: MemoryId,
    owned: bool,
    entity: String,
    content: String,
    tags: BTreeMap<String, Value>,
}

impl Piece {
    fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).and_then(Value::as_str)
    }
}

/// The caller's visible pieces, by kind.
#[derive(Debug, Default)]
struct Pieces {
    entities: Vec<Piece>,
    observations: Vec<Piece>,
    relations: Vec<Piece>,
}

fn key(name: &str) -> String {
    normalise(name).unwrap_or_else(|| name.trim().to_lowercase())
}

fn relation_key(r: &KgRelation) -> (String, String, String) {
    (key(&r.from), key(&r.to), r.relation_type.trim().to_owned())
}

impl Pieces {
    /// The graph they make: entities in the order declared, observations
    /// oldest first, relations deduplicated.
    fn graph(&self) -> KnowledgeGraph {
        let mut entities: Vec<KgEntity> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for p in &self.entities {
            if let std::collections::hash_map::Entry::Vacant(slot) = index.entry(key(&p.entity)) {
                slot.insert(entities.len());
                entities.push(KgEntity {
                    name: p.entity.clone(),
                    entity_type: p.tag("kg_type").unwrap_or_default().to_owned(),
                    observations: Vec::new(),
                });
            }
        }
        for p in &self.observations {
            let k = key(&p.entity);
            let i = *index.entry(k).or_insert_with(|| {
                entities.push(KgEntity {
                    name: p.entity.clone(),
                    entity_type: p.tag("kg_type").unwrap_or_default().to_owned(),
                    observations: Vec::new(),
                });
                entities.len() - 1
            });
            if !entities[i].observations.contains(&p.content) {
                entities[i].observations.push(p.content.clone());
            }
        }
        let mut seen = BTreeSet::new();
        let relations = self
            .relations
            .iter()
            .filter_map(|p| {
                Some(KgRelation {
                    from: p.entity.clone(),
                    to: p.tag("kg_to")?.to_owned(),
                    relation_type: p.tag("kg_relation")?.to_owned(),
                })
            })
            .filter(|r| seen.insert(relation_key(r)))
            .collect();
        KnowledgeGraph { entities, relations }
    }
}

/// The part of `graph` whose entities `keep` admits, with the relations
/// between two kept entities.
fn subgraph(graph: KnowledgeGraph, keep: impl Fn(&KgEntity) -> bool) -> KnowledgeGraph {
    let entities: Vec<KgEntity> = graph.entities.into_iter().filter(|e| keep(e)).collect();
    let names: BTreeSet<String> = entities.iter().map(|e| key(&e.name)).collect();
    let relations =
        graph.relations.into_iter().filter(|r| names.contains(&key(&r.from)) && names.contains(&key(&r.to))).collect();
    KnowledgeGraph { entities, relations }
}

fn name_ok(field: &str, name: &str, out: &mut Vec<FieldViolation>) {
    if crate::entities::entity_name(field, name, &mut Vec::new()).is_none() {
        out.push(FieldViolation::new(field, "must name an entity: 1 to 200 characters besides punctuation"));
    }
}

fn type_ok(field: &str, value: &str, out: &mut Vec<FieldViolation>) {
    let n = value.trim().chars().count();
    if n == 0 || n > MAX_TYPE_CHARS || value.chars().any(char::is_control) {
        out.push(FieldViolation::new(field, format!("must be 1 to {MAX_TYPE_CHARS} characters")));
    }
}

fn count_ok(field: &str, n: usize, out: &mut Vec<FieldViolation>) {
    if n > MAX_ITEMS_PER_CALL {
        out.push(FieldViolation::new(field, format!("at most {MAX_ITEMS_PER_CALL} per call")));
    }
}

fn checked(out: Vec<FieldViolation>) -> Result<(), DomainError> {
    if out.is_empty() { Ok(()) } else { Err(DomainError::Validation(out)) }
}

fn tags(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), Value::from(*v))).collect()
}

/// The knowledge-graph tools over the caller's memories.
#[derive(Debug, Clone)]
pub struct KnowledgeGraphService {
    memories: MemoryService,
}

impl KnowledgeGraphService {
    pub fn new(memories: MemoryService) -> Self {
        Self { memories }
    }

    async fn pieces_of(&self, p: &Principal, kind: &str) -> Result<Vec<Piece>, DomainError> {
        let mut out = Vec::new();
        let size = 500;
        for page in 1..=MAX_PIECES.div_ceil(size) {
            let filter = MemoryFilter {
                tags: BTreeMap::from([(KG_TAG.to_owned(), kind.to_owned())]),
                sort: SortField::CreatedAt,
                direction: SortDirection::Asc,
                ..Default::default()
            };
            let got = self.memories.list(p, filter, PageRequest { page, size }).await?;
            let last = got.items.len() < size as usize;
            out.extend(got.items.into_iter().filter_map(|v: MemoryView| {
                Some(Piece {
                    id: v.memory.id,
                    owned: v.owned,
                    entity: v.memory.metadata.entity.clone()?,
                    content: v.memory.content,
                    tags: v.memory.metadata.tags,
                })
            }));
            if last {
                break;
            }
        }
        Ok(out)
    }

    async fn pieces(&self, p: &Principal) -> Result<Pieces, DomainError> {
        Ok(Pieces {
            entities: self.pieces_of(p, "entity").await?,
            observations: self.pieces_of(p, "observation").await?,
            relations: self.pieces_of(p, "relation").await?,
        })
    }

    async fn write(
        &self,
        p: &Principal,
        text: String,
        entity: &str,
        tags: Map<String, Value>,
    ) -> Result<(), DomainError> {
        let metadata = MetadataInput { entity: Some(entity.trim().to_owned()), tags, ..Default::default() };
        self.memories
            .create(p, CreateMemoryInput { text, app: None, metadata, ..CreateMemoryInput::default() })
            .await?;
        Ok(())
    }

    /// The caller's whole visible graph.
    pub async fn read_graph(&self, p: &Principal) -> Result<KnowledgeGraph, DomainError> {
        Ok(self.pieces(p).await?.graph())
    }

    /// Entities whose name, type or an observation contains `query` (any
    /// case), and the relations between them.
    pub async fn search_nodes(&self, p: &Principal, query: &str) -> Result<KnowledgeGraph, DomainError> {
        let q = query.trim().to_lowercase();
        if q.is_empty() || q.chars().count() > 2048 {
            return Err(DomainError::Validation(vec![FieldViolation::new("query", "must be 1 to 2048 characters")]));
        }
        let graph = self.read_graph(p).await?;
        Ok(subgraph(graph, |e| {
            e.name.to_lowercase().contains(&q)
                || e.entity_type.to_lowercase().contains(&q)
                || e.observations.iter().any(|o| o.to_lowercase().contains(&q))
        }))
    }

    /// The named entities and the relations between them.
    pub async fn open_nodes(&self, p: &Principal, names: &[String]) -> Result<KnowledgeGraph, DomainError> {
        let mut out = Vec::new();
        count_ok("names", names.len(), &mut out);
        checked(out)?;
        let wanted: BTreeSet<String> = names.iter().map(|n| key(n)).collect();
        let graph = self.read_graph(p).await?;
        Ok(subgraph(graph, |e| wanted.contains(&key(&e.name))))
    }

    /// Creates the entities the graph does not have yet (by name); returns
    /// those created.
    pub async fn create_entities(&self, p: &Principal, entities: Vec<KgEntity>) -> Result<Vec<KgEntity>, DomainError> {
        let mut out = Vec::new();
        count_ok("entities", entities.len(), &mut out);
        for (i, e) in entities.iter().enumerate() {
            name_ok(&format!("entities[{i}].name"), &e.name, &mut out);
            type_ok(&format!("entities[{i}].entityType"), &e.entity_type, &mut out);
            count_ok(&format!("entities[{i}].observations"), e.observations.len(), &mut out);
        }
        checked(out)?;
        let graph = self.read_graph(p).await?;
        let mut known: BTreeSet<String> = graph.entities.iter().map(|e| key(&e.name)).collect();
        let mut created = Vec::new();
        for e in entities {
            if !known.insert(key(&e.name)) {
                continue;
            }
            let kind = e.entity_type.trim();
            let declaration = format!("{} is a {kind}.", e.name.trim());
            self.write(p, declaration, &e.name, tags(&[(KG_TAG, "entity"), ("kg_type", kind)])).await?;
            let mut observations: Vec<String> = Vec::new();
            for o in &e.observations {
                if !observations.contains(o) {
                    self.write(p, o.clone(), &e.name, tags(&[(KG_TAG, "observation"), ("kg_type", kind)])).await?;
                    observations.push(o.clone());
                }
            }
            created.push(KgEntity { name: e.name.trim().to_owned(), entity_type: kind.to_owned(), observations });
        }
        Ok(created)
    }

    /// Creates the relations the graph does not have yet; returns those
    /// created.
    pub async fn create_relations(
        &self,
        p: &Principal,
        relations: Vec<KgRelation>,
    ) -> Result<Vec<KgRelation>, DomainError> {
        let mut out = Vec::new();
        count_ok("relations", relations.len(), &mut out);
        for (i, r) in relations.iter().enumerate() {
            name_ok(&format!("relations[{i}].from"), &r.from, &mut out);
            name_ok(&format!("relations[{i}].to"), &r.to, &mut out);
            type_ok(&format!("relations[{i}].relationType"), &r.relation_type, &mut out);
        }
        checked(out)?;
        let graph = self.read_graph(p).await?;
        let mut known: BTreeSet<(String, String, String)> = graph.relations.iter().map(relation_key).collect();
        let mut created = Vec::new();
        for r in relations {
            if !known.insert(relation_key(&r)) {
                continue;
            }
            let (from, to, kind) = (r.from.trim(), r.to.trim(), r.relation_type.trim());
            // The target in backticks, so the extractor takes it for an
            // entity whatever its case; the type in words, so `works_at`
            // is also the typed relation `works at` reads as.
            let text = format!("{from} {} `{to}`", kind.replace('_', " "));
            self.write(p, text, from, tags(&[(KG_TAG, "relation"), ("kg_relation", kind), ("kg_to", to)])).await?;
            created.push(KgRelation { from: from.to_owned(), to: to.to_owned(), relation_type: kind.to_owned() });
        }
        Ok(created)
    }

    /// Adds observations to existing entities (NOT_FOUND, and nothing
    /// written, when one does not exist); returns what was new.
    pub async fn add_observations(
        &self,
        p: &Principal,
        items: Vec<KgObservations>,
    ) -> Result<Vec<AddedObservations>, DomainError> {
        let mut out = Vec::new();
        count_ok("observations", items.len(), &mut out);
        for (i, item) in items.iter().enumerate() {
            name_ok(&format!("observations[{i}].entityName"), &item.entity_name, &mut out);
            count_ok(&format!("observations[{i}].contents"), item.contents.len(), &mut out);
        }
        checked(out)?;
        let graph = self.read_graph(p).await?;
        let by_key: HashMap<String, &KgEntity> = graph.entities.iter().map(|e| (key(&e.name), e)).collect();
        for item in &items {
            if !by_key.contains_key(&key(&item.entity_name)) {
                return Err(DomainError::NotFound("entity"));
            }
        }
        let mut added = Vec::new();
        for item in items {
            let Some(entity) = by_key.get(&key(&item.entity_name)) else { continue };
            let mut new: Vec<String> = Vec::new();
            for c in item.contents {
                if entity.observations.contains(&c) || new.contains(&c) {
                    continue;
                }
                let t = tags(&[(KG_TAG, "observation"), ("kg_type", &entity.entity_type)]);
                self.write(p, c.clone(), &entity.name, t).await?;
                new.push(c);
            }
            added.push(AddedObservations { entity_name: entity.name.clone(), added_observations: new });
        }
        Ok(added)
    }

    async fn delete_ids(&self, p: &Principal, ids: Vec<MemoryId>) -> Result<usize, DomainError> {
        let mut deleted = 0;
        for chunk in ids.chunks(crate::rules::MAX_IDS_PER_CALL) {
            deleted += self.memories.delete(p, chunk).await?.changed.len();
        }
        Ok(deleted)
    }

    /// Deletes the caller's pieces of the named entities, and its relations
    /// from or to them; returns how many memories were deleted.
    pub async fn delete_entities(&self, p: &Principal, names: &[String]) -> Result<usize, DomainError> {
        let mut out = Vec::new();
        count_ok("entityNames", names.len(), &mut out);
        checked(out)?;
        let gone: BTreeSet<String> = names.iter().map(|n| key(n)).collect();
        let pieces = self.pieces(p).await?;
        let ids: Vec<MemoryId> = pieces
            .entities
            .iter()
            .chain(&pieces.observations)
            .filter(|x| x.owned && gone.contains(&key(&x.entity)))
            .chain(pieces.relations.iter().filter(|x| {
                x.owned && (gone.contains(&key(&x.entity)) || x.tag("kg_to").is_some_and(|to| gone.contains(&key(to))))
            }))
            .map(|x| x.id)
            .collect();
        self.delete_ids(p, ids).await
    }

    /// Deletes the caller's given observations of entities.
    pub async fn delete_observations(&self, p: &Principal, items: Vec<KgObservations>) -> Result<usize, DomainError> {
        let mut out = Vec::new();
        count_ok("deletions", items.len(), &mut out);
        checked(out)?;
        let wanted: BTreeSet<(String, String)> =
            items.iter().flat_map(|i| i.contents.iter().map(|c| (key(&i.entity_name), c.clone()))).collect();
        let pieces = self.pieces(p).await?;
        let ids = pieces
            .observations
            .iter()
            .filter(|x| x.owned && wanted.contains(&(key(&x.entity), x.content.clone())))
            .map(|x| x.id)
            .collect();
        self.delete_ids(p, ids).await
    }

    /// Deletes the caller's given relations.
    pub async fn delete_relations(&self, p: &Principal, relations: Vec<KgRelation>) -> Result<usize, DomainError> {
        let mut out = Vec::new();
        count_ok("relations", relations.len(), &mut out);
        checked(out)?;
        let wanted: BTreeSet<(String, String, String)> = relations.iter().map(relation_key).collect();
        let pieces = self.pieces(p).await?;
        let ids = pieces
            .relations
            .iter()
            .filter(|x| x.owned)
            .filter(|x| match (x.tag("kg_to"), x.tag("kg_relation")) {
                (Some(to), Some(kind)) => wanted.contains(&(key(&x.entity), key(to), kind.to_owned())),
                _ => false,
            })
            .map(|x| x.id)
            .collect();
        self.delete_ids(p, ids).await
    }

    /// Imports the memory server's JSONL file: entities first, then
    /// relations; a line that is neither is reported, not fatal.
    pub async fn import_jsonl(&self, p: &Principal, text: &str) -> Result<KgImport, DomainError> {
        let mut report = KgImport::default();
        let (mut entities, mut relations) = (Vec::new(), Vec::new());
        for (n, line) in text.lines().enumerate() {
            if n >= MAX_IMPORT_LINES {
                report.errors.push(KgImportError { line: n + 1, message: format!("at most {MAX_IMPORT_LINES} lines") });
                break;
            }
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<JsonlLine>(line) {
                Ok(JsonlLine::Entity { name, entity_type, observations }) => {
                    let mut out = Vec::new();
                    name_ok("name", &name, &mut out);
                    type_ok("entityType", &entity_type, &mut out);
                    match out.first() {
                        None => entities.push(KgEntity { name, entity_type, observations }),
                        Some(v) => report
                            .errors
                            .push(KgImportError { line: n + 1, message: format!("{}: {}", v.field, v.message) }),
                    }
                }
                Ok(JsonlLine::Relation { from, to, relation_type }) => {
                    let mut out = Vec::new();
                    name_ok("from", &from, &mut out);
                    name_ok("to", &to, &mut out);
                    type_ok("relationType", &relation_type, &mut out);
                    match out.first() {
                        None => relations.push(KgRelation { from, to, relation_type }),
                        Some(v) => report
                            .errors
                            .push(KgImportError { line: n + 1, message: format!("{}: {}", v.field, v.message) }),
                    }
                }
                Err(e) => report.errors.push(KgImportError { line: n + 1, message: e.to_string() }),
            }
        }
        let (n_entities, n_relations) = (entities.len(), relations.len());
        for chunk in entities.chunks(MAX_ITEMS_PER_CALL) {
            let created = self.create_entities(p, chunk.to_vec()).await?;
            report.entities_created += created.len();
            report.observations_created += created.iter().map(|e| e.observations.len()).sum::<usize>();
        }
        for chunk in relations.chunks(MAX_ITEMS_PER_CALL) {
            report.relations_created += self.create_relations(p, chunk.to_vec()).await?.len();
        }
        report.skipped = n_entities + n_relations - report.entities_created - report.relations_created;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(entity: &str, content: &str, tags: &[(&str, &str)]) -> Piece {
        Piece {
            id: MemoryId::new(),
            owned: true,
            entity: entity.into(),
            content: content.into(),
            tags: tags.iter().map(|(k, v)| ((*k).to_owned(), Value::from(*v))).collect(),
        }
    }

    #[test]
    fn pieces_make_one_graph_by_normalised_name() {
        let pieces = Pieces {
            entities: vec![piece("Alice", "Alice is a person.", &[("kg", "entity"), ("kg_type", "person")])],
            observations: vec![
                piece("alice", "Speaks Spanish", &[("kg", "observation")]),
                piece("ALICE", "Speaks Spanish", &[("kg", "observation")]),
                piece("Acme", "Makes anvils", &[("kg", "observation"), ("kg_type", "company")]),
            ],
            relations: vec![
                piece("Alice", "Alice works_at Acme", &[("kg_relation", "works_at"), ("kg_to", "Acme")]),
                piece("alice", "alice works_at acme", &[("kg_relation", "works_at"), ("kg_to", "acme")]),
            ],
        };
        let graph = pieces.graph();
        assert_eq!(
            graph.entities,
            [
                KgEntity {
                    name: "Alice".into(),
                    entity_type: "person".into(),
                    observations: vec!["Speaks Spanish".into()]
                },
                KgEntity {
                    name: "Acme".into(),
                    entity_type: "company".into(),
                    observations: vec!["Makes anvils".into()]
                },
            ]
        );
        assert_eq!(
            graph.relations,
            [KgRelation { from: "Alice".into(), to: "Acme".into(), relation_type: "works_at".into() }]
        );
        let only_alice = subgraph(graph, |e| e.name == "Alice");
        assert!(only_alice.relations.is_empty(), "a relation needs both ends");
    }

    #[test]
    fn jsonl_lines_parse_as_the_memory_server_writes_them() {
        let e: JsonlLine =
            serde_json::from_str(r#"{"type":"entity","name":"Alice","entityType":"person","observations":["x"]}"#)
                .unwrap();
        assert!(matches!(e, JsonlLine::Entity { ref name, .. } if name == "Alice"));
        let r: JsonlLine =
            serde_json::from_str(r#"{"type":"relation","from":"Alice","to":"Acme","relationType":"works_at"}"#)
                .unwrap();
        assert!(matches!(r, JsonlLine::Relation { ref relation_type, .. } if relation_type == "works_at"));
        assert!(serde_json::from_str::<JsonlLine>(r#"{"type":"note","text":"x"}"#).is_err());
    }
}
