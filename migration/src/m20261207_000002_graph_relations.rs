//! Typed relations and merged entity names.
//!
//! `graph_relations`: what each memory states about two of its entities
//! (`subject predicate object`, e.g. `alice works_on payments`), replaced with
//! the memory's mentions by the indexer. When a relation holds is read from
//! the memories that state it.
//!
//! `graph_aliases`: after `alias` was merged into `entity_name`, every later
//! mention of `alias` lands on `entity_name`, and a query for `alias` answers
//! with `entity_name`. The rows are the merge history as well (who, when, how
//! many memories moved); a merge of a name into its entity again finds its
//! row and changes nothing.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::m20261125_000001_core::{enable_tenant_rls, fk, index, org_col};

#[derive(DeriveMigrationName, Debug)]
pub struct Migration;

#[derive(DeriveIden)]
enum Orgs {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum GraphEntities {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum GraphRelations {
    Table,
    OrgId,
    MemoryId,
    SubjectId,
    Predicate,
    ObjectId,
}

#[derive(DeriveIden)]
enum GraphAliases {
    Table,
    OrgId,
    Alias,
    EntityName,
    MergedBy,
    MergedAt,
    MemoriesMoved,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(GraphRelations::Table)
                    .col(org_col(GraphRelations::OrgId))
                    .col(uuid(GraphRelations::MemoryId))
                    .col(uuid(GraphRelations::SubjectId))
                    // works_on | works_at | ... (loci_index::relations::Predicate)
                    .col(string_len(GraphRelations::Predicate, 32))
                    .col(uuid(GraphRelations::ObjectId))
                    .primary_key(
                        Index::create()
                            .col(GraphRelations::MemoryId)
                            .col(GraphRelations::SubjectId)
                            .col(GraphRelations::Predicate)
                            .col(GraphRelations::ObjectId),
                    )
                    .foreign_key(&mut fk(
                        "fk_graph_relations_subject",
                        (GraphRelations::Table, GraphRelations::SubjectId),
                        (GraphEntities::Table, GraphEntities::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_graph_relations_object",
                        (GraphRelations::Table, GraphRelations::ObjectId),
                        (GraphEntities::Table, GraphEntities::Id),
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(index("ix_graph_relations_org_subject", GraphRelations::Table, &["org_id", "subject_id"]))
            .await?;
        manager
            .create_index(index("ix_graph_relations_org_object", GraphRelations::Table, &["org_id", "object_id"]))
            .await?;
        enable_tenant_rls(manager, "graph_relations", "org_id").await?;

        manager
            .create_table(
                Table::create()
                    .table(GraphAliases::Table)
                    .col(org_col(GraphAliases::OrgId))
                    // Normalised names, as `graph_entities.name`.
                    .col(string_len(GraphAliases::Alias, 512))
                    .col(string_len(GraphAliases::EntityName, 512))
                    .col(uuid(GraphAliases::MergedBy))
                    .col(ColumnDef::new(GraphAliases::MergedAt).timestamp_with_time_zone().not_null())
                    .col(big_integer(GraphAliases::MemoriesMoved))
                    .primary_key(Index::create().col(GraphAliases::OrgId).col(GraphAliases::Alias))
                    .foreign_key(&mut fk(
                        "fk_graph_aliases_org",
                        (GraphAliases::Table, GraphAliases::OrgId),
                        (Orgs::Table, Orgs::Id),
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(index("ix_graph_aliases_org_entity", GraphAliases::Table, &["org_id", "entity_name"]))
            .await?;
        enable_tenant_rls(manager, "graph_aliases", "org_id").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(GraphAliases::Table).if_exists().take()).await?;
        manager.drop_table(Table::drop().table(GraphRelations::Table).if_exists().take()).await
    }
}
