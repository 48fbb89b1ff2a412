//! The code graph ([`CodeGraph`]) on Neo4j: a repository's graph is replaced
//! in one transaction (readers see the old graph or the new one, never
//! half), and the walks' edge lookups are the statements of
//! [`crate::queries::neo4j_code`].

use async_trait::async_trait;
use loci_core::OrgId;
use loci_index::{CodeCallEdge, CodeGraph, CodeRepoGraph, IndexError};
use neo4rs::Row;
use uuid::Uuid;

use super::{ENGINE, Neo4jGraphIndex};
use crate::queries::neo4j::CypherQuery;
use crate::queries::neo4j_code::{self as code, CallColumns};

fn get<T: serde::de::DeserializeOwned>(row: &Row, key: &str) -> Result<T, IndexError> {
    row.get::<T>(key).map_err(|e| IndexError::Failed(format!("{ENGINE}: {key}: {e}")))
}

fn call(row: &Row) -> Result<CodeCallEdge, IndexError> {
    CallColumns {
        id: get(row, "id")?,
        repo_id: get(row, "repo_id")?,
        file_id: get(row, "file_id")?,
        caller_id: get(row, "caller_id")?,
        callee_id: get(row, "callee_id")?,
        callee_name: get(row, "callee_name")?,
        qualifier: get(row, "qualifier")?,
        module: get(row, "module")?,
        line: get(row, "line")?,
        resolution: get(row, "resolution")?,
    }
    .edge()
    .map_err(|e| IndexError::Failed(format!("{ENGINE}: call: {e}")))
}

impl Neo4jGraphIndex {
    async fn calls(&self, q: &CypherQuery) -> Result<Vec<CodeCallEdge>, IndexError> {
        self.rows(q, call).await
    }
}

#[async_trait]
impl CodeGraph for Neo4jGraphIndex {
    fn engine(&self) -> &'static str {
        ENGINE
    }

    async fn replace_repo(&self, org: &OrgId, repo: &CodeRepoGraph) -> Result<(), IndexError> {
        self.write(code::replace_repo(org, repo)).await
    }

    async fn delete_repo(&self, org: &OrgId, repo: Uuid) -> Result<(), IndexError> {
        self.write(code::delete_repo(org, repo)).await
    }

    async fn calls_to(&self, org: &OrgId, callees: &[Uuid], limit: u64) -> Result<Vec<CodeCallEdge>, IndexError> {
        if callees.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        self.calls(&code::calls(org, callees, true, limit)).await
    }

    async fn calls_from(&self, org: &OrgId, callers: &[Uuid], limit: u64) -> Result<Vec<CodeCallEdge>, IndexError> {
        if callers.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        self.calls(&code::calls(org, callers, false, limit)).await
    }

    async fn external_calls(
        &self,
        org: &OrgId,
        repos: &[Uuid],
        callee: &str,
        limit: u64,
    ) -> Result<Vec<CodeCallEdge>, IndexError> {
        if repos.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        self.calls(&code::external_calls(org, repos, callee, limit)).await
    }

    async fn dependents(&self, org: &OrgId, repo: Uuid) -> Result<Vec<Uuid>, IndexError> {
        self.rows(&code::dependents(org, repo), |row| {
            let id: String = get(row, "id")?;
            Uuid::parse_str(&id).map_err(|e| IndexError::Failed(format!("{ENGINE}: repository id {id:?}: {e}")))
        })
        .await
    }

    async fn count_symbols(&self, org: &OrgId) -> Result<u64, IndexError> {
        let n = self.rows(&code::count_symbols(org), |row| get::<i64>(row, "n")).await?;
        Ok(n.first().map_or(0, |n| u64::try_from(*n).unwrap_or(0)))
    }

    async fn clear(&self, org: Option<&OrgId>) -> Result<(), IndexError> {
        match org {
            Some(org) => self.write(code::clear_org(org)).await,
            None => self.write(code::clear_all()).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::neo4j::to_query;

    #[test]
    fn every_code_statement_converts_to_bolt() {
        for (name, q) in crate::queries::neo4j_code::tests::every_statement() {
            assert!(to_query(&q).is_ok(), "{name}: {}", q.text);
        }
    }
}
