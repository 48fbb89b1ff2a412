#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The embedded graph index, on SQLite and PostgreSQL: extraction, ranking,
//! related memories, tenant isolation, visibility and state filters inside
//! the query, deletes, idempotent upserts and row-level security on its
//! tables.

use std::collections::BTreeMap;
use std::time::Duration;

use loci_core::model::{App, MemoryMetadata, MemoryUpdate, NewMemory, User, Visibility};
use loci_core::{AccessEntity, MemoryId, MemoryState, OrgId};
use loci_index::extract::{EntityKind, doc_entities, extract_entities};
use loci_index::{GraphIndex, IndexDoc, SearchFilter};
use loci_stores::graph::EmbeddedGraphIndex;
use loci_stores::repo::{apps, memories, orgs, users};
use loci_stores::testing::{Engine, TestDatabase};
use loci_stores::{Database, DatabaseKind};
use sea_orm::{ConnectionTrait, Statement};

fn org(s: &str) -> OrgId {
    OrgId::parse(s).unwrap()
}

async fn setup(engine: Engine) -> (TestDatabase, Database, EmbeddedGraphIndex) {
    let t = TestDatabase::new(engine).await;
    let db = t.migrated().await;
    let index = EmbeddedGraphIndex::new(db.clone());
    (t, db, index)
}

async fn provision(db: &Database, org_id: &str, subject: &str) -> (User, App) {
    let tx = db.begin_tenant(&org(org_id)).await.unwrap();
    orgs::ensure(&tx).await.unwrap();
    let user = users::ensure(&tx, subject).await.unwrap();
    let app = apps::ensure(&tx, user.id, "cli").await.unwrap();
    tx.commit().await.unwrap();
    (user, app)
}

async fn create_with(db: &Database, user: &User, app: &App, content: &str, metadata: MemoryMetadata) -> MemoryId {
    // Distinct creation times, so recency breaks ties deterministically.
    tokio::time::sleep(Duration::from_millis(3)).await;
    let tx = db.begin_tenant(&user.org_id).await.unwrap();
    let input = NewMemory { user_id: user.id, app_id: app.id, content: content.into(), metadata, categories: vec![] };
    let m = memories::create(&tx, input).await.unwrap();
    tx.commit().await.unwrap();
    m.id
}

async fn create(db: &Database, user: &User, app: &App, content: &str) -> MemoryId {
    create_with(db, user, app, content, MemoryMetadata::default()).await
}

/// The index document of a stored memory, as the indexer builds it.
async fn doc(db: &Database, org_id: &OrgId, id: MemoryId) -> IndexDoc {
    let tx = db.begin_tenant_read(org_id).await.unwrap();
    let m = memories::get_any_state(&tx, id).await.unwrap().expect("memory exists");
    tx.commit().await.unwrap();
    IndexDoc::from_memory(&m)
}

async fn docs(db: &Database, org_id: &OrgId, ids: &[MemoryId]) -> Vec<IndexDoc> {
    let mut out = Vec::new();
    for id in ids {
        out.push(doc(db, org_id, *id).await);
    }
    out
}

fn owner_filter(user: &User) -> SearchFilter {
    SearchFilter::new(user.org_id.clone(), Some(Visibility { user_id: user.id, grants: vec![] }))
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn ids_of(hits: &[loci_index::Hit]) -> Vec<MemoryId> {
    hits.iter().map(|h| h.id).collect()
}

fn scores_of(hits: &[loci_index::Hit]) -> Vec<f32> {
    hits.iter().map(|h| (h.score * 1000.0).round() / 1000.0).collect()
}

/// The IDF weight of an entity mentioned by `df` of `n` memories, rounded
/// like [`scores_of`].
fn idf(df: f64, n: f64) -> f32 {
    ((((n + 1.0) / (df + 0.5)).ln().max(0.1) * 1000.0).round() / 1000.0) as f32
}

fn rounded(x: f32) -> f32 {
    (x * 1000.0).round() / 1000.0
}

/// A connection that sees every row of the test database (the superuser on
/// PostgreSQL, past RLS; the file itself on SQLite).
async fn raw_connection(t: &TestDatabase) -> sea_orm::DatabaseConnection {
    match t.engine {
        Engine::Postgres => t.admin_connection().await,
        Engine::Sqlite => sea_orm::Database::connect(t.url.as_str()).await.unwrap(),
    }
}

/// Every edge as `(name a, name b, weight)` with the names sorted, and the
/// number of mention rows: the stored graph, read past the index.
async fn stored_graph(t: &TestDatabase) -> (Vec<(String, String, i64)>, i64) {
    let conn = raw_connection(t).await;
    let backend = conn.get_database_backend();
    let rows = conn
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT ea.org_id AS org, ea.name AS an, eb.name AS bn, CAST(e.weight AS BIGINT) AS w \
             FROM graph_edges e JOIN graph_entities ea ON ea.id = e.a JOIN graph_entities eb ON eb.id = e.b",
        ))
        .await
        .unwrap();
    let mut edges: Vec<(String, String, i64)> = rows
        .iter()
        .map(|r| {
            let org: String = r.try_get("", "org").unwrap();
            let (a, b): (String, String) = (r.try_get("", "an").unwrap(), r.try_get("", "bn").unwrap());
            let (a, b) = if a <= b { (a, b) } else { (b, a) };
            (format!("{org}/{a}"), b, r.try_get("", "w").unwrap())
        })
        .collect();
    edges.sort();
    let mentions = conn
        .query_one_raw(Statement::from_string(backend, "SELECT COUNT(*) AS n FROM graph_mentions"))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "n")
        .unwrap();
    conn.close().await.ok();
    (edges, mentions)
}

