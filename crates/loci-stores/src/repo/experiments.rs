//! Experiments, their status history and their users' assignments. The
//! status machine is the caller's rule (`ExperimentStatus::can_transition_to`);
//! a change here applies only from the status the caller saw, so two
//! concurrent changes cannot both pass it.

use loci_core::model::{Assignment, Experiment, ExperimentChange, Variant, now};
use loci_core::{ExperimentStatus, UserId};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::entities::{experiment_assignments, experiment_history, experiments};
use crate::{StoreError, TenantTx};

/// What a new experiment holds.
#[derive(Debug, Clone, PartialEq)]
pub struct NewExperiment {
    pub name: String,
    pub description: String,
    pub variants: Vec<Variant>,
    pub traffic_percentage: f64,
    pub created_by: UserId,
}

fn to_record(m: experiments::Model) -> Result<Experiment, StoreError> {
    Ok(Experiment {
        experiment_id: m.id,
        name: m.name,
        description: m.description,
        variants: serde_json::from_value(m.variants).map_err(StoreError::corrupt)?,
        traffic_percentage: m.traffic_percentage,
        status: m.status.parse().map_err(StoreError::corrupt)?,
        created_by: UserId::from_uuid(m.created_by),
        created_at: m.created_at,
        updated_at: m.updated_at,
        start_time: m.start_time,
        end_time: m.end_time,
    })
}

async fn record_change(
    tx: &TenantTx,
    id: Uuid,
    old: Option<ExperimentStatus>,
    new: ExperimentStatus,
    actor: UserId,
) -> Result<(), StoreError> {
    let row = experiment_history::ActiveModel {
        id: Set(Uuid::now_v7()),
        org_id: Set(tx.org_str()),
        experiment_id: Set(id),
        old_status: Set(old.map(|s| s.as_str().to_owned())),
        new_status: Set(new.as_str().to_owned()),
        changed_by: Set(actor.as_uuid()),
        changed_at: Set(now()),
    };
    experiment_history::Entity::insert(row).exec_without_returning(tx.conn()).await?;
    Ok(())
}

/// Creates a draft experiment (and its first history row).
pub async fn create(tx: &TenantTx, new: NewExperiment) -> Result<Experiment, StoreError> {
    let id = Uuid::now_v7();
    let t = now();
    let row = experiments::ActiveModel {
        id: Set(id),
        org_id: Set(tx.org_str()),
        name: Set(new.name),
        description: Set(new.description),
        variants: Set(serde_json::to_value(&new.variants).map_err(StoreError::corrupt)?),
        traffic_percentage: Set(new.traffic_percentage),
        status: Set(ExperimentStatus::Draft.as_str().to_owned()),
        created_by: Set(new.created_by.as_uuid()),
        created_at: Set(t),
        updated_at: Set(t),
        start_time: Set(None),
        end_time: Set(None),
    };
    experiments::Entity::insert(row).exec_without_returning(tx.conn()).await?;
    record_change(tx, id, None, ExperimentStatus::Draft, new.created_by).await?;
    get(tx, id).await?.ok_or(StoreError::NotFound("experiment"))
}

/// An experiment of the tenant.
pub async fn get(tx: &TenantTx, id: Uuid) -> Result<Option<Experiment>, StoreError> {
    experiments::Entity::find()
        .filter(experiments::Column::OrgId.eq(tx.org_str()))
        .filter(experiments::Column::Id.eq(id))
        .one(tx.conn())
        .await?
        .map(to_record)
        .transpose()
}

/// The tenant's experiments (with `status`, only those), oldest first.
pub async fn list(tx: &TenantTx, status: Option<ExperimentStatus>) -> Result<Vec<Experiment>, StoreError> {
    let mut q = experiments::Entity::find().filter(experiments::Column::OrgId.eq(tx.org_str()));
    if let Some(s) = status {
        q = q.filter(experiments::Column::Status.eq(s.as_str()));
    }
    q.order_by_asc(experiments::Column::CreatedAt)
        .order_by_asc(experiments::Column::Id)
        .all(tx.conn())
        .await?
        .into_iter()
        .map(to_record)
        .collect()
}

