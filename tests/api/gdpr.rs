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

loci_tests::on_both!(
    the_inventory_classifies_every_table_and_column,
    an_unclassified_column_fails_the_inventory,
    erasure_reaches_every_store_and_spares_others,
    export_covers_every_store,
    an_erased_users_rows_in_old_backups_are_unreadable,
    deleted_memories_are_purged_after_their_retention,
);

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

// ------------------------------------------------------------- erasure

/// A word no other test writes: capitalised letters only, so it is both an
/// entity and a lexical term.
fn marker() -> String {
    let letters: String = uuid::Uuid::new_v4().as_bytes().iter().take(8).map(|b| (b'a' + b % 26) as char).collect();
    format!("Zq{letters}")
}

/// Files under `dir` whose bytes hold `needle` (case-insensitive ASCII).
fn files_containing(dir: &std::path::Path, needle: &str) -> Vec<String> {
    let needle = needle.to_ascii_lowercase().into_bytes();
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                let lower = bytes.to_ascii_lowercase();
                if lower.windows(needle.len()).any(|w| w == needle.as_slice()) {
                    found.push(path.display().to_string());
                }
            }
        }
    }
    found
}

fn ids(body: &serde_json::Value, list: &str, field: &str) -> Vec<String> {
    body[list].as_array().unwrap().iter().map(|r| r[field].as_str().unwrap().to_owned()).collect()
}

