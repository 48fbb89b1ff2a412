//! The embedded (tantivy) lexical index: ranking, analysis, tenant isolation,
//! visibility, filters, maintenance and persistence.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use loci_index::contract::plain_doc;
use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use loci_core::model::Visibility;
use loci_core::{AppId, MemoryId, MemoryState, OrgId, UserId};
use loci_index::{IndexDoc, LexicalIndex, SearchFilter};
use loci_index_embedded::{EmbeddedLexicalIndex, LexicalOptions};

fn org(s: &str) -> OrgId {
    OrgId::parse(s).unwrap()
}

fn ram() -> EmbeddedLexicalIndex {
    EmbeddedLexicalIndex::open_in_ram(LexicalOptions::default()).unwrap()
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
}

fn doc(org_id: &str, user: UserId, content: &str) -> IndexDoc {
    IndexDoc { created_at: t0(), ..plain_doc(&org(org_id), user, content) }
}

/// Every active memory of `org`, visibility unchecked.
fn all(org_id: &str) -> SearchFilter {
    SearchFilter::new(org(org_id), None)
}

async fn ids(idx: &EmbeddedLexicalIndex, query: &str, filter: &SearchFilter) -> Vec<MemoryId> {
    idx.search(query, filter, 10).await.unwrap().into_iter().map(|h| h.id).collect()
}

async fn load(idx: &EmbeddedLexicalIndex, docs: &[IndexDoc]) {
    idx.upsert(docs).await.unwrap();
    idx.flush().await.unwrap();
}

#[tokio::test]
async fn rare_term_ranks_first() {
    let idx = ram();
    let u = UserId::new();
    let mut docs: Vec<IndexDoc> =
        (0..20).map(|i| doc("acme", u, &format!("the database migration number {i} ran fine"))).collect();
    let rare = doc("acme", u, "the database migration hit a deadlock on the outbox table");
    docs.push(rare.clone());
    load(&idx, &docs).await;

    let hits = idx.search("database deadlock", &all("acme"), 5).await.unwrap();
    assert_eq!(hits.len(), 5);
    assert_eq!(hits[0].id, rare.id);
    assert!(hits[0].score > hits[1].score, "{hits:?}");
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score), "best first: {hits:?}");
    assert_eq!(idx.engine(), "embedded");
}

#[tokio::test]
async fn stemming_matches_word_forms() {
    let idx = ram();
    let u = UserId::new();
    let a = doc("acme", u, "The deployment of the API failed twice");
    let b = doc("acme", u, "She deploys every Friday");
    let c = doc("acme", u, "Unrelated note about lunch");
    load(&idx, &[a.clone(), b.clone(), c]).await;

    let mut found = ids(&idx, "deploying", &all("acme")).await;
    found.sort();
    let mut want = vec![a.id, b.id];
    want.sort();
    assert_eq!(found, want);

    // Case and accents are folded.
    let d = doc("acme", u, "Meeting at the CAFÉ");
    load(&idx, std::slice::from_ref(&d)).await;
    assert_eq!(ids(&idx, "cafe", &all("acme")).await, [d.id]);
}

#[tokio::test]
async fn another_orgs_identical_document_is_never_returned() {
    let idx = ram();
    let text = "quarterly revenue forecast for the nordics";
    let mine = doc("acme", UserId::new(), text);
    let theirs = doc("globex", UserId::new(), text);
    load(&idx, &[mine.clone(), theirs.clone()]).await;

    assert_eq!(ids(&idx, text, &all("acme")).await, [mine.id]);
    assert_eq!(ids(&idx, text, &all("globex")).await, [theirs.id]);
    assert!(ids(&idx, text, &all("initech")).await.is_empty());
    assert_eq!(idx.count(&org("acme")).await.unwrap(), 1);

    // Deleting through the wrong org does nothing.
    idx.delete(&org("globex"), &[mine.id]).await.unwrap();
    idx.flush().await.unwrap();
    assert_eq!(ids(&idx, text, &all("acme")).await, [mine.id]);
}

