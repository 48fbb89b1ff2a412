//! Fact inference and its jobs.
//!
//! `memory_status_history.reason`: why a change happened (an `infer`
//! decision: "replaces: location of alice was berlin, now munich"), and the
//! NOOP decisions too, as rows whose state does not change.
//!
//! `memory_jobs` (tenant data, under RLS): an asynchronous add — who asked,
//! what (the request), its state (`queued`, `running`, `done`, `failed`),
//! its result or error. `job_queue` is what a worker claims across tenants,
//! so like the outbox it is not under RLS and holds ids and times only; the
//! row leaves the queue in the transaction that writes the job's memories,
//! which is what makes a job take effect exactly once.

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
enum MemoryStatusHistory {
    Table,
    Reason,
}

#[derive(DeriveIden)]
enum MemoryJobs {
    Table,
    Id,
    OrgId,
    UserId,
    Kind,
    Status,
    Request,
    Result,
    Error,
    Attempts,
    CreatedAt,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum JobQueue {
    Table,
    Id,
    OrgId,
    AvailableAt,
    Attempts,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(MemoryStatusHistory::Table)
                    .add_column(ColumnDef::new(MemoryStatusHistory::Reason).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MemoryJobs::Table)
                    .col(uuid(MemoryJobs::Id).primary_key())
                    .col(org_col(MemoryJobs::OrgId))
                    .col(uuid(MemoryJobs::UserId))
                    // add_memories (the only kind so far)
                    .col(string_len(MemoryJobs::Kind, 32))
                    // queued | running | done | failed
                    .col(string_len(MemoryJobs::Status, 16))
                    .col(json_binary(MemoryJobs::Request))
                    .col(json_binary_null(MemoryJobs::Result))
                    .col(text_null(MemoryJobs::Error))
                    .col(integer(MemoryJobs::Attempts).default(0))
                    .col(ts(MemoryJobs::CreatedAt))
                    .col(ts_null(MemoryJobs::StartedAt))
                    .col(ts_null(MemoryJobs::FinishedAt))
                    .foreign_key(&mut fk(
                        "fk_memory_jobs_org",
                        (MemoryJobs::Table, MemoryJobs::OrgId),
                        (Orgs::Table, Orgs::Id),
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(index("ix_memory_jobs_org_user", MemoryJobs::Table, &["org_id", "user_id", "created_at"]))
            .await?;
        enable_tenant_rls(manager, "memory_jobs", "org_id").await?;

        manager
            .create_table(
                Table::create()
                    .table(JobQueue::Table)
                    .col(uuid(JobQueue::Id).primary_key())
                    .col(org_col(JobQueue::OrgId))
                    .col(ts(JobQueue::AvailableAt))
                    .col(integer(JobQueue::Attempts).default(0))
                    .col(ts(JobQueue::CreatedAt))
                    .take(),
            )
            .await?;
        manager.create_index(index("ix_job_queue_due", JobQueue::Table, &["available_at", "created_at"])).await?;
        manager.create_index(index("ix_job_queue_org", JobQueue::Table, &["org_id"])).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(JobQueue::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(MemoryJobs::Table).to_owned()).await?;
        manager
            .alter_table(
                Table::alter().table(MemoryStatusHistory::Table).drop_column(MemoryStatusHistory::Reason).to_owned(),
            )
            .await
    }
}
