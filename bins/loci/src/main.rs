//! `loci`: the admin CLI. The commands compose the library crates; `bench`
//! (in `bench.rs`) also holds its evaluation protocol and timing loops.

mod bench;
mod bench_code;
mod bench_loco;
mod recovery;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use loci_settings::{Settings, SettingsError, Sources};
use loci_stores::Database;

#[derive(Debug, Parser)]
#[command(name = "loci", version, about = "Loci: memory and retrieval server for AI agents")]
struct Cli {
    /// TOML configuration file (also LOCI_CONFIG).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: REST API and MCP (streamable HTTP at /mcp) on one port.
    Serve,
    /// Serve MCP on stdin/stdout for one agent (identity from LOCI_TOKEN).
    Mcp,
    /// Apply or inspect schema migrations.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Inspect configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Mint an access token with the embedded profile's local key (refused in
    /// the production profile: there the identity provider issues tokens).
    Token(TokenArgs),
    /// Rebuild search indexes from the relational store (stop the server
    /// first in the embedded profile: it holds the index files).
    Reindex {
        /// Index to rebuild: vector, lexical, graph or all.
        #[arg(long, default_value = "all")]
        index: String,
        /// Only this org (default: every org).
        #[arg(long)]
        org: Option<String>,
    },
    /// Hard-delete deleted memories past `gdpr.deleted_retention_days` (the
    /// server does it every hour; stop it first in the embedded profile).
    Purge,
    /// Back up every table to one archive (`backup verify` checks one).
    Backup(recovery::BackupArgs),
    /// Restore an archive written by `loci backup`, then rebuild the indexes.
    Restore(recovery::RestoreArgs),
    /// Move every table to another database (SQLite -> PostgreSQL),
    /// resumable, verified, then re-indexed.
    MigrateData(recovery::MigrateDataArgs),
    /// Benchmarks that print figures.
    Bench {
        #[command(subcommand)]
        action: BenchAction,
    },
}

#[derive(Debug, Subcommand)]
enum BenchAction {
    /// Retrieval quality (R@5, R@10, MRR) and latency on LoCoMo conversations.
    Locomo(bench::LocomoArgs),
    /// Index build time, search latency and memory on synthetic memories.
    Search(bench::SearchArgs),
    /// Episodic (session) memory ops/s, in process and on Valkey.
    Episodic(bench::EpisodicArgs),
    /// Feedback write throughput and experiment assignment latency.
    Learning(bench::LearningArgs),
    /// Backup, verify, restore and re-index times, archive size, and the
    /// throughput of migrate-data.
    Recovery(bench::RecoveryArgs),
    /// GDPR subject access export and erasure of one user's memories.
    Gdpr(bench::GdprArgs),
    /// The cost of rate limiting and tracing on an authenticated read, and
    /// how fast an open circuit breaker fails compared with a timeout.
    Ops(bench::OpsArgs),
    /// Code intelligence on real repositories: indexing throughput,
    /// definitions against universal-ctags, callers/impact latency, search.
    Code(bench_code::CodeArgs),
}

#[derive(Debug, clap::Args)]
struct TokenArgs {
    /// The user (`sub`).
    #[arg(long)]
    user: String,
    /// The tenant (`org_id`).
    #[arg(long)]
    org: String,
    /// Space-separated scopes, e.g. "memories:read memories:write".
    #[arg(long, default_value = "")]
    scopes: String,
    /// Space- or comma-separated roles (viewer, editor, admin, or configured ones).
    #[arg(long, default_value = "")]
    roles: String,
    /// Space- or comma-separated access entities to grant, e.g. "team:acme/core".
    #[arg(long, default_value = "")]
    grants: String,
    /// Lifetime: a number with s, m, h or d (default 1h).
    #[arg(long, default_value = "1h")]
    ttl: String,
    /// Bind the token to a DPoP key (its RFC 7638 thumbprint).
    #[arg(long)]
    dpop_jkt: Option<String>,
    /// Client id (used as the app name).
    #[arg(long)]
    client: Option<String>,
}

