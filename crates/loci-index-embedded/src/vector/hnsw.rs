//! A hierarchical navigable small-world graph (Malkov & Yashunin, 2016) over
//! the slots of one org, written for this index:
//!
//! - node `i` is slot `i`; vectors are not owned but passed in (the org's
//!   flat vector array), so nothing is stored twice;
//! - it grows without a fixed capacity;
//! - a freed slot is a tombstone (still used for routing, never returned);
//!   a changed or reused slot is re-linked in place;
//! - the search takes a filter that decides, inside the base-layer search,
//!   which nodes may be results (the hnswlib approach: every node is
//!   traversed, only admitted ones fill the result list), with a budget of
//!   visited nodes after which it gives up (the caller then scans exactly).
//!
//! Distances are `1 - dot` of L2-normalised vectors.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use super::codec::{self, Reader};

/// Highest level a node may get.
const MAX_LEVEL: usize = 15;

/// The dot product, in 8 independent lanes so the compiler vectorises it.
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// A distance and a node, ordered by distance (then node).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Near(f32, u32);

impl Eq for Near {}

impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Nodes seen by one search.
struct Visited {
    bits: Vec<u64>,
    count: usize,
}

impl Visited {
    fn new(n: usize) -> Self {
        Self { bits: vec![0; n.div_ceil(64)], count: 0 }
    }

    /// Marks `node`; `false` when it was already marked.
    fn insert(&mut self, node: u32) -> bool {
        let (w, b) = (node as usize / 64, node % 64);
        match self.bits.get_mut(w) {
            Some(word) if *word & (1 << b) == 0 => {
                *word |= 1 << b;
                self.count += 1;
                true
            }
            _ => false,
        }
    }
}

/// How the base-layer search treats nodes.
enum Admit<'a> {
    /// Construction: every node but `exclude` may be a neighbour (tombstones
    /// included: they keep the graph connected).
    AllBut(u32),
    /// Search: live nodes the filter admits.
    Filter(&'a dyn Fn(u32) -> bool),
}

/// The vectors of the nodes, `dims` floats each.
#[derive(Clone, Copy)]
pub(super) struct Vectors<'a> {
    pub data: &'a [f32],
    pub dims: usize,
}