#[tokio::test]
async fn scores_do_not_depend_on_other_orgs() {
    let idx = ram();
    let u = UserId::new();
    let mine = doc("acme", u, "kubernetes upgrade notes");
    let filler = doc("acme", u, "a note about something else");
    load(&idx, &[mine.clone(), filler]).await;
    let before = idx.search("kubernetes", &all("acme"), 1).await.unwrap()[0].score;

    // Another org writes the same term many times: acme's scores stay put.
    let noise: Vec<IndexDoc> = (0..50).map(|i| doc("globex", UserId::new(), &format!("kubernetes {i}"))).collect();
    load(&idx, &noise).await;
    let after = idx.search("kubernetes", &all("acme"), 1).await.unwrap()[0].score;
    assert!((before - after).abs() < 1e-4, "{before} vs {after}");

    // Without tenant statistics the other org shifts the score (the leak the
    // option closes).
    let global =
        EmbeddedLexicalIndex::open_in_ram(LexicalOptions { tenant_statistics: false, ..Default::default() }).unwrap();
    load(&global, &[mine]).await;
    let alone = global.search("kubernetes", &all("acme"), 1).await.unwrap()[0].score;
    load(&global, &noise).await;
    let crowded = global.search("kubernetes", &all("acme"), 1).await.unwrap()[0].score;
    assert!(crowded < alone, "{alone} vs {crowded}");
}

#[tokio::test]
async fn visibility_by_owner_and_grants() {
    let idx = ram();
    let owner = UserId::new();
    let mut shared = doc("acme", owner, "incident review for the payment service");
    shared.access_entity = Some("team:acme/platform/payments".parse().unwrap());
    let private = doc("acme", owner, "my private payment notes");
    load(&idx, &[shared.clone(), private.clone()]).await;

    let as_user = |user_id, grants: &[&str]| {
        SearchFilter::new(
            org("acme"),
            Some(Visibility { user_id, grants: grants.iter().map(|g| g.parse().unwrap()).collect() }),
        )
    };
    let mut own = ids(&idx, "payment", &as_user(owner, &[])).await;
    own.sort();
    let mut both = vec![shared.id, private.id];
    both.sort();
    assert_eq!(own, both, "the owner sees both");

    let other = UserId::new();
    for grant in ["org:acme", "project:acme/platform", "team:acme/platform/payments"] {
        assert_eq!(ids(&idx, "payment", &as_user(other, &[grant])).await, [shared.id], "{grant}");
    }
    for grants in [&[][..], &["team:acme/platform/search"], &["org:globex"], &["user:someone"]] {
        assert!(ids(&idx, "payment", &as_user(other, grants)).await.is_empty(), "{grants:?}");
    }
}

