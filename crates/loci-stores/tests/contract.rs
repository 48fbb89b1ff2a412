//! The store contract, written once and run against SQLite and PostgreSQL.
//! Each PostgreSQL test gets a fresh database and connects as a role that is
//! subject to row-level security.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use loci_core::model::{
    App, Memory, MemoryFilter, MemoryMetadata, MemoryUpdate, NewMemory, Page, PageRequest, SortDirection, SortField,
    SortKey, User, Visibility,
};
use loci_core::{AppId, Category, MemoryId, MemoryState, OrgId};
use loci_stores::repo::outbox::OutboxOperation;
use loci_stores::repo::{apps, memories, orgs, outbox, users};
use loci_stores::testing::{Engine, TestDatabase};
use loci_stores::{Database, StoreError};

fn org(s: &str) -> OrgId {
    OrgId::parse(s).unwrap()
}

/// Provisions org, user and app, as the first request of a user does.
async fn provision(db: &Database, org_id: &str, subject: &str) -> (User, App) {
    let tx = db.begin_tenant(&org(org_id)).await.unwrap();
    orgs::ensure(&tx).await.unwrap();
    let user = users::ensure(&tx, subject).await.unwrap();
    let app = apps::ensure(&tx, user.id, "cli").await.unwrap();
    tx.commit().await.unwrap();
    (user, app)
}

fn new_memory(user: &User, app: &App, content: &str) -> NewMemory {
    NewMemory {
        user_id: user.id,
        app_id: app.id,
        content: content.into(),
        metadata: MemoryMetadata::default(),
        categories: vec![],
    }
}

async fn create(db: &Database, user: &User, app: &App, content: &str) -> MemoryId {
    let tx = db.begin_tenant(&user.org_id).await.unwrap();
    let m = memories::create(&tx, new_memory(user, app, content)).await.unwrap();
    tx.commit().await.unwrap();
    m.id
}

async fn setup(engine: Engine) -> (TestDatabase, Database) {
    let t = TestDatabase::new(engine).await;
    let db = t.migrated().await;
    (t, db)
}

async fn create_forces_the_callers_tenant(engine: Engine) {
    let (_t, db) = setup(engine).await;
    let (alice, app) = provision(&db, "acme", "alice").await;
    provision(&db, "globex", "bob").await;
    let id = create(&db, &alice, &app, "deploys go through the release train").await;

    let tx = db.begin_tenant_read(&org("acme")).await.unwrap();
    let m = memories::get(&tx, id).await.unwrap().expect("visible to its tenant");
    assert_eq!(m.org_id, org("acme"));
    assert_eq!(m.state, MemoryState::Active);
    assert_eq!(m.content_hash, loci_core::content_hash("deploys go through the release train"));
    tx.commit().await.unwrap();
}

async fn create_rejects_another_tenants_user_or_app(engine: Engine) {
    let (_t, db) = setup(engine).await;
    let (alice, alice_app) = provision(&db, "acme", "alice").await;
    let (bob, bob_app) = provision(&db, "globex", "bob").await;

    let tx = db.begin_tenant(&org("globex")).await.unwrap();
    let foreign_app = memories::create(&tx, new_memory(&bob, &alice_app, "x")).await;
    assert!(matches!(foreign_app, Err(StoreError::NotFound("app"))), "{foreign_app:?}");
    let foreign_user = memories::create(&tx, new_memory(&alice, &bob_app, "x")).await;
    assert!(matches!(foreign_user, Err(StoreError::NotFound(_))), "{foreign_user:?}");
    tx.rollback().await.unwrap();
}

async fn get_of_another_tenant_is_none(engine: Engine) {
    let (_t, db) = setup(engine).await;
    let (alice, app) = provision(&db, "acme", "alice").await;
    let id = create(&db, &alice, &app, "secret plan").await;
    let tx = db.begin_tenant_read(&org("globex")).await.unwrap();
    assert_eq!(memories::get(&tx, id).await.unwrap(), None);
    assert_eq!(memories::get_any_state(&tx, id).await.unwrap(), None);
    assert_eq!(apps::get(&tx, app.id).await.unwrap(), None);
    assert_eq!(users::get(&tx, alice.id).await.unwrap(), None);
    assert!(memories::history(&tx, id).await.unwrap().is_empty());
    tx.commit().await.unwrap();
}

