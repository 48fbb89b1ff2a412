use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "code_symbols")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: String,
    pub repo_id: Uuid,
    pub file_id: Uuid,
    pub name: String,
    pub qualified_name: String,
    pub kind: String,
    pub language: String,
    pub start_line: i32,
    pub end_line: i32,
    pub signature: String,
    pub doc: Option<String>,
    pub owner_type: Option<String>,
    pub parent_id: Option<Uuid>,
    pub excerpt: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
