//! An index that serves a user's memory list in its default order (newest
//! first, id as tie-break): the first page reads the index in order and stops
//! after a page, instead of sorting all of the user's memories. The state
//! is in the index too, so filtered-out states are skipped without reading
//! rows, and counts by user and state read only the index.
//!
//! It replaces `ix_memories_org_user_state_created`, which has `state` before
//! `created_at` (with `state IN (...)` it cannot give the order): while both
//! existed, SQLite chose between them by its build and its statistics, and
//! sometimes sorted the user's 100,000 memories for one page.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const NAME: &str = "ix_memories_org_user_created_id";
const OLD: &str = "ix_memories_org_user_state_created";

fn table() -> Alias {
    Alias::new("memories")
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(NAME)
                    .table(table())
                    .col(Alias::new("org_id"))
                    .col(Alias::new("user_id"))
                    .col(Alias::new("created_at"))
                    .col(Alias::new("id"))
                    .col(Alias::new("state"))
                    .take(),
            )
            .await?;
        manager.drop_index(Index::drop().name(OLD).table(table()).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(OLD)
                    .table(table())
                    .col(Alias::new("org_id"))
                    .col(Alias::new("user_id"))
                    .col(Alias::new("state"))
                    .col(Alias::new("created_at"))
                    .take(),
            )
            .await?;
        manager.drop_index(Index::drop().name(NAME).table(table()).to_owned()).await
    }
}