impl<'a> Vectors<'a> {
    fn get(&self, node: u32) -> &'a [f32] {
        let start = node as usize * self.dims;
        self.data.get(start..start + self.dims).unwrap_or(&[])
    }

    fn dist(&self, q: &[f32], node: u32) -> f32 {
        1.0 - dot(q, self.get(node))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Hnsw {
    m: usize,
    ef_construction: usize,
    level_mult: f64,
    /// Per node: its top level.
    levels: Vec<u8>,
    /// Per node: a tombstone (freed slot).
    deleted: Vec<bool>,
    deleted_count: usize,
    /// Base layer: per node `[count, 2m links]`.
    links0: Vec<u32>,
    /// Per node, levels 1..=level: `[count, m links]` each.
    upper: Vec<Vec<u32>>,
    entry: Option<u32>,
    max_level: usize,
    rng: u64,
}

impl Hnsw {
    pub(super) fn new(m: usize, ef_construction: usize) -> Self {
        let m = m.max(2);
        Self {
            m,
            ef_construction: ef_construction.max(m),
            level_mult: 1.0 / (m as f64).ln(),
            levels: Vec::new(),
            deleted: Vec::new(),
            deleted_count: 0,
            links0: Vec::new(),
            upper: Vec::new(),
            entry: None,
            max_level: 0,
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.levels.len()
    }

    pub(super) fn is_deleted(&self, node: u32) -> bool {
        self.deleted.get(node as usize).copied().unwrap_or(true)
    }

    fn m0(&self) -> usize {
        2 * self.m
    }

    fn cap(&self, level: usize) -> usize {
        if level == 0 { self.m0() } else { self.m }
    }

    fn links(&self, node: u32, level: usize) -> &[u32] {
        let (list, base) = if level == 0 {
            (&self.links0[..], node as usize * (self.m0() + 1))
        } else {
            match self.upper.get(node as usize) {
                Some(l) => (&l[..], (level - 1) * (self.m + 1)),
                None => return &[],
            }
        };
        match list.get(base) {
            Some(&n) => list.get(base + 1..base + 1 + n as usize).unwrap_or(&[]),
            None => &[],
        }
    }

    fn set_links(&mut self, node: u32, level: usize, new: &[u32]) {
        let cap = self.cap(level);
        let new = &new[..new.len().min(cap)];
        let (list, base) = if level == 0 {
            let base = node as usize * (self.m0() + 1);
            (&mut self.links0, base)
        } else {
            let base = (level - 1) * (self.m + 1);
            match self.upper.get_mut(node as usize) {
                Some(l) => (l, base),
                None => return,
            }
        };
        if let Some(dst) = list.get_mut(base..base + 1 + cap) {
            dst[0] = new.len() as u32;
            dst[1..1 + new.len()].copy_from_slice(new);
            dst[1 + new.len()..].fill(0);
        }
    }

    fn random_level(&mut self) -> usize {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let u = ((z >> 11) as f64 + 1.0) / (1u64 << 53) as f64; // (0, 1]
        ((-u.ln() * self.level_mult) as usize).min(MAX_LEVEL)
    }

    /// Adds node `len()` (its vector must already be in `vectors`).
    pub(super) fn push(&mut self, vectors: Vectors<'_>, deleted: bool) {
        let node = self.len() as u32;
        let level = self.random_level();
        self.levels.push(level as u8);
        self.deleted.push(deleted);
        self.deleted_count += usize::from(deleted);
        self.links0.resize(self.links0.len() + self.m0() + 1, 0);
        self.upper.push(vec![0; level * (self.m + 1)]);
        self.connect(vectors, node);
    }

    /// Re-links `node` after its vector changed (or its freed slot was
    /// reused) and makes it live.
    pub(super) fn relink(&mut self, vectors: Vectors<'_>, node: u32) {
        self.set_deleted(node, false);
        self.connect(vectors, node);
    }

    pub(super) fn set_deleted(&mut self, node: u32, deleted: bool) {
        if let Some(d) = self.deleted.get_mut(node as usize)
            && *d != deleted
        {
            *d = deleted;
            if deleted {
                self.deleted_count += 1;
            } else {
                self.deleted_count -= 1;
            }
        }
    }

    /// Links `node` at each of its levels to its nearest nodes.
    fn connect(&mut self, vectors: Vectors<'_>, node: u32) {
        let level = self.levels[node as usize] as usize;
        let Some(entry) = self.entry else {
            self.entry = Some(node);
            self.max_level = level;
            return;
        };
        let q = vectors.get(node);
        let mut ep = Near(vectors.dist(q, entry), entry);
        for l in (level + 1..=self.max_level).rev() {
            ep = self.greedy(vectors, q, ep, l);
        }
        let mut eps = vec![ep];
        for l in (0..=level.min(self.max_level)).rev() {
            let found = self.search_layer(vectors, q, &eps, self.ef_construction, l, &Admit::AllBut(node), usize::MAX);
            let selected = self.select(vectors, &found, self.m);
            self.set_links(node, l, &selected);
            for &nb in &selected {
                self.add_link(vectors, nb, node, l);
            }
            if !found.is_empty() {
                eps = found;
            }
        }
        if level > self.max_level {
            self.max_level = level;
            self.entry = Some(node);
        }
    }

    /// Adds `new` to the links of `node` at `level`, pruning with the
    /// heuristic when full.
    fn add_link(&mut self, vectors: Vectors<'_>, node: u32, new: u32, level: usize) {
        if node == new || (self.levels[node as usize] as usize) < level {
            return;
        }
        let cur = self.links(node, level);
        if cur.contains(&new) {
            return;
        }
        if cur.len() < self.cap(level) {
            let mut next = cur.to_vec();
            next.push(new);
            self.set_links(node, level, &next);
            return;
        }
        let base = vectors.get(node);
        let mut cands: Vec<Near> =
            cur.iter().chain(std::iter::once(&new)).map(|&x| Near(vectors.dist(base, x), x)).collect();
        cands.sort_unstable();
        let selected = self.select(vectors, &cands, self.cap(level));
        self.set_links(node, level, &selected);
    }

    /// The neighbour-selection heuristic: walking the candidates nearest
    /// first, keep one only if it is nearer to the base than to every one
    /// kept so far (spreads the links in all directions).
    fn select(&self, vectors: Vectors<'_>, sorted: &[Near], m: usize) -> Vec<u32> {
        let mut kept: Vec<u32> = Vec::with_capacity(m);
        for &Near(d, c) in sorted {
            if kept.len() >= m {
                break;
            }
            let vc = vectors.get(c);
            if kept.iter().all(|&k| vectors.dist(vc, k) > d) {
                kept.push(c);
            }
        }
        kept
    }

    fn greedy(&self, vectors: Vectors<'_>, q: &[f32], mut ep: Near, level: usize) -> Near {
        loop {
            let mut changed = false;
            for &nb in self.links(ep.1, level) {
                let d = vectors.dist(q, nb);
                if d < ep.0 {
                    ep = Near(d, nb);
                    changed = true;
                }
            }
            if !changed {
                return ep;
            }
        }
    }

    /// The `ef` nearest admitted nodes reachable at `level` from `eps`,
    /// nearest first. Stops early after `max_visits` visited nodes.
    #[allow(clippy::too_many_arguments)]
    fn search_layer(
        &self,
        vectors: Vectors<'_>,
        q: &[f32],
        eps: &[Near],
        ef: usize,
        level: usize,
        admit: &Admit<'_>,
        max_visits: usize,
    ) -> Vec<Near> {
        let admitted = |n: u32| match admit {
            Admit::AllBut(x) => n != *x,
            Admit::Filter(f) => !self.is_deleted(n) && f(n),
        };
        let mut visited = Visited::new(self.len());
        let mut candidates: BinaryHeap<Reverse<Near>> = BinaryHeap::new();
        let mut results: BinaryHeap<Near> = BinaryHeap::new();
        for &ep in eps {
            if visited.insert(ep.1) {
                candidates.push(Reverse(ep));
                if admitted(ep.1) {
                    results.push(ep);
                    if results.len() > ef {
                        results.pop();
                    }
                }
            }
        }
        while let Some(Reverse(cur)) = candidates.pop() {
            let worst = results.peek().map_or(f32::INFINITY, |w| w.0);
            if results.len() >= ef && cur.0 > worst {
                break;
            }
            if visited.count > max_visits {
                break;
            }
            for &nb in self.links(cur.1, level) {
                if !visited.insert(nb) {
                    continue;
                }
                let d = vectors.dist(q, nb);
                let worst = results.peek().map_or(f32::INFINITY, |w| w.0);
                if results.len() < ef || d < worst {
                    candidates.push(Reverse(Near(d, nb)));
                    if admitted(nb) {
                        results.push(Near(d, nb));
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
        }
        results.into_sorted_vec()
    }

    /// The `k` nearest live nodes that `filter` admits, as (distance, node),
    /// nearest first. May return fewer when the filter is selective (after
    /// visiting `max_visits` nodes it gives up).
    pub(super) fn search(
        &self,
        vectors: Vectors<'_>,
        q: &[f32],
        k: usize,
        ef: usize,
        filter: &dyn Fn(u32) -> bool,
        max_visits: usize,
    ) -> Vec<(f32, u32)> {
        let Some(entry) = self.entry else { return Vec::new() };
        let mut ep = Near(vectors.dist(q, entry), entry);
        for l in (1..=self.max_level).rev() {
            ep = self.greedy(vectors, q, ep, l);
        }
        let found = self.search_layer(vectors, q, &[ep], ef.max(k), 0, &Admit::Filter(filter), max_visits);
        found.into_iter().take(k).map(|Near(d, n)| (d, n)).collect()
    }

    // ---- persistence ----------------------------------------------------

    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        codec::put_u32(out, self.m as u32);
        codec::put_u32(out, self.ef_construction as u32);
        codec::put_u32(out, self.max_level as u32);
        codec::put_u32(out, self.entry.unwrap_or(u32::MAX));
        codec::put_u64(out, self.rng);
        codec::put_u32(out, self.len() as u32);
        for node in 0..self.len() as u32 {
            let level = self.levels[node as usize];
            out.push(level);
            out.push(u8::from(self.deleted[node as usize]));
            for l in 0..=level as usize {
                let links = self.links(node, l);
                out.push(links.len() as u8);
                for &x in links {
                    codec::put_u32(out, x);
                }
            }
        }
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<Self, String> {
        let m = r.u32()? as usize;
        let ef_construction = r.u32()? as usize;
        if !(2..=64).contains(&m) {
            return Err(format!("invalid m {m}"));
        }
        let mut g = Self::new(m, ef_construction);
        let max_level = r.u32()? as usize;
        let entry = r.u32()?;
        g.rng = r.u64()?;
        let n = r.u32()? as usize;
        g.levels.reserve(n);
        g.deleted.reserve(n);
        g.links0.reserve(n * (g.m0() + 1));
        g.upper.reserve(n);
        let mut links = Vec::with_capacity(g.m0());
        for node in 0..n as u32 {
            let level = r.take(1)?[0] as usize;
            let deleted = r.take(1)?[0] != 0;
            if level > MAX_LEVEL {
                return Err("invalid node level".into());
            }
            g.levels.push(level as u8);
            g.deleted.push(deleted);
            g.deleted_count += usize::from(deleted);
            g.links0.resize(g.links0.len() + g.m0() + 1, 0);
            g.upper.push(vec![0; level * (m + 1)]);
            for l in 0..=level {
                let count = r.take(1)?[0] as usize;
                if count > g.cap(l) {
                    return Err("too many links".into());
                }
                links.clear();
                for _ in 0..count {
                    let x = r.u32()?;
                    if x as usize >= n {
                        return Err("link to an unknown node".into());
                    }
                    links.push(x);
                }
                g.set_links(node, l, &links);
            }
        }
        // Links must point to nodes present at their level.
        for node in 0..n as u32 {
            for l in 1..=g.levels[node as usize] as usize {
                if g.links(node, l).iter().any(|&x| (g.levels[x as usize] as usize) < l) {
                    return Err("link to a node below its level".into());
                }
            }
        }
        g.entry = match entry {
            u32::MAX if n == 0 => None,
            e if (e as usize) < n && g.levels[e as usize] as usize == max_level => Some(e),
            _ => return Err("invalid entry point".into()),
        };
        g.max_level = max_level;
        Ok(g)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn random_unit(n: usize, dims: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        let mut out = Vec::with_capacity(n * dims);
        for _ in 0..n {
            let v: Vec<f32> = (0..dims)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                })
                .collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            out.extend(v.iter().map(|x| x / norm));
        }
        out
    }

    #[test]
    fn dot_matches_naive() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.1).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.05).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }

    #[test]
    fn finds_exact_neighbours_and_survives_encoding() {
        let dims = 16;
        let n = 600;
        let data = random_unit(n, dims, 7);
        let vectors = Vectors { data: &data, dims };
        let mut g = Hnsw::new(8, 64);
        for i in 0..n {
            g.push(vectors, i % 10 == 9);
        }
        for i in (0..n as u32).filter(|i| i % 10 != 9).take(50) {
            let hits = g.search(vectors, vectors.get(i), 1, 32, &|_| true, usize::MAX);
            assert_eq!(hits[0].1, i);
        }
        // Tombstones are never returned; the filter applies.
        let hits = g.search(vectors, vectors.get(9), 5, 32, &|n| n % 2 == 0, usize::MAX);
        assert!(hits.iter().all(|&(_, n)| n % 10 != 9 && n % 2 == 0));
        let mut buf = Vec::new();
        g.encode(&mut buf);
        let back = Hnsw::decode(&mut Reader::new(&buf)).unwrap();
        assert_eq!(back, g);
        for cut in [0, 10, buf.len() / 2, buf.len() - 1] {
            assert!(Hnsw::decode(&mut Reader::new(&buf[..cut])).is_err());
        }
    }

    #[test]
    fn relinked_nodes_are_found_at_their_new_place() {
        let dims = 16;
        let n = 300;
        let mut data = random_unit(n, dims, 11);
        let mut g = Hnsw::new(8, 64);
        for _ in 0..n {
            g.push(Vectors { data: &data, dims }, false);
        }
        let fresh = random_unit(20, dims, 99);
        for (i, v) in fresh.chunks(dims).enumerate() {
            let node = (i * 7) as u32;
            data[node as usize * dims..(node as usize + 1) * dims].copy_from_slice(v);
            g.relink(Vectors { data: &data, dims }, node);
        }
        let vectors = Vectors { data: &data, dims };
        for (i, v) in fresh.chunks(dims).enumerate() {
            let hits = g.search(vectors, v, 1, 32, &|_| true, usize::MAX);
            assert_eq!(hits[0].1, (i * 7) as u32);
        }
    }
}
