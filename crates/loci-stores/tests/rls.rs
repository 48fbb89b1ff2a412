//! PostgreSQL row-level security: the database itself isolates tenants,
//! independently of the application's own filters.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use loci_core::OrgId;
use loci_core::model::{MemoryMetadata, NewMemory};
use loci_stores::repo::{apps, memories, orgs, users};
use loci_stores::testing::TestDatabase;
use loci_stores::{Database, PoolConfig, StoreError};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

async fn seed(db: &Database, org: &str, n: usize) {
    let tx = db.begin_tenant(&OrgId::parse(org).unwrap()).await.unwrap();
    orgs::ensure(&tx).await.unwrap();
    let user = users::ensure(&tx, "someone").await.unwrap();
    let app = apps::ensure(&tx, user.id, "cli").await.unwrap();
    for i in 0..n {
        let input = NewMemory {
            user_id: user.id,
            app_id: app.id,
            content: format!("{org} memory {i}"),
            metadata: MemoryMetadata::default(),
            categories: vec![],
        };
        memories::create(&tx, input).await.unwrap();
    }
    tx.commit().await.unwrap();
}

async fn admin_count(t: &TestDatabase, table: &str) -> i64 {
    let admin = t.admin_connection().await;
    let row = admin
        .query_one_raw(Statement::from_string(DbBackend::Postgres, format!("SELECT COUNT(*) AS n FROM {table}")))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

#[tokio::test]
async fn without_a_tenant_context_every_tenant_table_reads_zero_rows() {
    let t = TestDatabase::postgres().await;
    let db = t.migrated().await;
    seed(&db, "acme", 3).await;
    seed(&db, "globex", 2).await;
    assert_eq!(admin_count(&t, "memories").await, 5, "the rows exist");
    for table in loci_migration::TENANT_TABLES {
        assert_eq!(db.count_rows_without_tenant(table).await.unwrap(), 0, "{table} leaked without context");
    }
}

#[tokio::test]
async fn a_tenant_context_sees_only_its_own_rows_even_without_app_filters() {
    let t = TestDatabase::postgres().await;
    let db = t.migrated().await;
    seed(&db, "acme", 3).await;
    seed(&db, "globex", 2).await;
    for (org, expected) in [("acme", 3), ("globex", 2), ("initech", 0)] {
        let tx = db.begin_tenant_read(&OrgId::parse(org).unwrap()).await.unwrap();
        assert_eq!(tx.count_visible_rows("memories").await.unwrap(), expected, "{org}");
        assert_eq!(tx.count_visible_rows("memory_status_history").await.unwrap(), expected, "{org}");
        assert_eq!(tx.count_visible_rows("orgs").await.unwrap(), i64::from(expected > 0), "{org}");
        tx.commit().await.unwrap();
    }
}

#[tokio::test]
async fn pooled_connections_never_carry_a_tenant_context_over() {
    let t = TestDatabase::postgres().await;
    // One connection, so every transaction below reuses the same session.
    let pool = PoolConfig { max_connections: 1, min_connections: 1, ..PoolConfig::default() };
    let db = Database::connect(&t.secret_url(), &pool).await.unwrap();
    db.migrate_up().await.unwrap();
    seed(&db, "acme", 2).await;

    // A committed and a rolled-back tenant transaction on the only connection.
    let tx = db.begin_tenant(&OrgId::parse("acme").unwrap()).await.unwrap();
    assert_eq!(tx.count_visible_rows("memories").await.unwrap(), 2);
    tx.commit().await.unwrap();
    assert_eq!(db.count_rows_without_tenant("memories").await.unwrap(), 0, "leak after commit");

    let tx = db.begin_tenant(&OrgId::parse("acme").unwrap()).await.unwrap();
    assert_eq!(tx.count_visible_rows("memories").await.unwrap(), 2);
    tx.rollback().await.unwrap();
    assert_eq!(db.count_rows_without_tenant("memories").await.unwrap(), 0, "leak after rollback");

    // The next tenant on the same connection sees only its own rows.
    let tx = db.begin_tenant(&OrgId::parse("globex").unwrap()).await.unwrap();
    assert_eq!(tx.count_visible_rows("memories").await.unwrap(), 0);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_read_transaction_refuses_writes_and_its_mode_does_not_outlive_it() {
    let t = TestDatabase::postgres().await;
    let pool = PoolConfig { max_connections: 1, min_connections: 1, ..PoolConfig::default() };
    let db = Database::connect(&t.secret_url(), &pool).await.unwrap();
    db.migrate_up().await.unwrap();
    seed(&db, "acme", 1).await;
    let acme = OrgId::parse("acme").unwrap();
    let tx = db.begin_tenant_read(&acme).await.unwrap();
    assert_eq!(tx.count_visible_rows("memories").await.unwrap(), 1, "the tenant is set");
    let user = users::ensure(&tx, "someone-else").await;
    assert!(user.is_err(), "a write inside a read transaction is refused");
    tx.rollback().await.unwrap();
    // The same (only) connection writes again in the next transaction.
    seed(&db, "acme", 1).await;
    let tx = db.begin_tenant_read(&acme).await.unwrap();
    assert_eq!(tx.count_visible_rows("memories").await.unwrap(), 2);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_role_that_bypasses_rls_is_refused() {
    let t = TestDatabase::postgres().await;
    let app_role = Database::connect(&t.secret_url(), &PoolConfig::default()).await.unwrap();
    app_role.ensure_role_is_subject_to_rls().await.unwrap();

    let admin_url = std::env::var("LOCI_TEST_PG_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let superuser = Database::connect(&loci_settings::Secret::new(admin_url), &PoolConfig::default()).await.unwrap();
    let err = superuser.ensure_role_is_subject_to_rls().await.unwrap_err();
    assert!(matches!(err, StoreError::RlsBypassed(_)), "{err}");
}
