//! Disaster recovery: whole-system backups, restores, their verification,
//! and the move of a deployment's data from one engine to another.
//!
//! The relational store is the source of truth: a backup is a logical,
//! engine-independent export of its tables ([`loci_stores::dump`]) in one
//! archive ([`loci_migration_verifier`]); the vector, lexical and (on
//! engines) graph indexes are rebuilt from it. So a SQLite backup restores
//! into PostgreSQL and back, and `migrate_data` is the same copy done table
//! by table with a checkpoint.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use loci_core::OrgId;
use loci_domain::indexer::{self, GRAPH, Indexer, IndexingOptions, LEXICAL, VECTOR};
use loci_migration_verifier::{
    ArchiveReader, ArchiveWriter, BatchPlan, Checkpoint, Manifest, StoreEntry, StoreStatus, TableDigest, TableSummary,
    VerificationResult, compare, validator,
};
use loci_settings::{DatabaseKind, GraphBackend, LexicalBackend, Secret, Settings, VectorBackend};
use loci_stores::dump::{BACKUP_TABLES, KEY_TABLES, ScratchDatabase, Snapshot};
use loci_stores::{Database, PoolConfig};

use crate::AppError;
pub use crate::shredding::{KeyRing, master_key};
use crate::shredding::{Sealer, Unsealer};

/// Progress of a long command: one stage per table. The CLI draws bars;
/// tests and non-terminals use [`Quiet`].
pub trait Progress: Send + Sync {
    /// A stage of `total` units begins.
    fn begin(&self, label: &str, total: u64);
    fn advance(&self, n: u64);
    /// Moves the stage to `done` of `total` (for work whose size is known
    /// only once it started).
    fn set(&self, done: u64, total: u64);
    /// The stage ended.
    fn end(&self);
}

/// No progress output.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn begin(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn set(&self, _: u64, _: u64) {}
    fn end(&self) {}
}

