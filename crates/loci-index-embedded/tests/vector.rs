#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The embedded vector index: nearest neighbours (exact and HNSW), tenant
//! isolation, filters, deletes, durability (reopen, torn tail, SIGKILL),
//! clear and compaction.

use loci_index::contract::plain_doc;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use chrono::{Duration, Utc};
use loci_core::model::Visibility;
use loci_core::{AccessEntity, AppId, MemoryId, MemoryState, OrgId, UserId};
use loci_index::{Hit, IndexDoc, SearchFilter, VectorIndex};
use loci_index_embedded::vector::{EmbeddedVectorIndex, LOG_FILE_NAME, VectorOptions, recall_at_k};
use uuid::Uuid;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn float(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }

    fn unit(&mut self, dims: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..dims).map(|_| self.float()).collect();
        normalised(v)
    }
}

fn normalised(v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn org(name: &str) -> OrgId {
    OrgId::parse(name).unwrap()
}

fn doc(org: &OrgId, user: UserId) -> IndexDoc {
    plain_doc(org, user, "some content")
}

fn options(exact_below: usize) -> VectorOptions {
    VectorOptions { exact_below, ..VectorOptions::default() }
}

fn open(dir: &Path, dims: usize, opts: VectorOptions) -> EmbeddedVectorIndex {
    EmbeddedVectorIndex::open(dir, dims, opts).unwrap()
}

fn ids(hits: &[Hit]) -> Vec<MemoryId> {
    hits.iter().map(|h| h.id).collect()
}

/// The reference answer: every document the filter admits, by dot product.
fn reference(docs: &[(IndexDoc, Vec<f32>)], q: &[f32], filter: &SearchFilter, limit: usize) -> Vec<MemoryId> {
    let mut scored: Vec<(f32, MemoryId)> =
        docs.iter().filter(|(d, _)| filter.admits(d)).map(|(d, v)| (dot(q, v), d.id)).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(limit).map(|(_, id)| id).collect()
}

fn random_docs(org_id: &OrgId, n: usize, dims: usize, rng: &mut Rng) -> Vec<(IndexDoc, Vec<f32>)> {
    let user = UserId::new();
    (0..n).map(|_| (doc(org_id, user), rng.unit(dims))).collect()
}

#[tokio::test]
async fn exact_path_finds_the_nearest_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let idx = open(dir.path(), 32, options(2_000));
    let acme = org("acme");
    let mut rng = Rng(1);
    let docs = random_docs(&acme, 200, 32, &mut rng);
    idx.upsert(&docs).await.unwrap();
    assert_eq!(idx.count(&acme).await.unwrap(), 200);
    assert!(!idx.uses_graph(&acme));

    let filter = SearchFilter::new(acme.clone(), None);
    for (d, v) in docs.iter().take(20) {
        let hits = idx.search(v, &filter, 5).await.unwrap();
        assert_eq!(hits[0].id, d.id);
        assert!((hits[0].score - 1.0).abs() < 1e-4, "score {}", hits[0].score);
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
        assert_eq!(ids(&hits), reference(&docs, v, &filter, 5));
    }
    // Queries are normalised: a scaled query gives the same answer and scores.
    let q: Vec<f32> = docs[3].1.iter().map(|x| x * 7.5).collect();
    let hits = idx.search(&q, &filter, 3).await.unwrap();
    assert_eq!(hits[0].id, docs[3].0.id);
    assert!((hits[0].score - 1.0).abs() < 1e-4);
    // Wrong dimensions are an error, a zero limit an empty answer.
    assert!(idx.search(&[1.0; 31], &filter, 3).await.is_err());
    assert!(idx.upsert(&[(docs[0].0.clone(), vec![1.0; 33])]).await.is_err());
    assert!(idx.upsert(&[(docs[0].0.clone(), vec![f32::NAN; 32])]).await.is_err());
    assert!(idx.search(&docs[0].1, &filter, 0).await.unwrap().is_empty());
    // An unknown org has nothing.
    let other = SearchFilter::new(org("nobody"), None);
    assert!(idx.search(&docs[0].1, &other, 3).await.unwrap().is_empty());
}

