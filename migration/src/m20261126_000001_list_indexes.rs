//! Covering index for category-filtered listings: the link table is read as
//! (org, category) -> memory ids without touching its rows.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const OLD: &str = "ix_memory_categories_org_category";
const NEW: &str = "ix_memory_categories_org_category_memory";

fn table() -> Alias {
    Alias::new("memory_categories")
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(NEW)
                    .table(table())
                    .col(Alias::new("org_id"))
                    .col(Alias::new("category_id"))
                    .col(Alias::new("memory_id"))
                    .take(),
            )
            .await?;
        // The new index has the old one as its prefix.
        manager.drop_index(Index::drop().name(OLD).table(table()).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(OLD)
                    .table(table())
                    .col(Alias::new("org_id"))
                    .col(Alias::new("category_id"))
                    .take(),
            )
            .await?;
        manager.drop_index(Index::drop().name(NEW).table(table()).to_owned()).await
    }
}
