//! Code intelligence: registered repositories, their files, symbols and
//! calls (the code graph of the embedded profile: Repo, File, Symbol;
//! CONTAINS, DEFINES, CALLS; DEPENDS_ON through the repositories' package
//! lists).
//!
//! Indexing replaces a changed file's symbols in one statement group and
//! rewrites a repository's calls whole after each run (resolution depends on
//! every file); queries walk calls by callee or caller id with their
//! indexes.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use loci_core::model::now;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::entities::{code_calls, code_files, code_repos, code_symbols};
use crate::{StoreError, TenantTx};

/// Rows per insert statement (well under both engines' bind limits).
const INSERT_CHUNK: usize = 200;
/// Ids per `IN` list.
const IN_CHUNK: usize = 1_000;

/// A registered repository.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeRepo {
    pub id: Uuid,
    pub name: String,
    /// `path` or `git`.
    pub source_kind: String,
    pub source: String,
    /// Packages its manifests publish (normalised names).
    pub packages: Vec<String>,
    /// Packages its manifests depend on (normalised names).
    pub dependencies: Vec<String>,
    pub file_count: i32,
    pub symbol_count: i32,
    /// The code indexes its symbols were last put into.
    pub index_generation: Option<String>,
    pub created_at: DateTime<Utc>,
    pub indexed_at: Option<DateTime<Utc>>,
}

fn strings(v: serde_json::Value) -> Vec<String> {
    serde_json::from_value(v).unwrap_or_default()
}

impl From<code_repos::Model> for CodeRepo {
    fn from(m: code_repos::Model) -> Self {
        Self {
            id: m.id,
            name: m.name,
            source_kind: m.source_kind,
            source: m.source,
            packages: strings(m.packages),
            dependencies: strings(m.dependencies),
            file_count: m.file_count,
            symbol_count: m.symbol_count,
            index_generation: m.index_generation,
            created_at: m.created_at,
            indexed_at: m.indexed_at,
        }
    }
}

/// Registers a repository; `None` when the org has one of that name
/// already.
pub async fn create_repo(
    tx: &TenantTx,
    name: &str,
    source_kind: &str,
    source: &str,
) -> Result<Option<CodeRepo>, StoreError> {
    let id = Uuid::new_v4();
    let row = code_repos::ActiveModel {
        id: Set(id),
        org_id: Set(tx.org_str()),
        name: Set(name.to_owned()),
        source_kind: Set(source_kind.to_owned()),
        source: Set(source.to_owned()),
        packages: Set(serde_json::json!([])),
        dependencies: Set(serde_json::json!([])),
        file_count: Set(0),
        symbol_count: Set(0),
        index_generation: Set(None),
        created_at: Set(now()),
        indexed_at: Set(None),
    };
    let inserted = code_repos::Entity::insert(row)
        .on_conflict(OnConflict::columns([code_repos::Column::OrgId, code_repos::Column::Name]).do_nothing().to_owned())
        .exec_without_returning(tx.conn())
        .await?;
    if inserted == 0 {
        return Ok(None);
    }
    get_repo(tx, id).await
}

pub async fn get_repo(tx: &TenantTx, id: Uuid) -> Result<Option<CodeRepo>, StoreError> {
    Ok(code_repos::Entity::find()
        .filter(code_repos::Column::OrgId.eq(tx.org_str()))
        .filter(code_repos::Column::Id.eq(id))
        .one(tx.conn())
        .await?
        .map(CodeRepo::from))
}

pub async fn repo_by_name(tx: &TenantTx, name: &str) -> Result<Option<CodeRepo>, StoreError> {
    Ok(code_repos::Entity::find()
        .filter(code_repos::Column::OrgId.eq(tx.org_str()))
        .filter(code_repos::Column::Name.eq(name))
        .one(tx.conn())
        .await?
        .map(CodeRepo::from))
}

/// The org's repositories by name.
pub async fn list_repos(tx: &TenantTx) -> Result<Vec<CodeRepo>, StoreError> {
    Ok(code_repos::Entity::find()
        .filter(code_repos::Column::OrgId.eq(tx.org_str()))
        .order_by_asc(code_repos::Column::Name)
        .all(tx.conn())
        .await?
        .into_iter()
        .map(CodeRepo::from)
        .collect())
}