/// Why a recovery command failed.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Store(#[from] loci_stores::StoreError),
    #[error(transparent)]
    Archive(#[from] loci_migration_verifier::VerifierError),
    #[error(transparent)]
    Domain(#[from] loci_domain::DomainError),
    #[error(transparent)]
    App(#[from] AppError),
    /// The target holds data and `--force` was not given.
    #[error("the target database is not empty ({0}); pass --force to replace its contents (indexes are rebuilt too)")]
    NotEmpty(String),
    /// What was loaded differs from what the archive or the source holds.
    #[error("verification failed: {0}")]
    Mismatch(String),
    #[error("{0}")]
    Refused(String),
}

impl RecoveryError {
    /// The target's tables that hold rows, listed.
    fn not_empty(present: &[(String, u64)]) -> Self {
        let listed: Vec<String> = present.iter().map(|(t, n)| format!("{t}: {n} rows")).collect();
        Self::NotEmpty(listed.join(", "))
    }
}

/// Rows per insert batch while loading.
const LOAD_BATCH: usize = 1000;

/// Every store of this deployment and what a backup does about it.
pub fn store_entries(settings: &Settings, kind: DatabaseKind) -> Vec<StoreEntry> {
    let engine = |k: DatabaseKind| match k {
        DatabaseKind::Postgres => "postgres",
        DatabaseKind::Sqlite => "sqlite",
    };
    let entry = |name: &str, backend: &str, status, detail: &str| StoreEntry {
        name: name.into(),
        backend: backend.into(),
        status,
        detail: detail.into(),
    };
    let vector = match settings.vector.backend {
        VectorBackend::Embedded => "embedded",
        VectorBackend::Qdrant => "qdrant",
    };
    let lexical = match settings.lexical.backend {
        LexicalBackend::Embedded => "embedded",
        LexicalBackend::Opensearch => "opensearch",
    };
    let mut stores = vec![
        entry(
            "relational",
            engine(kind),
            StoreStatus::Included,
            "every table in primary-key order, except derived ones (memory_counts: rebuilt by triggers; outbox: \
             requeued on restore); each user's personal columns sealed with the user's data key, which only the \
             live database holds (user_keys): an erased user's rows cannot be restored from any archive",
        ),
        entry("vector", vector, StoreStatus::Rebuilt, "re-embedded from the memories on restore"),
        entry("lexical", lexical, StoreStatus::Rebuilt, "re-indexed from the memories on restore"),
    ];
    stores.push(match settings.graph.backend {
        GraphBackend::Embedded => entry(
            "graph",
            "embedded",
            StoreStatus::Included,
            "the embedded graph lives in relational tables (graph_*), restored as rows with its merges",
        ),
        GraphBackend::Neo4j => entry(
            "graph",
            "neo4j",
            StoreStatus::Rebuilt,
            "re-extracted from the memories on restore; entity merges made on Neo4j are not in the archive",
        ),
    });
    stores.push(entry(
        "valkey",
        if settings.valkey.url.is_some() { "valkey" } else { "in-process" },
        StoreStatus::Skipped,
        "holds only transient state: episodic session memory (expires within its TTL, 24 h by default), MCP \
         sessions, the DPoP replay cache",
    ));
    stores
}

/// Writes a backup of `db` to `output` (a new file).
pub async fn backup(
    settings: &Settings,
    db: &Database,
    output: &Path,
    progress: &dyn Progress,
) -> Result<Manifest, RecoveryError> {
    let started_at = chrono::Utc::now();
    let schema_revision = db.schema_revision().await?;
    let mut ring = KeyRing::load(master_key(settings)?, db).await?;
    let mut sealer = Sealer::default();
    let snapshot = db.snapshot().await?;
    let mut archive = ArchiveWriter::create(output)?;
    for table in BACKUP_TABLES {
        let total = snapshot.count(table).await?;
        progress.begin(table, total);
        let mut member = archive.table(table)?;
        let mut rows = snapshot.rows(table, 0).await?;
        while let Some(row) = rows.next().await {
            member.push(&sealer.seal(&mut ring, true, table, row?).await?)?;
            progress.advance(1);
        }
        drop(rows);
        member.finish();
        progress.end();
    }
    let how = snapshot.describe().to_owned();
    snapshot.close().await?;
    let manifest = Manifest {
        format: String::new(),
        loci_version: env!("CARGO_PKG_VERSION").to_owned(),
        source_engine: engine_name(db.kind()).to_owned(),
        schema_revision,
        snapshot: how,
        started_at,
        finished_at: chrono::Utc::now(),
        stores: store_entries(settings, db.kind()),
        tables: Vec::new(),
    };
    Ok(archive.finish(manifest)?)
}

fn engine_name(kind: DatabaseKind) -> &'static str {
    match kind {
        DatabaseKind::Postgres => "postgres",
        DatabaseKind::Sqlite => "sqlite",
    }
}

/// How a restore brings the indexes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebuild {
    /// Empty and rebuild them now (the server is stopped: in the embedded
    /// profile it holds the index files).
    Now,
    /// Only queue every memory in the outbox; a running server's indexer
    /// rebuilds them.
    Queue,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    pub tables: usize,
    pub rows: u64,
    /// Rows deleted first (with `force`).
    pub replaced: u64,
    /// Memories queued for indexing.
    pub queued: u64,
    /// Rows left out per table: their user's data key is gone (the user was
    /// erased after the backup), or they belong to such rows.
    pub shredded: std::collections::BTreeMap<String, u64>,
}

/// Restores `archive` into `db`: migrates it, refuses one that holds data
/// unless `force` (then replaces its contents), loads every table in one
/// transaction (a savepoint per table; each checked against the manifest's
/// count and checksum before anything commits), then rebuilds the indexes.
pub async fn restore(
    settings: &Settings,
    db: &Database,
    archive: &Path,
    force: bool,
    rebuild: Rebuild,
    progress: &dyn Progress,
) -> Result<RestoreReport, RecoveryError> {
    restore_with_keys(settings, db, archive, force, rebuild, None, progress).await
}

