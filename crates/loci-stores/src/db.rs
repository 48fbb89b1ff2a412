//! Connection management for both relational engines, migrations and the
//! PostgreSQL role check.

use std::sync::Arc;
use std::time::Duration;

use loci_core::OrgId;
use loci_migration::{Migrator, MigratorTrait};
use loci_settings::{DatabaseKind, Secret, Settings};
#[cfg(feature = "testing")]
use sea_orm::TransactionTrait;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use loci_core::breaker::{BreakerConfig, CircuitBreaker};
use tracing::Instrument;

use crate::{StoreError, TenantTx};

/// The OpenTelemetry `db.system` of a database kind.
fn system_name(kind: DatabaseKind) -> &'static str {
    match kind {
        DatabaseKind::Postgres => "postgresql",
        DatabaseKind::Sqlite => "sqlite",
    }
}

/// Pool sizes and timeouts, taken from `[database]` settings.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub max_connections: u32,
    pub min_connections: u32,
    pub connect_timeout: Duration,
    pub acquire_timeout: Duration,
    pub idle_timeout: Duration,
    pub sqlite_busy_timeout: Duration,
    /// Bytes of the file each SQLite connection memory-maps.
    pub sqlite_mmap_bytes: u64,
    pub allow_rls_bypass: bool,
    /// The database's circuit breaker (`[resilience]`).
    pub breaker: BreakerConfig,
}

impl PoolConfig {
    pub fn from_settings(settings: &Settings) -> Self {
        let db = &settings.database;
        Self {
            max_connections: db.max_connections,
            min_connections: db.min_connections,
            connect_timeout: Duration::from_secs(db.connect_timeout_secs),
            acquire_timeout: Duration::from_secs(db.acquire_timeout_secs),
            idle_timeout: Duration::from_secs(db.idle_timeout_secs),
            sqlite_busy_timeout: Duration::from_millis(db.sqlite_busy_timeout_ms),
            sqlite_mmap_bytes: db.sqlite_mmap_mib.saturating_mul(1 << 20),
            allow_rls_bypass: db.allow_rls_bypass,
            breaker: breaker_config(&settings.resilience),
        }
    }
}

/// The breaker policy of `[resilience]`, for every dependency.
pub fn breaker_config(r: &loci_settings::ResilienceSettings) -> BreakerConfig {
    BreakerConfig { failure_threshold: r.failure_threshold, cool_down: Duration::from_secs(r.cool_down_secs) }
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self::from_settings(&Settings::default())
    }
}

/// The relational store: a writer pool and a reader pool.
///
/// On SQLite the writer pool holds exactly one connection, so concurrent
/// writers queue inside the process instead of failing with `SQLITE_BUSY`, while
/// readers run in parallel (WAL mode). On PostgreSQL both are the same pool
/// (read replicas can later back the reader).
#[derive(Debug, Clone)]
pub struct Database {
    writer: DatabaseConnection,
    reader: DatabaseConnection,
    kind: DatabaseKind,
    /// Opened by consecutive failures to reach the database: then tenant
    /// transactions fail at once instead of each waiting on a dead server.
    breaker: Arc<CircuitBreaker>,
}

