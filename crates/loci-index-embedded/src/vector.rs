//! Embedded vector index: per-org exact search for small orgs and a filtered
//! HNSW graph (our own, in safe Rust: see `hnsw.rs`) for large ones, made
//! durable by an append-only log.
//!
//! - **Tenant isolation by construction.** Each org has its own documents,
//!   vectors and graph; a search only ever walks the searched org's data, and
//!   the filter given to the graph search (or the exact scan) is
//!   [`SearchFilter::admits`] itself, so org, visibility, state and field
//!   filters apply inside the search.
//! - **Exact below a size.** Orgs with fewer than
//!   [`VectorOptions::exact_below`] documents are scanned exactly; larger
//!   ones get a graph. When the filtered graph search finds fewer than
//!   `limit` documents while the org has more, the exact scan answers instead
//!   (correctness first).
//! - **Scores.** Vectors are L2-normalised on the way in (queries too), so the
//!   score is the cosine similarity (a dot product).
//! - **Durability.** Every change is a record of the log (`vectors.log`,
//!   framed with a length and a CRC32, vectors as raw little-endian `f32`).
//!   [`VectorIndex::flush`] writes the buffered records and fsyncs; opening
//!   replays the log and cuts off a torn tail, so a crash (even SIGKILL) loses
//!   at most the changes after the last flush, which the outbox re-delivers.
//!   When the log holds more than twice the live records, a flush rewrites it
//!   (temp file + rename). Graphs are snapshotted under `graphs/` at flushes
//!   once enough changed, and reconciled with the log at open, so opening does
//!   not rebuild them.
//! - **Concurrency.** Searches of an org run concurrently; changes to an org
//!   are exclusive. Heavy work runs in `spawn_blocking`.

mod codec;
mod hnsw;
mod log;
mod org;
mod snapshot;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use loci_core::{MemoryId, OrgId};
use parking_lot::{Mutex, RwLock};

use self::codec::Record;
pub use self::log::LOG_FILE_NAME;
use self::log::{LogFile, LogHeader, Rewrite};
use self::org::{OrgIndex, PreparedFilter};
use loci_index::{Hit, IndexDoc, IndexError, SearchFilter, VectorIndex};

/// Tuning of [`EmbeddedVectorIndex`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectorOptions {
    /// Orgs with fewer documents are searched exactly (no graph).
    pub exact_below: usize,
    /// HNSW links per node (the base layer has twice as many); 2..=64.
    pub m: usize,
    /// HNSW candidate list size while inserting.
    pub ef_construction: usize,
    /// HNSW candidate list size while searching (raised to `limit`).
    pub ef_search: usize,
}

impl Default for VectorOptions {
    fn default() -> Self {
        Self { exact_below: 2_000, m: 16, ef_construction: 200, ef_search: 128 }
    }
}

/// Log records before compaction is considered at all.
const COMPACT_MIN_RECORDS: u64 = 1_024;
/// Buffered log bytes that a write writes out without waiting for a flush.
const WRITE_OUT_BYTES: usize = 8 << 20;
/// Changes to a graph before a flush snapshots it (or 1/16 of its documents).
const SNAPSHOT_MIN_CHANGES: usize = 512;

/// The embedded [`VectorIndex`]. Cheap to clone (shared state).
#[derive(Clone)]
pub struct EmbeddedVectorIndex {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EmbeddedVectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedVectorIndex")
            .field("dir", &self.inner.dir)
            .field("dimensions", &self.inner.dims)
            .field("options", &self.inner.opts)
            .field("orgs", &self.inner.orgs.read().len())
            .finish()
    }
}

type SharedOrg = Arc<RwLock<OrgIndex>>;
type Batch = Vec<(IndexDoc, Vec<f32>)>;

struct Inner {
    dir: PathBuf,
    dims: usize,
    opts: VectorOptions,
    lineage: u64,
    orgs: RwLock<HashMap<OrgId, SharedOrg>>,
    /// Next record sequence number.
    seq: AtomicU64,
    /// Encoded records not yet written to the file.
    pending: Mutex<Vec<u8>>,
    /// Records in the file plus `pending` (compaction trigger).
    log_records: AtomicU64,
    file: Mutex<LogFile>,
    /// Serialises flushes, compactions, snapshots and clears.
    maintenance: Mutex<()>,
}