#[tokio::test]
async fn every_filter_field_narrows() {
    let idx = ram();
    let u = UserId::new();
    let base = doc("acme", u, "release checklist");
    let mut full = doc("acme", u, "release checklist");
    full.app_id = AppId::new();
    full.fields.category = Some("process".into());
    full.fields.scope = Some("project".into());
    full.fields.artifact_type = Some("file".into());
    full.fields.artifact_ref = Some("docs/RELEASE.md".into());
    full.fields.entity = Some("release".into());
    full.fields.source = Some("user".into());
    full.tags = BTreeMap::from([("env".into(), "prod".into()), ("a=b".into(), "c".into())]);
    full.created_at = t0() + Duration::days(10);
    load(&idx, &[base.clone(), full.clone()]).await;

    let q = "release";
    let assert_only_full = |f: SearchFilter, what: &'static str| {
        let idx = &idx;
        let want = full.id;
        async move { assert_eq!(ids(idx, q, &f).await, [want], "{what}") }
    };
    let mut f = all("acme");
    f.app_id = Some(full.app_id);
    assert_only_full(f, "app").await;
    for (what, set) in [
        ("category", (|f: &mut SearchFilter| f.fields.category = Some("process".into())) as fn(&mut SearchFilter)),
        ("scope", |f| f.fields.scope = Some("project".into())),
        ("artifact_type", |f| f.fields.artifact_type = Some("file".into())),
        ("artifact_ref", |f| f.fields.artifact_ref = Some("docs/RELEASE.md".into())),
        ("entity", |f| f.fields.entity = Some("release".into())),
        ("source", |f| f.fields.source = Some("user".into())),
        ("tag", |f| f.tags = BTreeMap::from([("env".into(), "prod".into())])),
        ("tag with =", |f| f.tags = BTreeMap::from([("a=b".into(), "c".into())])),
        ("from", |f| f.from = Some(t0() + Duration::days(1))),
    ] {
        let mut f = all("acme");
        set(&mut f);
        assert!(f.admits(&full) && !f.admits(&base), "{what}: test data");
        assert_only_full(f, what).await;
    }

    // Values that match nothing, and ambiguous tag spellings.
    let mut f = all("acme");
    f.fields.category = Some("Process".into());
    assert!(ids(&idx, q, &f).await.is_empty(), "exact, case-sensitive");
    let mut f = all("acme");
    f.tags = BTreeMap::from([("a".into(), "b=c".into())]);
    assert!(ids(&idx, q, &f).await.is_empty(), "tag key with =");
    let mut f = all("acme");
    f.tags = BTreeMap::from([("env".into(), "prod".into()), ("team".into(), "x".into())]);
    assert!(ids(&idx, q, &f).await.is_empty(), "all tags must match");

    // Date bounds are inclusive.
    let mut f = all("acme");
    f.to = Some(t0());
    assert_eq!(ids(&idx, q, &f).await, [base.id], "to, inclusive");
    let mut f = all("acme");
    f.from = Some(t0());
    f.to = Some(t0() + Duration::days(10));
    assert_eq!(ids(&idx, q, &f).await.len(), 2, "from..=to");
    let mut f = all("acme");
    f.from = Some(t0() + Duration::days(10) + Duration::nanoseconds(1));
    assert!(ids(&idx, q, &f).await.is_empty(), "nanosecond precision");
}

/// Deterministic pseudo-random numbers (no extra dependency).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

