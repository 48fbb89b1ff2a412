//! Whole-table export and import, for backups, restores and engine moves.
//!
//! Rows leave as JSON objects (one per row, keyed by column) in primary-key
//! order, through the entity types, so both engines give the same values:
//! a UUID is its hyphenated text, a timestamp RFC 3339 UTC with microseconds
//! (PostgreSQL's precision; SQLite may hold more), a JSON column its value.
//! Text keys are ordered bytewise on both engines (`COLLATE "C"` on
//! PostgreSQL, whose default collation follows the locale), so the order,
//! and with it a checksum over the rows, is the same on either.
//!
//! Reading every tenant at once is a maintenance job: on PostgreSQL it needs
//! a role that bypasses row-level security (a superuser or `BYPASSRLS`, as
//! `pg_dump` does). Each transaction here sets `row_security = off`, so a
//! role without that right fails loudly instead of reading zero rows.

use std::marker::PhantomData;
use std::pin::Pin;

use futures::{Stream, TryStreamExt};
use loci_migration::MigratorTrait;
use loci_settings::DatabaseKind;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    AccessMode, ColumnTrait, ColumnType, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, IdenStatic,
    IntoActiveModel, IsolationLevel, Iterable, Order, PrimaryKeyToColumn, QueryFilter, QueryOrder, QuerySelect,
    Statement, TransactionTrait,
};
use serde_json::Value;

use crate::entities::*;
use crate::{Database, StoreError};

/// The tables a backup leaves out, and why nothing is lost.
pub const DERIVED_TABLES: &[(&str, &str)] = &[
    ("memory_counts", "rebuilt by the triggers on `memories` as the rows are inserted"),
    ("outbox", "the index queue; a restore queues every memory for indexing again"),
    ("seaql_migrations", "the schema revision, recorded in the manifest; the target is migrated first"),
];

/// Tables never written into a backup archive, and why. `user_keys` holds
/// the per-user data keys that seal each user's rows in an archive: kept
/// only in the live database, so erasing a key makes that user's rows in
/// every older archive unreadable (crypto-shredding). A restore leaves it
/// as it is.
pub const KEY_TABLES: &[(&str, &str)] = &[(
    "user_keys",
    "the per-user data keys sealing each user's rows in archives; only in the live database, so an erased key shreds the user's rows in every older archive",
)];

/// Whose a row of a sealed table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The user named by this column of the row.
    Column(&'static str),
    /// The owner of the memory named by this column (a memory row of the
    /// same archive, read before: `memories` comes first).
    MemoryOf(&'static str),
}

/// A table whose personal columns a backup seals with the owner's data key
/// (the PII inventory's content and person columns; keys, org, times and
/// states stay readable, so an archive is still verifiable and
/// restorable around a shredded user).
#[derive(Debug, Clone, Copy)]
pub struct SealedTable {
    pub table: &'static str,
    pub owner: Owner,
    pub columns: &'static [&'static str],
}

/// The sealed tables; each has an `id` primary key and an `org_id`.
pub const SEALED_TABLES: &[SealedTable] = &[
    SealedTable { table: "users", owner: Owner::Column("id"), columns: &["subject", "display_name"] },
    SealedTable { table: "apps", owner: Owner::Column("owner_id"), columns: &["name", "description", "metadata"] },
    SealedTable {
        table: "memories",
        owner: Owner::Column("user_id"),
        columns: &["content", "content_hash", "artifact_ref", "entity", "evidence", "tags", "metadata"],
    },
    SealedTable { table: "memory_status_history", owner: Owner::MemoryOf("memory_id"), columns: &["reason"] },
    SealedTable { table: "memory_access_logs", owner: Owner::Column("user_id"), columns: &["metadata"] },
    SealedTable { table: "memory_jobs", owner: Owner::Column("user_id"), columns: &["request", "result", "error"] },
    SealedTable { table: "feedback_events", owner: Owner::Column("user_id"), columns: &["metadata", "session_id"] },
];

