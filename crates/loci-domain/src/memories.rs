//! The memories service: create, read, list and filter, update, delete and
//! state changes, for one authenticated caller.
//!
//! Visibility: a caller sees their own memories and those whose access entity
//! one of their grants covers (filtered inside the query). Writes (update,
//! delete, state changes) are for the owner only; anything else is answered
//! as not found.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use loci_core::model::{
    AccessLogEntry, App, CategoryRecord, Memory, MemoryFilter, MemoryUpdate, NewMemory, Page, PageRequest,
    StatusChange, Visibility, now,
};
use loci_core::{AppId, CategoryId, MemoryId, MemoryState, UserId};
use loci_security::Principal;
use loci_stores::repo::{access_logs, apps, memories};
use loci_stores::{Database, TenantTx};
use parking_lot::Mutex;
use serde::Serialize;

use crate::access_log::AccessLog;
use crate::caller::insert_bounded;
use crate::rules;
use crate::validation::{self, CreateMemoryInput, Limits, UpdateMemoryInput};
use crate::{DomainError, FieldViolation, Provisioner};

/// A memory as returned to callers.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MemoryView {
    #[serde(flatten)]
    pub memory: Memory,
    pub app_name: String,
    /// Whether the caller owns it (and so may change it).
    pub owned: bool,
}

/// Which memories a bulk state change applies to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    pub memory_ids: Vec<MemoryId>,
    pub app_id: Option<AppId>,
    pub category_ids: Vec<CategoryId>,
}

/// Outcome of a bulk operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BulkOutcome {
    pub changed: Vec<MemoryId>,
    pub skipped: Vec<MemoryId>,
}

/// Outcome of deleting all of a caller's memories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DeleteAll {
    pub deleted: Vec<MemoryId>,
    /// Owned memories left (more than one call's cap).
    pub remaining: u64,
}

/// The state actions of `/actions/{pause,resume,archive}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateAction {
    Pause,
    Resume,
    Archive,
}

impl StateAction {
    pub const ALL: &'static [StateAction] = &[Self::Pause, Self::Resume, Self::Archive];

    /// The action's name in the path.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Archive => "archive",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.as_str() == name)
    }

    fn target(self) -> MemoryState {
        match self {
            Self::Pause => MemoryState::Paused,
            Self::Resume => MemoryState::Active,
            Self::Archive => MemoryState::Archived,
        }
    }
}

/// One memory of [`MemoryService::import_many`].
#[derive(Debug, Clone, PartialEq)]
pub struct ImportItem {
    pub content: String,
    pub metadata: loci_core::model::MemoryMetadata,
    pub created_at: DateTime<Utc>,
}

/// A memory and the one that superseded it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SupersededView {
    /// The old memory, now archived with `valid_to` and `superseded_by`.
    pub superseded: MemoryView,
    /// The new, current memory.
    pub memory: MemoryView,
}

/// A page of a scoped retrieval.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ScopedListView {
    /// Highest scope precedence first (session 60, user 50, team 40,
    /// project 30, org 20, enterprise 10), then newest.
    pub items: Vec<MemoryView>,
    pub page: u64,
    pub size: u64,
    /// Pages of the deduplicated list.
    pub pages: u64,
    /// Visible active memories matching the query.
    pub total_before_dedup: u64,
    /// Distinct contents among them (what is paginated).
    pub total_after_dedup: u64,
    /// Copies left out, by the scope of each copy left out.
    pub dedup_by_scope: std::collections::BTreeMap<String, u64>,
}

/// Bulk selections touch at most this many memories per call.
const BULK_CAP: u64 = 10_000;

/// Who read memories loaded without logging, and through which app.
#[derive(Debug, Clone, Copy)]
pub struct PendingReads {
    me: UserId,
    app: Option<AppId>,
}

#[derive(Debug, Clone)]
pub struct MemoryService {
    db: Database,
    provisioner: Provisioner,
    access: AccessLog,
    limits: Limits,
    auto_categorizer: Option<crate::categorize::AutoCategorizer>,
    apps: AppCache,
}

/// App names and each caller's reading app, per process: every read needs
/// them and apps are never renamed or deleted while the process runs, so
/// only facts about apps that exist are kept (a missing reading app is
/// looked up again, it may be created by the caller's first write).
#[derive(Debug, Clone, Default)]
struct AppCache {
    names: Arc<Mutex<HashMap<AppId, String>>>,
    readers: Arc<Mutex<HashMap<(UserId, String), AppId>>>,
}

