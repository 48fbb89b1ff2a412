use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "code_calls")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: String,
    pub repo_id: Uuid,
    pub file_id: Uuid,
    pub caller_id: Option<Uuid>,
    pub callee_id: Option<Uuid>,
    pub callee_name: String,
    pub qualifier: Option<String>,
    pub module: Option<String>,
    pub line: i32,
    pub resolution: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
