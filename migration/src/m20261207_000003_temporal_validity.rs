//! When a memory stopped being current: `valid_to` (set when a newer memory
//! superseded it or its owner retracted it) and `superseded_by` (the memory
//! that replaced it). A superseded or retracted memory keeps its row,
//! archived, so default lists and searches (active memories) leave it out
//! with no change to their indexes, and `as_of` reads find it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName, Debug)]
pub struct Migration;

#[derive(DeriveIden)]
enum Memories {
    Table,
    ValidTo,
    SupersededBy,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Memories::Table)
                    .add_column(ColumnDef::new(Memories::ValidTo).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Memories::Table)
                    .add_column(ColumnDef::new(Memories::SupersededBy).uuid().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Memories::Table).drop_column(Memories::SupersededBy).to_owned())
            .await?;
        manager.alter_table(Table::alter().table(Memories::Table).drop_column(Memories::ValidTo).to_owned()).await
    }
}