/// Alice's data in every store (memories in three states with history,
/// access logs, graph entities and relations, a shared memory, feedback,
/// an episodic session, an MCP session, index documents), then her erasure:
/// with Valkey frozen it is partial, the retry completes it, a third call
/// finds nothing. Afterwards no route, index file, Valkey key or database
/// row holds her words; Bob's data and results are as before.
async fn erasure_reaches_every_store_and_spares_others(engine: Engine) {
    let valkey = loci_tests::ThrowawayValkey::start();
    // Rate limiting off: this is about the erasure's own partial path, not
    // the limiter refusing writes while Valkey is frozen.
    let options = AppOptions::default().with_model().valkey(valkey.url.clone()).with(|s| {
        s.valkey.timeout_ms = 300;
        s.rate_limit.enabled = false;
    });
    let app = TestApp::spawn_with(engine, options).await;
    let alice = app.user_with_roles("alice", "acme", &["gdpr:delete"], &["editor"]);
    let bob = app.user("bob", "acme", &["org:acme"]);
    let admin = app.user_with_roles("root", "acme", &[], &["admin"]);
    let a = marker();
    let secret_tag = marker().to_lowercase();

    let m1 = alice
        .remember(
            &format!("{a} moved to Lisbon and leads the Kestrel project"),
            json!({"tags": {"codename": secret_tag}}),
        )
        .await;
    let shared = alice
        .remember(&format!("{a} shares the deploy checklist with Bob"), json!({"access_entity": "org:acme"}))
        .await;
    let archived = alice.remember(&format!("{a} used to live in Porto"), json!({})).await;
    let (status, body) = alice.post("/api/v1/memories/actions/archive", json!({"memory_ids": [archived]})).await;
    assert_eq!(status, 200, "{body}");
    let bobs = bob.remember("Bob likes Lisbon in spring and reviews deploys", json!({})).await;
    alice.get(&format!("/api/v1/memories/{m1}")).await;
    bob.get(&format!("/api/v1/memories/{shared}")).await;
    let (status, body) = alice
        .post("/api/v1/feedback", json!({"outcome": "accepted", "tool_name": "search_memory", "metadata": {"note": a}}))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) =
        alice.post("/api/v1/sessions/chat-1/items", json!({ "content": format!("{a} is debugging retries") })).await;
    assert_eq!(status, 201, "{body}");
    let mcp_token = app.mint_full("alice", "acme", &["memories:read"], &[], &[], None);
    let client = crate::mcp::connect(&app, &mcp_token).await;
    crate::mcp::ok(&client, "whoami", json!({})).await;
    app.indexed().await;
    app.flush_access_log().await;

    // Before: everything is there, and Bob sees the shared memory.
    let (_, found) = bob.post("/api/v1/search/lexical", json!({"query": a})).await;
    assert_eq!(ids(&found, "results", "memory_id"), std::slice::from_ref(&shared), "{found}");
    let (_, entities) = alice.get(&format!("/api/v1/graph/search/entities?q={a}")).await;
    assert_eq!(entities["total"], 1, "{entities}");
    assert!(!app.db.tables_containing(&a).await.is_empty());
    assert!(!files_containing(app.data_dir(), &a).is_empty(), "the lexical index holds the words");
    assert!(!files_containing(app.data_dir(), &secret_tag).is_empty(), "the vector index holds the tags");
    if let Some(dir) = app.db.sqlite_dir() {
        assert!(!files_containing(dir, &a).is_empty(), "the SQLite files hold the words");
    }
    let (_, bob_before) = bob.get("/api/v1/memories?size=100").await;
    let (_, bob_lisbon_before) = bob.post("/api/v1/search/lexical", json!({"query": "Lisbon spring"})).await;

    // Valkey frozen: partial, and every other store is done.
    valkey.pause();
    let reason = "the user asked to be forgotten (ticket 4411)";
    let (status, first) = alice.post("/api/v1/gdpr/erase", json!({"reason": reason})).await;
    valkey.resume();
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["status"], "partial", "{first}");
    for store in ["relational", "vector", "lexical", "graph"] {
        assert_eq!(first["stores"][store]["status"], "completed", "{store}: {first}");
    }
    assert_eq!(first["stores"]["episodic"]["status"], "failed", "{first}");
    assert_eq!(first["stores"]["vector"]["count"], 3, "{first}");
    assert!(first["stores"]["relational"]["tables"]["memories"] == 3, "{first}");
    assert!(first["stores"]["relational"]["tables"]["feedback_events"] == 1, "{first}");

    // The retry completes it; a third call finds nothing.
    let (status, second) = alice.post("/api/v1/gdpr/erase", json!({"reason": reason})).await;
    assert_eq!((status, second["status"].as_str()), (200, Some("completed")), "{second}");
    assert_eq!(second["stores"]["episodic"]["count"], 1, "{second}");
    assert_eq!(second["stores"]["sessions"]["count"], 1, "{second}");
    let (_, third) = alice.post("/api/v1/gdpr/erase", json!({"reason": reason})).await;
    assert_eq!((third["status"].as_str(), third["total"].as_u64()), (Some("completed"), Some(0)), "{third}");
    client.cancel().await.ok();

    // Nothing of hers is found, by any route.
    let (status, mine) = alice.get("/api/v1/memories?size=100").await;
    assert_eq!((status, mine["total"].as_u64()), (200, Some(0)), "{mine}");
    for mode in ["lexical", "semantic"] {
        for user in [&alice, &bob] {
            let (status, found) = user.post(&format!("/api/v1/search/{mode}"), json!({"query": a})).await;
            assert_eq!(status, 200, "{found}");
            let hits = ids(&found, "results", "memory_id");
            assert!(!hits.iter().any(|h| [&m1, &shared, &archived].contains(&h)), "{mode}: {found}");
        }
    }
    let (_, found) = bob.post("/api/v1/search", json!({"query": format!("{a} deploy checklist")})).await;
    assert!(!ids(&found, "results", "memory_id").contains(&shared), "{found}");
    for path in [
        format!("/api/v1/memories/{m1}"),
        format!("/api/v1/memories/{m1}/access-log"),
        format!("/api/v1/memories/{archived}/history"),
        format!("/api/v1/memories/{m1}/related"),
        format!("/api/v1/memories/{m1}/similar"),
    ] {
        let (status, body) = alice.get(&path).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (_, similar) = bob.get(&format!("/api/v1/memories/{bobs}/similar")).await;
    assert!(!similar.to_string().contains(&a), "{similar}");
    let (_, related) = bob.get(&format!("/api/v1/memories/{bobs}/related")).await;
    assert!(!related.to_string().contains(&a), "{related}");
    let (_, entities) = bob.get(&format!("/api/v1/graph/search/entities?q={a}")).await;
    assert_eq!(entities["total"], 0, "{entities}");
    let (_, lisbon) = bob.get("/api/v1/entities/lisbon").await;
    assert_eq!(lisbon["memories"], 1, "the shared entity keeps Bob's mention only: {lisbon}");

    // Bob's data and results are as before, less the memory Alice shared.
    let (_, bob_after) = bob.get("/api/v1/memories?size=100").await;
    let before: Vec<String> = ids(&bob_before, "items", "id").into_iter().filter(|id| *id != shared).collect();
    assert_eq!(ids(&bob_after, "items", "id"), before);
    let (_, bob_lisbon_after) = bob.post("/api/v1/search/lexical", json!({"query": "Lisbon spring"})).await;
    let before: Vec<String> =
        ids(&bob_lisbon_before, "results", "memory_id").into_iter().filter(|id| *id != shared).collect();
    assert_eq!(ids(&bob_lisbon_after, "results", "memory_id"), before);

    // No store holds her words or keys.
    assert_eq!(app.db.tables_containing(&a).await, Vec::<String>::new());
    assert_eq!(app.db.tables_containing(&secret_tag).await, Vec::<String>::new());
    assert_eq!(files_containing(app.data_dir(), &a), Vec::<String>::new());
    assert_eq!(files_containing(app.data_dir(), &secret_tag), Vec::<String>::new());
    if let Some(dir) = app.db.sqlite_dir() {
        // The database file and its log too: deleted content is zeroed and
        // the log truncated.
        assert_eq!(files_containing(dir, &a), Vec::<String>::new());
    }
    let keys = app.state.services.valkey.clone().unwrap().scan_keys("*").await.unwrap();
    assert!(keys.iter().all(|k| !k.contains("episodic")), "{keys:?}");
    assert!(!keys.iter().any(|k| k.starts_with("mcp:session:")), "{keys:?}");

    // The audit survives her: three erasures, the first partial.
    let (status, audit) = admin.get("/api/v1/gdpr/audit").await;
    assert_eq!(status, 200, "{audit}");
    let statuses: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["operation"] == "erase")
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["completed", "completed", "partial"], "{audit}");
    assert!(!audit.to_string().contains("alice"), "the audit names no subject: {audit}");
}

