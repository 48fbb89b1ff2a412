//! Verification of data moved between databases: backups, restores, engine
//! moves and schema migrations.
//!
//! The crate knows no database. A store exports each table as rows of JSON
//! in primary-key order; this crate turns them into canonical lines
//! ([`canonical_line`]), digests them per table ([`TableDigest`]: row count
//! and SHA-256), writes and reads backup archives ([`ArchiveWriter`],
//! [`ArchiveReader`]) and compares two sets of digests
//! ([`compare`] -> [`VerificationResult`]). Because the digest is taken over
//! canonical lines, the same data gives the same checksum on SQLite and on
//! PostgreSQL, which is what lets a backup of one restore into the other and
//! be proven equal.
//!
//! It also holds the pieces of long copies: [`BatchPlan`] (batch n of m) and
//! [`Checkpoint`] (what a resumable copy has done, written atomically), and
//! the file checks of [`validator`] (exists, non-empty, fresh, format magic,
//! latest backup).

// zip's `deflate-flate2` feature picks no backend by itself: this crate's
// flate2 dependency (default: miniz_oxide, pure Rust) is what it deflates with.
use flate2 as _;

mod archive;
mod batch;
mod canonical;
mod checkpoint;
mod compare;
mod error;
mod manifest;
pub mod validator;

pub use archive::{ArchiveReader, ArchiveWriter, TableWriter};
pub use batch::BatchPlan;
pub use canonical::{TableDigest, canonical_line};
pub use checkpoint::Checkpoint;
pub use compare::{Mismatch, TableState, TableSummary, VerificationResult, compare};
pub use error::VerifierError;
pub use manifest::{FORMAT, Manifest, StoreEntry, StoreStatus, TableEntry};
