use loci_core::{AppId, UserId};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::entities::apps;
use crate::{StoreError, TenantTx, repo};
use loci_core::model::{App, now};

fn to_record(tx: &TenantTx, m: apps::Model) -> App {
    App {
        id: AppId::from_uuid(m.id),
        org_id: tx.org().clone(),
        owner_id: UserId::from_uuid(m.owner_id),
        name: m.name,
        description: m.description,
        is_active: m.is_active,
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

/// The owner's app with this name, created (active) on first use.
pub async fn ensure(tx: &TenantTx, owner: UserId, name: &str) -> Result<App, StoreError> {
    if let Some(app) = find_by_name(tx, owner, name).await? {
        return Ok(app);
    }
    // The owner must belong to this tenant: a foreign key alone would accept
    // another org's user.
    if repo::users::get(tx, owner).await?.is_none() {
        return Err(StoreError::NotFound("user"));
    }
    let t = now();
    let row = apps::ActiveModel {
        id: Set(AppId::new().as_uuid()),
        org_id: Set(tx.org_str()),
        owner_id: Set(owner.as_uuid()),
        name: Set(name.to_owned()),
        description: Set(None),
        is_active: Set(true),
        metadata: Set(serde_json::json!({})),
        created_at: Set(t),
        updated_at: Set(t),
    };
    apps::Entity::insert(row)
        .on_conflict(OnConflict::columns([apps::Column::OwnerId, apps::Column::Name]).do_nothing().to_owned())
        .exec_without_returning(tx.conn())
        .await?;
    find_by_name(tx, owner, name).await?.ok_or(StoreError::NotFound("app"))
}

pub async fn find_by_name(tx: &TenantTx, owner: UserId, name: &str) -> Result<Option<App>, StoreError> {
    let model = apps::Entity::find()
        .filter(apps::Column::OrgId.eq(tx.org_str()))
        .filter(apps::Column::OwnerId.eq(owner.as_uuid()))
        .filter(apps::Column::Name.eq(name))
        .one(tx.conn())
        .await?;
    Ok(model.map(|m| to_record(tx, m)))
}

pub async fn get(tx: &TenantTx, id: AppId) -> Result<Option<App>, StoreError> {
    let model = apps::Entity::find()
        .filter(apps::Column::OrgId.eq(tx.org_str()))
        .filter(apps::Column::Id.eq(id.as_uuid()))
        .one(tx.conn())
        .await?;
    Ok(model.map(|m| to_record(tx, m)))
}

/// The owner's apps, by name.
pub async fn list_for_owner(tx: &TenantTx, owner: UserId) -> Result<Vec<App>, StoreError> {
    let models = apps::Entity::find()
        .filter(apps::Column::OrgId.eq(tx.org_str()))
        .filter(apps::Column::OwnerId.eq(owner.as_uuid()))
        .order_by_asc(apps::Column::Name)
        .all(tx.conn())
        .await?;
    Ok(models.into_iter().map(|m| to_record(tx, m)).collect())
}

/// Pauses or resumes an app; `None` (and no change) for another tenant's app.
pub async fn set_active(tx: &TenantTx, id: AppId, active: bool) -> Result<Option<App>, StoreError> {
    let result = apps::Entity::update_many()
        .col_expr(apps::Column::IsActive, Expr::value(active))
        .col_expr(apps::Column::UpdatedAt, Expr::value(now()))
        .filter(apps::Column::OrgId.eq(tx.org_str()))
        .filter(apps::Column::Id.eq(id.as_uuid()))
        .exec(tx.conn())
        .await?;
    if result.rows_affected == 0 {
        return Ok(None);
    }
    get(tx, id).await
}

/// `(SELECT name FROM apps WHERE apps.id = memories.app_id)`, for sorting
/// memories by app name (a fixed expression, no input).
pub(crate) fn name_of_memory_app() -> sea_orm::sea_query::SimpleExpr {
    sea_orm::sea_query::Expr::cust(
        "(SELECT \"apps\".\"name\" FROM \"apps\" WHERE \"apps\".\"id\" = \"memories\".\"app_id\")",
    )
}
