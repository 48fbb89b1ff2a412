//! Whole-system backup, restore and verification (`loci_app::recovery`), on
//! both engines and across them: data grown through the API, backed up,
//! restored into an empty server, compared table by table, searched.

use std::path::{Path, PathBuf};

use loci_app::recovery::{self, KeyRing, Quiet, Rebuild, RecoveryError, Scratch};
use loci_migration_verifier::{ArchiveReader, TableSummary, compare};
use loci_stores::dump::BACKUP_TABLES;
use loci_stores::{Database, PoolConfig};
use loci_tests::{AppOptions, Engine, TestApp, TestDatabase, TestUser};
use serde_json::json;

async fn maintenance(app: &TestApp) -> Database {
    Database::connect(&app.db.maintenance_url(), &PoolConfig::default()).await.unwrap()
}

async fn digests(db: &Database) -> Vec<TableSummary> {
    let snapshot = db.snapshot().await.unwrap();
    let found = recovery::digests(&snapshot, BACKUP_TABLES, &Quiet).await.unwrap();
    snapshot.close().await.unwrap();
    found
}

/// What an archive of `db` holds: each table's rows as a backup seals them.
async fn archive_digests(db: &Database, ring: &KeyRing) -> Vec<TableSummary> {
    let snapshot = db.snapshot().await.unwrap();
    let found = recovery::archive_digests(&snapshot, ring, &Quiet).await.unwrap();
    snapshot.close().await.unwrap();
    found
}

/// The data keys of `db`, opened with the master key of `app`.
async fn ring(app: &TestApp, db: &Database) -> KeyRing {
    KeyRing::load(recovery::master_key(&app.state.services.settings).unwrap(), db).await.unwrap()
}

/// Servers sharing one backup master key (as the instances of one
/// deployment do).
fn sharing_a_master_key(options: AppOptions) -> AppOptions {
    let key = loci_security::sealing::MasterKey::generate_base64();
    options.with(move |s| s.gdpr.master_key = Some(loci_settings::Secret::new(key.clone())))
}

fn rows_of(found: &[TableSummary], table: &str) -> u64 {
    found.iter().find(|t| t.name == table).map_or(0, |t| t.rows)
}

