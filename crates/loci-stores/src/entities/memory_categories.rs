use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "memory_categories")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub memory_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub category_id: Uuid,
    pub org_id: String,
    /// Copies of the memory's fields, kept by triggers (migration
    /// `m20261207_000001_category_links`) so a category's page is read from
    /// its links in list order.
    pub user_id: Option<Uuid>,
    pub state: Option<String>,
    pub access_entity: Option<String>,
    pub created_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
