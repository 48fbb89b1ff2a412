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

mod replay {
    use std::time::Duration;

    use loci_security::ReplayCache;
    use loci_settings::{Secret, ValkeySettings};
    use loci_stores::testing::valkey_url;
    use loci_stores::{Valkey, ValkeyReplayCache};

    fn settings() -> ValkeySettings {
        // A prefix per test run so parallel tests never share keys.
        ValkeySettings {
            key_prefix: format!("loci-test-{}", uuid::Uuid::new_v4().simple()),
            ..ValkeySettings::default()
        }
    }

    #[tokio::test]
    async fn first_use_is_atomic_across_clients_sharing_the_server() {
        let s = settings();
        let a = ValkeyReplayCache::new(Valkey::connect(&Secret::new(valkey_url()), &s).await.unwrap());
        let b = ValkeyReplayCache::new(Valkey::connect(&Secret::new(valkey_url()), &s).await.unwrap());
        let ttl = Duration::from_millis(400);
        assert_eq!(a.first_use("dpop:jkt:jti-1", ttl).await, Ok(true));
        assert_eq!(b.first_use("dpop:jkt:jti-1", ttl).await, Ok(false), "seen by the other client");
        assert_eq!(a.first_use("dpop:jkt:jti-1", ttl).await, Ok(false));
        // Concurrent first uses of one key: exactly one wins.
        let key = "dpop:jkt:race";
        let results = futures_join(&a, &b, key, ttl).await;
        assert_eq!(results.iter().filter(|r| **r == Ok(true)).count(), 1, "{results:?}");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(b.first_use("dpop:jkt:jti-1", ttl).await, Ok(true), "expired");
    }

    async fn futures_join(
        a: &ValkeyReplayCache,
        b: &ValkeyReplayCache,
        key: &str,
        ttl: Duration,
    ) -> Vec<Result<bool, loci_security::ReplayCacheError>> {
        let mut out = Vec::new();
        let (x, y, z, w) =
            tokio::join!(a.first_use(key, ttl), b.first_use(key, ttl), a.first_use(key, ttl), b.first_use(key, ttl));
        out.extend([x, y, z, w]);
        out
    }

    #[tokio::test]
    async fn a_closed_port_is_an_error_so_callers_fail_closed() {
        let s = ValkeySettings { timeout_ms: 300, ..settings() };
        let cache = ValkeyReplayCache::new(Valkey::connect_lazy(&Secret::new("redis://127.0.0.1:1"), &s).unwrap());
        let started = std::time::Instant::now();
        let result = cache.first_use("dpop:jkt:jti", Duration::from_secs(60)).await;
        assert!(matches!(result, Err(loci_security::ReplayCacheError::Unavailable(_))), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

mod sessions {
    use std::time::Duration;

    use loci_security::{SessionBinding, SessionStore};
    use loci_settings::{Secret, ValkeySettings};
    use loci_stores::testing::valkey_url;
    use loci_stores::{Valkey, ValkeySessionStore};

    fn binding(user: &str) -> SessionBinding {
        SessionBinding {
            user: user.into(),
            org: "acme".into(),
            jkt: Some("thumb".into()),
            state: Some(serde_json::json!({"protocolVersion": "2025-06-18"})),
        }
    }

    #[tokio::test]
    async fn a_binding_written_by_one_instance_is_read_and_renewed_by_another_then_expires() {
        let s = ValkeySettings {
            key_prefix: format!("loci-test-{}", uuid::Uuid::new_v4().simple()),
            ..ValkeySettings::default()
        };
        let a = ValkeySessionStore::new(Valkey::connect(&Secret::new(valkey_url()), &s).await.unwrap());
        let b = ValkeySessionStore::new(Valkey::connect(&Secret::new(valkey_url()), &s).await.unwrap());
        let ttl = Duration::from_millis(400);
        a.put("s1", &binding("alice"), ttl).await.unwrap();
        assert_eq!(b.get("s1", ttl).await.unwrap(), Some(binding("alice")));
        // Used every 250 ms with a 400 ms TTL: the binding stays alive.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            assert!(b.get("s1", ttl).await.unwrap().is_some());
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(a.get("s1", ttl).await.unwrap(), None, "idle sessions expire");
        a.put("s2", &binding("bob"), Duration::from_secs(60)).await.unwrap();
        b.delete("s2").await.unwrap();
        assert_eq!(a.get("s2", ttl).await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_unreachable_store_is_an_error() {
        let s = ValkeySettings { timeout_ms: 300, ..ValkeySettings::default() };
        let store = ValkeySessionStore::new(Valkey::connect_lazy(&Secret::new("redis://127.0.0.1:1"), &s).unwrap());
        assert!(store.get("x", Duration::from_secs(1)).await.is_err());
        assert!(store.put("x", &binding("a"), Duration::from_secs(1)).await.is_err());
    }
}
