//! Neo4j (code graph): `(:Repo)-[:CONTAINS]->(:File)-[:DEFINES]->(:Symbol)`,
//! `(:File)-[:IMPORTS]->(:Package)`, `(:Repo)-[:DEPENDS_ON]->(:Package)`,
//! `(:Repo)-[:PUBLISHES]->(:Package)`, `(:Repo)-[:DEPENDS_ON]->(:Repo)` (the
//! dependent repository publishing a package the other depends on), and
//! `[:CALLS]` from a `:Symbol` (or the `:File`, for a call at top level) to
//! a `:Symbol`, or to an `(:External {repo_id, name})` for an unresolved
//! call. Every node carries `org_id`; repositories, files and symbols are
//! keyed by `(org_id, id)`, packages by `(org_id, name)`, external names by
//! `(org_id, repo_id, name)`.
//!
//! A call keeps everything the relational row holds on its relationship
//! (`id`, `repo_id`, `file_id`, `caller_id`, `callee_id`, `callee_name`,
//! `qualifier`, `module`, `line`, `resolution`; absent when null), so the
//! walks read edges without joining nodes. Same rules as
//! [`neo4j`](super::neo4j): constant text, every value a parameter, every
//! node pattern of a `MATCH` or a node-creating `MERGE` carrying
//! `org_id: $org_id`.

use loci_core::OrgId;
use loci_index::{CodeCallEdge, CodeRepoGraph};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::neo4j::CypherQuery;

/// Items per `UNWIND` statement.
pub const CHUNK: usize = 1_000;

/// The properties a call read returns, by name (`c` the relationship).
const CALL_COLUMNS: &str = "RETURN c.id AS id, c.repo_id AS repo_id, c.file_id AS file_id, \
c.caller_id AS caller_id, c.callee_id AS callee_id, c.callee_name AS callee_name, c.qualifier AS qualifier, \
c.module AS module, c.line AS line, c.resolution AS resolution";

fn org_params(org: &OrgId) -> Map<String, Value> {
    let mut params = Map::new();
    params.insert("org_id".into(), json!(org.as_str()));
    params
}

fn repo_params(org: &OrgId, repo: Uuid) -> Map<String, Value> {
    let mut params = org_params(org);
    params.insert("repo_id".into(), json!(repo.to_string()));
    params
}

fn strings(ids: &[Uuid]) -> Vec<String> {
    ids.iter().map(ToString::to_string).collect()
}

/// The schema of the code graph (idempotent), created at open with the
/// memories' schema.
pub fn schema() -> Vec<&'static str> {
    vec![
        "CREATE CONSTRAINT loci_code_repo_key IF NOT EXISTS FOR (r:Repo) REQUIRE (r.org_id, r.id) IS UNIQUE",
        "CREATE CONSTRAINT loci_code_file_key IF NOT EXISTS FOR (f:File) REQUIRE (f.org_id, f.id) IS UNIQUE",
        "CREATE CONSTRAINT loci_code_symbol_key IF NOT EXISTS FOR (s:Symbol) REQUIRE (s.org_id, s.id) IS UNIQUE",
        "CREATE CONSTRAINT loci_code_package_key IF NOT EXISTS FOR (p:Package) REQUIRE (p.org_id, p.name) IS UNIQUE",
        "CREATE INDEX loci_code_file_repo IF NOT EXISTS FOR (f:File) ON (f.org_id, f.repo_id)",
        "CREATE INDEX loci_code_symbol_repo IF NOT EXISTS FOR (s:Symbol) ON (s.org_id, s.repo_id)",
        "CREATE INDEX loci_code_external_key IF NOT EXISTS FOR (x:External) ON (x.org_id, x.repo_id, x.name)",
        "CREATE INDEX loci_code_calls_id IF NOT EXISTS FOR ()-[c:CALLS]-() ON (c.id)",
    ]
}

