use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "feedback_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: String,
    pub user_id: Uuid,
    pub query_id: Option<String>,
    pub session_id: Option<String>,
    pub tool_name: String,
    pub outcome: String,
    pub feedback_type: String,
    pub occurred_at: DateTimeUtc,
    pub decision_time_ms: Option<i64>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub rrf_weights: Option<Json>,
    pub reranker_used: Option<String>,
    pub result_index: Option<i32>,
    pub result_id: Option<Uuid>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub sources: Option<Json>,
    pub experiment_id: Option<Uuid>,
    pub variant_id: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub metadata: Json,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
