//! The index of one org: documents and vectors in dense slots, and an HNSW
//! graph over the slots once the org is large enough.
//!
//! A document lives in a *slot*: its vector is `vectors[slot * dims..]`, its
//! payload `slots[slot]`. Freed slots are reused. Graph node `i` is slot `i`
//! (every slot is in the graph, freed ones as tombstones), so the graph reads
//! vectors straight from `vectors` and the search filter looks the payload up
//! by node.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};

use loci_core::{MemoryId, OrgId};

use super::VectorOptions;
use super::codec;
use super::hnsw::{self, Hnsw, Vectors};
use loci_index::{IndexDoc, SearchFilter};

/// A stored document with its visibility keys computed once.
#[derive(Debug)]
pub(super) struct StoredDoc {
    pub doc: IndexDoc,
    vis_keys: Box<[String]>,
}

impl StoredDoc {
    /// `doc` must already be stripped of content (see [`super::strip`]).
    pub(super) fn new(doc: IndexDoc) -> Self {
        let vis_keys = doc.visibility_keys().into_boxed_slice();
        Self { doc, vis_keys }
    }
}

#[derive(Debug, Default)]
pub(super) struct Slot {
    pub doc: Option<Box<StoredDoc>>,
    /// Sequence number of the last record that changed the slot.
    pub seq: u64,
}

pub(super) struct GraphState {
    pub hnsw: Hnsw,
    /// Changes since the last snapshot of the graph was written.
    pub dirty: AtomicUsize,
}

/// A [`SearchFilter`] prepared for many documents: the caller's visibility
/// keys are computed once, and each document's at upsert. `admits` is
/// exactly `filter.admits(doc)`: the filter without visibility, then the same
/// any-key-in-common test `SearchFilter::admits` does.
#[derive(Debug)]
pub(super) struct PreparedFilter {
    without_visibility: SearchFilter,
    keys: Option<HashSet<String>>,
}

impl PreparedFilter {
    pub(super) fn new(filter: &SearchFilter) -> Self {
        let keys = filter.visibility_keys().map(|k| k.into_iter().collect());
        let mut without_visibility = filter.clone();
        without_visibility.visible_to = None;
        Self { without_visibility, keys }
    }

    pub(super) fn admits(&self, d: &StoredDoc) -> bool {
        self.without_visibility.admits(&d.doc)
            && self.keys.as_ref().is_none_or(|keys| d.vis_keys.iter().any(|k| keys.contains(k)))
    }
}

/// Cosine similarity of L2-normalised vectors.
pub(super) fn similarity(a: &[f32], b: &[f32]) -> f32 {
    hnsw::dot(a, b)
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Scored {
    score: f32,
    slot: u32,
}

impl Eq for Scored {}

impl Ord for Scored {
    /// Higher score first; on a tie the lower slot.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score.total_cmp(&other.score).then_with(|| other.slot.cmp(&self.slot))
    }
}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

pub(super) struct OrgIndex {
    dims: usize,
    /// Set (under the write lock) when the org was cleared while a writer
    /// waited for it: the writer must look the org up again.
    pub removed: bool,
    ids: HashMap<MemoryId, u32>,
    pub slots: Vec<Slot>,
    vectors: Vec<f32>,
    free: Vec<u32>,
    live: usize,
    pub graph: Option<GraphState>,
}

impl std::fmt::Debug for OrgIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrgIndex")
            .field("live", &self.live)
            .field("slots", &self.slots.len())
            .field("graph", &self.graph.as_ref().map(|g| g.hnsw.len()))
            .finish_non_exhaustive()
    }
}

impl OrgIndex {
    pub(super) fn new(dims: usize) -> Self {
        Self {
            dims,
            removed: false,
            ids: HashMap::new(),
            slots: Vec::new(),
            vectors: Vec::new(),
            free: Vec::new(),
            live: 0,
            graph: None,
        }
    }

    /// Empties the index and marks it cleared (see `removed`).
    pub(super) fn mark_removed(&mut self) {
        *self = Self::new(self.dims);
        self.removed = true;
    }

    pub(super) fn live(&self) -> usize {
        self.live
    }

    fn vector(&self, slot: u32) -> &[f32] {
        let start = slot as usize * self.dims;
        self.vectors.get(start..start + self.dims).unwrap_or(&[])
    }

    pub(super) fn embedding(&self, id: MemoryId) -> Option<Vec<f32>> {
        self.ids.get(&id).map(|&s| self.vector(s).to_vec())
    }

    pub(super) fn id_at(&self, slot: u32) -> Option<MemoryId> {
        self.slots.get(slot as usize)?.doc.as_ref().map(|d| d.doc.id)
    }

