//! End-to-end API tests: one binary (zero2prod style), a real server on port
//! 0 per test, a fresh database per test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth;
mod backup;
mod categorize;
mod code;
mod entities;
mod errors;
mod experiments;
mod feedback;
mod gdpr;
mod graph;
mod health;
mod infer;
mod mcp;
mod memories;
mod plans;
mod recovery;
mod rerank;
mod resilience;
mod scoped;
mod search;
mod sessions;
mod temporal;
mod traces;
