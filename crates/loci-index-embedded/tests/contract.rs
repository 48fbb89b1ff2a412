#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The index contracts (`loci_index::contract`) on the embedded indexes.

use std::sync::Arc;

use loci_index::contract::{lexical_contract, vector_contract};
use loci_index_embedded::{EmbeddedLexicalIndex, EmbeddedVectorIndex, LexicalOptions, VectorOptions};

const DIMS: usize = 16;

#[tokio::test]
async fn vector_contract_embedded_exact() {
    let dir = tempfile::tempdir().unwrap();
    let index = EmbeddedVectorIndex::open(dir.path(), DIMS, VectorOptions::default()).unwrap();
    vector_contract(Arc::new(index), DIMS).await;
}

#[tokio::test]
async fn vector_contract_embedded_hnsw() {
    let dir = tempfile::tempdir().unwrap();
    let options = VectorOptions { exact_below: 5, ..VectorOptions::default() };
    let index = EmbeddedVectorIndex::open(dir.path(), DIMS, options).unwrap();
    vector_contract(Arc::new(index), DIMS).await;
}

#[tokio::test]
async fn lexical_contract_embedded() {
    let index = EmbeddedLexicalIndex::open_in_ram(LexicalOptions::default()).unwrap();
    lexical_contract(Arc::new(index)).await;
}
