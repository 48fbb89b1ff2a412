//! The embedded search indexes of the one-process profile: a BM25 lexical
//! index on tantivy ([`lexical`]) and a vector index with its own HNSW graph
//! and append-only log ([`vector`]), both in directories under the data
//! directory. (The embedded graph lives in the relational store:
//! `loci_stores::graph`.)
//!
//! Architecture invariant: this is the only crate that knows tantivy and the
//! vector index's file formats; it implements `loci-index`'s traits and knows
//! nothing of the relational store, HTTP or the domain.

pub mod lexical;
pub mod vector;

pub use lexical::{EmbeddedLexicalIndex, LexicalOptions};
pub use vector::{EmbeddedVectorIndex, VectorOptions};