#[tokio::test]
async fn search_agrees_with_the_reference_filter() {
    let idx = ram();
    let mut rng = Lcg(7);
    let users: Vec<UserId> = (0..4).map(|_| UserId::new()).collect();
    let apps: Vec<AppId> = (0..3).map(|_| AppId::new()).collect();
    let orgs = ["acme", "globex"];
    let entities = [None, Some("org:acme"), Some("team:acme/core/db"), Some("project:acme/core"), Some("org:globex")];
    let opt = |rng: &mut Lcg, values: &[&str]| {
        let i = rng.below(values.len() + 1);
        values.get(i).map(|v| (*v).to_owned())
    };
    let docs: Vec<IndexDoc> = (0..300)
        .map(|i| {
            let mut d = doc(orgs[rng.below(2)], rng.pick(&users), &format!("memo number {i}"));
            d.app_id = rng.pick(&apps);
            d.state = rng.pick(MemoryState::ALL);
            d.access_entity = rng.pick(&entities).map(|e| e.parse().unwrap());
            d.fields.category = opt(&mut rng, &["decision", "preference"]);
            d.fields.scope = opt(&mut rng, &["user", "project"]);
            d.fields.source = opt(&mut rng, &["user", "agent"]);
            d.fields.entity = opt(&mut rng, &["postgres", "kafka"]);
            if rng.below(2) == 0 {
                d.tags.insert("env".into(), rng.pick(&["prod", "dev"]).into());
            }
            d.created_at = t0() + Duration::hours(rng.below(100) as i64);
            d
        })
        .collect();
    load(&idx, &docs).await;

    let mut non_empty = 0;
    for round in 0..300 {
        let mut f = SearchFilter::new(org(orgs[rng.below(2)]), None);
        if rng.below(3) > 0 {
            let grants = [&[][..], &["org:acme"], &["team:acme/core/db"], &["project:acme/core", "org:globex"]];
            let grants = rng.pick(&grants).iter().map(|g| g.parse().unwrap()).collect();
            f.visible_to = Some(Visibility { user_id: rng.pick(&users), grants });
        }
        f.states = (0..rng.below(3)).map(|_| rng.pick(MemoryState::ALL)).collect();
        if rng.below(3) == 0 {
            f.app_id = Some(rng.pick(&apps));
        }
        f.fields.category = if rng.below(3) == 0 { opt(&mut rng, &["decision", "preference"]) } else { None };
        f.fields.scope = if rng.below(4) == 0 { opt(&mut rng, &["user", "project"]) } else { None };
        f.fields.source = if rng.below(4) == 0 { opt(&mut rng, &["user", "agent"]) } else { None };
        f.fields.entity = if rng.below(4) == 0 { opt(&mut rng, &["postgres", "kafka"]) } else { None };
        if rng.below(4) == 0 {
            f.tags.insert("env".into(), "prod".into());
        }
        if rng.below(3) == 0 {
            f.from = Some(t0() + Duration::hours(rng.below(100) as i64));
        }
        if rng.below(3) == 0 {
            f.to = Some(t0() + Duration::hours(rng.below(100) as i64));
        }
        f.exclude = (0..rng.below(3)).map(|_| docs[rng.below(docs.len())].id).collect();

        let mut got: Vec<MemoryId> =
            idx.search("memo", &f, docs.len()).await.unwrap().into_iter().map(|h| h.id).collect();
        got.sort();
        let mut want: Vec<MemoryId> = docs.iter().filter(|d| f.admits(d)).map(|d| d.id).collect();
        want.sort();
        assert_eq!(got, want, "round {round}: {f:?}");
        non_empty += usize::from(!want.is_empty());
    }
    assert!(non_empty > 100, "the filters should select something often: {non_empty}/300");
}

#[tokio::test]
async fn state_filter_and_exclusions() {
    let idx = ram();
    let u = UserId::new();
    let active = doc("acme", u, "cache invalidation strategy");
    let mut archived = doc("acme", u, "cache invalidation strategy, old version");
    archived.state = MemoryState::Archived;
    let mut deleted = doc("acme", u, "cache invalidation draft");
    deleted.state = MemoryState::Deleted;
    load(&idx, &[active.clone(), archived.clone(), deleted.clone()]).await;

    assert_eq!(ids(&idx, "cache", &all("acme")).await, [active.id], "active only by default");
    let mut f = all("acme");
    f.states = vec![MemoryState::Active, MemoryState::Archived];
    let mut got = ids(&idx, "cache", &f).await;
    got.sort();
    let mut want = vec![active.id, archived.id];
    want.sort();
    assert_eq!(got, want);
    f.states = vec![];
    assert_eq!(ids(&idx, "cache", &f).await.len(), 3, "no states = any state");

    f.exclude = vec![active.id, deleted.id];
    assert_eq!(ids(&idx, "cache", &f).await, [archived.id]);
}

