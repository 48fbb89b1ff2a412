//! Ranking of search candidates, in two stages, as pure functions (the
//! search service and `loci bench locomo` share them):
//!
//! 1. Fusion of the sources' ranked lists: weighted reciprocal rank fusion,
//!    or a weighted sum of each list's scores min-max normalised to 0..1
//!    (keeps how far ahead a hit is, which ranks throw away).
//! 2. Signals no single index sees, over the best fused candidates: a
//!    neighbour in the same stream (the turn before or after) that matched
//!    too, an entity the query names, and for a question asking *when*, a
//!    time expression in the memory.
//!
//! Measured on LoCoMo with parameters chosen on other conversations than the
//! ones scored (docs/BENCHMARKS.md).

use std::collections::HashMap;

use loci_core::MemoryId;
use loci_index::Hit;
use serde::{Deserialize, Serialize};

use super::{Fused, RankedList, Source, SourceScores};

/// How the sources' lists become one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fusion {
    /// Weighted reciprocal rank fusion: rank r in a list of weight w adds
    /// w / (k + r).
    Rrf,
    /// Each list's scores min-max normalised to 0..1, weighted and summed.
    #[default]
    Score,
}

/// The tuning of both stages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankingConfig {
    pub fusion: Fusion,
    pub rrf_k: f32,
    /// Share of the better fused score of a candidate's stream neighbours
    /// added to its own (0 = off).
    pub neighbour: f32,
    /// Relative boost of a candidate naming an entity the query names.
    pub entity: f32,
    /// Relative boost of a candidate with a time expression, for questions
    /// asking when.
    pub temporal: f32,
    /// How many of the best fused candidates the signals look at.
    pub depth: usize,
}

impl Default for RankingConfig {
    fn default() -> Self {
        Self { fusion: Fusion::Score, rrf_k: 60.0, neighbour: 0.4, entity: 1.5, temporal: 1.0, depth: 50 }
    }
}

impl RankingConfig {
    /// Whether the second stage has anything to do.
    pub fn has_signals(&self) -> bool {
        self.depth > 0 && (self.neighbour > 0.0 || self.entity > 0.0 || self.temporal > 0.0)
    }
}

/// What the second stage knows about one candidate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signals {
    /// The memories just before and after it in its stream.
    pub before: Option<MemoryId>,
    pub after: Option<MemoryId>,
    /// It names an entity the query names.
    pub names_query_entity: bool,
    /// Its content holds a time expression ("yesterday", "last May", "2023").
    pub time_expression: bool,
}

/// Fuses the lists (see [`Fusion`]); best first, ties by id.
pub fn fuse_lists(lists: &[RankedList<'_>], fusion: Fusion, rrf_k: f32) -> Vec<Fused> {
    let mut acc: HashMap<MemoryId, Fused> = HashMap::new();
    for list in lists {
        if list.weight <= 0.0 || list.hits.is_empty() {
            continue;
        }
        let (lo, hi) =
            list.hits.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), h| (lo.min(h.score), hi.max(h.score)));
        for (rank, hit) in list.hits.iter().enumerate() {
            let gain = match fusion {
                Fusion::Rrf => list.weight / (rrf_k + (rank + 1) as f32),
                Fusion::Score if hi > lo && hit.score.is_finite() => list.weight * (hit.score - lo) / (hi - lo),
                Fusion::Score => list.weight,
            };
            let entry = acc.entry(hit.id).or_insert_with(|| Fused {
                id: hit.id,
                score: 0.0,
                scores: SourceScores::default(),
                highlights: Vec::new(),
            });
            entry.score += gain;
            record(entry, list.source, hit);
        }
    }
    let mut out: Vec<Fused> = acc.into_values().collect();
    for f in &mut out {
        f.scores.fused = f.score;
    }
    sort(&mut out);
    out
}

fn record(entry: &mut Fused, source: Source, hit: &Hit) {
    match source {
        Source::Vector => entry.scores.vector = Some(hit.score),
        Source::Lexical => {
            entry.scores.lexical = Some(hit.score);
            entry.highlights = hit.highlights.clone();
        }
        Source::Graph => entry.scores.graph = Some(hit.score),
    }
}

fn sort(fused: &mut [Fused]) {
    fused.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
}

