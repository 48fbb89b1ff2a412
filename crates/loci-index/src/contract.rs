//! The contract suites of the index traits, written once and run against
//! every implementation: the embedded indexes always
//! (`loci-index-embedded/tests/contract.rs`,
//! `loci-stores/tests/graph_contract.rs`), the engine adapters against a
//! reachable engine (`loci-index-engines/tests/contract.rs`, run by
//! `scripts/test-engines.sh`).
//!
//! Each suite takes the index as a trait object and checks only what the
//! trait promises (see the crate docs): tenant isolation, visibility and
//! filters inside the query, idempotent upserts, deletes scoped by org,
//! clear and count. Engine-specific behaviour (durability of the embedded
//! files, tantivy's analyzer, the embedded graph's IDF ranking) stays in the
//! engines' own tests. Every run uses fresh org names, so an engine that
//! keeps data between runs does not disturb it.

#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use loci_core::{AccessEntity, AppId, MemoryId, MemoryState, OrgId, UserId};

use loci_core::model::{Memory, MemoryMetadata, StructuredFields, Visibility};

use crate::{GraphIndex, Hit, IndexDoc, LexicalIndex, SearchFilter, VectorIndex};

/// Org names unique to one run of a suite: `c<random>-<tag>`.
#[derive(Debug, Clone)]
pub struct Orgs(String);

impl Orgs {
    pub fn fresh() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string()[..10].to_owned())
    }

    pub fn org(&self, tag: &str) -> OrgId {
        OrgId::parse(&format!("c{}-{tag}", self.0)).unwrap()
    }
}

fn ids(hits: &[Hit]) -> Vec<MemoryId> {
    hits.iter().map(|h| h.id).collect()
}

fn sorted(mut v: Vec<MemoryId>) -> Vec<MemoryId> {
    v.sort();
    v
}

/// An active memory document with only the required fields set (tests of
/// every index start from it).
pub fn plain_doc(org: &OrgId, user: UserId, content: &str) -> IndexDoc {
    IndexDoc {
        id: MemoryId::new(),
        org_id: org.clone(),
        user_id: user,
        app_id: AppId::new(),
        state: MemoryState::Active,
        content: content.to_owned(),
        context: String::new(),
        access_entity: None,
        fields: StructuredFields::default(),
        tags: BTreeMap::new(),
        created_at: Utc::now(),
    }
}

fn visible(user: UserId, grants: &[&str]) -> Option<Visibility> {
    Some(Visibility { user_id: user, grants: grants.iter().map(|g| g.parse::<AccessEntity>().unwrap()).collect() })
}

// ---------------------------------------------------------------- vector

struct Rng(u64);

impl Rng {
    fn unit(&mut self, dims: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..dims)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                (self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn nearest(docs: &[(IndexDoc, Vec<f32>)], q: &[f32], f: &SearchFilter, limit: usize) -> Vec<MemoryId> {
    let mut scored: Vec<(f32, MemoryId)> =
        docs.iter().filter(|(d, _)| f.admits(d)).map(|(d, v)| (dot(q, v), d.id)).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(limit).map(|(_, id)| id).collect()
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4)
}

/// The [`VectorIndex`] contract, for an index of `dims` dimensions.
pub async fn vector_contract(index: Arc<dyn VectorIndex>, dims: usize) {
    let orgs = Orgs::fresh();
    let (a, b) = (orgs.org("a"), orgs.org("b"));
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut rng = Rng(0x5eed);
    let start = Utc::now() - Duration::days(100);
    let mut docs: Vec<(IndexDoc, Vec<f32>)> = (0..40)
        .map(|i| {
            let mut d = plain_doc(&a, if i % 2 == 0 { alice } else { bob }, "x");
            if i % 3 == 0 {
                d.access_entity = Some("team:acme/core".parse().unwrap());
            }
            if i % 5 == 0 {
                d.state = MemoryState::Paused;
            }
            if i % 4 == 0 {
                d.fields.category = Some("decision".into());
                d.tags.insert("lang".into(), "rust".into());
            }
            d.created_at = start + Duration::days(i);
            (d, rng.unit(dims))
        })
        .collect();
    // Org B holds exactly A's vectors.
    let docs_b: Vec<(IndexDoc, Vec<f32>)> =
        docs.iter().take(10).map(|(_, v)| (plain_doc(&b, alice, "x"), v.clone())).collect();
    index.upsert(&docs).await.unwrap();
    index.upsert(&docs_b).await.unwrap();
    index.upsert(&docs[..5]).await.unwrap();
    index.flush().await.unwrap();
    assert_eq!(index.count(&a).await.unwrap(), 40, "idempotent upserts");
    assert_eq!(index.count(&b).await.unwrap(), 10);

    let all_states = {
        let mut f = SearchFilter::new(a.clone(), None);
        f.states.clear();
        f
    };
    for (d, v) in docs.iter().take(8) {
        let hits = index.search(v, &all_states, 5).await.unwrap();
        assert_eq!(hits[0].id, d.id);
        assert!((hits[0].score - 1.0).abs() < 1e-3, "cosine of itself: {}", hits[0].score);
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score), "best first");
        assert_eq!(ids(&hits), nearest(&docs, v, &all_states, 5));
        let theirs = index.search(v, &SearchFilter::new(b.clone(), None), 20).await.unwrap();
        assert!(theirs.iter().all(|h| docs_b.iter().any(|(d, _)| d.id == h.id)), "never another org's point");
    }
    // Filters inside the search.
    let mut filters = vec![
        SearchFilter::new(a.clone(), None),
        SearchFilter::new(a.clone(), visible(alice, &[])),
        SearchFilter::new(a.clone(), visible(UserId::new(), &["org:acme"])),
        SearchFilter::new(a.clone(), visible(UserId::new(), &["team:acme/other"])),
    ];
    let mut f = SearchFilter::new(a.clone(), visible(bob, &["team:acme/core"]));
    f.fields.category = Some("decision".into());
    f.tags.insert("lang".into(), "rust".into());
    filters.push(f);
    let mut f = SearchFilter::new(a.clone(), None);
    f.states = vec![MemoryState::Paused];
    f.from = Some(start + Duration::days(10));
    f.exclude = vec![docs[15].0.id];
    filters.push(f);
    for f in &filters {
        for _ in 0..3 {
            let q = rng.unit(dims);
            assert_eq!(ids(&index.search(&q, f, 10).await.unwrap()), nearest(&docs, &q, f, 10), "{f:?}");
        }
    }
    // Stored embeddings, by org.
    let (d0, v0) = docs[0].clone();
    let (d0, v0) = (&d0, &v0);
    assert!(close(&index.embedding(&a, d0.id).await.unwrap().unwrap(), v0));
    assert_eq!(index.embedding(&b, d0.id).await.unwrap(), None, "another org's id");
    assert_eq!(index.embedding(&a, MemoryId::new()).await.unwrap(), None);
    // Bad input.
    assert!(index.search(&vec![1.0; dims + 1], &all_states, 3).await.is_err());
    assert!(index.upsert(&[(d0.clone(), vec![1.0; dims - 1])]).await.is_err());
    assert!(index.search(v0, &all_states, 0).await.unwrap().is_empty());
    assert!(index.search(v0, &SearchFilter::new(orgs.org("none"), None), 3).await.unwrap().is_empty());

    // A changed field is seen; deletes are scoped by org and idempotent.
    docs[1].0.state = MemoryState::Archived;
    index.upsert(&docs[1..2]).await.unwrap();
    let gone: Vec<MemoryId> = docs[2..6].iter().map(|(d, _)| d.id).collect();
    index.delete(&a, &gone).await.unwrap();
    index.delete(&a, &gone).await.unwrap();
    index.delete(&a, &[MemoryId::new()]).await.unwrap();
    index.delete(&a, &[]).await.unwrap();
    index.delete(&b, &[docs[20].0.id]).await.unwrap();
    index.flush().await.unwrap();
    assert_eq!(index.count(&a).await.unwrap(), 36);
    assert_eq!(index.embedding(&a, gone[0]).await.unwrap(), None);
    docs.drain(2..6);
    let f = SearchFilter::new(a.clone(), None);
    for _ in 0..3 {
        let q = rng.unit(dims);
        assert_eq!(ids(&index.search(&q, &f, 10).await.unwrap()), nearest(&docs, &q, &f, 10));
    }

    index.clear(Some(&a)).await.unwrap();
    index.flush().await.unwrap();
    assert_eq!(index.count(&a).await.unwrap(), 0);
    assert_eq!(index.count(&b).await.unwrap(), 10, "other orgs untouched");
    assert!(index.search(v0, &all_states, 5).await.unwrap().is_empty());
    index.upsert(&docs[..3]).await.unwrap();
    index.flush().await.unwrap();
    assert_eq!(index.count(&a).await.unwrap(), 3, "writes after a clear are kept");
    index.clear(None).await.unwrap();
    index.flush().await.unwrap();
    assert_eq!(index.count(&a).await.unwrap() + index.count(&b).await.unwrap(), 0);
}