    /// Live documents with their slots and vectors (compaction).
    pub(super) fn live_docs(&self) -> impl Iterator<Item = (u32, &Slot, &[f32])> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.doc.is_some())
            .map(|(i, s)| (i as u32, s, self.vector(i as u32)))
    }

    /// Puts `doc` into `slot`, evicting whatever was there and wherever the
    /// document was before (only an inconsistent log can ask for either).
    fn place(&mut self, slot: u32, doc: IndexDoc, vector: &[f32], seq: u64) {
        let s = slot as usize;
        if s >= self.slots.len() {
            self.slots.resize_with(s + 1, Slot::default);
            self.vectors.resize((s + 1) * self.dims, 0.0);
        }
        if let Some(old) = self.slots[s].doc.take() {
            self.ids.remove(&old.doc.id);
            self.live -= 1;
        }
        if let Some(prev) = self.ids.remove(&doc.id)
            && let Some(p) = self.slots.get_mut(prev as usize)
            && p.doc.take().is_some()
        {
            p.seq = seq;
            self.live -= 1;
        }
        let start = s * self.dims;
        self.vectors[start..start + self.dims].copy_from_slice(vector);
        self.ids.insert(doc.id, slot);
        self.slots[s] = Slot { doc: Some(Box::new(StoredDoc::new(doc))), seq };
        self.live += 1;
    }

    // ---- replay ---------------------------------------------------------

    pub(super) fn replay_upsert(&mut self, slot: u32, doc: IndexDoc, vector: &[f32], seq: u64) {
        self.place(slot, doc, vector, seq);
    }

    pub(super) fn replay_delete(&mut self, id: MemoryId, seq: u64) {
        if let Some(slot) = self.ids.remove(&id)
            && let Some(s) = self.slots.get_mut(slot as usize)
        {
            s.doc = None;
            s.seq = seq;
            self.live -= 1;
        }
    }

    /// Recomputes the free slots (after replay or after adopting a snapshot
    /// that knew more slots); the lowest is reused first.
    pub(super) fn rebuild_free_list(&mut self) {
        self.free = (0..self.slots.len() as u32).rev().filter(|&s| self.slots[s as usize].doc.is_none()).collect();
    }

    // ---- live changes -------------------------------------------------

    /// Inserts or replaces a document (`doc` stripped, `vector` normalised and
    /// of the right length) and appends its record to `out`. Re-delivering an
    /// identical document changes nothing and writes nothing.
    pub(super) fn upsert(
        &mut self,
        doc: IndexDoc,
        vector: &[f32],
        seq: &AtomicU64,
        opts: &VectorOptions,
        out: &mut Vec<u8>,
    ) -> bool {
        let slot = match self.ids.get(&doc.id) {
            Some(&s) => {
                let unchanged = self.slots[s as usize].doc.as_ref().is_some_and(|d| d.doc == doc)
                    && self.vector(s).iter().zip(vector).all(|(a, b)| a.to_bits() == b.to_bits());
                if unchanged {
                    return false;
                }
                s
            }
            None => match self.free.pop() {
                Some(s) => s,
                None => self.slots.len() as u32,
            },
        };
        let seq = seq.fetch_add(1, AtomicOrdering::Relaxed);
        codec::encode_upsert(out, seq, slot, &doc, vector);
        self.place(slot, doc, vector, seq);
        self.graph_put(slot, opts);
        true
    }

    /// Removes a document of `org` (this index's org); unknown ids are ignored.
    pub(super) fn delete(
        &mut self,
        org: &OrgId,
        id: MemoryId,
        seq: &AtomicU64,
        opts: &VectorOptions,
        out: &mut Vec<u8>,
    ) -> bool {
        let Some(&slot) = self.ids.get(&id) else { return false };
        let seq = seq.fetch_add(1, AtomicOrdering::Relaxed);
        codec::encode_delete(out, seq, org, id);
        self.replay_delete(id, seq);
        self.free.push(slot);
        if self.live < opts.exact_below / 2 {
            self.graph = None;
        } else if let Some(g) = &mut self.graph {
            g.hnsw.set_deleted(slot, true);
            *g.dirty.get_mut() += 1;
        }
        true
    }

    fn vectors(&self) -> Vectors<'_> {
        Vectors { data: &self.vectors, dims: self.dims }
    }

    /// Tells the graph about a changed slot, building it when the org has
    /// become large enough.
    fn graph_put(&mut self, slot: u32, opts: &VectorOptions) {
        let vectors = Vectors { data: &self.vectors, dims: self.dims };
        let Some(g) = &mut self.graph else {
            self.ensure_graph(opts);
            return;
        };
        let s = slot as usize;
        if s < g.hnsw.len() {
            g.hnsw.relink(vectors, slot);
        } else {
            // New slots are pushed one at a time, so `s == len()`; catch up
            // anyway should they ever not be.
            for n in g.hnsw.len()..=s {
                let free = self.slots.get(n).is_none_or(|x| x.doc.is_none());
                g.hnsw.push(vectors, free);
            }
        }
        *g.dirty.get_mut() += 1;
    }

    /// Builds the graph when the org has reached `exact_below` documents.
    pub(super) fn ensure_graph(&mut self, opts: &VectorOptions) {
        if self.graph.is_some() || self.live < opts.exact_below.max(1) {
            return;
        }
        let started = std::time::Instant::now();
        let mut g = Hnsw::new(opts.m, opts.ef_construction);
        let vectors = self.vectors();
        for slot in &self.slots {
            g.push(vectors, slot.doc.is_none());
        }
        tracing::debug!(
            nodes = g.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "vector index: built an HNSW graph"
        );
        // A fresh graph is worth a snapshot at the next flush.
        let dirty = AtomicUsize::new(g.len().max(1));
        self.graph = Some(GraphState { hnsw: g, dirty });
    }

    /// Takes a graph loaded from a snapshot, bringing it up to date with the
    /// replayed slots: every slot whose sequence number or liveness differs
    /// from the snapshot's is re-linked or made a tombstone, newer slots are
    /// added. Returns the number of slots fixed.
    pub(super) fn adopt_graph(&mut self, mut g: Hnsw, seqs: &[u64]) -> Result<usize, String> {
        let n = g.len();
        if seqs.len() != n {
            return Err("snapshot does not match its graph".into());
        }
        if n > self.slots.len() {
            // Slots the log does not have (written after its last flush).
            self.slots.resize_with(n, Slot::default);
            self.vectors.resize(n * self.dims, 0.0);
            self.rebuild_free_list();
        }
        let vectors = Vectors { data: &self.vectors, dims: self.dims };
        let mut fixes = 0usize;
        for (s, slot) in self.slots.iter().enumerate() {
            let live = slot.doc.is_some();
            let node = s as u32;
            if s < n {
                if seqs[s] == slot.seq && live != g.is_deleted(node) {
                    continue;
                }
                if live {
                    g.relink(vectors, node);
                } else {
                    g.set_deleted(node, true);
                }
            } else {
                g.push(vectors, !live);
            }
            fixes += 1;
        }
        self.graph = Some(GraphState { hnsw: g, dirty: AtomicUsize::new(fixes) });
        Ok(fixes)
    }

    // ---- search ---------------------------------------------------------

    /// The `limit` best admitted documents as (similarity, slot), best first.
    /// Uses the graph when there is one and the org has at least
    /// `exact_below` documents, and falls back to the exact scan when the
    /// graph found fewer than `limit` while there may be more.
    pub(super) fn search(
        &self,
        query: &[f32],
        filter: &PreparedFilter,
        limit: usize,
        opts: &VectorOptions,
        exact_only: bool,
    ) -> Vec<(f32, u32)> {
        if limit == 0 || self.live == 0 {
            return Vec::new();
        }
        let ef = opts.ef_search.max(limit);
        if let Some(g) = &self.graph
            && !exact_only
            && self.live >= opts.exact_below
            // A graph walk visits about 20 ef nodes to collect ef admitted
            // ones when the filter admits most of the org, and that many
            // divided by the admitted share otherwise: with fewer than 20 ef
            // admitted documents it would walk the whole org, and the exact
            // scan is cheaper (unless the filter admits half of the org).
            && self.estimated_admitted(filter).is_some_and(|n| n >= (20 * ef).min(self.live / 2))
        {
            let admit = |s: u32| -> bool {
                self.slots.get(s as usize).and_then(|slot| slot.doc.as_deref()).is_some_and(|d| filter.admits(d))
            };
            // Should the estimate be wrong, give up past this many nodes.
            let budget = (self.slots.len() / 8).max(50 * ef);
            let hits = g.hnsw.search(self.vectors(), query, limit, ef, &admit, budget);
            if hits.len() >= limit || hits.len() >= self.live {
                return hits.into_iter().map(|(_, s)| (similarity(query, self.vector(s)), s)).collect();
            }
        }
        self.exact(query, filter, limit)
    }

    /// How many documents `filter` admits, estimated from evenly spread
    /// slots (`None` when the sample holds no live document).
    fn estimated_admitted(&self, filter: &PreparedFilter) -> Option<usize> {
        const SAMPLE: usize = 512;
        let step = (self.slots.len() / SAMPLE).max(1);
        let (mut live, mut admitted) = (0usize, 0usize);
        for slot in self.slots.iter().step_by(step).take(SAMPLE) {
            if let Some(d) = slot.doc.as_deref() {
                live += 1;
                admitted += usize::from(filter.admits(d));
            }
        }
        (live > 0).then(|| admitted * self.live / live)
    }

    fn exact(&self, query: &[f32], filter: &PreparedFilter, limit: usize) -> Vec<(f32, u32)> {
        let mut heap: BinaryHeap<Reverse<Scored>> = BinaryHeap::with_capacity(limit + 1);
        for (i, slot) in self.slots.iter().enumerate() {
            let Some(doc) = slot.doc.as_deref() else { continue };
            let item = Scored { score: similarity(query, self.vector(i as u32)), slot: i as u32 };
            let better = heap.len() < limit || heap.peek().is_some_and(|Reverse(worst)| item > *worst);
            // The similarity is cheap; the filter runs only on candidates.
            if better && filter.admits(doc) {
                heap.push(Reverse(item));
                if heap.len() > limit {
                    heap.pop();
                }
            }
        }
        let mut out: Vec<Scored> = heap.into_iter().map(|Reverse(s)| s).collect();
        out.sort_by(|a, b| b.cmp(a));
        out.into_iter().map(|s| (s.score, s.slot)).collect()
    }
}