impl EmbeddedVectorIndex {
    /// Opens (or creates) the index stored in `dir` for vectors of
    /// `dimensions`: replays the log, loads or builds the graphs. Blocking:
    /// call it from `spawn_blocking` in async code.
    pub fn open(dir: &Path, dimensions: usize, options: VectorOptions) -> Result<Self, IndexError> {
        if dimensions == 0 || dimensions > (1 << 20) {
            return Err(IndexError::Config(format!("vector dimensions must be 1..=1048576, not {dimensions}")));
        }
        if options.m < 2 || options.m > 64 || options.ef_construction == 0 || options.ef_search == 0 {
            return Err(IndexError::Config(format!(
                "invalid HNSW options (m 2..=64, ef_construction and ef_search > 0): {options:?}"
            )));
        }
        let started = std::time::Instant::now();
        let graphs = dir.join(snapshot::GRAPH_DIR);
        std::fs::create_dir_all(&graphs).map_err(|e| log::io_err("creating", &graphs, e))?;

        let mut orgs: HashMap<OrgId, OrgIndex> = HashMap::new();
        let mut max_seq: Option<u64> = None;
        let opened = log::open(dir, dimensions as u32, |record| {
            let seq = match record {
                Record::Upsert { seq, slot, doc, vector } => {
                    if vector.len() != dimensions {
                        return Err(IndexError::Corrupt(format!("log record of {} dimensions", vector.len())));
                    }
                    orgs.entry(doc.org_id.clone())
                        .or_insert_with(|| OrgIndex::new(dimensions))
                        .replay_upsert(slot, *doc, &vector, seq);
                    seq
                }
                Record::Delete { seq, org, id } => {
                    if let Some(o) = orgs.get_mut(&org) {
                        o.replay_delete(id, seq);
                    }
                    seq
                }
                Record::ClearOrg { seq, org } => {
                    orgs.remove(&org);
                    seq
                }
                Record::ClearAll { seq } => {
                    orgs.clear();
                    seq
                }
            };
            max_seq = max_seq.max(Some(seq));
            Ok(())
        })?;
        let replayed = started.elapsed();

        let lineage = opened.header.lineage;
        let mut keep = HashSet::new();
        for (org_id, org) in &mut orgs {
            org.rebuild_free_list();
            if org.live() < options.exact_below.max(1) {
                continue;
            }
            match snapshot::load(dir, org_id, lineage, dimensions) {
                Ok(Some(loaded)) => {
                    let snap_max = loaded.seqs.iter().copied().max();
                    match org.adopt_graph(loaded.graph, &loaded.seqs) {
                        Ok(fixes) => {
                            keep.insert(snapshot::file_name(org_id));
                            max_seq = max_seq.max(snap_max);
                            tracing::debug!(org = %org_id, fixes, "vector index: graph snapshot loaded");
                        }
                        Err(e) => tracing::warn!(org = %org_id, error = %e, "vector index: graph snapshot unusable"),
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(org = %org_id, error = %e, "vector index: graph snapshot unusable"),
            }
            org.ensure_graph(&options);
        }
        snapshot::remove_all_but(dir, &keep);

        let next_seq = opened.header.base_seq.max(max_seq.map_or(0, |s| s + 1));
        let live: usize = orgs.values().map(OrgIndex::live).sum();
        tracing::info!(
            dir = %dir.display(),
            documents = live,
            orgs = orgs.len(),
            records = opened.records,
            dropped_bytes = opened.dropped_bytes,
            replay_ms = replayed.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "vector index opened"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                dims: dimensions,
                opts: options,
                lineage,
                orgs: RwLock::new(orgs.into_iter().map(|(k, v)| (k, Arc::new(RwLock::new(v)))).collect()),
                seq: AtomicU64::new(next_seq),
                pending: Mutex::new(Vec::new()),
                log_records: AtomicU64::new(opened.records),
                file: Mutex::new(opened.log),
                maintenance: Mutex::new(()),
            }),
        })
    }

    pub fn dimensions(&self) -> usize {
        self.inner.dims
    }

    pub fn options(&self) -> &VectorOptions {
        &self.inner.opts
    }

    /// The exact (brute-force) answer to [`VectorIndex::search`], whatever
    /// the org's size: the reference for measuring the graph's recall.
    pub async fn exact_search(
        &self,
        query: &[f32],
        filter: &SearchFilter,
        limit: usize,
    ) -> Result<Vec<Hit>, IndexError> {
        let query = self.inner.prepare_query(query)?;
        let filter = filter.clone();
        self.blocking(move |inner| Ok(inner.search(&query, &filter, limit, true))).await
    }

    /// Whether `org` is currently searched through an HNSW graph (diagnostics).
    pub fn uses_graph(&self, org: &OrgId) -> bool {
        self.inner.org(org).is_some_and(|o| {
            let o = o.read();
            o.graph.is_some() && o.live() >= self.inner.opts.exact_below
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, IndexError> + Send + 'static,
    ) -> Result<T, IndexError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| IndexError::Failed(format!("vector index task failed: {e}")))?
    }
}