#[tokio::test]
async fn erasure_needs_its_scope_and_a_reason() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let editor = app.user("alice", "acme", &[]);
    let (status, body) = editor.post("/api/v1/gdpr/erase", json!({"reason": "please forget me now"})).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("INSUFFICIENT_SCOPE")), "{body}");
    let alice = app.user_with_roles("alice", "acme", &["gdpr:delete"], &["editor"]);
    for reason in [json!("too short"), json!(" ".repeat(20)), json!("x".repeat(501)), json!("line\nbreak here")] {
        let (status, body) = alice.post("/api/v1/gdpr/erase", json!({"reason": reason})).await;
        assert_eq!((status, body["errors"][0]["field"].as_str()), (422, Some("reason")), "{body}");
    }
    // Another subject needs admin:write too.
    let (status, body) =
        alice.post("/api/v1/gdpr/erase", json!({"reason": "asked by the user", "subject": "bob"})).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("INSUFFICIENT_SCOPE")), "{body}");
    let (status, body) = editor.post("/api/v1/gdpr/export?subject=bob", json!({})).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("INSUFFICIENT_SCOPE")), "{body}");
}

// -------------------------------------------------------------- export

/// The export holds every store's part: memories in every state with
/// history and access logs, index documents without vectors, graph
/// entities, episodic items, feedback; an admin may export a named user,
/// and both exports are audited.
async fn export_covers_every_store(engine: Engine) {
    let app = TestApp::spawn_with(engine, AppOptions::default().with_model()).await;
    let alice = app.user("alice", "acme", &[]);
    let admin = app.user_with_roles("root", "acme", &[], &["admin"]);
    let a = marker();
    let m1 = alice.remember(&format!("{a} moved to Lisbon"), json!({"tags": {"team": "core"}})).await;
    let m2 = alice.remember(&format!("{a} prefers tea"), json!({})).await;
    alice.post("/api/v1/memories/actions/archive", json!({"memory_ids": [m2]})).await;
    alice.get(&format!("/api/v1/memories/{m1}")).await;
    alice.post("/api/v1/sessions/s1/items", json!({ "content": format!("{a} is on call") })).await;
    alice.post("/api/v1/feedback", json!({"outcome": "ignored", "tool_name": "search_memory"})).await;
    app.user("bob", "acme", &[]).remember("bob keeps his own notes", json!({})).await;
    app.indexed().await;
    app.flush_access_log().await;

    let (status, doc) = alice.post("/api/v1/gdpr/export", json!({})).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!((doc["format_version"].as_u64(), doc["subject"].as_str()), (Some(1), Some("alice")));
    assert_eq!(doc["partial"], false, "{doc}");
    let rel = &doc["relational"];
    assert_eq!(ids(rel, "memories", "id").len(), 2, "{doc}");
    assert!(rel["memories"].to_string().contains(&a));
    assert!(rel["memory_status_history"].as_array().unwrap().iter().any(|h| h["new_state"] == "archived"));
    assert!(!rel["memory_access_logs"].as_array().unwrap().is_empty());
    assert_eq!(rel["feedback_events"].as_array().unwrap().len(), 1);
    assert_eq!(rel["users"][0]["subject"], "alice");
    assert!(!doc.to_string().contains("bob"), "nobody else's data");
    let vector_docs = doc["vector"]["documents"].as_array().unwrap();
    assert_eq!(vector_docs.len(), 2, "{doc}");
    assert_eq!(vector_docs[0]["dimensions"], 384);
    assert!(vector_docs.iter().all(|d| d.get("vector").is_none() && d.get("embedding").is_none()));
    assert_eq!(doc["lexical"]["engine"], "embedded");
    assert!(doc["lexical"]["org_documents"].as_u64().unwrap() >= 2, "{doc}");
    let entities: Vec<&str> =
        doc["graph"]["entities"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert!(entities.contains(&a.to_lowercase().as_str()) && entities.contains(&"lisbon"), "{entities:?}");
    assert_eq!(doc["graph"]["mentions"].as_array().unwrap().len(), 2, "both memories mention an entity: {doc}");
    assert!(doc["episodic"]["sessions"]["s1"][0]["content"].as_str().unwrap().contains(&a));

    let (status, named) = admin.post("/api/v1/gdpr/export?subject=alice", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(named["relational"]["memories"], rel["memories"]);
    let (_, audit) = admin.get("/api/v1/gdpr/audit").await;
    let exports: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["operation"] == "export")
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(exports, ["completed", "completed"], "{audit}");
    let subject_of = |r: &serde_json::Value| r["subject_hash"].as_str().map(str::to_owned);
    let hashes: Vec<_> = audit.as_array().unwrap().iter().filter_map(subject_of).collect();
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "both exports are of alice: {audit}");
    // Over MCP, the caller's own export, the same document.
    let token = app.mint_full("alice", "acme", &["gdpr:read"], &[], &[], None);
    let client = crate::mcp::connect(&app, &token).await;
    let over_mcp = crate::mcp::ok(&client, "export_my_data", json!({})).await;
    client.cancel().await.ok();
    assert_eq!(over_mcp["relational"]["memories"], rel["memories"]);
    assert_eq!(over_mcp["graph"]["entities"], doc["graph"]["entities"]);
    // An unknown subject exports an empty document.
    let (status, none) = admin.post("/api/v1/gdpr/export?subject=nobody", json!({})).await;
    assert_eq!((status, none["user_id"].clone()), (200, serde_json::Value::Null), "{none}");
    assert_eq!(none["relational"]["memories"], json!([]));
}

