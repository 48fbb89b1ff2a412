//! Loci's services: the rules of the product, over the store traits.
//!
//! Architecture invariants: no HTTP and no SQL here; every tenant-scoped
//! operation takes the tenant from an authenticated principal, never from
//! request input. This crate currently holds the health service; memories,
//! apps, search and graph services arrive with their issues.

pub mod health;

/// Errors of the domain layer.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error(transparent)]
    Store(#[from] loci_stores::StoreError),
}
