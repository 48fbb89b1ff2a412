//! Graph algorithms over a [`MentionGraph`] and tag sets, shared by every
//! engine so that the same visible data gives the same answer everywhere:
//! connectivity, communities (seeded label propagation), centrality (degree
//! and PageRank), tag co-occurrence, duplicate entity names and the dates
//! written in a text. All deterministic: ties break on names.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::LazyLock;

use chrono::NaiveDate;
use loci_core::MemoryId;
use regex::Regex;

use crate::EntitySummary;
use crate::analytics::{MentionGraph, TagSet};
use crate::extract::MONTH_NAMES;

/// Rounds of label propagation at most (it usually settles in a few).
pub const LABEL_ROUNDS: usize = 30;
/// PageRank damping factor.
pub const DAMPING: f64 = 0.85;
/// PageRank iterations at most; it stops earlier once it moves less than
/// [`PAGERANK_TOLERANCE`] (L1) in one iteration.
pub const PAGERANK_ROUNDS: usize = 100;
pub const PAGERANK_TOLERANCE: f64 = 1e-10;

/// Weighted co-mention edges `(a, b) -> memories mentioning both`, `a < b`.
pub fn co_mention_edges(graph: &MentionGraph) -> BTreeMap<(u32, u32), u64> {
    let mut edges = BTreeMap::new();
    for (_, entities) in &graph.memories {
        for (i, a) in entities.iter().enumerate() {
            for b in &entities[i + 1..] {
                let key = if a < b { (*a, *b) } else { (*b, *a) };
                *edges.entry(key).or_insert(0) += 1;
            }
        }
    }
    edges
}

/// Weighted adjacency lists, neighbours ascending.
fn adjacency(n: usize, edges: &BTreeMap<(u32, u32), u64>) -> Vec<Vec<(usize, u64)>> {
    let mut adj = vec![Vec::new(); n];
    for (&(a, b), &w) in edges {
        let (a, b) = (a as usize, b as usize);
        if a < n && b < n {
            adj[a].push((b, w));
            adj[b].push((a, w));
        }
    }
    for list in &mut adj {
        list.sort_unstable();
    }
    adj
}

/// How the visible graph hangs together.
#[derive(Debug, Clone, PartialEq)]
pub struct Connectivity {
    pub entities: u64,
    pub edges: u64,
    /// Connected components, isolated entities included.
    pub components: u64,
    pub largest_component: u64,
    /// Entities never mentioned together with another.
    pub isolated_entities: u64,
    /// Edges over possible edges.
    pub density: f64,
    pub average_degree: f64,
    /// Sizes of the largest components, largest first (at most 10).
    pub component_sizes: Vec<u64>,
}

/// Component of each node (the smallest node index in it).
fn components(adj: &[Vec<(usize, u64)>]) -> Vec<usize> {
    let mut component = vec![usize::MAX; adj.len()];
    for start in 0..adj.len() {
        if component[start] != usize::MAX {
            continue;
        }
        component[start] = start;
        let mut stack = vec![start];
        while let Some(node) = stack.pop() {
            for &(next, _) in &adj[node] {
                if component[next] == usize::MAX {
                    component[next] = start;
                    stack.push(next);
                }
            }
        }
    }
    component
}

pub fn connectivity(graph: &MentionGraph) -> Connectivity {
    let n = graph.entities.len();
    let edges = co_mention_edges(graph);
    let adj = adjacency(n, &edges);
    let mut sizes: HashMap<usize, u64> = HashMap::new();
    for c in components(&adj) {
        *sizes.entry(c).or_default() += 1;
    }
    let mut sizes: Vec<u64> = sizes.into_values().collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    let possible = (n as f64) * (n as f64 - 1.0) / 2.0;
    Connectivity {
        entities: n as u64,
        edges: edges.len() as u64,
        components: sizes.len() as u64,
        largest_component: sizes.first().copied().unwrap_or(0),
        isolated_entities: adj.iter().filter(|a| a.is_empty()).count() as u64,
        density: if possible > 0.0 { edges.len() as f64 / possible } else { 0.0 },
        average_degree: if n > 0 { 2.0 * edges.len() as f64 / n as f64 } else { 0.0 },
        component_sizes: sizes.into_iter().take(10).collect(),
    }
}

