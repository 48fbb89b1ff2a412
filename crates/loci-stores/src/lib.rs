//! Persistence for Loci: the relational store (sea-orm over PostgreSQL or
//! SQLite), Valkey (fred), and the embedded graph index, which lives in the
//! relational store's tables.
//!
//! Architecture invariants:
//! - This is the only crate that knows SQL or Valkey; no `sea_orm` or `fred`
//!   type appears in its public API.
//! - Tenant data is reachable only through a [`TenantTx`]; every statement
//!   filters on its org inside the database, and on PostgreSQL row-level
//!   security enforces the same from the transaction-local `loci.org_id`.
//! - Another tenant's row behaves exactly like a missing one (the store
//!   contract: `None`, `false`, empty lists; never an error that reveals it).

mod db;
pub mod dump;
mod entities;
pub mod episodic;
mod error;
pub mod graph;
mod health;
pub mod repo;
mod tenant;
#[cfg(feature = "testing")]
pub mod testing;
mod valkey;

pub use db::{Database, MigrationState, PoolConfig, breaker_config};
pub use error::StoreError;
pub use health::DependencyCheck;
pub use loci_settings::DatabaseKind;
pub use tenant::TenantTx;
pub use valkey::{VALKEY_KEY_FAMILIES, Valkey, ValkeyFailure, ValkeyRateStore, ValkeyReplayCache, ValkeySessionStore};