/// [`restore`], opening sealed rows with the data keys of `keys_from` (the
/// live database, when restoring elsewhere) instead of the target's own.
#[allow(clippy::too_many_arguments)]
pub async fn restore_with_keys(
    settings: &Settings,
    db: &Database,
    archive: &Path,
    force: bool,
    rebuild: Rebuild,
    keys_from: Option<&Database>,
    progress: &dyn Progress,
) -> Result<RestoreReport, RecoveryError> {
    db.migrate_up().await?;
    let ring = KeyRing::load(master_key(settings)?, keys_from.unwrap_or(db)).await?;
    restore_inner(settings, db, archive, force, rebuild, &ring, progress).await
}

async fn restore_inner(
    settings: &Settings,
    db: &Database,
    archive: &Path,
    force: bool,
    rebuild: Rebuild,
    ring: &KeyRing,
    progress: &dyn Progress,
) -> Result<RestoreReport, RecoveryError> {
    let reader = ArchiveReader::open(archive)?;
    db.migrate_up().await?;
    let ours = db.schema_revision().await?;
    if let (Some(theirs), Some(ours)) = (&reader.manifest().schema_revision, &ours)
        && theirs > ours
    {
        return Err(RecoveryError::Refused(format!(
            "the archive was taken at schema revision {theirs}, newer than this build's {ours}; restore it with a \
             newer loci"
        )));
    }
    let present = db.non_empty_tables().await?;
    let previous_orgs = if present.is_empty() {
        Vec::new()
    } else if force {
        db.all_orgs().await?
    } else {
        return Err(RecoveryError::not_empty(&present));
    };
    let tables: Vec<_> = reader.manifest().tables.clone();
    if let Some(unknown) = tables.iter().find(|t| !BACKUP_TABLES.contains(&t.name.as_str())) {
        return Err(RecoveryError::Refused(format!("the archive holds an unknown table `{}`", unknown.name)));
    }
    let loader = db.loader().await?;
    let replaced = if force { loader.clear().await? } else { 0 };
    let mut feed = read_members(reader, tables.iter().map(|t| t.name.clone()).collect());
    let mut rows = 0;
    let mut unsealer = Unsealer::default();
    for entry in &tables {
        progress.begin(&entry.name, entry.rows);
        let clock = std::time::Instant::now();
        let mut table = loader.table(&entry.name).await?;
        let mut problem = None;
        let found = loop {
            match feed.recv().await {
                Some(Feed::Rows(batch)) if problem.is_none() => {
                    let n = batch.len() as u64;
                    let opened: Result<Vec<_>, _> =
                        batch.into_iter().filter_map(|row| unsealer.open(ring, &entry.name, row).transpose()).collect();
                    if ring.is_empty() && unsealer.total() > 0 {
                        problem = Some(
                            "the archive's rows are sealed and no data key is available: restore into the live \
                             database, or name the database that holds the keys (--keys-from)"
                                .to_owned(),
                        );
                        continue;
                    }
                    match opened {
                        Ok(opened) => match table.insert(opened).await {
                            Ok(_) => progress.advance(n),
                            Err(e) => problem = Some(format!("{}: {e}", entry.name)),
                        },
                        Err(e) => problem = Some(format!("{}: {e}", entry.name)),
                    }
                }
                Some(Feed::Rows(_)) => {}
                Some(Feed::End(found)) => break Some(found),
                None => break None,
            }
        };
        progress.end();
        let problem = problem.or(match found {
            Some(Ok(found)) if found.rows == entry.rows && found.sha256 == entry.sha256 => None,
            Some(Ok(found)) => Some(format!(
                "{}: the archive's member holds {} rows with checksum {}, the manifest says {} rows with {}",
                entry.name, found.rows, found.sha256, entry.rows, entry.sha256
            )),
            Some(Err(e)) => Some(format!("{}: {e}", entry.name)),
            None => Some(format!("{}: the archive reader stopped", entry.name)),
        });
        if let Some(problem) = problem {
            table.rollback().await?;
            loader.rollback().await?;
            return Err(RecoveryError::Mismatch(format!("{problem}; nothing was restored")));
        }
        let loaded = table.release().await?;
        tracing::info!(table = %entry.name, rows = loaded, secs = clock.elapsed().as_secs_f64(), "table restored");
        rows += loaded;
    }
    if unsealer.total() > 0 {
        for (table, pruned) in loader.prune_unmentioned_entities().await? {
            if pruned > 0 {
                *unsealer.shredded.entry(table.to_owned()).or_default() += pruned;
            }
        }
    }
    loader.commit().await?;
    let mut orgs = db.all_orgs().await?;
    for org in previous_orgs {
        if !orgs.contains(&org) {
            orgs.push(org);
        }
    }
    let queued = rebuild_indexes(settings, db, &orgs, rebuild, progress).await?;
    if unsealer.total() > 0 {
        tracing::warn!(rows = unsealer.total(), "rows of erased users left out (their data keys are gone)");
    }
    Ok(RestoreReport { tables: tables.len(), rows, replaced, queued, shredded: unsealer.shredded })
}