/// A 64-bit mix (splitmix64), for seeded orders that do not depend on a
/// random source.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// FNV-1a of a name: stable across runs and platforms (unlike `Hash`).
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// A community label of each entity by seeded label propagation: entities
/// are visited in an order the seed fixes; each takes the label of the most
/// weight among its neighbours, keeping its own on a tie with it and
/// otherwise taking the label of the smallest name. Deterministic for one
/// seed and one graph.
pub fn label_propagation(graph: &MentionGraph, seed: u64) -> Vec<usize> {
    let n = graph.entities.len();
    let adj = adjacency(n, &co_mention_edges(graph));
    // Labels are node indexes; the graph's entities are by name, so the
    // smallest label is the smallest name.
    let mut label: Vec<usize> = (0..n).collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (mix(seed ^ name_hash(&graph.entities[i].name)), i));
    for _ in 0..LABEL_ROUNDS {
        let mut changed = false;
        for &node in &order {
            if adj[node].is_empty() {
                continue;
            }
            let mut weight: BTreeMap<usize, u64> = BTreeMap::new();
            for &(next, w) in &adj[node] {
                *weight.entry(label[next]).or_default() += w;
            }
            let best = weight.values().copied().max().unwrap_or(0);
            let current = weight.get(&label[node]).copied().unwrap_or(0);
            if current == best {
                continue;
            }
            // BTreeMap order: the first label with the best weight is the smallest.
            if let Some((&l, _)) = weight.iter().find(|(_, w)| **w == best) {
                label[node] = l;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    label
}

/// A community of entities.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityCommunity {
    /// Rank: 0 is the largest (ties: the smallest member name).
    pub id: usize,
    pub size: usize,
    /// The most mentioned members first, at most the asked number.
    pub members: Vec<EntitySummary>,
    /// Visible memories mentioning a member.
    pub memories: u64,
    /// Sum of the co-mention weights inside the community.
    pub internal_weight: u64,
}

/// Groups of entity indexes by label, ranked (largest first, then by the
/// smallest member, which is the group's first index).
fn ranked_groups(label: &[usize]) -> Vec<Vec<usize>> {
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (node, l) in label.iter().enumerate() {
        groups.entry(*l).or_default().push(node);
    }
    let mut groups: Vec<Vec<usize>> = groups.into_values().collect();
    groups.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    groups
}

/// Entity communities of at least `min_size` members, largest first.
pub fn entity_communities(graph: &MentionGraph, seed: u64, min_size: usize, members: usize) -> Vec<EntityCommunity> {
    let label = label_propagation(graph, seed);
    let edges = co_mention_edges(graph);
    let groups = ranked_groups(&label);
    let mut rank_of = vec![0usize; label.len()];
    for (rank, group) in groups.iter().enumerate() {
        for &node in group {
            rank_of[node] = rank;
        }
    }
    let mut memories = vec![0u64; groups.len()];
    for (_, entities) in &graph.memories {
        let ranks: BTreeSet<usize> = entities.iter().map(|&e| rank_of[e as usize]).collect();
        for r in ranks {
            memories[r] += 1;
        }
    }
    let mut internal = vec![0u64; groups.len()];
    for (&(a, b), &w) in &edges {
        if rank_of[a as usize] == rank_of[b as usize] {
            internal[rank_of[a as usize]] += w;
        }
    }
    groups
        .into_iter()
        .enumerate()
        .filter(|(_, g)| g.len() >= min_size.max(1))
        .map(|(rank, group)| {
            let mut top: Vec<&EntitySummary> = group.iter().map(|&i| &graph.entities[i]).collect();
            top.sort_by(|a, b| b.memories.cmp(&a.memories).then_with(|| a.name.cmp(&b.name)));
            EntityCommunity {
                id: rank,
                size: group.len(),
                members: top.into_iter().take(members).cloned().collect(),
                memories: memories[rank],
                internal_weight: internal[rank],
            }
        })
        .collect()
}

/// A community of memories: those whose entities fall mostly in one entity
/// community.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryCommunity {
    /// The entity community's rank.
    pub id: usize,
    pub size: usize,
    /// The newest members (by id, which orders by creation) first.
    pub memory_ids: Vec<MemoryId>,
    /// The entity community's most mentioned members.
    pub entities: Vec<EntitySummary>,
}

