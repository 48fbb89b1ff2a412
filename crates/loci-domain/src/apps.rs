//! Apps: the clients a user writes through, with activity counts. Apps
//! belong to their owner; a paused app blocks writes through it.

use loci_core::model::{AppSummary, MemoryFilter, Page, PageRequest};
use loci_core::{AppId, MemoryId, MemoryState};
use loci_security::Principal;
use loci_stores::Database;
use loci_stores::repo::{access_logs, apps, memories};
use serde::Serialize;

use crate::memories::{MemoryService, MemoryView};
use crate::{DomainError, Provisioner};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AppSort {
    #[default]
    Name,
    Memories,
    MemoriesAccessed,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppQuery {
    /// Case-insensitive substring of the name.
    pub name: Option<String>,
    pub is_active: Option<bool>,
    pub sort: AppSort,
    pub descending: bool,
}

/// A memory with how often it was read through an app.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AccessedMemory {
    pub memory: MemoryView,
    pub access_count: u64,
}

#[derive(Debug, Clone)]
pub struct AppService {
    db: Database,
    provisioner: Provisioner,
    memories: MemoryService,
}

impl AppService {
    pub fn new(db: Database, provisioner: Provisioner, memories: MemoryService) -> Self {
        Self { db, provisioner, memories }
    }

    /// Every app of the caller with counts (a user has few apps, so sorting
    /// and paging happen here, on exact counts).
    pub async fn summaries(&self, p: &Principal) -> Result<Vec<AppSummary>, DomainError> {
        let me = self.provisioner.user(&self.db, p).await?;
        let tx = self.db.begin_tenant_read(&p.org_id).await?;
        let owned = apps::list_for_owner(&tx, me).await?;
        let ids: Vec<AppId> = owned.iter().map(|a| a.id).collect();
        let created = memories::count_by_app(
            &tx,
            &MemoryFilter {
                user_id: Some(me),
                states: vec![MemoryState::Active, MemoryState::Paused, MemoryState::Archived],
                ..Default::default()
            },
        )
        .await?;
        let activity = access_logs::app_activity(&tx, &ids).await?;
        tx.commit().await?;
        Ok(owned
            .into_iter()
            .map(|app| {
                let (accessed, first, last) = activity.get(&app.id).cloned().unwrap_or((0, None, None));
                AppSummary {
                    memories_created: created.get(&app.id).copied().unwrap_or(0),
                    memories_accessed: accessed,
                    first_accessed: first,
                    last_accessed: last,
                    app,
                }
            })
            .collect())
    }

    pub async fn list(
        &self,
        p: &Principal,
        query: &AppQuery,
        page: PageRequest,
    ) -> Result<Page<AppSummary>, DomainError> {
        let needle = query.name.as_deref().map(str::to_lowercase);
        let mut all: Vec<AppSummary> = self
            .summaries(p)
            .await?
            .into_iter()
            .filter(|s| needle.as_deref().is_none_or(|n| s.app.name.to_lowercase().contains(n)))
            .filter(|s| query.is_active.is_none_or(|a| s.app.is_active == a))
            .collect();
        all.sort_by(|a, b| {
            let order = match query.sort {
                AppSort::Name => a.app.name.cmp(&b.app.name),
                AppSort::Memories => a.memories_created.cmp(&b.memories_created),
                AppSort::MemoriesAccessed => a.memories_accessed.cmp(&b.memories_accessed),
            }
            .then(a.app.id.cmp(&b.app.id));
            if query.descending { order.reverse() } else { order }
        });
        Ok(Page::slice(all, page))
    }

    pub async fn get(&self, p: &Principal, id: AppId) -> Result<AppSummary, DomainError> {
        self.summaries(p).await?.into_iter().find(|s| s.app.id == id).ok_or(DomainError::NotFound("app"))
    }

    /// Pauses or resumes the caller's app.
    pub async fn set_active(&self, p: &Principal, id: AppId, active: bool) -> Result<AppSummary, DomainError> {
        let me = self.provisioner.user(&self.db, p).await?;
        let tx = self.db.begin_tenant(&p.org_id).await?;
        match apps::get(&tx, id).await? {
            Some(app) if app.owner_id == me => {
                apps::set_active(&tx, id, active).await?;
                tx.commit().await?;
            }
            _ => return Err(DomainError::NotFound("app")),
        }
        self.get(p, id).await
    }

    /// The caller's memories created through the app.
    pub async fn memories(&self, p: &Principal, id: AppId, page: PageRequest) -> Result<Page<MemoryView>, DomainError> {
        self.get(p, id).await?;
        let me = self.provisioner.user(&self.db, p).await?;
        let filter = MemoryFilter { app_id: Some(id), user_id: Some(me), ..Default::default() };
        self.memories.list(p, filter, page).await
    }

    /// Memories read through the app, most read first.
    pub async fn accessed(
        &self,
        p: &Principal,
        id: AppId,
        page: PageRequest,
    ) -> Result<Page<AccessedMemory>, DomainError> {
        self.get(p, id).await?;
        let tx = self.db.begin_tenant_read(&p.org_id).await?;
        let counts = access_logs::accessed_through(&tx, id, 10_000).await?;
        tx.commit().await?;
        let ids: Vec<MemoryId> = counts.iter().map(|(m, _)| *m).collect();
        let filter = MemoryFilter {
            ids: ids.clone(),
            states: vec![MemoryState::Active, MemoryState::Paused, MemoryState::Archived],
            ..Default::default()
        };
        let visible = if ids.is_empty() {
            Vec::new()
        } else {
            self.memories.list(p, filter, PageRequest { page: 1, size: ids.len() as u64 }).await?.items
        };
        let items: Vec<AccessedMemory> = counts
            .iter()
            .filter_map(|(mid, n)| {
                visible
                    .iter()
                    .find(|v| v.memory.id == *mid)
                    .map(|v| AccessedMemory { memory: v.clone(), access_count: *n })
            })
            .collect();
        Ok(Page::slice(items, page))
    }
}
