use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, EntityTrait};

use crate::entities::orgs;
use crate::{StoreError, TenantTx};
use loci_core::model::{Org, now};

/// Provisions the transaction's org if it does not exist yet (first
/// authenticated request of a tenant) and returns it.
pub async fn ensure(tx: &TenantTx) -> Result<Org, StoreError> {
    let row = orgs::ActiveModel { id: Set(tx.org_str()), name: Set(None), created_at: Set(now()) };
    orgs::Entity::insert(row)
        .on_conflict(OnConflict::column(orgs::Column::Id).do_nothing().to_owned())
        .exec_without_returning(tx.conn())
        .await?;
    get(tx).await?.ok_or(StoreError::NotFound("org"))
}

/// The transaction's org, if provisioned.
pub async fn get(tx: &TenantTx) -> Result<Option<Org>, StoreError> {
    let model = orgs::Entity::find_by_id(tx.org_str()).one(tx.conn()).await?;
    Ok(model.map(|m| Org { id: tx.org().clone(), name: m.name, created_at: m.created_at }))
}
