//! `loci backup`, `loci backup verify`, `loci restore`, `loci migrate-data`
//! and `loci migrate up --verify`: argument handling, progress bars and
//! reports around `loci_app::recovery`.

use std::path::PathBuf;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use loci_app::recovery::{self, Progress, Rebuild, Scratch};
use loci_settings::{Secret, Settings};
use loci_stores::{Database, PoolConfig};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub action: Option<BackupAction>,
    /// Archive to write (default: ./loci-backup-<UTC time>.zip).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Database to back up (default: database.migration_url, else
    /// database.url). On PostgreSQL the role needs BYPASSRLS.
    #[arg(long, value_name = "URL", env = "LOCI_BACKUP_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum BackupAction {
    /// Check an archive: its members against the manifest, then a restore
    /// into a scratch database compared table by table. Exit code 1 when
    /// anything differs.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// An archive, or a directory: then its newest `loci-backup-*.zip`.
    pub archive: PathBuf,
    /// Also fail when the archive is older than this many hours (a backup
    /// schedule that stopped).
    #[arg(long, value_name = "HOURS")]
    pub max_age_hours: Option<u64>,
    /// Restore into a temporary database on this PostgreSQL server (its role
    /// needs CREATEDB and BYPASSRLS) instead of a temporary SQLite file.
    #[arg(long, value_name = "URL")]
    pub scratch_url: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// The database holding the users' data keys (default: the configured
    /// one, as `loci backup` uses it): sealed rows are opened with them.
    #[arg(long, value_name = "URL", env = "LOCI_KEYS_DATABASE_URL", hide_env_values = true)]
    pub keys_from: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    pub archive: PathBuf,
    /// Replace the contents of a database that holds data.
    #[arg(long)]
    pub force: bool,
    /// Database to restore into (default: database.migration_url, else
    /// database.url). On PostgreSQL the role needs BYPASSRLS.
    #[arg(long, value_name = "URL", env = "LOCI_RESTORE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Only queue the memories for indexing (a running server rebuilds the
    /// indexes); by default they are rebuilt now, with the server stopped.
    #[arg(long)]
    pub queue_only: bool,
    /// The database holding the users' data keys, when it is not the target
    /// (restoring elsewhere than the live database): sealed rows are opened
    /// with them; an erased user's rows stay out.
    #[arg(long, value_name = "URL", env = "LOCI_KEYS_DATABASE_URL", hide_env_values = true)]
    pub keys_from: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct MigrateDataArgs {
    /// Source database (e.g. sqlite:///var/lib/loci/loci.db).
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// Target database (e.g. postgres://owner@db/loci); its role needs
    /// BYPASSRLS, and the schema is created if missing.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Rows per batch (each batch commits on its own).
    #[arg(long, default_value_t = 1000)]
    pub batch: u64,
    /// Progress file of the move (default: loci-migrate-data.json in the
    /// data directory); a second run resumes from it.
    #[arg(long, value_name = "PATH")]
    pub checkpoint: Option<PathBuf>,
}

/// Progress bars on stderr; indicatif draws nothing when stderr is not a
/// terminal.
#[derive(Debug, Default)]
pub struct Bars {
    bar: Mutex<Option<ProgressBar>>,
}

