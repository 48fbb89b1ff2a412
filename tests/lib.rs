//! End-to-end test support: spawn a real Loci API server on port 0 against a
//! fresh database (PostgreSQL or SQLite) and, when asked, a real Valkey.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use loci_api::Application;
use loci_settings::{Secret, Settings};
pub use loci_stores::testing::{Engine, TestDatabase, valkey_url};

/// A running API server and what it runs on.
#[derive(Debug)]
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: TestDatabase,
    pub state: loci_api::AppState,
    handle: actix_web::dev::ServerHandle,
    _data_dir: tempfile::TempDir,
}

type Tweak = std::sync::Arc<dyn Fn(&mut Settings) + Send + Sync>;

/// How a test wants its server.
#[derive(Clone, Default)]
pub struct AppOptions {
    pub valkey_url: Option<String>,
    tweaks: Vec<Tweak>,
}

impl std::fmt::Debug for AppOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppOptions").field("valkey_url", &self.valkey_url).field("tweaks", &self.tweaks.len()).finish()
    }
}

impl AppOptions {
    /// Shares a Valkey server (URL) with other instances.
    pub fn valkey(mut self, url: impl Into<String>) -> Self {
        self.valkey_url = Some(url.into());
        self
    }

    /// Changes settings before the server is built.
    pub fn with(mut self, tweak: impl Fn(&mut Settings) + Send + Sync + 'static) -> Self {
        self.tweaks.push(std::sync::Arc::new(tweak));
        self
    }
}

impl TestApp {
    pub async fn spawn(engine: Engine) -> Self {
        Self::spawn_with(engine, AppOptions::default()).await
    }

    pub async fn spawn_with(engine: Engine, options: AppOptions) -> Self {
        let db = TestDatabase::new(engine).await;
        let data_dir = tempfile::tempdir().unwrap();
        let mut settings = Settings { data_dir: data_dir.path().to_path_buf(), ..Settings::default() };
        settings.server.port = 0;
        settings.server.workers = 1;
        settings.server.shutdown_timeout_secs = 1;
        settings.database.url = Some(Secret::new(db.url.clone()));
        settings.valkey.url = options.valkey_url.map(Secret::new);
        for tweak in &options.tweaks {
            tweak(&mut settings);
        }
        let app = Application::build(settings).await.expect("build app");
        let address = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        let state = app.state().clone();
        tokio::spawn(app.run_until_stopped());
        Self {
            address,
            client: reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap(),
            db,
            state,
            handle,
            _data_dir: data_dir,
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.address)).send().await.expect("request")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A token from the embedded profile's local issuer.
    pub fn token(&self, subject: &str, org: &str, scopes: &[&str]) -> String {
        self.mint(subject, org, scopes, None)
    }

    pub fn mint(&self, subject: &str, org: &str, scopes: &[&str], dpop_jkt: Option<String>) -> String {
        let issuer = self.state.local_issuer.as_ref().expect("embedded profile has a local issuer");
        issuer
            .mint(&loci_security::MintRequest {
                issuer: self.state.settings.issuer().to_owned(),
                audience: self.state.settings.audiences()[0].clone(),
                subject: subject.into(),
                org_id: org.into(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                roles: vec![],
                grants: vec![],
                client_id: None,
                ttl: Duration::from_secs(600),
                dpop_jkt,
            })
            .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Fire and forget: the runtime is going away with the test.
        drop(self.handle.stop(false));
    }
}

/// A throwaway Valkey/Redis server on a free port, from the installed
/// `redis-server` (or `valkey-server`) binary; killed on drop.
#[derive(Debug)]
pub struct ThrowawayValkey {
    pub url: String,
    child: Child,
}

impl ThrowawayValkey {
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let binary = ["valkey-server", "redis-server"]
            .into_iter()
            .find(|b| Command::new(b).arg("--version").stdout(Stdio::null()).status().is_ok())
            .expect("redis-server or valkey-server must be installed (scripts/test.sh installs it)");
        let child = Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn valkey");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "throwaway valkey did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { url: format!("redis://127.0.0.1:{port}"), child }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ThrowawayValkey {
    fn drop(&mut self) {
        self.kill();
    }
}
