//! One schema history for PostgreSQL and SQLite (sea-orm-migration).
//!
//! Architecture invariant: a migration means the same on both engines. Engine
//! specific statements are limited to what only one engine has (PostgreSQL
//! row-level security) and are guarded by the backend check.

pub use sea_orm_migration::MigrationStatus;
pub use sea_orm_migration::prelude::*;

mod m20261125_000001_core;
mod m20261126_000001_list_indexes;

/// Tables that hold tenant data, keyed by `org_id` (`id` for `orgs` itself);
/// on PostgreSQL each has row-level security forced on it.
pub const TENANT_TABLES: &[&str] = &[
    "orgs",
    "users",
    "apps",
    "categories",
    "memories",
    "memory_categories",
    "memory_status_history",
    "memory_access_logs",
];

#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261125_000001_core::Migration), Box::new(m20261126_000001_list_indexes::Migration)]
    }
}