/// A graph-backed index of 5,000 random 64-dimensional documents, upserted
/// in batches of 500 (exact search only below 1,000).
async fn random_graph(dir: &Path, seed: u64) -> (EmbeddedVectorIndex, OrgId, Rng, Vec<(IndexDoc, Vec<f32>)>) {
    let idx = open(dir, 64, options(1_000));
    let acme = org("acme");
    let mut rng = Rng(seed);
    let docs = random_docs(&acme, 5_000, 64, &mut rng);
    for chunk in docs.chunks(500) {
        idx.upsert(chunk).await.unwrap();
    }
    assert!(idx.uses_graph(&acme));
    (idx, acme, rng, docs)
}

/// Mean recall@10 of the graph search against the exact one over 100 random
/// queries (the exact answer checked against `docs` too).
async fn mean_recall(
    idx: &EmbeddedVectorIndex,
    docs: &[(IndexDoc, Vec<f32>)],
    filter: &SearchFilter,
    rng: &mut Rng,
) -> f64 {
    let mut total = 0.0;
    for _ in 0..100 {
        let q = rng.unit(64);
        let approx = idx.search(&q, filter, 10).await.unwrap();
        let exact = idx.exact_search(&q, filter, 10).await.unwrap();
        assert_eq!(ids(&exact), reference(docs, &q, filter, 10));
        assert_eq!(approx.len(), 10);
        total += recall_at_k(&approx, &exact, 10);
    }
    total / 100.0
}

/// Half the documents of a graph change after it was built (a quarter moved
/// to new vectors, a quarter deleted): tombstones and relinked nodes must
/// not cost recall.
#[tokio::test]
async fn recall_holds_after_half_the_documents_changed() {
    let dir = tempfile::tempdir().unwrap();
    let (idx, acme, mut rng, mut docs) = random_graph(dir.path(), 7).await;
    let moved: Vec<(IndexDoc, Vec<f32>)> = docs.iter().step_by(4).map(|(d, _)| (d.clone(), rng.unit(64))).collect();
    for chunk in moved.chunks(500) {
        idx.upsert(chunk).await.unwrap();
    }
    let deleted: Vec<MemoryId> = docs.iter().skip(1).step_by(4).map(|(d, _)| d.id).collect();
    for chunk in deleted.chunks(500) {
        idx.delete(&acme, chunk).await.unwrap();
    }
    let moved: std::collections::HashMap<MemoryId, Vec<f32>> = moved.into_iter().map(|(d, v)| (d.id, v)).collect();
    docs.retain(|(d, _)| !deleted.contains(&d.id));
    for (d, v) in &mut docs {
        if let Some(new) = moved.get(&d.id) {
            v.clone_from(new);
        }
    }
    assert_eq!(idx.count(&acme).await.unwrap(), docs.len() as u64);
    let recall = mean_recall(&idx, &docs, &SearchFilter::new(acme.clone(), None), &mut rng).await;
    println!("recall@10 after half changed = {recall:.4}");
    assert!(recall >= 0.95, "recall@10 {recall}");
}

#[tokio::test]
async fn hnsw_path_has_high_recall() {
    let dir = tempfile::tempdir().unwrap();
    let (idx, acme, mut rng, docs) = random_graph(dir.path(), 42).await;
    let filter = SearchFilter::new(acme.clone(), None);
    let recall = mean_recall(&idx, &docs, &filter, &mut rng).await;
    println!("recall@10 = {recall:.4}");
    assert!(recall >= 0.95, "recall@10 {recall}");
    // Stored vectors find themselves.
    for (d, v) in docs.iter().step_by(97) {
        assert_eq!(idx.search(v, &filter, 1).await.unwrap()[0].id, d.id);
    }
}