/// Removes a repository's files, symbols and external names (with their
/// edges) and its own edges to packages and repositories; the repository
/// node stays (see [`delete_repo`]).
fn clear_repo(org: &OrgId, repo: Uuid) -> Vec<CypherQuery> {
    let params = repo_params(org, repo);
    [
        "MATCH (s:Symbol {org_id: $org_id, repo_id: $repo_id})\nDETACH DELETE s",
        "MATCH (x:External {org_id: $org_id, repo_id: $repo_id})\nDETACH DELETE x",
        "MATCH (f:File {org_id: $org_id, repo_id: $repo_id})\nDETACH DELETE f",
        "MATCH (r:Repo {org_id: $org_id, id: $repo_id})-[d:DEPENDS_ON|PUBLISHES]-(n {org_id: $org_id})\nDELETE d",
    ]
    .into_iter()
    .map(|text| CypherQuery { text: text.to_owned(), params: params.clone() })
    .collect()
}

/// Packages nothing points at any more.
fn remove_orphan_packages(org: &OrgId) -> CypherQuery {
    CypherQuery {
        text: "MATCH (p:Package {org_id: $org_id})\nWHERE NOT (p)--()\nDELETE p".to_owned(),
        params: org_params(org),
    }
}

/// The statements that make the org's graph of `repo.id` exactly `repo`,
/// to run in one transaction, in order.
pub fn replace_repo(org: &OrgId, repo: &CodeRepoGraph) -> Vec<CypherQuery> {
    let mut out = clear_repo(org, repo.id);
    let mut params = repo_params(org, repo.id);
    params.insert("name".into(), json!(repo.name));
    params.insert("packages".into(), json!(repo.packages));
    params.insert("dependencies".into(), json!(repo.dependencies));
    out.push(CypherQuery {
        text: "MERGE (r:Repo {org_id: $org_id, id: $repo_id})\n\
               SET r.name = $name, r.packages = $packages, r.dependencies = $dependencies\n\
               FOREACH (name IN $dependencies |\n\
               \x20 MERGE (p:Package {org_id: $org_id, name: name})\n\
               \x20 MERGE (r)-[:DEPENDS_ON]->(p))\n\
               FOREACH (name IN $packages |\n\
               \x20 MERGE (p:Package {org_id: $org_id, name: name})\n\
               \x20 MERGE (r)-[:PUBLISHES]->(p))"
            .to_owned(),
        params: params.clone(),
    });
    // Repositories it depends on, and those depending on it.
    let repo_only = repo_params(org, repo.id);
    out.push(CypherQuery {
        text: "MATCH (r:Repo {org_id: $org_id, id: $repo_id})-[:DEPENDS_ON]->(p:Package {org_id: $org_id})\n\
               MATCH (o:Repo {org_id: $org_id})-[:PUBLISHES]->(p:Package {org_id: $org_id})\n\
               WHERE o.id <> $repo_id\n\
               MERGE (r)-[:DEPENDS_ON]->(o)"
            .to_owned(),
        params: repo_only.clone(),
    });
    out.push(CypherQuery {
        text: "MATCH (r:Repo {org_id: $org_id, id: $repo_id})-[:PUBLISHES]->(p:Package {org_id: $org_id})\n\
               MATCH (o:Repo {org_id: $org_id})-[:DEPENDS_ON]->(p:Package {org_id: $org_id})\n\
               WHERE o.id <> $repo_id\n\
               MERGE (o)-[:DEPENDS_ON]->(r)"
            .to_owned(),
        params: repo_only.clone(),
    });
    for files in repo.files.chunks(CHUNK) {
        let mut params = repo_only.clone();
        let listed: Vec<Value> = files
            .iter()
            .map(|f| json!({"id": f.id.to_string(), "path": f.path, "language": f.language, "imports": f.imports}))
            .collect();
        params.insert("files".into(), Value::Array(listed));
        out.push(CypherQuery {
            text: "MATCH (r:Repo {org_id: $org_id, id: $repo_id})\n\
                   UNWIND $files AS x\n\
                   CREATE (r)-[:CONTAINS]->(f:File {org_id: $org_id, repo_id: $repo_id, id: x.id, path: x.path, language: x.language})\n\
                   FOREACH (module IN x.imports |\n\
                   \x20 MERGE (p:Package {org_id: $org_id, name: module})\n\
                   \x20 MERGE (f)-[:IMPORTS]->(p))"
                .to_owned(),
            params,
        });
    }
    for symbols in repo.symbols.chunks(CHUNK) {
        let mut params = repo_only.clone();
        let listed: Vec<Value> = symbols
            .iter()
            .map(|s| {
                json!({"id": s.id.to_string(), "file_id": s.file_id.to_string(), "name": s.name,
                       "qualified_name": s.qualified_name, "kind": s.kind})
            })
            .collect();
        params.insert("symbols".into(), Value::Array(listed));
        out.push(CypherQuery {
            text: "UNWIND $symbols AS x\n\
                   MATCH (f:File {org_id: $org_id, id: x.file_id})\n\
                   CREATE (f)-[:DEFINES]->(:Symbol {org_id: $org_id, repo_id: $repo_id, id: x.id, file_id: x.file_id, name: x.name, qualified_name: x.qualified_name, kind: x.kind})"
                .to_owned(),
            params,
        });
    }
    // Four shapes of call: from a symbol or a file, to a symbol or a name.
    for from_symbol in [true, false] {
        for to_symbol in [true, false] {
            let shaped: Vec<&CodeCallEdge> = repo
                .calls
                .iter()
                .filter(|c| c.caller_id.is_some() == from_symbol && c.callee_id.is_some() == to_symbol)
                .collect();
            for calls in shaped.chunks(CHUNK) {
                out.push(create_calls(org, repo.id, calls, from_symbol, to_symbol));
            }
        }
    }
    out.push(remove_orphan_packages(org));
    out
}

