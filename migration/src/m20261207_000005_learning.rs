//! The learning loop: feedback and experiments.
//!
//! Feedback on retrieval: one row per event an agent (or its client)
//! reports about a search result — accepted, modified, rejected or ignored —
//! with the search it answers (`query_id`), the result (`result_index`,
//! `result_id`), the sources that found it and the experiment variant the
//! search ran under. Kept `feedback.retention_days`, then purged.

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
enum FeedbackEvents {
    Table,
    Id,
    OrgId,
    UserId,
    QueryId,
    SessionId,
    ToolName,
    Outcome,
    FeedbackType,
    OccurredAt,
    DecisionTimeMs,
    RrfWeights,
    RerankerUsed,
    ResultIndex,
    ResultId,
    Sources,
    ExperimentId,
    VariantId,
    Metadata,
}

#[derive(DeriveIden)]
enum Experiments {
    Table,
    Id,
    OrgId,
    Name,
    Description,
    Variants,
    TrafficPercentage,
    Status,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
    StartTime,
    EndTime,
}

#[derive(DeriveIden)]
enum ExperimentHistory {
    Table,
    Id,
    OrgId,
    ExperimentId,
    OldStatus,
    NewStatus,
    ChangedBy,
    ChangedAt,
}

#[derive(DeriveIden)]
enum ExperimentAssignments {
    Table,
    OrgId,
    ExperimentId,
    UserId,
    Variant,
    AssignedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(FeedbackEvents::Table)
                    .col(uuid(FeedbackEvents::Id).primary_key())
                    .col(org_col(FeedbackEvents::OrgId))
                    .col(uuid(FeedbackEvents::UserId))
                    .col(string_len_null(FeedbackEvents::QueryId, 128))
                    .col(string_len_null(FeedbackEvents::SessionId, 128))
                    .col(string_len(FeedbackEvents::ToolName, 64))
                    // accepted | modified | rejected | ignored
                    .col(string_len(FeedbackEvents::Outcome, 16))
                    // implicit | explicit
                    .col(string_len(FeedbackEvents::FeedbackType, 16))
                    .col(ts(FeedbackEvents::OccurredAt))
                    .col(big_integer_null(FeedbackEvents::DecisionTimeMs))
                    .col(json_binary_null(FeedbackEvents::RrfWeights))
                    .col(string_len_null(FeedbackEvents::RerankerUsed, 64))
                    .col(integer_null(FeedbackEvents::ResultIndex))
                    .col(uuid_null(FeedbackEvents::ResultId))
                    // ["vector", "lexical", "graph"]: which sources found the result
                    .col(json_binary_null(FeedbackEvents::Sources))
                    .col(uuid_null(FeedbackEvents::ExperimentId))
                    .col(string_len_null(FeedbackEvents::VariantId, 64))
                    .col(json_binary(FeedbackEvents::Metadata))
                    .foreign_key(&mut fk(
                        "fk_feedback_events_org",
                        (FeedbackEvents::Table, FeedbackEvents::OrgId),
                        (Orgs::Table, Orgs::Id),
                    ))
                    .take(),
            )
            .await?;
        for (name, cols) in [
            ("ix_feedback_events_org_time", &["org_id", "occurred_at"][..]),
            ("ix_feedback_events_org_user_time", &["org_id", "user_id", "occurred_at"][..]),
            ("ix_feedback_events_org_query", &["org_id", "query_id"][..]),
            ("ix_feedback_events_org_experiment", &["org_id", "experiment_id"][..]),
        ] {
            manager.create_index(index(name, FeedbackEvents::Table, cols)).await?;
        }
        enable_tenant_rls(manager, "feedback_events", "org_id").await?;

        manager
            .create_table(
                Table::create()
                    .table(Experiments::Table)
                    .col(uuid(Experiments::Id).primary_key())
                    .col(org_col(Experiments::OrgId))
                    .col(string_len(Experiments::Name, 128))
                    .col(text(Experiments::Description))
                    // [{name, weight, config}]
                    .col(json_binary(Experiments::Variants))
                    .col(double(Experiments::TrafficPercentage))
                    // draft | running | paused | completed | rolled_back
                    .col(string_len(Experiments::Status, 16))
                    .col(uuid(Experiments::CreatedBy))
                    .col(ts(Experiments::CreatedAt))
                    .col(ts(Experiments::UpdatedAt))
                    .col(ts_null(Experiments::StartTime))
                    .col(ts_null(Experiments::EndTime))
                    .foreign_key(&mut fk(
                        "fk_experiments_org",
                        (Experiments::Table, Experiments::OrgId),
                        (Orgs::Table, Orgs::Id),
                    ))
                    .take(),
            )
            .await?;
        manager.create_index(index("ix_experiments_org_status", Experiments::Table, &["org_id", "status"])).await?;
        enable_tenant_rls(manager, "experiments", "org_id").await?;

        manager
            .create_table(
                Table::create()
                    .table(ExperimentHistory::Table)
                    .col(uuid(ExperimentHistory::Id).primary_key())
                    .col(org_col(ExperimentHistory::OrgId))
                    .col(uuid(ExperimentHistory::ExperimentId))
                    .col(string_len_null(ExperimentHistory::OldStatus, 16))
                    .col(string_len(ExperimentHistory::NewStatus, 16))
                    .col(uuid(ExperimentHistory::ChangedBy))
                    .col(ts(ExperimentHistory::ChangedAt))
                    .foreign_key(&mut fk(
                        "fk_experiment_history_experiment",
                        (ExperimentHistory::Table, ExperimentHistory::ExperimentId),
                        (Experiments::Table, Experiments::Id),
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_experiment_history_org_experiment",
                ExperimentHistory::Table,
                &["org_id", "experiment_id", "changed_at"],
            ))
            .await?;
        enable_tenant_rls(manager, "experiment_history", "org_id").await?;

        manager
            .create_table(
                Table::create()
                    .table(ExperimentAssignments::Table)
                    .col(org_col(ExperimentAssignments::OrgId))
                    .col(uuid(ExperimentAssignments::ExperimentId))
                    .col(uuid(ExperimentAssignments::UserId))
                    // The variant's name; null: left out by the traffic share.
                    .col(string_len_null(ExperimentAssignments::Variant, 64))
                    .col(ts(ExperimentAssignments::AssignedAt))
                    .primary_key(
                        Index::create().col(ExperimentAssignments::ExperimentId).col(ExperimentAssignments::UserId),
                    )
                    .foreign_key(&mut fk(
                        "fk_experiment_assignments_experiment",
                        (ExperimentAssignments::Table, ExperimentAssignments::ExperimentId),
                        (Experiments::Table, Experiments::Id),
                    ))
                    .take(),
            )
            .await?;
        enable_tenant_rls(manager, "experiment_assignments", "org_id").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["experiment_assignments", "experiment_history", "experiments", "feedback_events"] {
            manager.drop_table(Table::drop().table(Alias::new(table)).to_owned()).await?;
        }
        Ok(())
    }
}