#[tokio::test]
async fn another_org_is_never_returned() {
    let dir = tempfile::tempdir().unwrap();
    let dims = 16;
    // exact_below 50: both the exact (small org) and graph (large org) paths.
    let idx = open(dir.path(), dims, options(50));
    let (a, b, small) = (org("org-a"), org("org-b"), org("org-small"));
    let mut rng = Rng(7);
    let docs_a = random_docs(&a, 120, dims, &mut rng);
    let mut docs_b = random_docs(&b, 120, dims, &mut rng);
    let mut docs_small = random_docs(&small, 10, dims, &mut rng);
    // B and the small org hold exactly A's vectors (and B even A's ids).
    for (i, (d, v)) in docs_b.iter_mut().enumerate() {
        *v = docs_a[i].1.clone();
        d.id = docs_a[i].0.id;
    }
    for (i, (_, v)) in docs_small.iter_mut().enumerate() {
        *v = docs_a[i].1.clone();
    }
    idx.upsert(&docs_a).await.unwrap();
    idx.upsert(&docs_b).await.unwrap();
    idx.upsert(&docs_small).await.unwrap();
    assert!(idx.uses_graph(&a) && idx.uses_graph(&b) && !idx.uses_graph(&small));
    let a_ids: std::collections::HashSet<_> = docs_a.iter().map(|(d, _)| d.id).collect();
    let small_ids: std::collections::HashSet<_> = docs_small.iter().map(|(d, _)| d.id).collect();
    for (_, v) in docs_a.iter().take(10) {
        let hits = idx.search(v, &SearchFilter::new(a.clone(), None), 20).await.unwrap();
        assert_eq!(hits.len(), 20);
        assert!(hits.iter().all(|h| a_ids.contains(&h.id)));
        let hits = idx.search(v, &SearchFilter::new(small.clone(), None), 20).await.unwrap();
        assert_eq!(hits.len(), 10);
        assert!(hits.iter().all(|h| small_ids.contains(&h.id)));
    }
    // The same id in two orgs: each org sees its own embedding; deleting it
    // in one org leaves the other alone.
    let id = docs_a[0].0.id;
    let mut moved = docs_b[0].1.clone();
    moved.reverse();
    let moved = normalised(moved);
    idx.upsert(&[(docs_b[0].0.clone(), moved.clone())]).await.unwrap();
    assert_eq!(idx.embedding(&a, id).await.unwrap().unwrap(), docs_a[0].1);
    assert_eq!(idx.embedding(&b, id).await.unwrap().unwrap(), moved);
    assert_eq!(idx.embedding(&small, id).await.unwrap(), None);
    idx.delete(&b, &[id]).await.unwrap();
    assert_eq!(idx.count(&a).await.unwrap(), 120);
    assert_eq!(idx.count(&b).await.unwrap(), 119);
    assert!(idx.embedding(&a, id).await.unwrap().is_some());
}