fn edge(a: &str, b: &str, w: i64) -> (String, String, i64) {
    (a.to_owned(), b.to_owned(), w)
}

#[test]
fn extraction_table() {
    use EntityKind::{Identifier, Person, Term};
    let cases: &[(&str, &[(&str, EntityKind)])] = &[
        ("Caroline went to a LGBTQ support group.", &[("caroline", Term), ("lgbtq", Term)]),
        ("Yesterday Melanie's daughter visited New York City.", &[("melanie", Term), ("new york city", Term)]),
        ("What did We do? It was fine.", &[]),
        ("Melanie: I painted a lake\nCaroline: lovely", &[("melanie", Person), ("caroline", Person)]),
        ("the fix is in crates/loci-stores/src/db.rs", &[("crates/loci-stores/src/db.rs", Identifier)]),
        ("call `begin_tenant` on Database", &[("begin_tenant", Identifier), ("database", Term)]),
        (
            "maxConnections and PoolConfig and loci_core::OrgId",
            &[("maxconnections", Identifier), ("poolconfig", Identifier), ("loci_core::orgid", Identifier)],
        ),
        ("nothing capitalised here at all", &[]),
    ];
    for (text, want) in cases {
        let got: Vec<(String, EntityKind)> = extract_entities(text).into_iter().map(|e| (e.name, e.kind)).collect();
        let want: Vec<(String, EntityKind)> = want.iter().map(|(n, k)| ((*n).to_owned(), *k)).collect();
        assert_eq!(got, want, "{text:?}");
    }
}

#[test]
fn a_documents_structured_entity_comes_first_and_wins_the_kind() {
    let mut d = IndexDoc {
        id: MemoryId::new(),
        org_id: org("acme"),
        user_id: loci_core::UserId::new(),
        app_id: loci_core::AppId::new(),
        state: MemoryState::Active,
        content: "Billing talks to Stripe.".into(),
        context: "Zed said hi".into(),
        access_entity: None,
        fields: loci_index::StructuredFields { entity: Some(" Billing ".into()), ..Default::default() },
        tags: BTreeMap::new(),
        created_at: chrono::Utc::now(),
    };
    let got: Vec<(String, String, EntityKind)> =
        doc_entities(&d).into_iter().map(|e| (e.name, e.display, e.kind)).collect();
    assert_eq!(
        got,
        [
            ("billing".to_owned(), "Billing".to_owned(), EntityKind::Structured),
            ("stripe".to_owned(), "Stripe".to_owned(), EntityKind::Term)
        ],
        "the context is not the memory's own text"
    );
    d.fields.entity = None;
    assert_eq!(doc_entities(&d).len(), 2);
}

