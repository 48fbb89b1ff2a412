//! Loci's services: the rules of the product, over the store repositories
//! and the index ports. REST and MCP share everything here: the services,
//! the request shapes ([`inputs`], [`search::SearchInput`],
//! [`validation`]), the bounds ([`rules`]) and the public error detail
//! ([`DomainError::public_detail`]).
//!
//! Architecture invariants: no HTTP and no SQL here, and no index engine
//! (the composition root, `loci-app`, picks the engines); every tenant-scoped
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
pub mod code;
pub mod context;
pub mod cursor;
pub mod entities;
pub mod episodic;
mod error;
pub mod experiments;
pub mod facts;
pub mod feedback;
pub mod gdpr;
pub mod graph;
pub mod health;
pub mod indexer;
pub mod infer;
pub mod inputs;
mod job_worker;
pub mod knowledge_graph;
pub mod memories;
pub mod pii;
pub mod rules;
pub mod search;
pub mod validation;

pub use caller::Provisioner;
pub use error::{DomainError, FieldViolation};