#[tokio::test]
async fn visibility_state_and_field_filters_apply_inside_the_search() {
    for exact_below in [10_000, 40] {
        let dir = tempfile::tempdir().unwrap();
        let dims = 8;
        let idx = open(dir.path(), dims, options(exact_below));
        let acme = org("acme");
        let (alice, bob) = (UserId::new(), UserId::new());
        let app = AppId::new();
        let mut rng = Rng(99);
        let mut docs = Vec::new();
        for i in 0..200 {
            let mut d = doc(&acme, if i % 2 == 0 { alice } else { bob });
            if i % 3 == 0 {
                d.access_entity = Some("team:acme/loci/backend".parse::<AccessEntity>().unwrap());
            }
            if i % 5 == 0 {
                d.state = MemoryState::Paused;
            }
            if i % 4 == 0 {
                d.fields.category = Some("preference".into());
                d.app_id = app;
            }
            if i % 7 == 0 {
                d.tags.insert("lang".into(), "rust".into());
            }
            d.created_at = Utc::now() - Duration::days(i);
            docs.push((d, rng.unit(dims)));
        }
        idx.upsert(&docs).await.unwrap();
        assert_eq!(idx.uses_graph(&acme), exact_below == 40);

        let only_alice = Some(Visibility { user_id: alice, grants: vec![] });
        let alice_with_org = Some(Visibility { user_id: alice, grants: vec!["org:acme".parse().unwrap()] });
        let mut filters = vec![
            SearchFilter::new(acme.clone(), None),
            SearchFilter::new(acme.clone(), only_alice.clone()),
            SearchFilter::new(acme.clone(), alice_with_org.clone()),
        ];
        let mut f = SearchFilter::new(acme.clone(), only_alice.clone());
        f.fields.category = Some("preference".into());
        filters.push(f);
        let mut f = SearchFilter::new(acme.clone(), alice_with_org);
        f.tags.insert("lang".into(), "rust".into());
        filters.push(f);
        let mut f = SearchFilter::new(acme.clone(), None);
        f.states = vec![MemoryState::Paused];
        f.app_id = Some(app);
        filters.push(f);
        let mut f = SearchFilter::new(acme.clone(), None);
        f.from = Some(Utc::now() - Duration::days(30));
        f.exclude = docs.iter().take(10).map(|(d, _)| d.id).collect();
        filters.push(f);

        for filter in &filters {
            for _ in 0..5 {
                let q = rng.unit(dims);
                let hits = idx.search(&q, filter, 10).await.unwrap();
                assert_eq!(ids(&hits), reference(&docs, &q, filter, 10), "filter {filter:?}");
            }
        }
        // A document never shows up for a caller who may not see it.
        let bob_private: Vec<_> = docs.iter().filter(|(d, _)| d.user_id == bob && d.access_entity.is_none()).collect();
        for (d, v) in bob_private.iter().take(5) {
            let hits = idx.search(v, &SearchFilter::new(acme.clone(), only_alice.clone()), 50).await.unwrap();
            assert!(!hits.iter().any(|h| h.id == d.id));
        }
    }
}

#[tokio::test]
async fn delete_and_idempotent_upsert() {
    for exact_below in [10_000, 30] {
        let dir = tempfile::tempdir().unwrap();
        let dims = 8;
        let idx = open(dir.path(), dims, options(exact_below));
        let acme = org("acme");
        let mut rng = Rng(5);
        let mut docs = random_docs(&acme, 100, dims, &mut rng);
        idx.upsert(&docs).await.unwrap();
        idx.upsert(&docs).await.unwrap();
        idx.upsert(&docs[..10]).await.unwrap();
        assert_eq!(idx.count(&acme).await.unwrap(), 100);
        let filter = SearchFilter::new(acme.clone(), None);

        // Delete, including unknown ids and ids of another org.
        let gone: Vec<MemoryId> = docs.iter().take(40).map(|(d, _)| d.id).collect();
        idx.delete(&acme, &gone).await.unwrap();
        idx.delete(&acme, &gone).await.unwrap();
        idx.delete(&acme, &[MemoryId::new()]).await.unwrap();
        idx.delete(&org("other"), &[docs[50].0.id]).await.unwrap();
        assert_eq!(idx.count(&acme).await.unwrap(), 60);
        assert_eq!(idx.embedding(&acme, gone[0]).await.unwrap(), None);
        let hits = idx.search(&docs[0].1, &filter, 100).await.unwrap();
        assert_eq!(hits.len(), 60);
        assert!(hits.iter().all(|h| !gone.contains(&h.id)));
        docs.drain(..40);

        // Replacing a vector moves the document; new documents reuse the freed slots.
        let fresh = rng.unit(dims);
        docs[0].1 = fresh.clone();
        idx.upsert(&docs[..1]).await.unwrap();
        assert_eq!(idx.embedding(&acme, docs[0].0.id).await.unwrap().unwrap(), fresh);
        assert_eq!(idx.search(&fresh, &filter, 1).await.unwrap()[0].id, docs[0].0.id);
        let more = random_docs(&acme, 50, dims, &mut rng);
        idx.upsert(&more).await.unwrap();
        docs.extend(more);
        assert_eq!(idx.count(&acme).await.unwrap(), 110);
        // A changed field is seen by the filters.
        docs[1].0.state = MemoryState::Archived;
        idx.upsert(&docs[1..2]).await.unwrap();
        let hits = idx.search(&docs[1].1, &filter, 200).await.unwrap();
        assert!(!hits.iter().any(|h| h.id == docs[1].0.id));
        for _ in 0..10 {
            let q = rng.unit(dims);
            assert_eq!(ids(&idx.search(&q, &filter, 10).await.unwrap()), reference(&docs, &q, &filter, 10));
        }
    }
}

