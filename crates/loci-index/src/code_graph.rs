//! The code graph port: repositories, files, symbols and packages with
//! their CONTAINS, DEFINES, IMPORTS, CALLS and DEPENDS_ON edges, in a graph
//! engine (Neo4j). The relational code tables stay the record (incremental
//! parsing, backups) and answer every walk when no engine is configured; an
//! engine holds a projection of each repository, replaced whole after every
//! indexing run, and answers the walks' edge lookups.
//!
//! Invariants (checked by `contract::code_graph_contract`):
//! - Every node carries its org; every lookup filters on it inside the
//!   engine; another org's repository is never read or changed.
//! - `replace_repo` leaves exactly the given repository's graph (nothing of
//!   an earlier run) and `delete_repo` leaves nothing of it.

use async_trait::async_trait;
use loci_core::OrgId;
use uuid::Uuid;

use crate::IndexError;

/// A file of a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeFileNode {
    pub id: Uuid,
    pub path: String,
    pub language: String,
    /// The modules it imports, as written (IMPORTS).
    pub imports: Vec<String>,
}

/// A symbol a file defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeSymbolNode {
    pub id: Uuid,
    pub file_id: Uuid,
    pub name: String,
    pub qualified_name: String,
    pub kind: String,
}

/// A call site: from a symbol (or the file's top level) to a symbol of the
/// repository, or, unresolved, to a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeCallEdge {
    pub id: Uuid,
    pub repo_id: Uuid,
    pub file_id: Uuid,
    pub caller_id: Option<Uuid>,
    pub callee_id: Option<Uuid>,
    pub callee_name: String,
    pub qualifier: Option<String>,
    pub module: Option<String>,
    pub line: i32,
    pub resolution: String,
}

/// One repository's whole graph.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CodeRepoGraph {
    pub id: Uuid,
    pub name: String,
    /// Packages its manifests publish.
    pub packages: Vec<String>,
    /// Packages its manifests depend on (DEPENDS_ON; a registered repository
    /// publishing one is depended on too).
    pub dependencies: Vec<String>,
    pub files: Vec<CodeFileNode>,
    pub symbols: Vec<CodeSymbolNode>,
    pub calls: Vec<CodeCallEdge>,
}

#[async_trait]
pub trait CodeGraph: Send + Sync + std::fmt::Debug {
    /// Engine name for logs and health (`neo4j`).
    fn engine(&self) -> &'static str;
    /// Makes the org's graph of `repo.id` exactly `repo`.
    async fn replace_repo(&self, org: &OrgId, repo: &CodeRepoGraph) -> Result<(), IndexError>;
    /// Removes the repository with everything in it (unknown: no-op).
    async fn delete_repo(&self, org: &OrgId, repo: Uuid) -> Result<(), IndexError>;
    /// Calls into `callees`, ordered by file and line, at most `limit`.
    async fn calls_to(&self, org: &OrgId, callees: &[Uuid], limit: u64) -> Result<Vec<CodeCallEdge>, IndexError>;
    /// Calls made by `callers`, ordered by file and line, at most `limit`.
    async fn calls_from(&self, org: &OrgId, callers: &[Uuid], limit: u64) -> Result<Vec<CodeCallEdge>, IndexError>;
    /// Unresolved calls named `callee` in `repos` that name the module they
    /// came from (candidates for calls into a dependency).
    async fn external_calls(
        &self,
        org: &OrgId,
        repos: &[Uuid],
        callee: &str,
        limit: u64,
    ) -> Result<Vec<CodeCallEdge>, IndexError>;
    /// Registered repositories that depend on `repo` (through a package it
    /// publishes).
    async fn dependents(&self, org: &OrgId, repo: Uuid) -> Result<Vec<Uuid>, IndexError>;
    /// Symbols of the org (of every repository).
    async fn count_symbols(&self, org: &OrgId) -> Result<u64, IndexError>;
    /// Removes the code graph of one org, or of every org.
    async fn clear(&self, org: Option<&OrgId>) -> Result<(), IndexError>;
}
