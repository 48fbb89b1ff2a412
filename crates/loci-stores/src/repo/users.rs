use loci_core::UserId;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use crate::entities::users;
use crate::{StoreError, TenantTx};
use loci_core::model::{User, now};

fn to_record(tx: &TenantTx, m: users::Model) -> User {
    User {
        id: UserId::from_uuid(m.id),
        org_id: tx.org().clone(),
        subject: m.subject,
        display_name: m.display_name,
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

/// The user with this external subject in the transaction's org, created on
/// first use. Safe under concurrent first requests (insert-or-ignore).
pub async fn ensure(tx: &TenantTx, subject: &str) -> Result<User, StoreError> {
    if let Some(user) = find_by_subject(tx, subject).await? {
        return Ok(user);
    }
    let t = now();
    let row = users::ActiveModel {
        id: Set(UserId::new().as_uuid()),
        org_id: Set(tx.org_str()),
        subject: Set(subject.to_owned()),
        display_name: Set(None),
        created_at: Set(t),
        updated_at: Set(t),
    };
    users::Entity::insert(row)
        .on_conflict(OnConflict::columns([users::Column::OrgId, users::Column::Subject]).do_nothing().to_owned())
        .exec_without_returning(tx.conn())
        .await?;
    find_by_subject(tx, subject).await?.ok_or(StoreError::NotFound("user"))
}

pub async fn find_by_subject(tx: &TenantTx, subject: &str) -> Result<Option<User>, StoreError> {
    let model = users::Entity::find()
        .filter(users::Column::OrgId.eq(tx.org_str()))
        .filter(users::Column::Subject.eq(subject))
        .one(tx.conn())
        .await?;
    Ok(model.map(|m| to_record(tx, m)))
}

pub async fn get(tx: &TenantTx, id: UserId) -> Result<Option<User>, StoreError> {
    let model = users::Entity::find()
        .filter(users::Column::OrgId.eq(tx.org_str()))
        .filter(users::Column::Id.eq(id.as_uuid()))
        .one(tx.conn())
        .await?;
    Ok(model.map(|m| to_record(tx, m)))
}