async fn mentions_rank_by_query_entities_then_recency_with_one_hop(engine: Engine) {
    let (_t, db, index) = setup(engine).await;
    let (alice, app) = provision(&db, "acme", "alice").await;
    let acme = org("acme");
    let m1 = create(&db, &alice, &app, "Caroline and Melanie went hiking in Colorado.").await;
    let m2 = create(&db, &alice, &app, "Caroline likes painting.").await;
    let m3 = create(&db, &alice, &app, "Melanie adopted a dog.").await;
    let m4 = create(&db, &alice, &app, "nothing worth a name here").await;
    index.upsert(&docs(&db, &acme, &[m1, m2, m3, m4]).await).await.unwrap();
    assert_eq!(index.count(&acme).await.unwrap(), 3, "caroline, melanie, colorado");

    assert_eq!(
        index.entities_in(&acme, "what did caroline and Melanie's friends say about colorado?").await.unwrap(),
        names(&["caroline", "melanie", "colorado"]),
        "plain lower-case words match known entities"
    );
    assert!(index.entities_in(&acme, "what about dogs").await.unwrap().is_empty());
    assert!(index.entities_in(&acme, "").await.unwrap().is_empty());

    let filter = owner_filter(&alice);
    let hits = index.memories_mentioning(&names(&["caroline", "melanie"]), &filter, 10).await.unwrap();
    assert_eq!(ids_of(&hits), [m1, m3, m2], "two entities first, then the newer of the one-entity memories");
    // Each query entity counts its IDF: 2 of 4 memories mention each.
    let w = idf(2.0, 4.0);
    assert_eq!(scores_of(&hits), [rounded(w + w), w, w]);
    let hits = index.memories_mentioning(&names(&["caroline", "melanie"]), &filter, 1).await.unwrap();
    assert_eq!(ids_of(&hits), [m1], "limit");
    let hits = index.memories_mentioning(&names(&["Caroline's", "unknown"]), &filter, 10).await.unwrap();
    assert_eq!(ids_of(&hits), [m2, m1], "names are normalised; unknown ones ignored");
    assert!(index.memories_mentioning(&names(&["unknown"]), &filter, 10).await.unwrap().is_empty());
    assert!(index.memories_mentioning(&[], &filter, 10).await.unwrap().is_empty());

    // A second co-mention makes caroline-melanie and caroline-colorado edges
    // of weight 2: querying caroline now also reaches melanie's memory.
    let m5 = create(&db, &alice, &app, "Caroline and Melanie visited Colorado again.").await;
    index.upsert(&[doc(&db, &acme, m5).await]).await.unwrap();
    let hits = index.memories_mentioning(&names(&["caroline"]), &filter, 10).await.unwrap();
    assert_eq!(ids_of(&hits), [m5, m1, m2, m3]);
    let w = idf(3.0, 5.0);
    assert_eq!(scores_of(&hits), [rounded(w + 0.5), rounded(w + 0.5), w, 0.25], "each neighbour adds 0.25");
}

async fn entities_too_common_to_discriminate_do_not_rank(engine: Engine) {
    let (_t, db, index) = setup(engine).await;
    let (alice, app) = provision(&db, "acme", "alice").await;
    let acme = org("acme");
    let mut made = Vec::new();
    // Caroline speaks in every memory; Sweden comes up once.
    for i in 0..24 {
        let text = if i == 7 { "Caroline: I moved from Sweden".to_owned() } else { format!("Caroline: note {i}") };
        made.push(create(&db, &alice, &app, &text).await);
    }
    index.upsert(&docs(&db, &acme, &made).await).await.unwrap();
    let filter = owner_filter(&alice);
    assert!(
        index.memories_mentioning(&names(&["caroline"]), &filter, 10).await.unwrap().is_empty(),
        "an entity in every memory says nothing about which one is meant"
    );
    let hits = index.memories_mentioning(&names(&["caroline", "sweden"]), &filter, 10).await.unwrap();
    assert_eq!(ids_of(&hits), [made[7]]);
    assert_eq!(scores_of(&hits), [idf(1.0, 24.0)]);
}

async fn related_ranks_by_shared_entities(engine: Engine) {
    let (_t, db, index) = setup(engine).await;
    let (alice, app) = provision(&db, "acme", "alice").await;
    let acme = org("acme");
    let m1 = create(&db, &alice, &app, "Caroline and Melanie went hiking in Colorado.").await;
    let m2 = create(&db, &alice, &app, "Caroline likes painting.").await;
    let m3 = create(&db, &alice, &app, "Melanie adopted a dog.").await;
    let m4 = create(&db, &alice, &app, "nothing worth a name here").await;
    let m5 = create(&db, &alice, &app, "Melanie and Caroline love Colorado.").await;
    index.upsert(&docs(&db, &acme, &[m1, m2, m3, m4, m5]).await).await.unwrap();

    let filter = owner_filter(&alice);
    let hits = index.related(m1, &filter, 10).await.unwrap();
    assert_eq!(ids_of(&hits), [m5, m3, m2], "most shared first, then the newer; never itself");
    assert_eq!(scores_of(&hits), [3.0, 1.0, 1.0]);
    assert_eq!(ids_of(&index.related(m1, &filter, 1).await.unwrap()), [m5]);
    assert!(index.related(m4, &filter, 10).await.unwrap().is_empty(), "no entities, nothing related");
    assert!(index.related(MemoryId::new(), &filter, 10).await.unwrap().is_empty(), "unknown memory");
    let mut excluding = filter.clone();
    excluding.exclude = vec![m5];
    assert_eq!(ids_of(&index.related(m1, &excluding, 10).await.unwrap()), [m3, m2]);
}