impl Database {
    /// Connects to `url` (postgres:// or sqlite:) with the given pool settings.
    pub async fn connect(url: &Secret, pool: &PoolConfig) -> Result<Self, StoreError> {
        let kind = DatabaseKind::of(url.expose()).map_err(|()| {
            StoreError::Config("database URL must start with postgres://, postgresql:// or sqlite:".into())
        })?;
        let db = match kind {
            DatabaseKind::Postgres => {
                let conn = sea_orm::Database::connect(options(url, pool, pool.max_connections)).await?;
                Self { writer: conn.clone(), reader: conn, kind, breaker: Arc::new(CircuitBreaker::new(pool.breaker)) }
            }
            DatabaseKind::Sqlite => {
                if let Some(dir) = sqlite_parent_dir(url.expose()) {
                    std::fs::create_dir_all(&dir).map_err(|e| {
                        StoreError::Config(format!("cannot create database directory {}: {e}", dir.display()))
                    })?;
                }
                let busy = pool.sqlite_busy_timeout;
                let mmap = pool.sqlite_mmap_bytes.to_string();
                let sqlite = move |o: sea_orm::sqlx::sqlite::SqliteConnectOptions| {
                    o.create_if_missing(true)
                        .journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Normal)
                        .busy_timeout(busy)
                        .foreign_keys(true)
                        // LIKE compares case-sensitively, as on PostgreSQL, so
                        // grant prefixes cover exactly what they name (search
                        // lower-cases both sides itself).
                        .pragma("case_sensitive_like", "ON")
                        // The first pages of the file (the hot upper levels
                        // of the indexes) are read through a shared memory
                        // map instead of a `pread` copy per visit; bounded,
                        // since every connection maps it again (resident
                        // memory was 4.3 GB with 256 MiB each at 190,000
                        // memories).
                        .pragma("mmap_size", mmap.clone())
                        .pragma("cache_size", "-8192")
                        .pragma("temp_store", "memory")
                        // Deleted content is overwritten with zeros, so an
                        // erased user's words do not linger in free pages.
                        .pragma("secure_delete", "ON")
                };
                let mut w = options(url, pool, 1);
                w.min_connections(1).map_sqlx_sqlite_opts(sqlite.clone());
                let writer = sea_orm::Database::connect(w).await?;
                // Readers are opened read-only: a write through a read
                // transaction fails instead of bypassing the writer queue.
                let mut r = options(url, pool, pool.max_connections.max(1));
                r.map_sqlx_sqlite_opts(move |o| sqlite(o).read_only(true));
                let reader = sea_orm::Database::connect(r).await?;
                Self { writer, reader, kind, breaker: Arc::new(CircuitBreaker::new(pool.breaker)) }
            }
        };
        Ok(db)
    }

    /// Connects with the app URL and pool settings from `settings`, and on
    /// PostgreSQL refuses a role that would bypass row-level security.
    pub async fn from_settings(settings: &Settings) -> Result<Self, StoreError> {
        let pool = PoolConfig::from_settings(settings);
        let db = Self::connect(&settings.database_url(), &pool).await?;
        if !pool.allow_rls_bypass {
            db.ensure_role_is_subject_to_rls().await?;
        }
        Ok(db)
    }

    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }

    /// Begins a read-write transaction bound to `org`: on PostgreSQL the
    /// transaction-local `loci.org_id` setting is set before anything else runs,
    /// so RLS applies to every statement of the transaction.
    pub async fn begin_tenant(&self, org: &OrgId) -> Result<TenantTx, StoreError> {
        let span = tracing::info_span!("db.begin", db.system = system_name(self.kind), read_only = false);
        self.guarded(TenantTx::begin(&self.writer, org.clone(), false)).instrument(span).await
    }

    /// Begins a read-only transaction (on the reader pool; writes fail).
    pub async fn begin_tenant_read(&self, org: &OrgId) -> Result<TenantTx, StoreError> {
        let span = tracing::info_span!("db.begin", db.system = system_name(self.kind), read_only = true);
        self.guarded(TenantTx::begin(&self.reader, org.clone(), true)).instrument(span).await
    }

    /// Begins a transaction through the circuit breaker.
    async fn guarded(
        &self,
        begin: impl std::future::Future<Output = Result<TenantTx, StoreError>>,
    ) -> Result<TenantTx, StoreError> {
        match self.breaker.call(begin, StoreError::is_outage).await {
            Ok(outcome) => outcome,
            Err(refusal) => Err(StoreError::CircuitOpen { dependency: "database", refusal }),
        }
    }

    /// The database's circuit breaker (its state is a metric).
    pub fn breaker(&self) -> Arc<CircuitBreaker> {
        Arc::clone(&self.breaker)
    }

    /// Refreshes the query planner's statistics where they are stale:
    /// without them a planner picks among indexes blindly (SQLite walked a
    /// whole tenant's category links for one memory's categories; PostgreSQL
    /// read a memory by id through an (org, entity) index). On SQLite this is
    /// `PRAGMA optimize` with a bounded sample. On PostgreSQL autovacuum
    /// analyses tables too, but only after its own thresholds and nap time;
    /// here every table of this schema that was never analysed, or changed by
    /// more than a fifth since, is analysed now (ANALYZE samples a bounded
    /// number of rows). Tables the role does not own are left to autovacuum.
    pub async fn optimize(&self) -> Result<(), StoreError> {
        match self.kind {
            DatabaseKind::Sqlite => {
                // analysis_limit: ANALYZE samples about this many rows per
                // index, so a refresh costs milliseconds whatever the size.
                self.writer.execute_unprepared("PRAGMA analysis_limit=1000; PRAGMA optimize=0x10002;").await?;
            }
            DatabaseKind::Postgres => {
                let stale = self
                    .writer
                    .query_all_raw(Statement::from_string(
                        DbBackend::Postgres,
                        "SELECT s.relname::text AS name FROM pg_stat_user_tables s \
                         JOIN pg_class c ON c.oid = s.relid \
                         WHERE s.schemaname = current_schema() AND pg_has_role(c.relowner, 'USAGE') \
                         AND (COALESCE(s.last_analyze, s.last_autoanalyze) IS NULL AND s.n_live_tup + s.n_mod_since_analyze > 0 \
                              OR s.n_mod_since_analyze > 50 + s.n_live_tup / 5)",
                    ))
                    .await?;
                for row in stale {
                    let table: String = row.try_get("", "name")?;
                    // The name comes from the catalogue; quoted as an identifier.
                    let quoted = format!("\"{}\"", table.replace('"', "\"\""));
                    self.writer.execute_unprepared(&format!("ANALYZE {quoted}")).await?;
                }
            }
        }
        Ok(())
    }

    /// Cheap liveness check of the connection pool.
    /// On SQLite, copies the write-ahead log into the database and
    /// truncates it, so the log keeps no old page (after an erasure); a
    /// no-op on PostgreSQL.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        if self.kind == DatabaseKind::Sqlite {
            self.writer.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)").await?;
        }
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.reader.ping().await?;
        Ok(())
    }

    /// Fails when the connected PostgreSQL role is a superuser or has
    /// BYPASSRLS: such a role would see every tenant's rows.
    pub async fn ensure_role_is_subject_to_rls(&self) -> Result<(), StoreError> {
        if self.kind != DatabaseKind::Postgres {
            return Ok(());
        }
        let row = self
            .writer
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT current_user::text AS name, (rolsuper OR rolbypassrls) AS bypass \
                 FROM pg_roles WHERE rolname = current_user",
            ))
            .await?
            .ok_or_else(|| StoreError::Config("cannot read the current role".into()))?;
        let bypass: bool = row.try_get("", "bypass")?;
        if bypass {
            let name: String = row.try_get("", "name")?;
            return Err(StoreError::RlsBypassed(name));
        }
        Ok(())
    }

    /// The read-only pool (on PostgreSQL the same pool as the writer).
    pub(crate) fn reader_conn(&self) -> &DatabaseConnection {
        &self.reader
    }

    /// The connection used by migrations and non-tenant maintenance.
    pub(crate) fn writer(&self) -> &DatabaseConnection {
        &self.writer
    }

    /// Counts rows with no tenant context and no filter. Test support only:
    /// proves RLS fails closed on PostgreSQL (on SQLite it counts everything).
    #[cfg(feature = "testing")]
    pub async fn count_rows_without_tenant(&self, table: &str) -> Result<i64, StoreError> {
        if !loci_migration::TENANT_TABLES.contains(&table) && table != "outbox" {
            return Err(StoreError::Config(format!("unknown table {table}")));
        }
        let txn = self.writer.begin().await?;
        let row = txn
            .query_one_raw(Statement::from_string(
                self.writer.get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM \"{table}\""),
            ))
            .await?;
        txn.commit().await?;
        Ok(row.map(|r| r.try_get::<i64>("", "n")).transpose()?.unwrap_or(0))
    }

    pub async fn close(self) -> Result<(), StoreError> {
        self.writer.close_by_ref().await?;
        self.reader.close_by_ref().await?;
        Ok(())
    }
}