async fn list_is_empty_when_nothing_matches_and_never_crosses_tenants(engine: Engine) {
    let (_t, db) = setup(engine).await;
    let (alice, app) = provision(&db, "acme", "alice").await;
    let (bob, _) = provision(&db, "globex", "bob").await;
    create(&db, &alice, &app, "one").await;

    let tx = db.begin_tenant_read(&org("globex")).await.unwrap();
    let page = memories::list(&tx, &MemoryFilter::default(), PageRequest::default()).await.unwrap();
    assert!(page.items.is_empty());
    assert_eq!((page.total, page.pages), (0, 0));
    let page =
        memories::list(&tx, &MemoryFilter { user_id: Some(alice.id), ..Default::default() }, PageRequest::default())
            .await
            .unwrap();
    assert_eq!(page.total, 0, "naming another tenant's user id reveals nothing");
    let _ = bob;
    tx.commit().await.unwrap();

    let tx = db.begin_tenant_read(&org("acme")).await.unwrap();
    let filter = MemoryFilter { search: Some("no such text".into()), ..Default::default() };
    let page = memories::list(&tx, &filter, PageRequest::default()).await.unwrap();
    assert_eq!(page.total, 0);
    tx.commit().await.unwrap();
}

async fn update_of_another_tenant_is_none_and_changes_nothing(engine: Engine) {
    let (_t, db) = setup(engine).await;
    let (alice, app) = provision(&db, "acme", "alice").await;
    let id = create(&db, &alice, &app, "original").await;

    let tx = db.begin_tenant(&org("globex")).await.unwrap();
    let change = MemoryUpdate { content: Some("hijacked".into()), ..Default::default() };
    assert_eq!(memories::update(&tx, id, change).await.unwrap(), None);
    assert_eq!(memories::set_state(&tx, id, MemoryState::Paused, None).await.unwrap(), None);
    assert_eq!(apps::set_active(&tx, app.id, false).await.unwrap(), None);
    tx.commit().await.unwrap();

    let tx = db.begin_tenant_read(&org("acme")).await.unwrap();
    let m = memories::get(&tx, id).await.unwrap().unwrap();
    assert_eq!((m.content.as_str(), m.state), ("original", MemoryState::Active));
    assert!(apps::get(&tx, app.id).await.unwrap().unwrap().is_active);
    tx.commit().await.unwrap();
}

async fn update_changes_fields_and_merges_tags(engine: Engine) {
    let (_t, db) = setup(engine).await;
    let (alice, app) = provision(&db, "acme", "alice").await;
    let tx = db.begin_tenant(&org("acme")).await.unwrap();
    let mut input = new_memory(&alice, &app, "use sqlx");
    input.metadata.tags = BTreeMap::from([("lang".into(), "rust".into()), ("team".into(), "core".into())]);
    let m = memories::create(&tx, input).await.unwrap();
    let change = MemoryUpdate {
        content: Some("use sea-orm".into()),
        category: Some(Some(Category::Decision)),
        tags_merge: BTreeMap::from([("team".into(), serde_json::Value::Null), ("db".into(), "pg".into())]),
        ..Default::default()
    };
    let updated = memories::update(&tx, m.id, change).await.unwrap().unwrap();
    assert_eq!(updated.content, "use sea-orm");
    assert_eq!(updated.content_hash, loci_core::content_hash("use sea-orm"));
    assert_eq!(updated.metadata.category, Some(Category::Decision));
    assert_eq!(updated.metadata.tags, BTreeMap::from([("db".into(), "pg".into()), ("lang".into(), "rust".into())]));
    assert!(updated.updated_at >= m.updated_at);
    assert_eq!(
        outbox::pending_for_memory(&tx, m.id).await.unwrap(),
        [OutboxOperation::Upsert, OutboxOperation::Upsert]
    );
    tx.commit().await.unwrap();
}