async fn tenants_never_see_each_others_graph(engine: Engine) {
    let (_t, db, index) = setup(engine).await;
    let (alice, app) = provision(&db, "acme", "alice").await;
    let (bob, bob_app) = provision(&db, "globex", "bob").await;
    let (acme, globex) = (org("acme"), org("globex"));
    let a1 = create(&db, &alice, &app, "Caroline moved to Colorado.").await;
    let a2 = create(&db, &alice, &app, "Caroline paints.").await;
    let g1 = create(&db, &bob, &bob_app, "Caroline runs the Globex office.").await;
    let mut batch = docs(&db, &acme, &[a1, a2]).await;
    batch.push(doc(&db, &globex, g1).await);
    index.upsert(&batch).await.unwrap();

    assert_eq!(index.count(&acme).await.unwrap(), 2);
    assert_eq!(index.count(&globex).await.unwrap(), 2, "caroline, globex");
    assert_eq!(index.entities_in(&globex, "caroline in colorado").await.unwrap(), names(&["caroline"]));
    assert_eq!(index.entities_in(&acme, "caroline at globex").await.unwrap(), names(&["caroline"]));
    assert!(index.entities_in(&org("initech"), "caroline").await.unwrap().is_empty());

    let q = names(&["caroline", "colorado", "globex"]);
    assert_eq!(ids_of(&index.memories_mentioning(&q, &owner_filter(&alice), 10).await.unwrap()), [a1, a2]);
    assert_eq!(ids_of(&index.memories_mentioning(&q, &owner_filter(&bob), 10).await.unwrap()), [g1]);
    // Another org's caller naming the same user id still sees nothing.
    let mut spoof = owner_filter(&alice);
    spoof.org = globex.clone();
    assert!(index.memories_mentioning(&q, &spoof, 10).await.unwrap().is_empty());
    assert!(index.related(a1, &owner_filter(&bob), 10).await.unwrap().is_empty());

    // A document claiming another org for a memory is not that org's memory.
    let mut forged = doc(&db, &acme, a1).await;
    forged.org_id = globex.clone();
    index.upsert(&[forged]).await.unwrap();
    assert_eq!(index.count(&globex).await.unwrap(), 2);
    assert_eq!(ids_of(&index.related(g1, &owner_filter(&bob), 10).await.unwrap()), Vec::<MemoryId>::new());
    // Deleting another org's ids changes nothing.
    index.delete(&globex, &[a1, a2]).await.unwrap();
    assert_eq!(ids_of(&index.memories_mentioning(&q, &owner_filter(&alice), 10).await.unwrap()), [a1, a2]);

    index.clear(Some(&acme)).await.unwrap();
    assert_eq!(index.count(&acme).await.unwrap(), 0);
    assert_eq!(index.count(&globex).await.unwrap(), 2, "clearing one org leaves the others");
    assert!(index.memories_mentioning(&q, &owner_filter(&alice), 10).await.unwrap().is_empty());
    index.clear(None).await.unwrap();
    assert_eq!(index.count(&globex).await.unwrap(), 0);
}