/// Rows of one table, in primary-key order.
pub type RowStream<'a> = Pin<Box<dyn Stream<Item = Result<Value, StoreError>> + Send + 'a>>;

/// A consistent read of every table: one PostgreSQL `REPEATABLE READ`,
/// read-only transaction, or one SQLite read transaction (in WAL mode its
/// snapshot is fixed at the first read, and writers go on meanwhile).
#[derive(Debug)]
pub struct Snapshot {
    txn: DatabaseTransaction,
    kind: DatabaseKind,
}

impl Snapshot {
    /// How the snapshot is taken, for a backup's manifest.
    pub fn describe(&self) -> &'static str {
        match self.kind {
            DatabaseKind::Postgres => "one PostgreSQL REPEATABLE READ, READ ONLY transaction over every table",
            DatabaseKind::Sqlite => "one SQLite read transaction (WAL snapshot) over every table",
        }
    }

    /// Rows in `table`.
    pub async fn count(&self, table: &str) -> Result<u64, StoreError> {
        count(&self.txn, table).await
    }

    /// The rows of `table` in primary-key order, after the first `skip`.
    pub async fn rows(&self, table: &str, skip: u64) -> Result<RowStream<'_>, StoreError> {
        let io = table_io(table)?;
        io.rows(&self.txn, skip).await
    }

    /// Ends the read.
    pub async fn close(self) -> Result<(), StoreError> {
        self.txn.rollback().await?;
        Ok(())
    }
}

/// One transaction that loads rows; each table goes under its own savepoint
/// ([`Loader::table`]), so a failing table is rolled back alone and named,
/// and nothing is committed unless [`Loader::commit`] is reached.
#[derive(Debug)]
pub struct Loader {
    txn: DatabaseTransaction,
}

impl Loader {
    /// Deletes every row of the backed-up and derived tables (children
    /// first), for a restore that replaces what the target holds.
    pub async fn clear(&self) -> Result<u64, StoreError> {
        let backend = self.txn.get_database_backend();
        let mut deleted = 0;
        let derived = DERIVED_TABLES.iter().map(|(t, _)| *t).filter(|t| *t != "seaql_migrations");
        for table in BACKUP_TABLES.iter().rev().copied().chain(derived) {
            let sql = format!("DELETE FROM \"{table}\"");
            deleted += self.txn.execute_raw(Statement::from_string(backend, sql)).await?.rows_affected();
        }
        Ok(deleted)
    }

    /// Deletes the embedded graph's entities that no memory mentions (a
    /// restore that left out an erased user's memories leaves their
    /// entities so), with their edges and relations: rows deleted per table.
    pub async fn prune_unmentioned_entities(&self) -> Result<Vec<(&'static str, u64)>, StoreError> {
        let orphan = "SELECT e.id FROM graph_entities e WHERE NOT EXISTS (SELECT 1 FROM graph_mentions m \
                      WHERE m.org_id = e.org_id AND m.entity_id = e.id)";
        let backend = self.txn.get_database_backend();
        let mut out = Vec::new();
        for (table, sql) in [
            ("graph_edges", format!("DELETE FROM graph_edges WHERE a IN ({orphan}) OR b IN ({orphan})")),
            (
                "graph_relations",
                format!("DELETE FROM graph_relations WHERE subject_id IN ({orphan}) OR object_id IN ({orphan})"),
            ),
            ("graph_entities", format!("DELETE FROM graph_entities WHERE id IN ({orphan})")),
        ] {
            let n = self.txn.execute_raw(Statement::from_string(backend, sql)).await?.rows_affected();
            out.push((table, n));
        }
        Ok(out)
    }

    /// Opens a savepoint for loading `table`.
    pub async fn table(&self, table: &str) -> Result<TableLoad, StoreError> {
        let io = table_io(table)?;
        Ok(TableLoad { savepoint: self.txn.begin().await?, io, rows: 0 })
    }

