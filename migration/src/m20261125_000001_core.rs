//! Core schema: orgs, users, apps, memories with structured metadata,
//! categories, state history, access logs and the index outbox.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::CORE_TENANT_TABLES as TENANT_TABLES;

#[derive(DeriveMigrationName, Debug)]
pub struct Migration;

#[derive(DeriveIden)]
enum Orgs {
    Table,
    Id,
    Name,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    OrgId,
    Subject,
    DisplayName,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Apps {
    Table,
    Id,
    OrgId,
    OwnerId,
    Name,
    Description,
    IsActive,
    Metadata,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Categories {
    Table,
    Id,
    OrgId,
    Name,
    Description,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Memories {
    Table,
    Id,
    OrgId,
    UserId,
    AppId,
    Content,
    ContentHash,
    Category,
    Scope,
    ArtifactType,
    ArtifactRef,
    Entity,
    Source,
    AccessEntity,
    Evidence,
    Tags,
    Metadata,
    State,
    CreatedAt,
    UpdatedAt,
    ArchivedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum MemoryCategories {
    Table,
    MemoryId,
    CategoryId,
    OrgId,
}

#[derive(DeriveIden)]
enum MemoryStatusHistory {
    Table,
    Id,
    OrgId,
    MemoryId,
    OldState,
    NewState,
    ChangedBy,
    ChangedAt,
}

#[derive(DeriveIden)]
enum MemoryAccessLogs {
    Table,
    Id,
    OrgId,
    MemoryId,
    UserId,
    AppId,
    AccessType,
    Metadata,
    AccessedAt,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    OrgId,
    AggregateType,
    AggregateId,
    Operation,
    Payload,
    CreatedAt,
    AvailableAt,
    Attempts,
    LastError,
    ProcessedAt,
}

pub(crate) fn ts<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).timestamp_with_time_zone().not_null().take()
}

pub(crate) fn ts_null<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).timestamp_with_time_zone().null().take()
}

/// The org a row belongs to: text (the token's `org_id`), never null.
pub(crate) fn org_col<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).string_len(128).not_null().take()
}

pub(crate) fn fk(
    name: &str,
    from: (impl IntoIden, impl IntoIden),
    to: (impl IntoIden, impl IntoIden),
) -> ForeignKeyCreateStatement {
    ForeignKey::create().name(name).from(from.0, from.1).to(to.0, to.1).on_delete(ForeignKeyAction::Cascade).take()
}