/// Recall@k of `approx` against `exact`: the share of the first `k` exact
/// hits found among the first `k` approximate ones (1.0 when `exact` is
/// empty).
pub fn recall_at_k(approx: &[Hit], exact: &[Hit], k: usize) -> f64 {
    let truth: HashSet<MemoryId> = exact.iter().take(k).map(|h| h.id).collect();
    if truth.is_empty() {
        return 1.0;
    }
    let found = approx.iter().take(k).filter(|h| truth.contains(&h.id)).count();
    found as f64 / truth.len() as f64
}

/// Scales `v` to unit length unless it already is (or is zero).
fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    if norm > 0.0 && (norm - 1.0).abs() > 1e-5 {
        for x in v.iter_mut() {
            *x = (f64::from(*x) / norm) as f32;
        }
    }
}

/// The document as stored: without content and context (no filter reads
/// them; the relational store has them).
fn strip(d: &IndexDoc) -> IndexDoc {
    IndexDoc {
        id: d.id,
        org_id: d.org_id.clone(),
        user_id: d.user_id,
        app_id: d.app_id,
        state: d.state,
        content: String::new(),
        context: String::new(),
        access_entity: d.access_entity.clone(),
        fields: d.fields.clone(),
        tags: d.tags.clone(),
        created_at: d.created_at,
    }
}

impl Inner {
    fn check_vector(&self, v: &[f32]) -> Result<(), IndexError> {
        if v.len() != self.dims {
            return Err(IndexError::Failed(format!("expected a vector of {} dimensions, got {}", self.dims, v.len())));
        }
        if !v.iter().all(|x| x.is_finite()) {
            return Err(IndexError::Failed("vector holds a NaN or infinite value".into()));
        }
        Ok(())
    }

    fn prepare_query(&self, query: &[f32]) -> Result<Vec<f32>, IndexError> {
        self.check_vector(query)?;
        let mut q = query.to_vec();
        normalise(&mut q);
        Ok(q)
    }

    fn org(&self, org: &OrgId) -> Option<SharedOrg> {
        self.orgs.read().get(org).cloned()
    }

    fn org_or_create(&self, org: &OrgId) -> SharedOrg {
        if let Some(o) = self.org(org) {
            return o;
        }
        Arc::clone(
            self.orgs.write().entry(org.clone()).or_insert_with(|| Arc::new(RwLock::new(OrgIndex::new(self.dims)))),
        )
    }

    /// Runs `change` on the org's index under its write lock and queues the
    /// records it encodes (still under the lock, so the log holds an org's
    /// changes in the order they were applied). Retries when the org was
    /// cleared while waiting for the lock.
    fn change_org(&self, org: &OrgId, create: bool, change: impl FnOnce(&mut OrgIndex, &mut Vec<u8>) -> u64) {
        let mut change = Some(change);
        loop {
            let shared = if create {
                self.org_or_create(org)
            } else {
                match self.org(org) {
                    Some(o) => o,
                    None => return,
                }
            };
            let mut idx = shared.write();
            if idx.removed {
                continue;
            }
            let Some(change) = change.take() else { return };
            let mut out = Vec::new();
            let records = change(&mut idx, &mut out);
            if records > 0 {
                self.pending.lock().extend_from_slice(&out);
                self.log_records.fetch_add(records, Ordering::Relaxed);
            }
            return;
        }
    }