    /// Commits; on PostgreSQL first recounts `memory_counts` in one
    /// statement and turns its insert trigger back on (see
    /// [`Database::loader`]).
    pub async fn commit(self) -> Result<(), StoreError> {
        if self.txn.get_database_backend() == DbBackend::Postgres {
            self.txn
                .execute_unprepared(
                    "DELETE FROM memory_counts; \
                     INSERT INTO memory_counts (org_id, user_id, state, slot, n) \
                     SELECT org_id, user_id, state, 0, COUNT(*) FROM memories GROUP BY org_id, user_id, state; \
                     ALTER TABLE memories ENABLE TRIGGER memory_counts_insert",
                )
                .await?;
        }
        self.txn.commit().await?;
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), StoreError> {
        self.txn.rollback().await?;
        Ok(())
    }
}

/// The rows of one table being loaded under a savepoint.
#[derive(Debug)]
pub struct TableLoad {
    savepoint: DatabaseTransaction,
    io: &'static dyn TableIo,
    rows: u64,
}

impl TableLoad {
    /// Inserts `rows` (JSON objects as [`Snapshot::rows`] gives them).
    pub async fn insert(&mut self, rows: Vec<Value>) -> Result<u64, StoreError> {
        let n = self.io.insert(&self.savepoint, rows, false).await?;
        self.rows += n;
        Ok(n)
    }

    /// Keeps the table's rows (releases the savepoint); returns how many.
    pub async fn release(self) -> Result<u64, StoreError> {
        self.savepoint.commit().await?;
        Ok(self.rows)
    }

    /// Undoes the table's rows (rolls back to the savepoint).
    pub async fn rollback(self) -> Result<(), StoreError> {
        self.savepoint.rollback().await?;
        Ok(())
    }
}