pub(crate) fn index(name: &str, table: impl IntoIden, cols: &[&'static str]) -> IndexCreateStatement {
    let mut stmt = Index::create().name(name).table(table).take();
    for col in cols {
        stmt.col(Alias::new(*col));
    }
    stmt
}

/// On PostgreSQL, forces the `tenant_isolation` policy on `table`: rows are
/// visible and writable only when `key` equals the transaction's
/// `loci.org_id`. FORCE makes the policy apply to the table owner too; only
/// superusers and BYPASSRLS roles escape it, and the server refuses to run as
/// one of those. A no-op on SQLite.
pub(crate) async fn enable_tenant_rls(manager: &SchemaManager<'_>, table: &str, key: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    manager
        .get_connection()
        .execute_unprepared(&format!(
            "ALTER TABLE \"{table}\" ENABLE ROW LEVEL SECURITY;\n\
             ALTER TABLE \"{table}\" FORCE ROW LEVEL SECURITY;\n\
             CREATE POLICY tenant_isolation ON \"{table}\"\n\
               USING ({key} = current_setting('loci.org_id', true))\n\
               WITH CHECK ({key} = current_setting('loci.org_id', true));"
        ))
        .await?;
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Orgs::Table)
                    .col(org_col(Orgs::Id).primary_key())
                    .col(string_null(Orgs::Name))
                    .col(ts(Orgs::CreatedAt))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(pk_uuid(Users::Id))
                    .col(org_col(Users::OrgId))
                    .col(string_len(Users::Subject, 255))
                    .col(string_null(Users::DisplayName))
                    .col(ts(Users::CreatedAt))
                    .col(ts(Users::UpdatedAt))
                    .foreign_key(&mut fk("fk_users_org", (Users::Table, Users::OrgId), (Orgs::Table, Orgs::Id)))
                    .take(),
            )
            .await?;
        manager
            .create_index(index("ux_users_org_subject", Users::Table, &["org_id", "subject"]).unique().take())
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Apps::Table)
                    .col(pk_uuid(Apps::Id))
                    .col(org_col(Apps::OrgId))
                    .col(uuid(Apps::OwnerId))
                    .col(string_len(Apps::Name, 255))
                    .col(text_null(Apps::Description))
                    .col(boolean(Apps::IsActive).default(true))
                    .col(json_binary(Apps::Metadata))
                    .col(ts(Apps::CreatedAt))
                    .col(ts(Apps::UpdatedAt))
                    .foreign_key(&mut fk("fk_apps_org", (Apps::Table, Apps::OrgId), (Orgs::Table, Orgs::Id)))
                    .foreign_key(&mut fk("fk_apps_owner", (Apps::Table, Apps::OwnerId), (Users::Table, Users::Id)))
                    .take(),
            )
            .await?;
        manager.create_index(index("ux_apps_owner_name", Apps::Table, &["owner_id", "name"]).unique().take()).await?;
        manager.create_index(index("ix_apps_org_owner", Apps::Table, &["org_id", "owner_id"])).await?;

        manager
            .create_table(
                Table::create()
                    .table(Categories::Table)
                    .col(pk_uuid(Categories::Id))
                    .col(org_col(Categories::OrgId))
                    .col(string_len(Categories::Name, 128))
                    .col(text_null(Categories::Description))
                    .col(ts(Categories::CreatedAt))
                    .foreign_key(&mut fk(
                        "fk_categories_org",
                        (Categories::Table, Categories::OrgId),
                        (Orgs::Table, Orgs::Id),
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(index("ux_categories_org_name", Categories::Table, &["org_id", "name"]).unique().take())
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Memories::Table)
                    .col(pk_uuid(Memories::Id))
                    .col(org_col(Memories::OrgId))
                    .col(uuid(Memories::UserId))
                    .col(uuid(Memories::AppId))
                    .col(text(Memories::Content))
                    .col(string_len(Memories::ContentHash, 64))
                    .col(string_len_null(Memories::Category, 32))
                    .col(string_len_null(Memories::Scope, 32))
                    .col(string_len_null(Memories::ArtifactType, 32))
                    .col(string_len_null(Memories::ArtifactRef, 512))
                    .col(string_len_null(Memories::Entity, 512))
                    .col(string_len_null(Memories::Source, 32))
                    .col(string_len_null(Memories::AccessEntity, 300))
                    .col(json_binary(Memories::Evidence))
                    .col(json_binary(Memories::Tags))
                    .col(json_binary(Memories::Metadata))
                    .col(string_len(Memories::State, 16).default("active"))
                    .col(ts(Memories::CreatedAt))
                    .col(ts(Memories::UpdatedAt))
                    .col(ts_null(Memories::ArchivedAt))
                    .col(ts_null(Memories::DeletedAt))
                    .foreign_key(&mut fk(
                        "fk_memories_org",
                        (Memories::Table, Memories::OrgId),
                        (Orgs::Table, Orgs::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_memories_user",
                        (Memories::Table, Memories::UserId),
                        (Users::Table, Users::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_memories_app",
                        (Memories::Table, Memories::AppId),
                        (Apps::Table, Apps::Id),
                    ))
                    .take(),
            )
            .await?;
        // The list path: a user's memories by state, newest first.
        manager
            .create_index(index(
                "ix_memories_org_user_state_created",
                Memories::Table,
                &["org_id", "user_id", "state", "created_at"],
            ))
            .await?;
        manager
            .create_index(index("ix_memories_org_app_created", Memories::Table, &["org_id", "app_id", "created_at"]))
            .await?;
        manager.create_index(index("ix_memories_org_hash", Memories::Table, &["org_id", "content_hash"])).await?;
        manager
            .create_index(index("ix_memories_org_access_entity", Memories::Table, &["org_id", "access_entity"]))
            .await?;
        manager.create_index(index("ix_memories_org_category", Memories::Table, &["org_id", "category"])).await?;
        manager.create_index(index("ix_memories_org_entity", Memories::Table, &["org_id", "entity"])).await?;
        manager.create_index(index("ix_memories_org_updated", Memories::Table, &["org_id", "updated_at"])).await?;

        manager
            .create_table(
                Table::create()
                    .table(MemoryCategories::Table)
                    .col(uuid(MemoryCategories::MemoryId))
                    .col(uuid(MemoryCategories::CategoryId))
                    .col(org_col(MemoryCategories::OrgId))
                    .primary_key(Index::create().col(MemoryCategories::MemoryId).col(MemoryCategories::CategoryId))
                    .foreign_key(&mut fk(
                        "fk_memory_categories_memory",
                        (MemoryCategories::Table, MemoryCategories::MemoryId),
                        (Memories::Table, Memories::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_memory_categories_category",
                        (MemoryCategories::Table, MemoryCategories::CategoryId),
                        (Categories::Table, Categories::Id),
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_memory_categories_org_category",
                MemoryCategories::Table,
                &["org_id", "category_id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(MemoryStatusHistory::Table)
                    .col(pk_uuid(MemoryStatusHistory::Id))
                    .col(org_col(MemoryStatusHistory::OrgId))
                    .col(uuid(MemoryStatusHistory::MemoryId))
                    .col(string_len_null(MemoryStatusHistory::OldState, 16))
                    .col(string_len(MemoryStatusHistory::NewState, 16))
                    .col(uuid_null(MemoryStatusHistory::ChangedBy))
                    .col(ts(MemoryStatusHistory::ChangedAt))
                    .foreign_key(&mut fk(
                        "fk_memory_status_history_memory",
                        (MemoryStatusHistory::Table, MemoryStatusHistory::MemoryId),
                        (Memories::Table, Memories::Id),
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_memory_status_history_org_memory",
                MemoryStatusHistory::Table,
                &["org_id", "memory_id", "changed_at"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(MemoryAccessLogs::Table)
                    .col(pk_uuid(MemoryAccessLogs::Id))
                    .col(org_col(MemoryAccessLogs::OrgId))
                    .col(uuid(MemoryAccessLogs::MemoryId))
                    .col(uuid(MemoryAccessLogs::UserId))
                    .col(uuid_null(MemoryAccessLogs::AppId))
                    .col(string_len(MemoryAccessLogs::AccessType, 32))
                    .col(json_binary(MemoryAccessLogs::Metadata))
                    .col(ts(MemoryAccessLogs::AccessedAt))
                    .foreign_key(&mut fk(
                        "fk_memory_access_logs_memory",
                        (MemoryAccessLogs::Table, MemoryAccessLogs::MemoryId),
                        (Memories::Table, Memories::Id),
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_memory_access_logs_org_memory",
                MemoryAccessLogs::Table,
                &["org_id", "memory_id", "accessed_at"],
            ))
            .await?;
        manager
            .create_index(index("ix_memory_access_logs_org_app", MemoryAccessLogs::Table, &["org_id", "app_id"]))
            .await?;

        // The outbox is consumed across tenants by the indexers, so it is not
        // under RLS; it therefore holds ids and operations only, never content.
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(big_pk_auto(Outbox::Id))
                    .col(org_col(Outbox::OrgId))
                    .col(string_len(Outbox::AggregateType, 32))
                    .col(uuid(Outbox::AggregateId))
                    .col(string_len(Outbox::Operation, 16))
                    .col(json_binary(Outbox::Payload))
                    .col(ts(Outbox::CreatedAt))
                    .col(ts(Outbox::AvailableAt))
                    .col(integer(Outbox::Attempts).default(0))
                    .col(text_null(Outbox::LastError))
                    .col(ts_null(Outbox::ProcessedAt))
                    .take(),
            )
            .await?;
        manager
            .create_index(index("ix_outbox_pending", Outbox::Table, &["processed_at", "available_at", "id"]))
            .await?;

        for table in TENANT_TABLES {
            let key = if *table == "orgs" { "id" } else { "org_id" };
            enable_tenant_rls(manager, table, key).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "outbox",
            "memory_access_logs",
            "memory_status_history",
            "memory_categories",
            "memories",
            "categories",
            "apps",
            "users",
            "orgs",
        ] {
            manager.drop_table(Table::drop().table(Alias::new(table)).if_exists().take()).await?;
        }
        Ok(())
    }
}