// ---------------------------------------------------------------- lexical

async fn lexical_ids(index: &dyn LexicalIndex, q: &str, f: &SearchFilter) -> Vec<MemoryId> {
    sorted(ids(&index.search(q, f, 50).await.unwrap()))
}

/// The [`LexicalIndex`] contract.
pub async fn lexical_contract(index: Arc<dyn LexicalIndex>) {
    let orgs = Orgs::fresh();
    let (a, b) = (orgs.org("a"), orgs.org("b"));
    let all = |org: &OrgId| SearchFilter::new(org.clone(), None);
    let (alice, bob) = (UserId::new(), UserId::new());

    // Ranking: the rare term wins; best first.
    let mut docs: Vec<IndexDoc> =
        (0..12).map(|i| plain_doc(&a, alice, &format!("the database migration number {i} ran fine"))).collect();
    let rare = plain_doc(&a, alice, "the database migration hit a deadlock on the outbox table");
    docs.push(rare.clone());
    // Another org holds the same text.
    let twin = plain_doc(&b, bob, "the database migration hit a deadlock on the outbox table");
    index.upsert(&docs).await.unwrap();
    index.upsert(std::slice::from_ref(&twin)).await.unwrap();
    index.flush().await.unwrap();
    let hits = index.search("database deadlock", &all(&a), 5).await.unwrap();
    assert_eq!(hits.len(), 5);
    assert_eq!(hits[0].id, rare.id);
    assert!(hits[0].score > hits[1].score && hits.windows(2).all(|w| w[0].score >= w[1].score), "{hits:?}");
    assert!(hits[0].highlights.iter().any(|h| h.contains("<b>deadlock</b>")), "{:?}", hits[0].highlights);
    assert_eq!(ids(&index.search("deadlock", &all(&b), 10).await.unwrap()), [twin.id], "never another org's");
    assert!(index.search("deadlock", &all(&orgs.org("none")), 10).await.unwrap().is_empty());
    assert_eq!(index.count(&a).await.unwrap(), 13);
    assert_eq!(index.count(&b).await.unwrap(), 1);

    // Visibility by owner and grants, and every filter field.
    let mut shared = plain_doc(&a, alice, "incident review for the payment service");
    shared.access_entity = Some("team:acme/platform/payments".parse().unwrap());
    let private = plain_doc(&a, alice, "my private payment notes");
    let mut full = plain_doc(&a, alice, "payment release checklist");
    full.fields.category = Some("process".into());
    full.fields.scope = Some("project".into());
    full.fields.artifact_type = Some("file".into());
    full.fields.artifact_ref = Some("docs/RELEASE.md".into());
    full.fields.entity = Some("release".into());
    full.fields.source = Some("user".into());
    full.tags = BTreeMap::from([("env".into(), "prod".into()), ("a=b".into(), "c".into())]);
    full.created_at = Utc::now() + Duration::days(10);
    let mut paused = plain_doc(&a, alice, "paused payment memo");
    paused.state = MemoryState::Paused;
    index.upsert(&[shared.clone(), private.clone(), full.clone(), paused.clone()]).await.unwrap();
    index.flush().await.unwrap();
    let everything = [shared.clone(), private.clone(), full.clone(), paused.clone()];
    let want = |f: &SearchFilter| sorted(everything.iter().filter(|d| f.admits(d)).map(|d| d.id).collect());
    let mut cases = vec![
        all(&a),
        SearchFilter::new(a.clone(), visible(alice, &[])),
        SearchFilter::new(a.clone(), visible(bob, &[])),
        SearchFilter::new(a.clone(), visible(bob, &["org:acme"])),
        SearchFilter::new(a.clone(), visible(bob, &["project:acme/platform"])),
        SearchFilter::new(a.clone(), visible(bob, &["team:acme/platform/search"])),
    ];
    type Set = fn(&mut SearchFilter);
    let setters: [Set; 12] = [
        |f| f.fields.category = Some("process".into()),
        |f| f.fields.scope = Some("project".into()),
        |f| f.fields.artifact_type = Some("file".into()),
        |f| f.fields.artifact_ref = Some("docs/RELEASE.md".into()),
        |f| f.fields.entity = Some("release".into()),
        |f| f.fields.source = Some("user".into()),
        |f| f.tags = BTreeMap::from([("env".into(), "prod".into())]),
        |f| f.tags = BTreeMap::from([("a".into(), "b=c".into())]),
        |f| f.fields.category = Some("Process".into()),
        |f| f.from = Some(Utc::now() + Duration::days(1)),
        |f| f.to = Some(Utc::now() + Duration::days(1)),
        |f| {
            f.states = vec![MemoryState::Paused, MemoryState::Active];
            f.exclude = vec![MemoryId::new()];
        },
    ];
    for set in setters {
        let mut f = all(&a);
        set(&mut f);
        cases.push(f);
    }
    let mut f = all(&a);
    f.states.clear();
    f.exclude = vec![shared.id];
    cases.push(f);
    for f in &cases {
        assert_eq!(lexical_ids(index.as_ref(), "payment", f).await, want(f), "{f:?}");
    }

    // Upsert replaces, delete is scoped by org, both idempotent.
    let mut reworded = private.clone();
    reworded.content = "reworded: nothing about the earlier subject".into();
    index.upsert(&[reworded.clone(), reworded.clone()]).await.unwrap();
    index.delete(&b, &[shared.id]).await.unwrap();
    index.flush().await.unwrap();
    assert_eq!(lexical_ids(index.as_ref(), "reworded", &all(&a)).await, [reworded.id]);
    assert!(!lexical_ids(index.as_ref(), "payment", &all(&a)).await.contains(&private.id));
    assert!(lexical_ids(index.as_ref(), "payment", &all(&a)).await.contains(&shared.id), "wrong org: no delete");
    index.delete(&a, &[shared.id, MemoryId::new()]).await.unwrap();
    index.delete(&a, &[shared.id]).await.unwrap();
    index.delete(&a, &[]).await.unwrap();
    index.upsert(&[]).await.unwrap();
    index.flush().await.unwrap();
    assert!(!lexical_ids(index.as_ref(), "payment", &all(&a)).await.contains(&shared.id));
    assert_eq!(index.count(&a).await.unwrap(), 16);

    // No query text is a syntax error.
    for q in ["foo:\"bar", "AND OR (", "", "   ", "\"", "*", "org_id:globex", "+-&&||!(){}[]^~*?:\\/", "the"] {
        assert!(index.search(q, &all(&a), 10).await.is_ok(), "{q:?}");
    }
    assert!(index.search(&"word ".repeat(20_000), &all(&a), 10).await.is_ok());
    assert!(index.search("payment", &all(&a), 0).await.unwrap().is_empty());

    index.clear(Some(&a)).await.unwrap();
    index.flush().await.unwrap();
    assert_eq!(index.count(&a).await.unwrap(), 0);
    assert_eq!(index.count(&b).await.unwrap(), 1, "other orgs untouched");
    index.clear(None).await.unwrap();
    index.flush().await.unwrap();
    assert_eq!(index.count(&b).await.unwrap(), 0);
}