impl Progress for Bars {
    fn begin(&self, label: &str, total: u64) {
        let bar = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template("{msg:>28} [{bar:32}] {pos}/{len} {per_sec} eta {eta}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_owned());
        if let Ok(mut slot) = self.bar.lock() {
            *slot = Some(bar);
        }
    }

    fn advance(&self, n: u64) {
        if let Ok(slot) = self.bar.lock()
            && let Some(bar) = slot.as_ref()
        {
            bar.inc(n);
        }
    }

    fn set(&self, done: u64, total: u64) {
        if let Ok(slot) = self.bar.lock()
            && let Some(bar) = slot.as_ref()
        {
            bar.set_length(total);
            bar.set_position(done);
        }
    }

    fn end(&self) {
        if let Ok(mut slot) = self.bar.lock()
            && let Some(bar) = slot.take()
        {
            bar.finish();
        }
    }
}

fn database_url(settings: &Settings, explicit: Option<&str>) -> anyhow::Result<Secret> {
    if let Some(url) = explicit {
        return Ok(Secret::new(url.to_owned()));
    }
    if settings.database.url.is_none() {
        settings.ensure_data_dir()?;
    }
    Ok(settings.migration_database_url())
}

async fn connect(url: &Secret) -> anyhow::Result<Database> {
    Ok(Database::connect(url, &PoolConfig::default()).await?)
}

pub async fn backup(settings: &Settings, args: &BackupArgs) -> anyhow::Result<()> {
    let url = database_url(settings, args.database_url.as_deref())?;
    let db = connect(&url).await?;
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("loci-backup-{}.zip", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"))));
    let started = std::time::Instant::now();
    let manifest = recovery::backup(settings, &db, &output, &Bars::default()).await?;
    db.close().await?;
    let bytes = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
    println!(
        "backup written: {} ({} tables, {} rows, {} bytes, {:.1} s, schema {})",
        output.display(),
        manifest.tables.len(),
        manifest.total_rows(),
        bytes,
        started.elapsed().as_secs_f64(),
        manifest.schema_revision.as_deref().unwrap_or("none")
    );
    for store in &manifest.stores {
        println!("  {:<10} {:<10} {:?}: {}", store.name, store.backend, store.status, store.detail);
    }
    Ok(())
}

/// Returns whether the archive verified.
pub async fn verify(settings: &Settings, args: &VerifyArgs) -> anyhow::Result<bool> {
    let scratch = match &args.scratch_url {
        Some(url) => Scratch::Postgres(Secret::new(url.clone())),
        None => Scratch::Sqlite,
    };
    let archive = if args.archive.is_dir() {
        loci_migration_verifier::validator::latest_backup(&args.archive)
            .ok_or_else(|| anyhow::anyhow!("{} holds no loci-backup-*.zip archive", args.archive.display()))?
    } else {
        args.archive.clone()
    };
    let started = std::time::Instant::now();
    let keys_db = connect(&database_url(settings, args.keys_from.as_deref())?).await?;
    let keys = recovery::KeyRing::load(recovery::master_key(settings)?, &keys_db).await?;
    keys_db.close().await?;
    let mut report = recovery::verify(&archive, &scratch, &keys, &Bars::default()).await?;
    if let Some(hours) = args.max_age_hours {
        let max = std::time::Duration::from_secs(hours.saturating_mul(3600));
        let file = loci_migration_verifier::validator::check_file(&archive, Some(max), None);
        report.archive_problems.extend(file.problems.into_iter().filter(|p| p.starts_with("stale")));
    }
    if args.json {
        let value = serde_json::json!({
            "archive": report.archive,
            "ok": report.ok(),
            "archive_problems": report.archive_problems,
            "scratch": report.scratch,
            "result": report.result,
            "shredded": report.shredded,
            "manifest": report.manifest,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(report.ok());
    }
    println!("archive: {}", report.archive.display());
    if let Some(m) = &report.manifest {
        println!(
            "taken:   {} from {} at schema {} ({} tables, {} rows)",
            m.finished_at.to_rfc3339(),
            m.source_engine,
            m.schema_revision.as_deref().unwrap_or("none"),
            m.tables.len(),
            m.total_rows()
        );
    }
    for problem in &report.archive_problems {
        println!("PROBLEM  {problem}");
    }
    if let Some(result) = &report.result {
        println!("restored into {} and compared:", report.scratch);
        for m in &result.mismatches {
            println!("MISMATCH {}", m.describe());
        }
        if result.success {
            println!("all {} tables match the manifest ({} rows)", result.tables, result.rows);
        }
        for (table, rows) in &report.shredded {
            println!("SHREDDED {table}: {rows} rows of erased users (their data keys are gone)");
        }
    }
    println!("{} in {:.1} s", if report.ok() { "VERIFIED" } else { "FAILED" }, started.elapsed().as_secs_f64());
    Ok(report.ok())
}

pub async fn restore(settings: &Settings, args: &RestoreArgs) -> anyhow::Result<()> {
    let url = database_url(settings, args.database_url.as_deref())?;
    let db = connect(&url).await?;
    let rebuild = if args.queue_only { Rebuild::Queue } else { Rebuild::Now };
    let started = std::time::Instant::now();
    let keys = match &args.keys_from {
        Some(url) => Some(connect(&Secret::new(url.clone())).await?),
        None => None,
    };
    let report =
        recovery::restore_with_keys(settings, &db, &args.archive, args.force, rebuild, keys.as_ref(), &Bars::default())
            .await?;
    db.close().await?;
    if let Some(keys) = keys {
        keys.close().await?;
    }
    let shredded: u64 = report.shredded.values().sum();
    if shredded > 0 {
        println!("left out {shredded} rows of erased users (their data keys are gone)");
    }
    println!(
        "restored {} rows in {} tables from {} in {:.1} s{}; {} memories {}",
        report.rows,
        report.tables,
        args.archive.display(),
        started.elapsed().as_secs_f64(),
        if report.replaced > 0 { format!(" (replaced {} rows)", report.replaced) } else { String::new() },
        report.queued,
        if args.queue_only { "queued for indexing" } else { "re-indexed" }
    );
    Ok(())
}

/// A URL without its password, to name a side of a move in its checkpoint.
fn identity(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

pub async fn migrate_data(settings: &Settings, args: &MigrateDataArgs) -> anyhow::Result<()> {
    let checkpoint = match &args.checkpoint {
        Some(path) => path.clone(),
        None => settings.ensure_data_dir()?.join("loci-migrate-data.json"),
    };
    let from = connect(&Secret::new(args.from.clone())).await?;
    let to = connect(&Secret::new(args.to.clone())).await?;
    let started = std::time::Instant::now();
    let ids = (identity(&args.from), identity(&args.to));
    let report =
        recovery::migrate_data(settings, &from, &to, (&ids.0, &ids.1), &checkpoint, args.batch, &Bars::default())
            .await?;
    from.close().await?;
    to.close().await?;
    let secs = started.elapsed().as_secs_f64();
    if report.already_done {
        println!(
            "nothing to do: the move was completed and verified before ({} tables, {} rows match)",
            report.verification.tables, report.verification.rows
        );
    } else {
        println!(
            "copied {} rows in {:.1} s ({:.0} rows/s){}; verified in {:.1} s: {} tables, {} rows match; {} memories \
             re-indexed in {:.1} s (total {secs:.1} s)",
            report.copied,
            report.copy_secs,
            report.copied as f64 / report.copy_secs.max(1e-9),
            if report.resumed_from > 0 {
                format!(", resumed after {} rows of an earlier run", report.resumed_from)
            } else {
                String::new()
            },
            report.verify_secs,
            report.verification.tables,
            report.verification.rows,
            report.reindexed,
            report.reindex_secs
        );
    }
    println!("checkpoint: {}", checkpoint.display());
    Ok(())
}

/// Row counts per table before and after `loci migrate up`.
pub async fn migrate_up_verified(db: &Database) -> anyhow::Result<()> {
    let before = recovery::row_counts(db).await?;
    db.migrate_up().await?;
    let after = recovery::row_counts(db).await?;
    let result = loci_migration_verifier::compare(&before, &after);
    let kept: Vec<_> = result.mismatches.iter().filter(|m| m.before.is_some()).collect();
    if kept.is_empty() {
        println!("migrations applied; row counts unchanged in all {} tables ({} rows)", before.len(), result.rows);
        Ok(())
    } else {
        for m in &kept {
            eprintln!("MISMATCH {}", m.describe());
        }
        anyhow::bail!("row counts changed in {} tables during the migration", kept.len())
    }
}
