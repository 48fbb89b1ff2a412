//! Backup export -> import round trips, on PostgreSQL and SQLite.

use loci_tests::{Engine, TestApp, TestUser};
use serde_json::{Value, json};

async fn export(user: &TestUser<'_>) -> Vec<u8> {
    let res =
        user.app.client.post(user.app.url("/api/v1/backup/export")).bearer_auth(&user.token).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    assert!(res.headers()["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"loci-backup-"));
    res.bytes().await.unwrap().to_vec()
}

async fn import(user: &TestUser<'_>, zip: Vec<u8>, mode: &str, multipart: bool) -> (u16, Value) {
    let req =
        user.app.client.post(user.app.url(&format!("/api/v1/backup/import?mode={mode}"))).bearer_auth(&user.token);
    let req = if multipart {
        let part = reqwest::multipart::Part::bytes(zip).file_name("backup.zip").mime_str("application/zip").unwrap();
        req.multipart(reqwest::multipart::Form::new().part("file", part))
    } else {
        req.header("content-type", "application/zip").body(zip)
    };
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// An editor who may also export and import.
fn backup_user<'a>(app: &'a TestApp, subject: &str, org: &str) -> TestUser<'a> {
    let token = app.mint_full(subject, org, &["backup:read", "backup:write"], &["editor"], &[], None);
    TestUser { app, token }
}

/// Everything that makes a memory "the same", without ids and owners.
async fn snapshot(user: &TestUser<'_>) -> Vec<Value> {
    let (_, page) =
        user.get("/api/v1/memories?show_archived=true&sort_column=content&sort_direction=asc&size=100").await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            json!({
                "content": m["content"], "metadata": m["metadata"], "state": m["state"],
                "categories": m["categories"], "created_at": m["created_at"], "app_name": m["app_name"],
            })
        })
        .collect()
}

async fn export_then_import_into_a_new_tenant_reproduces_the_memories(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let alice = backup_user(&app, "alice", "acme");
    alice.remember("one: plain", json!({})).await;
    let two = alice
        .remember(
            "two: rich",
            json!({"category": "decision", "access_entity": "user:alice", "tags": {"env": "prod"},
                   "evidence": ["PR 42"], "categories": ["ops", "db"], "artifact_type": "db", "ticket": 7}),
        )
        .await;
    let three = alice.remember("three: archived", json!({"access_entity": "team:acme/core"})).await;
    alice.post("/api/v1/memories/actions/pause", json!({"memory_ids": [two]})).await;
    alice.post("/api/v1/memories/actions/archive", json!({"memory_ids": [three]})).await;
    let gone = alice.remember("four: deleted", json!({})).await;
    alice.delete("/api/v1/memories", json!({"memory_ids": [gone]})).await;
    let before = snapshot(&alice).await;
    assert_eq!(before.len(), 3);

    let zip = export(&alice).await;
    // A new tenant: nothing in common with acme.
    let zed = backup_user(&app, "zed", "initech");
    let (status, report) = import(&zed, zip.clone(), "skip", true).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["imported"], 4, "deleted memories travel too: {report}");
    assert_eq!(report["access_entities_dropped"], 1, "team:acme/core means nothing in initech");
    let after = snapshot(&zed).await;
    let strip = |mut v: Vec<Value>| {
        for m in &mut v {
            m["metadata"]["access_entity"] = Value::Null;
            m["metadata"]["scope"] = Value::Null;
        }
        v
    };
    assert_eq!(strip(after), strip(before.clone()), "same memories, states, metadata, categories and times");
    // The original owner's data is untouched.
    assert_eq!(snapshot(&alice).await, before);

    // Importing into the same account again: skip keeps, overwrite replaces.
    let (_, report) = import(&alice, zip.clone(), "skip", false).await;
    assert_eq!((report["imported"].as_u64(), report["skipped"].as_u64()), (Some(0), Some(4)), "{report}");
    let (_, report) = import(&alice, zip, "overwrite", false).await;
    assert_eq!(report["overwritten"], 3, "{report}");
    assert_eq!(snapshot(&alice).await, before);
}

async fn bad_uploads_are_rejected(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let alice = backup_user(&app, "alice", "acme");
    let (status, problem) = import(&alice, b"this is not a zip".to_vec(), "skip", false).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("VALIDATION_FAILED")));
    let (status, _) = import(&alice, vec![], "sideways", false).await;
    assert_eq!(status, 422);
    let (status, problem) =
        alice.raw(reqwest::Method::POST, "/api/v1/backup/import", "text/plain", b"x".to_vec()).await;
    assert_eq!((status, problem["code"].as_str()), (415, Some("UNSUPPORTED_MEDIA_TYPE")));
    let reader = app.user_with_scopes("rita", "acme", &["memories:read"]);
    let (status, problem) = reader.post("/api/v1/backup/export", json!({})).await;
    assert_eq!((status, problem["required_scope"].as_str()), (403, Some("backup:read")));
}

/// The zip's `memories.json`, sent as `application/json`, imports the same
/// memories; a form carries the zip as `file` and nothing else.
async fn a_backup_document_imports_as_json(engine: Engine) {
    use std::io::Read;
    let app = TestApp::spawn(engine).await;
    let alice = backup_user(&app, "alice", "acme");
    alice.remember("kept as json", json!({"category": "decision", "tags": {"env": "prod"}})).await;
    let paused = alice.remember("paused as json", json!({})).await;
    alice.post("/api/v1/memories/actions/pause", json!({"memory_ids": [paused]})).await;
    let zip = export(&alice).await;
    let mut document = String::new();
    zip::ZipArchive::new(std::io::Cursor::new(zip.clone()))
        .unwrap()
        .by_name("memories.json")
        .unwrap()
        .read_to_string(&mut document)
        .unwrap();

    let zed = backup_user(&app, "zed", "initech");
    let (status, report) =
        zed.raw(reqwest::Method::POST, "/api/v1/backup/import", "application/json", document.into_bytes()).await;
    assert_eq!((status, report["imported"].as_u64()), (200, Some(2)), "{report}");
    assert_eq!(snapshot(&zed).await, snapshot(&alice).await);

    let (status, problem) = zed
        .raw(reqwest::Method::POST, "/api/v1/backup/import", "application/json", b"{\"memories\": 3}".to_vec())
        .await;
    assert_eq!((status, problem["errors"][0]["field"].as_str()), (422, Some("body")), "{problem}");

    let form = reqwest::multipart::Form::new()
        .text("note", "hello")
        .part("file", reqwest::multipart::Part::bytes(zip).file_name("backup.zip"));
    let res =
        app.client.post(app.url("/api/v1/backup/import")).bearer_auth(&zed.token).multipart(form).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 422);
    let problem: Value = res.json().await.unwrap();
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("`note`"), "{problem}");
}

loci_tests::on_both!(
    export_then_import_into_a_new_tenant_reproduces_the_memories,
    bad_uploads_are_rejected,
    a_backup_document_imports_as_json
);