fn create_calls(org: &OrgId, repo: Uuid, calls: &[&CodeCallEdge], from_symbol: bool, to_symbol: bool) -> CypherQuery {
    let mut params = repo_params(org, repo);
    let listed: Vec<Value> = calls
        .iter()
        .map(|c| {
            json!({
                "id": c.id.to_string(),
                "file_id": c.file_id.to_string(),
                "caller_id": c.caller_id.map(|id| id.to_string()),
                "callee_id": c.callee_id.map(|id| id.to_string()),
                "callee_name": c.callee_name,
                "qualifier": c.qualifier,
                "module": c.module,
                "line": c.line,
                "resolution": c.resolution,
            })
        })
        .collect();
    params.insert("calls".into(), Value::Array(listed));
    let mut text = String::from("UNWIND $calls AS x\n");
    text.push_str(if from_symbol {
        "MATCH (a:Symbol {org_id: $org_id, id: x.caller_id})\n"
    } else {
        "MATCH (a:File {org_id: $org_id, id: x.file_id})\n"
    });
    text.push_str(if to_symbol {
        "MATCH (b:Symbol {org_id: $org_id, id: x.callee_id})\n"
    } else {
        "MERGE (b:External {org_id: $org_id, repo_id: $repo_id, name: x.callee_name})\n"
    });
    text.push_str(
        "CREATE (a)-[:CALLS {id: x.id, repo_id: $repo_id, file_id: x.file_id, caller_id: x.caller_id, \
         callee_id: x.callee_id, callee_name: x.callee_name, qualifier: x.qualifier, module: x.module, \
         line: x.line, resolution: x.resolution}]->(b)",
    );
    CypherQuery { text, params }
}

/// Removes a repository with everything in it, then packages nothing
/// points at.
pub fn delete_repo(org: &OrgId, repo: Uuid) -> Vec<CypherQuery> {
    let mut out = clear_repo(org, repo);
    out.push(CypherQuery {
        text: "MATCH (r:Repo {org_id: $org_id, id: $repo_id})\nDETACH DELETE r".to_owned(),
        params: repo_params(org, repo),
    });
    out.push(remove_orphan_packages(org));
    out
}