/// Memories in every state, categories, history, access logs, graph
/// entities, feedback and an experiment, in two orgs.
async fn seed(app: &TestApp) -> Vec<String> {
    let alice = app.user("alice", "acme", &[]);
    let texts = [
        "Alice Martin leads the Atlas project in Berlin",
        "The Atlas deploy runs every Friday from Jenkins",
        "Bob Stone reviews every Rust pull request for Atlas",
        "Our office coffee machine is a La Marzocco",
        "Carol Diaz owns the PostgreSQL upgrade plan",
        "Invoices go out on the first Monday of each month",
    ];
    let mut ids = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        ids.push(
            alice.remember(text, json!({ "n": i, "categories": ["work"], "nested": {"b": [1, 2], "a": "é"} })).await,
        );
    }
    let (status, _) = alice.post("/api/v1/memories/actions/archive", json!({"memory_ids": [ids[3]]})).await;
    assert_eq!(status, 200);
    let (status, _) = alice.post("/api/v1/memories/actions/pause", json!({"memory_ids": [ids[4]]})).await;
    assert_eq!(status, 200);
    let (status, _) = alice.delete("/api/v1/memories", json!({"memory_ids": [ids[5]]})).await;
    assert_eq!(status, 200);
    let (status, body) = alice
        .put(
            &format!("/api/v1/memories/{}", ids[1]),
            json!({"text": "The Atlas deploy runs every Thursday from GitHub Actions"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = alice.get(&format!("/api/v1/memories/{}", ids[0])).await;
    assert_eq!(status, 200);
    let (status, found) = alice.post("/api/v1/search", json!({ "query": "Atlas deploy" })).await;
    assert_eq!(status, 200, "{found}");
    let query_id = found["query_id"].as_str().unwrap().to_owned();
    let (status, body) = alice
        .post(
            "/api/v1/feedback",
            json!({ "tool_name": "search", "outcome": "accepted", "query_id": query_id, "result_index": 0 }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let admin = TestUser { app, token: app.mint_full("root", "acme", &[], &["admin"], &[], None) };
    let (status, body) = admin
        .post(
            "/api/v1/experiments",
            json!({ "name": "fusion", "variants": [{"name": "a", "weight": 0.5, "config": {}}, {"name": "b", "weight": 0.5, "config": {"mode": "lexical"}}], "traffic_percentage": 1.0 }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let bob = app.user("bob", "globex", &[]);
    ids.push(bob.remember("Globex ships the Hammer product line from Ohio", json!({})).await);
    app.flush_access_log().await;
    app.indexed().await;
    ids
}

/// What search answers, as ids in order, for a few queries of each user.
async fn answers(app: &TestApp) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (subject, org, query) in
        [("alice", "acme", "Atlas deploy"), ("alice", "acme", "PostgreSQL upgrade"), ("bob", "globex", "Hammer")]
    {
        let user = app.user(subject, org, &[]);
        let (status, body) = user.post("/api/v1/search", json!({ "query": query })).await;
        assert_eq!(status, 200, "{body}");
        let ids: Vec<String> = body["results"]
            .as_array()
            .or_else(|| body["items"].as_array())
            .unwrap_or_else(|| panic!("no results in {body}"))
            .iter()
            .map(|r| r["id"].as_str().or_else(|| r["memory"]["id"].as_str()).unwrap().to_owned())
            .collect();
        assert!(!ids.is_empty(), "{query}: nothing found");
        out.push(ids);
    }
    out
}

fn archive_in(dir: &Path) -> PathBuf {
    dir.join("loci-backup-test.zip")
}

async fn round_trip(source_engine: Engine, target_engine: Engine) {
    let options = sharing_a_master_key(AppOptions::default().with_model());
    let source = TestApp::spawn_with(source_engine, options.clone()).await;
    seed(&source).await;
    let before = answers(&source).await;
    // Searches log access in the background; flushed, so the database stays
    // as the backup saw it.
    source.flush_access_log().await;
    let dir = tempfile::tempdir().unwrap();
    let archive = archive_in(dir.path());
    let source_db = maintenance(&source).await;
    let manifest = recovery::backup(&source.state.services.settings, &source_db, &archive, &Quiet).await.unwrap();
    let source_digests = digests(&source_db).await;
    let keys = ring(&source, &source_db).await;
    let sealed = archive_digests(&source_db, &keys).await;
    assert!(compare(&manifest.summaries(), &sealed).success, "the archive holds what the database holds");
    let raw = std::fs::read(&archive).unwrap();
    let reader = ArchiveReader::open(&archive).unwrap();
    drop(reader);
    assert!(find(&raw, b"Alice Martin").is_none(), "personal columns are sealed");
    for (table, at_least) in [
        ("memories", 7),
        ("memory_status_history", 7),
        ("memory_access_logs", 1),
        ("categories", 1),
        ("memory_categories", 1),
        ("graph_entities", 3),
        ("graph_mentions", 3),
        ("feedback_events", 1),
        ("experiments", 1),
        ("apps", 2),
        ("orgs", 2),
    ] {
        assert!(rows_of(&source_digests, table) >= at_least, "{table}: {source_digests:?}");
    }
    assert_eq!(manifest.source_engine, if source_engine == Engine::Sqlite { "sqlite" } else { "postgres" });
    assert!(manifest.stores.iter().any(|s| s.name == "valkey" && s.detail.contains("episodic")));

    // Into an empty server: the same rows, checksums and answers.
    let target = TestApp::spawn_with(target_engine, options).await;
    let target_db = maintenance(&target).await;
    // Another database holds no keys: the restore refuses rather than lose
    // every sealed row.
    let err = recovery::restore(&target.state.services.settings, &target_db, &archive, false, Rebuild::Queue, &Quiet)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no data key is available"), "{err}");
    assert!(target_db.non_empty_tables().await.unwrap().is_empty(), "nothing was restored");
    let settings = &target.state.services.settings;
    let report =
        recovery::restore_with_keys(settings, &target_db, &archive, false, Rebuild::Queue, Some(&source_db), &Quiet)
            .await
            .unwrap();
    assert_eq!(report.rows, manifest.total_rows());
    assert!(report.shredded.is_empty());
    assert_eq!(report.queued, 7);
    let restored = digests(&target_db).await;
    let result = compare(&source_digests, &restored);
    assert!(result.success, "{}", recovery::describe(&result));
    target.indexed().await;
    assert_eq!(answers(&target).await, before);
    let alice = target.user("alice", "acme", &[]);
    assert_eq!(alice.get("/api/v1/memories?show_archived=true").await.1["total"], 5, "deleted stays deleted");

    // A second restore needs --force, and then replaces what is there.
    let err = recovery::restore(&target.state.services.settings, &target_db, &archive, false, Rebuild::Queue, &Quiet)
        .await
        .unwrap_err();
    assert!(matches!(err, RecoveryError::NotEmpty(_)), "{err}");

    assert!(err.to_string().contains("memories: 7 rows"), "{err}");
    target.user("carol", "initech", &[]).remember("Initech prints TPS reports", json!({})).await;
    // Quiesced first, as the runbook says: the server's indexer writes the
    // embedded graph's rows, and a write racing the restore would land after it.
    target.indexed().await;
    target.flush_access_log().await;
    let report = recovery::restore_with_keys(
        &target.state.services.settings,
        &target_db,
        &archive,
        true,
        Rebuild::Queue,
        Some(&source_db),
        &Quiet,
    )
    .await
    .unwrap();
    assert!(report.replaced > 0);
    assert!(compare(&source_digests, &digests(&target_db).await).success);
    target.indexed().await;
    let (_, found) =
        target.user("carol", "initech", &[]).post("/api/v1/search", json!({ "query": "TPS reports" })).await;
    assert_eq!(found["results"].as_array().map_or(0, Vec::len), 0, "{found}");

    // verify restores into a scratch database of each kind.
    let scratches = match target_engine {
        Engine::Sqlite => vec![Scratch::Sqlite],
        Engine::Postgres => vec![Scratch::Sqlite, Scratch::Postgres(TestDatabase::server_admin_url())],
    };
    for scratch in scratches {
        let verified = recovery::verify(&archive, &scratch, &keys, &Quiet).await.unwrap();
        assert!(verified.ok(), "{verified:?}");
        assert_eq!(verified.result.unwrap().rows, manifest.total_rows());
    }
    source_db.close().await.unwrap();
    target_db.close().await.unwrap();
}

#[tokio::test]
async fn sqlite_backup_restores_into_sqlite_with_equal_checksums_and_answers() {
    round_trip(Engine::Sqlite, Engine::Sqlite).await;
}

#[tokio::test]
async fn postgres_backup_restores_into_postgres_with_equal_checksums_and_answers() {
    round_trip(Engine::Postgres, Engine::Postgres).await;
}

#[tokio::test]
async fn a_sqlite_backup_restores_into_postgres_and_back() {
    round_trip(Engine::Sqlite, Engine::Postgres).await;
    round_trip(Engine::Postgres, Engine::Sqlite).await;
}

/// Rewrites `archive` with `edit` applied to the bytes of one member,
/// keeping the manifest as it was.
fn rewrite_member(archive: &Path, member: &str, edit: impl Fn(String) -> String) {
    use std::io::{Read, Write};
    let bytes = std::fs::read(archive).unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..zip.len() {
        let mut file = zip.by_index(i).unwrap();
        let name = file.name().unwrap().into_owned();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        let text = if name == member { edit(text) } else { text };
        out.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
        out.write_all(text.as_bytes()).unwrap();
    }
    std::fs::write(archive, out.finish().unwrap().into_inner()).unwrap();
}

#[tokio::test]
async fn backup_verify_names_what_is_wrong_with_a_damaged_archive() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let alice = app.user("alice", "acme", &[]);
    for i in 0..40 {
        alice.remember(&format!("memory number {i} about the Atlas project"), json!({})).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let good = archive_in(dir.path());
    let db = maintenance(&app).await;
    recovery::backup(&app.state.services.settings, &db, &good, &Quiet).await.unwrap();
    let keys = ring(&app, &db).await;
    assert!(recovery::verify(&good, &Scratch::Sqlite, &keys, &Quiet).await.unwrap().ok());
    let copy = |name: &str| {
        let path = dir.path().join(name);
        std::fs::copy(&good, &path).unwrap();
        path
    };
    let problems = |report: recovery::VerifyReport| {
        assert!(!report.ok());
        report.archive_problems.join("\n")
    };

    // A changed row: the member is a valid zip entry, its checksum is not
    // the manifest's.
    let changed = copy("changed.zip");
    rewrite_member(&changed, "tables/memories.jsonl", |t| {
        t.replacen("\"state\":\"active\"", "\"state\":\"archived\"", 1)
    });
    let report = problems(recovery::verify(&changed, &Scratch::Sqlite, &keys, &Quiet).await.unwrap());
    assert!(report.contains("memories: 40 rows as the manifest says, but their checksum differs"), "{report}");

    // A row removed.
    let shorter = copy("shorter.zip");
    rewrite_member(&shorter, "tables/memories.jsonl", |t| t.split_once('\n').unwrap().1.to_owned());
    let report = problems(recovery::verify(&shorter, &Scratch::Sqlite, &keys, &Quiet).await.unwrap());
    assert!(report.contains("memories: the manifest says 40 rows, the archive holds 39"), "{report}");

    // A flipped byte inside the compressed memories member.
    let flipped = copy("flipped.zip");
    let mut bytes = std::fs::read(&flipped).unwrap();
    let reader = ArchiveReader::open(&good).unwrap();
    assert!(reader.manifest().tables.iter().any(|t| t.name == "memories"));
    let at = find(&bytes, b"tables/memories.jsonl").unwrap() + "tables/memories.jsonl".len() + 40;
    bytes[at] ^= 0x55;
    std::fs::write(&flipped, &bytes).unwrap();
    let report = problems(recovery::verify(&flipped, &Scratch::Sqlite, &keys, &Quiet).await.unwrap());
    assert!(report.starts_with("memories:"), "{report}");

    // A truncated file.
    let cut = copy("cut.zip");
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let report = problems(recovery::verify(&cut, &Scratch::Sqlite, &keys, &Quiet).await.unwrap());
    assert!(report.contains("the archive is damaged"), "{report}");

    // And a restore of a damaged archive restores nothing.
    let target = TestApp::spawn(Engine::Sqlite).await;
    let target_db = maintenance(&target).await;
    let err = recovery::restore(&target.state.services.settings, &target_db, &changed, false, Rebuild::Queue, &Quiet)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nothing was restored"), "{err}");
    assert!(target_db.non_empty_tables().await.unwrap().is_empty());
    db.close().await.unwrap();
    target_db.close().await.unwrap();
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn postgres_backups_need_a_role_that_reads_every_tenant() {
    let app = TestApp::spawn(Engine::Postgres).await;
    app.user("alice", "acme", &[]).remember("one memory", json!({})).await;
    let as_app = Database::connect(&app.db.secret_url(), &PoolConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = recovery::backup(&app.state.services.settings, &as_app, &archive_in(dir.path()), &Quiet)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("BYPASSRLS"), "{err}");
    assert!(!archive_in(dir.path()).exists(), "no archive is left behind");
    as_app.close().await.unwrap();
}

/// Every table of the schema is either in a backup or named as derived, and
/// every column of a backed-up table is known to its entity: a new table or
/// column can never be silently left out of backups.
async fn backups_cover_every_table_and_column(engine: Engine) {
    let db = TestDatabase::new(engine).await;
    db.migrated().await.close().await.unwrap();
    let maintenance = Database::connect(&db.maintenance_url(), &PoolConfig::default()).await.unwrap();
    let schema = maintenance.schema_columns().await.unwrap();
    maintenance.close().await.unwrap();
    let derived: Vec<&str> =
        loci_stores::dump::DERIVED_TABLES.iter().chain(loci_stores::dump::KEY_TABLES).map(|(t, _)| *t).collect();
    for (table, columns) in &schema {
        if derived.contains(&table.as_str()) {
            continue;
        }
        assert!(BACKUP_TABLES.contains(&table.as_str()), "table {table} is neither backed up nor derived");
        let mut known: Vec<String> =
            loci_stores::dump::entity_columns(table).unwrap().into_iter().map(str::to_owned).collect();
        known.sort();
        let mut columns = columns.clone();
        columns.sort();
        assert_eq!(columns, known, "columns of {table}");
    }
    for table in BACKUP_TABLES {
        assert!(schema.iter().any(|(t, _)| t == table), "{table} is not in the schema");
    }
}

loci_tests::on_both!(backups_cover_every_table_and_column);