/// Each visible memory joins the entity community holding most of its
/// entities (ties: the higher-ranked community); communities of at least
/// `min_size` memories, largest first.
pub fn memory_communities(graph: &MentionGraph, seed: u64, min_size: usize, members: usize) -> Vec<MemoryCommunity> {
    let label = label_propagation(graph, seed);
    let groups = ranked_groups(&label);
    let mut rank_of = vec![0usize; label.len()];
    for (rank, group) in groups.iter().enumerate() {
        for &node in group {
            rank_of[node] = rank;
        }
    }
    let mut by_rank: BTreeMap<usize, Vec<MemoryId>> = BTreeMap::new();
    for (id, entities) in &graph.memories {
        let mut votes: BTreeMap<usize, usize> = BTreeMap::new();
        for &e in entities {
            *votes.entry(rank_of[e as usize]).or_default() += 1;
        }
        let best = votes.values().copied().max().unwrap_or(0);
        if let Some((&rank, _)) = votes.iter().find(|(_, v)| **v == best) {
            by_rank.entry(rank).or_default().push(*id);
        }
    }
    let mut out: Vec<MemoryCommunity> = by_rank
        .into_iter()
        .filter(|(_, ids)| ids.len() >= min_size.max(1))
        .map(|(rank, mut ids)| {
            ids.sort_unstable_by(|a, b| b.cmp(a));
            let mut top: Vec<&EntitySummary> = groups[rank].iter().map(|&i| &graph.entities[i]).collect();
            top.sort_by(|a, b| b.memories.cmp(&a.memories).then_with(|| a.name.cmp(&b.name)));
            MemoryCommunity {
                id: rank,
                size: ids.len(),
                memory_ids: ids.into_iter().take(members).collect(),
                entities: top.into_iter().take(10).cloned().collect(),
            }
        })
        .collect();
    out.sort_by(|a, b| b.size.cmp(&a.size).then(a.id.cmp(&b.id)));
    out
}

/// An entity's place in the visible graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Centrality {
    pub entity: EntitySummary,
    /// Distinct entities co-mentioned with it.
    pub degree: u64,
    /// Sum of its co-mention weights.
    pub weighted_degree: u64,
    /// Weighted PageRank; the scores of all entities sum to 1.
    pub pagerank: f64,
}

/// Weighted PageRank: a walker follows co-mentions in proportion to their
/// weight and jumps anywhere with probability `1 - DAMPING` (or always,
/// from an isolated entity).
pub fn pagerank(n: usize, adj: &[Vec<(usize, u64)>]) -> Vec<f64> {
    if n == 0 {
        return Vec::new();
    }
    let total: Vec<f64> = adj.iter().map(|a| a.iter().map(|(_, w)| *w as f64).sum()).collect();
    let mut rank = vec![1.0 / n as f64; n];
    for _ in 0..PAGERANK_ROUNDS {
        let dangling: f64 = (0..n).filter(|&i| total[i] == 0.0).map(|i| rank[i]).sum();
        let base = (1.0 - DAMPING) / n as f64 + DAMPING * dangling / n as f64;
        let mut next = vec![base; n];
        for (i, list) in adj.iter().enumerate() {
            if total[i] == 0.0 {
                continue;
            }
            let share = DAMPING * rank[i] / total[i];
            for &(j, w) in list {
                next[j] += share * w as f64;
            }
        }
        let moved: f64 = rank.iter().zip(&next).map(|(a, b)| (a - b).abs()).sum();
        rank = next;
        if moved < PAGERANK_TOLERANCE {
            break;
        }
    }
    rank
}

/// The `limit` most central entities: by PageRank, then degree, then name.
pub fn centrality(graph: &MentionGraph, limit: usize) -> Vec<Centrality> {
    let n = graph.entities.len();
    let adj = adjacency(n, &co_mention_edges(graph));
    let rank = pagerank(n, &adj);
    let mut out: Vec<Centrality> = (0..n)
        .map(|i| Centrality {
            entity: graph.entities[i].clone(),
            degree: adj[i].len() as u64,
            weighted_degree: adj[i].iter().map(|(_, w)| *w).sum(),
            pagerank: rank[i],
        })
        .collect();
    out.sort_by(|a, b| {
        b.pagerank.total_cmp(&a.pagerank).then(b.degree.cmp(&a.degree)).then_with(|| a.entity.name.cmp(&b.entity.name))
    });
    out.truncate(limit);
    out
}