/// The second stage over the candidates with `signals` (the caller gives
/// them for the best `config.depth` it could load): a candidate gains
/// `neighbour` times the better fused score of its stream neighbours, then
/// is scaled by `1 + entity` when it names an entity of the query and by
/// `1 + temporal` when the query asks when and it holds a time expression.
/// The rest keep their scores; all are sorted again.
pub fn rescore(fused: &mut [Fused], signals: &HashMap<MemoryId, Signals>, asks_when: bool, config: &RankingConfig) {
    if !config.has_signals() {
        return;
    }
    let base: HashMap<MemoryId, f32> = fused.iter().map(|f| (f.id, f.score)).collect();
    let score_of = |id: Option<MemoryId>| id.and_then(|id| base.get(&id).copied()).unwrap_or(0.0);
    for f in fused.iter_mut() {
        let Some(s) = signals.get(&f.id) else { continue };
        let mut score = f.score + config.neighbour * score_of(s.before).max(score_of(s.after));
        if s.names_query_entity {
            score *= 1.0 + config.entity;
        }
        if asks_when && s.time_expression {
            score *= 1.0 + config.temporal;
        }
        f.score = score;
    }
    sort(fused);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(scored: &[(MemoryId, f32)]) -> Vec<Hit> {
        scored.iter().map(|(id, s)| Hit::new(*id, *s)).collect()
    }

    fn ids(fused: &[Fused]) -> Vec<MemoryId> {
        fused.iter().map(|f| f.id).collect()
    }

    #[test]
    fn score_fusion_keeps_the_margins_rank_fusion_drops() {
        let (a, b, c) = (MemoryId::new(), MemoryId::new(), MemoryId::new());
        // Lexically a is far ahead; semantically b is barely ahead of a.
        let lexical = hits(&[(a, 20.0), (c, 2.0), (b, 1.0)]);
        let vector = hits(&[(b, 0.61), (a, 0.60), (c, 0.10)]);
        let lists = [
            RankedList { source: Source::Vector, weight: 0.5, hits: &vector },
            RankedList { source: Source::Lexical, weight: 0.5, hits: &lexical },
        ];
        let by_score = fuse_lists(&lists, Fusion::Score, 60.0);
        assert_eq!(ids(&by_score)[0], a);
        // a: 0.5 * 1 + 0.5 * (0.60 - 0.10) / 0.51; normalised per list.
        assert!((by_score[0].score - (0.5 + 0.5 * 0.5 / 0.51)).abs() < 1e-5);
        assert_eq!(by_score[0].scores.lexical, Some(20.0), "each source's own score is kept");
        // Ranks alone: a (1st, 2nd) and b (1st, 3rd) and c (2nd, 3rd).
        let by_rank = fuse_lists(&lists, Fusion::Rrf, 60.0);
        assert_eq!(ids(&by_rank), vec![a, b, c]);
        // A list whose hits all score the same gives each its full weight.
        let flat = hits(&[(a, 3.0), (b, 3.0)]);
        let one = fuse_lists(&[RankedList { source: Source::Graph, weight: 0.2, hits: &flat }], Fusion::Score, 60.0);
        assert!(one.iter().all(|f| (f.score - 0.2).abs() < 1e-6));
        // A zero weight switches a source off.
        let off = fuse_lists(
            &[
                RankedList { source: Source::Vector, weight: 0.0, hits: &vector },
                RankedList { source: Source::Lexical, weight: 1.0, hits: &lexical },
            ],
            Fusion::Score,
            60.0,
        );
        assert!(off.iter().all(|f| f.scores.vector.is_none()));
    }

    fn fused(scored: &[(MemoryId, f32)]) -> Vec<Fused> {
        scored
            .iter()
            .map(|(id, s)| Fused { id: *id, score: *s, scores: SourceScores::default(), highlights: Vec::new() })
            .collect()
    }

    #[test]
    fn signals_lift_the_candidates_they_describe() {
        let (a, b, c, d) = (MemoryId::new(), MemoryId::new(), MemoryId::new(), MemoryId::new());
        let config = RankingConfig { neighbour: 0.5, entity: 1.0, temporal: 1.0, depth: 10, ..Default::default() };
        // c follows a in its stream: it gains half of a's score.
        let mut list = fused(&[(a, 1.0), (b, 0.6), (c, 0.5)]);
        let signals = HashMap::from([(c, Signals { before: Some(a), after: Some(d), ..Default::default() })]);
        rescore(&mut list, &signals, false, &config);
        assert_eq!(ids(&list), vec![a, c, b]);
        assert!((list[1].score - 1.0).abs() < 1e-6);

        // Naming the query's entity doubles; a time expression counts only
        // for a question asking when.
        let signals = HashMap::from([
            (b, Signals { names_query_entity: true, ..Default::default() }),
            (c, Signals { time_expression: true, ..Default::default() }),
        ]);
        let mut list = fused(&[(a, 1.0), (b, 0.6), (c, 0.55)]);
        rescore(&mut list, &signals, false, &config);
        assert_eq!(ids(&list), vec![b, a, c]);
        let mut list = fused(&[(a, 1.0), (b, 0.6), (c, 0.55)]);
        rescore(&mut list, &signals, true, &config);
        assert_eq!(ids(&list), vec![b, c, a]);

        // Nothing changes without signals, or with them off.
        let mut list = fused(&[(a, 1.0), (b, 0.6), (c, 0.55)]);
        rescore(&mut list, &HashMap::new(), true, &config);
        assert_eq!(ids(&list), vec![a, b, c]);
        let off = RankingConfig { neighbour: 0.0, entity: 0.0, temporal: 0.0, ..config };
        assert!(!off.has_signals());
    }
}