#[tokio::test]
async fn delete_upsert_clear_and_count() {
    let idx = ram();
    let u = UserId::new();
    let mut a = doc("acme", u, "original wording about tokens");
    let b = doc("acme", u, "another memory about tokens");
    let g = doc("globex", u, "globex memory about tokens");
    load(&idx, &[a.clone(), b.clone(), g.clone()]).await;
    assert_eq!(idx.count(&org("acme")).await.unwrap(), 2);

    // Idempotent upserts, across flushes and within one batch.
    load(&idx, &[a.clone(), a.clone()]).await;
    load(&idx, std::slice::from_ref(&a)).await;
    assert_eq!(idx.count(&org("acme")).await.unwrap(), 2);

    // An upsert replaces the text.
    a.content = "reworded: nothing about the earlier subject".into();
    load(&idx, std::slice::from_ref(&a)).await;
    assert_eq!(ids(&idx, "tokens", &all("acme")).await, [b.id]);
    assert_eq!(ids(&idx, "reworded", &all("acme")).await, [a.id]);

    // Delete, including unknown ids; visible after flush.
    idx.delete(&org("acme"), &[b.id, MemoryId::new()]).await.unwrap();
    assert_eq!(ids(&idx, "tokens", &all("acme")).await, [b.id], "not before flush");
    idx.flush().await.unwrap();
    assert!(ids(&idx, "tokens", &all("acme")).await.is_empty());
    assert_eq!(idx.count(&org("acme")).await.unwrap(), 1);

    idx.clear(Some(&org("acme"))).await.unwrap();
    assert_eq!(idx.count(&org("acme")).await.unwrap(), 0);
    assert_eq!(idx.count(&org("globex")).await.unwrap(), 1, "other orgs untouched");
    idx.clear(None).await.unwrap();
    assert_eq!(idx.count(&org("globex")).await.unwrap(), 0);
    idx.upsert(&[]).await.unwrap();
    idx.delete(&org("acme"), &[]).await.unwrap();
}

#[tokio::test]
async fn context_is_searched_but_weighted_down_and_never_highlighted() {
    let idx = ram();
    let u = UserId::new();
    let in_content = doc("acme", u, "the kafka consumer lag alert");
    let mut in_context = doc("acme", u, "the alert fired again");
    in_context.context = "earlier turn: we discussed kafka partitions".into();
    load(&idx, &[in_context.clone(), in_content.clone()]).await;

    let hits = idx.search("kafka", &all("acme"), 10).await.unwrap();
    assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), [in_content.id, in_context.id]);
    assert!(hits[1].highlights.iter().all(|h| !h.contains("kafka")), "{hits:?}");

    let no_context =
        EmbeddedLexicalIndex::open_in_ram(LexicalOptions { context_boost: 0.0, ..Default::default() }).unwrap();
    load(&no_context, &[in_context, in_content.clone()]).await;
    assert_eq!(ids(&no_context, "kafka", &all("acme")).await, [in_content.id]);
}

#[tokio::test]
async fn highlights_mark_matches() {
    let idx = ram();
    let long =
        format!("{} the <script> deployment pipeline broke on Tuesday {}", "filler ".repeat(60), "tail ".repeat(60));
    let d = doc("acme", UserId::new(), &long);
    load(&idx, &[d]).await;
    let hits = idx.search("deploying pipelines", &all("acme"), 1).await.unwrap();
    let h = &hits[0].highlights;
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(h[0].contains("<b>deployment</b>") && h[0].contains("<b>pipeline</b>"), "{h:?}");
    assert!(h[0].contains("&lt;script&gt;"), "content is HTML-escaped: {h:?}");
    let visible = h[0].replace("<b>", "").replace("</b>", "");
    assert!(visible.chars().count() <= 200, "{} chars: {visible}", visible.chars().count());
}

#[tokio::test]
async fn hostile_and_empty_queries_do_not_error() {
    let idx = ram();
    let d = doc("acme", UserId::new(), "foo bar baz");
    load(&idx, std::slice::from_ref(&d)).await;
    for q in [
        "foo:\"bar",
        "AND OR (",
        "",
        "   ",
        "!!!???...",
        "\"",
        "*",
        "id:*",
        "org_id:globex",
        "+-&&||!(){}[]^~*?:\\/",
        "the",
    ] {
        let hits = idx.search(q, &all("acme"), 10).await;
        assert!(hits.is_ok(), "{q:?}: {hits:?}");
    }
    assert_eq!(ids(&idx, "foo:\"bar", &all("acme")).await, [d.id]);
    assert!(idx.search("foo", &all("acme"), 0).await.unwrap().is_empty(), "limit 0");
    let huge = "word ".repeat(100_000);
    assert!(idx.search(&huge, &all("acme"), 10).await.is_ok());
}