/// A tag as `key=value`.
pub fn tag_label(key: &str, value: &str) -> String {
    format!("{key}={value}")
}

/// Memories per tag `key=value`, most first (then by tag).
pub fn tag_counts(sets: &[TagSet]) -> Vec<(String, u64)> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for set in sets {
        for (k, v) in set {
            *counts.entry(tag_label(k, v)).or_default() += 1;
        }
    }
    let mut out: Vec<(String, u64)> = counts.into_iter().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

/// Two tags set on the same memories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPair {
    pub a: String,
    pub b: String,
    /// Memories with both.
    pub memories: u64,
}

/// Pairs of tags (`key=value`, `a < b`) set together on at least
/// `min_memories` memories, most first, at most `limit`.
pub fn tag_cooccurrence(sets: &[TagSet], min_memories: u64, limit: usize) -> Vec<TagPair> {
    let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
    for set in sets {
        let labels: Vec<String> = set.iter().map(|(k, v)| tag_label(k, v)).collect();
        for (i, a) in labels.iter().enumerate() {
            for b in &labels[i + 1..] {
                *counts.entry((a.clone(), b.clone())).or_default() += 1;
            }
        }
    }
    let mut out: Vec<TagPair> = counts
        .into_iter()
        .filter(|(_, n)| *n >= min_memories.max(1))
        .map(|((a, b), memories)| TagPair { a, b, memories })
        .collect();
    out.sort_by(|x, y| y.memories.cmp(&x.memories).then_with(|| (&x.a, &x.b).cmp(&(&y.a, &y.b))));
    out.truncate(limit);
    out
}

/// Tags set together with key `key` (any value), with how many of the
/// memories having `key` also have them, most first; plus that number of
/// memories. Other values of `key` itself are not listed.
pub fn related_tags(sets: &[TagSet], key: &str, limit: usize) -> (u64, Vec<(String, u64)>) {
    let with_key: Vec<TagSet> = sets
        .iter()
        .filter(|s| s.contains_key(key))
        .map(|s| s.iter().filter(|(k, _)| k.as_str() != key).map(|(k, v)| (k.clone(), v.clone())).collect())
        .collect();
    let mut counts = tag_counts(&with_key);
    counts.truncate(limit);
    (with_key.len() as u64, counts)
}

/// Why two names look like one entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DuplicateReason {
    /// Equal once spaces, dots, dashes and the like are dropped
    /// (`open ai` / `openai`, `j.r. smith` / `jr smith`).
    SameLetters,
    /// A small edit apart (`kubernetes` / `kubernets`).
    Spelling,
    /// A person's first name and that person's full name, when the full
    /// name is the only one starting with it (`caroline` / `caroline smith`).
    ShortForm,
}

impl DuplicateReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SameLetters => "same_letters",
            Self::Spelling => "spelling",
            Self::ShortForm => "short_form",
        }
    }
}

/// Two entity names that likely name one thing.
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicatePair {
    /// The suggested survivor: the full name of a short form; otherwise more
    /// mentions, then the longer name.
    pub keep: EntitySummary,
    pub merge: EntitySummary,
    pub reason: DuplicateReason,
    /// 0..1, higher is surer.
    pub similarity: f64,
}

/// Letters and digits only.
fn letters(name: &str) -> String {
    name.chars().filter(|c| c.is_alphanumeric()).collect()
}

/// Least similarity of a [`DuplicateReason::Spelling`] pair.
pub const SPELLING_SIMILARITY: f64 = 0.88;
/// Shortest names compared by spelling: short names differ by one letter
/// too often (`bob` / `rob`).
pub const SPELLING_MIN_CHARS: usize = 6;
/// Names compared with each of their neighbours in sorted order.
const WINDOW: usize = 8;

fn pair(a: &EntitySummary, b: &EntitySummary, reason: DuplicateReason, similarity: f64) -> DuplicatePair {
    // A short form gives way to the full name whatever the counts.
    let a_first = if reason == DuplicateReason::ShortForm {
        a.name.contains(' ')
    } else {
        (a.memories, a.name.chars().count(), std::cmp::Reverse(&a.name))
            >= (b.memories, b.name.chars().count(), std::cmp::Reverse(&b.name))
    };
    let (keep, merge) = if a_first { (a, b) } else { (b, a) };
    DuplicatePair { keep: keep.clone(), merge: merge.clone(), reason, similarity }
}