#[tokio::test]
async fn survives_reopen_with_and_without_graphs() {
    let dir = tempfile::tempdir().unwrap();
    let dims = 16;
    let (big, small) = (org("big"), org("small"));
    let mut rng = Rng(3);
    let docs_big = random_docs(&big, 700, dims, &mut rng);
    let docs_small = random_docs(&small, 20, dims, &mut rng);
    let queries: Vec<Vec<f32>> = (0..20).map(|_| rng.unit(dims)).collect();
    let before = {
        let idx = open(dir.path(), dims, options(100));
        idx.upsert(&docs_big).await.unwrap();
        idx.upsert(&docs_small).await.unwrap();
        idx.delete(&big, &[docs_big[0].0.id]).await.unwrap();
        idx.flush().await.unwrap();
        // Changes after the last snapshot (the graph is reconciled at open).
        idx.delete(&big, &[docs_big[1].0.id]).await.unwrap();
        idx.upsert(&random_docs(&big, 5, dims, &mut Rng(77))).await.unwrap();
        idx.flush().await.unwrap();
        let mut out = Vec::new();
        for q in &queries {
            out.push(idx.search(q, &SearchFilter::new(big.clone(), None), 10).await.unwrap());
        }
        out
    };
    let idx = open(dir.path(), dims, options(100));
    assert!(idx.uses_graph(&big));
    assert_eq!(idx.count(&big).await.unwrap(), 703);
    assert_eq!(idx.count(&small).await.unwrap(), 20);
    for (d, v) in docs_big.iter().skip(2).take(50).chain(docs_small.iter()) {
        assert_eq!(&idx.embedding(&d.org_id, d.id).await.unwrap().unwrap(), v);
    }
    assert_eq!(idx.embedding(&big, docs_big[0].0.id).await.unwrap(), None);
    assert_eq!(idx.embedding(&big, docs_big[1].0.id).await.unwrap(), None);
    for (q, hits) in queries.iter().zip(before) {
        let again = idx.search(q, &SearchFilter::new(big.clone(), None), 10).await.unwrap();
        let exact = idx.exact_search(q, &SearchFilter::new(big.clone(), None), 10).await.unwrap();
        assert!(recall_at_k(&again, &exact, 10) >= 0.8);
        assert!(recall_at_k(&again, &hits, 10) >= 0.8);
    }
    // A different dimension is refused.
    drop(idx);
    assert!(EmbeddedVectorIndex::open(dir.path(), dims + 1, options(100)).is_err());
}

#[tokio::test]
async fn a_torn_tail_is_cut_off_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let dims = 8;
    let acme = org("acme");
    let mut rng = Rng(11);
    let docs = random_docs(&acme, 10, dims, &mut rng);
    let log = dir.path().join(LOG_FILE_NAME);
    {
        let idx = open(dir.path(), dims, options(100));
        idx.upsert(&docs).await.unwrap();
        idx.flush().await.unwrap();
    }
    // Garbage after the last record.
    std::fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(b"\x13\0\0\0garbage garbage").unwrap();
    let flushed_len = {
        let idx = open(dir.path(), dims, options(100));
        assert_eq!(idx.count(&acme).await.unwrap(), 10);
        let len = std::fs::metadata(&log).unwrap().len();
        // Appends after recovery land after the valid records, not the garbage.
        idx.upsert(&random_docs(&acme, 5, dims, &mut rng)).await.unwrap();
        idx.flush().await.unwrap();
        len
    };
    {
        let idx = open(dir.path(), dims, options(100));
        assert_eq!(idx.count(&acme).await.unwrap(), 15);
        for (d, v) in &docs {
            assert_eq!(&idx.embedding(&acme, d.id).await.unwrap().unwrap(), v);
        }
    }
    // A record cut in the middle (a torn write) is dropped whole.
    let full = std::fs::metadata(&log).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    f.set_len(full - 20).unwrap();
    drop(f);
    let idx = open(dir.path(), dims, options(100));
    assert_eq!(idx.count(&acme).await.unwrap(), 14);
    assert!(std::fs::metadata(&log).unwrap().len() > flushed_len);
}