// ------------------------------------------------------- crypto-shredding

/// A backup seals each user's words with the user's key; after Alice is
/// erased her key is gone, so restoring the old backup elsewhere brings
/// Bob's data back intact and nothing of hers (her rows stay ciphertext and
/// are left out, with what depends on them).
async fn an_erased_users_rows_in_old_backups_are_unreadable(engine: Engine) {
    use loci_app::recovery::{self, KeyRing, Quiet, Rebuild, Scratch};
    let app = TestApp::spawn(engine).await;
    let alice = app.user_with_roles("alice", "acme", &["gdpr:delete"], &["editor"]);
    let bob = app.user("bob", "acme", &[]);
    let (a, b) = (marker(), marker());
    for i in 0..3 {
        alice.remember(&format!("{a} note {i} about the Kestrel launch"), json!({})).await;
        bob.remember(&format!("{b} note {i} about the Kestrel launch"), json!({})).await;
    }
    let archived = alice.remember(&format!("{a} old plan"), json!({})).await;
    alice.post("/api/v1/memories/actions/archive", json!({"memory_ids": [archived]})).await;
    app.indexed().await;
    app.flush_access_log().await;

    let live = Database::connect(&app.db.maintenance_url(), &PoolConfig::default()).await.unwrap();
    let settings = &app.state.services.settings;
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("loci-backup-before.zip");
    recovery::backup(settings, &live, &archive, &Quiet).await.unwrap();
    // Ciphertext only: neither user's words are in the archive's members.
    let mut reader = loci_migration_verifier::ArchiveReader::open(&archive).unwrap();
    let mut text = String::new();
    for table in loci_stores::dump::BACKUP_TABLES {
        reader
            .read_table(table, |row| {
                text.push_str(&row.to_string());
                Ok(())
            })
            .unwrap();
    }
    // (Entity names are the org's vocabulary and stay readable: see
    // docs/SECURITY.md; a restore drops those only an erased user mentioned.)
    for words in [format!("{a} note 0 about"), format!("{b} note 0 about"), "about the Kestrel launch".to_owned()] {
        assert!(!text.contains(&words), "sealed: {words}");
    }
    assert!(text.contains("$sealed"));

    let (status, erased) = alice.post("/api/v1/gdpr/erase", json!({"reason": "the user asked to be forgotten"})).await;
    assert_eq!((status, erased["status"].as_str()), (200, Some("completed")), "{erased}");
    assert_eq!(erased["stores"]["relational"]["tables"]["user_keys"], 1, "her key is destroyed: {erased}");

    // Restored into a scratch database with the live keys.
    let scratch = TestDatabase::new(engine).await;
    let target = Database::connect(&scratch.maintenance_url(), &PoolConfig::default()).await.unwrap();
    let report = recovery::restore_with_keys(settings, &target, &archive, false, Rebuild::Queue, Some(&live), &Quiet)
        .await
        .unwrap();
    assert_eq!(report.shredded.get("users"), Some(&1), "{:?}", report.shredded);
    assert_eq!(report.shredded.get("memories"), Some(&4), "{:?}", report.shredded);
    assert!(report.shredded.contains_key("memory_status_history"), "{:?}", report.shredded);
    assert_eq!(scratch.tables_containing(&a).await, Vec::<String>::new(), "nothing of hers");
    assert_eq!(scratch.tables_containing(&b).await, ["graph_entities", "memories"], "his memories are back");
    assert_eq!(scratch.tables_containing("bob").await, ["users"], "and his user");
    target.close().await.unwrap();

    // `backup verify` agrees: every table matches, her rows counted apart.
    let keys = KeyRing::load(recovery::master_key(settings).unwrap(), &live).await.unwrap();
    let verified = recovery::verify(&archive, &Scratch::Sqlite, &keys, &Quiet).await.unwrap();
    assert!(verified.ok(), "{verified:?}");
    assert_eq!(verified.shredded.get("memories"), Some(&4));
    live.close().await.unwrap();
}

