#![allow(dead_code)] // each target uses part of the fixture
//! An authenticator as the server builds one (ES256 keys from a JWKS file,
//! issuer and audience checks, DPoP with a replay cache), made once per
//! fuzzing process.

use std::sync::{Arc, OnceLock};

use loci_security::testing::{TestKey, claims, jwks};
use loci_security::{Authenticator, AuthenticatorConfig, InMemoryReplayCache};
use loci_settings::Settings;

pub const ISS: &str = "https://idp.loci.test/";
pub const AUD: &str = "loci-api";
pub const URL: &str = "https://api.loci.test/api/v1/memories";

pub struct Fixture {
    pub runtime: tokio::runtime::Runtime,
    pub auth: Authenticator,
    pub signing: TestKey,
    /// The key DPoP-bound tokens are bound to.
    pub proof_key: TestKey,
    _dir: std::path::PathBuf,
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let signing = TestKey::es256(Some("fuzz"));
        let dir = std::env::temp_dir().join(format!("loci-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let jwks_path = dir.join("jwks.json");
        std::fs::write(&jwks_path, jwks(&[&signing]).to_string()).expect("jwks");
        let mut s = Settings::default();
        s.auth.issuer = Some(ISS.into());
        s.auth.audience = vec![AUD.into()];
        s.auth.jwks_path = Some(jwks_path);
        let config = runtime.block_on(AuthenticatorConfig::from_settings(&s, None)).expect("config");
        let auth = Authenticator::new(config, Arc::new(InMemoryReplayCache::default()));
        Fixture { runtime, auth, signing, proof_key: TestKey::es256(None), _dir: dir }
    })
}

/// A valid token's claims (so mutations start from something accepted).
pub fn base_claims() -> serde_json::Value {
    claims(ISS, AUD)
}