/// Calls into `callees` (`up`) or made by `callers`, by file and line:
/// rows of [`CALL_COLUMNS`].
pub fn calls(org: &OrgId, symbols: &[Uuid], up: bool, limit: u64) -> CypherQuery {
    let mut params = org_params(org);
    params.insert("ids".into(), json!(strings(symbols)));
    params.insert("limit".into(), json!(i64::try_from(limit).unwrap_or(i64::MAX)));
    let pattern = if up {
        "MATCH (s:Symbol {org_id: $org_id})<-[c:CALLS]-(n {org_id: $org_id})\n"
    } else {
        "MATCH (s:Symbol {org_id: $org_id})-[c:CALLS]->(n {org_id: $org_id})\n"
    };
    let text = format!(
        "{pattern}WHERE s.id IN $ids\nWITH c\nORDER BY c.file_id ASC, c.line ASC\nLIMIT $limit\n{CALL_COLUMNS}"
    );
    CypherQuery { text, params }
}

/// Unresolved calls named `callee` in `repos` that name their module.
pub fn external_calls(org: &OrgId, repos: &[Uuid], callee: &str, limit: u64) -> CypherQuery {
    let mut params = org_params(org);
    params.insert("repos".into(), json!(strings(repos)));
    params.insert("name".into(), json!(callee));
    params.insert("limit".into(), json!(i64::try_from(limit).unwrap_or(i64::MAX)));
    let text = format!(
        "MATCH (n {{org_id: $org_id}})-[c:CALLS]->(x:External {{org_id: $org_id, name: $name}})\n\
         WHERE x.repo_id IN $repos AND c.module IS NOT NULL\n\
         WITH c\n\
         ORDER BY c.file_id ASC, c.line ASC\n\
         LIMIT $limit\n\
         {CALL_COLUMNS}"
    );
    CypherQuery { text, params }
}

/// Repositories depending on `repo`: rows `id`.
pub fn dependents(org: &OrgId, repo: Uuid) -> CypherQuery {
    CypherQuery {
        text: "MATCH (o:Repo {org_id: $org_id})-[:DEPENDS_ON]->(r:Repo {org_id: $org_id, id: $repo_id})\n\
               RETURN DISTINCT o.id AS id\n\
               ORDER BY id"
            .to_owned(),
        params: repo_params(org, repo),
    }
}

/// Symbols of the org: one row `n`.
pub fn count_symbols(org: &OrgId) -> CypherQuery {
    CypherQuery { text: "MATCH (s:Symbol {org_id: $org_id})\nRETURN count(s) AS n".to_owned(), params: org_params(org) }
}

/// Removes the code graph of `org`.
pub fn clear_org(org: &OrgId) -> Vec<CypherQuery> {
    let params = org_params(org);
    [
        "MATCH (s:Symbol {org_id: $org_id})\nDETACH DELETE s",
        "MATCH (x:External {org_id: $org_id})\nDETACH DELETE x",
        "MATCH (f:File {org_id: $org_id})\nDETACH DELETE f",
        "MATCH (r:Repo {org_id: $org_id})\nDETACH DELETE r",
        "MATCH (p:Package {org_id: $org_id})\nDETACH DELETE p",
    ]
    .into_iter()
    .map(|text| CypherQuery { text: text.to_owned(), params: params.clone() })
    .collect()
}

/// Removes the code graph of every org: no parameter at all.
pub fn clear_all() -> Vec<CypherQuery> {
    [
        "MATCH (s:Symbol)\nDETACH DELETE s",
        "MATCH (x:External)\nDETACH DELETE x",
        "MATCH (f:File)\nDETACH DELETE f",
        "MATCH (r:Repo)\nDETACH DELETE r",
        "MATCH (p:Package)\nDETACH DELETE p",
    ]
    .into_iter()
    .map(|text| CypherQuery { text: text.to_owned(), params: Map::new() })
    .collect()
}