impl Database {
    /// Starts a consistent read of every table (see [`Snapshot`]).
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let txn = match self.kind() {
            DatabaseKind::Postgres => {
                self.ensure_reads_every_tenant().await?;
                let txn = self
                    .writer()
                    .begin_with_config(Some(IsolationLevel::RepeatableRead), Some(AccessMode::ReadOnly))
                    .await?;
                txn.execute_unprepared("SET LOCAL row_security = off").await?;
                txn
            }
            DatabaseKind::Sqlite => self.reader_conn().begin().await?,
        };
        Ok(Snapshot { txn, kind: self.kind() })
    }

    /// Starts a transaction that loads rows (see [`Loader`]).
    ///
    /// On PostgreSQL the per-row trigger that keeps `memory_counts` is off
    /// for this transaction's inserts (the change is transactional and the
    /// table locked meanwhile) and the counts are rebuilt in one statement
    /// at commit: each insert would otherwise update one of a user's few
    /// counter rows, and within one transaction every update adds a row
    /// version the next must step over, so a load grew quadratically (20,000
    /// updates of 16 rows took 0.39 s, 40,000 took 1.49 s).
    pub async fn loader(&self) -> Result<Loader, StoreError> {
        let txn = self.maintenance_txn().await?;
        if self.kind() == DatabaseKind::Postgres {
            txn.execute_unprepared("ALTER TABLE memories DISABLE TRIGGER memory_counts_insert").await?;
        }
        Ok(Loader { txn })
    }

    /// Inserts one batch of `table` in its own transaction, skipping rows
    /// whose primary key is already there (a resumed copy may send a batch
    /// twice). Returns the rows inserted.
    pub async fn load_batch(&self, table: &str, rows: Vec<Value>) -> Result<u64, StoreError> {
        let io = table_io(table)?;
        let txn = self.maintenance_txn().await?;
        let n = io.insert(&txn, rows, true).await?;
        txn.commit().await?;
        Ok(n)
    }

    /// Rows in `table`, across every tenant.
    pub async fn count_all(&self, table: &str) -> Result<u64, StoreError> {
        table_io(table)?;
        let txn = self.maintenance_txn().await?;
        let n = count(&txn, table).await?;
        txn.commit().await?;
        Ok(n)
    }

    /// The backed-up tables that hold rows, with their counts (empty for a
    /// fresh database).
    pub async fn non_empty_tables(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let txn = self.maintenance_txn().await?;
        let mut found = Vec::new();
        for table in BACKUP_TABLES {
            let n = count(&txn, table).await?;
            if n > 0 {
                found.push(((*table).to_owned(), n));
            }
        }
        txn.commit().await?;
        Ok(found)
    }

    /// The org ids present in `orgs`, across every tenant.
    pub async fn all_orgs(&self) -> Result<Vec<loci_core::OrgId>, StoreError> {
        let txn = self.maintenance_txn().await?;
        let ids: Vec<String> =
            orgs::Entity::find().select_only().column(orgs::Column::Id).into_tuple().all(&txn).await?;
        txn.commit().await?;
        ids.iter().map(|o| loci_core::OrgId::parse(o).map_err(StoreError::corrupt)).collect()
    }

    /// Every wrapped data key: `(org, user, wrapped key)`.
    pub async fn user_keys(&self) -> Result<Vec<(String, uuid::Uuid, String)>, StoreError> {
        let txn = self.maintenance_txn().await?;
        let rows = user_keys::Entity::find().all(&txn).await?;
        txn.commit().await?;
        Ok(rows.into_iter().map(|r| (r.org_id, r.user_id, r.wrapped_key)).collect())
    }

    /// Stores a user's wrapped data key unless one is there; returns the
    /// one stored (a concurrent backup may have made it first).
    pub async fn add_user_key(&self, org: &str, user: uuid::Uuid, wrapped: &str) -> Result<String, StoreError> {
        let txn = self.maintenance_txn().await?;
        let row = user_keys::ActiveModel {
            org_id: sea_orm::ActiveValue::Set(org.to_owned()),
            user_id: sea_orm::ActiveValue::Set(user),
            wrapped_key: sea_orm::ActiveValue::Set(wrapped.to_owned()),
            created_at: sea_orm::ActiveValue::Set(chrono::Utc::now()),
        };
        user_keys::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([user_keys::Column::OrgId, user_keys::Column::UserId]).do_nothing().to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        let stored = user_keys::Entity::find()
            .filter(user_keys::Column::OrgId.eq(org.to_owned()))
            .filter(user_keys::Column::UserId.eq(user))
            .one(&txn)
            .await?
            .ok_or(StoreError::NotFound("user key"))?;
        txn.commit().await?;
        Ok(stored.wrapped_key)
    }

    /// The last applied schema migration.
    pub async fn schema_revision(&self) -> Result<Option<String>, StoreError> {
        Ok(self.migration_status().await?.into_iter().filter(|m| m.applied).map(|m| m.name).next_back())
    }

    /// Every table of the schema with its columns, from the catalogue (tests
    /// check that backups cover them all).
    pub async fn schema_columns(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        schema_columns(self.writer()).await
    }

    /// What reverting the last `steps` migrations would destroy: each table
    /// it drops and each column it drops, with the rows holding data there.
    /// The migrations run inside one transaction (their own transactions
    /// become savepoints), the schema is read, and everything is rolled
    /// back; nothing changes. Counting every tenant's rows needs, on
    /// PostgreSQL, a role that bypasses row-level security.
    pub async fn rows_at_risk(&self, steps: u32) -> Result<Vec<RowsAtRisk>, StoreError> {
        let before = self.schema_columns().await?;
        let txn = self.writer().begin().await?;
        let reverted = loci_migration::Migrator::down(&txn, Some(steps)).await;
        let after = match reverted {
            Ok(()) => schema_columns(&txn).await,
            Err(e) => Err(e.into()),
        };
        txn.rollback().await?;
        let after = after?;
        let mut at_risk = Vec::new();
        let txn = self.maintenance_txn().await?;
        let backend = txn.get_database_backend();
        let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
        for (table, columns) in &before {
            if table == "seaql_migrations" {
                continue;
            }
            let kept = after.iter().find(|(t, _)| t == table).map(|(_, c)| c);
            let targets: Vec<Option<&String>> = match kept {
                None => vec![None],
                Some(kept) => columns.iter().filter(|c| !kept.contains(c)).map(Some).collect(),
            };
            for column in targets {
                let filter = column.map(|c| format!(" WHERE {} IS NOT NULL", quote(c))).unwrap_or_default();
                let sql = format!("SELECT COUNT(*) AS n FROM {}{filter}", quote(table));
                let row = txn.query_one_raw(Statement::from_string(backend, sql)).await?;
                let n = row.map(|r| r.try_get::<i64>("", "n")).transpose()?.unwrap_or(0);
                at_risk.push(RowsAtRisk {
                    table: table.clone(),
                    column: column.cloned(),
                    rows: u64::try_from(n).unwrap_or(0),
                });
            }
        }
        txn.rollback().await?;
        Ok(at_risk)
    }

    /// On PostgreSQL, fails unless the role may read every tenant's rows
    /// (superuser or `BYPASSRLS`), naming the setting to change.
    pub async fn ensure_reads_every_tenant(&self) -> Result<(), StoreError> {
        if self.kind() != DatabaseKind::Postgres {
            return Ok(());
        }
        let row = self
            .writer()
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT current_user::text AS name, (rolsuper OR rolbypassrls) AS bypass \
                 FROM pg_roles WHERE rolname = current_user",
            ))
            .await?
            .ok_or_else(|| StoreError::Config("cannot read the current role".into()))?;
        if row.try_get::<bool>("", "bypass")? {
            return Ok(());
        }
        let name: String = row.try_get("", "name")?;
        Err(StoreError::Config(format!(
            "the role `{name}` is subject to row-level security, so it cannot read or write every tenant; \
             backups, restores and data moves need a role with BYPASSRLS (as pg_dump does): \
             set database.migration_url (or pass --database-url) to such a role"
        )))
    }

    /// A read-write transaction past row-level security (checked first).
    async fn maintenance_txn(&self) -> Result<DatabaseTransaction, StoreError> {
        self.ensure_reads_every_tenant().await?;
        let txn = self.writer().begin().await?;
        if self.kind() == DatabaseKind::Postgres {
            txn.execute_unprepared("SET LOCAL row_security = off").await?;
        }
        Ok(txn)
    }
}

