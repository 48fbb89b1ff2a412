//! Neo4j (graph index): `(:Memory)-[:MENTIONS]->(:Entity)`, both labels
//! carrying `org_id`. A memory node is keyed by `(org_id, id)` and an entity
//! by `(org_id, name)`, so two orgs never share a node.
//!
//! Every query is fully parameterised: its text is built only from constant
//! fragments (which filters are present may change the text, a value never
//! does), and every user value travels in [`CypherQuery::params`]. Every node
//! pattern of every `MATCH`, and of every `MERGE` that creates a node,
//! requires `org_id: $org_id`.
//!
//! Properties: `id`, `user_id`, `app_id` (UUID strings), `state`,
//! `visibility` (the document's visibility keys), the optional string fields
//! (absent when unset), `tags` (`key=value` terms) and `created_at` (unix
//! microseconds, the relational store's precision, so `from`/`to` compare
//! exactly).

use std::fmt::Write as _;

use loci_core::{MemoryId, OrgId};
use serde_json::{Map, Value, json};

use super::{state_strs, tag_terms};
use loci_index::extract::ExtractedEntity;
use loci_index::relations::ExtractedRelation;
use loci_index::{IndexDoc, SearchFilter};

/// A Cypher statement and its parameters (`$name` in the text).
#[derive(Debug, Clone, PartialEq)]
pub struct CypherQuery {
    pub text: String,
    pub params: Map<String, Value>,
}

/// The names in order of first appearance, without repeats.
pub(crate) fn distinct(names: &[String]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::with_capacity(names.len());
    for n in names {
        if !out.contains(&n.as_str()) {
            out.push(n);
        }
    }
    out
}

pub(crate) fn id_strings(ids: &[MemoryId]) -> Vec<String> {
    ids.iter().map(ToString::to_string).collect()
}

/// Memories of the filter's org mentioning any of `entities` (normalised
/// names, as [`GraphIndex::entities_in`](loci_index::GraphIndex::entities_in)
/// returns them) among those `f` admits; returns rows `id`, `score` where the
/// score is the number of distinct `entities` the memory mentions, best first,
/// then most recent first.
pub fn memories_mentioning(entities: &[String], f: &SearchFilter, limit: usize) -> CypherQuery {
    let mut params = Map::new();
    params.insert("org_id".into(), json!(f.org.as_str()));
    params.insert("entities".into(), json!(distinct(entities)));
    let mut text = String::from(
        "MATCH (m:Memory {org_id: $org_id})-[:MENTIONS]->(e:Entity {org_id: $org_id})\n\
         WHERE e.name IN $entities\n",
    );
    memory_conditions(f, &mut text, &mut params);
    text.push_str(
        "WITH m, count(DISTINCT e) AS score\n\
         ORDER BY score DESC, m.created_at DESC\n\
         LIMIT $limit\n\
         RETURN m.id AS id, score",
    );
    params.insert("limit".into(), json!(limit));
    CypherQuery { text, params }
}

/// The `AND ..` lines restricting `m` to what `f` admits (after a `WHERE`),
/// with their parameters (every one always present, `null` when unused).
pub(crate) fn memory_conditions(f: &SearchFilter, text: &mut String, params: &mut Map<String, Value>) {
    if !f.states.is_empty() {
        text.push_str("  AND m.state IN $states\n");
        params.insert("states".into(), json!(state_strs(&f.states)));
    }
    // Only when checked: no `IS NULL` escape hatch for visibility in the text.
    if let Some(keys) = f.visibility_keys() {
        text.push_str("  AND any(k IN m.visibility WHERE k IN $visibility)\n");
        params.insert("visibility".into(), json!(keys));
    }
    text.push_str("  AND ($app_id IS NULL OR m.app_id = $app_id)\n");
    params.insert("app_id".into(), json!(f.app_id.map(|a| a.to_string())));
    for (field, value) in f.fields.named() {
        // `field` is one of the constant `StructuredFields::NAMES`.
        let _ = writeln!(text, "  AND (${field} IS NULL OR m.{field} = ${field})");
        params.insert(field.into(), json!(value));
    }
    text.push_str(
        "  AND all(t IN $tags WHERE t IN m.tags)\n\
         \x20 AND ($from IS NULL OR m.created_at >= $from)\n\
         \x20 AND ($to IS NULL OR m.created_at <= $to)\n\
         \x20 AND NOT m.id IN $exclude\n",
    );
    params.insert("tags".into(), json!(tag_terms(&f.tags)));
    params.insert("from".into(), json!(f.from.map(|t| t.timestamp_micros())));
    params.insert("to".into(), json!(f.to.map(|t| t.timestamp_micros())));
    params.insert("exclude".into(), json!(id_strings(&f.exclude)));
}

