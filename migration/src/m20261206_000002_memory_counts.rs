//! Exact memory counts per (org, user, state), kept by triggers, so a list's
//! `total` does not count 100,000 index entries on every request.
//!
//! `memory_counts` holds signed deltas in a few slots per key: on PostgreSQL
//! each change adds to a random one of [`SLOTS`] rows, so concurrent writers
//! of one user rarely wait for the same row lock (SQLite has one writer and
//! uses slot 0). The count of a key is the sum of its slots. Triggers keep it
//! exact on every path that changes `memories` (inserts, state changes,
//! owner changes, deletes and cascades), in the writer's own transaction.
//!
//! The trigger syntax differs per engine; the meaning is the same.
//!
//! It also gives the list's second arm (others' memories shared with one of
//! the caller's grants, usually just `user:<subject>`) its order: the
//! `(org_id, access_entity)` index becomes `(org_id, access_entity,
//! created_at, id)`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::m20261125_000001_core::{enable_tenant_rls, org_col};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Counter rows per (org, user, state) on PostgreSQL.
const SLOTS: i32 = 16;

#[derive(DeriveIden)]
enum MemoryCounts {
    Table,
    OrgId,
    UserId,
    State,
    Slot,
    N,
}

const SQLITE_TRIGGERS: &str = r#"
CREATE TRIGGER memory_counts_insert AFTER INSERT ON memories BEGIN
  INSERT INTO memory_counts (org_id, user_id, state, slot, n) VALUES (NEW.org_id, NEW.user_id, NEW.state, 0, 1)
  ON CONFLICT (org_id, user_id, state, slot) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER memory_counts_delete AFTER DELETE ON memories BEGIN
  INSERT INTO memory_counts (org_id, user_id, state, slot, n) VALUES (OLD.org_id, OLD.user_id, OLD.state, 0, -1)
  ON CONFLICT (org_id, user_id, state, slot) DO UPDATE SET n = n - 1;
END;
CREATE TRIGGER memory_counts_update AFTER UPDATE OF org_id, user_id, state ON memories
WHEN OLD.state IS NOT NEW.state OR OLD.user_id IS NOT NEW.user_id OR OLD.org_id IS NOT NEW.org_id BEGIN
  INSERT INTO memory_counts (org_id, user_id, state, slot, n) VALUES (OLD.org_id, OLD.user_id, OLD.state, 0, -1)
  ON CONFLICT (org_id, user_id, state, slot) DO UPDATE SET n = n - 1;
  INSERT INTO memory_counts (org_id, user_id, state, slot, n) VALUES (NEW.org_id, NEW.user_id, NEW.state, 0, 1)
  ON CONFLICT (org_id, user_id, state, slot) DO UPDATE SET n = n + 1;
END;
"#;

fn postgres_triggers() -> String {
    format!(
        r#"
CREATE OR REPLACE FUNCTION loci_memory_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    INSERT INTO memory_counts (org_id, user_id, state, slot, n)
    VALUES (OLD.org_id, OLD.user_id, OLD.state, floor(random() * {SLOTS})::int, -1)
    ON CONFLICT (org_id, user_id, state, slot) DO UPDATE SET n = memory_counts.n - 1;
  END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN
    INSERT INTO memory_counts (org_id, user_id, state, slot, n)
    VALUES (NEW.org_id, NEW.user_id, NEW.state, floor(random() * {SLOTS})::int, 1)
    ON CONFLICT (org_id, user_id, state, slot) DO UPDATE SET n = memory_counts.n + 1;
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER memory_counts_insert AFTER INSERT ON memories
  FOR EACH ROW EXECUTE FUNCTION loci_memory_counts();
CREATE TRIGGER memory_counts_delete AFTER DELETE ON memories
  FOR EACH ROW EXECUTE FUNCTION loci_memory_counts();
CREATE TRIGGER memory_counts_update AFTER UPDATE OF org_id, user_id, state ON memories
  FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.user_id IS DISTINCT FROM NEW.user_id
                     OR OLD.org_id IS DISTINCT FROM NEW.org_id)
  EXECUTE FUNCTION loci_memory_counts();
"#
    )
}

/// Counts of the memories already stored. On PostgreSQL the owner reads
/// `memories` past its forced policy for this one statement (the migration
/// runs as the owner; RLS goes back on before the transaction ends).
const BACKFILL: &str = "INSERT INTO memory_counts (org_id, user_id, state, slot, n) \
     SELECT org_id, user_id, state, 0, COUNT(*) FROM memories GROUP BY org_id, user_id, state";

const SHARED_INDEX: &str = "ix_memories_org_access_entity_created";
const OLD_SHARED_INDEX: &str = "ix_memories_org_access_entity";

fn shared_index(name: &str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut stmt = Index::create().name(name).table(Alias::new("memories")).take();
    for col in cols {
        stmt.col(Alias::new(*col));
    }
    stmt
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_index(shared_index(SHARED_INDEX, &["org_id", "access_entity", "created_at", "id"])).await?;
        manager.drop_index(Index::drop().name(OLD_SHARED_INDEX).table(Alias::new("memories")).to_owned()).await?;
        manager
            .create_table(
                Table::create()
                    .table(MemoryCounts::Table)
                    .col(org_col(MemoryCounts::OrgId))
                    .col(ColumnDef::new(MemoryCounts::UserId).uuid().not_null())
                    .col(ColumnDef::new(MemoryCounts::State).string_len(16).not_null())
                    .col(ColumnDef::new(MemoryCounts::Slot).integer().not_null())
                    .col(ColumnDef::new(MemoryCounts::N).big_integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(MemoryCounts::OrgId)
                            .col(MemoryCounts::UserId)
                            .col(MemoryCounts::State)
                            .col(MemoryCounts::Slot),
                    )
                    .take(),
            )
            .await?;
        let conn = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                conn.execute_unprepared("ALTER TABLE memories NO FORCE ROW LEVEL SECURITY").await?;
                conn.execute_unprepared(BACKFILL).await?;
                conn.execute_unprepared("ALTER TABLE memories FORCE ROW LEVEL SECURITY").await?;
                conn.execute_unprepared(&postgres_triggers()).await?;
                enable_tenant_rls(manager, "memory_counts", "org_id").await?;
            }
            _ => {
                conn.execute_unprepared(BACKFILL).await?;
                conn.execute_unprepared(SQLITE_TRIGGERS).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_index(shared_index(OLD_SHARED_INDEX, &["org_id", "access_entity"])).await?;
        manager.drop_index(Index::drop().name(SHARED_INDEX).table(Alias::new("memories")).to_owned()).await?;
        let conn = manager.get_connection();
        for trigger in ["memory_counts_insert", "memory_counts_delete", "memory_counts_update"] {
            let sql = match manager.get_database_backend() {
                DbBackend::Postgres => format!("DROP TRIGGER IF EXISTS {trigger} ON memories"),
                _ => format!("DROP TRIGGER IF EXISTS {trigger}"),
            };
            conn.execute_unprepared(&sql).await?;
        }
        if manager.get_database_backend() == DbBackend::Postgres {
            conn.execute_unprepared("DROP FUNCTION IF EXISTS loci_memory_counts()").await?;
        }
        manager.drop_table(Table::drop().table(MemoryCounts::Table).to_owned()).await
    }
}