async fn delete_is_soft_idempotent_and_false_for_another_tenant(engine: Engine) {
    let (_t, db) = setup(engine).await;
    let (alice, app) = provision(&db, "acme", "alice").await;
    let id = create(&db, &alice, &app, "to be deleted").await;

    let tx = db.begin_tenant(&org("globex")).await.unwrap();
    assert!(!memories::delete(&tx, id, None).await.unwrap());
    assert!(!memories::delete(&tx, MemoryId::new(), None).await.unwrap());
    tx.commit().await.unwrap();

    let tx = db.begin_tenant(&org("acme")).await.unwrap();
    assert!(memories::delete(&tx, id, Some(alice.id)).await.unwrap());
    assert!(memories::delete(&tx, id, Some(alice.id)).await.unwrap(), "idempotent");
    assert_eq!(memories::get(&tx, id).await.unwrap(), None, "deleted memories are not returned");
    let kept = memories::get_any_state(&tx, id).await.unwrap().expect("soft delete keeps the row");
    assert_eq!(kept.state, MemoryState::Deleted);
    assert!(kept.deleted_at.is_some());
    assert_eq!(
        outbox::pending_for_memory(&tx, id).await.unwrap(),
        [OutboxOperation::Upsert, OutboxOperation::Delete],
        "the delete reaches the indexers"
    );
    let history: Vec<_> =
        memories::history(&tx, id).await.unwrap().into_iter().map(|h| (h.old_state, h.new_state)).collect();
    assert_eq!(history, [(None, MemoryState::Active), (Some(MemoryState::Active), MemoryState::Deleted)]);
    tx.commit().await.unwrap();
}

async fn state_machine_is_enforced_with_history(engine: Engine) {
    let (_t, db) = setup(engine).await;
    let (alice, app) = provision(&db, "acme", "alice").await;
    let id = create(&db, &alice, &app, "stateful").await;
    let tx = db.begin_tenant(&org("acme")).await.unwrap();
    for next in [MemoryState::Paused, MemoryState::Active, MemoryState::Archived, MemoryState::Active] {
        let m = memories::set_state(&tx, id, next, Some(alice.id)).await.unwrap().unwrap();
        assert_eq!(m.state, next);
    }
    let m = memories::set_state(&tx, id, MemoryState::Archived, None).await.unwrap().unwrap();
    assert!(m.archived_at.is_some());
    let illegal = memories::set_state(&tx, id, MemoryState::Paused, None).await;
    assert!(matches!(
        illegal,
        Err(StoreError::InvalidTransition { from: MemoryState::Archived, to: MemoryState::Paused })
    ));
    memories::set_state(&tx, id, MemoryState::Deleted, None).await.unwrap();
    let after_delete = memories::set_state(&tx, id, MemoryState::Active, None).await;
    assert!(matches!(after_delete, Err(StoreError::InvalidTransition { .. })), "deleted is terminal");
    let history = memories::history(&tx, id).await.unwrap();
    assert_eq!(history.len(), 7, "create + 6 changes");
    assert_eq!(history[1].changed_by, Some(alice.id));
    tx.commit().await.unwrap();
}

