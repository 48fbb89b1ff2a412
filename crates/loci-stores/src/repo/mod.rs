//! Repositories of the store contract. Every function takes a [`TenantTx`]
//! and filters on its org in the statement itself.
//!
//! [`TenantTx`]: crate::TenantTx

pub mod apps;
pub mod memories;
pub mod orgs;
pub mod outbox;
pub mod users;