#[tokio::test]
async fn clear_one_org_or_all() {
    let dir = tempfile::tempdir().unwrap();
    let dims = 8;
    let (a, b) = (org("a"), org("b"));
    let mut rng = Rng(13);
    {
        let idx = open(dir.path(), dims, options(20));
        idx.upsert(&random_docs(&a, 30, dims, &mut rng)).await.unwrap();
        idx.upsert(&random_docs(&b, 30, dims, &mut rng)).await.unwrap();
        idx.flush().await.unwrap();
        idx.clear(Some(&a)).await.unwrap();
        assert_eq!(idx.count(&a).await.unwrap(), 0);
        assert_eq!(idx.count(&b).await.unwrap(), 30);
        assert!(idx.search(&rng.unit(dims), &SearchFilter::new(a.clone(), None), 5).await.unwrap().is_empty());
        // Writes after the clear are kept.
        idx.upsert(&random_docs(&a, 3, dims, &mut rng)).await.unwrap();
        idx.flush().await.unwrap();
    }
    {
        let idx = open(dir.path(), dims, options(20));
        assert_eq!(idx.count(&a).await.unwrap(), 3);
        assert_eq!(idx.count(&b).await.unwrap(), 30);
        idx.clear(None).await.unwrap();
        assert_eq!(idx.count(&a).await.unwrap() + idx.count(&b).await.unwrap(), 0);
        idx.flush().await.unwrap();
    }
    let idx = open(dir.path(), dims, options(20));
    assert_eq!(idx.count(&a).await.unwrap() + idx.count(&b).await.unwrap(), 0);
    idx.upsert(&random_docs(&b, 2, dims, &mut rng)).await.unwrap();
    assert_eq!(idx.count(&b).await.unwrap(), 2);
}

#[tokio::test]
async fn the_log_is_compacted_when_mostly_dead() {
    let dir = tempfile::tempdir().unwrap();
    let dims = 32;
    let acme = org("acme");
    let mut rng = Rng(17);
    let mut docs = random_docs(&acme, 300, dims, &mut rng);
    let log = dir.path().join(LOG_FILE_NAME);
    let idx = open(dir.path(), dims, options(100));
    let mut largest = 0;
    for _ in 0..5 {
        for (_, v) in docs.iter_mut() {
            *v = rng.unit(dims);
        }
        idx.upsert(&docs).await.unwrap();
        idx.delete(&acme, &[MemoryId::new()]).await.unwrap();
        largest = largest.max(std::fs::metadata(&log).unwrap().len());
        idx.flush().await.unwrap();
    }
    let after = std::fs::metadata(&log).unwrap().len();
    assert!(after < largest, "log not compacted: {after} >= {largest}");
    drop(idx);
    let idx = open(dir.path(), dims, options(100));
    assert_eq!(idx.count(&acme).await.unwrap(), 300);
    for (d, v) in &docs {
        assert_eq!(&idx.embedding(&acme, d.id).await.unwrap().unwrap(), v);
    }
    let q = rng.unit(dims);
    let filter = SearchFilter::new(acme.clone(), None);
    let exact = idx.exact_search(&q, &filter, 10).await.unwrap();
    assert_eq!(ids(&exact), reference(&docs, &q, &filter, 10));
}