async fn visibility_is_enforced_inside_the_query(engine: Engine) {
    let (_t, db, index) = setup(engine).await;
    let (alice, app) = provision(&db, "acme", "alice").await;
    let (bob, _) = provision(&db, "acme", "bob").await;
    let acme = org("acme");
    let private = create(&db, &alice, &app, "Caroline told me a secret.").await;
    let team = create_with(
        &db,
        &alice,
        &app,
        "Caroline leads the Core team.",
        MemoryMetadata { access_entity: Some("team:acme/core".parse().unwrap()), ..Default::default() },
    )
    .await;
    index.upsert(&docs(&db, &acme, &[private, team]).await).await.unwrap();
    let q = names(&["caroline"]);

    let bob_alone = SearchFilter::new(acme.clone(), Some(Visibility { user_id: bob.id, grants: vec![] }));
    assert!(index.memories_mentioning(&q, &bob_alone, 10).await.unwrap().is_empty());
    assert!(index.related(team, &bob_alone, 10).await.unwrap().is_empty());

    let grants: Vec<AccessEntity> = vec!["org:acme".parse().unwrap()];
    let bob_in_org = SearchFilter::new(acme.clone(), Some(Visibility { user_id: bob.id, grants }));
    assert_eq!(ids_of(&index.memories_mentioning(&q, &bob_in_org, 10).await.unwrap()), [team]);
    assert!(
        index.related(team, &bob_in_org, 10).await.unwrap().is_empty(),
        "alice's private memory shares caroline but stays hidden"
    );
    assert!(index.related(private, &bob_in_org, 10).await.unwrap().is_empty(), "a hidden start leaks nothing");

    let hits = index.memories_mentioning(&q, &owner_filter(&alice), 10).await.unwrap();
    assert_eq!(ids_of(&hits), [team, private]);
    assert_eq!(ids_of(&index.related(private, &owner_filter(&alice), 10).await.unwrap()), [team]);
    let maintenance = SearchFilter::new(acme.clone(), None);
    assert_eq!(index.memories_mentioning(&q, &maintenance, 10).await.unwrap().len(), 2);
}

async fn state_and_field_filters_apply(engine: Engine) {
    let (_t, db, index) = setup(engine).await;
    let (alice, app) = provision(&db, "acme", "alice").await;
    let acme = org("acme");
    let active = create(&db, &alice, &app, "Caroline is active.").await;
    let paused = create(&db, &alice, &app, "Caroline is paused.").await;
    let deleted = create(&db, &alice, &app, "Caroline is deleted.").await;
    let billing = create_with(
        &db,
        &alice,
        &app,
        "Caroline owns the invoices.",
        MemoryMetadata {
            entity: Some("billing".into()),
            tags: BTreeMap::from([("env".into(), "prod".into())]),
            ..Default::default()
        },
    )
    .await;
    let tx = db.begin_tenant(&acme).await.unwrap();
    memories::set_state(&tx, paused, MemoryState::Paused, Some(alice.id)).await.unwrap().unwrap();
    assert!(memories::delete(&tx, deleted, Some(alice.id)).await.unwrap());
    tx.commit().await.unwrap();
    index.upsert(&docs(&db, &acme, &[active, paused, deleted, billing]).await).await.unwrap();
    let q = names(&["caroline"]);

    let filter = owner_filter(&alice);
    assert_eq!(ids_of(&index.memories_mentioning(&q, &filter, 10).await.unwrap()), [billing, active]);
    let mut f = filter.clone();
    f.states = vec![MemoryState::Paused];
    assert_eq!(ids_of(&index.memories_mentioning(&q, &f, 10).await.unwrap()), [paused]);
    f.states = vec![];
    assert_eq!(index.memories_mentioning(&q, &f, 10).await.unwrap().len(), 4, "no state restriction");
    assert_eq!(ids_of(&index.related(active, &filter, 10).await.unwrap()), [billing], "related filters states too");

    // The structured entity is an entity of the graph and a filter field.
    assert_eq!(index.entities_in(&acme, "who handles billing").await.unwrap(), names(&["billing"]));
    let mut f = filter.clone();
    f.fields.entity = Some("billing".into());
    assert_eq!(ids_of(&index.memories_mentioning(&q, &f, 10).await.unwrap()), [billing]);
    let mut f = filter.clone();
    f.tags = BTreeMap::from([("env".into(), "prod".into())]);
    assert_eq!(ids_of(&index.memories_mentioning(&q, &f, 10).await.unwrap()), [billing]);
    f.tags = BTreeMap::from([("env".into(), "dev".into())]);
    assert!(index.memories_mentioning(&q, &f, 10).await.unwrap().is_empty());
    let mut f = filter.clone();
    f.app_id = Some(loci_core::AppId::new());
    assert!(index.memories_mentioning(&q, &f, 10).await.unwrap().is_empty());
    let mut f = filter.clone();
    f.exclude = vec![billing];
    f.from = Some(chrono::Utc::now() - chrono::Duration::hours(1));
    f.to = Some(chrono::Utc::now());
    assert_eq!(ids_of(&index.memories_mentioning(&q, &f, 10).await.unwrap()), [active]);
    f.from = Some(chrono::Utc::now());
    assert!(index.memories_mentioning(&q, &f, 10).await.unwrap().is_empty());
}

