use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "memories")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: String,
    pub user_id: Uuid,
    pub app_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub content: String,
    pub content_hash: String,
    pub category: Option<String>,
    pub scope: Option<String>,
    pub artifact_type: Option<String>,
    pub artifact_ref: Option<String>,
    pub entity: Option<String>,
    pub source: Option<String>,
    pub access_entity: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub evidence: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub tags: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub metadata: Json,
    pub state: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub archived_at: Option<DateTimeUtc>,
    pub deleted_at: Option<DateTimeUtc>,
    pub valid_to: Option<DateTimeUtc>,
    pub superseded_by: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