/// Candidate duplicates among `entities`, surest first, at most `limit`.
/// Spelling is compared within a window of neighbours in sorted order of the
/// letters, forwards and reversed (sorted neighbourhood), so the work grows
/// as n log n, not n².
pub fn duplicates(entities: &[EntitySummary], limit: usize) -> Vec<DuplicatePair> {
    let keys: Vec<String> = entities.iter().map(|e| letters(&e.name)).collect();
    let mut found: BTreeMap<(usize, usize), (DuplicateReason, f64)> = BTreeMap::new();
    let mut note = |i: usize, j: usize, reason: DuplicateReason, sim: f64| {
        let key = (i.min(j), i.max(j));
        let slot = found.entry(key).or_insert((reason, sim));
        if (reason, -sim) < (slot.0, -slot.1) {
            *slot = (reason, sim);
        }
    };

    let mut by_key: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, k) in keys.iter().enumerate() {
        if !k.is_empty() {
            by_key.entry(k.as_str()).or_default().push(i);
        }
    }
    for group in by_key.values() {
        for (x, &i) in group.iter().enumerate() {
            for &j in &group[x + 1..] {
                note(i, j, DuplicateReason::SameLetters, 1.0);
            }
        }
    }

    let reversed: Vec<String> = keys.iter().map(|k| k.chars().rev().collect()).collect();
    for sort_keys in [&keys, &reversed] {
        let mut order: Vec<usize> = (0..entities.len()).filter(|&i| !keys[i].is_empty()).collect();
        order.sort_by(|&a, &b| sort_keys[a].cmp(&sort_keys[b]));
        for (x, &i) in order.iter().enumerate() {
            for &j in order.iter().skip(x + 1).take(WINDOW) {
                let (a, b) = (&keys[i], &keys[j]);
                if a == b || a.chars().count().min(b.chars().count()) < SPELLING_MIN_CHARS {
                    continue;
                }
                // Different digits are different things (`python 2` / `python 3`).
                let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
                if digits(a) != digits(b) {
                    continue;
                }
                let sim = strsim::normalized_damerau_levenshtein(a, b);
                if sim >= SPELLING_SIMILARITY {
                    note(i, j, DuplicateReason::Spelling, sim);
                }
            }
        }
    }

    // Short forms: a one-word person name and the only multi-word person
    // name it starts.
    let mut expansions: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, e) in entities.iter().enumerate() {
        if e.kind == "person"
            && let Some((first, _)) = e.name.split_once(' ')
        {
            expansions.entry(first).or_default().push(i);
        }
    }
    for (i, e) in entities.iter().enumerate() {
        if e.kind == "person"
            && !e.name.contains(' ')
            && let Some([j]) = expansions.get(e.name.as_str()).map(Vec::as_slice)
        {
            note(i, *j, DuplicateReason::ShortForm, 0.7);
        }
    }

    let mut out: Vec<DuplicatePair> =
        found.into_iter().map(|((i, j), (reason, sim))| pair(&entities[i], &entities[j], reason, sim)).collect();
    out.sort_by(|a, b| {
        b.similarity
            .total_cmp(&a.similarity)
            .then(a.reason.cmp(&b.reason))
            .then_with(|| (&a.keep.name, &a.merge.name).cmp(&(&b.keep.name, &b.merge.name)))
    });
    out.truncate(limit);
    out
}

/// How exactly a date in a text is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DatePrecision {
    Day,
    Month,
}

fn month_number(word: &str) -> Option<u32> {
    let word = word.to_lowercase();
    let word = word.trim_end_matches('.');
    if word.len() < 3 {
        return None;
    }
    MONTH_NAMES.iter().position(|m| m.starts_with(word) && (word.len() >= 3)).and_then(|i| u32::try_from(i + 1).ok())
}