async fn delete_removes_mentions_edges_and_orphan_entities(engine: Engine) {
    let (t, db, index) = setup(engine).await;
    let (alice, app) = provision(&db, "acme", "alice").await;
    let acme = org("acme");
    let m1 = create(&db, &alice, &app, "Caroline and Melanie went hiking in Colorado.").await;
    let m2 = create(&db, &alice, &app, "Caroline and Melanie visited Colorado again.").await;
    let m3 = create(&db, &alice, &app, "Melanie adopted a dog.").await;
    index.upsert(&docs(&db, &acme, &[m1, m2, m3]).await).await.unwrap();
    let (edges, mentions) = stored_graph(&t).await;
    assert_eq!(
        edges,
        [
            edge("acme/caroline", "colorado", 2),
            edge("acme/caroline", "melanie", 2),
            edge("acme/colorado", "melanie", 2)
        ]
    );
    assert_eq!(mentions, 7);

    index.delete(&acme, &[m2, MemoryId::new()]).await.unwrap();
    let (edges, mentions) = stored_graph(&t).await;
    assert_eq!(
        edges,
        [
            edge("acme/caroline", "colorado", 1),
            edge("acme/caroline", "melanie", 1),
            edge("acme/colorado", "melanie", 1)
        ]
    );
    assert_eq!(mentions, 4);
    let hits = index.memories_mentioning(&names(&["caroline"]), &owner_filter(&alice), 10).await.unwrap();
    assert_eq!(ids_of(&hits), [m1], "weight 1 no longer expands to melanie's memory");

    index.delete(&acme, &[m1, m1]).await.unwrap();
    assert_eq!(stored_graph(&t).await, (vec![], 1));
    assert_eq!(index.count(&acme).await.unwrap(), 1, "only melanie is still mentioned");
    assert_eq!(index.entities_in(&acme, "caroline and melanie").await.unwrap(), names(&["melanie"]));
    index.delete(&acme, &[m1]).await.unwrap();
    index.delete(&acme, &[]).await.unwrap();
    index.flush().await.unwrap();
}

async fn upserts_are_idempotent_and_apply_changes_exactly(engine: Engine) {
    let (t, db, index) = setup(engine).await;
    let (alice, app) = provision(&db, "acme", "alice").await;
    let acme = org("acme");
    let m1 = create(&db, &alice, &app, "Caroline and Melanie went hiking in Colorado.").await;
    let m2 = create(&db, &alice, &app, "Caroline likes painting.").await;
    let batch = docs(&db, &acme, &[m1, m2]).await;
    index.upsert(&batch).await.unwrap();
    let first = stored_graph(&t).await;
    assert_eq!(first.1, 4);

    index.upsert(&batch).await.unwrap();
    index.upsert(&[batch[0].clone(), batch[0].clone(), batch[1].clone()]).await.unwrap();
    assert_eq!(stored_graph(&t).await, first, "same documents, same mentions and weights");
    assert_eq!(index.count(&acme).await.unwrap(), 3);

    // An edit replaces the memory's entities and moves the weights.
    let tx = db.begin_tenant(&acme).await.unwrap();
    let change = MemoryUpdate { content: Some("Caroline paints with Melanie in Denver.".into()), ..Default::default() };
    memories::update(&tx, m2, change).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    index.upsert(&[doc(&db, &acme, m2).await]).await.unwrap();
    let (edges, mentions) = stored_graph(&t).await;
    assert_eq!(
        edges,
        [
            edge("acme/caroline", "colorado", 1),
            edge("acme/caroline", "denver", 1),
            edge("acme/caroline", "melanie", 2),
            edge("acme/colorado", "melanie", 1),
            edge("acme/denver", "melanie", 1)
        ]
    );
    assert_eq!(mentions, 6);

    // A document of a memory that does not exist is tolerated (and records
    // nothing); an existing memory's document in the same batch still lands.
    let mut ghost = doc(&db, &acme, m1).await;
    ghost.id = MemoryId::new();
    index.upsert(&[ghost, doc(&db, &acme, m1).await]).await.unwrap();
    assert_eq!(stored_graph(&t).await.1, 6);
    index.upsert(&[]).await.unwrap();
}