/// What the archive reader sends to the loader: batches of a table's rows,
/// then what the member held.
enum Feed {
    Rows(Vec<serde_json::Value>),
    End(Result<TableSummary, loci_migration_verifier::VerifierError>),
}

/// Reads the members of `tables` in order on a blocking thread (zip reading
/// is synchronous), a bounded queue ahead of the loader.
fn read_members(mut reader: ArchiveReader, tables: Vec<String>) -> tokio::sync::mpsc::Receiver<Feed> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Feed>(4);
    tokio::task::spawn_blocking(move || {
        for table in tables {
            let mut batch = Vec::with_capacity(LOAD_BATCH);
            let found = reader.read_table(&table, |row| {
                batch.push(row);
                if batch.len() >= LOAD_BATCH {
                    tx.blocking_send(Feed::Rows(std::mem::take(&mut batch)))
                        .map_err(|_| "the loader stopped".to_owned())?;
                }
                Ok(())
            });
            if found.is_ok() && !batch.is_empty() && tx.blocking_send(Feed::Rows(batch)).is_err() {
                return;
            }
            if tx.blocking_send(Feed::End(found)).is_err() {
                return;
            }
        }
    });
    rx
}

/// Rebuilds (or queues) the indexes of `orgs` from `db`. The embedded graph
/// came back as rows, so only an engine graph is rebuilt.
async fn rebuild_indexes(
    settings: &Settings,
    db: &Database,
    orgs: &[OrgId],
    rebuild: Rebuild,
    progress: &dyn Progress,
) -> Result<u64, RecoveryError> {
    let mut only = vec![VECTOR.to_owned(), LEXICAL.to_owned()];
    if settings.graph.backend != GraphBackend::Embedded {
        only.push(GRAPH.to_owned());
    }
    match rebuild {
        Rebuild::Queue => Ok(indexer::requeue(db, orgs, Some(&only)).await?),
        Rebuild::Now => {
            let indexes = crate::indexes::open(settings, db)?;
            let options = IndexingOptions::from_settings(&settings.search);
            let indexer = Indexer::new(db.clone(), indexes, options, settings.search.indexer_batch);
            progress.begin("re-index", 0);
            let done =
                indexer.reindex_with(Some(orgs.to_vec()), Some(only), &|done, total| progress.set(done, total)).await;
            progress.end();
            Ok(done?)
        }
    }
}

/// The outcome of [`verify`].
#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub archive: PathBuf,
    pub manifest: Option<Manifest>,
    /// Problems of the archive itself (damaged members, counts or checksums
    /// that differ from the manifest).
    pub archive_problems: Vec<String>,
    /// Where it was restored for the check.
    pub scratch: String,
    /// The restored database compared with the manifest.
    pub result: Option<VerificationResult>,
    /// Rows of erased users the restore left out, per table (those tables
    /// are checked by count: manifest = restored + left out).
    pub shredded: std::collections::BTreeMap<String, u64>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.archive_problems.is_empty() && self.result.as_ref().is_some_and(|r| r.success)
    }
}

/// Where `verify` restores: a temporary SQLite file, or a temporary
/// database on the PostgreSQL server of the URL (its role needs CREATEDB).
#[derive(Debug, Clone)]
pub enum Scratch {
    Sqlite,
    Postgres(Secret),
}