impl AppCache {
    const CAPACITY: usize = 100_000;
}

impl MemoryService {
    pub fn new(db: Database, provisioner: Provisioner, access: AccessLog, limits: Limits) -> Self {
        Self { db, provisioner, access, limits, auto_categorizer: None, apps: AppCache::default() }
    }

    /// Adds automatic categorisation of new memories.
    pub fn with_auto_categorizer(mut self, auto: crate::categorize::AutoCategorizer) -> Self {
        self.auto_categorizer = Some(auto);
        self
    }

    /// The relational store, for the domain's other read services.
    pub(crate) fn db(&self) -> &Database {
        &self.db
    }

    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    /// Queues automatic categorisation of a new memory, when it is on.
    pub(crate) fn categorise_later(&self, p: &Principal, memory: &Memory) {
        if let Some(auto) = &self.auto_categorizer {
            auto.enqueue(&p.org_id, memory.id, &memory.content);
        }
    }

    /// The caller's own current (active or paused) memories among `ids`,
    /// with one of `hashes`, and the `recent` newest ones.
    pub(crate) async fn current_own(
        &self,
        p: &Principal,
        ids: &[MemoryId],
        hashes: &[String],
        recent: u64,
    ) -> Result<Vec<Memory>, DomainError> {
        let me = self.provisioner.user(&self.db, p).await?;
        let tx = self.db.begin_tenant_read(&p.org_id).await?;
        let own = MemoryFilter {
            user_id: Some(me),
            states: vec![MemoryState::Active, MemoryState::Paused],
            ..MemoryFilter::default()
        };
        let mut found: Vec<Memory> = Vec::new();
        let all = PageRequest { page: 1, size: rules::MAX_IDS_PER_CALL as u64 };
        if !ids.is_empty() {
            found.extend(memories::list(&tx, &MemoryFilter { ids: ids.to_vec(), ..own.clone() }, all).await?.items);
        }
        if !hashes.is_empty() {
            let same = MemoryFilter { content_hashes: hashes.to_vec(), ..own.clone() };
            found.extend(memories::list(&tx, &same, all).await?.items);
        }
        if recent > 0 {
            found.extend(memories::list(&tx, &own, PageRequest { page: 1, size: recent }).await?.items);
        }
        tx.commit().await?;
        let mut seen = std::collections::HashSet::new();
        found.retain(|m| seen.insert(m.id));
        Ok(found)
    }

    pub fn access_log(&self) -> &AccessLog {
        &self.access
    }

    /// Drops what the caches know of a user's apps (after an erasure).
    pub fn forget_user(&self, user: UserId) {
        self.apps.readers.lock().retain(|(owner, _), _| *owner != user);
        // App ids are not kept per owner here; names are cheap to look up.
        self.apps.names.lock().clear();
    }

    /// The caller's visibility (owner id plus grants).
    pub async fn visibility(&self, p: &Principal) -> Result<Visibility, DomainError> {
        let user_id = self.provisioner.user(&self.db, p).await?;
        Ok(Visibility { user_id, grants: p.grants.clone() })
    }

    async fn views(&self, tx: &TenantTx, me: UserId, items: Vec<Memory>) -> Result<Vec<MemoryView>, DomainError> {
        let mut names: HashMap<AppId, String> = HashMap::new();
        for m in &items {
            if names.contains_key(&m.app_id) {
                continue;
            }
            let cached = self.apps.names.lock().get(&m.app_id).cloned();
            let name = match cached {
                Some(name) => name,
                None => match apps::get(tx, m.app_id).await? {
                    Some(app) => {
                        insert_bounded(&self.apps.names, app.id, app.name.clone(), AppCache::CAPACITY);
                        app.name
                    }
                    None => String::new(),
                },
            };
            names.insert(m.app_id, name);
        }
        Ok(items
            .into_iter()
            .map(|m| MemoryView {
                app_name: names.get(&m.app_id).cloned().unwrap_or_default(),
                owned: m.user_id == me,
                memory: m,
            })
            .collect())
    }