async fn graph_tables_are_tenant_tables(engine: Engine) {
    let (t, db, index) = setup(engine).await;
    let (alice, app) = provision(&db, "acme", "alice").await;
    let (bob, bob_app) = provision(&db, "globex", "bob").await;
    let a = create(&db, &alice, &app, "Caroline and Melanie met in Colorado.").await;
    let g = create(&db, &bob, &bob_app, "Zed met Yara.").await;
    index.upsert(&[doc(&db, &org("acme"), a).await, doc(&db, &org("globex"), g).await]).await.unwrap();
    for table in ["graph_entities", "graph_mentions", "graph_edges"] {
        assert!(loci_migration::TENANT_TABLES.contains(&table), "{table}");
    }
    if db.kind() == DatabaseKind::Postgres {
        // Unfiltered counts: what row-level security alone lets each tenant see.
        for (org_id, entities, mentions, edges) in [("acme", 3, 3, 3), ("globex", 2, 2, 1), ("initech", 0, 0, 0)] {
            let tx = db.begin_tenant_read(&org(org_id)).await.unwrap();
            assert_eq!(tx.count_visible_rows("graph_entities").await.unwrap(), entities, "{org_id}");
            assert_eq!(tx.count_visible_rows("graph_mentions").await.unwrap(), mentions, "{org_id}");
            assert_eq!(tx.count_visible_rows("graph_edges").await.unwrap(), edges, "{org_id}");
            tx.commit().await.unwrap();
        }
        for table in ["graph_entities", "graph_mentions", "graph_edges"] {
            assert_eq!(db.count_rows_without_tenant(table).await.unwrap(), 0, "{table} leaked without context");
        }
        let admin = t.admin_connection().await;
        let rows = admin
            .query_all_raw(Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT relname::text AS name, relrowsecurity AS rls, relforcerowsecurity AS forced \
                 FROM pg_class WHERE relname IN ('graph_entities', 'graph_mentions', 'graph_edges') \
                 AND relkind = 'r' ORDER BY relname",
            ))
            .await
            .unwrap();
        let flags: Vec<(String, bool, bool)> = rows
            .iter()
            .map(|r| (r.try_get("", "name").unwrap(), r.try_get("", "rls").unwrap(), r.try_get("", "forced").unwrap()))
            .collect();
        assert_eq!(
            flags,
            [
                ("graph_edges".to_owned(), true, true),
                ("graph_entities".to_owned(), true, true),
                ("graph_mentions".to_owned(), true, true)
            ]
        );
        admin.close().await.ok();
    }
}

async fn migrations_down_drop_the_graph_and_up_restore_it(engine: Engine) {
    let (_t, db, index) = setup(engine).await;
    let (alice, app) = provision(&db, "acme", "alice").await;
    let m = create(&db, &alice, &app, "Caroline and Melanie met.").await;
    index.upsert(&[doc(&db, &org("acme"), m).await]).await.unwrap();
    // The graph's migration and every later one.
    db.migrate_down(db.steps_down_through("m20261126_000002_graph").await.unwrap().unwrap()).await.unwrap();
    assert!(index.count(&org("acme")).await.is_err(), "the graph tables are gone");
    db.migrate_up().await.unwrap();
    assert_eq!(index.count(&org("acme")).await.unwrap(), 0);
    index.upsert(&[doc(&db, &org("acme"), m).await]).await.unwrap();
    assert_eq!(index.count(&org("acme")).await.unwrap(), 2);
    assert_eq!(index.engine(), "embedded");
}

