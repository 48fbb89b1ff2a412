//! Neo4j queries of the graph and entity API (`EntityGraph` and
//! `GraphAnalytics`), under the same rules as [`super::neo4j`]: fully
//! parameterised, every node pattern of the org, and every memory restricted
//! to what the caller's [`SearchFilter`] admits before anything is counted.
//!
//! Entities carry `display_name`, `kind` and `kind_rank`; merged names are
//! `(:Alias {org_id, name, entity, merged_by, merged_at, memories_moved})`
//! nodes; typed relations are the three `rel_*` lists of the memory node
//! that states them (see [`super::neo4j::upsert_memory`]).

use chrono::{DateTime, Utc};
use loci_core::{OrgId, UserId};
use serde_json::{Map, Value, json};

use super::neo4j::{CypherQuery, distinct, memory_conditions};
use loci_index::SearchFilter;

/// `MATCH <pattern>`, `WHERE` the filter's conditions (the `WHERE` opens
/// with `first`, a condition on the pattern's own variables).
fn visible(f: &SearchFilter, pattern: &str, first: &str) -> (String, Map<String, Value>) {
    let mut params = Map::new();
    params.insert("org_id".into(), json!(f.org.as_str()));
    let mut text = format!("MATCH {pattern}\nWHERE {first}\n");
    memory_conditions(f, &mut text, &mut params);
    (text, params)
}

/// The entity columns every summary row has.
const SUMMARY: &str = "e.name AS name, coalesce(e.display_name, e.name) AS display_name, \
                       coalesce(e.kind, $default_kind) AS kind, n";

fn summary_params(params: &mut Map<String, Value>) {
    params.insert("default_kind".into(), json!(loci_index::extract::EntityKind::Term.as_str()));
}