#[tokio::test]
async fn persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lexical");
    let d = doc("acme", UserId::new(), "persistent memory about vector clocks");
    {
        let idx = EmbeddedLexicalIndex::open(&path).unwrap();
        load(&idx, std::slice::from_ref(&d)).await;
        let pending = doc("acme", UserId::new(), "never flushed vector clocks");
        idx.upsert(&[pending]).await.unwrap();
    }
    let idx = EmbeddedLexicalIndex::open(&path).unwrap();
    assert_eq!(idx.count(&org("acme")).await.unwrap(), 1);
    let hits = idx.search("clocks", &all("acme"), 10).await.unwrap();
    assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), [d.id]);
    assert!(hits[0].highlights[0].contains("<b>clocks</b>"), "analyzer registered again: {hits:?}");
    drop(idx);

    // Other analyzer options are refused rather than silently mismatched.
    let err = EmbeddedLexicalIndex::open_with(&path, LexicalOptions { stemming: false, ..Default::default() })
        .unwrap_err()
        .to_string();
    assert!(err.contains("schema"), "{err}");
}

#[tokio::test]
async fn a_second_writer_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = EmbeddedLexicalIndex::open(dir.path()).unwrap();
    assert!(EmbeddedLexicalIndex::open(dir.path()).is_err());
}

/// Indexing and query figures; run with `--ignored --nocapture`
/// (`LOCI_LEXICAL_MEASURE_DOCS` sets the corpus size, default 10k).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "measurement, not a check"]
async fn measure() {
    let dir = tempfile::tempdir().unwrap();
    let idx = EmbeddedLexicalIndex::open(dir.path()).unwrap();
    let words = [
        "deploy",
        "database",
        "migration",
        "cache",
        "user",
        "prefers",
        "dark",
        "mode",
        "kafka",
        "consumer",
        "lag",
        "alert",
        "review",
        "incident",
        "payment",
        "service",
        "token",
        "refresh",
        "rotation",
        "backup",
        "restore",
        "latency",
        "budget",
        "team",
        "meeting",
        "notes",
        "python",
        "rust",
        "typescript",
        "tests",
        "flaky",
        "ci",
    ];
    let users: Vec<UserId> = (0..20).map(|_| UserId::new()).collect();
    let n_docs: usize = std::env::var("LOCI_LEXICAL_MEASURE_DOCS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let docs: Vec<IndexDoc> = (0..n_docs)
        .map(|i| {
            let text: Vec<&str> = (0..12).map(|j| words[(i * 7 + j * j * 13 + i / 3) % words.len()]).collect();
            let mut d = doc(if i % 4 == 0 { "globex" } else { "acme" }, users[i % users.len()], &text.join(" "));
            d.created_at = t0() + Duration::minutes(i as i64);
            d
        })
        .collect();
    let start = Instant::now();
    for batch in docs.chunks(500) {
        idx.upsert(batch).await.unwrap();
        idx.flush().await.unwrap();
    }
    println!("indexed {n_docs} docs in batches of 500 with a flush each: {:?}", start.elapsed());

    let vis = SearchFilter::new(
        org("acme"),
        Some(Visibility { user_id: users[1], grants: vec!["org:acme".parse().unwrap()] }),
    );
    let queries = ["deploy database", "kafka consumer lag alert", "user prefers dark mode", "flaky rust tests ci"];
    let mut idx = Some(idx);
    for tenant_statistics in [true, false] {
        drop(idx.take());
        let opened =
            EmbeddedLexicalIndex::open_with(dir.path(), LexicalOptions { tenant_statistics, ..Default::default() })
                .unwrap();
        let n = 400u32;
        let start = Instant::now();
        for i in 0..n {
            let hits = opened.search(queries[i as usize % queries.len()], &vis, 10).await.unwrap();
            assert!(!hits.is_empty());
        }
        println!(
            "tenant_statistics={tenant_statistics}: mean query latency (limit 10, highlights) {:?}",
            start.elapsed() / n
        );
        idx = Some(opened);
    }
}