async fn list_paginates_sorts_and_filters_exactly(engine: Engine) {
    let (_t, db) = setup(engine).await;
    let (alice, app) = provision(&db, "acme", "alice").await;
    let tx = db.begin_tenant(&org("acme")).await.unwrap();
    let other_app = apps::ensure(&tx, alice.id, "ide").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..7 {
        let a = if i % 2 == 0 { &app } else { &other_app };
        let mut input = new_memory(&alice, a, &format!("note {i} about 100% Coverage_x"));
        if i < 3 {
            input.metadata.category = Some(Category::Testing);
        }
        ids.push(memories::create(&tx, input).await.unwrap().id);
    }
    memories::set_state(&tx, ids[6], MemoryState::Archived, None).await.unwrap();
    memories::delete(&tx, ids[5], None).await.unwrap();
    tx.commit().await.unwrap();

    let tx = db.begin_tenant_read(&org("acme")).await.unwrap();
    let all = MemoryFilter::default();
    let p1 = memories::list(&tx, &all, PageRequest { page: 1, size: 2 }).await.unwrap();
    assert_eq!((p1.total, p1.pages, p1.items.len()), (5, 3, 2), "archived and deleted excluded");
    let p3 = memories::list(&tx, &all, PageRequest { page: 3, size: 2 }).await.unwrap();
    assert_eq!(p3.items.len(), 1);
    let p4 = memories::list(&tx, &all, PageRequest { page: 4, size: 2 }).await.unwrap();
    assert!(p4.items.is_empty());
    assert_eq!(p4.total, 5);
    let newest_first: Vec<_> =
        memories::list(&tx, &all, PageRequest::default()).await.unwrap().items.iter().map(|m| m.id).collect();
    assert_eq!(newest_first, [ids[4], ids[3], ids[2], ids[1], ids[0]]);
    let asc = MemoryFilter { direction: SortDirection::Asc, sort: SortField::CreatedAt, ..Default::default() };
    let oldest_first: Vec<_> =
        memories::list(&tx, &asc, PageRequest::default()).await.unwrap().items.iter().map(|m| m.id).collect();
    assert_eq!(oldest_first, [ids[0], ids[1], ids[2], ids[3], ids[4]]);

    let by_app = MemoryFilter { app_id: Some(other_app.id), ..Default::default() };
    assert_eq!(memories::list(&tx, &by_app, PageRequest::default()).await.unwrap().total, 2);
    let by_category = MemoryFilter { category: Some(Category::Testing), ..Default::default() };
    assert_eq!(memories::list(&tx, &by_category, PageRequest::default()).await.unwrap().total, 3);
    let with_archived = MemoryFilter { states: vec![MemoryState::Active, MemoryState::Archived], ..Default::default() };
    assert_eq!(memories::list(&tx, &with_archived, PageRequest::default()).await.unwrap().total, 6);
    let search = MemoryFilter { search: Some("NOTE 3".into()), ..Default::default() };
    assert_eq!(memories::list(&tx, &search, PageRequest::default()).await.unwrap().total, 1, "case-insensitive");
    let literal = MemoryFilter { search: Some("100% c".into()), ..Default::default() };
    assert_eq!(memories::list(&tx, &literal, PageRequest::default()).await.unwrap().total, 5);
    let wildcard = MemoryFilter { search: Some("note_".into()), ..Default::default() };
    assert_eq!(memories::list(&tx, &wildcard, PageRequest::default()).await.unwrap().total, 0, "_ is literal");
    let unknown_app = MemoryFilter { app_id: Some(AppId::new()), ..Default::default() };
    assert_eq!(memories::list(&tx, &unknown_app, PageRequest::default()).await.unwrap().total, 0);
    tx.commit().await.unwrap();
}

async fn users_and_apps_are_provisioned_once(engine: Engine) {
    let (_t, db) = setup(engine).await;
    let (u1, a1) = provision(&db, "acme", "alice").await;
    let (u2, a2) = provision(&db, "acme", "alice").await;
    assert_eq!((u1.id, a1.id), (u2.id, a2.id));
    let (u3, _) = provision(&db, "globex", "alice").await;
    assert_ne!(u1.id, u3.id, "the same subject in another org is another user");
    let tx = db.begin_tenant(&org("acme")).await.unwrap();
    assert_eq!(apps::list_for_owner(&tx, u1.id).await.unwrap().len(), 1);
    let paused = apps::set_active(&tx, a1.id, false).await.unwrap().unwrap();
    assert!(!paused.is_active);
    tx.commit().await.unwrap();
}

async fn migrations_go_down_and_up_again(engine: Engine) {
    let (_t, db) = setup(engine).await;
    let status = db.migration_status().await.unwrap();
    assert!(!status.is_empty() && status.iter().all(|m| m.applied), "{status:?}");
    // One step down reverts exactly the newest migration; all steps, all.
    db.migrate_down(1).await.unwrap();
    let after_one = db.migration_status().await.unwrap();
    assert!(!after_one.last().unwrap().applied, "{after_one:?}");
    assert!(after_one[..after_one.len() - 1].iter().all(|m| m.applied), "{after_one:?}");
    db.migrate_down(u32::try_from(status.len()).unwrap()).await.unwrap();
    assert!(db.migration_status().await.unwrap().iter().all(|m| !m.applied));
    db.migrate_up().await.unwrap();
    provision(&db, "acme", "alice").await;
    db.migrate_fresh().await.unwrap();
    let tx = db.begin_tenant_read(&org("acme")).await.unwrap();
    assert_eq!(users::find_by_subject(&tx, "alice").await.unwrap(), None, "fresh starts empty");
    tx.commit().await.unwrap();
}