// ---------------------------------------------------------------- graph

/// Makes the memories a graph contract indexes. The embedded graph joins
/// the relational store, so its memories must exist there
/// (`loci_stores::testing::StoredMemories`); an engine keeps what it is given ([`PlainMemories`]).
#[async_trait]
pub trait GraphFixture: Send + Sync {
    /// A new memory of `owner` (a subject name, one user per org and name),
    /// created after every earlier one, as its index document.
    async fn memory(&self, org: &OrgId, owner: &str, content: &str, metadata: MemoryMetadata) -> IndexDoc;
    /// The document after a state change of its memory.
    async fn set_state(&self, doc: &IndexDoc, state: MemoryState) -> IndexDoc;
}

/// Memories that exist only as documents (for engines that do not read the
/// relational store).
#[derive(Debug, Default)]
pub struct PlainMemories {
    users: parking_lot::Mutex<BTreeMap<(OrgId, String), UserId>>,
    clock: AtomicI64,
}

#[async_trait]
impl GraphFixture for PlainMemories {
    async fn memory(&self, org: &OrgId, owner: &str, content: &str, metadata: MemoryMetadata) -> IndexDoc {
        let user = *self.users.lock().entry((org.clone(), owner.to_owned())).or_default();
        let tick = self.clock.fetch_add(1, Ordering::SeqCst);
        let mut d = plain_doc(org, user, content);
        d.created_at = DateTime::<Utc>::from_timestamp(1_750_000_000 + tick, 0).unwrap();
        let m = Memory {
            id: d.id,
            org_id: d.org_id.clone(),
            user_id: d.user_id,
            app_id: d.app_id,
            content: d.content.clone(),
            content_hash: String::new(),
            metadata,
            state: d.state,
            categories: vec![],
            created_at: d.created_at,
            updated_at: d.created_at,
            archived_at: None,
            deleted_at: None,
            valid_to: None,
            superseded_by: None,
        };
        IndexDoc::from_memory(&m)
    }