    /// The app a read goes through: the caller's app named like the token's
    /// client, if the caller has one.
    async fn reading_app(&self, tx: &TenantTx, p: &Principal, me: UserId) -> Result<Option<AppId>, DomainError> {
        let Some(client) = p.client_id.as_deref() else {
            return Ok(None);
        };
        let key = (me, client.to_owned());
        if let Some(id) = self.apps.readers.lock().get(&key) {
            return Ok(Some(*id));
        }
        let found = apps::find_by_name(tx, me, client).await?.map(|a| a.id);
        if let Some(id) = found {
            insert_bounded(&self.apps.readers, key, id, AppCache::CAPACITY);
        }
        Ok(found)
    }

    fn log_reads(&self, p: &Principal, me: UserId, app: Option<AppId>, items: &[MemoryView], kind: &str) {
        let at = now();
        for v in items {
            self.access.record(loci_core::model::AccessRecord {
                org_id: p.org_id.clone(),
                memory_id: v.memory.id,
                user_id: me,
                app_id: app,
                access_type: kind.to_owned(),
                accessed_at: at,
            });
        }
    }

    /// The caller's user, a write transaction in their org, and the named
    /// app (created on first use); a paused app refuses writes.
    pub(crate) async fn writable_app(
        &self,
        p: &Principal,
        app_name: &str,
    ) -> Result<(UserId, TenantTx, App), DomainError> {
        let me = self.provisioner.user(&self.db, p).await?;
        let tx = self.db.begin_tenant(&p.org_id).await?;
        let app = apps::ensure(&tx, me, app_name).await?;
        if !app.is_active {
            tx.rollback().await?;
            return Err(DomainError::AppPaused);
        }
        Ok((me, tx, app))
    }

    /// A create's body checked (all violations at once): its text, the
    /// app to write through and the metadata.
    pub(crate) fn checked_create(
        &self,
        p: &Principal,
        input: &CreateMemoryInput,
    ) -> Result<(String, String, validation::ValidMetadata), DomainError> {
        let mut errors = Vec::new();
        // Inference goes through `InferService::add`, never here.
        for (field, given) in
            [("infer", input.infer), ("messages", input.messages.is_some()), ("async", input.run_async)]
        {
            if given {
                errors.push(FieldViolation::new(field, "not with this operation"));
            }
        }
        let text = validation::content("text", &input.text, &self.limits, &mut errors);
        let app_name = input.app.as_deref().or(p.client_id.as_deref()).unwrap_or("default").to_owned();
        let app_name = validation::app_name("app", &app_name, &mut errors);
        let metadata = validation::metadata(&input.metadata, &p.org_id, &self.limits, &mut errors);
        match (text, app_name, metadata) {
            (Some(text), Some(app_name), Some(metadata)) => Ok((text, app_name, metadata)),
            _ => Err(DomainError::Validation(errors)),
        }
    }

    /// Creates a memory through the named app (created on first use).
    pub async fn create(&self, p: &Principal, input: CreateMemoryInput) -> Result<MemoryView, DomainError> {
        let (text, app_name, metadata) = self.checked_create(p, &input)?;
        let (me, tx, app) = self.writable_app(p, &app_name).await?;
        let memory = memories::create(
            &tx,
            NewMemory {
                user_id: me,
                app_id: app.id,
                content: text,
                metadata: metadata.metadata,
                categories: metadata.categories,
            },
        )
        .await?;
        tx.commit().await?;
        self.categorise_later(p, &memory);
        Ok(MemoryView { memory, app_name: app.name, owned: true })
    }

    /// Replaces a current memory of the caller with a new one, in one
    /// transaction: the new memory is created as [`Self::create`] creates
    /// one (through `input.app`), and the old one is archived with
    /// `valid_to` and `superseded_by` set, so default lists and searches show
    /// only the new one and `as_of` reads show what was current when.
    pub async fn supersede(
        &self,
        p: &Principal,
        id: MemoryId,
        input: CreateMemoryInput,
    ) -> Result<SupersededView, DomainError> {
        let (text, app_name, metadata) = self.checked_create(p, &input)?;
        let (me, tx, app) = self.writable_app(p, &app_name).await?;
        let old = match self.owned(&tx, me, id).await {
            Ok(old) => old,
            Err(e) => {
                tx.rollback().await?;
                return Err(e);
            }
        };
        let memory = memories::create(
            &tx,
            NewMemory {
                user_id: me,
                app_id: app.id,
                content: text,
                metadata: metadata.metadata,
                categories: metadata.categories,
            },
        )
        .await?;
        let ended = memories::end_validity(&tx, old.id, Some(memory.id), Some(me), None).await?;
        let old_app = apps::get(&tx, old.app_id).await?.map_or_else(String::new, |a| a.name);
        tx.commit().await?;
        if let Some(auto) = &self.auto_categorizer {
            auto.enqueue(&p.org_id, memory.id, &memory.content);
        }
        let superseded = ended.ok_or(DomainError::NotFound("memory"))?;
        Ok(SupersededView {
            superseded: MemoryView { memory: superseded, app_name: old_app, owned: true },
            memory: MemoryView { memory, app_name: app.name, owned: true },
        })
    }

