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

    /// A URL that reads and writes every tenant: on PostgreSQL the superuser
    /// on this database (what backups and restores need), on SQLite the file.
    pub fn maintenance_url(&self) -> Secret {
        match self.engine {
            Engine::Sqlite => self.secret_url(),
            Engine::Postgres => {
                let mut url = url::Url::parse(&admin_url()).expect("admin url");
                let name = url::Url::parse(&self.url).expect("url").path().to_owned();
                url.set_path(&name);
                Secret::new(url.to_string())
            }
        }
    }

    /// The PostgreSQL superuser URL (on its maintenance database), for
    /// scratch databases.
    pub fn server_admin_url() -> Secret {
        Secret::new(admin_url())
    }

    /// Runs `sql` as the database's owner (a schema change a test makes).
    /// The directory of a SQLite database's files (`None` on PostgreSQL).
    pub fn sqlite_dir(&self) -> Option<&std::path::Path> {
        self.dir.as_deref()
    }

    /// The tables holding `needle` in any column (as text), read past
    /// row-level security: proves an erasure left nothing behind.
    pub async fn tables_containing(&self, needle: &str) -> Vec<String> {
        let db =
            crate::Database::connect(&self.maintenance_url(), &crate::PoolConfig::default()).await.expect("connect");
        let schema = db.schema_columns().await.expect("schema");
        let conn = sea_orm::Database::connect(self.maintenance_url().expose()).await.expect("connect");
        let backend = conn.get_database_backend();
        let mut found = Vec::new();
        for (table, columns) in schema {
            let cast = |c: &String| match backend {
                sea_orm::DbBackend::Postgres => format!("CAST(\"{c}\" AS TEXT) ILIKE $1"),
                _ => format!("CAST(\"{c}\" AS TEXT) LIKE ?1"),
            };
            let predicate = columns.iter().map(cast).collect::<Vec<_>>().join(" OR ");
            let sql = format!("SELECT COUNT(*) AS n FROM \"{table}\" WHERE {predicate}");
            let row = conn
                .query_one_raw(sea_orm::Statement::from_sql_and_values(backend, sql, [format!("%{needle}%").into()]))
                .await
                .expect("scan");
            let n: i64 = row.map(|r| r.try_get::<i64>("", "n").expect("count")).unwrap_or(0);
            if n > 0 {
                found.push(table);
            }
        }
        conn.close().await.ok();
        db.close().await.ok();
        found
    }

    pub async fn execute_as_owner(&self, sql: &str) {
        let conn = sea_orm::Database::connect(self.maintenance_url().expose()).await.expect("connect");
        conn.execute_unprepared(sql).await.expect("execute");
        conn.close().await.ok();
    }

    /// A real outage of this database (PostgreSQL only): `false` refuses new
    /// connections and closes the open ones; `true` lets them in again.
    pub async fn accept_connections(&self, accept: bool) {
        assert_eq!(self.engine, Engine::Postgres);
        let name = url::Url::parse(&self.url).expect("url").path().trim_start_matches('/').to_owned();
        let conn = sea_orm::Database::connect(admin_url().as_str()).await.expect("admin connect");
        conn.execute_unprepared(&format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS {accept}"))
            .await
            .expect("allow connections");
        if !accept {
            let kill = format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            );
            conn.execute_unprepared(&kill).await.expect("terminate backends");
        }
        conn.close().await.ok();
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

/// The [`EpisodicStore`](crate::episodic::EpisodicStore) contract, on any
/// implementation: order, summarised items hidden by default, updates keep
/// the item, the per-session bound drops the oldest, isolation between
/// users, sessions and orgs, deletes, session expiry and the TTL.
pub async fn episodic_contract(store: std::sync::Arc<dyn crate::episodic::EpisodicStore>) {
    use crate::episodic::{EpisodicItem, SessionKey, decay, mark_summarised};
    use chrono::{Duration as ChronoDuration, Utc};
    use loci_core::{OrgId, UserId};
    use std::time::Duration;

    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let org = OrgId::parse(&format!("ep{run}")).unwrap();
    let other_org = OrgId::parse(&format!("ep{run}-b")).unwrap();
    let (alice, bob) = (UserId::new(), UserId::new());
    let key =
        |org: &OrgId, user: UserId, session: &str| SessionKey { org: org.clone(), user, session: session.to_owned() };
    let mine = key(&org, alice, "s1");
    let start = Utc::now();
    let item = |n: i64, content: &str| EpisodicItem {
        id: uuid::Uuid::now_v7(),
        content: content.to_owned(),
        role: Some("user".to_owned()),
        metadata: serde_json::json!({"turn": n}),
        created_at: start + ChronoDuration::milliseconds(n),
        recency: 1.0,
        summarised: false,
        promoted_to: None,
    };
    let day = Duration::from_secs(86_400);
    let items: Vec<EpisodicItem> = (0..4).map(|n| item(n, &format!("turn {n}"))).collect();
    for i in &items {
        store.add(&mine, i, day, 100).await.unwrap();
    }
    let listed = store.list(&mine, false, 10).await.unwrap();
    let contents: Vec<&str> = listed.iter().map(|i| i.content.as_str()).collect();
    assert_eq!(contents, ["turn 3", "turn 2", "turn 1", "turn 0"], "most recent first");
    assert_eq!(listed[0], items[3], "stored as given");
    assert_eq!(store.list(&mine, false, 2).await.unwrap().len(), 2);
    assert_eq!(store.get(&mine, items[1].id).await.unwrap().as_ref(), Some(&items[1]));
    assert!(store.get(&mine, uuid::Uuid::now_v7()).await.unwrap().is_none());

    // Isolation: another user, session or org sees nothing.
    for other in [key(&org, bob, "s1"), key(&org, alice, "s2"), key(&other_org, alice, "s1")] {
        assert!(store.list(&other, true, 10).await.unwrap().is_empty(), "{other:?}");
        assert!(store.get(&other, items[0].id).await.unwrap().is_none(), "{other:?}");
        assert!(!store.delete(&other, items[0].id).await.unwrap(), "{other:?}");
        assert_eq!(store.expire_session(&other).await.unwrap(), 0, "{other:?}");
    }
    assert_eq!(store.list(&mine, true, 10).await.unwrap().len(), 4, "nothing of alice's went");

    // Summarised items are hidden unless asked for; decay keeps the items.
    assert_eq!(mark_summarised(store.as_ref(), &mine, &[items[0].id, items[1].id]).await.unwrap(), 2);
    assert_eq!(mark_summarised(store.as_ref(), &mine, &[items[0].id]).await.unwrap(), 0, "once");
    let live: Vec<String> = store.list(&mine, false, 10).await.unwrap().into_iter().map(|i| i.content).collect();
    assert_eq!(live, ["turn 3", "turn 2"], "summarised items are hidden");
    assert_eq!(store.list(&mine, true, 10).await.unwrap().len(), 4);
    assert_eq!(decay(store.as_ref(), &mine, 0.9).await.unwrap(), 4);
    assert_eq!(decay(store.as_ref(), &mine, 0.9).await.unwrap(), 4);
    let decayed = store.get(&mine, items[2].id).await.unwrap().unwrap();
    assert!((decayed.recency - 0.81).abs() < 1e-9, "{}", decayed.recency);
    assert_eq!((decayed.content.as_str(), decayed.summarised), ("turn 2", false));

    // Delete one; expire the session.
    assert!(store.delete(&mine, items[3].id).await.unwrap());
    assert!(!store.delete(&mine, items[3].id).await.unwrap());
    assert!(!store.replace(&mine, &items[3]).await.unwrap(), "a deleted item is not recreated");
    assert_eq!(store.list(&mine, true, 10).await.unwrap().len(), 3);
    assert_eq!(store.expire_session(&mine).await.unwrap(), 3);
    assert!(store.list(&mine, true, 10).await.unwrap().is_empty());
    assert_eq!(store.expire_session(&mine).await.unwrap(), 0);

    // The bound drops the oldest.
    let bounded = key(&org, alice, "bounded");
    let many: Vec<EpisodicItem> = (0..5).map(|n| item(n, &format!("b{n}"))).collect();
    for i in &many {
        store.add(&bounded, i, day, 3).await.unwrap();
    }
    let kept: Vec<String> = store.list(&bounded, true, 10).await.unwrap().into_iter().map(|i| i.content).collect();
    assert_eq!(kept, ["b4", "b3", "b2"]);
    assert!(store.get(&bounded, many[0].id).await.unwrap().is_none(), "dropped items are gone");
    store.expire_session(&bounded).await.unwrap();

    // The TTL: an item is gone after it, and a replace does not revive it.
    let short = key(&org, alice, "short");
    let brief = item(0, "brief");
    store.add(&short, &brief, Duration::from_millis(300), 10).await.unwrap();
    let lasting = item(1, "lasting");
    store.add(&short, &lasting, day, 10).await.unwrap();
    let mut touched = brief.clone();
    touched.recency = 0.5;
    assert!(store.replace(&short, &touched).await.unwrap(), "live, so replaced");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(store.get(&short, brief.id).await.unwrap().is_none(), "expired (the replace kept the TTL)");
    assert!(!store.replace(&short, &brief).await.unwrap());
    let left: Vec<String> = store.list(&short, true, 10).await.unwrap().into_iter().map(|i| i.content).collect();
    assert_eq!(left, ["lasting"]);
    store.expire_session(&short).await.unwrap();
}