    async fn set_state(&self, doc: &IndexDoc, state: MemoryState) -> IndexDoc {
        IndexDoc { state, ..doc.clone() }
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn owner(doc: &IndexDoc) -> SearchFilter {
    SearchFilter::new(doc.org_id.clone(), visible(doc.user_id, &[]))
}

fn text(content: &str) -> (String, MemoryMetadata) {
    (content.to_owned(), MemoryMetadata::default())
}

async fn make(fx: &dyn GraphFixture, org: &OrgId, who: &str, items: &[(String, MemoryMetadata)]) -> Vec<IndexDoc> {
    let mut out = Vec::new();
    for (content, md) in items {
        out.push(fx.memory(org, who, content, md.clone()).await);
    }
    out
}

/// The [`GraphIndex`] contract; `fx` makes memories the index can see.
pub async fn graph_contract(index: Arc<dyn GraphIndex>, fx: &dyn GraphFixture) {
    let orgs = Orgs::fresh();
    let (a, b, c) = (orgs.org("a"), orgs.org("b"), orgs.org("c"));

    // Ranking by query entities, then recency.
    let m = make(
        fx,
        &a,
        "alice",
        &[
            text("Caroline and Melanie went hiking in Colorado."),
            text("Caroline likes painting."),
            text("Melanie adopted a dog."),
            text("nothing worth a name here"),
        ],
    )
    .await;
    index.upsert(&m).await.unwrap();
    index.upsert(&m).await.unwrap();
    index.flush().await.unwrap();
    assert_eq!(index.count(&a).await.unwrap(), 3, "caroline, melanie, colorado");
    assert_eq!(
        index.entities_in(&a, "what did caroline and Melanie's friends say about colorado?").await.unwrap(),
        names(&["caroline", "melanie", "colorado"])
    );
    assert!(index.entities_in(&a, "what about dogs").await.unwrap().is_empty());
    assert!(index.entities_in(&a, "").await.unwrap().is_empty());
    let f = owner(&m[0]);
    let hits = index.memories_mentioning(&names(&["caroline", "melanie"]), &f, 10).await.unwrap();
    assert_eq!(ids(&hits), [m[0].id, m[2].id, m[1].id], "two entities first, then the newer");
    assert!(hits[0].score > hits[1].score && (hits[1].score - hits[2].score).abs() < 1e-6, "{hits:?}");
    assert_eq!(ids(&index.memories_mentioning(&names(&["caroline", "melanie"]), &f, 1).await.unwrap()), [m[0].id]);
    let hits = index.memories_mentioning(&names(&["Caroline's", "unknown"]), &f, 10).await.unwrap();
    assert_eq!(ids(&hits), [m[1].id, m[0].id], "names are normalised; unknown ones ignored");
    assert!(index.memories_mentioning(&names(&["unknown"]), &f, 10).await.unwrap().is_empty());
    assert!(index.memories_mentioning(&[], &f, 10).await.unwrap().is_empty());
    assert!(index.memories_mentioning(&names(&["caroline"]), &f, 0).await.unwrap().is_empty());

    // Tenants: another org naming the same entity sees only its own.
    let g = make(fx, &b, "bob", &[text("Caroline runs the Globex office.")]).await;
    index.upsert(&g).await.unwrap();
    assert_eq!(index.count(&b).await.unwrap(), 2, "caroline, globex");
    assert_eq!(index.entities_in(&b, "caroline in colorado").await.unwrap(), names(&["caroline"]));
    assert!(index.entities_in(&orgs.org("none"), "caroline").await.unwrap().is_empty());
    let q = names(&["caroline", "colorado", "globex"]);
    assert_eq!(ids(&index.memories_mentioning(&q, &owner(&g[0]), 10).await.unwrap()), [g[0].id]);
    let mut spoof = f.clone();
    spoof.org = b.clone();
    assert!(index.memories_mentioning(&q, &spoof, 10).await.unwrap().is_empty(), "alice is nobody in org b");
    assert!(index.related(m[0].id, &owner(&g[0]), 10).await.unwrap().is_empty(), "another org's start");
    index.delete(&b, &[m[0].id, m[1].id]).await.unwrap();
    assert_eq!(ids(&index.memories_mentioning(&names(&["caroline"]), &f, 10).await.unwrap()), [m[1].id, m[0].id]);

    // Related: shared entities, never itself; the start must be visible.
    let r = make(
        fx,
        &c,
        "alice",
        &[
            text("Caroline and Melanie went hiking in Colorado."),
            text("Caroline likes painting."),
            text("Melanie adopted a dog."),
            text("nothing worth a name here"),
            text("Melanie and Caroline love Colorado."),
        ],
    )
    .await;
    index.upsert(&r).await.unwrap();
    let rf = owner(&r[0]);
    let hits = index.related(r[0].id, &rf, 10).await.unwrap();
    assert_eq!(ids(&hits), [r[4].id, r[2].id, r[1].id], "most shared first, then the newer");
    assert_eq!(hits.iter().map(|h| h.score).collect::<Vec<_>>(), [3.0, 1.0, 1.0]);
    assert_eq!(ids(&index.related(r[0].id, &rf, 1).await.unwrap()), [r[4].id]);
    assert!(index.related(r[3].id, &rf, 10).await.unwrap().is_empty(), "no entities, nothing related");
    assert!(index.related(MemoryId::new(), &rf, 10).await.unwrap().is_empty());
    assert!(index.related(r[0].id, &rf, 0).await.unwrap().is_empty());
    let mut excluding = rf.clone();
    excluding.exclude = vec![r[4].id];
    assert_eq!(ids(&index.related(r[0].id, &excluding, 10).await.unwrap()), [r[2].id, r[1].id]);

    // Visibility and state inside the query.
    let private = fx.memory(&c, "dora", "Zelda told me a secret.", MemoryMetadata::default()).await;
    let team_md =
        MemoryMetadata { access_entity: Some("team:acme/core".parse().unwrap()), ..MemoryMetadata::default() };
    let team = fx.memory(&c, "dora", "Zelda leads the Core team.", team_md).await;
    let paused = fx.memory(&c, "dora", "Zelda is on a break.", MemoryMetadata::default()).await;
    let paused = fx.set_state(&paused, MemoryState::Paused).await;
    index.upsert(&[private.clone(), team.clone(), paused.clone()]).await.unwrap();
    let zelda = names(&["zelda"]);
    let eve = UserId::new();
    let eve_alone = SearchFilter::new(c.clone(), visible(eve, &[]));
    assert!(index.memories_mentioning(&zelda, &eve_alone, 10).await.unwrap().is_empty());
    assert!(index.related(team.id, &eve_alone, 10).await.unwrap().is_empty());
    let eve_in_org = SearchFilter::new(c.clone(), visible(eve, &["org:acme"]));
    assert_eq!(ids(&index.memories_mentioning(&zelda, &eve_in_org, 10).await.unwrap()), [team.id]);
    assert!(index.related(team.id, &eve_in_org, 10).await.unwrap().is_empty(), "private stays hidden");
    assert!(index.related(private.id, &eve_in_org, 10).await.unwrap().is_empty(), "a hidden start leaks nothing");
    let dora = owner(&private);
    assert_eq!(ids(&index.memories_mentioning(&zelda, &dora, 10).await.unwrap()), [team.id, private.id]);
    let mut any_state = dora.clone();
    any_state.states.clear();
    assert_eq!(index.memories_mentioning(&zelda, &any_state, 10).await.unwrap().len(), 3);
    any_state.states = vec![MemoryState::Paused];
    assert_eq!(ids(&index.memories_mentioning(&zelda, &any_state, 10).await.unwrap()), [paused.id]);
    let mut tagged = dora.clone();
    tagged.tags.insert("env".into(), "prod".into());
    assert!(index.memories_mentioning(&zelda, &tagged, 10).await.unwrap().is_empty());

    // Deletes remove mentions and the entities nothing mentions any more.
    let before = index.count(&c).await.unwrap();
    index.delete(&c, &[private.id, team.id, paused.id, MemoryId::new()]).await.unwrap();
    index.delete(&c, &[private.id]).await.unwrap();
    index.delete(&c, &[]).await.unwrap();
    index.flush().await.unwrap();
    assert!(index.count(&c).await.unwrap() < before, "entities nothing mentions are gone");
    assert!(index.entities_in(&c, "zelda").await.unwrap().is_empty());

    index.clear(Some(&a)).await.unwrap();
    assert_eq!(index.count(&a).await.unwrap(), 0);
    assert_eq!(index.count(&b).await.unwrap(), 2, "clearing one org leaves the others");
    assert!(index.memories_mentioning(&names(&["caroline"]), &f, 10).await.unwrap().is_empty());
    for org in [&b, &c] {
        index.clear(Some(org)).await.unwrap();
    }
    index.upsert(&[]).await.unwrap();
}

// ------------------------------------------------------------ graph API

fn chain(path: Option<Vec<crate::EntitySummary>>) -> Option<Vec<String>> {
    path.map(|p| p.into_iter().map(|e| e.name).collect())
}

/// The graph and entity API ([`crate::EntityGraph`] and
/// [`crate::GraphAnalytics`]) on a fixed corpus with known answers: counts
/// and their order, networks, shortest paths and their bound, the mention
/// graph (hence connectivity, communities and centrality, computed from it
/// by [`crate::algorithms`]), entity search, an entity's memories, typed
/// relations and when they ended, and the merge (dry run, move, alias,
/// idempotence, refusals). Another user of the org and another org add
/// nothing, not even a shortcut.
pub async fn graph_api_contract(index: Arc<dyn crate::GraphEngine>, fx: &dyn GraphFixture) {
    use crate::algorithms;
    use crate::analytics::MergeRefusal;
    use crate::relations::fold_relations;

    let orgs = Orgs::fresh();
    let (acme, globex, rel) = (orgs.org("acme"), orgs.org("globex"), orgs.org("rel"));
    let mut m = make(
        fx,
        &acme,
        "alice",
        &[
            text("Caroline met Melanie in Denver."),
            text("Melanie works with Oscar."),
            text("Oscar visited Paris with Zoe."),
            text("Caroline paints with Melanie."),
            text("nothing capitalised here"),
        ],
    )
    .await;
    let b = make(fx, &acme, "bob", &[text("Caroline knows Quentin."), text("Zoe knows Quentin.")]).await;
    let g = make(fx, &globex, "carl", &[text("Caroline met Zoe.")]).await;
    m.extend(b.iter().cloned());
    index.upsert(&m).await.unwrap();
    index.upsert(&g).await.unwrap();
    index.flush().await.unwrap();
    let (alice, bob, carl) = (owner(&m[0]), owner(&b[0]), owner(&g[0]));

    // Entities: the most mentioned first, then by name.
    let listed = index.entities(&alice, 1, 50).await.unwrap();
    let counts: Vec<(&str, u64)> = listed.iter().map(|e| (e.name.as_str(), e.memories)).collect();
    assert_eq!(
        counts,
        [("melanie", 3), ("caroline", 2), ("oscar", 2), ("denver", 1), ("paris", 1), ("zoe", 1)],
        "bob's quentin is not alice's"
    );
    let frequent: Vec<String> = index.entities(&alice, 2, 50).await.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(frequent, names(&["melanie", "caroline", "oscar"]));
    assert_eq!(index.entities(&alice, 1, 2).await.unwrap().len(), 2);
    let caroline = index.entity(&alice, "caroline").await.unwrap().unwrap();
    assert_eq!((caroline.display_name.as_str(), caroline.memories), ("Caroline", 2), "bob's mention is not counted");
    assert!(index.entity(&alice, "quentin").await.unwrap().is_none());
    assert_eq!(index.entity(&bob, "quentin").await.unwrap().unwrap().memories, 2);

    // Network: shared memories, and each neighbour's own visible count.
    let network = index.network(&alice, "caroline", 10).await.unwrap().unwrap();
    let around: Vec<(&str, u64, u64)> =
        network.neighbours.iter().map(|n| (n.entity.name.as_str(), n.shared_memories, n.entity.memories)).collect();
    assert_eq!(around, [("melanie", 2, 3), ("denver", 1, 1)]);
    assert_eq!(index.network(&alice, "caroline", 1).await.unwrap().unwrap().neighbours.len(), 1);
    assert!(index.network(&alice, "quentin", 10).await.unwrap().is_none());

    // Paths: shortest, bounded, visible only.
    let path = |f: &SearchFilter, from: &str, to: &str, hops: usize| {
        let (index, f, from, to) = (index.clone(), f.clone(), from.to_owned(), to.to_owned());
        async move { chain(index.path(&f, &from, &to, hops).await.unwrap()) }
    };
    assert_eq!(
        path(&alice, "caroline", "zoe", 6).await,
        Some(names(&["caroline", "melanie", "oscar", "zoe"])),
        "bob's caroline-quentin-zoe shortcut is not alice's"
    );
    assert_eq!(path(&alice, "caroline", "zoe", 2).await, None, "three hops do not fit in two");
    assert_eq!(path(&alice, "caroline", "caroline", 2).await, Some(names(&["caroline"])));
    assert_eq!(path(&alice, "caroline", "quentin", 6).await, None);
    assert_eq!(path(&bob, "caroline", "zoe", 6).await, Some(names(&["caroline", "quentin", "zoe"])));
    let there: Vec<String> = index.entities(&carl, 1, 50).await.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(there, names(&["caroline", "zoe"]));
    assert_eq!(path(&carl, "caroline", "zoe", 2).await, Some(names(&["caroline", "zoe"])));
    let mut spoof = alice.clone();
    spoof.org = globex.clone();
    assert!(index.entities(&spoof, 1, 50).await.unwrap().is_empty(), "alice is nobody in globex");

    // Stats and the mention graph.
    let stats = index.stats(&alice).await.unwrap();
    assert_eq!(
        (stats.memories, stats.memories_with_entities, stats.entities, stats.mentions, stats.co_mention_pairs),
        (5, 4, 6, 10, 7),
        "bob's memories are not alice's"
    );
    let graph = index.mention_graph(&alice, 1_000).await.unwrap();
    let entity_names: Vec<&str> = graph.entities.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(entity_names, ["caroline", "denver", "melanie", "oscar", "paris", "zoe"]);
    assert_eq!((graph.memories.len(), graph.truncated), (4, false));
    let c = algorithms::connectivity(&graph);
    assert_eq!((c.entities, c.edges, c.components, c.largest_component), (6, 7, 1, 6));
    let cut = index.mention_graph(&alice, 4).await.unwrap();
    assert!(cut.truncated && cut.memories.len() < 4, "a cut graph says so and drops the cut memory whole");

    // Entity search and an entity's memories.
    let found: Vec<String> =
        index.search_entities(&alice, "o", 10).await.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(found, names(&["oscar", "caroline", "zoe"]), "prefix first, then by mentions");
    assert!(index.search_entities(&alice, "%", 10).await.unwrap().is_empty(), "wildcards are literal");
    assert!(index.search_entities(&alice, "quentin", 10).await.unwrap().is_empty());
    let page = index.entity_memories(&alice, "melanie", 2, 0).await.unwrap().unwrap();
    assert_eq!((page.entity.memories, page.ids), (3, vec![m[3].id, m[1].id]), "newest first");
    assert_eq!(index.entity_memories(&alice, "melanie", 2, 2).await.unwrap().unwrap().ids, [m[0].id]);
    assert!(index.entity_memories(&alice, "quentin", 2, 0).await.unwrap().is_none());

    // Merge: a dry run changes nothing.
    let org_wide = SearchFilter::new(acme.clone(), None);
    let before = index.mention_graph(&org_wide, 1_000).await.unwrap();
    let dry = index.merge(&alice, "caroline", "melanie", &m[0].user_id, false).await.unwrap().unwrap();
    assert_eq!((dry.memories_moved, dry.memories_mentioning_both, dry.applied), (2, 2, false));
    assert_eq!(index.mention_graph(&org_wide, 1_000).await.unwrap(), before);
    // A merge moves every mention of the org, bob's too.
    let done = index.merge(&alice, "caroline", "melanie", &m[0].user_id, true).await.unwrap().unwrap();
    assert_eq!((done.memories_moved, done.applied, done.already_merged), (2, true, false));
    assert_eq!(index.entity(&alice, "melanie").await.unwrap().unwrap().memories, 3);
    assert_eq!(index.entity(&alice, "caroline").await.unwrap().unwrap().name, "melanie", "the old name finds it");
    assert_eq!(index.entity(&bob, "melanie").await.unwrap().unwrap().memories, 1);
    let merged = index.mention_graph(&org_wide, 1_000).await.unwrap();
    assert!(merged.entities.iter().all(|e| e.name != "caroline"));
    // Indexing the documents again lands on the target: the same graph.
    index.clear(Some(&acme)).await.unwrap();
    index.upsert(&m).await.unwrap();
    index.flush().await.unwrap();
    assert_eq!(index.mention_graph(&org_wide, 1_000).await.unwrap(), merged);
    assert_eq!(index.entities_in(&acme, "what about caroline").await.unwrap(), names(&["caroline"]));
    let hits = index.memories_mentioning(&names(&["caroline"]), &alice, 10).await.unwrap();
    assert_eq!(hits.len(), 3, "the merged name finds the target's memories");
    let aliases = index.aliases(&acme, Some("melanie")).await.unwrap();
    let history: Vec<(&str, u64)> = aliases.iter().map(|a| (a.alias.as_str(), a.memories_moved)).collect();
    assert_eq!(history, [("caroline", 3)], "the history counts the org's memories");
    assert_eq!(aliases[0].merged_by, m[0].user_id);
    assert!(index.aliases(&globex, None).await.unwrap().is_empty());
    // Again: a no-op; and the refusals.
    let again = index.merge(&alice, "caroline", "melanie", &m[0].user_id, true).await.unwrap().unwrap();
    assert_eq!((again.already_merged, again.applied), (true, false));
    assert_eq!(index.mention_graph(&org_wide, 1_000).await.unwrap(), merged);
    assert_eq!(
        index.merge(&alice, "caroline", "oscar", &m[0].user_id, true).await.unwrap(),
        Err(MergeRefusal::MergedElsewhere { source: "caroline".into(), into: "melanie".into() })
    );
    assert_eq!(
        index.merge(&alice, "melanie", "caroline", &m[0].user_id, true).await.unwrap(),
        Err(MergeRefusal::SameEntity("melanie".into()))
    );
    assert_eq!(
        index.merge(&alice, "quentin", "melanie", &m[0].user_id, true).await.unwrap(),
        Err(MergeRefusal::UnknownEntity("quentin".into())),
        "bob's entity is not alice's to merge"
    );
    assert_eq!(index.entities(&carl, 1, 50).await.unwrap().len(), 2, "globex keeps its caroline");

    // Typed relations: stored with their memory, read under visibility,
    // ended by a later statement of an exclusive predicate, carried by a
    // merge.
    let billing = MemoryMetadata { entity: Some("Billing".into()), ..MemoryMetadata::default() };
    let r = make(
        fx,
        &rel,
        "alice",
        &[
            text("Alice works at Acme."),
            text("Alice works on Payments."),
            text("Alice works at Globex."),
            ("Depends on Kafka.".to_owned(), billing),
        ],
    )
    .await;
    let theirs = make(fx, &rel, "bob", &[text("Alice works at Initech.")]).await;
    index.upsert(&r).await.unwrap();
    index.upsert(&theirs).await.unwrap();
    let mine = owner(&r[0]);
    type Triple = (String, &'static str, String, bool);
    let triples = |facts: &crate::analytics::RelationFacts| -> Vec<Triple> {
        fold_relations(&facts.statements)
            .into_iter()
            .map(|r| (r.subject, r.predicate.as_str(), r.object, r.valid_to.is_none()))
            .collect()
    };
    let t = |s: &str, p: &'static str, o: &str, current: bool| (s.to_owned(), p, o.to_owned(), current);
    let facts = index.relation_statements(&mine, "alice", 100).await.unwrap().unwrap();
    assert_eq!(
        triples(&facts),
        [
            t("alice", "works_at", "globex", true),
            t("alice", "works_on", "payments", true),
            t("alice", "works_at", "acme", false)
        ],
        "bob's initech is not alice's; globex ended acme"
    );
    let ended = fold_relations(&facts.statements).into_iter().find(|x| x.object == "acme").unwrap();
    assert_eq!((ended.valid_from, ended.valid_to), (r[0].created_at, Some(r[2].created_at)));
    let related: Vec<&str> = facts.entities.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(related, ["acme", "globex", "payments"]);
    let from_acme = index.relation_statements(&mine, "acme", 100).await.unwrap().unwrap();
    let ended: Vec<Triple> = triples(&from_acme).into_iter().filter(|x| x.2 == "acme").collect();
    assert_eq!(ended, [t("alice", "works_at", "acme", false)], "seen from the object, still ended");
    let kafka = index.relation_statements(&mine, "billing", 100).await.unwrap().unwrap();
    assert_eq!(triples(&kafka), [t("billing", "depends_on", "kafka", true)], "the structured entity is a subject");
    assert!(index.relation_statements(&mine, "initech", 100).await.unwrap().is_none());
    index.delete(&rel, &[r[2].id]).await.unwrap();
    let facts = index.relation_statements(&mine, "alice", 100).await.unwrap().unwrap();
    assert_eq!(
        triples(&facts),
        [t("alice", "works_on", "payments", true), t("alice", "works_at", "acme", true)],
        "the memory that ended it went: current again"
    );
    index.merge(&mine, "payments", "billing", &r[0].user_id, true).await.unwrap().unwrap();
    let facts = index.relation_statements(&mine, "billing", 100).await.unwrap().unwrap();
    assert_eq!(triples(&facts), [t("billing", "depends_on", "kafka", true), t("alice", "works_on", "billing", true)]);

    for org in [&acme, &globex, &rel] {
        index.clear(Some(org)).await.unwrap();
    }
}

/// A small repository graph: `main` (top of `app.rs`) calls `run`, which
/// calls `helper` and an unresolved `serde_json::to_string`; a top-level
/// call in `lib.rs` reaches `helper`.
pub fn sample_repo(name: &str, packages: &[&str], dependencies: &[&str]) -> crate::CodeRepoGraph {
    use crate::{CodeCallEdge, CodeFileNode, CodeRepoGraph, CodeSymbolNode};
    let id = uuid::Uuid::new_v4();
    let (app, lib) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let symbol = |file: uuid::Uuid, name: &str| CodeSymbolNode {
        id: uuid::Uuid::new_v4(),
        file_id: file,
        name: name.to_owned(),
        qualified_name: name.to_owned(),
        kind: "function".to_owned(),
    };
    let (main, run, helper) = (symbol(app, "main"), symbol(app, "run"), symbol(lib, "helper"));
    let call =
        |file: uuid::Uuid, from: Option<uuid::Uuid>, to: Option<&CodeSymbolNode>, name: &str, line: i32| CodeCallEdge {
            id: uuid::Uuid::new_v4(),
            repo_id: id,
            file_id: file,
            caller_id: from,
            callee_id: to.map(|s| s.id),
            callee_name: to.map(|s| s.name.clone()).unwrap_or_else(|| name.to_owned()),
            qualifier: None,
            module: if to.is_none() { Some("serde_json".to_owned()) } else { None },
            line,
            resolution: if to.is_some() { "same_file" } else { "unresolved" }.to_owned(),
        };
    let calls = vec![
        call(app, Some(main.id), Some(&run), "run", 2),
        call(app, Some(run.id), Some(&helper), "helper", 6),
        call(app, Some(run.id), None, "to_string", 7),
        call(lib, None, Some(&helper), "helper", 9),
    ];
    CodeRepoGraph {
        id,
        name: name.to_owned(),
        packages: packages.iter().map(|p| (*p).to_owned()).collect(),
        dependencies: dependencies.iter().map(|p| (*p).to_owned()).collect(),
        files: vec![
            CodeFileNode {
                id: app,
                path: "src/app.rs".into(),
                language: "rust".into(),
                imports: vec!["crate::lib".into()],
            },
            CodeFileNode { id: lib, path: "src/lib.rs".into(), language: "rust".into(), imports: vec![] },
        ],
        symbols: vec![main, run, helper],
        calls,
    }
}

fn symbol_id(repo: &crate::CodeRepoGraph, name: &str) -> uuid::Uuid {
    repo.symbols.iter().find(|s| s.name == name).map(|s| s.id).unwrap()
}

fn call_keys(mut calls: Vec<crate::CodeCallEdge>) -> Vec<(Option<uuid::Uuid>, Option<uuid::Uuid>, i32)> {
    calls.sort_by_key(|c| (c.file_id, c.line));
    calls.into_iter().map(|c| (c.caller_id, c.callee_id, c.line)).collect()
}

/// The contract of [`CodeGraph`](crate::CodeGraph): what a replaced
/// repository answers (calls both ways with every field, unresolved calls,
/// DEPENDS_ON between repositories), replacing again forgets the earlier
/// graph, deleting forgets everything, and another org sees nothing.
pub async fn code_graph_contract(graph: Arc<dyn crate::CodeGraph>) {
    let orgs = Orgs::fresh();
    let (a, b) = (orgs.org("a"), orgs.org("b"));
    let lib = sample_repo("lib", &["acme_lib"], &["serde_json"]);
    let app = sample_repo("app", &["acme_app"], &["acme_lib"]);
    graph.replace_repo(&a, &lib).await.unwrap();
    graph.replace_repo(&a, &app).await.unwrap();
    // Replacing is idempotent.
    graph.replace_repo(&a, &lib).await.unwrap();
    assert_eq!(graph.count_symbols(&a).await.unwrap(), 6);

    let helper = symbol_id(&lib, "helper");
    let run = symbol_id(&lib, "run");
    let into_helper = graph.calls_to(&a, &[helper], 100).await.unwrap();
    let expected: Vec<_> = lib.calls.iter().filter(|c| c.callee_id == Some(helper)).cloned().collect();
    assert_eq!(call_keys(into_helper.clone()), call_keys(expected.clone()));
    // Every field comes back as written.
    let mut got = into_helper;
    let mut want = expected;
    got.sort_by_key(|c| c.id);
    want.sort_by_key(|c| c.id);
    assert_eq!(got, want);
    let from_run = graph.calls_from(&a, &[run], 100).await.unwrap();
    assert_eq!(from_run.len(), 2, "{from_run:?}");
    assert!(from_run.iter().any(|c| c.callee_id.is_none() && c.callee_name == "to_string"));
    assert_eq!(graph.calls_from(&a, &[run], 1).await.unwrap().len(), 1, "limit holds");
    // Ordered by file, then line.
    let both = graph.calls_to(&a, &[helper, run], 100).await.unwrap();
    assert!(both.windows(2).all(|w| (w[0].file_id, w[0].line) <= (w[1].file_id, w[1].line)), "{both:?}");
    let external = graph.external_calls(&a, &[lib.id], "to_string", 10).await.unwrap();
    assert_eq!(external.len(), 1);
    assert_eq!(external[0].module.as_deref(), Some("serde_json"));
    assert!(graph.external_calls(&a, &[app.id], "missing", 10).await.unwrap().is_empty());
    assert_eq!(graph.dependents(&a, lib.id).await.unwrap(), vec![app.id]);
    assert!(graph.dependents(&a, app.id).await.unwrap().is_empty());

    // Another org: nothing, and its writes change nothing here.
    assert!(graph.calls_to(&b, &[helper], 100).await.unwrap().is_empty());
    assert!(graph.calls_from(&b, &[run], 100).await.unwrap().is_empty());
    assert!(graph.external_calls(&b, &[lib.id], "to_string", 10).await.unwrap().is_empty());
    assert!(graph.dependents(&b, lib.id).await.unwrap().is_empty());
    assert_eq!(graph.count_symbols(&b).await.unwrap(), 0);
    graph.delete_repo(&b, lib.id).await.unwrap();
    graph.clear(Some(&b)).await.unwrap();
    assert_eq!(graph.calls_to(&a, &[helper], 100).await.unwrap().len(), 2);

    // A new run of the repository replaces the old graph entirely.
    let mut next = sample_repo("lib", &["acme_lib"], &[]);
    next.id = lib.id;
    for c in &mut next.calls {
        c.repo_id = lib.id;
    }
    graph.replace_repo(&a, &next).await.unwrap();
    assert!(graph.calls_to(&a, &[helper], 100).await.unwrap().is_empty(), "old symbols are gone");
    assert_eq!(graph.calls_to(&a, &[symbol_id(&next, "helper")], 100).await.unwrap().len(), 2);
    assert_eq!(graph.count_symbols(&a).await.unwrap(), 6);
    assert_eq!(graph.dependents(&a, lib.id).await.unwrap(), vec![app.id], "still published and depended on");

    // The dependency goes when the dependent stops depending.
    let mut app_next = sample_repo("app", &["acme_app"], &[]);
    app_next.id = app.id;
    for c in &mut app_next.calls {
        c.repo_id = app.id;
    }
    graph.replace_repo(&a, &app_next).await.unwrap();
    assert!(graph.dependents(&a, lib.id).await.unwrap().is_empty());

    graph.delete_repo(&a, lib.id).await.unwrap();
    assert!(graph.calls_to(&a, &[symbol_id(&next, "helper")], 100).await.unwrap().is_empty());
    assert_eq!(graph.count_symbols(&a).await.unwrap(), 3);
    graph.delete_repo(&a, lib.id).await.unwrap();
    graph.clear(Some(&a)).await.unwrap();
    assert_eq!(graph.count_symbols(&a).await.unwrap(), 0);
}
