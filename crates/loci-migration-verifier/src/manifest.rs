//! The manifest of a backup archive (`manifest.json`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::TableSummary;

/// The archive format this build writes and reads.
pub const FORMAT: &str = "loci-backup/1";

/// What a backup holds and how to check it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// Version of the `loci` that wrote it.
    pub loci_version: String,
    /// The engine it was taken from: `sqlite` or `postgres`.
    pub source_engine: String,
    /// The last applied schema migration of the source.
    pub schema_revision: Option<String>,
    /// How the rows were read consistently.
    pub snapshot: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Every store of the deployment and what the archive does about it.
    pub stores: Vec<StoreEntry>,
    /// The tables in the archive, parents before children (restore order).
    pub tables: Vec<TableEntry>,
}

/// One store of the deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreEntry {
    /// `relational`, `vector`, `lexical`, `graph`, `valkey`, ...
    pub name: String,
    /// The backend in use (`sqlite`, `qdrant`, `embedded`, ...).
    pub backend: String,
    pub status: StoreStatus,
    /// Why, in a sentence.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreStatus {
    /// Its data is in the archive.
    Included,
    /// Rebuilt from the relational store on restore.
    Rebuilt,
    /// Not in the archive; `detail` says why that loses nothing durable.
    Skipped,
}

/// One table of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    pub name: String,
    /// The archive member holding its rows, one canonical JSON line each.
    pub file: String,
    pub rows: u64,
    /// SHA-256 of the member's bytes, which are the canonical lines in
    /// primary-key order: the table checksum.
    pub sha256: String,
}

impl TableEntry {
    pub fn summary(&self) -> TableSummary {
        TableSummary { name: self.name.clone(), rows: self.rows, sha256: self.sha256.clone() }
    }
}

impl Manifest {
    /// The per-table summaries, in archive order.
    pub fn summaries(&self) -> Vec<TableSummary> {
        self.tables.iter().map(TableEntry::summary).collect()
    }

    /// Total rows over every table.
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}
