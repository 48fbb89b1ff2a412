use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "graph_mentions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub memory_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub entity_id: Uuid,
    pub org_id: String,
    pub source_kind: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
