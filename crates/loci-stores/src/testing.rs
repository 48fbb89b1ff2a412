//! Test support: a fresh database per test, on PostgreSQL or SQLite.
//!
//! PostgreSQL comes from `LOCI_TEST_PG_ADMIN_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, a superuser used only to
//! create the role and databases). Each test gets its own database owned by
//! the non-superuser role `loci_app`, and the store connects as that role, so
//! row-level security applies exactly as in production. Nothing is mocked:
//! when PostgreSQL or Valkey cannot be reached the helpers panic with a message
//! saying what to start, and the test fails loudly.

#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::{Database, PoolConfig};
use loci_settings::Secret;

pub use crate::graph::StoredMemories;

pub const APP_ROLE: &str = "loci_app";
const APP_PASSWORD: &str = "loci_app";

fn admin_url() -> String {
    std::env::var("LOCI_TEST_PG_ADMIN_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// URL of the Valkey/Redis server tests use (`LOCI_TEST_VALKEY_URL`, default
/// `redis://127.0.0.1:6379`).
pub fn valkey_url() -> String {
    std::env::var("LOCI_TEST_VALKEY_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Which engine a test database runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    Sqlite,
}

/// A fresh, empty database (not yet migrated).
#[derive(Debug)]
pub struct TestDatabase {
    pub engine: Engine,
    /// URL for the application role.
    pub url: String,
    /// For SQLite, the directory holding the file; removed on drop.
    dir: Option<PathBuf>,
}

impl TestDatabase {
    pub async fn new(engine: Engine) -> Self {
        match engine {
            Engine::Postgres => Self::postgres().await,
            Engine::Sqlite => Self::sqlite(),
        }
    }

    pub fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(format!("loci-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.join("loci.db").display());
        Self { engine: Engine::Sqlite, url, dir: Some(dir) }
    }

    pub async fn postgres() -> Self {
        let admin = admin_url();
        let conn = sea_orm::Database::connect(admin.as_str()).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is required for this test but {admin} is unreachable ({e}). \
                 Start it (scripts/test.sh does) or set LOCI_TEST_PG_ADMIN_URL."
            )
        });
        // Concurrent test processes may race to create the role; a duplicate
        // is fine.
        let create_role = format!(
            "DO $$ BEGIN \
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN \
                 CREATE ROLE {APP_ROLE} LOGIN PASSWORD '{APP_PASSWORD}' NOSUPERUSER NOBYPASSRLS NOCREATEROLE; \
               END IF; \
             END $$;"
        );
        if let Err(e) = conn.execute_unprepared(&create_role).await {
            let text = e.to_string();
            assert!(text.contains("already exists") || text.contains("duplicate key"), "create role: {text}");
        }
        let name = format!("loci_test_{}", uuid::Uuid::new_v4().simple());
        conn.execute_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("CREATE DATABASE {name} OWNER {APP_ROLE}"),
        ))
        .await
        .expect("create test database");
        conn.close().await.ok();
        let parsed = url::Url::parse(&admin).expect("admin url");
        let host = parsed.host_str().unwrap_or("127.0.0.1");
        let port = parsed.port().unwrap_or(5432);
        let url = format!("postgres://{APP_ROLE}:{APP_PASSWORD}@{host}:{port}/{name}");
        Self { engine: Engine::Postgres, url, dir: None }
    }

    pub fn secret_url(&self) -> Secret {
        Secret::new(self.url.clone())
    }

    /// Connects as the application role and applies all migrations.
    pub async fn migrated(&self) -> Database {
        let db = Database::connect(&self.secret_url(), &PoolConfig::default()).await.expect("connect");
        db.migrate_up().await.expect("migrate up");
        db
    }

    /// A connection with a superuser (PostgreSQL only), for assertions that
    /// must see past RLS.
    pub async fn admin_connection(&self) -> sea_orm::DatabaseConnection {
        assert_eq!(self.engine, Engine::Postgres);
        let mut url = url::Url::parse(&admin_url()).expect("admin url");
        let name = url::Url::parse(&self.url).expect("url").path().to_owned();
        url.set_path(&name);
        sea_orm::Database::connect(url.as_str()).await.expect("admin connect")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
