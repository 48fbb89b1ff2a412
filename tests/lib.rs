//! End-to-end test support: spawn a real Loci API server on port 0 against a
//! fresh database (PostgreSQL or SQLite) and, when asked, a real Valkey.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use loci_http::{Application, HttpState};
use loci_settings::{Secret, Settings};
pub use loci_stores::testing::{Engine, TestDatabase, valkey_url};

/// A running API server and what it runs on.
#[derive(Debug)]
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: TestDatabase,
    pub state: HttpState,
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

/// The local embedding model for tests: `LOCI_TEST_MODEL_DIR`, else the
/// cache `scripts/fetch-model.sh` fills. The tests that need it fail without
/// it (`scripts/test.sh` fetches it first); none passes by skipping.
pub fn model_dir() -> std::path::PathBuf {
    let dir = std::env::var_os("LOCI_TEST_MODEL_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| {
        std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/loci-models/all-MiniLM-L6-v2")
    });
    assert!(
        dir.join("model.safetensors").is_file(),
        "the embedding model is missing at {} (run scripts/fetch-model.sh there, or set LOCI_TEST_MODEL_DIR)",
        dir.display()
    );
    dir
}

impl AppOptions {
    /// Loads the local embedding model (semantic search); fails the test
    /// when the model is missing.
    pub fn with_model(self) -> Self {
        let dir = model_dir();
        self.with(move |s| s.embeddings.model_dir = Some(dir.clone()))
    }

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
        // As `loci serve` runs it: REST and MCP on one port.
        let state = HttpState::init(settings).await.expect("init state");
        let mounts = vec![loci_api::mount(), loci_mcp::mount(&state)];
        let app = Application::build(state, mounts).expect("build app");
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

    /// A caller with the `editor` role (read everything, write memories and
    /// apps) and the given extra grants.
    pub fn user(&self, subject: &str, org: &str, grants: &[&str]) -> TestUser<'_> {
        let token = self.mint_full(subject, org, &[], &["editor"], grants, None);
        TestUser { app: self, token }
    }

    /// An editor calling through a client (the token's `client_id`).
    pub fn user_via_client(&self, subject: &str, org: &str, client: &str) -> TestUser<'_> {
        let token = self.mint_for_client(subject, org, &[], &["editor"], &[], None, Some(client));
        TestUser { app: self, token }
    }

    /// A caller with these roles and extra scopes.
    pub fn user_with_roles(&self, subject: &str, org: &str, scopes: &[&str], roles: &[&str]) -> TestUser<'_> {
        TestUser { app: self, token: self.mint_full(subject, org, scopes, roles, &[], None) }
    }

    /// The server's data directory (embedded indexes, keys).
    pub fn data_dir(&self) -> &std::path::Path {
        self._data_dir.path()
    }

    /// A caller with exactly these scopes.
    pub fn user_with_scopes(&self, subject: &str, org: &str, scopes: &[&str]) -> TestUser<'_> {
        TestUser { app: self, token: self.token(subject, org, scopes) }
    }

    pub fn mint_full(
        &self,
        subject: &str,
        org: &str,
        scopes: &[&str],
        roles: &[&str],
        grants: &[&str],
        dpop_jkt: Option<String>,
    ) -> String {
        self.mint_for_client(subject, org, scopes, roles, grants, dpop_jkt, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn mint_for_client(
        &self,
        subject: &str,
        org: &str,
        scopes: &[&str],
        roles: &[&str],
        grants: &[&str],
        dpop_jkt: Option<String>,
        client: Option<&str>,
    ) -> String {
        let issuer = self.state.security.local_issuer.as_ref().expect("embedded profile has a local issuer");
        issuer
            .mint(&loci_security::MintRequest {
                issuer: self.state.services.settings.issuer().to_owned(),
                audience: self.state.services.settings.audiences()[0].clone(),
                subject: subject.into(),
                org_id: org.into(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                roles: roles.iter().map(|s| s.to_string()).collect(),
                grants: grants.iter().map(|s| s.to_string()).collect(),
                client_id: client.map(str::to_owned),
                ttl: Duration::from_secs(600),
                dpop_jkt,
            })
            .unwrap()
    }

    /// Waits until queued access-log records are written.
    /// Waits until the indexers have completed every outbox row (the
    /// background indexer keeps running; this only observes it).
    pub async fn indexed(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let lag = self.state.services.indexer.lag().await.unwrap();
            if lag.pending == 0 {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "outbox not drained: {lag:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn flush_access_log(&self) {
        self.state.services.memories.access_log().flush().await;
    }

    /// Rows of a tenant table, as the database holds them (no app filter).
    pub async fn count_rows(&self, org: &str, table: &str) -> i64 {
        let tx = self.state.services.database.begin_tenant_read(&loci_core::OrgId::parse(org).unwrap()).await.unwrap();
        let n = tx.count_visible_rows(table).await.unwrap();
        tx.commit().await.unwrap();
        n
    }

    pub fn mint(&self, subject: &str, org: &str, scopes: &[&str], dpop_jkt: Option<String>) -> String {
        self.mint_full(subject, org, scopes, &[], &[], dpop_jkt)
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

    /// Freezes the server (SIGSTOP): commands time out, nothing is lost.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status().expect("kill");
        assert!(status.success(), "kill {signal}");
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

/// An authenticated caller of a [`TestApp`].
#[derive(Debug)]
pub struct TestUser<'a> {
    pub app: &'a TestApp,
    pub token: String,
}

/// Status and JSON body (Null when the body is not JSON).
pub type Reply = (u16, serde_json::Value);

impl TestUser<'_> {
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<serde_json::Value>) -> Reply {
        let mut req = self.app.client.request(method, self.app.url(path)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> Reply {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: serde_json::Value) -> Reply {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str, body: serde_json::Value) -> Reply {
        self.send(reqwest::Method::DELETE, path, Some(body)).await
    }

    /// A raw body with any content type.
    pub async fn raw(&self, method: reqwest::Method, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        let res = self
            .app
            .client
            .request(method, self.app.url(path))
            .bearer_auth(&self.token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Creates a memory and returns its id (asserting 201).
    pub async fn remember(&self, text: &str, metadata: serde_json::Value) -> String {
        let (status, body) = self
            .post("/api/v1/memories", serde_json::json!({ "text": text, "app": "cli", "metadata": metadata }))
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("id").to_owned()
    }
}

/// Runs each named `async fn(Engine)` as two tests, `sqlite::NAME` and
/// `postgres::NAME`.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name($crate::Engine::Sqlite).await })+
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name($crate::Engine::Postgres).await })+
        }
    };
}

/// A principal of `org` with the editor role, for services called directly
/// (without HTTP).
pub fn principal(subject: &str, org: &loci_core::OrgId) -> loci_security::Principal {
    loci_security::Principal {
        org_id: org.clone(),
        subject: subject.into(),
        scopes: std::collections::BTreeSet::new(),
        roles: vec!["editor".into()],
        grants: Vec::new(),
        client_id: None,
        token_id: "test".into(),
        dpop_jkt: None,
        expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
    }
}