const CRASH_DIR: &str = "LOCI_VECTOR_CRASH_DIR";
const CRASH_DIMS: usize = 24;

fn crash_doc(i: u64) -> (IndexDoc, Vec<f32>) {
    let mut d = doc(&org("crash"), UserId::from_uuid(Uuid::from_u128(1)));
    d.id = MemoryId::from_uuid(Uuid::from_u128(u128::from(i) + 1000));
    (d, Rng(i + 1).unit(CRASH_DIMS))
}

/// Run by `sigkill_between_flushes_loses_nothing_flushed` in a child
/// process: writes batches forever, reporting each flush on stdout.
#[tokio::test]
#[ignore = "child process of sigkill_between_flushes_loses_nothing_flushed"]
async fn crash_writer_child() {
    let Ok(dir) = std::env::var(CRASH_DIR) else { return };
    let idx = open(Path::new(&dir), CRASH_DIMS, options(300));
    let mut next = 0u64;
    loop {
        for _ in 0..4 {
            let batch: Vec<_> = (next..next + 50).map(crash_doc).collect();
            idx.upsert(&batch).await.unwrap();
            next += 50;
        }
        idx.flush().await.unwrap();
        println!("FLUSHED {next}");
        // Unflushed writes, likely caught mid-way by the kill.
        let batch: Vec<_> = (next..next + 50).map(crash_doc).collect();
        idx.upsert(&batch).await.unwrap();
        next += 50;
    }
}