/// What an indexing run found about the repository as a whole.
#[derive(Debug, Clone, PartialEq)]
pub struct RepoSummary {
    pub packages: Vec<String>,
    pub dependencies: Vec<String>,
    pub file_count: i32,
    pub symbol_count: i32,
}

pub async fn update_summary(tx: &TenantTx, id: Uuid, summary: &RepoSummary) -> Result<(), StoreError> {
    code_repos::Entity::update_many()
        .col_expr(code_repos::Column::Packages, Expr::value(serde_json::json!(summary.packages)))
        .col_expr(code_repos::Column::Dependencies, Expr::value(serde_json::json!(summary.dependencies)))
        .col_expr(code_repos::Column::FileCount, Expr::value(summary.file_count))
        .col_expr(code_repos::Column::SymbolCount, Expr::value(summary.symbol_count))
        .col_expr(code_repos::Column::IndexedAt, Expr::value(Some(now())))
        .filter(code_repos::Column::OrgId.eq(tx.org_str()))
        .filter(code_repos::Column::Id.eq(id))
        .exec(tx.conn())
        .await?;
    Ok(())
}

/// Deletes a repository with its files, symbols and calls; the ids of the
/// symbols it had (for the search indexes), `None` when there was no such
/// repository.
pub async fn delete_repo(tx: &TenantTx, id: Uuid) -> Result<Option<Vec<Uuid>>, StoreError> {
    if get_repo(tx, id).await?.is_none() {
        return Ok(None);
    }
    let symbols: Vec<Uuid> = code_symbols::Entity::find()
        .select_only()
        .column(code_symbols::Column::Id)
        .filter(code_symbols::Column::OrgId.eq(tx.org_str()))
        .filter(code_symbols::Column::RepoId.eq(id))
        .into_tuple()
        .all(tx.conn())
        .await?;
    code_calls::Entity::delete_many()
        .filter(code_calls::Column::OrgId.eq(tx.org_str()))
        .filter(code_calls::Column::RepoId.eq(id))
        .exec(tx.conn())
        .await?;
    code_symbols::Entity::delete_many()
        .filter(code_symbols::Column::OrgId.eq(tx.org_str()))
        .filter(code_symbols::Column::RepoId.eq(id))
        .exec(tx.conn())
        .await?;
    code_files::Entity::delete_many()
        .filter(code_files::Column::OrgId.eq(tx.org_str()))
        .filter(code_files::Column::RepoId.eq(id))
        .exec(tx.conn())
        .await?;
    code_repos::Entity::delete_many()
        .filter(code_repos::Column::OrgId.eq(tx.org_str()))
        .filter(code_repos::Column::Id.eq(id))
        .exec(tx.conn())
        .await?;
    Ok(Some(symbols))
}

/// A stored file without its parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    pub id: Uuid,
    pub path: String,
    pub language: String,
    pub content_hash: String,
    pub lines: i32,
    pub searchable: bool,
}

/// The repository's files by path.
pub async fn files(tx: &TenantTx, repo: Uuid) -> Result<Vec<FileState>, StoreError> {
    let rows: Vec<(Uuid, String, String, String, i32, bool)> = code_files::Entity::find()
        .select_only()
        .columns([
            code_files::Column::Id,
            code_files::Column::Path,
            code_files::Column::Language,
            code_files::Column::ContentHash,
            code_files::Column::Lines,
            code_files::Column::Searchable,
        ])
        .filter(code_files::Column::OrgId.eq(tx.org_str()))
        .filter(code_files::Column::RepoId.eq(repo))
        .order_by_asc(code_files::Column::Path)
        .into_tuple()
        .all(tx.conn())
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, path, language, content_hash, lines, searchable)| FileState {
            id,
            path,
            language,
            content_hash,
            lines,
            searchable,
        })
        .collect())
}