fn limit(n: usize) -> Value {
    json!(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Visible entities with their visible mention counts (`n`): those named
/// (all when `names` is `None`), with at least `min` mentions, most
/// mentioned first, then by name, at most `max`. Rows: name, display_name,
/// kind, n.
pub fn entities(f: &SearchFilter, names: Option<&[String]>, min: u64, max: usize) -> CypherQuery {
    let (mut text, mut params) = visible(
        f,
        "(m:Memory {org_id: $org_id})-[:MENTIONS]->(e:Entity {org_id: $org_id})",
        "($names IS NULL OR e.name IN $names)",
    );
    text.push_str("WITH e, count(DISTINCT m) AS n\nWHERE n >= $min\nORDER BY n DESC, e.name ASC\nLIMIT $limit\n");
    text.push_str(&format!("RETURN {SUMMARY}"));
    params.insert("names".into(), names.map_or(Value::Null, |n| json!(distinct(n))));
    params.insert("min".into(), json!(i64::try_from(min).unwrap_or(i64::MAX)));
    params.insert("limit".into(), limit(max));
    summary_params(&mut params);
    CypherQuery { text, params }
}

/// Visible entities co-mentioned with `name`, with the number of visible
/// memories mentioning both (`n`), most first, then by name.
pub fn co_mentioned(f: &SearchFilter, name: &str, max: usize) -> CypherQuery {
    let (mut text, mut params) = visible(
        f,
        "(s:Entity {org_id: $org_id, name: $name})<-[:MENTIONS]-(m:Memory {org_id: $org_id})\
         -[:MENTIONS]->(e:Entity {org_id: $org_id})",
        "e.name <> $name",
    );
    text.push_str("WITH e, count(DISTINCT m) AS n\nORDER BY n DESC, e.name ASC\nLIMIT $limit\n");
    text.push_str(&format!("RETURN {SUMMARY}"));
    params.insert("name".into(), json!(name));
    params.insert("limit".into(), limit(max));
    summary_params(&mut params);
    CypherQuery { text, params }
}

/// One breadth-first step: every `(from, to)` with `from` in `frontier` and
/// `to` co-mentioned with it in a visible memory.
pub fn steps(f: &SearchFilter, frontier: &[String]) -> CypherQuery {
    let (mut text, mut params) = visible(
        f,
        "(a:Entity {org_id: $org_id})<-[:MENTIONS]-(m:Memory {org_id: $org_id})\
         -[:MENTIONS]->(b:Entity {org_id: $org_id})",
        "a.name IN $frontier AND b.name <> a.name",
    );
    text.push_str("RETURN DISTINCT a.name AS source, b.name AS target");
    params.insert("frontier".into(), json!(distinct(frontier)));
    CypherQuery { text, params }
}

/// The visible mention rows, by memory id then entity name, at most `max`:
/// rows memory, name, display_name, kind.
pub fn mentions(f: &SearchFilter, max: usize) -> CypherQuery {
    let (mut text, mut params) =
        visible(f, "(m:Memory {org_id: $org_id})-[:MENTIONS]->(e:Entity {org_id: $org_id})", "e.name IS NOT NULL");
    text.push_str(
        "WITH m.id AS memory, e\n\
         ORDER BY memory ASC, e.name ASC\n\
         LIMIT $limit\n\
         RETURN memory, e.name AS name, coalesce(e.display_name, e.name) AS display_name, \
         coalesce(e.kind, $default_kind) AS kind",
    );
    params.insert("limit".into(), limit(max));
    summary_params(&mut params);
    CypherQuery { text, params }
}

/// The number of visible memories: one row `n`.
pub fn count_memories(f: &SearchFilter) -> CypherQuery {
    let (mut text, params) = visible(f, "(m:Memory {org_id: $org_id})", "m.id IS NOT NULL");
    text.push_str("RETURN count(m) AS n");
    CypherQuery { text, params }
}

/// Visible entities whose name contains `needle`: equal names first, then
/// those starting with it, then by mentions and name.
pub fn search_entities(f: &SearchFilter, needle: &str, max: usize) -> CypherQuery {
    let (mut text, mut params) =
        visible(f, "(m:Memory {org_id: $org_id})-[:MENTIONS]->(e:Entity {org_id: $org_id})", "e.name CONTAINS $needle");
    text.push_str(
        "WITH e, count(DISTINCT m) AS n\n\
         WITH e, n, CASE WHEN e.name = $needle THEN 0 WHEN e.name STARTS WITH $needle THEN 1 ELSE 2 END AS rank\n\
         ORDER BY rank ASC, n DESC, e.name ASC\n\
         LIMIT $limit\n",
    );
    text.push_str(&format!("RETURN {SUMMARY}"));
    params.insert("needle".into(), json!(needle));
    params.insert("limit".into(), limit(max));
    summary_params(&mut params);
    CypherQuery { text, params }
}

/// A page of the visible memories mentioning `name`, newest first: rows id.
pub fn entity_memories(f: &SearchFilter, name: &str, max: usize, offset: usize) -> CypherQuery {
    let (mut text, mut params) = visible(
        f,
        "(m:Memory {org_id: $org_id})-[:MENTIONS]->(e:Entity {org_id: $org_id, name: $name})",
        "m.id IS NOT NULL",
    );
    text.push_str("WITH m\nORDER BY m.created_at DESC, m.id DESC\nSKIP $offset\nLIMIT $limit\nRETURN m.id AS id");
    params.insert("name".into(), json!(name));
    params.insert("offset".into(), limit(offset));
    params.insert("limit".into(), limit(max));
    CypherQuery { text, params }
}

/// The relation statements of the visible memories mentioning `names`
/// (one relation per row: subject, predicate, object, memory, created_at),
/// kept by `keep`, oldest statement first, at most `max`.
fn statements(f: &SearchFilter, names: &[String], keep: &str, max: usize) -> CypherQuery {
    let (mut text, mut params) =
        visible(f, "(m:Memory {org_id: $org_id})-[:MENTIONS]->(e:Entity {org_id: $org_id})", "e.name IN $names");
    text.push_str(
        "WITH DISTINCT m\n\
         UNWIND range(0, size(coalesce(m.rel_predicates, [])) - 1) AS i\n\
         WITH m, m.rel_subjects[i] AS subject, m.rel_predicates[i] AS predicate, m.rel_objects[i] AS object\n",
    );
    text.push_str(&format!("WHERE {keep}\n"));
    text.push_str(
        "RETURN subject, predicate, object, m.id AS memory, m.created_at AS created_at\n\
         ORDER BY created_at ASC, memory ASC, subject ASC, predicate ASC, object ASC\n\
         LIMIT $limit",
    );
    params.insert("names".into(), json!(distinct(names)));
    params.insert("limit".into(), limit(max));
    CypherQuery { text, params }
}

/// Visible statements with `name` as subject or object.
pub fn statements_about(f: &SearchFilter, name: &str, max: usize) -> CypherQuery {
    let mut q = statements(f, &[name.to_owned()], "subject = $name OR object = $name", max);
    q.params.insert("name".into(), json!(name));
    q
}

/// Visible statements of `subjects` with one of the `exclusive` predicates
/// and another object than `name` (what ends a relation of `name`).
pub fn exclusive_statements(
    f: &SearchFilter,
    subjects: &[String],
    exclusive: &[&str],
    name: &str,
    max: usize,
) -> CypherQuery {
    let mut q = statements(f, subjects, "subject IN $names AND predicate IN $exclusive AND object <> $name", max);
    q.params.insert("exclusive".into(), json!(exclusive));
    q.params.insert("name".into(), json!(name));
    q
}

/// The visible memories mentioning both `source` and `target`: row `n`.
pub fn count_both(f: &SearchFilter, source: &str, target: &str) -> CypherQuery {
    let (mut text, mut params) = visible(
        f,
        "(s:Entity {org_id: $org_id, name: $source})<-[:MENTIONS]-(m:Memory {org_id: $org_id})\
         -[:MENTIONS]->(t:Entity {org_id: $org_id, name: $target})",
        "m.id IS NOT NULL",
    );
    text.push_str("RETURN count(DISTINCT m) AS n");
    params.insert("source".into(), json!(source));
    params.insert("target".into(), json!(target));
    CypherQuery { text, params }
}

/// The entity each of `names` was merged into: rows name, entity.
pub fn aliases_of(org: &OrgId, names: &[String]) -> CypherQuery {
    let mut params = Map::new();
    params.insert("org_id".into(), json!(org.as_str()));
    params.insert("names".into(), json!(distinct(names)));
    CypherQuery {
        text: String::from(
            "MATCH (a:Alias {org_id: $org_id})\nWHERE a.name IN $names\nRETURN a.name AS name, a.entity AS entity",
        ),
        params,
    }
}

/// The recorded merges of `org` (into `entity`, or all), newest first:
/// rows name, entity, merged_by, merged_at (unix microseconds),
/// memories_moved.
pub fn aliases(org: &OrgId, entity: Option<&str>, max: usize) -> CypherQuery {
    let mut params = Map::new();
    params.insert("org_id".into(), json!(org.as_str()));
    params.insert("entity".into(), json!(entity));
    params.insert("limit".into(), limit(max));
    CypherQuery {
        text: String::from(
            "MATCH (a:Alias {org_id: $org_id})\n\
             WHERE $entity IS NULL OR a.entity = $entity\n\
             WITH a\n\
             ORDER BY a.merged_at DESC, a.name ASC\n\
             LIMIT $limit\n\
             RETURN a.name AS name, a.entity AS entity, a.merged_by AS merged_by, a.merged_at AS merged_at, \
             a.memories_moved AS memories_moved",
        ),
        params,
    }
}

/// The statements of one merge of `source` into `target` in the whole org,
/// run in one transaction: earlier aliases of `source` follow it; every
/// mention of `source` becomes one of `target` and the relation lists name
/// `target` instead (a relation of `target` with itself is dropped, a
/// repeated one kept once); the alias is recorded with the number of
/// memories changed; `source` is deleted.
pub fn merge(org: &OrgId, source: &str, target: &str, actor: &UserId, at: DateTime<Utc>) -> Vec<CypherQuery> {
    let mut params = Map::new();
    params.insert("org_id".into(), json!(org.as_str()));
    params.insert("source".into(), json!(source));
    params.insert("target".into(), json!(target));
    let retarget = CypherQuery {
        text: String::from(
            "MATCH (a:Alias {org_id: $org_id})\n\
             WHERE a.entity = $source\n\
             SET a.entity = $target",
        ),
        params: params.clone(),
    };
    let mut moved = params.clone();
    moved.insert("merged_by".into(), json!(actor.to_string()));
    moved.insert("merged_at".into(), json!(at.timestamp_micros()));
    let move_mentions = CypherQuery {
        text: String::from(
            "MATCH (t:Entity {org_id: $org_id, name: $target})\n\
             OPTIONAL MATCH (s:Entity {org_id: $org_id, name: $source})<-[old:MENTIONS]-(m:Memory {org_id: $org_id})\n\
             DELETE old\n\
             WITH t, m\n\
             FOREACH (x IN CASE WHEN m IS NULL THEN [] ELSE [m] END |\n\
             \x20 MERGE (x)-[:MENTIONS]->(t)\n\
             \x20 SET x.rel_subjects = [i IN range(0, size(coalesce(x.rel_predicates, [])) - 1) |\n\
             \x20   CASE x.rel_subjects[i] WHEN $source THEN $target ELSE x.rel_subjects[i] END]\n\
             \x20 SET x.rel_objects = [i IN range(0, size(coalesce(x.rel_predicates, [])) - 1) |\n\
             \x20   CASE x.rel_objects[i] WHEN $source THEN $target ELSE x.rel_objects[i] END])\n\
             WITH count(m) AS moved\n\
             MERGE (a:Alias {org_id: $org_id, name: $source})\n\
             SET a.entity = $target, a.merged_by = $merged_by, a.merged_at = $merged_at, a.memories_moved = moved",
        ),
        params: moved,
    };
    // Self relations and repeats left by the renaming go, in one pass over
    // the (subject, predicate, object) triples of each changed memory.
    let tidy = CypherQuery {
        text: String::from(
            "MATCH (m:Memory {org_id: $org_id})-[:MENTIONS]->(t:Entity {org_id: $org_id, name: $target})\n\
             WHERE $target IN coalesce(m.rel_subjects, []) OR $target IN coalesce(m.rel_objects, [])\n\
             WITH m, [i IN range(0, size(coalesce(m.rel_predicates, [])) - 1) |\n\
             \x20 [m.rel_subjects[i], m.rel_predicates[i], m.rel_objects[i]]] AS triples\n\
             WITH m, reduce(kept = [], r IN triples |\n\
             \x20 CASE WHEN r[0] = r[2] OR r IN kept THEN kept ELSE kept + [r] END) AS kept\n\
             SET m.rel_subjects = [r IN kept | r[0]], m.rel_predicates = [r IN kept | r[1]],\n\
             \x20 m.rel_objects = [r IN kept | r[2]]",
        ),
        params: {
            let mut p = params.clone();
            p.remove("source");
            p
        },
    };
    let delete = CypherQuery {
        text: String::from("MATCH (s:Entity {org_id: $org_id, name: $source})\nDETACH DELETE s"),
        params: {
            let mut p = params;
            p.remove("target");
            p
        },
    };
    vec![retarget, move_mentions, tidy, delete]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queries::fixtures::{HOSTILE, empty_filter, full_filter, hostile_filter, org};
    use crate::queries::neo4j::tests::assert_well_formed;

    fn ents(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Every read query, on the filter `f`.
    fn reads(f: &SearchFilter, name: &str) -> Vec<CypherQuery> {
        let names = ents(&[name, "melanie"]);
        vec![
            entities(f, None, 1, 50),
            entities(f, Some(&names), 2, 1),
            co_mentioned(f, name, 10),
            steps(f, &names),
            mentions(f, 1_000),
            count_memories(f),
            search_entities(f, name, 10),
            entity_memories(f, name, 10, 20),
            statements_about(f, name, 100),
            exclusive_statements(f, &names, &["works_at", "reports_to"], name, 100),
            count_both(f, name, "melanie"),
        ]
    }

    #[test]
    fn every_read_is_org_scoped_and_filtered() {
        for q in reads(&full_filter(), "caroline") {
            assert_well_formed(&q);
            // The caller's visibility and states restrict the memories.
            assert!(q.text.contains("any(k IN m.visibility WHERE k IN $visibility)"), "{}", q.text);
            assert!(q.text.contains("m.state IN $states"), "{}", q.text);
            assert!(q.text.contains("NOT m.id IN $exclude"), "{}", q.text);
        }
        for q in reads(&empty_filter(), "caroline") {
            assert_well_formed(&q);
            assert!(!q.text.contains("visibility"), "{}", q.text);
        }
    }

    #[test]
    fn hostile_names_only_travel_as_parameters() {
        for (hostile, benign) in reads(&hostile_filter(), HOSTILE).into_iter().zip(reads(&full_filter(), "x")) {
            assert_well_formed(&hostile);
            assert_eq!(hostile.text, benign.text, "a value never changes the text");
            for piece in ["DROP", "1=1", "evil", "(n)", "//"] {
                assert!(!hostile.text.contains(piece), "{piece}");
            }
        }
        let q = search_entities(&full_filter(), HOSTILE, 5);
        assert_eq!(q.params["needle"], HOSTILE);
        for q in merge(&org(), HOSTILE, "b", &UserId::new(), Utc::now()) {
            assert_well_formed(&q);
            assert!(!q.text.contains("1=1"));
        }
        let q = aliases_of(&org(), &ents(&[HOSTILE]));
        assert_well_formed(&q);
        assert_eq!(q.params["names"], json!([HOSTILE]));
    }

    #[test]
    fn entities_bind_names_counts_and_bounds() {
        let f = full_filter();
        let all = entities(&f, None, 1, 50);
        assert_eq!(all.params["names"], Value::Null);
        assert_eq!((all.params["min"].clone(), all.params["limit"].clone()), (json!(1), json!(50)));
        assert!(all.text.contains("ORDER BY n DESC, e.name ASC\nLIMIT $limit"));
        let some = entities(&f, Some(&ents(&["a", "b", "a"])), 1, usize::MAX);
        assert_eq!(some.params["names"], json!(["a", "b"]));
        assert_eq!(some.params["limit"], json!(i64::MAX), "no bound is the largest bound, never a wrap");
        assert_eq!(all.params["default_kind"], "term");
    }

    #[test]
    fn mention_rows_and_pages_are_ordered_for_truncation() {
        let f = full_filter();
        assert!(mentions(&f, 10).text.contains("ORDER BY memory ASC, e.name ASC\nLIMIT $limit"));
        let page = entity_memories(&f, "zoe", 2, 4);
        assert!(page.text.contains("ORDER BY m.created_at DESC, m.id DESC\nSKIP $offset\nLIMIT $limit"));
        assert_eq!((page.params["offset"].clone(), page.params["limit"].clone()), (json!(4), json!(2)));
        let search = search_entities(&f, "o", 3);
        assert!(search.text.contains("ORDER BY rank ASC, n DESC, e.name ASC"));
    }

    #[test]
    fn statements_read_the_relation_lists_of_visible_memories() {
        let f = full_filter();
        let about = statements_about(&f, "alice", 10);
        assert!(about.text.contains("WHERE subject = $name OR object = $name"));
        assert!(about.text.contains("UNWIND range(0, size(coalesce(m.rel_predicates, [])) - 1) AS i"));
        assert_eq!(about.params["names"], json!(["alice"]));
        let ending = exclusive_statements(&f, &ents(&["alice"]), &["works_at"], "acme", 10);
        assert_eq!(ending.params["exclusive"], json!(["works_at"]));
        assert!(ending.text.contains("object <> $name"));
    }

    #[test]
    fn merge_moves_records_and_deletes_in_order() {
        let actor = UserId::new();
        let at = DateTime::<Utc>::from_timestamp(1_750_000_000, 0).unwrap();
        let q = merge(&org(), "caroline", "melanie", &actor, at);
        assert_eq!(q.len(), 4);
        assert!(q[0].text.contains("SET a.entity = $target"));
        assert!(q[1].text.contains("MERGE (a:Alias {org_id: $org_id, name: $source})"));
        assert_eq!(q[1].params["merged_by"], actor.to_string());
        assert_eq!(q[1].params["merged_at"], json!(1_750_000_000_000_000_i64));
        assert!(q[2].text.contains("r[0] = r[2] OR r IN kept"));
        assert_eq!(q[3].text, "MATCH (s:Entity {org_id: $org_id, name: $source})\nDETACH DELETE s");
        let listed = aliases(&org(), Some("melanie"), 1000);
        assert_well_formed(&listed);
        assert_eq!(listed.params["entity"], "melanie");
        assert_well_formed(&aliases(&org(), None, 10));
    }

    /// Every statement the Neo4j adapter sends, named, on filters of every
    /// shape.
    fn every_statement() -> Vec<(String, CypherQuery)> {
        use crate::queries::fixtures::{doc, hostile_doc};
        use crate::queries::neo4j as cy;
        use loci_core::MemoryId;
        use loci_index::extract::doc_entities;
        use loci_index::relations::doc_relations;

        let mut out: Vec<(String, CypherQuery)> = Vec::new();
        for (i, text) in cy::schema().into_iter().enumerate() {
            out.push((format!("schema {i}"), CypherQuery { text: text.to_owned(), params: Map::new() }));
        }
        for (i, d) in [doc(), hostile_doc()].iter().enumerate() {
            let entities = doc_entities(d);
            let relations = doc_relations(d, &entities);
            out.push((format!("upsert {i}"), cy::upsert_memory(d, &entities, &relations)));
        }
        out.push(("upsert bare".into(), cy::upsert_memory(&doc(), &[], &[])));
        let names = ents(&["caroline", "melanie"]);
        for (shape, f) in [("full", full_filter()), ("empty", empty_filter())] {
            out.push((format!("memories_mentioning {shape}"), cy::memories_mentioning(&names, &f, 5)));
            out.push((format!("related {shape}"), cy::related(MemoryId::new(), &f, 5)));
            for (i, q) in reads(&f, "caroline").into_iter().enumerate() {
                out.push((format!("read {i} {shape}"), q));
            }
        }
        out.push(("known_entities".into(), cy::known_entities(&org(), &names)));
        out.push(("delete_memories".into(), cy::delete_memories(&org(), &[MemoryId::new()])));
        out.push(("remove_orphans".into(), cy::remove_orphans(&org())));
        out.push(("count_entities".into(), cy::count_entities(&org())));
        for (i, q) in cy::clear_org(&org()).into_iter().chain(cy::clear_all()).enumerate() {
            out.push((format!("clear {i}"), q));
        }
        for (i, q) in merge(&org(), "caroline", "melanie", &UserId::new(), Utc::now()).into_iter().enumerate() {
            out.push((format!("merge {i}"), q));
        }
        out.push(("aliases_of".into(), aliases_of(&org(), &names)));
        out.push(("aliases".into(), aliases(&org(), None, 10)));
        out.extend(crate::queries::neo4j_code::tests::every_statement());
        out
    }

    /// Neo4j's own parser and semantic analysis accept every statement
    /// (no Neo4j server runs on the CI machine; its front end does).
    #[test]
    #[ignore = "needs node and Neo4j's Cypher linter in LOCI_CYPHER_LINT (scripts/test.sh installs and runs it)"]
    fn cypher_statements_pass_the_neo4j_linter() {
        let modules = std::env::var("LOCI_CYPHER_LINT")
            .expect("LOCI_CYPHER_LINT: a directory whose node_modules hold @neo4j-cypher/language-support");
        let statements: Vec<Value> = every_statement()
            .into_iter()
            .map(|(name, q)| json!({"name": name, "text": q.text, "params": q.params}))
            .collect();
        let file = std::env::temp_dir().join(format!("loci-cypher-{}.json", uuid::Uuid::new_v4().simple()));
        std::fs::write(&file, serde_json::to_vec(&statements).unwrap()).unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/cypher-lint.mjs");
        let out = std::process::Command::new("node").arg(script).arg(&file).arg(&modules).output().unwrap();
        let _ = std::fs::remove_file(&file);
        let report = String::from_utf8_lossy(&out.stdout);
        println!("{report}{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{report}");
        assert!(report.contains(&format!("{} statements, 0 with errors", statements.len())), "{report}");
    }
}
