#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The episodic contract (`loci_stores::testing::episodic_contract`) on a
//! real Valkey and in process.

use std::sync::Arc;

use loci_settings::{Secret, ValkeySettings};
use loci_stores::Valkey;
use loci_stores::episodic::{InProcessEpisodicStore, ValkeyEpisodicStore};
use loci_stores::testing::{episodic_contract, valkey_url};

#[tokio::test]
async fn episodic_contract_in_process() {
    episodic_contract(Arc::new(InProcessEpisodicStore::new())).await;
}

#[tokio::test]
async fn episodic_contract_valkey() {
    let settings =
        ValkeySettings { key_prefix: format!("test{}", uuid::Uuid::new_v4().simple()), ..Default::default() };
    let valkey = Valkey::connect(&Secret::new(valkey_url()), &settings).await.expect("Valkey at LOCI_TEST_VALKEY_URL");
    episodic_contract(Arc::new(ValkeyEpisodicStore::new(valkey))).await;
}