/// Every file's stored parse (`(file id, path, language, parse)`), what
/// resolution reads.
pub async fn parsed_files(
    tx: &TenantTx,
    repo: Uuid,
) -> Result<Vec<(Uuid, String, String, serde_json::Value)>, StoreError> {
    Ok(code_files::Entity::find()
        .select_only()
        .columns([
            code_files::Column::Id,
            code_files::Column::Path,
            code_files::Column::Language,
            code_files::Column::Parsed,
        ])
        .filter(code_files::Column::OrgId.eq(tx.org_str()))
        .filter(code_files::Column::RepoId.eq(repo))
        .order_by_asc(code_files::Column::Path)
        .into_tuple()
        .all(tx.conn())
        .await?)
}

/// A file as indexing writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFile {
    pub id: Uuid,
    pub path: String,
    pub language: String,
    pub content_hash: String,
    pub bytes: i64,
    pub lines: i32,
    pub parsed: serde_json::Value,
}

/// A symbol as stored and read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolRow {
    pub id: Uuid,
    pub repo_id: Uuid,
    pub file_id: Uuid,
    pub name: String,
    pub qualified_name: String,
    pub kind: String,
    pub language: String,
    pub start_line: i32,
    pub end_line: i32,
    pub signature: String,
    pub doc: Option<String>,
    pub owner_type: Option<String>,
    pub parent_id: Option<Uuid>,
    pub excerpt: String,
}

impl From<code_symbols::Model> for SymbolRow {
    fn from(m: code_symbols::Model) -> Self {
        Self {
            id: m.id,
            repo_id: m.repo_id,
            file_id: m.file_id,
            name: m.name,
            qualified_name: m.qualified_name,
            kind: m.kind,
            language: m.language,
            start_line: m.start_line,
            end_line: m.end_line,
            signature: m.signature,
            doc: m.doc,
            owner_type: m.owner_type,
            parent_id: m.parent_id,
            excerpt: m.excerpt,
        }
    }
}

