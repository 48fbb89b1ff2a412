//! GDPR: the PII inventory (docs/pii-inventory.toml) classifies every
//! table and column of the real schema on both engines, every Valkey key
//! family and every field of the index document.

use loci_domain::pii::PiiInventory;
use loci_stores::{Database, PoolConfig, VALKEY_KEY_FAMILIES};
use loci_tests::{AppOptions, Engine, TestApp, TestDatabase, valkey_url};
use serde_json::json;

async fn schema(db: &TestDatabase) -> Vec<(String, Vec<String>)> {
    let conn = Database::connect(&db.maintenance_url(), &PoolConfig::default()).await.unwrap();
    let found = conn.schema_columns().await.unwrap();
    conn.close().await.unwrap();
    found
}

async fn the_inventory_classifies_every_table_and_column(engine: Engine) {
    let db = TestDatabase::new(engine).await;
    db.migrated().await.close().await.unwrap();
    let drift = PiiInventory::shipped().unwrap().schema_drift(&schema(&db).await);
    assert!(drift.is_empty(), "docs/pii-inventory.toml is out of date:\n{}", drift.join("\n"));
}

/// A column added without classification fails the check, by name.
async fn an_unclassified_column_fails_the_inventory(engine: Engine) {
    let db = TestDatabase::new(engine).await;
    db.migrated().await.close().await.unwrap();
    db.execute_as_owner("ALTER TABLE memories ADD COLUMN private_notes TEXT").await;
    db.execute_as_owner("CREATE TABLE voice_notes (id TEXT PRIMARY KEY, transcript TEXT)").await;
    let drift = PiiInventory::shipped().unwrap().schema_drift(&schema(&db).await);
    assert_eq!(drift, ["column memories.private_notes is not classified", "table voice_notes is not classified"]);
}

loci_tests::on_both!(the_inventory_classifies_every_table_and_column, an_unclassified_column_fails_the_inventory);

#[test]
fn every_valkey_key_family_is_classified() {
    let drift = PiiInventory::shipped().unwrap().key_drift(VALKEY_KEY_FAMILIES);
    assert!(drift.is_empty(), "{}", drift.join("\n"));
}

/// The index document's fields, destructured exhaustively: a new field does
/// not compile here until it is named, and then fails until classified.
#[test]
fn every_index_document_field_is_classified() {
    let doc = |d: loci_index::IndexDoc| {
        let loci_index::IndexDoc {
            id: _,
            org_id: _,
            user_id: _,
            app_id: _,
            state: _,
            content: _,
            context: _,
            access_entity: _,
            fields: _,
            tags: _,
            created_at: _,
        } = d;
    };
    let _ = doc;
    let fields = [
        "id",
        "org_id",
        "user_id",
        "app_id",
        "state",
        "content",
        "context",
        "access_entity",
        "fields",
        "tags",
        "created_at",
        // The vector index's embedding of the content.
        "embedding",
    ];
    let drift = PiiInventory::shipped().unwrap().index_drift(&fields);
    assert!(drift.is_empty(), "{}", drift.join("\n"));
}

/// What a server really writes to Valkey belongs to a classified family:
/// episodic items and their session index, an MCP session binding.
#[tokio::test]
async fn every_key_valkey_holds_is_of_a_classified_family() {
    let prefix = format!("loci-gdpr-{}", uuid::Uuid::new_v4().simple());
    let options = AppOptions::default().valkey(valkey_url()).with({
        let prefix = prefix.clone();
        move |s| s.valkey.key_prefix = prefix.clone()
    });
    let app = TestApp::spawn_with(Engine::Sqlite, options).await;
    let alice = app.user("alice", "acme", &[]);
    let (status, body) =
        alice.post("/api/v1/sessions/chat-1/items", json!({ "content": "We are fixing retries." })).await;
    assert_eq!(status, 201, "{body}");
    let token = app.token("alice", "acme", &["memories:read"]);
    let client = crate::mcp::connect(&app, &token).await;
    let valkey = app.state.services.valkey.clone().expect("valkey configured");
    let keys = valkey.scan_keys("*").await.unwrap();
    client.cancel().await.ok();
    let inventory = PiiInventory::shipped().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for key in &keys {
        let family = inventory.family_of(key).unwrap_or_else(|| panic!("key {key} is of no classified family"));
        seen.insert(family.family.clone());
    }
    for expected in
        ["episodic:{org}:{user}:{session}:{memory}", "episodic:session:{org}:{user}:{session}", "mcp:session:{id}"]
    {
        assert!(seen.contains(expected), "{expected} not written: {keys:?}");
    }
}
