//! What the indexes store about a memory, and the filter every index query
//! carries.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use loci_core::model::{Memory, StructuredFields, Visibility};
use loci_core::{AccessEntity, AppId, MemoryId, MemoryState, OrgId, UserId};

/// A memory as the indexes see it: its text plus the fields queries filter
/// on. Built from the relational store (the source of truth) by the indexers.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexDoc {
    pub id: MemoryId,
    pub org_id: OrgId,
    pub user_id: UserId,
    pub app_id: AppId,
    pub state: MemoryState,
    /// The memory's content.
    pub content: String,
    /// Extra text indexed with the content but never returned (e.g. the
    /// neighbouring turns of a conversation); empty when there is none.
    pub context: String,
    pub access_entity: Option<AccessEntity>,
    /// The six exactly-matchable metadata fields.
    pub fields: StructuredFields,
    /// String-valued tags (others are not filterable).
    pub tags: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
}

impl IndexDoc {
    /// The document of a stored memory (without context).
    pub fn from_memory(m: &Memory) -> Self {
        let md = &m.metadata;
        Self {
            id: m.id,
            org_id: m.org_id.clone(),
            user_id: m.user_id,
            app_id: m.app_id,
            state: m.state,
            content: m.content.clone(),
            context: String::new(),
            access_entity: md.access_entity.clone(),
            fields: md.structured(),
            tags: md.tags.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned()))).collect(),
            created_at: m.created_at,
        }
    }

    /// Keys stored with the document for visibility: `owner:<user id>` and,
    /// when it has an access entity, every grant that covers it. A caller may
    /// see the document iff one of [`SearchFilter::visibility_keys`] is among
    /// these: engines evaluate that as a terms/any-match inside the query.
    pub fn visibility_keys(&self) -> Vec<String> {
        let mut keys = vec![owner_key(self.user_id)];
        if let Some(entity) = &self.access_entity {
            keys.extend(entity.covering_grants().iter().map(|g| format!("grant:{g}")));
        }
        keys
    }
}

fn owner_key(user: UserId) -> String {
    format!("owner:{user}")
}

/// Restrictions of an index query. The org is mandatory; every other field
/// narrows further. Engines translate it into their own query language (and
/// the embedded ones can use [`SearchFilter::admits`] inside the search).
#[derive(Debug, Clone, PartialEq)]
pub struct SearchFilter {
    pub org: OrgId,
    /// The caller's visibility; `None` only for internal maintenance paths.
    pub visible_to: Option<Visibility>,
    /// Admitted states (default: active only).
    pub states: Vec<MemoryState>,
    pub app_id: Option<AppId>,
    /// Required values of the structured fields (unset ones match anything).
    pub fields: StructuredFields,
    /// Tag key = string value (all of).
    pub tags: BTreeMap<String, String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Memories never returned (e.g. the memory a "similar" search starts from).
    pub exclude: Vec<MemoryId>,
}

impl SearchFilter {
    /// Active memories of `org` visible to `visibility`.
    pub fn new(org: OrgId, visibility: Option<Visibility>) -> Self {
        Self {
            org,
            visible_to: visibility,
            states: vec![MemoryState::Active],
            app_id: None,
            fields: StructuredFields::default(),
            tags: BTreeMap::new(),
            from: None,
            to: None,
            exclude: Vec::new(),
        }
    }

    /// The keys of which a visible document carries at least one (see
    /// [`IndexDoc::visibility_keys`]); `None` when visibility is not checked.
    pub fn visibility_keys(&self) -> Option<Vec<String>> {
        self.visible_to.as_ref().map(|v| {
            let mut keys = vec![owner_key(v.user_id)];
            keys.extend(v.grants.iter().map(|g| format!("grant:{g}")));
            keys
        })
    }

    /// Whether `doc` passes the filter: the reference semantics every engine
    /// must reproduce inside its own query.
    pub fn admits(&self, doc: &IndexDoc) -> bool {
        doc.org_id == self.org
            && (self.states.is_empty() || self.states.contains(&doc.state))
            && self.visibility_keys().is_none_or(|keys| doc.visibility_keys().iter().any(|k| keys.contains(k)))
            && self.app_id.is_none_or(|a| a == doc.app_id)
            && self.fields.admit(&doc.fields)
            && self.tags.iter().all(|(k, v)| doc.tags.get(k) == Some(v))
            && self.from.is_none_or(|f| doc.created_at >= f)
            && self.to.is_none_or(|t| doc.created_at <= t)
            && !self.exclude.contains(&doc.id)
    }
}
