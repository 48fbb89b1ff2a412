//! The embedded graph index: entities of an org, which memories mention
//! them, and co-mention edges between entities. Tenant tables like the core
//! ones: keyed by `org_id`, with row-level security forced on PostgreSQL.
//!
//! Mentions reference memories by id without a foreign key on purpose: the
//! index follows the outbox, so a memory that disappears is removed from the
//! graph by the indexer (which also decrements the edges), not by a cascade
//! that would leave the edge weights stale.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::GRAPH_TENANT_TABLES;
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
    OrgId,
    Name,
    DisplayName,
    Kind,
    CreatedAt,
}

#[derive(DeriveIden)]
enum GraphMentions {
    Table,
    OrgId,
    MemoryId,
    EntityId,
    SourceKind,
}

#[derive(DeriveIden)]
enum GraphEdges {
    Table,
    OrgId,
    A,
    B,
    Weight,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(GraphEntities::Table)
                    .col(pk_uuid(GraphEntities::Id))
                    .col(org_col(GraphEntities::OrgId))
                    // Normalised (lower-case) name, unique within the org.
                    .col(string_len(GraphEntities::Name, 512))
                    .col(string_len(GraphEntities::DisplayName, 512))
                    // person | identifier | term | structured
                    .col(string_len(GraphEntities::Kind, 16))
                    .col(ColumnDef::new(GraphEntities::CreatedAt).timestamp_with_time_zone().not_null())
                    .foreign_key(&mut fk(
                        "fk_graph_entities_org",
                        (GraphEntities::Table, GraphEntities::OrgId),
                        (Orgs::Table, Orgs::Id),
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                index("ux_graph_entities_org_name", GraphEntities::Table, &["org_id", "name"]).unique().take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(GraphMentions::Table)
                    .col(org_col(GraphMentions::OrgId))
                    .col(uuid(GraphMentions::MemoryId))
                    .col(uuid(GraphMentions::EntityId))
                    // The extraction rule that found it: structured | speaker | name | identifier | term
                    .col(string_len(GraphMentions::SourceKind, 16))
                    .primary_key(Index::create().col(GraphMentions::MemoryId).col(GraphMentions::EntityId))
                    .foreign_key(&mut fk(
                        "fk_graph_mentions_entity",
                        (GraphMentions::Table, GraphMentions::EntityId),
                        (GraphEntities::Table, GraphEntities::Id),
                    ))
                    .take(),
            )
            .await?;
        // Entity -> memories, read without touching the rows.
        manager
            .create_index(index(
                "ix_graph_mentions_org_entity_memory",
                GraphMentions::Table,
                &["org_id", "entity_id", "memory_id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(GraphEdges::Table)
                    .col(org_col(GraphEdges::OrgId))
                    .col(uuid(GraphEdges::A))
                    .col(uuid(GraphEdges::B))
                    .col(integer(GraphEdges::Weight))
                    .primary_key(Index::create().col(GraphEdges::OrgId).col(GraphEdges::A).col(GraphEdges::B))
                    .foreign_key(&mut fk(
                        "fk_graph_edges_a",
                        (GraphEdges::Table, GraphEdges::A),
                        (GraphEntities::Table, GraphEntities::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_graph_edges_b",
                        (GraphEdges::Table, GraphEdges::B),
                        (GraphEntities::Table, GraphEntities::Id),
                    ))
                    .take(),
            )
            .await?;
        // Edges are stored once with a < b; this finds them from the b side.
        manager.create_index(index("ix_graph_edges_org_b_a", GraphEdges::Table, &["org_id", "b", "a"])).await?;

        for table in GRAPH_TENANT_TABLES {
            enable_tenant_rls(manager, table, "org_id").await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["graph_edges", "graph_mentions", "graph_entities"] {
            manager.drop_table(Table::drop().table(Alias::new(table)).if_exists().take()).await?;
        }
        Ok(())
    }
}