/// A PostgreSQL database created for one check (`loci backup verify`) on the
/// server of `server_url`, whose role needs CREATEDB; dropped by
/// [`ScratchDatabase::drop_now`].
#[derive(Debug)]
pub struct ScratchDatabase {
    server: loci_settings::Secret,
    name: String,
    /// The URL of the new database (same role as `server_url`).
    pub url: loci_settings::Secret,
}

impl ScratchDatabase {
    pub async fn create(server_url: &loci_settings::Secret) -> Result<Self, StoreError> {
        let name = format!("loci_verify_{}", uuid::Uuid::new_v4().simple());
        let conn = sea_orm::Database::connect(server_url.expose()).await?;
        if conn.get_database_backend() != DbBackend::Postgres {
            return Err(StoreError::Config("--scratch-url must be a postgres:// URL".into()));
        }
        conn.execute_unprepared(&format!("CREATE DATABASE {name}")).await?;
        conn.close().await?;
        let mut url =
            url::Url::parse(server_url.expose()).map_err(|e| StoreError::Config(format!("--scratch-url: {e}")))?;
        url.set_path(&format!("/{name}"));
        Ok(Self { server: server_url.clone(), name, url: loci_settings::Secret::new(url.to_string()) })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database (closing any session still on it).
    pub async fn drop_now(self) -> Result<(), StoreError> {
        let conn = sea_orm::Database::connect(self.server.expose()).await?;
        conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).await?;
        conn.close().await?;
        Ok(())
    }
}

/// A table (or one column of it) that a `down` migration drops, and how many
/// rows hold data there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowsAtRisk {
    pub table: String,
    /// `None` when the whole table goes.
    pub column: Option<String>,
    pub rows: u64,
}