#[derive(Debug, Subcommand)]
enum MigrateAction {
    /// Apply every pending migration.
    Up {
        /// Compare row counts per table before and after (on PostgreSQL the
        /// role needs BYPASSRLS to count every tenant).
        #[arg(long)]
        verify: bool,
    },
    /// Revert the last N migrations. First checks, with everything rolled
    /// back, which tables and columns they would drop and how many rows hold
    /// data there; refuses when any does, unless --yes.
    Down {
        #[arg(long, default_value_t = 1)]
        steps: u32,
        /// Only report the rows at risk.
        #[arg(long)]
        check: bool,
        /// Revert even though rows would be lost.
        #[arg(long)]
        yes: bool,
    },
    /// List migrations and whether each is applied.
    Status,
    /// Drop every table and re-apply all migrations (destroys data).
    Fresh {
        /// Confirm that all data may be destroyed.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Print the effective configuration (secrets redacted) and every problem;
    /// exits non-zero when there is one.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let sources = Sources::from_process(cli.config.clone());
    match cli.command {
        Command::Config { action: ConfigAction::Check } => config_check(&sources),
        Command::Serve => {
            let Some(settings) = load(&sources) else { return ExitCode::from(2) };
            let _telemetry = loci_app::telemetry::init(&settings.telemetry);
            match loci_http::serve(settings, |state| vec![loci_api::mount(), loci_mcp::mount(state)]) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "loci-api failed");
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Mcp => {
            let Some(settings) = load(&sources) else { return ExitCode::from(2) };
            let _telemetry = loci_app::telemetry::init_stderr(&settings.telemetry);
            match loci_mcp::run_stdio(settings) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Token(args) => {
            let Some(settings) = load(&sources) else { return ExitCode::from(2) };
            match mint(&settings, &args) {
                Ok(token) => {
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Bench { action } => {
            let Some(settings) = load(&sources) else { return ExitCode::from(2) };
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build();
            let run = |rt: tokio::runtime::Runtime| match &action {
                BenchAction::Locomo(args) => rt.block_on(bench::locomo(&settings, args)),
                BenchAction::Search(args) => rt.block_on(bench::search(&settings, args)),
                BenchAction::Episodic(args) => rt.block_on(bench::episodic(args)),
                BenchAction::Learning(args) => rt.block_on(bench::learning(&settings, args)),
                BenchAction::Recovery(args) => rt.block_on(bench::recovery(&settings, args)),
                BenchAction::Gdpr(args) => rt.block_on(bench::gdpr(&settings, args)),
                BenchAction::Ops(args) => rt.block_on(bench::ops(&settings, args)),
                BenchAction::Code(args) => rt.block_on(bench_code::code(&settings, args)),
            };
            match rt.map_err(anyhow::Error::from).and_then(run) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Reindex { index, org } => {
            let Some(settings) = load(&sources) else { return ExitCode::from(2) };
            match tokio_runtime().and_then(|rt| rt.block_on(reindex(&settings, &index, org.as_deref()))) {
                Ok(n) => {
                    println!("re-indexed {n} memories");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Purge => {
            let Some(settings) = load(&sources) else { return ExitCode::from(2) };
            match tokio_runtime().and_then(|rt| rt.block_on(purge(&settings))) {
                Ok(n) => {
                    println!("purged {n} memories deleted more than {} days ago", settings.gdpr.deleted_retention_days);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Backup(args) => {
            let Some(settings) = load(&sources) else { return ExitCode::from(2) };
            let run = |rt: tokio::runtime::Runtime| match &args.action {
                Some(recovery::BackupAction::Verify(v)) => rt.block_on(recovery::verify(&settings, v)),
                None => rt.block_on(recovery::backup(&settings, &args)).map(|()| true),
            };
            match tokio_runtime().and_then(run) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Restore(args) => {
            let Some(settings) = load(&sources) else { return ExitCode::from(2) };
            report(tokio_runtime().and_then(|rt| rt.block_on(recovery::restore(&settings, &args))))
        }
        Command::MigrateData(args) => {
            let Some(settings) = load(&sources) else { return ExitCode::from(2) };
            report(tokio_runtime().and_then(|rt| rt.block_on(recovery::migrate_data(&settings, &args))))
        }
        Command::Migrate { action } => {
            let Some(settings) = load(&sources) else { return ExitCode::from(2) };
            match tokio_runtime().and_then(|rt| rt.block_on(migrate(&settings, action))) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Exit code of a command: failure with its message chain on error.
fn report(outcome: anyhow::Result<()>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads settings or prints every problem, one per line.
fn load(sources: &Sources) -> Option<Settings> {
    match Settings::load(sources) {
        Ok(s) => Some(s),
        Err(SettingsError::Invalid(problems)) => {
            eprintln!("error: the configuration is invalid ({} problems):", problems.len());
            for p in problems {
                eprintln!("  {p}");
            }
            None
        }
        Err(e) => {
            eprintln!("error: {e}");
            None
        }
    }
}

fn config_check(sources: &Sources) -> ExitCode {
    let settings = match Settings::load_unchecked(sources) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match settings.to_redacted_toml() {
        Ok(toml) => println!("# effective configuration (profile {}), secrets redacted\n{toml}", settings.profile),
        Err(e) => eprintln!("error: {e}"),
    }
    let problems = settings.problems();
    if problems.is_empty() {
        println!("# configuration OK");
        ExitCode::SUCCESS
    } else {
        eprintln!("error: the configuration is invalid ({} problems):", problems.len());
        for p in problems {
            eprintln!("  {p}");
        }
        ExitCode::from(2)
    }
}

fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

async fn migrate(settings: &Settings, action: MigrateAction) -> anyhow::Result<()> {
    // `anyhow` here so that `--verify` mismatches keep their message.
    if settings.database.url.is_none() {
        settings.ensure_data_dir()?;
    }
    let db = Database::connect(&settings.migration_database_url(), &loci_stores::PoolConfig::from_settings(settings))
        .await?;
    match action {
        MigrateAction::Up { verify: true } => recovery::migrate_up_verified(&db).await?,
        MigrateAction::Up { verify: false } => {
            db.migrate_up().await?;
            println!("migrations applied");
        }
        MigrateAction::Down { steps, check, yes } => {
            let at_risk: Vec<_> = db.rows_at_risk(steps).await?.into_iter().filter(|r| r.rows > 0).collect();
            for r in &at_risk {
                match &r.column {
                    Some(column) => println!("at risk: {} rows with a value in {}.{column}", r.rows, r.table),
                    None => println!("at risk: {} rows of table {}", r.rows, r.table),
                }
            }
            if check {
                if at_risk.is_empty() {
                    println!("reverting {steps} migration(s) would lose no data");
                }
            } else if !at_risk.is_empty() && !yes {
                anyhow::bail!(
                    "reverting {steps} migration(s) would lose the data above; take a backup (`loci backup`) and \
                     pass --yes, or restore a backup instead"
                );
            } else {
                db.migrate_down(steps).await?;
                println!("reverted {steps} migration(s)");
            }
        }
        MigrateAction::Status => {
            for m in db.migration_status().await? {
                println!("{}\t{}", if m.applied { "applied" } else { "pending" }, m.name);
            }
        }
        MigrateAction::Fresh { yes } => {
            anyhow::ensure!(yes, "`migrate fresh` destroys every table; pass --yes to confirm");
            db.migrate_fresh().await?;
            println!("database recreated");
        }
    }
    db.close().await?;
    Ok(())
}

async fn purge(settings: &Settings) -> anyhow::Result<u64> {
    let services = loci_app::Services::build(settings.clone()).await?;
    let retention = std::time::Duration::from_secs(settings.gdpr.deleted_retention_days * 86_400);
    let n = services.gdpr.purge_deleted(retention).await?;
    services.access_log().flush().await;
    Ok(n)
}

async fn reindex(settings: &Settings, index: &str, org: Option<&str>) -> anyhow::Result<u64> {
    use loci_domain::indexer::{GRAPH, Indexer, IndexingOptions, LEXICAL, VECTOR};
    let only = match index {
        "all" => None,
        name @ (VECTOR | LEXICAL | GRAPH) => Some(vec![name.to_owned()]),
        other => anyhow::bail!("--index must be vector, lexical, graph or all, not `{other}`"),
    };
    let orgs = match org {
        Some(raw) => Some(vec![loci_core::OrgId::parse(raw).map_err(|e| anyhow::anyhow!("--org: {e}"))?]),
        None => None,
    };
    if settings.database.url.is_none() {
        settings.ensure_data_dir()?;
    }
    let db = Database::from_settings(settings).await?;
    let indexes = loci_app::indexes::open(settings, &db)?;
    let options = IndexingOptions::from_settings(&settings.search);
    let indexer = Indexer::new(db.clone(), indexes, options, settings.search.indexer_batch);
    let bars = recovery::Bars::default();
    loci_app::recovery::Progress::begin(&bars, "re-index", 0);
    let n =
        indexer.reindex_with(orgs, only, &|done, total| loci_app::recovery::Progress::set(&bars, done, total)).await;
    loci_app::recovery::Progress::end(&bars);
    db.close().await?;
    Ok(n?)
}

fn split_list(raw: &str) -> Vec<String> {
    raw.split(|c: char| c.is_whitespace() || c == ',').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

fn parse_ttl(raw: &str) -> anyhow::Result<std::time::Duration> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let n: u64 = number.parse().map_err(|_| anyhow::anyhow!("--ttl must look like 90s, 30m, 1h or 7d"))?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => anyhow::bail!("--ttl must look like 90s, 30m, 1h or 7d"),
    };
    Ok(std::time::Duration::from_secs(seconds))
}

fn mint(settings: &Settings, args: &TokenArgs) -> anyhow::Result<String> {
    anyhow::ensure!(
        settings.profile == loci_settings::Profile::Embedded,
        "`loci token` only works in the embedded profile; in production your identity provider issues tokens \
         (Loci never holds its signing key)"
    );
    anyhow::ensure!(
        loci_app::uses_local_issuer(settings),
        "`loci token` signs with the local key, which this server does not trust: auth.jwks_url or auth.jwks_path \
         names the keys of your identity provider, which issues the tokens"
    );
    let ttl = parse_ttl(&args.ttl)?;
    let request = loci_security::MintRequest {
        issuer: settings.issuer().to_owned(),
        audience: settings.audiences().first().cloned().unwrap_or_else(|| "loci".into()),
        subject: args.user.clone(),
        org_id: args.org.clone(),
        scopes: split_list(&args.scopes),
        roles: split_list(&args.roles),
        grants: split_list(&args.grants),
        client_id: args.client.clone(),
        ttl,
        dpop_jkt: args.dpop_jkt.clone(),
    };
    request.check(&settings.auth.roles)?;
    let issuer = loci_security::LocalIssuer::load_or_create(settings.ensure_data_dir()?)?;
    Ok(issuer.mint(&request)?)
}
