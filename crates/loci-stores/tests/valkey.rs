//! Valkey connectivity against the real server, and failure on a closed port.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use loci_settings::{Secret, ValkeySettings};
use loci_stores::testing::valkey_url;
use loci_stores::{DependencyCheck, Valkey};

#[tokio::test]
async fn connects_and_pings_the_real_server() {
    let url = valkey_url();
    let valkey = Valkey::connect(&Secret::new(url.clone()), &ValkeySettings::default())
        .await
        .unwrap_or_else(|e| panic!("Valkey is required for this test but {url} is unreachable: {e}"));
    valkey.check().await.unwrap();
    assert_eq!(valkey.key("replay:abc"), "loci:replay:abc");
    valkey.quit().await;
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_not_a_hang() {
    // Port 1 on loopback is closed.
    let settings = ValkeySettings { timeout_ms: 500, ..ValkeySettings::default() };
    let started = std::time::Instant::now();
    let result = Valkey::connect(&Secret::new("redis://127.0.0.1:1"), &settings).await;
    assert!(result.is_err());
    assert!(started.elapsed().as_secs() < 10, "connect must give up, took {:?}", started.elapsed());
}