/// A call read back from a row's columns (see [`CALL_COLUMNS`]).
#[derive(Debug)]
pub struct CallColumns {
    pub id: String,
    pub repo_id: String,
    pub file_id: String,
    pub caller_id: Option<String>,
    pub callee_id: Option<String>,
    pub callee_name: String,
    pub qualifier: Option<String>,
    pub module: Option<String>,
    pub line: i64,
    pub resolution: String,
}

impl CallColumns {
    /// The edge, every id checked.
    pub fn edge(self) -> Result<CodeCallEdge, String> {
        let id = |what: &str, v: &str| Uuid::parse_str(v).map_err(|e| format!("{what} {v:?}: {e}"));
        let optional = |what: &str, v: Option<String>| v.map(|v| id(what, &v)).transpose();
        Ok(CodeCallEdge {
            id: id("call id", &self.id)?,
            repo_id: id("repo id", &self.repo_id)?,
            file_id: id("file id", &self.file_id)?,
            caller_id: optional("caller id", self.caller_id)?,
            callee_id: optional("callee id", self.callee_id)?,
            callee_name: self.callee_name,
            qualifier: self.qualifier,
            module: self.module,
            line: i32::try_from(self.line).map_err(|e| format!("line {}: {e}", self.line))?,
            resolution: self.resolution,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::queries::fixtures::{HOSTILE, org};
    use crate::queries::neo4j::tests::assert_well_formed;

    /// Also: every code label of every node pattern carries the org.
    fn assert_code_well_formed(q: &CypherQuery) {
        assert_well_formed(q);
        for label in [":Repo", ":File", ":Symbol", ":Package", ":External"] {
            for (pos, _) in q.text.match_indices(label) {
                assert!(q.text[pos + label.len()..].starts_with(" {org_id: $org_id"), "{label} at {pos}: {}", q.text);
            }
        }
    }

    pub(crate) fn every_statement() -> Vec<(String, CypherQuery)> {
        let mut out: Vec<(String, CypherQuery)> = Vec::new();
        for (i, text) in schema().into_iter().enumerate() {
            out.push((format!("code schema {i}"), CypherQuery { text: text.to_owned(), params: Map::new() }));
        }
        let repo = loci_index::contract::sample_repo("lib", &["acme_lib"], &["serde_json"]);
        for (i, q) in replace_repo(&org(), &repo).into_iter().enumerate() {
            out.push((format!("code replace {i}"), q));
        }
        for (i, q) in delete_repo(&org(), repo.id).into_iter().enumerate() {
            out.push((format!("code delete {i}"), q));
        }
        out.push(("code calls up".into(), calls(&org(), &[repo.id], true, 10)));
        out.push(("code calls down".into(), calls(&org(), &[repo.id], false, 10)));
        out.push(("code external".into(), external_calls(&org(), &[repo.id], "to_string", 10)));
        out.push(("code dependents".into(), dependents(&org(), repo.id)));
        out.push(("code count".into(), count_symbols(&org())));
        for (i, q) in clear_org(&org()).into_iter().enumerate() {
            out.push((format!("code clear {i}"), q));
        }
        out
    }

    #[test]
    fn every_statement_is_parameterised_and_scoped_to_the_org() {
        for (name, q) in every_statement().into_iter().filter(|(n, _)| !n.starts_with("code schema")) {
            assert!(!q.params.is_empty(), "{name}");
            assert_code_well_formed(&q);
        }
        for q in clear_all() {
            assert!(q.params.is_empty() && !q.text.contains('$'), "{}", q.text);
        }
    }

    #[test]
    fn a_repository_is_replaced_whole_in_order() {
        let repo = loci_index::contract::sample_repo("lib", &["acme_lib"], &["serde_json"]);
        let q = replace_repo(&org(), &repo);
        // Cleared first, then the repository and its packages, files,
        // symbols, the four shapes of call, then orphan packages.
        assert!(q[0].text.starts_with("MATCH (s:Symbol {org_id: $org_id, repo_id: $repo_id})"));
        assert!(q[3].text.contains("[d:DEPENDS_ON|PUBLISHES]"));
        assert!(q[4].text.starts_with("MERGE (r:Repo {org_id: $org_id, id: $repo_id})"));
        assert_eq!(q[4].params["dependencies"], json!(["serde_json"]));
        let files = q.iter().find(|s| s.params.contains_key("files")).unwrap();
        assert_eq!(files.params["files"].as_array().unwrap().len(), 2);
        assert_eq!(files.params["files"][0]["imports"], json!(["crate::lib"]));
        let calls: Vec<&CypherQuery> = q.iter().filter(|s| s.params.contains_key("calls")).collect();
        // The sample has symbol->symbol (2), symbol->name (1), file->symbol (1).
        assert_eq!(calls.len(), 3);
        let total: usize = calls.iter().map(|s| s.params["calls"].as_array().unwrap().len()).sum();
        assert_eq!(total, repo.calls.len());
        let unresolved = calls.iter().find(|s| s.text.contains("MERGE (b:External")).unwrap();
        assert_eq!(unresolved.params["calls"][0]["callee_id"], Value::Null);
        assert_eq!(unresolved.params["calls"][0]["module"], "serde_json");
        let top_level = calls.iter().find(|s| s.text.contains("MATCH (a:File")).unwrap();
        assert_eq!(top_level.params["calls"][0]["caller_id"], Value::Null);
        assert!(q.last().unwrap().text.contains("WHERE NOT (p)--()"));
    }

    #[test]
    fn large_repositories_are_sent_in_chunks() {
        let mut repo = loci_index::contract::sample_repo("lib", &[], &[]);
        let template = repo.calls[0].clone();
        repo.calls = (0..(CHUNK * 2 + 1))
            .map(|i| CodeCallEdge { id: Uuid::new_v4(), line: i as i32, ..template.clone() })
            .collect();
        let q = replace_repo(&org(), &repo);
        let sizes: Vec<usize> = q
            .iter()
            .filter(|s| s.params.contains_key("calls"))
            .map(|s| s.params["calls"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, vec![CHUNK, CHUNK, 1]);
    }

    #[test]
    fn reads_are_bounded_ordered_and_hostile_values_stay_parameters() {
        let ids = [Uuid::new_v4()];
        let up = calls(&org(), &ids, true, u64::MAX);
        assert_eq!(up.params["limit"], json!(i64::MAX), "no bound is the largest bound, never a wrap");
        assert!(up.text.contains("<-[c:CALLS]-"));
        assert!(up.text.contains("ORDER BY c.file_id ASC, c.line ASC\nLIMIT $limit"));
        assert!(calls(&org(), &ids, false, 5).text.contains("-[c:CALLS]->"));
        let hostile = external_calls(&org(), &ids, HOSTILE, 3);
        assert_eq!(hostile.params["name"], HOSTILE);
        assert!(!hostile.text.contains(HOSTILE));
        assert!(hostile.text.contains("c.module IS NOT NULL"));
    }

    fn columns() -> CallColumns {
        CallColumns {
            id: Uuid::new_v4().to_string(),
            repo_id: Uuid::new_v4().to_string(),
            file_id: Uuid::new_v4().to_string(),
            caller_id: None,
            callee_id: Some(Uuid::new_v4().to_string()),
            callee_name: "f".into(),
            qualifier: None,
            module: None,
            line: 3,
            resolution: "same_file".into(),
        }
    }

    #[test]
    fn call_columns_are_checked() {
        let edge = columns().edge().unwrap();
        assert_eq!((edge.caller_id, edge.line), (None, 3));
        let bad = CallColumns { callee_id: Some("nope".into()), ..columns() };
        assert!(bad.edge().unwrap_err().contains("callee id"));
        let far = CallColumns { line: i64::MAX, ..columns() };
        assert!(far.edge().is_err());
    }
}