/// Memories sharing entities with memory `id` among those `f` admits, never
/// `id` itself; rows `id`, `score` where the score is the number of shared
/// entities, best first, then most recent, then greatest id. The starting
/// memory must be of the org and, when visibility is checked, visible to the
/// caller (in any state), or its entities would leak through the hits.
pub fn related(id: MemoryId, f: &SearchFilter, limit: usize) -> CypherQuery {
    let mut params = Map::new();
    params.insert("org_id".into(), json!(f.org.as_str()));
    params.insert("id".into(), json!(id.to_string()));
    let mut text = String::from(
        "MATCH (s:Memory {org_id: $org_id, id: $id})-[:MENTIONS]->(e:Entity {org_id: $org_id})\
         <-[:MENTIONS]-(m:Memory {org_id: $org_id})\n\
         WHERE m.id <> $id\n",
    );
    if f.visibility_keys().is_some() {
        text.push_str("  AND any(k IN s.visibility WHERE k IN $visibility)\n");
    }
    memory_conditions(f, &mut text, &mut params);
    text.push_str(
        "WITH m, count(DISTINCT e) AS score\n\
         ORDER BY score DESC, m.created_at DESC, m.id DESC\n\
         LIMIT $limit\n\
         RETURN m.id AS id, score",
    );
    params.insert("limit".into(), json!(limit));
    CypherQuery { text, params }
}

/// Which of `names` are entities of `org`: rows `name`.
pub fn known_entities(org: &OrgId, names: &[String]) -> CypherQuery {
    let mut params = Map::new();
    params.insert("org_id".into(), json!(org.as_str()));
    params.insert("names".into(), json!(distinct(names)));
    let text = String::from(
        "MATCH (e:Entity {org_id: $org_id})\n\
         WHERE e.name IN $names\n\
         RETURN e.name AS name",
    );
    CypherQuery { text, params }
}

/// Deletes the entities of `org` that no memory mentions any more (after
/// upserts and deletes, as the embedded graph does).
pub fn remove_orphans(org: &OrgId) -> CypherQuery {
    let mut params = Map::new();
    params.insert("org_id".into(), json!(org.as_str()));
    let text = String::from(
        "MATCH (e:Entity {org_id: $org_id})\n\
         WHERE NOT (e)<-[:MENTIONS]-(:Memory {org_id: $org_id})\n\
         DELETE e",
    );
    CypherQuery { text, params }
}

/// Number of entities of `org`: one row `n`.
pub fn count_entities(org: &OrgId) -> CypherQuery {
    let mut params = Map::new();
    params.insert("org_id".into(), json!(org.as_str()));
    CypherQuery { text: String::from("MATCH (e:Entity {org_id: $org_id})\nRETURN count(e) AS n"), params }
}

/// Removes every node of `org` (memories with their edges, then entities).
pub fn clear_org(org: &OrgId) -> Vec<CypherQuery> {
    let mut params = Map::new();
    params.insert("org_id".into(), json!(org.as_str()));
    ["MATCH (m:Memory {org_id: $org_id})\nDETACH DELETE m", "MATCH (e:Entity {org_id: $org_id})\nDETACH DELETE e"]
        .into_iter()
        .map(|text| CypherQuery { text: text.to_owned(), params: params.clone() })
        .collect()
}

/// Removes the nodes of every org (`loci reindex` of all orgs): the only
/// statements without an org, and they take no parameter at all.
pub fn clear_all() -> Vec<CypherQuery> {
    ["MATCH (m:Memory)\nDETACH DELETE m", "MATCH (e:Entity)\nDETACH DELETE e"]
        .into_iter()
        .map(|text| CypherQuery { text: text.to_owned(), params: Map::new() })
        .collect()
}