/// Writes a parsed file (new or changed: not searchable until
/// [`mark_searchable`]) with its symbols, replacing what the file had;
/// the ids of its former symbols.
pub async fn replace_file(
    tx: &TenantTx,
    repo: Uuid,
    file: NewFile,
    symbols: Vec<SymbolRow>,
) -> Result<Vec<Uuid>, StoreError> {
    let old = symbol_ids_of_files(tx, &[file.id]).await?;
    delete_file_contents(tx, &[file.id]).await?;
    let row = code_files::ActiveModel {
        id: Set(file.id),
        org_id: Set(tx.org_str()),
        repo_id: Set(repo),
        path: Set(file.path),
        language: Set(file.language),
        content_hash: Set(file.content_hash),
        bytes: Set(file.bytes),
        lines: Set(file.lines),
        searchable: Set(false),
        parsed: Set(file.parsed),
        updated_at: Set(now()),
    };
    code_files::Entity::insert(row)
        .on_conflict(
            OnConflict::column(code_files::Column::Id)
                .update_columns([
                    code_files::Column::Language,
                    code_files::Column::ContentHash,
                    code_files::Column::Bytes,
                    code_files::Column::Lines,
                    code_files::Column::Searchable,
                    code_files::Column::Parsed,
                    code_files::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(tx.conn())
        .await?;
    let org = tx.org_str();
    for chunk in symbols.chunks(INSERT_CHUNK) {
        let rows = chunk.iter().cloned().map(|s| code_symbols::ActiveModel {
            id: Set(s.id),
            org_id: Set(org.clone()),
            repo_id: Set(repo),
            file_id: Set(s.file_id),
            name: Set(s.name),
            qualified_name: Set(s.qualified_name),
            kind: Set(s.kind),
            language: Set(s.language),
            start_line: Set(s.start_line),
            end_line: Set(s.end_line),
            signature: Set(s.signature),
            doc: Set(s.doc),
            owner_type: Set(s.owner_type),
            parent_id: Set(s.parent_id),
            excerpt: Set(s.excerpt),
        });
        code_symbols::Entity::insert_many(rows).exec_without_returning(tx.conn()).await?;
    }
    Ok(old)
}

async fn symbol_ids_of_files(tx: &TenantTx, files: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
    let mut out = Vec::new();
    for chunk in files.chunks(IN_CHUNK) {
        let ids: Vec<Uuid> = code_symbols::Entity::find()
            .select_only()
            .column(code_symbols::Column::Id)
            .filter(code_symbols::Column::OrgId.eq(tx.org_str()))
            .filter(code_symbols::Column::FileId.is_in(chunk.to_vec()))
            .into_tuple()
            .all(tx.conn())
            .await?;
        out.extend(ids);
    }
    Ok(out)
}

async fn delete_file_contents(tx: &TenantTx, files: &[Uuid]) -> Result<(), StoreError> {
    for chunk in files.chunks(IN_CHUNK) {
        code_calls::Entity::delete_many()
            .filter(code_calls::Column::OrgId.eq(tx.org_str()))
            .filter(code_calls::Column::FileId.is_in(chunk.to_vec()))
            .exec(tx.conn())
            .await?;
        code_symbols::Entity::delete_many()
            .filter(code_symbols::Column::OrgId.eq(tx.org_str()))
            .filter(code_symbols::Column::FileId.is_in(chunk.to_vec()))
            .exec(tx.conn())
            .await?;
    }
    Ok(())
}

/// Removes files (gone from the repository) with their symbols and calls;
/// the ids of the symbols they had.
pub async fn remove_files(tx: &TenantTx, files: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
    let old = symbol_ids_of_files(tx, files).await?;
    delete_file_contents(tx, files).await?;
    for chunk in files.chunks(IN_CHUNK) {
        code_files::Entity::delete_many()
            .filter(code_files::Column::OrgId.eq(tx.org_str()))
            .filter(code_files::Column::Id.is_in(chunk.to_vec()))
            .exec(tx.conn())
            .await?;
    }
    Ok(old)
}

/// Records the code indexes a repository's symbols are in.
pub async fn set_index_generation(tx: &TenantTx, repo: Uuid, generation: &str) -> Result<(), StoreError> {
    code_repos::Entity::update_many()
        .col_expr(code_repos::Column::IndexGeneration, Expr::value(Some(generation.to_owned())))
        .filter(code_repos::Column::OrgId.eq(tx.org_str()))
        .filter(code_repos::Column::Id.eq(repo))
        .exec(tx.conn())
        .await?;
    Ok(())
}

/// Marks every file of a repository as not in the search indexes (they
/// are other indexes than the ones it was put into).
pub async fn mark_unsearchable(tx: &TenantTx, repo: Uuid) -> Result<(), StoreError> {
    code_files::Entity::update_many()
        .col_expr(code_files::Column::Searchable, Expr::value(false))
        .filter(code_files::Column::OrgId.eq(tx.org_str()))
        .filter(code_files::Column::RepoId.eq(repo))
        .exec(tx.conn())
        .await?;
    Ok(())
}

/// Marks files whose symbols the search indexes have flushed.
pub async fn mark_searchable(tx: &TenantTx, files: &[Uuid]) -> Result<(), StoreError> {
    for chunk in files.chunks(IN_CHUNK) {
        code_files::Entity::update_many()
            .col_expr(code_files::Column::Searchable, Expr::value(true))
            .filter(code_files::Column::OrgId.eq(tx.org_str()))
            .filter(code_files::Column::Id.is_in(chunk.to_vec()))
            .exec(tx.conn())
            .await?;
    }
    Ok(())
}

/// A call as stored and read: the graph engine's call edge, so the code
/// tables and a code graph engine exchange calls unchanged.
pub type CallRow = loci_index::CodeCallEdge;

impl From<code_calls::Model> for CallRow {
    fn from(m: code_calls::Model) -> Self {
        Self {
            id: m.id,
            repo_id: m.repo_id,
            file_id: m.file_id,
            caller_id: m.caller_id,
            callee_id: m.callee_id,
            callee_name: m.callee_name,
            qualifier: m.qualifier,
            module: m.module,
            line: m.line,
            resolution: m.resolution,
        }
    }
}

/// Replaces every call of the repository.
pub async fn replace_calls(tx: &TenantTx, repo: Uuid, calls: Vec<CallRow>) -> Result<(), StoreError> {
    code_calls::Entity::delete_many()
        .filter(code_calls::Column::OrgId.eq(tx.org_str()))
        .filter(code_calls::Column::RepoId.eq(repo))
        .exec(tx.conn())
        .await?;
    let org = tx.org_str();
    for chunk in calls.chunks(INSERT_CHUNK) {
        let rows = chunk.iter().cloned().map(|c| code_calls::ActiveModel {
            id: Set(c.id),
            org_id: Set(org.clone()),
            repo_id: Set(repo),
            file_id: Set(c.file_id),
            caller_id: Set(c.caller_id),
            callee_id: Set(c.callee_id),
            callee_name: Set(c.callee_name),
            qualifier: Set(c.qualifier),
            module: Set(c.module),
            line: Set(c.line),
            resolution: Set(c.resolution),
        });
        code_calls::Entity::insert_many(rows).exec_without_returning(tx.conn()).await?;
    }
    Ok(())
}

/// Symbols by id (any order).
pub async fn symbols_by_ids(tx: &TenantTx, ids: &[Uuid]) -> Result<Vec<SymbolRow>, StoreError> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IN_CHUNK) {
        let rows = code_symbols::Entity::find()
            .filter(code_symbols::Column::OrgId.eq(tx.org_str()))
            .filter(code_symbols::Column::Id.is_in(chunk.to_vec()))
            .all(tx.conn())
            .await?;
        out.extend(rows.into_iter().map(SymbolRow::from));
    }
    Ok(out)
}

/// The symbols of files (any order).
pub async fn symbols_of_files(tx: &TenantTx, files: &[Uuid]) -> Result<Vec<SymbolRow>, StoreError> {
    let mut out = Vec::new();
    for chunk in files.chunks(IN_CHUNK) {
        let rows = code_symbols::Entity::find()
            .filter(code_symbols::Column::OrgId.eq(tx.org_str()))
            .filter(code_symbols::Column::FileId.is_in(chunk.to_vec()))
            .all(tx.conn())
            .await?;
        out.extend(rows.into_iter().map(SymbolRow::from));
    }
    Ok(out)
}

/// Which symbols to find.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SymbolQuery {
    /// The exact name or qualified name.
    pub name: String,
    pub repo: Option<Uuid>,
    pub kind: Option<String>,
    pub language: Option<String>,
    pub limit: u64,
}

