//! Loci's services: the rules of the product, over the store repositories.
//!
//! Architecture invariants: no HTTP and no SQL here; every tenant-scoped
//! operation takes its tenant and user from an authenticated [`Principal`],
//! never from request input; another tenant's or an invisible resource is
//! `NotFound`, exactly like a missing one.
//!
//! [`Principal`]: loci_security::Principal

pub mod access_log;
pub mod apps;
pub mod backup;
mod caller;
pub mod categorize;
mod error;
pub mod health;
pub mod indexer;
pub mod memories;
pub mod search;
pub mod validation;

pub use caller::Provisioner;
pub use error::{DomainError, FieldViolation};