/// The schema the adapter creates at open (idempotent): a memory is unique
/// by `(org_id, id)`, an entity and an alias (a merged name) by
/// `(org_id, name)`, which also indexes
/// the `MERGE`s and lookups; plus an index on each label's `org_id` for the
/// per-org scans (count, clear, orphans).
pub fn schema() -> Vec<&'static str> {
    vec![
        "CREATE CONSTRAINT loci_memory_key IF NOT EXISTS FOR (m:Memory) REQUIRE (m.org_id, m.id) IS UNIQUE",
        "CREATE CONSTRAINT loci_entity_key IF NOT EXISTS FOR (e:Entity) REQUIRE (e.org_id, e.name) IS UNIQUE",
        "CREATE INDEX loci_memory_org IF NOT EXISTS FOR (m:Memory) ON (m.org_id)",
        "CREATE INDEX loci_entity_org IF NOT EXISTS FOR (e:Entity) ON (e.org_id)",
        "CREATE CONSTRAINT loci_alias_key IF NOT EXISTS FOR (a:Alias) REQUIRE (a.org_id, a.name) IS UNIQUE",
    ]
}

/// Inserts or replaces the memory node of `doc` and makes its `MENTIONS`
/// edges exactly `entities` and its relation lists exactly `relations`
/// (idempotent: at-least-once delivery is safe). An entity is created with
/// its name as first written and its kind; a later mention with a higher
/// kind raises it (as the embedded graph does). Relations are kept on the
/// memory node, three lists of one length (`rel_subjects`,
/// `rel_predicates`, `rel_objects`): a statement belongs to the memory that
/// states it, and is read under that memory's visibility.
pub fn upsert_memory(doc: &IndexDoc, entities: &[ExtractedEntity], relations: &[ExtractedRelation]) -> CypherQuery {
    let mut params = Map::new();
    params.insert("org_id".into(), json!(doc.org_id.as_str()));
    params.insert("id".into(), json!(doc.id.to_string()));
    params.insert("user_id".into(), json!(doc.user_id.to_string()));
    params.insert("app_id".into(), json!(doc.app_id.to_string()));
    params.insert("state".into(), json!(doc.state.as_str()));
    params.insert("visibility".into(), json!(doc.visibility_keys()));
    let mut text = String::from(
        "MERGE (m:Memory {org_id: $org_id, id: $id})\n\
         SET m.user_id = $user_id, m.app_id = $app_id, m.state = $state, m.visibility = $visibility",
    );
    for (field, value) in doc.fields.named() {
        // Setting null removes the property, so an unset field is absent.
        let _ = write!(text, ", m.{field} = ${field}");
        params.insert(field.into(), json!(value));
    }
    text.push_str(
        ", m.tags = $tags, m.created_at = $created_at,\n\
         \x20 m.rel_subjects = $rel_subjects, m.rel_predicates = $rel_predicates, m.rel_objects = $rel_objects\n\
         WITH m\n\
         OPTIONAL MATCH (m:Memory {org_id: $org_id})-[old:MENTIONS]->(:Entity {org_id: $org_id})\n\
         DELETE old\n\
         WITH DISTINCT m\n\
         FOREACH (x IN $entities |\n\
         \x20 MERGE (e:Entity {org_id: $org_id, name: x.name})\n\
         \x20 ON CREATE SET e.display_name = x.display, e.kind = x.kind, e.kind_rank = x.rank\n\
         \x20 SET e.kind = CASE WHEN coalesce(e.kind_rank, -1) < x.rank THEN x.kind ELSE e.kind END\n\
         \x20 SET e.kind_rank = CASE WHEN coalesce(e.kind_rank, -1) < x.rank THEN x.rank ELSE e.kind_rank END\n\
         \x20 MERGE (m)-[:MENTIONS]->(e))",
    );
    params.insert("tags".into(), json!(tag_terms(&doc.tags)));
    params.insert("created_at".into(), json!(doc.created_at.timestamp_micros()));
    let mut seen: Vec<&str> = Vec::with_capacity(entities.len());
    let mut listed: Vec<Value> = Vec::with_capacity(entities.len());
    for e in entities {
        if !seen.contains(&e.name.as_str()) {
            seen.push(&e.name);
            listed.push(json!({"name": e.name, "display": e.display, "kind": e.kind.as_str(), "rank": e.kind as i64}));
        }
    }
    params.insert("entities".into(), Value::Array(listed));
    params.insert("rel_subjects".into(), json!(relations.iter().map(|r| r.subject.as_str()).collect::<Vec<_>>()));
    params.insert("rel_predicates".into(), json!(relations.iter().map(|r| r.predicate.as_str()).collect::<Vec<_>>()));
    params.insert("rel_objects".into(), json!(relations.iter().map(|r| r.object.as_str()).collect::<Vec<_>>()));
    CypherQuery { text, params }
}