    /// Ends a current memory of the caller without a replacement: archived
    /// with `valid_to` set (`as_of` reads still find it).
    pub async fn retract(&self, p: &Principal, id: MemoryId) -> Result<MemoryView, DomainError> {
        let me = self.provisioner.user(&self.db, p).await?;
        let tx = self.db.begin_tenant(&p.org_id).await?;
        let old = match self.owned(&tx, me, id).await {
            Ok(old) => old,
            Err(e) => {
                tx.rollback().await?;
                return Err(e);
            }
        };
        let ended =
            memories::end_validity(&tx, old.id, None, Some(me), None).await?.ok_or(DomainError::NotFound("memory"))?;
        let app_name = apps::get(&tx, ended.app_id).await?.map_or_else(String::new, |a| a.name);
        tx.commit().await?;
        Ok(MemoryView { memory: ended, app_name, owned: true })
    }

    /// Bulk import of active memories with their original times (a
    /// conversation history, a migration, a benchmark's corpus): validated
    /// like [`Self::create`], written in one transaction through the named
    /// app, queued for indexing like any write. Returns the new ids in input
    /// order. At most [`rules::MAX_IMPORT_PER_CALL`] items.
    pub async fn import_many(
        &self,
        p: &Principal,
        app: &str,
        items: Vec<ImportItem>,
    ) -> Result<Vec<MemoryId>, DomainError> {
        let mut errors = Vec::new();
        if items.len() > rules::MAX_IMPORT_PER_CALL {
            errors.push(FieldViolation::new("items", format!("at most {} per call", rules::MAX_IMPORT_PER_CALL)));
        }
        let app_name = validation::app_name("app", app, &mut errors);
        let mut batch = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let content = validation::content(&format!("items[{i}].content"), &item.content, &self.limits, &mut errors);
            let sizes_ok = validation::stored_metadata(&item.metadata, &self.limits, &mut errors);
            if let (Some(content), true) = (content, sizes_ok) {
                batch.push((content, item.metadata, item.created_at));
            }
        }
        let Some(app_name) = app_name.filter(|_| errors.is_empty()) else {
            return Err(DomainError::Validation(errors));
        };
        let (me, tx, app) = self.writable_app(p, &app_name).await?;
        let rows = batch
            .into_iter()
            .map(|(content, metadata, at)| {
                let new = NewMemory { user_id: me, app_id: app.id, content, metadata, categories: Vec::new() };
                let times = memories::ImportedTimes {
                    state: MemoryState::Active,
                    created_at: at,
                    updated_at: at,
                    archived_at: None,
                    deleted_at: None,
                };
                (new, times)
            })
            .collect();
        let ids = memories::create_many(&tx, rows).await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// One visible memory (not deleted).
    pub async fn get(&self, p: &Principal, id: MemoryId) -> Result<MemoryView, DomainError> {
        let vis = self.visibility(p).await?;
        let me = vis.user_id;
        let tx = self.db.begin_tenant_read(&p.org_id).await?;
        let memory = Self::visible_one(&tx, vis, id).await?;
        let views = self.views(&tx, me, vec![memory]).await?;
        let app = self.reading_app(&tx, p, me).await?;
        tx.commit().await?;
        self.log_reads(p, me, app, &views, "get");
        views.into_iter().next().ok_or(DomainError::NotFound("memory"))
    }

    /// The memory if `vis` may see it and it is not deleted.
    async fn visible_one(tx: &TenantTx, vis: Visibility, id: MemoryId) -> Result<Memory, DomainError> {
        let filter = MemoryFilter {
            ids: vec![id],
            visible_to: Some(vis),
            states: vec![MemoryState::Active, MemoryState::Paused, MemoryState::Archived],
            ..Default::default()
        };
        memories::first(tx, &filter).await?.ok_or(DomainError::NotFound("memory"))
    }