async fn schema_columns(conn: &impl ConnectionTrait) -> Result<Vec<(String, Vec<String>)>, StoreError> {
    let (backend, sql) = match conn.get_database_backend() {
        DbBackend::Postgres => (
            DbBackend::Postgres,
            "SELECT table_name::text AS tbl, column_name::text AS col FROM information_schema.columns \
             WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position",
        ),
        _ => (
            DbBackend::Sqlite,
            "SELECT m.name AS tbl, p.name AS col FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid",
        ),
    };
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for row in conn.query_all_raw(Statement::from_string(backend, sql)).await? {
        let (table, column): (String, String) = (row.try_get("", "tbl")?, row.try_get("", "col")?);
        match out.last_mut() {
            Some((t, columns)) if *t == table => columns.push(column),
            _ => out.push((table, vec![column])),
        }
    }
    Ok(out)
}

async fn count(txn: &DatabaseTransaction, table: &str) -> Result<u64, StoreError> {
    table_io(table)?;
    let backend = txn.get_database_backend();
    let row =
        txn.query_one_raw(Statement::from_string(backend, format!("SELECT COUNT(*) AS n FROM \"{table}\""))).await?;
    let n = row.map(|r| r.try_get::<i64>("", "n")).transpose()?.unwrap_or(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Export and import of one table, whatever its entity.
#[async_trait::async_trait]
trait TableIo: Send + Sync + std::fmt::Debug {
    async fn rows<'a>(&self, txn: &'a DatabaseTransaction, skip: u64) -> Result<RowStream<'a>, StoreError>;
    async fn insert(&self, txn: &DatabaseTransaction, rows: Vec<Value>, skip_existing: bool)
    -> Result<u64, StoreError>;
    /// The table's column names, as the entity knows them.
    fn columns(&self) -> Vec<&'static str>;
}

#[derive(Debug)]
struct Table<E>(PhantomData<fn() -> E>);

/// Bind parameters per INSERT statement: below SQLite's limit of 32,766 and
/// PostgreSQL's of 65,535.
const MAX_PARAMS: usize = 30_000;

#[async_trait::async_trait]
impl<E> TableIo for Table<E>
where
    E: EntityTrait + Sync,
    E::Model: serde::Serialize + serde::de::DeserializeOwned + IntoActiveModel<E::ActiveModel> + Send + Sync,
    E::ActiveModel: Send,
    E::Column: Sync,
{
    async fn rows<'a>(&self, txn: &'a DatabaseTransaction, skip: u64) -> Result<RowStream<'a>, StoreError> {
        let postgres = txn.get_database_backend() == DbBackend::Postgres;
        let mut query = E::find();
        for key in E::PrimaryKey::iter() {
            let column = key.into_column();
            let text = matches!(column.def().get_column_type(), ColumnType::String(_) | ColumnType::Text);
            query = if postgres && text {
                query.order_by(Expr::cust(format!("\"{}\" COLLATE \"C\"", column.as_str())), Order::Asc)
            } else {
                query.order_by(column, Order::Asc)
            };
        }
        if skip > 0 {
            // SQLite accepts OFFSET only after a LIMIT.
            query = query.limit(i64::MAX as u64).offset(skip);
        }
        let stream = query.stream(txn).await?;
        let timestamps = timestamp_columns::<E>();
        Ok(Box::pin(stream.map_err(StoreError::from).and_then(move |model| {
            let row = serde_json::to_value(&model)
                .map_err(|e| StoreError::corrupt(format!("{}: {e}", E::default().table_name())))
                .map(|row| normalise_timestamps(row, &timestamps));
            futures::future::ready(row)
        })))
    }

    async fn insert(
        &self,
        txn: &DatabaseTransaction,
        rows: Vec<Value>,
        skip_existing: bool,
    ) -> Result<u64, StoreError> {
        let table = E::default().table_name();
        let chunk = (MAX_PARAMS / E::Column::iter().count().max(1)).max(1);
        let mut inserted = 0;
        let mut models = Vec::with_capacity(rows.len());
        for (i, row) in rows.into_iter().enumerate() {
            let model: E::Model = serde_json::from_value(row)
                .map_err(|e| StoreError::corrupt(format!("{table}, row {} of the batch: {e}", i + 1)))?;
            models.push(model.into_active_model());
        }
        let mut models = models.into_iter().peekable();
        while models.peek().is_some() {
            let batch: Vec<E::ActiveModel> = models.by_ref().take(chunk).collect();
            let mut insert = E::insert_many(batch);
            if skip_existing {
                let keys: Vec<E::Column> = E::PrimaryKey::iter().map(PrimaryKeyToColumn::into_column).collect();
                insert = insert.on_conflict(OnConflict::columns(keys).do_nothing().to_owned());
            }
            inserted += insert.exec_without_returning(txn).await?;
        }
        Ok(inserted)
    }

    fn columns(&self) -> Vec<&'static str> {
        E::Column::iter().map(|c| c.as_str()).collect()
    }
}