/// Symbols named (or qualified-named) `q.name`, definitions first by repo
/// and path order.
pub async fn find_symbols(tx: &TenantTx, q: &SymbolQuery) -> Result<Vec<SymbolRow>, StoreError> {
    let mut by_name = code_symbols::Entity::find()
        .filter(code_symbols::Column::OrgId.eq(tx.org_str()))
        .filter(code_symbols::Column::Name.eq(q.name.as_str()));
    let mut by_qualified = code_symbols::Entity::find()
        .filter(code_symbols::Column::OrgId.eq(tx.org_str()))
        .filter(code_symbols::Column::QualifiedName.eq(q.name.as_str()));
    if let Some(repo) = q.repo {
        by_name = by_name.filter(code_symbols::Column::RepoId.eq(repo));
        by_qualified = by_qualified.filter(code_symbols::Column::RepoId.eq(repo));
    }
    if let Some(kind) = &q.kind {
        by_name = by_name.filter(code_symbols::Column::Kind.eq(kind.as_str()));
        by_qualified = by_qualified.filter(code_symbols::Column::Kind.eq(kind.as_str()));
    }
    if let Some(language) = &q.language {
        by_name = by_name.filter(code_symbols::Column::Language.eq(language.as_str()));
        by_qualified = by_qualified.filter(code_symbols::Column::Language.eq(language.as_str()));
    }
    let mut rows: Vec<SymbolRow> =
        by_qualified.limit(q.limit).all(tx.conn()).await?.into_iter().map(SymbolRow::from).collect();
    if rows.is_empty() {
        rows = by_name.limit(q.limit).all(tx.conn()).await?.into_iter().map(SymbolRow::from).collect();
    }
    rows.sort_by(|a, b| {
        (a.repo_id, &a.qualified_name, a.start_line).cmp(&(b.repo_id, &b.qualified_name, b.start_line))
    });
    Ok(rows)
}