/// Checks `archive` against its manifest, restores it into a scratch
/// database and compares the restored tables' counts and checksums with the
/// manifest.
pub async fn verify(
    archive: &Path,
    scratch: &Scratch,
    ring: &KeyRing,
    progress: &dyn Progress,
) -> Result<VerifyReport, RecoveryError> {
    let mut report = VerifyReport {
        archive: archive.to_owned(),
        manifest: None,
        archive_problems: Vec::new(),
        scratch: String::new(),
        result: None,
        shredded: std::collections::BTreeMap::new(),
    };
    // The file itself first: present, non-empty, a zip by its magic bytes.
    let file = validator::check_file(archive, None, Some(validator::BackupFormat::Zip));
    if !file.ok() {
        report.archive_problems = file.problems.iter().map(|p| format!("{}: {p}", archive.display())).collect();
        return Ok(report);
    }
    let owned = archive.to_owned();
    let opened = tokio::task::spawn_blocking(move || {
        let mut reader = ArchiveReader::open(&owned)?;
        let problems = reader.check_members();
        Ok::<_, loci_migration_verifier::VerifierError>((reader.manifest().clone(), problems))
    })
    .await
    .map_err(|e| RecoveryError::Refused(format!("archive reader: {e}")))?;
    let (manifest, problems) = match opened {
        Ok(found) => found,
        Err(e) => {
            report.archive_problems.push(e.to_string());
            return Ok(report);
        }
    };
    report.manifest = Some(manifest.clone());
    if !problems.is_empty() {
        report.archive_problems = problems;
        return Ok(report);
    }
    // A scratch restore opens no index: the rebuild is only queued.
    let settings = Settings::default();
    let (db, cleanup) = match scratch {
        Scratch::Sqlite => {
            let dir = tempfile::tempdir().map_err(AppError::from)?;
            let url = Secret::new(format!("sqlite://{}?mode=rwc", dir.path().join("verify.db").display()));
            report.scratch = format!("a temporary SQLite file in {}", dir.path().display());
            (Database::connect(&url, &PoolConfig::default()).await?, Cleanup::Dir(dir))
        }
        Scratch::Postgres(server) => {
            let scratch = ScratchDatabase::create(server).await?;
            report.scratch = format!("the temporary PostgreSQL database {}", scratch.name());
            let db = Database::connect(&scratch.url, &PoolConfig::default()).await;
            match db {
                Ok(db) => (db, Cleanup::Postgres(scratch)),
                Err(e) => {
                    scratch.drop_now().await?;
                    return Err(e.into());
                }
            }
        }
    };
    let outcome = async {
        db.migrate_up().await?;
        let restored = restore_inner(&settings, &db, archive, false, Rebuild::Queue, ring, progress).await?;
        let snapshot = db.snapshot().await?;
        let found = archive_digests(&snapshot, ring, progress).await;
        snapshot.close().await?;
        let found = found?;
        // Tables with rows left out are checked by count.
        let shredded = restored.shredded;
        let mut expected = manifest.summaries();
        for (table, left_out) in &shredded {
            let restored = found.iter().find(|t| &t.name == table);
            let restored_rows = restored.map_or(0, |t| t.rows);
            if let Some(entry) = expected.iter_mut().find(|t| &t.name == table)
                && restored_rows + left_out == entry.rows
            {
                entry.rows = restored_rows;
                entry.sha256 = restored.map(|t| t.sha256.clone()).unwrap_or_default();
            }
        }
        Ok::<_, RecoveryError>((compare(&expected, &found), shredded))
    }
    .await;
    db.close().await?;
    cleanup.run().await?;
    match outcome {
        Ok((result, shredded)) => {
            report.result = Some(result);
            report.shredded = shredded;
        }
        Err(RecoveryError::Mismatch(problem)) => report.archive_problems.push(problem),
        Err(e) => return Err(e),
    }
    Ok(report)
}

enum Cleanup {
    Dir(tempfile::TempDir),
    Postgres(ScratchDatabase),
}