// ---------------------------------------------------------------- purge

/// A memory deleted longer ago than the retention is hard-deleted with its
/// history and access logs; one deleted recently and the active ones stay.
async fn deleted_memories_are_purged_after_their_retention(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let alice = app.user("alice", "acme", &[]);
    let old = alice.remember("an old note to purge", json!({})).await;
    let recent = alice.remember("a recent note, deleted today", json!({})).await;
    let kept = alice.remember("a note that stays", json!({})).await;
    alice.get(&format!("/api/v1/memories/{old}")).await;
    for id in [&old, &recent] {
        let (status, body) = alice.delete("/api/v1/memories", json!({"memory_ids": [id]})).await;
        assert_eq!(status, 200, "{body}");
    }
    app.indexed().await;
    app.flush_access_log().await;
    app.db
        .execute_as_owner(
            "UPDATE memories SET deleted_at = '2020-01-01 00:00:00+00' WHERE content = 'an old note to purge'",
        )
        .await;
    let history = app.count_rows("acme", "memory_status_history").await;
    let reads = app.count_rows("acme", "memory_access_logs").await;

    let retention = std::time::Duration::from_secs(30 * 86_400);
    let purged = app.state.services.gdpr.purge_deleted(retention).await.unwrap();
    assert_eq!(purged, 1);
    assert_eq!(app.db.tables_containing("an old note to purge").await, Vec::<String>::new());
    assert_eq!(app.count_rows("acme", "memory_status_history").await, history - 2, "its creation and deletion");
    assert_eq!(app.count_rows("acme", "memory_access_logs").await, reads - 1, "its read");
    assert_eq!(app.db.tables_containing("a recent note").await, ["memories"]);
    let (_, body) = alice.get(&format!("/api/v1/memories/{kept}")).await;
    assert_eq!(body["id"], kept.as_str());
    assert_eq!(app.state.services.gdpr.purge_deleted(retention).await.unwrap(), 0, "nothing left to purge");
}