/// The analyses of the memories' own fields (`repo::memory_analytics`,
/// whatever the graph engine): aggregates, tag sets and dated memories under
/// the caller's visibility; and the merge at the level of the tables (the
/// graph API contract, `graph_contract.rs`, checks what callers see): a dry
/// run writes nothing, a merge keeps the edge weights exact (a rebuild from
/// the documents gives the same tables) and merging again writes nothing.
async fn memory_analytics_and_merge_tables(engine: Engine) {
    use loci_core::Category;
    use loci_index::GraphAnalytics;
    use loci_index::analytics::Dimension;
    use loci_stores::repo::memory_analytics;

    let (t, db, index) = setup(engine).await;
    let (alice, app) = provision(&db, "acme", "alice").await;
    let (bob, bob_app) = provision(&db, "acme", "bob").await;
    let acme = org("acme");
    let tagged = |pairs: &[(&str, &str)], category: Option<Category>| MemoryMetadata {
        tags: pairs.iter().map(|(k, v)| ((*k).to_owned(), serde_json::json!(v))).collect(),
        category,
        ..Default::default()
    };
    let m1 = create_with(
        &db,
        &alice,
        &app,
        "Caroline met Melanie in Denver.",
        tagged(&[("team", "core"), ("lang", "rust")], Some(Category::Decision)),
    )
    .await;
    let m2 = create_with(&db, &alice, &app, "Melanie works with Oscar.", tagged(&[("team", "core")], None)).await;
    let m3 =
        create_with(&db, &alice, &app, "Oscar visited Paris with Zoe.", tagged(&[], Some(Category::Decision))).await;
    let m4 = create(&db, &alice, &app, "Caroline paints with Melanie.").await;
    let m5 = create(&db, &alice, &app, "nothing capitalised here").await;
    let b1 = create(&db, &bob, &bob_app, "Caroline knows Quentin.").await;
    let all = [m1, m2, m3, m4, m5, b1];
    index.upsert(&docs(&db, &acme, &all).await).await.unwrap();
    let mine = owner_filter(&alice);

    let tx = db.begin_tenant_read(&acme).await.unwrap();
    let by_category = memory_analytics::aggregate(&tx, &mine, Dimension::Category, 10).await.unwrap();
    let buckets: Vec<(&str, u64)> = by_category.buckets.iter().map(|b| (b.value.as_str(), b.memories)).collect();
    assert_eq!(buckets, [("decision", 2)]);
    assert_eq!((by_category.values, by_category.memories, by_category.without_value), (1, 5, 3));
    let by_tag = memory_analytics::aggregate(&tx, &mine, Dimension::Tag, 10).await.unwrap();
    let buckets: Vec<(&str, u64)> = by_tag.buckets.iter().map(|b| (b.value.as_str(), b.memories)).collect();
    assert_eq!(buckets, [("team=core", 2), ("lang=rust", 1)]);
    assert_eq!((by_tag.values, by_tag.without_value, by_tag.truncated), (2, 3, false));
    let by_app = memory_analytics::aggregate(&tx, &mine, Dimension::App, 10).await.unwrap();
    assert_eq!(by_app.buckets[0].label.as_deref(), Some("cli"));
    assert_eq!((by_app.buckets[0].value.clone(), by_app.buckets[0].memories), (app.id.to_string(), 5));
    let (lang, more) = memory_analytics::memory_tags(&tx, &mine, Some("lang"), 10).await.unwrap();
    assert_eq!((lang.len(), more), (1, false));
    let (first, more) = memory_analytics::memory_tags(&tx, &mine, None, 1).await.unwrap();
    assert_eq!((first[0].get("team").map(String::as_str), more), (Some("core"), true), "newest tagged first");
    let dated = memory_analytics::dated_memories(&tx, &mine, None, 10).await.unwrap();
    assert_eq!(dated.iter().map(|d| d.id).collect::<Vec<_>>(), [m5, m4, m3, m2, m1]);
    let some = memory_analytics::dated_memories(&tx, &mine, Some(&[m1, m3, b1]), 10).await.unwrap();
    assert_eq!(some.iter().map(|d| d.id).collect::<Vec<_>>(), [m3, m1], "bob's memory is not alice's");
    let newest = memory_analytics::dated_memories(&tx, &mine, Some(&[m1, m3]), 1).await.unwrap();
    assert_eq!(newest.iter().map(|d| d.id).collect::<Vec<_>>(), [m3]);
    tx.commit().await.unwrap();

    let before = stored_graph(&t).await;
    index.merge(&mine, "caroline", "melanie", &alice.id, false).await.unwrap().unwrap();
    assert_eq!(stored_graph(&t).await, before, "a dry run writes nothing");
    index.merge(&mine, "caroline", "melanie", &alice.id, true).await.unwrap().unwrap();
    let merged = stored_graph(&t).await;
    assert!(merged.0.iter().all(|(a, b, _)| a != "caroline" && b != "caroline"), "{merged:?}");
    index.clear(Some(&acme)).await.unwrap();
    index.upsert(&docs(&db, &acme, &all).await).await.unwrap();
    assert_eq!(stored_graph(&t).await, merged, "the weights after a merge are those of a rebuild");
    index.merge(&mine, "caroline", "melanie", &alice.id, true).await.unwrap().unwrap();
    assert_eq!(stored_graph(&t).await, merged);
}

macro_rules! on_both {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name(super::Engine::Sqlite).await })+
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name(super::Engine::Postgres).await })+
        }
    };
}

on_both!(
    mentions_rank_by_query_entities_then_recency_with_one_hop,
    entities_too_common_to_discriminate_do_not_rank,
    related_ranks_by_shared_entities,
    tenants_never_see_each_others_graph,
    visibility_is_enforced_inside_the_query,
    state_and_field_filters_apply,
    delete_removes_mentions_edges_and_orphan_entities,
    upserts_are_idempotent_and_apply_changes_exactly,
    graph_tables_are_tenant_tables,
    migrations_down_drop_the_graph_and_up_restore_it,
    memory_analytics_and_merge_tables,
);