impl Cleanup {
    async fn run(self) -> Result<(), RecoveryError> {
        match self {
            Self::Dir(dir) => drop(dir),
            Self::Postgres(db) => db.drop_now().await?,
        }
        Ok(())
    }
}

/// Count and checksum of each table as `snapshot` sees it.
pub async fn digests(
    snapshot: &Snapshot,
    tables: &[&str],
    progress: &dyn Progress,
) -> Result<Vec<TableSummary>, RecoveryError> {
    let mut out = Vec::with_capacity(tables.len());
    for table in tables {
        progress.begin(&format!("checksum {table}"), snapshot.count(table).await?);
        let mut digest = TableDigest::new();
        let mut rows = snapshot.rows(table, 0).await?;
        while let Some(row) = rows.next().await {
            digest.push(&row?);
            progress.advance(1);
        }
        progress.end();
        let (rows, sha256) = digest.finish();
        out.push(TableSummary { name: (*table).to_owned(), rows, sha256 });
    }
    Ok(out)
}

/// [`digests`] of the backed-up tables with each row sealed as a backup
/// seals it: what the manifest of an archive of this data says.
pub async fn archive_digests(
    snapshot: &Snapshot,
    ring: &KeyRing,
    progress: &dyn Progress,
) -> Result<Vec<TableSummary>, RecoveryError> {
    let mut ring = ring.clone();
    let mut sealer = Sealer::default();
    let mut out = Vec::with_capacity(BACKUP_TABLES.len());
    for table in BACKUP_TABLES {
        progress.begin(&format!("checksum {table}"), snapshot.count(table).await?);
        let mut digest = TableDigest::new();
        let mut rows = snapshot.rows(table, 0).await?;
        while let Some(row) = rows.next().await {
            digest.push(&sealer.seal(&mut ring, false, table, row?).await?);
            progress.advance(1);
        }
        progress.end();
        let (rows, sha256) = digest.finish();
        out.push(TableSummary { name: (*table).to_owned(), rows, sha256 });
    }
    Ok(out)
}

/// What a data move did.
#[derive(Debug, Clone)]
pub struct MoveReport {
    /// Rows copied by this run (0 when a previous run had finished).
    pub copied: u64,
    /// Rows already on the target from an earlier, interrupted run.
    pub resumed_from: u64,
    pub verification: VerificationResult,
    /// Memories re-indexed on the target.
    pub reindexed: u64,
    /// True when a previous run had already finished and verified the move.
    pub already_done: bool,
    /// Seconds spent copying, verifying and re-indexing.
    pub copy_secs: f64,
    pub verify_secs: f64,
    pub reindex_secs: f64,
}

