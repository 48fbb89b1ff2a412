//! `loci`: the admin CLI. It only composes the library crates.

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
    /// Run the REST server.
    Serve,
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
}

#[derive(Debug, Subcommand)]
enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// Revert the last N migrations.
    Down {
        #[arg(long, default_value_t = 1)]
        steps: u32,
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
            loci_api::telemetry::init(&settings.telemetry);
            match loci_api::serve(settings) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "loci-api failed");
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
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
    if settings.database.url.is_none() {
        settings.ensure_data_dir()?;
    }
    let db = Database::connect(&settings.migration_database_url(), &loci_stores::PoolConfig::from_settings(settings))
        .await?;
    match action {
        MigrateAction::Up => {
            db.migrate_up().await?;
            println!("migrations applied");
        }
        MigrateAction::Down { steps } => {
            db.migrate_down(steps).await?;
            println!("reverted {steps} migration(s)");
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