    /// A page of visible memories matching `filter` (its visibility is
    /// replaced by the caller's).
    pub async fn list(
        &self,
        p: &Principal,
        mut filter: MemoryFilter,
        page: PageRequest,
    ) -> Result<Page<MemoryView>, DomainError> {
        let vis = self.visibility(p).await?;
        let me = vis.user_id;
        filter.visible_to = Some(vis);
        filter.states.retain(|s| *s != MemoryState::Deleted);
        if filter.states.is_empty() {
            filter.states = vec![MemoryState::Active, MemoryState::Paused];
        }
        let tx = self.db.begin_tenant_read(&p.org_id).await?;
        let result = memories::list(&tx, &filter, page).await?;
        let next_cursor = match result.items.last() {
            Some(last) if result.page < result.pages && result.items.len() as u64 == result.size => {
                Some(crate::cursor::next(&filter, result.size, result.page, last))
            }
            _ => None,
        };
        let items = self.views(&tx, me, result.items).await?;
        let app = self.reading_app(&tx, p, me).await?;
        tx.commit().await?;
        self.log_reads(p, me, app, &items, "list");
        Ok(Page { items, total: result.total, page: result.page, size: result.size, pages: result.pages, next_cursor })
    }

    /// The caller's visible active memories matching `filter`, newest
    /// first, without logging reads (for what the server derives from them,
    /// such as profile facts).
    pub async fn list_quiet(
        &self,
        p: &Principal,
        mut filter: MemoryFilter,
        page: PageRequest,
    ) -> Result<Vec<Memory>, DomainError> {
        filter.visible_to = Some(self.visibility(p).await?);
        filter.states = vec![MemoryState::Active];
        let tx = self.db.begin_tenant_read(&p.org_id).await?;
        let result = memories::list(&tx, &filter, page).await?;
        tx.commit().await?;
        Ok(result.items)
    }

    /// A scoped retrieval: the caller's visible active memories with each
    /// content once, in its highest-precedence copy (see
    /// `loci_stores::repo::memories::scoped_page`), with the counts before and
    /// after deduplication and the copies left out by scope.
    pub async fn scoped_list(
        &self,
        p: &Principal,
        mut filter: MemoryFilter,
        page: PageRequest,
    ) -> Result<ScopedListView, DomainError> {
        let vis = self.visibility(p).await?;
        let me = vis.user_id;
        filter.visible_to = Some(vis);
        filter.states = vec![MemoryState::Active];
        let tx = self.db.begin_tenant_read(&p.org_id).await?;
        let result = memories::scoped_page(&tx, &filter, page).await?;
        let items = self.views(&tx, me, result.items).await?;
        let app = self.reading_app(&tx, p, me).await?;
        tx.commit().await?;
        self.log_reads(p, me, app, &items, "list");
        let pages = result.total_after_dedup.div_ceil(page.size.max(1));
        Ok(ScopedListView {
            items,
            page: page.page,
            size: page.size,
            pages,
            total_before_dedup: result.total_before_dedup,
            total_after_dedup: result.total_after_dedup,
            dedup_by_scope: result.dedup_by_scope,
        })
    }

    /// The first `limit` visible active memories among `ids`, in the order of
    /// `ids` (ids an index returned: the relational store has the last word
    /// on visibility and state, so a stale index entry is dropped here),
    /// logged as reads of `kind`.
    pub async fn visible_in_order(
        &self,
        p: &Principal,
        ids: &[MemoryId],
        limit: usize,
        kind: &str,
    ) -> Result<Vec<MemoryView>, DomainError> {
        self.visible_in_order_at(p, ids, limit, kind, None).await
    }

    /// [`Self::visible_in_order`], or with `as_of` the memories among `ids`
    /// that were current then (archived since included).
    pub async fn visible_in_order_at(
        &self,
        p: &Principal,
        ids: &[MemoryId],
        limit: usize,
        kind: &str,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<Vec<MemoryView>, DomainError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (views, pending) = self.visible_in_order_unlogged(p, ids, limit, as_of).await?;
        self.log_pending_reads(p, pending, &views, kind);
        Ok(views)
    }