/// Calls whose callee is one of `callees`, at most `limit`.
pub async fn calls_to(tx: &TenantTx, callees: &[Uuid], limit: u64) -> Result<Vec<CallRow>, StoreError> {
    calls_where(tx, code_calls::Column::CalleeId, callees, limit).await
}

/// Calls made from one of `callers`, at most `limit`.
pub async fn calls_from(tx: &TenantTx, callers: &[Uuid], limit: u64) -> Result<Vec<CallRow>, StoreError> {
    calls_where(tx, code_calls::Column::CallerId, callers, limit).await
}

async fn calls_where(
    tx: &TenantTx,
    column: code_calls::Column,
    ids: &[Uuid],
    limit: u64,
) -> Result<Vec<CallRow>, StoreError> {
    let mut out = Vec::new();
    for chunk in ids.chunks(IN_CHUNK) {
        let remaining = limit.saturating_sub(out.len() as u64);
        if remaining == 0 {
            break;
        }
        let rows = code_calls::Entity::find()
            .filter(code_calls::Column::OrgId.eq(tx.org_str()))
            .filter(column.is_in(chunk.to_vec()))
            .order_by_asc(code_calls::Column::FileId)
            .order_by_asc(code_calls::Column::Line)
            .limit(remaining)
            .all(tx.conn())
            .await?;
        out.extend(rows.into_iter().map(CallRow::from));
    }
    Ok(out)
}

/// Calls named `callee` in `repos` that left their repository (no target
/// there) through an import: candidates for a call into a dependency.
pub async fn external_calls(
    tx: &TenantTx,
    repos: &[Uuid],
    callee: &str,
    limit: u64,
) -> Result<Vec<CallRow>, StoreError> {
    if repos.is_empty() {
        return Ok(Vec::new());
    }
    Ok(code_calls::Entity::find()
        .filter(code_calls::Column::OrgId.eq(tx.org_str()))
        .filter(code_calls::Column::CalleeName.eq(callee))
        .filter(code_calls::Column::RepoId.is_in(repos.to_vec()))
        .filter(code_calls::Column::CalleeId.is_null())
        .filter(code_calls::Column::Module.is_not_null())
        .limit(limit)
        .all(tx.conn())
        .await?
        .into_iter()
        .map(CallRow::from)
        .collect())
}

/// Paths of files by id.
pub async fn file_paths(tx: &TenantTx, files: &[Uuid]) -> Result<HashMap<Uuid, String>, StoreError> {
    let mut out = HashMap::new();
    for chunk in files.chunks(IN_CHUNK) {
        let rows: Vec<(Uuid, String)> = code_files::Entity::find()
            .select_only()
            .columns([code_files::Column::Id, code_files::Column::Path])
            .filter(code_files::Column::OrgId.eq(tx.org_str()))
            .filter(code_files::Column::Id.is_in(chunk.to_vec()))
            .into_tuple()
            .all(tx.conn())
            .await?;
        out.extend(rows);
    }
    Ok(out)
}

/// Calls of the repository (tests and the graph comparison of an
/// incremental run with a full one).
pub async fn calls_of_repo(tx: &TenantTx, repo: Uuid) -> Result<Vec<CallRow>, StoreError> {
    Ok(code_calls::Entity::find()
        .filter(code_calls::Column::OrgId.eq(tx.org_str()))
        .filter(code_calls::Column::RepoId.eq(repo))
        .all(tx.conn())
        .await?
        .into_iter()
        .map(CallRow::from)
        .collect())
}

/// Symbols of the repository.
pub async fn symbols_of_repo(tx: &TenantTx, repo: Uuid) -> Result<Vec<SymbolRow>, StoreError> {
    Ok(code_symbols::Entity::find()
        .filter(code_symbols::Column::OrgId.eq(tx.org_str()))
        .filter(code_symbols::Column::RepoId.eq(repo))
        .all(tx.conn())
        .await?
        .into_iter()
        .map(SymbolRow::from)
        .collect())
}