fn timestamp_columns<E: EntityTrait>() -> Vec<&'static str> {
    E::Column::iter()
        .filter(|c| {
            matches!(
                c.def().get_column_type(),
                ColumnType::TimestampWithTimeZone | ColumnType::Timestamp | ColumnType::DateTime
            )
        })
        .map(|c| c.as_str())
        .collect()
}

/// Timestamps to microseconds, the precision both engines keep.
fn normalise_timestamps(mut row: Value, columns: &[&str]) -> Value {
    if let Value::Object(map) = &mut row {
        for column in columns {
            if let Some(Value::String(text)) = map.get_mut(*column)
                && let Ok(t) = chrono::DateTime::parse_from_rfc3339(text)
            {
                *text = t.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            }
        }
    }
    row
}

macro_rules! tables {
    ($($module:ident),* $(,)?) => {
        /// The tables a backup holds, parents before children: the order a
        /// restore inserts them in (foreign keys hold at every step).
        pub const BACKUP_TABLES: &[&str] = &[$(stringify!($module)),*];

        /// The export and import of `table` (a backed-up table only).
        fn table_io(table: &str) -> Result<&'static dyn TableIo, StoreError> {
            match table {
                $(stringify!($module) => Ok(&Table::<$module::Entity>(PhantomData)),)*
                // Never in an archive, but moved with the data (migrate-data).
                "user_keys" => Ok(&Table::<user_keys::Entity>(PhantomData)),
                other => Err(StoreError::Config(format!("`{other}` is not a table a backup holds"))),
            }
        }
    };
}

tables!(
    orgs,
    users,
    apps,
    categories,
    memories,
    memory_categories,
    memory_status_history,
    memory_access_logs,
    graph_entities,
    graph_mentions,
    graph_edges,
    graph_relations,
    graph_aliases,
    memory_jobs,
    job_queue,
    feedback_events,
    experiments,
    experiment_history,
    experiment_assignments,
    gdpr_audit_logs,
    code_repos,
    code_files,
    code_symbols,
    code_calls,
);

/// The column names of a backed-up table as its entity knows them (tests
/// compare them with the schema, so a new column is never left out).
pub fn entity_columns(table: &str) -> Result<Vec<&'static str>, StoreError> {
    Ok(table_io(table)?.columns())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_backed_up_table_has_an_entity() {
        for table in BACKUP_TABLES {
            assert!(table_io(table).is_ok(), "{table}");
        }
        assert!(table_io("outbox").is_err());
    }

    #[test]
    fn timestamps_keep_microseconds_in_utc() {
        let row = json!({"at": "2026-12-07T12:00:00.123456789Z", "other": "2026-12-07T12:00:00Z", "n": 1});
        let out = normalise_timestamps(row, &["at", "missing"]);
        assert_eq!(out, json!({"at": "2026-12-07T12:00:00.123456Z", "other": "2026-12-07T12:00:00Z", "n": 1}));
        let shifted = normalise_timestamps(json!({"at": "2026-12-07T13:00:00+01:00"}), &["at"]);
        assert_eq!(shifted["at"], "2026-12-07T12:00:00.000000Z");
    }
}