static ISO_DATE: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"\b(\d{4})-(\d{2})-(\d{2})\b").ok());
static DAY_MONTH_YEAR: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+([A-Za-z]{3,9})\.?,?\s+(\d{4})\b").ok());
static MONTH_DAY_YEAR: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\b([A-Za-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b").ok());
static MONTH_YEAR: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\b(?:in\s+)?([A-Za-z]{3,9})\.?\s+(\d{4})\b").ok());

/// Calendar dates written in `text` (ISO `2024-05-07`, `7 May 2024`,
/// `May 7, 2024`, and `May 2024` as the month's first day), in text order,
/// each once. Years outside 1000..=9999 and impossible days are skipped.
pub fn dates_in_text(text: &str) -> Vec<(NaiveDate, DatePrecision)> {
    let mut found: Vec<(usize, NaiveDate, DatePrecision)> = Vec::new();
    let mut taken: Vec<std::ops::Range<usize>> = Vec::new();
    let mut add = |range: std::ops::Range<usize>, date: Option<NaiveDate>, precision: DatePrecision| {
        if let Some(date) = date
            && !taken.iter().any(|t| t.start < range.end && range.start < t.end)
        {
            found.push((range.start, date, precision));
            taken.push(range);
        }
    };
    let num = |s: &str| s.parse::<u32>().ok();
    let year = |s: &str| s.parse::<i32>().ok().filter(|y| (1000..=9999).contains(y));
    let ymd = |y: Option<i32>, m: Option<u32>, d: Option<u32>| NaiveDate::from_ymd_opt(y?, m?, d?);
    if let Some(re) = ISO_DATE.as_ref() {
        for c in re.captures_iter(text) {
            let date = ymd(year(&c[1]), num(&c[2]), num(&c[3]));
            add(c.get(0).map_or(0..0, |m| m.range()), date, DatePrecision::Day);
        }
    }
    if let Some(re) = DAY_MONTH_YEAR.as_ref() {
        for c in re.captures_iter(text) {
            let date = ymd(year(&c[3]), month_number(&c[2]), num(&c[1]));
            add(c.get(0).map_or(0..0, |m| m.range()), date, DatePrecision::Day);
        }
    }
    if let Some(re) = MONTH_DAY_YEAR.as_ref() {
        for c in re.captures_iter(text) {
            let date = ymd(year(&c[3]), month_number(&c[1]), num(&c[2]));
            add(c.get(0).map_or(0..0, |m| m.range()), date, DatePrecision::Day);
        }
    }
    if let Some(re) = MONTH_YEAR.as_ref() {
        for c in re.captures_iter(text) {
            let date = ymd(year(&c[2]), month_number(&c[1]), Some(1));
            add(c.get(1).map_or(0..0, |m| m.start()..c.get(2).map_or(0, |y| y.end())), date, DatePrecision::Month);
        }
    }
    found.sort_by_key(|(at, _, _)| *at);
    let mut seen = BTreeSet::new();
    found.into_iter().filter(|(_, d, p)| seen.insert((*d, *p))).map(|(_, d, p)| (d, p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(name: &str, kind: &str, memories: u64) -> EntitySummary {
        EntitySummary { name: name.into(), display_name: name.into(), kind: kind.into(), memories }
    }

    /// Two triangles (a-b-c, x-y-z) joined by one weak edge c-x, and a
    /// lone entity.
    fn two_clusters() -> MentionGraph {
        let names = ["a", "b", "c", "lone", "x", "y", "z"];
        let entities = names.iter().map(|n| entity(n, "concept", 1)).collect();
        let idx = |n: &str| names.iter().position(|m| *m == n).map(|i| i as u32).unwrap_or(0);
        let mut memories = Vec::new();
        let mut add = |members: &[&str]| {
            let mut ids: Vec<u32> = members.iter().map(|m| idx(m)).collect();
            ids.sort_unstable();
            memories.push((MemoryId::new(), ids));
        };
        for _ in 0..3 {
            add(&["a", "b", "c"]);
            add(&["x", "y", "z"]);
        }
        add(&["c", "x"]);
        add(&["lone"]);
        MentionGraph { entities, memories, truncated: false }
    }

    #[test]
    fn connectivity_counts_components_and_isolated_entities() {
        let c = connectivity(&two_clusters());
        assert_eq!((c.entities, c.edges, c.components, c.largest_component, c.isolated_entities), (7, 7, 2, 6, 1));
        assert_eq!(c.component_sizes, [6, 1]);
    }

    #[test]
    fn label_propagation_finds_the_two_clusters_for_any_seed() {
        for seed in [0, 1, 42, 7_777] {
            let communities = entity_communities(&two_clusters(), seed, 2, 10);
            let mut names: Vec<Vec<String>> = communities
                .iter()
                .map(|c| {
                    let mut m: Vec<String> = c.members.iter().map(|e| e.name.clone()).collect();
                    m.sort();
                    m
                })
                .collect();
            names.sort();
            assert_eq!(names, [vec!["a", "b", "c"], vec!["x", "y", "z"]], "seed {seed}");
            assert!(communities.iter().all(|c| c.internal_weight == 9 && c.memories == 4));
        }
        assert_eq!(
            entity_communities(&two_clusters(), 3, 2, 10),
            entity_communities(&two_clusters(), 3, 2, 10),
            "deterministic"
        );
    }

    #[test]
    fn memories_join_the_community_of_their_entities() {
        let graph = two_clusters();
        let communities = memory_communities(&graph, 42, 1, 100);
        let sizes: Vec<usize> = communities.iter().map(|c| c.size).collect();
        // Three memories per triangle, the bridging one with the first
        // community, the lone memory alone.
        assert_eq!(sizes, [4, 3, 1]);
        let total: usize = sizes.iter().sum();
        assert_eq!(total, graph.memories.len());
    }

    #[test]
    fn pagerank_sums_to_one_and_ranks_the_bridges_first() {
        let graph = two_clusters();
        let scores = centrality(&graph, 10);
        let sum: f64 = scores.iter().map(|c| c.pagerank).sum();
        assert!((sum - 1.0).abs() < 1e-9, "{sum}");
        let mut top: Vec<&str> = scores.iter().take(2).map(|c| c.entity.name.as_str()).collect();
        top.sort_unstable();
        assert_eq!(top, ["c", "x"]);
        assert_eq!(scores.last().map(|c| (c.entity.name.as_str(), c.degree)), Some(("lone", 0)));
    }

    #[test]
    fn tags_are_counted_and_paired() {
        let set = |pairs: &[(&str, &str)]| -> TagSet {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        let sets = vec![
            set(&[("team", "core"), ("lang", "rust")]),
            set(&[("team", "core"), ("lang", "rust"), ("prio", "high")]),
            set(&[("team", "web"), ("lang", "ts")]),
        ];
        assert_eq!(tag_counts(&sets)[0], ("lang=rust".to_owned(), 2));
        let pairs = tag_cooccurrence(&sets, 2, 10);
        assert_eq!(pairs, [TagPair { a: "lang=rust".into(), b: "team=core".into(), memories: 2 }]);
        let (n, related) = related_tags(&sets, "team", 10);
        assert_eq!(n, 3);
        assert_eq!(related[0], ("lang=rust".to_owned(), 2));
        assert!(related.iter().all(|(t, _)| !t.starts_with("team=")));
    }

    #[test]
    fn duplicate_names_are_found_with_their_reason() {
        let entities = vec![
            entity("caroline", "person", 5),
            entity("caroline smith", "person", 2),
            entity("kubernetes", "technology", 9),
            entity("kubernets", "technology", 1),
            entity("open ai", "organisation", 1),
            entity("openai", "organisation", 4),
            entity("python 2", "technology", 3),
            entity("python 3", "technology", 3),
            entity("bob", "person", 1),
            entity("rob", "person", 1),
        ];
        let found: Vec<(String, String, DuplicateReason)> =
            duplicates(&entities, 10).into_iter().map(|p| (p.keep.name, p.merge.name, p.reason)).collect();
        assert_eq!(
            found,
            [
                ("openai".to_owned(), "open ai".to_owned(), DuplicateReason::SameLetters),
                ("kubernetes".to_owned(), "kubernets".to_owned(), DuplicateReason::Spelling),
                ("caroline smith".to_owned(), "caroline".to_owned(), DuplicateReason::ShortForm),
            ]
        );
    }

    /// Precision and recall of [`duplicates`] on a built set of name
    /// variants: pairs that name one thing (misspellings, spacing, dots,
    /// short forms) among look-alikes that do not (versions, other words,
    /// other people). Prints both; guards the precision.
    #[test]
    fn duplicate_detection_precision_on_built_name_variants() {
        let same: &[(&str, &str, &str)] = &[
            ("kubernetes", "kubernets", "technology"),
            ("postgresql", "postgressql", "technology"),
            ("elasticsearch", "elastic search", "technology"),
            ("open ai", "openai", "organisation"),
            ("github", "git hub", "organisation"),
            ("javascript", "java script", "technology"),
            ("typescript", "typescirpt", "technology"),
            ("microsoft", "microsfot", "organisation"),
            ("rabbitmq", "rabbit mq", "technology"),
            ("prometheus", "promethues", "technology"),
            ("terraform", "terrafrom", "technology"),
            ("cloudflare", "cloud flare", "organisation"),
            ("new york", "newyork", "place"),
            ("san francisco", "san fransisco", "place"),
            ("mc donald", "mcdonald", "organisation"),
            ("j.r.r. tolkien", "jrr tolkien", "person"),
            ("acme corp", "acme-corp", "organisation"),
            ("datadog", "data dog", "organisation"),
            ("grafana", "graphana", "technology"),
            ("caroline smith", "caroline", "person"),
            ("melanie jones", "melanie", "person"),
            ("oscar wilde", "oscar", "person"),
            ("tensorflow", "tensor flow", "technology"),
            ("postgres operator", "postgres-operator", "technology"),
        ];
        let different: &[(&str, &str, &str)] = &[
            ("python 2", "python 3", "technology"),
            ("bob", "rob", "person"),
            ("java", "javascript", "technology"),
            ("postgres", "postgis", "technology"),
            ("react", "preact", "technology"),
            ("mark", "marc", "person"),
            ("ipv4", "ipv6", "technology"),
            ("kafka", "kafkaesque", "term"),
            ("rust", "trust", "term"),
            ("apple", "apply", "term"),
            ("london", "londonderry", "place"),
            ("paris", "parish", "place"),
            ("stephen", "stephan", "person"),
            ("michael", "michelle", "person"),
            ("service a", "service b", "term"),
            ("user-service", "users-service", "technology"),
            ("release 1.2", "release 1.3", "term"),
            ("anna", "hanna", "person"),
            ("zoe", "zoe kim", "person"),
            ("zoe lee", "zoe kim", "person"),
        ];
        let mut names: Vec<(&str, &str)> = Vec::new();
        for (a, b, kind) in same.iter().chain(different) {
            for n in [a, b] {
                if !names.iter().any(|(m, _)| m == n) {
                    names.push((n, kind));
                }
            }
        }
        let entities: Vec<EntitySummary> = names.iter().map(|(n, k)| entity(n, k, 1)).collect();
        let found = duplicates(&entities, 1_000);
        let key = |a: &str, b: &str| if a < b { (a.to_owned(), b.to_owned()) } else { (b.to_owned(), a.to_owned()) };
        let truth: BTreeSet<(String, String)> = same.iter().map(|(a, b, _)| key(a, b)).collect();
        let predicted: BTreeSet<(String, String)> = found.iter().map(|p| key(&p.keep.name, &p.merge.name)).collect();
        let hits = predicted.intersection(&truth).count();
        let precision = hits as f64 / predicted.len().max(1) as f64;
        let recall = hits as f64 / truth.len() as f64;
        let wrong: Vec<&(String, String)> = predicted.difference(&truth).collect();
        let missed: Vec<&(String, String)> = truth.difference(&predicted).collect();
        println!(
            "duplicates on {} names: precision {precision:.3} ({hits}/{}), recall {recall:.3} ({hits}/{}); wrong {wrong:?}; missed {missed:?}",
            entities.len(),
            predicted.len(),
            truth.len()
        );
        assert!(precision >= 0.9, "precision {precision:.3}: {wrong:?}");
        assert!(recall >= 0.75, "recall {recall:.3}: {missed:?}");
    }

    #[test]
    fn dates_are_read_in_their_common_forms() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        let found = dates_in_text(
            "Released 2024-05-07, planned on 7 May 2024 (again), demoed March 3rd, 2023 and shipped in June 2022; \
             not 2024-13-40 nor May 99, 2020.",
        );
        assert_eq!(
            found,
            [
                (d(2024, 5, 7), DatePrecision::Day),
                (d(2023, 3, 3), DatePrecision::Day),
                (d(2022, 6, 1), DatePrecision::Month),
            ]
        );
        assert!(dates_in_text("no dates here, only 42 and may be").is_empty());
    }
}
