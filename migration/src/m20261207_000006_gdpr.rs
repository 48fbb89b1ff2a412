//! GDPR: the audit of subject access exports and erasures, and the per-user
//! data keys that make backups crypto-shreddable.
//!
//! `gdpr_audit_logs` (tenant data, under RLS) has no foreign key on purpose:
//! its rows must survive the erasure of the user they are about. It names
//! the subject by internal id and by a hash of the org and external subject
//! (so a retry finds the earlier attempt after the user row is gone), never
//! by the subject itself. `pending` holds what a partial erasure could not
//! reach yet (memory ids per store: pseudonyms, no content), which a retry
//! finishes.
//!
//! `user_keys` (under RLS, no foreign key either: a restore clears `users`
//! and must not take the keys with it): one wrapped AES-256-GCM data key per
//! user. Backups seal each user's personal columns with it; erasure deletes
//! the row, so every older backup of that user becomes unreadable. The table
//! is never written into a backup archive.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::m20261125_000001_core::{enable_tenant_rls, index, org_col, ts, ts_null};

#[derive(DeriveMigrationName, Debug)]
pub struct Migration;

#[derive(DeriveIden)]
enum GdprAuditLogs {
    Table,
    Id,
    OrgId,
    Operation,
    Status,
    SubjectUserId,
    SubjectHash,
    ActorUserId,
    Reason,
    Stores,
    Pending,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum UserKeys {
    Table,
    OrgId,
    UserId,
    WrappedKey,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(GdprAuditLogs::Table)
                    .col(uuid(GdprAuditLogs::Id).primary_key())
                    .col(org_col(GdprAuditLogs::OrgId))
                    // export | erase
                    .col(string_len(GdprAuditLogs::Operation, 16))
                    // started | completed | partial | failed
                    .col(string_len(GdprAuditLogs::Status, 16))
                    .col(uuid_null(GdprAuditLogs::SubjectUserId))
                    .col(string_len(GdprAuditLogs::SubjectHash, 64))
                    .col(uuid_null(GdprAuditLogs::ActorUserId))
                    .col(text_null(GdprAuditLogs::Reason))
                    // {store: {status, count, error?}}
                    .col(json_binary_null(GdprAuditLogs::Stores))
                    // {store: [memory ids]} still to erase
                    .col(json_binary_null(GdprAuditLogs::Pending))
                    .col(ts(GdprAuditLogs::StartedAt))
                    .col(ts_null(GdprAuditLogs::FinishedAt))
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_gdpr_audit_logs_subject",
                GdprAuditLogs::Table,
                &["org_id", "subject_hash", "started_at"],
            ))
            .await?;
        enable_tenant_rls(manager, "gdpr_audit_logs", "org_id").await?;

        manager
            .create_table(
                Table::create()
                    .table(UserKeys::Table)
                    .col(org_col(UserKeys::OrgId))
                    .col(uuid(UserKeys::UserId))
                    // base64(nonce || AES-256-GCM(master key, data key))
                    .col(string_len(UserKeys::WrappedKey, 128))
                    .col(ts(UserKeys::CreatedAt))
                    .primary_key(Index::create().col(UserKeys::OrgId).col(UserKeys::UserId))
                    .take(),
            )
            .await?;
        enable_tenant_rls(manager, "user_keys", "org_id").await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(UserKeys::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(GdprAuditLogs::Table).to_owned()).await
    }
}