    /// [`MemoryService::visible_in_order_at`] without logging the reads:
    /// the caller logs those it returns ([`MemoryService::log_pending_reads`];
    /// a reranked search loads more than it returns, in another order).
    pub async fn visible_in_order_unlogged(
        &self,
        p: &Principal,
        ids: &[MemoryId],
        limit: usize,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<(Vec<MemoryView>, PendingReads), DomainError> {
        let vis = self.visibility(p).await?;
        let me = vis.user_id;
        if ids.is_empty() {
            return Ok((Vec::new(), PendingReads { me, app: None }));
        }
        let states = match as_of {
            None => vec![MemoryState::Active],
            Some(_) => vec![MemoryState::Active, MemoryState::Archived],
        };
        let filter = MemoryFilter { ids: ids.to_vec(), visible_to: Some(vis), states, as_of, ..Default::default() };
        let tx = self.db.begin_tenant_read(&p.org_id).await?;
        let page = memories::list(&tx, &filter, PageRequest { page: 1, size: ids.len() as u64 }).await?;
        let mut by_id: HashMap<MemoryId, Memory> = page.items.into_iter().map(|m| (m.id, m)).collect();
        let ordered: Vec<Memory> = ids.iter().filter_map(|id| by_id.remove(id)).take(limit).collect();
        let views = self.views(&tx, me, ordered).await?;
        let app = self.reading_app(&tx, p, me).await?;
        tx.commit().await?;
        Ok((views, PendingReads { me, app }))
    }

    /// The memories just before and after each of `ids` in its stream (see
    /// `memories::stream_neighbours`): ids only, so nothing of a memory the
    /// caller may not see is read here.
    pub async fn stream_neighbours(
        &self,
        p: &Principal,
        ids: &[MemoryId],
    ) -> Result<HashMap<MemoryId, (Option<MemoryId>, Option<MemoryId>)>, DomainError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let tx = self.db.begin_tenant_read(&p.org_id).await?;
        let rows = memories::stream_neighbours(&tx, ids).await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(|(id, before, after)| (id, (before, after))).collect())
    }

    /// Logs the reads of `views`, loaded by [`MemoryService::visible_in_order_unlogged`].
    pub fn log_pending_reads(&self, p: &Principal, pending: PendingReads, views: &[MemoryView], kind: &str) {
        self.log_reads(p, pending.me, pending.app, views, kind);
    }

    /// The owner's memory, for writes; `NotFound` otherwise.
    async fn owned(&self, tx: &TenantTx, me: UserId, id: MemoryId) -> Result<Memory, DomainError> {
        match memories::get(tx, id).await? {
            Some(m) if m.user_id == me => Ok(m),
            _ => Err(DomainError::NotFound("memory")),
        }
    }

    /// Updates content and/or metadata (tags merge, categories replace).
    pub async fn update(
        &self,
        p: &Principal,
        id: MemoryId,
        input: UpdateMemoryInput,
    ) -> Result<MemoryView, DomainError> {
        let mut errors = Vec::new();
        let text = input.text.as_deref().map(|t| validation::content("text", t, &self.limits, &mut errors));
        let metadata = input.metadata.as_ref().map(|m| validation::metadata(m, &p.org_id, &self.limits, &mut errors));
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors));
        }
        if text.is_none() && metadata.is_none() {
            return Err(DomainError::Validation(vec![FieldViolation::new(
                "body",
                "nothing to update: give text and/or metadata",
            )]));
        }
        let me = self.provisioner.user(&self.db, p).await?;
        let tx = self.db.begin_tenant(&p.org_id).await?;
        let current = self.owned(&tx, me, id).await?;
        let given = input.metadata.as_ref();
        let scope_only = given.and_then(|g| g.scope.as_deref().filter(|_| g.access_entity.is_none()));
        if let (Some(scope), Some(stored)) = (scope_only, current.metadata.access_entity.as_ref())
            && scope != stored.implied_scope().as_str()
        {
            tx.rollback().await?;
            return Err(DomainError::Validation(vec![FieldViolation::new(
                "metadata.scope",
                format!("`{scope}` does not agree with the stored access_entity `{stored}`"),
            )]));
        }
        let app = apps::get(&tx, current.app_id).await?.ok_or(DomainError::NotFound("app"))?;
        if !app.is_active {
            tx.rollback().await?;
            return Err(DomainError::AppPaused);
        }
        let mut change = MemoryUpdate { content: text.flatten(), ..Default::default() };
        if let Some(Some(valid)) = metadata {
            let given = input.metadata.as_ref();
            let set = |present: bool| present;
            let md = valid.metadata;
            if let Some(g) = given {
                if set(g.category.is_some()) {
                    change.category = Some(md.category);
                }
                if g.scope.is_some() || g.access_entity.is_some() {
                    change.scope = Some(md.scope);
                }
                if g.artifact_type.is_some() {
                    change.artifact_type = Some(md.artifact_type);
                }
                if g.artifact_ref.is_some() {
                    change.artifact_ref = Some(md.artifact_ref);
                }
                if g.entity.is_some() {
                    change.entity = Some(md.entity);
                }
                if g.source.is_some() {
                    change.source = Some(md.source);
                }
                if g.access_entity.is_some() {
                    change.access_entity = Some(md.access_entity);
                }
                if !g.evidence.is_empty() {
                    change.evidence = Some(md.evidence);
                }
                change.tags_merge = md.tags;
                if !g.extra.is_empty() {
                    let mut extra = current.metadata.extra.clone();
                    extra.extend(md.extra);
                    change.extra = Some(extra);
                }
                if !g.categories.is_empty() {
                    change.categories = Some(valid.categories);
                }
            }
        }
        let updated = memories::update(&tx, id, change).await?.ok_or(DomainError::NotFound("memory"))?;
        tx.commit().await?;
        Ok(MemoryView { memory: updated, app_name: app.name, owned: true })
    }

    /// Soft-deletes the caller's memories among `ids`; others are skipped.
    pub async fn delete(&self, p: &Principal, ids: &[MemoryId]) -> Result<BulkOutcome, DomainError> {
        let me = self.provisioner.user(&self.db, p).await?;
        let tx = self.db.begin_tenant(&p.org_id).await?;
        let mut outcome = BulkOutcome { changed: Vec::new(), skipped: Vec::new() };
        for id in ids {
            match memories::get(&tx, *id).await? {
                Some(m) if m.user_id == me => {
                    memories::delete(&tx, *id, Some(me)).await?;
                    outcome.changed.push(*id);
                }
                _ => outcome.skipped.push(*id),
            }
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// Soft-deletes every memory the caller owns (up to 10,000 per call;
    /// `remaining` says whether to call again).
    pub async fn delete_all(&self, p: &Principal) -> Result<DeleteAll, DomainError> {
        let me = self.provisioner.user(&self.db, p).await?;
        let tx = self.db.begin_tenant(&p.org_id).await?;
        let filter = MemoryFilter {
            user_id: Some(me),
            states: vec![MemoryState::Active, MemoryState::Paused, MemoryState::Archived],
            ..Default::default()
        };
        let page = memories::list(&tx, &filter, PageRequest { page: 1, size: BULK_CAP }).await?;
        let mut deleted = Vec::with_capacity(page.items.len());
        for m in &page.items {
            if memories::delete(&tx, m.id, Some(me)).await? {
                deleted.push(m.id);
            }
        }
        tx.commit().await?;
        let remaining = page.total.saturating_sub(deleted.len() as u64);
        Ok(DeleteAll { deleted, remaining })
    }

    /// Pauses, resumes or archives the caller's selected memories. With
    /// explicit ids the change is all-or-nothing (an illegal transition is a
    /// conflict); with an app or categories, memories already in a state the
    /// action cannot leave are skipped.
    pub async fn change_state(
        &self,
        p: &Principal,
        selection: Selection,
        action: StateAction,
    ) -> Result<BulkOutcome, DomainError> {
        if selection.memory_ids.is_empty() && selection.app_id.is_none() && selection.category_ids.is_empty() {
            return Err(DomainError::Validation(vec![FieldViolation::new(
                "body",
                "select memories with memory_ids, app_id or category_ids",
            )]));
        }
        let me = self.provisioner.user(&self.db, p).await?;
        let target = action.target();
        let tx = self.db.begin_tenant(&p.org_id).await?;
        let explicit = !selection.memory_ids.is_empty();
        let filter = MemoryFilter {
            user_id: Some(me),
            ids: selection.memory_ids.clone(),
            app_id: selection.app_id,
            category_ids: selection.category_ids.clone(),
            states: vec![MemoryState::Active, MemoryState::Paused, MemoryState::Archived],
            ..Default::default()
        };
        let ids = memories::ids_matching(&tx, &filter, BULK_CAP).await?;
        let mut outcome = BulkOutcome { changed: Vec::new(), skipped: Vec::new() };
        for id in &ids {
            let Some(m) = memories::get(&tx, *id).await? else { continue };
            if m.state == target {
                outcome.skipped.push(*id);
                continue;
            }
            if !m.state.can_transition_to(target) {
                if explicit {
                    tx.rollback().await?;
                    return Err(DomainError::InvalidTransition { from: m.state, to: target });
                }
                outcome.skipped.push(*id);
                continue;
            }
            memories::set_state(&tx, *id, target, Some(me)).await?;
            outcome.changed.push(*id);
        }
        tx.commit().await?;
        if explicit {
            outcome.skipped.extend(selection.memory_ids.iter().filter(|id| !ids.contains(id)));
        }
        Ok(outcome)
    }

    /// State history of a visible memory.
    pub async fn history(&self, p: &Principal, id: MemoryId) -> Result<Vec<StatusChange>, DomainError> {
        self.get_quiet(p, id).await?;
        let tx = self.db.begin_tenant_read(&p.org_id).await?;
        let rows = memories::history(&tx, id).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Visibility check without an access-log entry.
    pub(crate) async fn get_quiet(&self, p: &Principal, id: MemoryId) -> Result<Memory, DomainError> {
        let vis = self.visibility(p).await?;
        let tx = self.db.begin_tenant_read(&p.org_id).await?;
        let memory = Self::visible_one(&tx, vis, id).await;
        tx.commit().await?;
        memory
    }

    /// The access log of the caller's own memory.
    pub async fn access_log_of(
        &self,
        p: &Principal,
        id: MemoryId,
        page: PageRequest,
    ) -> Result<Page<AccessLogEntry>, DomainError> {
        let me = self.provisioner.user(&self.db, p).await?;
        let tx = self.db.begin_tenant_read(&p.org_id).await?;
        self.owned(&tx, me, id).await?;
        let log = access_logs::for_memory(&tx, id, page).await?;
        tx.commit().await?;
        Ok(log)
    }

    /// Categories in use by the caller's visible memories.
    pub async fn categories(&self, p: &Principal) -> Result<Vec<CategoryRecord>, DomainError> {
        let vis = self.visibility(p).await?;
        let tx = self.db.begin_tenant_read(&p.org_id).await?;
        let filter = MemoryFilter { visible_to: Some(vis), ..Default::default() };
        let rows = loci_stores::repo::memories::categories_in_use(&tx, &filter).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Visible memories sharing a category or the entity with `id`, newest first.
    pub async fn related(&self, p: &Principal, id: MemoryId, limit: u64) -> Result<Vec<MemoryView>, DomainError> {
        let base = self.get_quiet(p, id).await?;
        let vis = self.visibility(p).await?;
        let me = vis.user_id;
        let tx = self.db.begin_tenant_read(&p.org_id).await?;
        let mut found: Vec<Memory> = Vec::new();
        let mut searches = Vec::new();
        if !base.categories.is_empty() {
            searches.push(MemoryFilter { category_names: base.categories.clone(), ..Default::default() });
        }
        if let Some(entity) = &base.metadata.entity {
            searches.push(MemoryFilter { entities: vec![entity.clone()], ..Default::default() });
        }
        for mut filter in searches {
            filter.visible_to = Some(vis.clone());
            let page = memories::list(&tx, &filter, PageRequest { page: 1, size: limit + 1 }).await?;
            for m in page.items {
                if m.id != id && !found.iter().any(|f| f.id == m.id) {
                    found.push(m);
                }
            }
        }
        found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let views = self.views(&tx, me, found).await?;
        tx.commit().await?;
        Ok(views)
    }

    /// Counts for `/stats`: the caller's own memories.
    pub async fn stats(&self, p: &Principal) -> Result<loci_core::model::MemoryStats, DomainError> {
        let me = self.provisioner.user(&self.db, p).await?;
        let tx = self.db.begin_tenant_read(&p.org_id).await?;
        let filter = MemoryFilter {
            user_id: Some(me),
            states: vec![MemoryState::Active, MemoryState::Paused, MemoryState::Archived],
            ..Default::default()
        };
        let stats = memories::stats(&tx, &filter).await?;
        tx.commit().await?;
        Ok(stats)
    }
}

/// Parses an RFC 3339 timestamp for a filter field.
pub fn parse_time(field: &str, raw: &str, out: &mut Vec<FieldViolation>) -> Option<DateTime<Utc>> {
    match DateTime::parse_from_rfc3339(raw) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(_) => {
            out.push(FieldViolation::new(field, "must be an RFC 3339 timestamp, e.g. 2026-01-31T12:00:00Z"));
            None
        }
    }
}
