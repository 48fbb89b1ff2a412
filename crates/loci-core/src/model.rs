//! The records that cross crate lines: what the stores return and the
//! services and transports pass on (memories, apps, pages, filters). They
//! carry parsed vocabulary types, never raw strings for enums or ids; how
//! they are stored is the store's business.

use std::collections::BTreeMap;

use crate::{
    AccessEntity, AppId, ArtifactType, Category, CategoryId, FeedbackOutcome, FeedbackType, MemoryId, MemoryState,
    OrgId, Scope, Source, UserId,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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

impl MemoryMetadata {
    /// The six exactly-matchable fields, as stored text.
    pub fn structured(&self) -> StructuredFields {
        StructuredFields {
            category: self.category.map(|c| c.as_str().to_owned()),
            scope: self.scope.map(|c| c.as_str().to_owned()),
            artifact_type: self.artifact_type.map(|c| c.as_str().to_owned()),
            artifact_ref: self.artifact_ref.clone(),
            entity: self.entity.clone(),
            source: self.source.map(|c| c.as_str().to_owned()),
        }
    }
}

/// The six structured fields of a memory that filters match exactly, as
/// stored text (`category`, `scope`, `artifact_type` and `source` by their
/// enum names). Index documents carry them and index filters require them
/// through this one type, so every store and engine handles the same set,
/// by the same names ([`StructuredFields::NAMES`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StructuredFields {
    pub category: Option<String>,
    pub scope: Option<String>,
    pub artifact_type: Option<String>,
    pub artifact_ref: Option<String>,
    pub entity: Option<String>,
    pub source: Option<String>,
}