async fn visibility_follows_owner_and_grants_inside_the_query(engine: Engine) {
    use loci_core::AccessEntity;
    use loci_core::model::Visibility;
    let (_t, db) = setup(engine).await;
    let (alice, app) = provision(&db, "acme", "alice").await;
    let (bob, _) = provision(&db, "acme", "bob").await;
    let tx = db.begin_tenant(&org("acme")).await.unwrap();
    let mut ids = std::collections::BTreeMap::new();
    for (name, entity) in [
        ("private", None),
        ("team", Some("team:acme/core")),
        ("nested", Some("team:acme/loci/backend")),
        ("project", Some("project:acme/loci")),
        ("org", Some("org:acme")),
        ("for-bob", Some("user:bob")),
        ("like-trap", Some("team:acme_x/core")),
    ] {
        let mut input = new_memory(&alice, &app, name);
        input.metadata.access_entity = entity.map(|e| e.parse().unwrap());
        input.categories = vec![format!("cat-{name}")];
        ids.insert(name, memories::create(&tx, input).await.unwrap().id);
    }
    tx.commit().await.unwrap();

    let seen = |grants: Vec<&'static str>| {
        let db = db.clone();
        let bob_id = bob.id;
        async move {
            let tx = db.begin_tenant_read(&org("acme")).await.unwrap();
            let filter = MemoryFilter {
                visible_to: Some(Visibility {
                    user_id: bob_id,
                    grants: grants.iter().map(|g| g.parse::<AccessEntity>().unwrap()).collect(),
                }),
                ..Default::default()
            };
            let page = memories::list(&tx, &filter, PageRequest { page: 1, size: 100 }).await.unwrap();
            tx.commit().await.unwrap();
            let mut names: Vec<String> = page.items.into_iter().map(|m| m.content).collect();
            names.sort();
            names
        }
    };
    assert_eq!(seen(vec!["user:bob"]).await, ["for-bob"]);
    assert_eq!(seen(vec!["user:bob", "team:acme/core"]).await, ["for-bob", "team"]);
    assert_eq!(seen(vec!["user:bob", "project:acme/loci"]).await, ["for-bob", "nested", "project"]);
    assert_eq!(seen(vec!["user:bob", "org:acme"]).await, ["for-bob", "nested", "org", "project", "team"]);
    assert_eq!(seen(vec!["user:bob", "org:acme_"]).await, ["for-bob"], "_ in an org name is literal");

    // Category names come back with each memory and filter by name.
    let tx = db.begin_tenant_read(&org("acme")).await.unwrap();
    let m = memories::get(&tx, ids["team"]).await.unwrap().unwrap();
    assert_eq!(m.categories, ["cat-team"]);
    let by_name = MemoryFilter { category_names: vec!["cat-org".into(), "cat-team".into()], ..Default::default() };
    assert_eq!(memories::list(&tx, &by_name, PageRequest::default()).await.unwrap().total, 2);
    tx.commit().await.unwrap();
}

async fn structured_and_tag_filters(engine: Engine) {
    use loci_core::{ArtifactType, Scope, Source};
    let (_t, db) = setup(engine).await;
    let (alice, app) = provision(&db, "acme", "alice").await;
    let tx = db.begin_tenant(&org("acme")).await.unwrap();
    let mut a = new_memory(&alice, &app, "a");
    a.metadata.scope = Some(Scope::Team);
    a.metadata.artifact_type = Some(ArtifactType::Service);
    a.metadata.entity = Some("billing".into());
    a.metadata.source = Some(Source::Inference);
    a.metadata.tags = BTreeMap::from([("env".into(), "prod".into()), ("tier".into(), "1".into())]);
    memories::create(&tx, a).await.unwrap();
    let mut b = new_memory(&alice, &app, "b");
    b.metadata.tags = BTreeMap::from([
        ("env".into(), "dev".into()),
        ("we\"ird".into(), "x".into()),
        ("tier".into(), serde_json::json!(1)),
    ]);
    memories::create(&tx, b).await.unwrap();
    tx.commit().await.unwrap();
    let tx = db.begin_tenant_read(&org("acme")).await.unwrap();
    let count = |f: MemoryFilter| {
        let tx = &tx;
        async move { memories::list(tx, &f, PageRequest::default()).await.unwrap().total }
    };
    assert_eq!(count(MemoryFilter { scopes: vec![Scope::Team], ..Default::default() }).await, 1);
    assert_eq!(count(MemoryFilter { artifact_types: vec![ArtifactType::Service], ..Default::default() }).await, 1);
    assert_eq!(count(MemoryFilter { entities: vec!["billing".into()], ..Default::default() }).await, 1);
    assert_eq!(count(MemoryFilter { sources: vec![Source::Inference], ..Default::default() }).await, 1);
    let tags = |pairs: &[(&str, &str)]| MemoryFilter {
        tags: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Default::default()
    };
    assert_eq!(count(tags(&[("env", "prod")])).await, 1);
    assert_eq!(count(tags(&[("env", "prod"), ("tier", "1")])).await, 1);
    assert_eq!(count(tags(&[("tier", "1")])).await, 1, "the number 1 is not the string \"1\", on both engines");
    assert_eq!(count(tags(&[("env", "prod"), ("tier", "2")])).await, 0);
    assert_eq!(count(tags(&[("we\"ird", "x")])).await, 1, "quotes in keys are escaped");
    assert_eq!(count(tags(&[("missing", "x")])).await, 0);
    let stats = memories::stats(&tx, &MemoryFilter::default()).await.unwrap();
    assert_eq!(stats.total_memories, 2);
    tx.commit().await.unwrap();
}