/// Copies every table from `from` to `to` in batches, resumable: rows go in
/// primary-key order and each batch commits on its own, so after a kill the
/// target holds a prefix of each table and the next run continues after it
/// (the checkpoint file at `checkpoint` records progress and proves the
/// target was empty when the move began). Verified at the end (counts and
/// checksums of both sides), then the target's indexes are rebuilt with
/// `settings`' index configuration.
pub async fn migrate_data(
    settings: &Settings,
    from: &Database,
    to: &Database,
    identities: (&str, &str),
    checkpoint: &Path,
    batch: u64,
    progress: &dyn Progress,
) -> Result<MoveReport, RecoveryError> {
    let (source_id, target_id) = identities;
    from.migrate_up().await?;
    to.migrate_up().await?;
    let mut state = match Checkpoint::load(checkpoint)? {
        Some(state) if state.source != source_id || state.target != target_id => {
            return Err(RecoveryError::Refused(format!(
                "the checkpoint {} belongs to another move ({} -> {}); pass another --checkpoint",
                checkpoint.display(),
                state.source,
                state.target
            )));
        }
        Some(state) => state,
        None => {
            let present = to.non_empty_tables().await?;
            if !present.is_empty() {
                return Err(RecoveryError::not_empty(&present));
            }
            let state = Checkpoint::new(checkpoint, source_id, target_id);
            state.save()?;
            state
        }
    };
    let snapshot = from.snapshot().await?;
    if state.verified {
        let verification = verify_move(snapshot, to, progress).await?;
        return Ok(MoveReport {
            copied: 0,
            resumed_from: 0,
            verification,
            reindexed: 0,
            already_done: true,
            copy_secs: 0.0,
            verify_secs: 0.0,
            reindex_secs: 0.0,
        });
    }
    let mut copied = 0;
    let mut resumed_from = 0;
    let batch = batch.max(1);
    let clock = std::time::Instant::now();
    for table in moved_tables() {
        if state.is_done(table) {
            continue;
        }
        let total = snapshot.count(table).await?;
        // The target's rows are a prefix of the source's order.
        let mut done = to.count_all(table).await?;
        resumed_from += done;
        let plan = BatchPlan::new(total, batch);
        progress.begin(table, total);
        progress.advance(done);
        let mut rows = snapshot.rows(table, done).await?;
        let mut pending = Vec::with_capacity(batch as usize);
        loop {
            let next = rows.next().await;
            let end = next.is_none();
            if let Some(row) = next {
                pending.push(row?);
            }
            if pending.len() as u64 >= batch || (end && !pending.is_empty()) {
                let n = pending.len() as u64;
                tracing::debug!(table, "{}", plan.describe(done));
                to.load_batch(table, std::mem::take(&mut pending)).await?;
                done += n;
                copied += n;
                state.record(table, done)?;
                progress.advance(n);
            }
            if end {
                break;
            }
        }
        progress.end();
        drop(rows);
        state.finish_table(table)?;
    }
    let copy_secs = clock.elapsed().as_secs_f64();
    let clock = std::time::Instant::now();
    let verification = verify_move(snapshot, to, progress).await?;
    state.verified = true;
    state.save()?;
    let verify_secs = clock.elapsed().as_secs_f64();
    let clock = std::time::Instant::now();
    let orgs = to.all_orgs().await?;
    let reindexed = rebuild_indexes(settings, to, &orgs, Rebuild::Now, progress).await?;
    let reindex_secs = clock.elapsed().as_secs_f64();
    Ok(MoveReport {
        copied,
        resumed_from,
        verification,
        reindexed,
        already_done: false,
        copy_secs,
        verify_secs,
        reindex_secs,
    })
}

/// What a data move copies: the backed-up tables and the data keys (which
/// an archive never holds, but the new database must).
fn moved_tables() -> Vec<&'static str> {
    BACKUP_TABLES.iter().copied().chain(KEY_TABLES.iter().map(|(t, _)| *t)).collect()
}

/// Compares every table of the source (as `snapshot` sees it) with the
/// target; a difference is an error naming each table.
async fn verify_move(
    snapshot: Snapshot,
    to: &Database,
    progress: &dyn Progress,
) -> Result<VerificationResult, RecoveryError> {
    let tables = moved_tables();
    let source = digests(&snapshot, &tables, progress).await;
    snapshot.close().await?;
    let target_snapshot = to.snapshot().await?;
    let target = digests(&target_snapshot, &tables, progress).await;
    target_snapshot.close().await?;
    let verification = compare(&source?, &target?);
    if verification.success { Ok(verification) } else { Err(RecoveryError::Mismatch(describe(&verification))) }
}

/// Row counts of the backed-up tables that exist (checksums left empty),
/// for `loci migrate up --verify`.
pub async fn row_counts(db: &Database) -> Result<Vec<TableSummary>, RecoveryError> {
    db.ensure_reads_every_tenant().await?;
    let mut out = Vec::new();
    for table in BACKUP_TABLES {
        // A table a pending migration creates does not exist yet.
        if let Ok(rows) = db.count_all(table).await {
            out.push(TableSummary { name: (*table).to_owned(), rows, sha256: String::new() });
        }
    }
    Ok(out)
}

/// The mismatches of a failed comparison, one per line.
pub fn describe(result: &VerificationResult) -> String {
    result.mismatches.iter().map(|m| m.describe()).collect::<Vec<_>>().join("; ")
}
