//! Code intelligence: registered repositories and what indexing read from
//! them (tenant data, under RLS).
//!
//! `code_repos`: one per org and name, with where it is read from (a local
//! path or a git URL) and the packages its manifests publish and depend on
//! (what DEPENDS_ON joins). `code_files` (CONTAINS): the content hash that
//! makes indexing incremental, whether its symbols reached the search
//! indexes yet (`searchable`, like an outbox flag), and the parsed file
//! (`parsed`, JSON) from which a repository's calls are resolved again when
//! another file changes. `code_symbols` (DEFINES) and `code_calls` (CALLS;
//! `callee_id` null for a call outside the repository, with the module it
//! came through) are what the queries walk.
//!
//! `job_queue.kind`: workers claim only the kinds they run (`add_memories`,
//! `index_codebase`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::m20261125_000001_core::{enable_tenant_rls, fk, index, org_col, ts, ts_null};

#[derive(DeriveMigrationName, Debug)]
pub struct Migration;

#[derive(DeriveIden)]
enum Orgs {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum JobQueue {
    Table,
    Kind,
}

#[derive(DeriveIden)]
enum CodeRepos {
    Table,
    Id,
    OrgId,
    Name,
    SourceKind,
    Source,
    Packages,
    Dependencies,
    FileCount,
    SymbolCount,
    IndexGeneration,
    CreatedAt,
    IndexedAt,
}

#[derive(DeriveIden)]
enum CodeFiles {
    Table,
    Id,
    OrgId,
    RepoId,
    Path,
    Language,
    ContentHash,
    Bytes,
    Lines,
    Searchable,
    Parsed,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum CodeSymbols {
    Table,
    Id,
    OrgId,
    RepoId,
    FileId,
    Name,
    QualifiedName,
    Kind,
    Language,
    StartLine,
    EndLine,
    Signature,
    Doc,
    OwnerType,
    ParentId,
    Excerpt,
}

#[derive(DeriveIden)]
enum CodeCalls {
    Table,
    Id,
    OrgId,
    RepoId,
    FileId,
    CallerId,
    CalleeId,
    CalleeName,
    Qualifier,
    Module,
    Line,
    Resolution,
}

/// The tenant tables this migration creates.
pub(crate) const CODE_TENANT_TABLES: &[&str] = &["code_repos", "code_files", "code_symbols", "code_calls"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(JobQueue::Table)
                    .add_column(ColumnDef::new(JobQueue::Kind).string_len(32).not_null().default("add_memories"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CodeRepos::Table)
                    .col(uuid(CodeRepos::Id).primary_key())
                    .col(org_col(CodeRepos::OrgId))
                    .col(string_len(CodeRepos::Name, 100))
                    // path | git
                    .col(string_len(CodeRepos::SourceKind, 8))
                    .col(text(CodeRepos::Source))
                    .col(json_binary(CodeRepos::Packages))
                    .col(json_binary(CodeRepos::Dependencies))
                    .col(integer(CodeRepos::FileCount).default(0))
                    .col(integer(CodeRepos::SymbolCount).default(0))
                    // The code indexes its symbols were last put into
                    // (see `loci_domain::code`): another one (a restore, a
                    // new data directory) makes every file unsearchable.
                    .col(text_null(CodeRepos::IndexGeneration))
                    .col(ts(CodeRepos::CreatedAt))
                    .col(ts_null(CodeRepos::IndexedAt))
                    .foreign_key(&mut fk(
                        "fk_code_repos_org",
                        (CodeRepos::Table, CodeRepos::OrgId),
                        (Orgs::Table, Orgs::Id),
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(index("ux_code_repos_org_name", CodeRepos::Table, &["org_id", "name"]).unique().take())
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CodeFiles::Table)
                    .col(uuid(CodeFiles::Id).primary_key())
                    .col(org_col(CodeFiles::OrgId))
                    .col(uuid(CodeFiles::RepoId))
                    .col(text(CodeFiles::Path))
                    .col(string_len(CodeFiles::Language, 16))
                    .col(string_len(CodeFiles::ContentHash, 64))
                    .col(big_integer(CodeFiles::Bytes))
                    .col(integer(CodeFiles::Lines))
                    .col(boolean(CodeFiles::Searchable).default(false))
                    .col(json_binary(CodeFiles::Parsed))
                    .col(ts(CodeFiles::UpdatedAt))
                    .foreign_key(&mut fk(
                        "fk_code_files_repo",
                        (CodeFiles::Table, CodeFiles::RepoId),
                        (CodeRepos::Table, CodeRepos::Id),
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                index("ux_code_files_repo_path", CodeFiles::Table, &["org_id", "repo_id", "path"]).unique().take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CodeSymbols::Table)
                    .col(uuid(CodeSymbols::Id).primary_key())
                    .col(org_col(CodeSymbols::OrgId))
                    .col(uuid(CodeSymbols::RepoId))
                    .col(uuid(CodeSymbols::FileId))
                    .col(text(CodeSymbols::Name))
                    .col(text(CodeSymbols::QualifiedName))
                    .col(string_len(CodeSymbols::Kind, 16))
                    .col(string_len(CodeSymbols::Language, 16))
                    .col(integer(CodeSymbols::StartLine))
                    .col(integer(CodeSymbols::EndLine))
                    .col(text(CodeSymbols::Signature))
                    .col(text_null(CodeSymbols::Doc))
                    .col(text_null(CodeSymbols::OwnerType))
                    .col(uuid_null(CodeSymbols::ParentId))
                    .col(text(CodeSymbols::Excerpt))
                    .foreign_key(&mut fk(
                        "fk_code_symbols_file",
                        (CodeSymbols::Table, CodeSymbols::FileId),
                        (CodeFiles::Table, CodeFiles::Id),
                    ))
                    .take(),
            )
            .await?;
        manager.create_index(index("ix_code_symbols_org_name", CodeSymbols::Table, &["org_id", "name"])).await?;
        manager.create_index(index("ix_code_symbols_org_file", CodeSymbols::Table, &["org_id", "file_id"])).await?;
        manager
            .create_index(index(
                "ix_code_symbols_org_repo_qname",
                CodeSymbols::Table,
                &["org_id", "repo_id", "qualified_name"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CodeCalls::Table)
                    .col(uuid(CodeCalls::Id).primary_key())
                    .col(org_col(CodeCalls::OrgId))
                    .col(uuid(CodeCalls::RepoId))
                    .col(uuid(CodeCalls::FileId))
                    .col(uuid_null(CodeCalls::CallerId))
                    .col(uuid_null(CodeCalls::CalleeId))
                    .col(text(CodeCalls::CalleeName))
                    .col(text_null(CodeCalls::Qualifier))
                    .col(text_null(CodeCalls::Module))
                    .col(integer(CodeCalls::Line))
                    .col(string_len(CodeCalls::Resolution, 16))
                    .foreign_key(&mut fk(
                        "fk_code_calls_file",
                        (CodeCalls::Table, CodeCalls::FileId),
                        (CodeFiles::Table, CodeFiles::Id),
                    ))
                    .take(),
            )
            .await?;
        manager.create_index(index("ix_code_calls_org_callee", CodeCalls::Table, &["org_id", "callee_id"])).await?;
        manager.create_index(index("ix_code_calls_org_caller", CodeCalls::Table, &["org_id", "caller_id"])).await?;
        manager.create_index(index("ix_code_calls_org_name", CodeCalls::Table, &["org_id", "callee_name"])).await?;
        manager.create_index(index("ix_code_calls_org_repo", CodeCalls::Table, &["org_id", "repo_id"])).await?;
        for table in CODE_TENANT_TABLES {
            enable_tenant_rls(manager, table, "org_id").await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(CodeCalls::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(CodeSymbols::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(CodeFiles::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(CodeRepos::Table).to_owned()).await?;
        manager.alter_table(Table::alter().table(JobQueue::Table).drop_column(JobQueue::Kind).to_owned()).await
    }
}
