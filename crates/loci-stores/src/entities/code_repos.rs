use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "code_repos")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: String,
    pub name: String,
    pub source_kind: String,
    pub source: String,
    pub packages: Json,
    pub dependencies: Json,
    pub file_count: i32,
    pub symbol_count: i32,
    pub index_generation: Option<String>,
    pub created_at: DateTimeUtc,
    pub indexed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
