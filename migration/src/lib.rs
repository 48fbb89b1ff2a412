//! One schema history for PostgreSQL and SQLite (sea-orm-migration).
//!
//! Architecture invariant: a migration means the same on both engines. Engine
//! specific statements are limited to what only one engine has (PostgreSQL
//! row-level security) and are guarded by the backend check.

pub use sea_orm_migration::MigrationStatus;
pub use sea_orm_migration::prelude::*;

mod m20261125_000001_core;
mod m20261126_000001_list_indexes;
mod m20261126_000002_graph;
mod m20261206_000001_list_order_index;
mod m20261206_000002_memory_counts;
mod m20261207_000001_category_links;
mod m20261207_000002_graph_relations;
mod m20261207_000003_temporal_validity;
mod m20261207_000004_infer_jobs;
mod m20261207_000005_learning;
mod m20261207_000006_gdpr;
mod m20261208_000001_code;

/// Tables that hold tenant data, keyed by `org_id` (`id` for `orgs` itself);
/// on PostgreSQL each has row-level security forced on it (by the migration
/// that creates it: [`CORE_TENANT_TABLES`], then [`GRAPH_TENANT_TABLES`],
/// then `memory_counts`, then `graph_relations` and `graph_aliases`, then
/// `memory_jobs`, then `feedback_events` and the experiments', then
/// `gdpr_audit_logs` and `user_keys`, then the code tables).
pub const TENANT_TABLES: &[&str] = &[
    "orgs",
    "users",
    "apps",
    "categories",
    "memories",
    "memory_categories",
    "memory_status_history",
    "memory_access_logs",
    "graph_entities",
    "graph_mentions",
    "graph_edges",
    "memory_counts",
    "graph_relations",
    "graph_aliases",
    "memory_jobs",
    "feedback_events",
    "experiments",
    "experiment_history",
    "experiment_assignments",
    "gdpr_audit_logs",
    "user_keys",
    "code_repos",
    "code_files",
    "code_symbols",
    "code_calls",
];

/// The tenant tables of the core schema (m20261125_000001_core).
pub(crate) const CORE_TENANT_TABLES: &[&str] = TENANT_TABLES.split_at(8).0;

/// The tenant tables of the graph index (m20261126_000002_graph).
pub(crate) const GRAPH_TENANT_TABLES: &[&str] = TENANT_TABLES.split_at(8).1.split_at(3).0;

#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_core::Migration),
            Box::new(m20261126_000001_list_indexes::Migration),
            Box::new(m20261126_000002_graph::Migration),
            Box::new(m20261206_000001_list_order_index::Migration),
            Box::new(m20261206_000002_memory_counts::Migration),
            Box::new(m20261207_000001_category_links::Migration),
            Box::new(m20261207_000002_graph_relations::Migration),
            Box::new(m20261207_000003_temporal_validity::Migration),
            Box::new(m20261207_000004_infer_jobs::Migration),
            Box::new(m20261207_000005_learning::Migration),
            Box::new(m20261207_000006_gdpr::Migration),
            Box::new(m20261208_000001_code::Migration),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_tables_split_into_core_and_graph() {
        assert_eq!(CORE_TENANT_TABLES.last(), Some(&"memory_access_logs"));
        assert_eq!(GRAPH_TENANT_TABLES, ["graph_entities", "graph_mentions", "graph_edges"]);
        assert!(TENANT_TABLES.ends_with(m20261208_000001_code::CODE_TENANT_TABLES));
    }
}