/// Moves an experiment from `from` to `to` (setting `start_time` on its
/// first run and `end_time` when it ends) with a history row. `false` when
/// it is no longer in `from`.
pub async fn change_status(
    tx: &TenantTx,
    id: Uuid,
    from: ExperimentStatus,
    to: ExperimentStatus,
    actor: UserId,
) -> Result<bool, StoreError> {
    let t = now();
    let mut update = experiments::Entity::update_many()
        .col_expr(experiments::Column::Status, Expr::value(to.as_str()))
        .col_expr(experiments::Column::UpdatedAt, Expr::value(t));
    if matches!(to, ExperimentStatus::Completed | ExperimentStatus::RolledBack) {
        update = update.col_expr(experiments::Column::EndTime, Expr::value(t));
    }
    let changed = update
        .filter(experiments::Column::OrgId.eq(tx.org_str()))
        .filter(experiments::Column::Id.eq(id))
        .filter(experiments::Column::Status.eq(from.as_str()))
        .exec(tx.conn())
        .await?
        .rows_affected
        == 1;
    if changed {
        if to == ExperimentStatus::Running {
            // The first run's time only.
            experiments::Entity::update_many()
                .col_expr(experiments::Column::StartTime, Expr::value(t))
                .filter(experiments::Column::OrgId.eq(tx.org_str()))
                .filter(experiments::Column::Id.eq(id))
                .filter(experiments::Column::StartTime.is_null())
                .exec(tx.conn())
                .await?;
        }
        record_change(tx, id, Some(from), to, actor).await?;
    }
    Ok(changed)
}

/// Status changes of an experiment, oldest first.
pub async fn history(tx: &TenantTx, id: Uuid) -> Result<Vec<ExperimentChange>, StoreError> {
    experiment_history::Entity::find()
        .filter(experiment_history::Column::OrgId.eq(tx.org_str()))
        .filter(experiment_history::Column::ExperimentId.eq(id))
        .order_by_asc(experiment_history::Column::ChangedAt)
        .order_by_asc(experiment_history::Column::Id)
        .all(tx.conn())
        .await?
        .into_iter()
        .map(|r| {
            Ok(ExperimentChange {
                experiment_id: r.experiment_id,
                old_status: r.old_status.map(|s| s.parse()).transpose().map_err(StoreError::corrupt)?,
                new_status: r.new_status.parse().map_err(StoreError::corrupt)?,
                changed_by: UserId::from_uuid(r.changed_by),
                changed_at: r.changed_at,
            })
        })
        .collect()
}

/// A user's stored assignment.
pub async fn assignment(tx: &TenantTx, experiment: Uuid, user: UserId) -> Result<Option<Assignment>, StoreError> {
    Ok(experiment_assignments::Entity::find()
        .filter(experiment_assignments::Column::OrgId.eq(tx.org_str()))
        .filter(experiment_assignments::Column::ExperimentId.eq(experiment))
        .filter(experiment_assignments::Column::UserId.eq(user.as_uuid()))
        .one(tx.conn())
        .await?
        .map(|r| Assignment {
            experiment_id: r.experiment_id,
            user_id: UserId::from_uuid(r.user_id),
            variant: r.variant,
            assigned_at: r.assigned_at,
        }))
}

/// Stores `variant` as the user's assignment unless one exists (the first
/// one stays); the stored assignment.
pub async fn assign(
    tx: &TenantTx,
    experiment: Uuid,
    user: UserId,
    variant: Option<&str>,
) -> Result<Assignment, StoreError> {
    let row = experiment_assignments::ActiveModel {
        org_id: Set(tx.org_str()),
        experiment_id: Set(experiment),
        user_id: Set(user.as_uuid()),
        variant: Set(variant.map(str::to_owned)),
        assigned_at: Set(now()),
    };
    experiment_assignments::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([experiment_assignments::Column::ExperimentId, experiment_assignments::Column::UserId])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(tx.conn())
        .await?;
    assignment(tx, experiment, user).await?.ok_or(StoreError::NotFound("assignment"))
}