async fn processed_outbox_rows_are_pruned_keeping_each_orgs_newest(engine: Engine) {
    let (_t, db) = setup(engine).await;
    for name in ["acme", "globex"] {
        let (user, app) = provision(&db, name, "alice").await;
        let tx = db.begin_tenant(&org(name)).await.unwrap();
        for i in 0..3 {
            memories::create(&tx, new_memory(&user, &app, &format!("{name} {i}"))).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    let claimed = outbox::claim(&db, 100, std::time::Duration::from_secs(60)).await.unwrap();
    assert_eq!(claimed.len(), 6);
    let (done, pending): (Vec<_>, Vec<_>) = claimed.iter().partition(|e| e.memory_id != claimed[1].memory_id);
    outbox::complete(&db, &done.iter().map(|e| e.id).collect::<Vec<_>>()).await.unwrap();
    // Within the retention nothing goes.
    assert_eq!(outbox::prune(&db, std::time::Duration::from_secs(3600), 100).await.unwrap(), 0);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // Past it: processed rows go in batches, pending ones and each org's newest row stay.
    let first = outbox::prune(&db, std::time::Duration::ZERO, 1).await.unwrap();
    let rest = outbox::prune(&db, std::time::Duration::ZERO, 100).await.unwrap();
    assert_eq!((first, rest), (1, 2), "5 processed rows, minus each org's newest");
    assert_eq!(outbox::pending_count(&db).await.unwrap(), pending.len() as u64);
    let mut orgs = outbox::orgs(&db).await.unwrap();
    orgs.sort();
    assert_eq!(orgs, [org("acme"), org("globex")], "every org stays findable for reindex");
}

/// The list total of the caller's own memories by state comes from
/// `memory_counts`; it must equal a count of the rows after every kind of
/// change, including rows that existed before the table (the backfill).
async fn stored_counts_match_the_rows(engine: Engine) {
    let (_t, db) = setup(engine).await;
    let (alice, app) = provision(&db, "acme", "alice").await;
    let (bob, bob_app) = provision(&db, "acme", "bob").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(create(&db, &alice, &app, &format!("alice {i}")).await);
    }
    create(&db, &bob, &bob_app, "bob 0").await;
    // Rows written before the counts existed are counted by the migration
    // (reverted with every later one, then applied again).
    db.migrate_down(db.steps_down_through("m20261206_000002_memory_counts").await.unwrap().unwrap()).await.unwrap();
    db.migrate_up().await.unwrap();
    let total = |states: Vec<MemoryState>| {
        let db = &db;
        let vis = Visibility { user_id: alice.id, grants: vec!["user:alice".parse().unwrap()] };
        async move {
            let filter = MemoryFilter { visible_to: Some(vis), states, ..Default::default() };
            assert!(filter.only_states());
            let tx = db.begin_tenant_read(&org("acme")).await.unwrap();
            let stored = memories::list(&tx, &filter, PageRequest::default()).await.unwrap().total;
            // The same filter through the counting path (a second, empty
            // condition makes it more than states).
            let counted_filter = MemoryFilter { search: Some(String::new()), ..filter };
            assert!(!counted_filter.only_states());
            let counted = memories::list(&tx, &counted_filter, PageRequest::default()).await.unwrap().total;
            tx.commit().await.unwrap();
            assert_eq!(stored, counted);
            stored
        }
    };
    assert_eq!(total(vec![MemoryState::Active]).await, 5);
    let tx = db.begin_tenant(&org("acme")).await.unwrap();
    memories::set_state(&tx, ids[0], MemoryState::Archived, None).await.unwrap();
    memories::set_state(&tx, ids[1], MemoryState::Paused, None).await.unwrap();
    memories::delete(&tx, ids[2], None).await.unwrap();
    tx.commit().await.unwrap();
    let tx = db.begin_tenant(&org("acme")).await.unwrap();
    memories::create(&tx, new_memory(&alice, &app, "rolled back")).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(total(vec![MemoryState::Active]).await, 2);
    assert_eq!(total(vec![MemoryState::Active, MemoryState::Paused]).await, 3);
    assert_eq!(total(vec![MemoryState::Archived]).await, 1);
    assert_eq!(total(Vec::new()).await, 5, "every state, deleted included");
}

/// A list of one category is read from its links, which carry copies of
/// their memory's owner, state, access entity and creation time: after every
/// kind of change (and for links stored before the copies existed) its pages,
/// cursors and totals equal those of the general path.
async fn category_links_follow_their_memories(engine: Engine) {
    let (_t, db) = setup(engine).await;
    let (alice, app) = provision(&db, "acme", "alice").await;
    let (bob, bob_app) = provision(&db, "acme", "bob").await;
    let file = |user: &User, app: &App, content: &str, access: Option<&str>| {
        let mut input = new_memory(user, app, content);
        input.categories = vec!["ops".into()];
        input.metadata.access_entity = access.map(|a| a.parse().unwrap());
        input
    };
    let mut mine = Vec::new();
    let mut theirs = Vec::new();
    let tx = db.begin_tenant(&org("acme")).await.unwrap();
    for i in 0..4 {
        mine.push(memories::create(&tx, file(&alice, &app, &format!("alice {i}"), None)).await.unwrap().id);
        theirs.push(
            memories::create(&tx, file(&bob, &bob_app, &format!("bob {i}"), Some("user:alice"))).await.unwrap().id,
        );
    }
    tx.commit().await.unwrap();
    // Links stored before the copies existed get them from the migration
    // (reverted with every later one, then applied again).
    db.migrate_down(db.steps_down_through("m20261207_000001_category_links").await.unwrap().unwrap()).await.unwrap();
    db.migrate_up().await.unwrap();
    let tx = db.begin_tenant(&org("acme")).await.unwrap();
    for i in 4..8 {
        mine.push(memories::create(&tx, file(&alice, &app, &format!("alice {i}"), None)).await.unwrap().id);
        memories::create(&tx, file(&bob, &bob_app, &format!("bob private {i}"), None)).await.unwrap();
    }
    memories::set_state(&tx, mine[0], MemoryState::Paused, None).await.unwrap();
    memories::set_state(&tx, mine[1], MemoryState::Archived, None).await.unwrap();
    memories::delete(&tx, mine[5], None).await.unwrap();
    let unshare = MemoryUpdate { access_entity: Some(None), ..Default::default() };
    memories::update(&tx, theirs[0], unshare).await.unwrap();
    let recategorise = MemoryUpdate { categories: Some(vec!["dev".into()]), ..Default::default() };
    memories::update(&tx, mine[6], recategorise).await.unwrap();
    tx.commit().await.unwrap();

    let vis = Visibility { user_id: alice.id, grants: vec!["user:alice".parse().unwrap()] };
    let by_links = MemoryFilter {
        visible_to: Some(vis),
        category_names: vec!["ops".into()],
        states: vec![MemoryState::Active, MemoryState::Paused],
        ..Default::default()
    };
    // An empty search makes the filter more than one category: the general path.
    let general = MemoryFilter { search: Some(String::new()), ..by_links.clone() };
    let tx = db.begin_tenant_read(&org("acme")).await.unwrap();
    let ids = |page: &Page<Memory>| page.items.iter().map(|m| m.id).collect::<Vec<_>>();
    let mut seen = Vec::new();
    for number in 1..=4 {
        let page = PageRequest { page: number, size: 3 };
        let fast = memories::list(&tx, &by_links, page).await.unwrap();
        let slow = memories::list(&tx, &general, page).await.unwrap();
        assert_eq!(ids(&fast), ids(&slow), "page {number}");
        assert_eq!(fast.total, slow.total);
        seen.extend(ids(&fast));
    }
    // alice's 8, less the archived, deleted and recategorised; bob's three still shared.
    let expected: std::collections::HashSet<MemoryId> =
        [mine[0], mine[2], mine[3], mine[4], mine[7], theirs[1], theirs[2], theirs[3]].into_iter().collect();
    assert_eq!(seen.len(), expected.len());
    assert_eq!(seen.iter().copied().collect::<std::collections::HashSet<_>>(), expected);
    let first = memories::list(&tx, &by_links, PageRequest { page: 1, size: 3 }).await.unwrap();
    let after = SortKey::of(first.items.last().unwrap(), SortField::CreatedAt);
    let next = |f: &MemoryFilter| MemoryFilter { after: after.clone(), ..f.clone() };
    let fast = memories::list(&tx, &next(&by_links), PageRequest { page: 1, size: 3 }).await.unwrap();
    let slow = memories::list(&tx, &next(&general), PageRequest { page: 1, size: 3 }).await.unwrap();
    assert_eq!(ids(&fast), ids(&slow));
    assert_eq!(ids(&fast), seen[3..6]);
    tx.commit().await.unwrap();
}

async fn stream_neighbours_skip_other_streams_and_deleted_memories(engine: Engine) {
    let (_t, db) = setup(engine).await;
    let (alice, cli) = provision(&db, "acme", "alice").await;
    let (bob, bobs_cli) = provision(&db, "acme", "bob").await;
    let tx = db.begin_tenant(&org("acme")).await.unwrap();
    let web = apps::ensure(&tx, alice.id, "web").await.unwrap();
    tx.commit().await.unwrap();
    let a = create(&db, &alice, &cli, "a").await;
    create(&db, &alice, &web, "another app").await;
    create(&db, &bob, &bobs_cli, "another user").await;
    let gone = create(&db, &alice, &cli, "deleted").await;
    let b = create(&db, &alice, &cli, "b").await;
    let c = create(&db, &alice, &cli, "c").await;
    let (mallory, evil) = provision(&db, "evil", "mallory").await;
    let theirs = create(&db, &mallory, &evil, "theirs").await;

    let tx = db.begin_tenant(&org("acme")).await.unwrap();
    assert!(memories::delete(&tx, gone, Some(alice.id)).await.unwrap());
    let mut rows = memories::stream_neighbours(&tx, &[a, b, c, theirs]).await.unwrap();
    rows.sort_by_key(|(id, _, _)| *id);
    assert_eq!(rows, vec![(a, None, Some(b)), (b, Some(a), Some(c)), (c, Some(b), None)]);
    assert!(memories::stream_neighbours(&tx, &[]).await.unwrap().is_empty());
    tx.commit().await.unwrap();
}

macro_rules! contract {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name(super::Engine::Sqlite).await })+
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name(super::Engine::Postgres).await })+
        }
    };
}

contract!(
    create_forces_the_callers_tenant,
    create_rejects_another_tenants_user_or_app,
    get_of_another_tenant_is_none,
    list_is_empty_when_nothing_matches_and_never_crosses_tenants,
    update_of_another_tenant_is_none_and_changes_nothing,
    update_changes_fields_and_merges_tags,
    delete_is_soft_idempotent_and_false_for_another_tenant,
    state_machine_is_enforced_with_history,
    list_paginates_sorts_and_filters_exactly,
    users_and_apps_are_provisioned_once,
    migrations_go_down_and_up_again,
    visibility_follows_owner_and_grants_inside_the_query,
    structured_and_tag_filters,
    processed_outbox_rows_are_pruned_keeping_each_orgs_newest,
    stored_counts_match_the_rows,
    category_links_follow_their_memories,
    stream_neighbours_skip_other_streams_and_deleted_memories,
);