    fn upsert(&self, docs: Batch) -> Result<(), IndexError> {
        // Group by org, keeping the order within each org.
        let mut groups: Vec<(OrgId, Batch)> = Vec::new();
        let mut at: HashMap<OrgId, usize> = HashMap::new();
        for (doc, vector) in docs {
            let i = *at.entry(doc.org_id.clone()).or_insert_with(|| {
                groups.push((doc.org_id.clone(), Vec::new()));
                groups.len() - 1
            });
            groups[i].1.push((doc, vector));
        }
        for (org, group) in groups {
            self.change_org(&org, true, |idx, out| {
                let mut n = 0;
                for (doc, vector) in group {
                    n += u64::from(idx.upsert(doc, &vector, &self.seq, &self.opts, out));
                }
                n
            });
        }
        self.write_out_if_large()
    }

    fn delete(&self, org: &OrgId, ids: &[MemoryId]) -> Result<(), IndexError> {
        self.change_org(org, false, |idx, out| {
            ids.iter().map(|id| u64::from(idx.delete(org, *id, &self.seq, &self.opts, out))).sum()
        });
        self.write_out_if_large()
    }

    fn search(&self, query: &[f32], filter: &SearchFilter, limit: usize, exact_only: bool) -> Vec<Hit> {
        let Some(shared) = self.org(&filter.org) else { return Vec::new() };
        let idx = shared.read();
        if idx.removed {
            return Vec::new();
        }
        let prepared = PreparedFilter::new(filter);
        idx.search(query, &prepared, limit, &self.opts, exact_only)
            .into_iter()
            .filter_map(|(score, slot)| idx.id_at(slot).map(|id| Hit::new(id, score)))
            .collect()
    }

    fn clear(&self, org: Option<&OrgId>) -> Result<(), IndexError> {
        let _m = self.maintenance.lock();
        let mut orgs = self.orgs.write();
        let removed: Vec<(OrgId, SharedOrg)> = match org {
            Some(org) => orgs.remove_entry(org).into_iter().collect(),
            None => orgs.drain().collect(),
        };
        // Writers holding an org wait for it, then see `removed` and retry
        // against a fresh entry, so their records follow the clear record.
        let guards: Vec<_> = removed.iter().map(|(_, o)| o.write()).collect();
        let mut out = Vec::new();
        codec::encode_clear(&mut out, self.seq.fetch_add(1, Ordering::Relaxed), org);
        self.pending.lock().extend_from_slice(&out);
        self.log_records.fetch_add(1, Ordering::Relaxed);
        for mut g in guards {
            g.mark_removed();
        }
        drop(orgs);
        for (org, _) in &removed {
            snapshot::remove(&self.dir, org);
        }
        Ok(())
    }

    /// Writes the buffered records to the file, and fsyncs when `sync`. On
    /// failure the records stay buffered (ahead of newer ones).
    fn write_out(&self, sync: bool) -> Result<(), IndexError> {
        let mut file = self.file.lock();
        let buf = std::mem::take(&mut *self.pending.lock());
        if let Err(e) = file.append(&buf) {
            let mut pending = self.pending.lock();
            let newer = std::mem::replace(&mut *pending, buf);
            pending.extend_from_slice(&newer);
            return Err(e);
        }
        if sync { file.sync() } else { Ok(()) }
    }

    fn write_out_if_large(&self) -> Result<(), IndexError> {
        if self.pending.lock().len() >= WRITE_OUT_BYTES { self.write_out(false) } else { Ok(()) }
    }

    fn flush(&self) -> Result<(), IndexError> {
        let _m = self.maintenance.lock();
        self.write_out(true)?;
        let live: u64 = self.orgs.read().values().map(|o| o.read().live() as u64).sum();
        let records = self.log_records.load(Ordering::Relaxed);
        if records >= COMPACT_MIN_RECORDS && records > 2 * live {
            self.compact()?;
        }
        self.snapshot_graphs();
        Ok(())
    }

    /// Rewrites the log with one record per live document. Searches go on;
    /// changes wait.
    fn compact(&self) -> Result<(), IndexError> {
        let started = std::time::Instant::now();
        let orgs = self.orgs.read();
        let guards: Vec<_> = orgs.values().map(|o| o.read()).collect();
        let mut file = self.file.lock();
        let mut pending = self.pending.lock();
        let header =
            LogHeader { dims: self.dims as u32, lineage: self.lineage, base_seq: self.seq.load(Ordering::Relaxed) };
        let mut rewrite = Rewrite::begin(&self.dir, &header)?;
        let mut buf = Vec::with_capacity(2 << 20);
        let mut records = 0u64;
        for idx in &guards {
            for (slot, s, vector) in idx.live_docs() {
                if let Some(d) = &s.doc {
                    codec::encode_upsert(&mut buf, s.seq, slot, &d.doc, vector);
                    records += 1;
                }
                if buf.len() >= 1 << 20 {
                    rewrite.write(&buf)?;
                    buf.clear();
                }
            }
        }
        rewrite.write(&buf)?;
        let before = file.len();
        file.replace(rewrite)?;
        // Everything buffered is in the new log (the state holds it).
        pending.clear();
        self.log_records.store(records, Ordering::Relaxed);
        tracing::info!(
            records,
            bytes_before = before,
            bytes_after = file.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "vector index log compacted"
        );
        Ok(())
    }