fn options(url: &Secret, pool: &PoolConfig, max: u32) -> ConnectOptions {
    let mut opts = ConnectOptions::new(url.expose().to_owned());
    opts.max_connections(max)
        .min_connections(pool.min_connections.min(max))
        .connect_timeout(pool.connect_timeout)
        .acquire_timeout(pool.acquire_timeout)
        .idle_timeout(pool.idle_timeout)
        .sqlx_logging(false);
    opts
}

/// The directory of a `sqlite://path?...` URL, to create it before connecting.
fn sqlite_parent_dir(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    std::path::Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()).map(Into::into)
}

/// One applied or pending migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationState {
    pub name: String,
    pub applied: bool,
}

/// Schema migrations (`loci migrate up|down|status|fresh`).
impl Database {
    /// How many steps down revert the migration `name` and every later one
    /// (`None` when no migration has that name).
    pub async fn steps_down_through(&self, name: &str) -> Result<Option<u32>, StoreError> {
        let status = self.migration_status().await?;
        Ok(status.iter().position(|m| m.name == name).and_then(|i| u32::try_from(status.len() - i).ok()))
    }

    pub async fn migrate_up(&self) -> Result<(), StoreError> {
        Migrator::up(self.writer(), None).await?;
        Ok(())
    }

    pub async fn migrate_down(&self, steps: u32) -> Result<(), StoreError> {
        Migrator::down(self.writer(), Some(steps)).await?;
        Ok(())
    }

    /// Drops every table and re-applies all migrations.
    pub async fn migrate_fresh(&self) -> Result<(), StoreError> {
        Migrator::fresh(self.writer()).await?;
        Ok(())
    }

    pub async fn migration_status(&self) -> Result<Vec<MigrationState>, StoreError> {
        let list = Migrator::get_migration_with_status(self.writer()).await?;
        Ok(list
            .iter()
            .map(|m| MigrationState {
                name: m.name().to_owned(),
                applied: matches!(m.status(), loci_migration::MigrationStatus::Applied),
            })
            .collect())
    }
}
