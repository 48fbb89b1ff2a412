//! A category's page read from its links alone: each `memory_categories` row
//! carries a copy of its memory's owner, state, access entity and creation
//! time, kept by triggers, with two indexes in list order.
//!
//! Before, the first page of one category (5,000 of a user's 100,000
//! memories) looked up each of the category's links in `memories` to check
//! owner and state, to count them and to find the newest twenty: about 1 s
//! per request under load. Now the caller's own arm is one range of
//! `(org_id, category_id, user_id, created_at, memory_id, state)` (its count
//! never leaves the index) and the shared arm one range of
//! `(org_id, category_id, access_entity, created_at, memory_id)` per grant.
//!
//! The copies are filled when a link is inserted (from its memory, which
//! exists: the foreign key says so) and follow every later change of the
//! memory's owner, state, access entity or creation time, in the writer's
//! own transaction. They are nullable only so SQLite can fill them right
//! after the insert.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum MemoryCategories {
    Table,
    UserId,
    State,
    AccessEntity,
    CreatedAt,
}

const OWN_INDEX: &str = "ix_memory_categories_own_order";
const SHARED_INDEX: &str = "ix_memory_categories_shared_order";

const SQLITE_TRIGGERS: &str = r#"
CREATE TRIGGER memory_categories_copy AFTER INSERT ON memory_categories BEGIN
  UPDATE memory_categories
  SET user_id = m.user_id, state = m.state, access_entity = m.access_entity, created_at = m.created_at
  FROM memories AS m
  WHERE m.id = NEW.memory_id
    AND memory_categories.memory_id = NEW.memory_id AND memory_categories.category_id = NEW.category_id;
END;
CREATE TRIGGER memory_categories_follow AFTER UPDATE OF user_id, state, access_entity, created_at ON memories
WHEN OLD.user_id IS NOT NEW.user_id OR OLD.state IS NOT NEW.state
  OR OLD.access_entity IS NOT NEW.access_entity OR OLD.created_at IS NOT NEW.created_at BEGIN
  UPDATE memory_categories
  SET user_id = NEW.user_id, state = NEW.state, access_entity = NEW.access_entity, created_at = NEW.created_at
  WHERE memory_id = NEW.id;
END;
"#;

const POSTGRES_TRIGGERS: &str = r#"
CREATE OR REPLACE FUNCTION loci_memory_categories_copy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  SELECT m.user_id, m.state, m.access_entity, m.created_at
  INTO NEW.user_id, NEW.state, NEW.access_entity, NEW.created_at
  FROM memories AS m WHERE m.id = NEW.memory_id;
  RETURN NEW;
END
$$;
CREATE OR REPLACE FUNCTION loci_memory_categories_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE memory_categories
  SET user_id = NEW.user_id, state = NEW.state, access_entity = NEW.access_entity, created_at = NEW.created_at
  WHERE memory_id = NEW.id;
  RETURN NULL;
END
$$;
CREATE TRIGGER memory_categories_copy BEFORE INSERT ON memory_categories
  FOR EACH ROW EXECUTE FUNCTION loci_memory_categories_copy();
CREATE TRIGGER memory_categories_follow AFTER UPDATE OF user_id, state, access_entity, created_at ON memories
  FOR EACH ROW WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id OR OLD.state IS DISTINCT FROM NEW.state
                     OR OLD.access_entity IS DISTINCT FROM NEW.access_entity
                     OR OLD.created_at IS DISTINCT FROM NEW.created_at)
  EXECUTE FUNCTION loci_memory_categories_follow();
"#;

/// The copies for links stored before this migration. On PostgreSQL the
/// owner reads past the forced policies for this one statement.
const BACKFILL: &str = "UPDATE memory_categories \
     SET user_id = m.user_id, state = m.state, access_entity = m.access_entity, created_at = m.created_at \
     FROM memories AS m WHERE m.id = memory_categories.memory_id";

fn index(name: &str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut stmt = Index::create().name(name).table(MemoryCategories::Table).take();
    for col in cols {
        stmt.col(Alias::new(*col));
    }
    stmt
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = [
            ColumnDef::new(MemoryCategories::UserId).uuid().null().take(),
            ColumnDef::new(MemoryCategories::State).string_len(16).null().take(),
            ColumnDef::new(MemoryCategories::AccessEntity).string_len(300).null().take(),
            ColumnDef::new(MemoryCategories::CreatedAt).timestamp_with_time_zone().null().take(),
        ];
        // SQLite adds one column per ALTER TABLE.
        for mut column in columns {
            manager
                .alter_table(Table::alter().table(MemoryCategories::Table).add_column(&mut column).to_owned())
                .await?;
        }
        let conn = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                for table in ["memories", "memory_categories"] {
                    conn.execute_unprepared(&format!("ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")).await?;
                }
                conn.execute_unprepared(BACKFILL).await?;
                for table in ["memories", "memory_categories"] {
                    conn.execute_unprepared(&format!("ALTER TABLE {table} FORCE ROW LEVEL SECURITY")).await?;
                }
                conn.execute_unprepared(POSTGRES_TRIGGERS).await?;
            }
            _ => {
                conn.execute_unprepared(BACKFILL).await?;
                conn.execute_unprepared(SQLITE_TRIGGERS).await?;
            }
        }
        manager
            .create_index(index(OWN_INDEX, &["org_id", "category_id", "user_id", "created_at", "memory_id", "state"]))
            .await?;
        manager
            .create_index(index(SHARED_INDEX, &["org_id", "category_id", "access_entity", "created_at", "memory_id"]))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        for name in [OWN_INDEX, SHARED_INDEX] {
            manager.drop_index(Index::drop().name(name).table(MemoryCategories::Table).to_owned()).await?;
        }
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                conn.execute_unprepared("DROP TRIGGER IF EXISTS memory_categories_copy ON memory_categories").await?;
                conn.execute_unprepared("DROP TRIGGER IF EXISTS memory_categories_follow ON memories").await?;
                conn.execute_unprepared("DROP FUNCTION IF EXISTS loci_memory_categories_copy()").await?;
                conn.execute_unprepared("DROP FUNCTION IF EXISTS loci_memory_categories_follow()").await?;
            }
            _ => {
                conn.execute_unprepared("DROP TRIGGER IF EXISTS memory_categories_copy").await?;
                conn.execute_unprepared("DROP TRIGGER IF EXISTS memory_categories_follow").await?;
            }
        }
        for column in [
            MemoryCategories::UserId,
            MemoryCategories::State,
            MemoryCategories::AccessEntity,
            MemoryCategories::CreatedAt,
        ] {
            manager.alter_table(Table::alter().table(MemoryCategories::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
