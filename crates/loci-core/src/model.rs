//! The records that cross crate lines: what the stores return and the
//! services and transports pass on (memories, apps, pages, filters). They
//! carry parsed vocabulary types, never raw strings for enums or ids; how
//! they are stored is the store's business.

use std::collections::BTreeMap;

use crate::{
    AccessEntity, AppId, ArtifactType, Category, CategoryId, MemoryId, MemoryState, OrgId, Scope, Source, UserId,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Current time at the precision both engines store (microseconds), so a
/// value read back equals the value written on PostgreSQL and on SQLite.
pub fn now() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Org {
    pub id: OrgId,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: UserId,
    pub org_id: OrgId,
    /// The identity provider's `sub`.
    pub subject: String,
    pub display_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct App {
    pub id: AppId,
    pub org_id: OrgId,
    pub owner_id: UserId,
    pub name: String,
    pub description: Option<String>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Structured metadata of a memory (validated by the domain before it gets here).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemoryMetadata {
    pub category: Option<Category>,
    pub scope: Option<Scope>,
    pub artifact_type: Option<ArtifactType>,
    pub artifact_ref: Option<String>,
    pub entity: Option<String>,
    pub source: Option<Source>,
    #[schema(value_type = Option<String>, example = "team:acme/core")]
    pub access_entity: Option<AccessEntity>,
    #[serde(default)]
    pub evidence: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub tags: BTreeMap<String, serde_json::Value>,
    /// Free-form client metadata beyond the structured fields.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Memory {
    pub id: MemoryId,
    pub org_id: OrgId,
    pub user_id: UserId,
    pub app_id: AppId,
    pub content: String,
    pub content_hash: String,
    pub metadata: MemoryMetadata,
    pub state: MemoryState,
    /// Names of the categories the memory is filed under.
    pub categories: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// Input of `memories::create`. There is no org field: the tenant comes from
/// the transaction, whatever the caller intended.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMemory {
    pub user_id: UserId,
    pub app_id: AppId,
    pub content: String,
    pub metadata: MemoryMetadata,
    /// Category names (created in the org on first use).
    pub categories: Vec<String>,
}

/// Input of `memories::update`; `None` leaves a field unchanged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryUpdate {
    pub content: Option<String>,
    pub category: Option<Option<Category>>,
    pub scope: Option<Option<Scope>>,
    pub artifact_type: Option<Option<ArtifactType>>,
    pub artifact_ref: Option<Option<String>>,
    pub entity: Option<Option<String>>,
    pub source: Option<Option<Source>>,
    pub access_entity: Option<Option<AccessEntity>>,
    pub evidence: Option<Vec<String>>,
    /// Merged into the existing tags (a `null` value removes the key).
    pub tags_merge: BTreeMap<String, serde_json::Value>,
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
    /// Replaces the category names when present.
    pub categories: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortField {
    #[default]
    CreatedAt,
    UpdatedAt,
    Content,
    AppName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortDirection {
    Asc,
    #[default]
    Desc,
}

/// Who may see a memory: its owner, and anyone whose grants cover its
/// access entity. Applied inside the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visibility {
    pub user_id: UserId,
    pub grants: Vec<AccessEntity>,
}

/// Filter of `memories::list`. Always applied within the transaction's tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryFilter {
    /// Only memories this caller may see.
    pub visible_to: Option<Visibility>,
    /// Only these memories.
    pub ids: Vec<MemoryId>,
    /// Only memories this user owns.
    pub user_id: Option<UserId>,
    pub app_id: Option<AppId>,
    pub app_ids: Vec<AppId>,
    pub states: Vec<MemoryState>,
    /// Category names (any of).
    pub category_names: Vec<String>,
    /// Category ids (any of).
    pub category_ids: Vec<CategoryId>,
    pub categories: Vec<Category>,
    pub scopes: Vec<Scope>,
    pub artifact_types: Vec<ArtifactType>,
    pub entities: Vec<String>,
    pub sources: Vec<Source>,
    /// Tag key = string value (all of).
    pub tags: BTreeMap<String, String>,
    /// Case-insensitive substring of the content.
    pub search: Option<String>,
    pub category: Option<Category>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub sort: SortField,
    pub direction: SortDirection,
}

impl Default for MemoryFilter {
    fn default() -> Self {
        Self {
            visible_to: None,
            ids: Vec::new(),
            user_id: None,
            app_id: None,
            app_ids: Vec::new(),
            states: vec![MemoryState::Active, MemoryState::Paused],
            category_names: Vec::new(),
            category_ids: Vec::new(),
            categories: Vec::new(),
            scopes: Vec::new(),
            artifact_types: Vec::new(),
            entities: Vec::new(),
            sources: Vec::new(),
            tags: BTreeMap::new(),
            search: None,
            category: None,
            from: None,
            to: None,
            sort: SortField::CreatedAt,
            direction: SortDirection::Desc,
        }
    }
}

/// 1-based page request; `size` is clamped by callers to their limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u64,
    pub size: u64,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self { page: 1, size: 50 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Exactly the number of rows the filter matches.
    pub total: u64,
    pub page: u64,
    pub size: u64,
    pub pages: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusChange {
    pub memory_id: MemoryId,
    pub old_state: Option<MemoryState>,
    pub new_state: MemoryState,
    pub changed_by: Option<UserId>,
    pub changed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CategoryRecord {
    pub id: CategoryId,
    pub name: String,
    /// Visible memories filed under it.
    pub memory_count: u64,
}

/// One read of a memory, for the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRecord {
    pub org_id: OrgId,
    pub memory_id: MemoryId,
    pub user_id: UserId,
    pub app_id: Option<AppId>,
    /// `get`, `list`, `search`, `mcp:<tool>`.
    pub access_type: String,
    pub accessed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AccessLogEntry {
    pub memory_id: MemoryId,
    pub user_id: UserId,
    pub app_id: Option<AppId>,
    pub access_type: String,
    pub accessed_at: DateTime<Utc>,
}

/// An app with its activity counts.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AppSummary {
    pub app: App,
    /// Memories created through it (not deleted).
    pub memories_created: u64,
    /// Reads of memories through it.
    pub memories_accessed: u64,
    pub first_accessed: Option<DateTime<Utc>>,
    pub last_accessed: Option<DateTime<Utc>>,
}

/// Counts for `/stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MemoryStats {
    pub total_memories: u64,
    pub by_state: BTreeMap<String, u64>,
    pub by_category: BTreeMap<String, u64>,
}