#[tokio::test]
async fn sigkill_between_flushes_loses_nothing_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_writer_child", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CRASH_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut flushed = 0u64;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = 0;
    while seen < 6 {
        let line = lines.next().expect("child ended early").unwrap();
        if let Some(n) = line.strip_prefix("FLUSHED ") {
            flushed = n.trim().parse().unwrap();
            seen += 1;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let idx = open(dir.path(), CRASH_DIMS, options(300));
    let crash = org("crash");
    let count = idx.count(&crash).await.unwrap();
    assert!(count >= flushed, "{count} documents after the crash, {flushed} flushed");
    for i in 0..flushed {
        let (d, v) = crash_doc(i);
        assert_eq!(idx.embedding(&crash, d.id).await.unwrap(), Some(v), "document {i}");
    }
    assert!(idx.uses_graph(&crash));
    let (d, v) = crash_doc(flushed / 2);
    assert_eq!(idx.search(&v, &SearchFilter::new(crash.clone(), None), 1).await.unwrap()[0].id, d.id);
    // And it keeps working.
    idx.upsert(&[crash_doc(1_000_000)]).await.unwrap();
    idx.flush().await.unwrap();
}

/// Documents around `clusters` random centres (like real embeddings, which
/// gather by topic), or uniformly random when `clusters` is 0.
fn bench_docs(org_id: &OrgId, n: usize, dims: usize, clusters: usize, rng: &mut Rng) -> Vec<(IndexDoc, Vec<f32>)> {
    if clusters == 0 {
        return random_docs(org_id, n, dims, rng);
    }
    let centres: Vec<Vec<f32>> = (0..clusters).map(|_| rng.unit(dims)).collect();
    let user = UserId::new();
    (0..n)
        .map(|_| {
            let c = &centres[rng.next() as usize % clusters];
            let v: Vec<f32> = c.iter().map(|x| x + 0.6 * rng.float() / (dims as f32).sqrt() * 3.4).collect();
            (doc(org_id, user), normalised(v))
        })
        .collect()
}

/// Figures for 100k x 384 (or `LOCI_VECTOR_BENCH_N` documents): upsert
/// throughput, flush, open (with graph snapshots and without), search
/// latency and recall@10 against exact search, on clustered vectors
/// (`LOCI_VECTOR_BENCH_CLUSTERS`, default 1000; 0 = uniformly random, the
/// worst case for a graph). Run with `cargo test --release -p loci-stores
/// --test vector_embedded bench -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn bench_vector_index() {
    use std::time::Instant;
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|s| s.parse().ok()).unwrap_or(d);
    let n = env("LOCI_VECTOR_BENCH_N", 100_000);
    let clusters = env("LOCI_VECTOR_BENCH_CLUSTERS", 1_000);
    let opts = VectorOptions {
        ef_search: env("LOCI_VECTOR_BENCH_EF", 128),
        ef_construction: env("LOCI_VECTOR_BENCH_EFC", 200),
        m: env("LOCI_VECTOR_BENCH_M", 16),
        ..VectorOptions::default()
    };
    let dims = 384;
    let dir = tempfile::tempdir().unwrap();
    let acme = org("acme");
    let mut rng = Rng(2024);
    let docs = bench_docs(&acme, n, dims, clusters, &mut rng);
    // Queries: near stored documents (as real queries are near some topic).
    let queries: Vec<Vec<f32>> = (0..200)
        .map(|_| {
            let base = &docs[rng.next() as usize % n].1;
            normalised(base.iter().map(|x| x + 0.5 * rng.float() / (dims as f32).sqrt() * 3.4).collect())
        })
        .collect();
    let filter = SearchFilter::new(acme.clone(), None);
    println!("{n} x {dims}, {clusters} clusters, {opts:?}");

    let idx = open(dir.path(), dims, opts.clone());
    let t = Instant::now();
    for chunk in docs.chunks(500) {
        idx.upsert(chunk).await.unwrap();
    }
    let upsert = t.elapsed();
    let t = Instant::now();
    idx.flush().await.unwrap();
    let flush = t.elapsed();
    println!(
        "upsert: {:.1} s ({:.0} docs/s); first flush {:.2} s",
        upsert.as_secs_f64(),
        n as f64 / upsert.as_secs_f64(),
        flush.as_secs_f64()
    );

    let mut lat = Vec::new();
    let mut exact_lat = Vec::new();
    let mut recall = 0.0;
    let mut before = Vec::new();
    for q in &queries {
        let t = Instant::now();
        let hits = idx.search(q, &filter, 10).await.unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let exact = idx.exact_search(q, &filter, 10).await.unwrap();
        exact_lat.push(t.elapsed().as_secs_f64() * 1e3);
        recall += recall_at_k(&hits, &exact, 10);
        before.push(ids(&hits));
    }
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * p) as usize]
    };
    println!(
        "search k=10: hnsw p50 {:.2} ms p95 {:.2} ms; exact p50 {:.2} ms; recall@10 {:.4}",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.95),
        pct(&mut exact_lat, 0.5),
        recall / queries.len() as f64
    );
    // A filter admitting nothing.
    let mut selective = SearchFilter::new(acme.clone(), None);
    selective.tags.insert("never".into(), "there".into());
    let t = Instant::now();
    for q in queries.iter().take(20) {
        assert!(idx.search(q, &selective, 10).await.unwrap().is_empty());
    }
    println!("search with a filter admitting nothing: {:.2} ms each", t.elapsed().as_secs_f64() * 1e3 / 20.0);
    drop(idx);

    let t = Instant::now();
    let idx = open(dir.path(), dims, opts.clone());
    println!("open with graph snapshot: {:.2} s", t.elapsed().as_secs_f64());
    assert_eq!(idx.count(&acme).await.unwrap(), n as u64);
    let mut same = 0;
    for (q, b) in queries.iter().zip(&before) {
        same += usize::from(&ids(&idx.search(q, &filter, 10).await.unwrap()) == b);
    }
    println!("identical answers after reopen: {same}/{}", queries.len());
    drop(idx);
    std::fs::remove_dir_all(dir.path().join("graphs")).unwrap();
    let t = Instant::now();
    let idx = open(dir.path(), dims, opts);
    println!("open rebuilding the graph: {:.2} s", t.elapsed().as_secs_f64());
    drop(idx);
    let log = std::fs::metadata(dir.path().join(LOG_FILE_NAME)).unwrap().len();
    println!("log size: {:.1} MiB", log as f64 / (1 << 20) as f64);
}