/// Removes the memory nodes of `ids` that belong to `org`, with their edges
/// (entities stay: other memories may mention them).
pub fn delete_memories(org: &OrgId, ids: &[MemoryId]) -> CypherQuery {
    let mut params = Map::new();
    params.insert("org_id".into(), json!(org.as_str()));
    params.insert("ids".into(), json!(id_strings(ids)));
    let text = String::from(
        "MATCH (m:Memory {org_id: $org_id})\n\
         WHERE m.id IN $ids\n\
         DETACH DELETE m",
    );
    CypherQuery { text, params }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::queries::fixtures::{HOSTILE, doc, empty_filter, full_filter, hostile_doc, hostile_filter, org};
    use crate::queries::tag_term;

    /// Every `$name` the text refers to.
    fn referenced(text: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut rest = text;
        while let Some(pos) = rest.find('$') {
            rest = &rest[pos + 1..];
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            out.insert(rest[..end].to_owned());
        }
        out
    }

    /// The text and params agree, the org is a parameter and every node
    /// pattern that names a label, and every pattern of a MATCH, requires it.
    pub(crate) fn assert_well_formed(q: &CypherQuery) {
        let names: BTreeSet<String> = q.params.keys().cloned().collect();
        assert_eq!(referenced(&q.text), names, "{}", q.text);
        assert_eq!(q.params["org_id"], "acme");
        for label in [":Memory", ":Entity", ":Alias"] {
            for (pos, _) in q.text.match_indices(label) {
                assert!(q.text[pos + label.len()..].starts_with(" {org_id: $org_id"), "{label} at {pos}: {}", q.text);
            }
        }
        for line in q.text.lines().filter(|l| l.trim_start().contains("MATCH ")) {
            assert_eq!(line.matches('(').count(), line.matches("{org_id: $org_id").count(), "{line}");
        }
        // No literal of any kind: every value is a parameter.
        for banned in ['\'', '"', '`', '\\'] {
            assert!(!q.text.contains(banned), "{banned} in {}", q.text);
        }
    }

    fn ents(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Terms named as written, capitalised.
    fn extracted(names: &[String]) -> Vec<ExtractedEntity> {
        names
            .iter()
            .map(|n| {
                let mut display = n.clone();
                if let Some(first) = display.get_mut(0..1) {
                    first.make_ascii_uppercase();
                }
                ExtractedEntity { name: n.clone(), display, kind: loci_index::extract::EntityKind::Term }
            })
            .collect()
    }

    fn depends(subject: &str, object: &str) -> ExtractedRelation {
        ExtractedRelation {
            subject: subject.to_owned(),
            predicate: loci_index::relations::Predicate::DependsOn,
            object: object.to_owned(),
        }
    }

    #[test]
    fn empty_filter_is_org_scoped() {
        let q = memories_mentioning(&ents(&["postgres"]), &empty_filter(), 10);
        assert_well_formed(&q);
        assert!(q.text.starts_with("MATCH (m:Memory {org_id: $org_id})-[:MENTIONS]->(e:Entity {org_id: $org_id})"));
        assert!(!q.params.contains_key("visibility") && !q.params.contains_key("states"));
        assert!(!q.text.contains("visibility") && !q.text.contains("$states"));
        assert_eq!(q.params["entities"], json!(["postgres"]));
        assert_eq!(q.params["category"], Value::Null);
        assert_eq!(q.params["app_id"], Value::Null);
        assert_eq!(q.params["from"], Value::Null);
        assert_eq!(q.params["tags"], json!([]));
        assert_eq!(q.params["exclude"], json!([]));
        assert_eq!(q.params["limit"], 10);
    }

    #[test]
    fn full_filter_params() {
        let f = full_filter();
        let q = memories_mentioning(&ents(&["postgres", "redis", "postgres"]), &f, 5);
        assert_well_formed(&q);
        let p = &q.params;
        assert_eq!(p["entities"], json!(["postgres", "redis"]));
        assert_eq!(p["states"], json!(["active", "paused"]));
        assert_eq!(p["visibility"], json!(f.visibility_keys().unwrap()));
        assert!(q.text.contains("any(k IN m.visibility WHERE k IN $visibility)"));
        assert!(q.text.contains("m.state IN $states"));
        assert_eq!(p["app_id"], f.app_id.unwrap().to_string());
        for (field, want) in [
            ("category", "decision"),
            ("scope", "project"),
            ("artifact_type", "file"),
            ("artifact_ref", "src/main.rs"),
            ("entity", "postgres"),
            ("source", "agent"),
        ] {
            assert_eq!(p[field], want, "{field}");
            assert!(q.text.contains(&format!("(${field} IS NULL OR m.{field} = ${field})")), "{field}");
        }
        assert_eq!(p["tags"], json!(["lang=rust", "team=core"]));
        assert_eq!(p["from"], json!(1_700_000_000_250_000_i64));
        assert_eq!(p["to"], json!(1_800_000_000_000_000_i64));
        assert_eq!(p["exclude"], json!(id_strings(&f.exclude)));
        assert!(q.text.contains("NOT m.id IN $exclude"));
        assert!(q.text.contains("ORDER BY score DESC, m.created_at DESC\nLIMIT $limit"));
    }

    #[test]
    fn visibility_only_when_checked() {
        let mut f = full_filter();
        assert!(memories_mentioning(&ents(&["a"]), &f, 1).params.contains_key("visibility"));
        f.visible_to = None;
        let q = memories_mentioning(&ents(&["a"]), &f, 1);
        assert_well_formed(&q);
        assert!(!q.params.contains_key("visibility") && !q.text.contains("visibility"));
    }

    #[test]
    fn hostile_values_only_in_params() {
        let hostile = ents(&[HOSTILE, "a}) DETACH DELETE (x", "$org_id", "`x`", "'; DROP"]);
        let f = hostile_filter();
        let q = memories_mentioning(&hostile, &f, 3);
        assert_well_formed(&q);
        // The text is exactly that of a benign filter of the same shape.
        assert_eq!(q.text, memories_mentioning(&ents(&["x"]), &full_filter(), 3).text);
        for piece in ["DETACH", "DROP", "1=1", "evil", "(n)", "//"] {
            assert!(!q.text.contains(piece), "{piece}");
        }
        assert_eq!(q.params["entities"], json!(hostile));
        assert_eq!(q.params["entity"], HOSTILE);
        assert_eq!(q.params["tags"], json!([tag_term(HOSTILE, HOSTILE)]));

        let d = hostile_doc();
        let u = upsert_memory(&d, &extracted(&hostile), &[depends(HOSTILE, "x")]);
        assert_well_formed(&u);
        assert_eq!(u.text, upsert_memory(&doc(), &extracted(&ents(&["x"])), &[]).text);
        for piece in ["DROP", "1=1", "evil", "(n)", "//"] {
            assert!(!u.text.contains(piece), "{piece}");
        }
        assert_eq!(u.params["category"], HOSTILE);
        assert_eq!(u.params["entities"][0]["name"], HOSTILE);
        assert_eq!(u.params["rel_subjects"], json!([HOSTILE]));
    }

    #[test]
    fn upsert_sets_every_property() {
        let d = doc();
        let q = upsert_memory(
            &d,
            &extracted(&ents(&["kubernetes", "blue/green", "kubernetes"])),
            &[depends("kubernetes", "blue/green")],
        );
        assert_well_formed(&q);
        assert!(q.text.starts_with("MERGE (m:Memory {org_id: $org_id, id: $id})"));
        let p = &q.params;
        assert_eq!(p["id"], d.id.to_string());
        assert_eq!(p["user_id"], d.user_id.to_string());
        assert_eq!(p["app_id"], d.app_id.to_string());
        assert_eq!(p["state"], "active");
        assert_eq!(p["visibility"], json!(d.visibility_keys()));
        assert_eq!(p["category"], "decision");
        assert_eq!(p["scope"], Value::Null);
        assert_eq!(p["tags"], json!(["team=core"]));
        assert_eq!(p["created_at"], json!(1_750_000_000_123_456_i64));
        let names: Vec<&Value> = p["entities"].as_array().unwrap().iter().map(|e| &e["name"]).collect();
        assert_eq!(names, [&json!("kubernetes"), &json!("blue/green")], "each entity once");
        assert_eq!(p["entities"][0], json!({"name": "kubernetes", "display": "Kubernetes", "kind": "term", "rank": 0}));
        assert_eq!(
            (p["rel_subjects"].clone(), p["rel_predicates"].clone(), p["rel_objects"].clone()),
            (json!(["kubernetes"]), json!(["depends_on"]), json!(["blue/green"]))
        );
        assert!(
            q.text.contains("SET e.kind = CASE WHEN coalesce(e.kind_rank, -1) < x.rank THEN x.kind ELSE e.kind END")
        );
        // Old edges are replaced, new entities are created in the org.
        assert!(q.text.contains("DELETE old"));
        assert!(q.text.contains("MERGE (e:Entity {org_id: $org_id, name: x.name})"));
        let empty = upsert_memory(&d, &[], &[]);
        assert_well_formed(&empty);
        assert_eq!(empty.params["entities"], json!([]));
    }

    #[test]
    fn related_is_org_scoped_and_checks_the_start() {
        let f = full_filter();
        let id = MemoryId::new();
        let q = related(id, &f, 4);
        assert_well_formed(&q);
        assert!(q.text.starts_with("MATCH (s:Memory {org_id: $org_id, id: $id})"));
        assert_eq!(q.params["id"], id.to_string());
        assert!(q.text.contains("WHERE m.id <> $id"));
        assert!(q.text.contains("any(k IN s.visibility WHERE k IN $visibility)"), "the start must be visible");
        assert!(q.text.contains("any(k IN m.visibility WHERE k IN $visibility)"));
        assert_eq!(q.params["visibility"], json!(f.visibility_keys().unwrap()));
        assert_eq!(q.params["states"], json!(["active", "paused"]));
        assert_eq!(q.params["limit"], 4);
        assert!(q.text.contains("ORDER BY score DESC, m.created_at DESC, m.id DESC"));
        let mut open = f;
        open.visible_to = None;
        let q = related(id, &open, 4);
        assert_well_formed(&q);
        assert!(!q.text.contains("visibility") && !q.params.contains_key("visibility"));
        let hostile = related(id, &hostile_filter(), 4);
        assert_well_formed(&hostile);
        assert_eq!(hostile.text, related(id, &full_filter(), 4).text);
        assert_eq!(hostile.params["entity"], HOSTILE);
    }

    #[test]
    fn lookups_counts_and_cleanups_are_org_scoped() {
        let names = ents(&["caroline", HOSTILE, "caroline"]);
        let q = known_entities(&org(), &names);
        assert_well_formed(&q);
        assert_eq!(q.params["names"], json!(["caroline", HOSTILE]));
        assert!(!q.text.contains("DETACH") || q.text.contains("$org_id"));
        for q in [remove_orphans(&org()), count_entities(&org())] {
            assert_well_formed(&q);
            assert_eq!(q.params.len(), 1);
        }
        assert!(remove_orphans(&org()).text.contains("NOT (e)<-[:MENTIONS]-(:Memory {org_id: $org_id})"));
        let clear = clear_org(&org());
        assert_eq!(clear.len(), 2);
        for q in &clear {
            assert_well_formed(q);
        }
        // The all-org cleanup is the only statement without an org, and has
        // nothing to bind.
        for q in clear_all() {
            assert!(q.params.is_empty() && !q.text.contains('$'), "{}", q.text);
        }
        for stmt in schema() {
            assert!(stmt.contains("IF NOT EXISTS") && !stmt.contains('$'), "{stmt}");
        }
    }

    #[test]
    fn deletes_are_scoped_by_org() {
        let ids = vec![MemoryId::new(), MemoryId::new()];
        let q = delete_memories(&org(), &ids);
        assert_well_formed(&q);
        assert_eq!(q.text, "MATCH (m:Memory {org_id: $org_id})\nWHERE m.id IN $ids\nDETACH DELETE m");
        assert_eq!(q.params["ids"], json!(id_strings(&ids)));
        assert_well_formed(&delete_memories(&org(), &[]));
    }
}