    /// Snapshots the graphs that changed enough since their last snapshot.
    /// Failures only cost open time later, so they are logged, not returned.
    fn snapshot_graphs(&self) {
        let orgs: Vec<(OrgId, SharedOrg)> = self.orgs.read().iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect();
        for (org, shared) in orgs {
            let captured = {
                let idx = shared.read();
                let Some(g) = idx.graph.as_ref().filter(|_| !idx.removed) else { continue };
                let dirty = g.dirty.load(Ordering::Relaxed);
                if dirty < SNAPSHOT_MIN_CHANGES.max(idx.live() / 16) {
                    continue;
                }
                g.dirty.fetch_sub(dirty, Ordering::Relaxed);
                snapshot::capture(&org, self.lineage, self.dims, &idx)
            };
            let res = match captured {
                Ok(Some(bytes)) => snapshot::write(&self.dir, &org, &bytes).map_err(|e| e.to_string()),
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = res {
                tracing::warn!(org = %org, error = %e, "vector index: graph snapshot failed");
                if let Some(g) = &shared.read().graph {
                    g.dirty.fetch_add(SNAPSHOT_MIN_CHANGES, Ordering::Relaxed);
                }
            }
        }
    }
}

impl Drop for Inner {
    /// Best effort: hands the buffered records to the OS (no fsync; only
    /// `flush` promises durability).
    fn drop(&mut self) {
        if !self.pending.get_mut().is_empty() {
            let _ = self.write_out(false);
        }
    }
}

#[async_trait]
impl VectorIndex for EmbeddedVectorIndex {
    fn engine(&self) -> &'static str {
        "embedded"
    }

    async fn upsert(&self, docs: &[(IndexDoc, Vec<f32>)]) -> Result<(), IndexError> {
        if docs.is_empty() {
            return Ok(());
        }
        let mut owned = Vec::with_capacity(docs.len());
        for (doc, vector) in docs {
            self.inner.check_vector(vector)?;
            let mut v = vector.clone();
            normalise(&mut v);
            owned.push((strip(doc), v));
        }
        self.blocking(move |inner| inner.upsert(owned)).await
    }

    async fn delete(&self, org: &OrgId, ids: &[MemoryId]) -> Result<(), IndexError> {
        if ids.is_empty() {
            return Ok(());
        }
        let (org, ids) = (org.clone(), ids.to_vec());
        self.blocking(move |inner| inner.delete(&org, &ids)).await
    }

    async fn search(&self, query: &[f32], filter: &SearchFilter, limit: usize) -> Result<Vec<Hit>, IndexError> {
        let query = self.inner.prepare_query(query)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let filter = filter.clone();
        self.blocking(move |inner| Ok(inner.search(&query, &filter, limit, false))).await
    }

    async fn embedding(&self, org: &OrgId, id: MemoryId) -> Result<Option<Vec<f32>>, IndexError> {
        Ok(self.inner.org(org).and_then(|o| o.read().embedding(id)))
    }

    async fn flush(&self) -> Result<(), IndexError> {
        self.blocking(|inner| inner.flush()).await
    }

    async fn expunge(&self) -> Result<(), IndexError> {
        self.blocking(|inner| {
            let _m = inner.maintenance.lock();
            inner.write_out(true)?;
            inner.compact()
        })
        .await
    }

    async fn clear(&self, org: Option<&OrgId>) -> Result<(), IndexError> {
        let org = org.cloned();
        self.blocking(move |inner| inner.clear(org.as_ref())).await
    }

    async fn count(&self, org: &OrgId) -> Result<u64, IndexError> {
        Ok(self.inner.org(org).map_or(0, |o| o.read().live() as u64))
    }
}
