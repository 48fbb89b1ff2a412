//! Backup export and import of a user's memories: a zip with `memories.json`
//! (user, apps, categories, memories in every state with their history) and
//! `memories.jsonl.gz` (one memory per line, for streaming tools).
//!
//! Import gives every created memory a fresh id (the original may belong to
//! someone else, possibly in another tenant, which must not even be probed);
//! a memory whose id is already the caller's is skipped or overwritten by
//! mode. Imported memories are queued for re-indexing through the outbox.

use std::io::{Cursor, Read, Write};

use chrono::{DateTime, Utc};
use loci_core::model::{MemoryFilter, MemoryMetadata, MemoryUpdate, NewMemory, PageRequest, StatusChange};
use loci_core::{AppId, MemoryId, MemoryState, OrgId};
use loci_security::Principal;
use loci_stores::Database;
use loci_stores::repo::memories::ImportedTimes;
use loci_stores::repo::{apps, memories};
use serde::{Deserialize, Serialize};

use crate::validation::{self, Limits};
use crate::{DomainError, FieldViolation, Provisioner};

/// Format of `memories.json`; bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;
/// Largest decompressed `memories.json` accepted (zip-bomb guard).
const MAX_DOCUMENT_BYTES: u64 = 512 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExportMeta {
    #[serde(deserialize_with = "crate::inputs::whole_number::required")]
    pub version: u32,
    pub exported_at: DateTime<Utc>,
    pub org_id: OrgId,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BackupUser {
    pub subject: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BackupApp {
    pub id: AppId,
    pub name: String,
    pub is_active: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BackupMemory {
    pub id: MemoryId,
    pub app_name: String,
    pub content: String,
    pub metadata: MemoryMetadata,
    pub state: MemoryState,
    #[serde(default)]
    pub categories: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub history: Vec<StatusChange>,
}

/// `memories.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BackupDocument {
    pub export_meta: ExportMeta,
    pub user: BackupUser,
    pub apps: Vec<BackupApp>,
    pub categories: Vec<String>,
    pub memories: Vec<BackupMemory>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImportMode {
    #[default]
    Skip,
    Overwrite,
}

impl ImportMode {
    pub const ALL: &'static [ImportMode] = &[Self::Skip, Self::Overwrite];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::Overwrite => "overwrite",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|m| m.as_str() == name)
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// Memories created (each with a fresh id).
    pub imported: u64,
    /// Memories already present (mode skip) or not importable.
    pub skipped: u64,
    /// The caller's existing memories replaced (mode overwrite).
    pub overwritten: u64,
    /// Access entities naming another org, dropped (the memory became private).
    pub access_entities_dropped: u64,
    /// Per-memory problems, by index in the backup.
    pub errors: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct BackupService {
    db: Database,
    provisioner: Provisioner,
    limits: Limits,
}

fn invalid(message: impl Into<String>) -> DomainError {
    DomainError::Validation(vec![FieldViolation::new("file", message)])
}

impl BackupService {
    pub fn new(db: Database, provisioner: Provisioner, limits: Limits) -> Self {
        Self { db, provisioner, limits }
    }

    /// The caller's memories (every state), apps and categories as a zip.
    pub async fn export(&self, p: &Principal) -> Result<Vec<u8>, DomainError> {
        let me = self.provisioner.user(&self.db, p).await?;
        let tx = self.db.begin_tenant_read(&p.org_id).await?;
        let owned_apps = apps::list_for_owner(&tx, me).await?;
        let filter = MemoryFilter {
            user_id: Some(me),
            states: vec![MemoryState::Active, MemoryState::Paused, MemoryState::Archived, MemoryState::Deleted],
            direction: loci_core::model::SortDirection::Asc,
            ..Default::default()
        };
        let mut items = Vec::new();
        let mut page = 1;
        loop {
            let batch = memories::list(&tx, &filter, PageRequest { page, size: 500 }).await?;
            let done = batch.items.len() < 500;
            items.extend(batch.items);
            if done {
                break;
            }
            page += 1;
        }
        let mut out = Vec::with_capacity(items.len());
        let mut categories: Vec<String> = Vec::new();
        for m in items {
            let history = memories::history(&tx, m.id).await?;
            categories.extend(m.categories.iter().cloned());
            let app_name = owned_apps.iter().find(|a| a.id == m.app_id).map(|a| a.name.clone()).unwrap_or_default();
            out.push(BackupMemory {
                id: m.id,
                app_name,
                content: m.content,
                metadata: m.metadata,
                state: m.state,
                categories: m.categories,
                created_at: m.created_at,
                updated_at: m.updated_at,
                archived_at: m.archived_at,
                deleted_at: m.deleted_at,
                history,
            });
        }
        tx.commit().await?;
        categories.sort();
        categories.dedup();
        let doc = BackupDocument {
            export_meta: ExportMeta {
                version: FORMAT_VERSION,
                exported_at: Utc::now(),
                org_id: p.org_id.clone(),
                source: "loci".into(),
            },
            user: BackupUser { subject: p.subject.clone() },
            apps: owned_apps
                .iter()
                .map(|a| BackupApp { id: a.id, name: a.name.clone(), is_active: a.is_active })
                .collect(),
            categories,
            memories: out,
        };
        pack(&doc).map_err(|e| DomainError::Store(loci_stores::StoreError::Corrupt(format!("packing the backup: {e}"))))
    }

    /// Imports a zip made by [`BackupService::export`] into the caller's account.
    pub async fn import(&self, p: &Principal, archive: &[u8], mode: ImportMode) -> Result<ImportReport, DomainError> {
        self.import_document(p, read_archive(archive)?, mode).await
    }

    /// Imports a backup document (the zip's `memories.json`, sent as JSON).
    pub async fn import_document(
        &self,
        p: &Principal,
        doc: BackupDocument,
        mode: ImportMode,
    ) -> Result<ImportReport, DomainError> {
        if doc.export_meta.version > FORMAT_VERSION {
            return Err(invalid(format!(
                "backup format {} is newer than this server understands ({FORMAT_VERSION})",
                doc.export_meta.version
            )));
        }
        let me = self.provisioner.user(&self.db, p).await?;
        let tx = self.db.begin_tenant(&p.org_id).await?;
        let mut report = ImportReport::default();
        for (i, m) in doc.memories.into_iter().enumerate() {
            let mut errors = Vec::new();
            let content = validation::content("content", &m.content, &self.limits, &mut errors);
            let app_name = validation::app_name(
                "app_name",
                if m.app_name.is_empty() { "import" } else { &m.app_name },
                &mut errors,
            );
            let sizes_ok = validation::stored_metadata(&m.metadata, &self.limits, &mut errors);
            let (Some(content), Some(app_name), true) = (content, app_name, sizes_ok) else {
                report.skipped += 1;
                report.errors.push(format!(
                    "memories[{i}]: {}",
                    errors.iter().map(|e| e.message.clone()).collect::<Vec<_>>().join("; ")
                ));
                continue;
            };
            let mut metadata = m.metadata;
            if metadata.access_entity.as_ref().and_then(|e| e.org()).is_some_and(|o| o != p.org_id.as_str()) {
                metadata.access_entity = None;
                metadata.scope = None;
                report.access_entities_dropped += 1;
            }
            match memories::get_any_state(&tx, m.id).await? {
                Some(existing) if existing.user_id == me => {
                    if mode == ImportMode::Skip {
                        report.skipped += 1;
                        continue;
                    }
                    let change = MemoryUpdate::replacing(content, metadata, m.categories);
                    if existing.state != MemoryState::Deleted {
                        memories::update(&tx, m.id, change).await?;
                        if existing.state != m.state && existing.state.can_transition_to(m.state) {
                            memories::set_state(&tx, m.id, m.state, Some(me)).await?;
                        }
                        report.overwritten += 1;
                    } else {
                        report.skipped += 1;
                    }
                }
                _ => {
                    let app = apps::ensure(&tx, me, &app_name).await?;
                    memories::import(
                        &tx,
                        NewMemory { user_id: me, app_id: app.id, content, metadata, categories: m.categories },
                        ImportedTimes {
                            state: m.state,
                            created_at: m.created_at,
                            updated_at: m.updated_at,
                            archived_at: m.archived_at,
                            deleted_at: m.deleted_at,
                        },
                    )
                    .await?;
                    report.imported += 1;
                }
            }
        }
        tx.commit().await?;
        Ok(report)
    }
}

fn pack(doc: &BackupDocument) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let deflated = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("memories.json", deflated)?;
    zip.write_all(&serde_json::to_vec_pretty(doc)?)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for m in &doc.memories {
        serde_json::to_writer(&mut gz, m)?;
        gz.write_all(b"\n")?;
    }
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("memories.jsonl.gz", stored)?;
    zip.write_all(&gz.finish()?)?;
    Ok(zip.finish()?.into_inner())
}

/// Reads an uploaded archive (untrusted bytes): a zip holding `memories.json`,
/// bounded in size. Public for the fuzz target.
pub fn read_archive(archive: &[u8]) -> Result<BackupDocument, DomainError> {
    let mut zip = zip::ZipArchive::new(Cursor::new(archive)).map_err(|_| invalid("not a zip archive"))?;
    let file = zip.by_name("memories.json").map_err(|_| invalid("the archive has no memories.json"))?;
    let mut json = Vec::new();
    file.take(MAX_DOCUMENT_BYTES + 1).read_to_end(&mut json).map_err(|_| invalid("memories.json cannot be read"))?;
    if json.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(invalid("memories.json is too large"));
    }
    serde_json::from_slice(&json).map_err(|e| invalid(format!("memories.json is not a Loci backup: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_and_unpack_round_trip() {
        let doc = BackupDocument {
            export_meta: ExportMeta {
                version: FORMAT_VERSION,
                exported_at: Utc::now(),
                org_id: OrgId::parse("acme").unwrap(),
                source: "loci".into(),
            },
            user: BackupUser { subject: "alice".into() },
            apps: vec![],
            categories: vec!["ops".into()],
            memories: vec![],
        };
        let bytes = pack(&doc).unwrap();
        assert_eq!(read_archive(&bytes).unwrap(), doc);
        assert!(read_archive(b"not a zip").is_err());
    }
}
