use sea_orm::entity::prelude::*;

/// A co-mention edge, stored once per pair with `a < b`; `weight` is the
/// number of memories mentioning both.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "graph_edges")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub org_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub a: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub b: Uuid,
    pub weight: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