impl StructuredFields {
    /// The fields' names, as stored and as filters name them.
    pub const NAMES: [&'static str; 6] = ["category", "scope", "artifact_type", "artifact_ref", "entity", "source"];

    /// Each field with its name, in [`Self::NAMES`] order.
    pub fn named(&self) -> [(&'static str, Option<&str>); 6] {
        [
            ("category", self.category.as_deref()),
            ("scope", self.scope.as_deref()),
            ("artifact_type", self.artifact_type.as_deref()),
            ("artifact_ref", self.artifact_ref.as_deref()),
            ("entity", self.entity.as_deref()),
            ("source", self.source.as_deref()),
        ]
    }

    /// Each field mutably, in [`Self::NAMES`] order.
    pub fn named_mut(&mut self) -> [(&'static str, &mut Option<String>); 6] {
        [
            ("category", &mut self.category),
            ("scope", &mut self.scope),
            ("artifact_type", &mut self.artifact_type),
            ("artifact_ref", &mut self.artifact_ref),
            ("entity", &mut self.entity),
            ("source", &mut self.source),
        ]
    }

    /// Whether `other` has every field this one sets (a filter admitting a
    /// document): unset fields match anything.
    pub fn admit(&self, other: &Self) -> bool {
        self.named().iter().zip(other.named()).all(|((_, want), (_, have))| want.is_none() || *want == have)
    }
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
    /// When it stopped being current (superseded or retracted; it is then
    /// archived); `None` while current.
    #[serde(default)]
    pub valid_to: Option<DateTime<Utc>>,
    /// The memory that superseded it.
    #[serde(default)]
    pub superseded_by: Option<MemoryId>,
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

impl MemoryUpdate {
    /// Replaces the content, every metadata field and the categories (a
    /// restore overwriting a memory with its backed-up version).
    pub fn replacing(content: String, metadata: MemoryMetadata, categories: Vec<String>) -> Self {
        let MemoryMetadata {
            category,
            scope,
            artifact_type,
            artifact_ref,
            entity,
            source,
            access_entity,
            evidence,
            tags,
            extra,
        } = metadata;
        Self {
            content: Some(content),
            category: Some(category),
            scope: Some(scope),
            artifact_type: Some(artifact_type),
            artifact_ref: Some(artifact_ref),
            entity: Some(entity),
            source: Some(source),
            access_entity: Some(access_entity),
            evidence: Some(evidence),
            tags_merge: tags,
            extra: Some(extra),
            categories: Some(categories),
        }
    }
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

impl SortField {
    /// Whether lists in this order page by keyset (a cursor holding the
    /// last row's value): the time orders. A content cursor would carry a
    /// whole memory, and the app name is a value of another table.
    pub fn has_keyset(self) -> bool {
        matches!(self, Self::CreatedAt | Self::UpdatedAt)
    }
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
    /// Only memories whose content has one of these hashes
    /// ([`crate::content_hash`]).
    pub content_hashes: Vec<String>,
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
    /// Keyset pagination: only memories after this position in the sort
    /// order. The total still counts the whole filter.
    pub after: Option<SortKey>,
    /// Only memories current at this time: created by then and not
    /// superseded or retracted by then.
    pub as_of: Option<DateTime<Utc>>,
}

/// A position in a memory list: the sort column's value of a memory and its
/// id (the tie-break of every order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SortKey {
    pub value: SortValue,
    pub id: MemoryId,
}

/// The value of the sort column at a [`SortKey`]: the time orders have
/// keysets (content and app name orders page by number).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortValue {
    Time(DateTime<Utc>),
}

impl SortKey {
    /// The key of `m` in the `sort` order; `None` for orders without a
    /// keyset ([`SortField::has_keyset`]).
    pub fn of(m: &Memory, sort: SortField) -> Option<Self> {
        let value = match sort {
            SortField::CreatedAt => SortValue::Time(m.created_at),
            SortField::UpdatedAt => SortValue::Time(m.updated_at),
            SortField::Content | SortField::AppName => return None,
        };
        Some(Self { value, id: m.id })
    }
}

impl MemoryFilter {
    /// Whether the filter selects a user's memories by state and nothing
    /// else (visibility aside): the case the stored counts answer.
    pub fn only_states(&self) -> bool {
        let bare = Self {
            visible_to: None,
            states: Vec::new(),
            sort: SortField::default(),
            direction: SortDirection::default(),
            after: None,
            ..self.clone()
        };
        bare == Self { states: Vec::new(), ..Self::default() }
    }
}

impl Default for MemoryFilter {
    fn default() -> Self {
        Self {
            visible_to: None,
            ids: Vec::new(),
            user_id: None,
            content_hashes: Vec::new(),
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
            after: None,
            as_of: None,
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
    /// Opens the next page by keyset (cheaper than a page number deep in a
    /// long list); absent on the last page and on lists without cursors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// The page `page` of a list of `total` items, holding `items`.
    pub fn new(items: Vec<T>, total: u64, page: PageRequest) -> Self {
        let pages = if page.size == 0 { 0 } else { total.div_ceil(page.size) };
        Self { items, total, page: page.page, size: page.size, pages, next_cursor: None }
    }

    /// The page `page` of `all`, a whole list held in memory.
    pub fn slice(all: Vec<T>, page: PageRequest) -> Self {
        let total = all.len() as u64;
        let start = usize::try_from(page.page.saturating_sub(1).saturating_mul(page.size)).unwrap_or(usize::MAX);
        let items = all.into_iter().skip(start).take(usize::try_from(page.size).unwrap_or(usize::MAX)).collect();
        Self::new(items, total, page)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusChange {
    pub memory_id: MemoryId,
    pub old_state: Option<MemoryState>,
    pub new_state: MemoryState,
    pub changed_by: Option<UserId>,
    pub changed_at: DateTime<Utc>,
    /// Why (an `infer` decision), when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
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

/// A feedback event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeedbackEvent {
    pub event_id: Uuid,
    pub user_id: UserId,
    pub query_id: Option<String>,
    pub session_id: Option<String>,
    pub tool_name: String,
    pub outcome: FeedbackOutcome,
    pub feedback_type: FeedbackType,
    pub timestamp: DateTime<Utc>,
    pub decision_time_ms: Option<i64>,
    #[schema(value_type = Option<Object>)]
    pub rrf_weights: Option<serde_json::Value>,
    pub reranker_used: Option<String>,
    pub result_index: Option<i32>,
    pub result_id: Option<MemoryId>,
    /// The retrieval sources that found the result (`vector`, `lexical`,
    /// `graph`).
    pub sources: Option<Vec<String>>,
    pub experiment_id: Option<Uuid>,
    pub variant_id: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
}

/// Counts of a set of events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FeedbackCounts {
    pub total_events: u64,
    /// accepted / (total - ignored); 0 when nothing is left.
    pub acceptance_rate: f64,
    /// Events per outcome (every outcome listed).
    pub outcome_distribution: BTreeMap<String, u64>,
    /// Mean of the events that carry a decision time.
    pub average_decision_time_ms: Option<f64>,
}

impl FeedbackCounts {
    /// From event counts per outcome and the mean decision time.
    pub fn from_outcomes(outcomes: &BTreeMap<String, u64>, mean_ms: Option<f64>) -> Self {
        let mut distribution: BTreeMap<String, u64> =
            FeedbackOutcome::ALL.iter().map(|o| (o.as_str().to_owned(), 0)).collect();
        for (k, v) in outcomes {
            *distribution.entry(k.clone()).or_default() += v;
        }
        let total: u64 = distribution.values().sum();
        let get = |o: FeedbackOutcome| distribution.get(o.as_str()).copied().unwrap_or(0);
        let considered = total - get(FeedbackOutcome::Ignored);
        let acceptance_rate =
            if considered == 0 { 0.0 } else { get(FeedbackOutcome::Accepted) as f64 / considered as f64 };
        Self {
            total_events: total,
            acceptance_rate,
            outcome_distribution: distribution,
            average_decision_time_ms: mean_ms,
        }
    }
}

/// One variant of an experiment: its share of the experiment's users and
/// the search configuration they get.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Variant {
    pub name: String,
    /// Share of the experiment's users, 0 to 1 (the variants sum to 1).
    pub weight: f64,
    /// `{ "weights": {vector, lexical, graph}, "mode": "hybrid" }`, either
    /// or both.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
}

/// An experiment of an org.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Experiment {
    pub experiment_id: Uuid,
    pub name: String,
    pub description: String,
    pub variants: Vec<Variant>,
    /// Share of the org's users in the experiment, 0 to 1.
    pub traffic_percentage: f64,
    pub status: crate::ExperimentStatus,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When it first ran.
    pub start_time: Option<DateTime<Utc>>,
    /// When it was completed or rolled back.
    pub end_time: Option<DateTime<Utc>>,
}

/// A status change of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExperimentChange {
    pub experiment_id: Uuid,
    pub old_status: Option<crate::ExperimentStatus>,
    pub new_status: crate::ExperimentStatus,
    pub changed_by: UserId,
    pub changed_at: DateTime<Utc>,
}

/// A user's place in an experiment, fixed on first assignment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Assignment {
    pub experiment_id: Uuid,
    pub user_id: UserId,
    /// The variant; `None`: left out by the traffic share.
    pub variant: Option<String>,
    pub assigned_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_is_the_requested_page_of_the_whole_list() {
        let page = |n| Page::slice((1..=7).collect::<Vec<u32>>(), PageRequest { page: n, size: 3 });
        assert_eq!((page(1).items, page(1).total, page(1).pages), (vec![1, 2, 3], 7, 3));
        assert_eq!(page(3).items, [7]);
        let past = page(4);
        assert_eq!((past.items.len(), past.total, past.page, past.next_cursor), (0, 7, 4, None));
        assert_eq!(Page::<u32>::new(Vec::new(), 0, PageRequest { page: 1, size: 50 }).pages, 0);
    }

    #[test]
    fn structured_fields_come_from_the_metadata_and_match_by_name() {
        let md = MemoryMetadata {
            category: Some(Category::Decision),
            artifact_ref: Some("src/main.rs".into()),
            source: Some(Source::User),
            ..MemoryMetadata::default()
        };
        let doc = md.structured();
        assert_eq!(doc.named()[0], ("category", Some("decision")));
        assert_eq!(doc.named()[3], ("artifact_ref", Some("src/main.rs")));
        assert_eq!(doc.named()[5], ("source", Some("user")));
        assert_eq!(doc.named().map(|(n, _)| n), StructuredFields::NAMES);
        let mut filter = StructuredFields::default();
        assert!(filter.admit(&doc), "an empty filter admits anything");
        filter.category = Some("decision".into());
        assert!(filter.admit(&doc));
        for (_, value) in filter.named_mut() {
            *value = Some("other".into());
        }
        assert!(!filter.admit(&doc));
    }
}
