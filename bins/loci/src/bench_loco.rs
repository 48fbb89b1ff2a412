//! `loci bench locomo --loco`: the ranking parameters chosen by
//! leave-one-conversation-out. Each question's source lists and ranking
//! signals are gathered once through the search service; every
//! configuration of a grid then ranks them with the service's own ranking
//! functions. For each conversation the configuration best on the other
//! four (mean R@10, then MRR) is scored on it; the held-out figures are
//! those scores, next to the best configuration on all five (in-sample).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use loci_core::MemoryId;
use loci_domain::search::ranking::{self, Fusion, RankingConfig, Signals};
use loci_domain::search::{Fused, Gathered, RankedList, Source, Weights, analysis};

/// One question, ready to rank.
pub struct Probe {
    pub conversation: usize,
    pub category: i64,
    pub evidence: BTreeSet<String>,
    pub gathered: Gathered,
    pub asks_when: bool,
    /// For every memory any list holds.
    pub signals: HashMap<MemoryId, Signals>,
}

/// The signals of `ids` from their contents, stream neighbours and the
/// entities the query names (what the search service computes from the
/// memories it loads).
pub fn signals_of(
    ids: &[MemoryId],
    content: &HashMap<MemoryId, String>,
    neighbours: &HashMap<MemoryId, (Option<MemoryId>, Option<MemoryId>)>,
    entities: &[String],
) -> HashMap<MemoryId, Signals> {
    ids.iter()
        .filter_map(|id| {
            let text = content.get(id)?;
            let (before, after) = neighbours.get(id).copied().unwrap_or_default();
            Some((
                *id,
                Signals {
                    before,
                    after,
                    names_query_entity: analysis::names_any(text, entities),
                    time_expression: analysis::has_time_expression(text),
                },
            ))
        })
        .collect()
}

/// A point of the grid.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub weights: Weights,
    pub ranking: RankingConfig,
}

impl Config {
    fn label(&self) -> String {
        let r = &self.ranking;
        format!(
            "{} v{:.2} l{:.2} g{:.2} nb{:.2} ent{:.2} tmp{:.2}",
            match r.fusion {
                Fusion::Rrf => "rrf",
                Fusion::Score => "score",
            },
            self.weights.vector,
            self.weights.lexical,
            self.weights.graph,
            r.neighbour,
            r.entity,
            r.temporal
        )
    }
}

/// The grid: both fusions, a few weightings, each signal off or at a few
/// strengths.
pub fn grid() -> Vec<Config> {
    let mut out = Vec::new();
    let mut weightings: Vec<(Fusion, Weights)> = Vec::new();
    for (v, l, g) in [(0.3, 0.7, 0.1), (0.5, 0.5, 0.0)] {
        weightings.push((Fusion::Rrf, Weights { vector: v, lexical: l, graph: g }));
    }
    for v in [0.3, 0.4, 0.5] {
        for g in [0.0, 0.1] {
            weightings.push((Fusion::Score, Weights { vector: v, lexical: 1.0 - v, graph: g }));
        }
    }
    for (fusion, weights) in weightings {
        for neighbour in [0.0, 0.2, 0.4, 0.6, 0.8] {
            for entity in [0.0, 0.5, 1.0, 1.5] {
                for temporal in [0.0, 0.5, 1.0, 2.0] {
                    let ranking =
                        RankingConfig { fusion, rrf_k: 60.0, neighbour, entity, temporal, ..RankingConfig::default() };
                    out.push(Config { weights, ranking });
                }
            }
        }
    }
    out
}

/// The memories of `probe` in `config`'s order.
pub fn rank(probe: &Probe, config: &Config) -> Vec<MemoryId> {
    fn list(o: &Option<Result<Vec<loci_index::Hit>, String>>) -> &[loci_index::Hit] {
        match o {
            Some(Ok(h)) => h.as_slice(),
            _ => &[],
        }
    }
    let (vector, lexical, graph) =
        (list(&probe.gathered.vector), list(&probe.gathered.lexical), list(&probe.gathered.graph));
    let w = config.weights;
    let mut fused: Vec<Fused> = ranking::fuse_lists(
        &[
            RankedList { source: Source::Vector, weight: w.vector, hits: vector },
            RankedList { source: Source::Lexical, weight: w.lexical, hits: lexical },
            RankedList { source: Source::Graph, weight: w.graph, hits: graph },
        ],
        config.ranking.fusion,
        config.ranking.rrf_k,
    );
    if config.ranking.has_signals() {
        let top: HashMap<MemoryId, Signals> = fused
            .iter()
            .take(config.ranking.depth)
            .filter_map(|f| probe.signals.get(&f.id).map(|s| (f.id, s.clone())))
            .collect();
        ranking::rescore(&mut fused, &top, probe.asks_when, &config.ranking);
    }
    fused.into_iter().map(|f| f.id).collect()
}

/// R@5, R@10 and MRR (cut at 100) of one ranking.
pub fn measure(ranked: &[String], evidence: &BTreeSet<String>) -> [f64; 3] {
    let recall = |k: usize| {
        let found = ranked.iter().take(k).filter(|d| evidence.contains(*d)).collect::<BTreeSet<_>>().len();
        found as f64 / evidence.len().max(1) as f64
    };
    let mrr = ranked.iter().take(100).position(|d| evidence.contains(d)).map_or(0.0, |i| 1.0 / (i + 1) as f64);
    [recall(5), recall(10), mrr]
}

/// Per question, per configuration: [R@5, R@10, MRR].
type Table = Vec<Vec<[f64; 3]>>;

fn mean(rows: impl Iterator<Item = [f64; 3]>) -> [f64; 3] {
    let (mut sum, mut n) = ([0.0; 3], 0usize);
    for r in rows {
        for i in 0..3 {
            sum[i] += r[i];
        }
        n += 1;
    }
    sum.map(|s| s / n.max(1) as f64)
}

/// What "best" means when a configuration is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Criterion {
    /// Mean R@10, ties by MRR.
    Recall,
    /// Mean R@10 + MRR (both are targets).
    RecallPlusMrr,
}

impl Criterion {
    fn key(self, m: [f64; 3]) -> (f64, f64) {
        match self {
            Criterion::Recall => (m[1], m[2]),
            Criterion::RecallPlusMrr => (m[1] + m[2], m[1]),
        }
    }
}

/// The configuration best on the questions `keep` admits.
fn best(
    table: &Table,
    probes: &[Probe],
    configs: &[usize],
    criterion: Criterion,
    keep: impl Fn(&Probe) -> bool,
) -> usize {
    let mut best = (configs[0], (f64::MIN, f64::MIN));
    for &c in configs {
        let key = criterion.key(mean(table.iter().zip(probes).filter(|(_, p)| keep(p)).map(|(row, _)| row[c])));
        if key > best.1 {
            best = (c, key);
        }
    }
    best.0
}

/// Held-out and in-sample figures over the configurations `configs` (a
/// subset of the grid: an ablation).
pub struct Outcome {
    pub held_out: [f64; 3],
    pub in_sample: [f64; 3],
    pub held_out_by_category: BTreeMap<i64, [f64; 3]>,
    pub in_sample_by_category: BTreeMap<i64, [f64; 3]>,
    pub chosen: Vec<String>,
    pub in_sample_choice: String,
}

pub fn evaluate(
    table: &Table,
    probes: &[Probe],
    grid: &[Config],
    configs: &[usize],
    folds: usize,
    criterion: Criterion,
) -> Outcome {
    let mut held: Vec<(i64, [f64; 3])> = Vec::new();
    let mut chosen = Vec::new();
    for fold in 0..folds {
        let c = best(table, probes, configs, criterion, |p| p.conversation != fold);
        chosen.push(grid[c].label());
        held.extend(table.iter().zip(probes).filter(|(_, p)| p.conversation == fold).map(|(r, p)| (p.category, r[c])));
    }
    let all = best(table, probes, configs, criterion, |_| true);
    let inside: Vec<(i64, [f64; 3])> = table.iter().zip(probes).map(|(r, p)| (p.category, r[all])).collect();
    let by_category = |rows: &[(i64, [f64; 3])]| {
        let cats: BTreeSet<i64> = rows.iter().map(|(c, _)| *c).collect();
        cats.into_iter().map(|c| (c, mean(rows.iter().filter(|(k, _)| *k == c).map(|(_, r)| *r)))).collect()
    };
    Outcome {
        held_out: mean(held.iter().map(|(_, r)| *r)),
        in_sample: mean(inside.iter().map(|(_, r)| *r)),
        held_out_by_category: by_category(&held),
        in_sample_by_category: by_category(&inside),
        chosen,
        in_sample_choice: grid[all].label(),
    }
}

/// Every probe ranked by every configuration.
pub fn table(probes: &[Probe], grid: &[Config], dia_of: &HashMap<MemoryId, String>) -> Table {
    probes
        .iter()
        .map(|p| {
            grid.iter()
                .map(|c| {
                    let ranked: Vec<String> = rank(p, c).iter().filter_map(|id| dia_of.get(id).cloned()).collect();
                    measure(&ranked, &p.evidence)
                })
                .collect()
        })
        .collect()
}

const CATEGORIES: [(i64, &str); 4] = [(1, "multi-hop"), (2, "temporal"), (3, "open-domain"), (4, "single-hop")];

/// Prints the held-out table, per category, and the ablations.
pub fn report(probes: &[Probe], dia_of: &HashMap<MemoryId, String>, folds: usize) {
    let grid = grid();
    let table = table(probes, &grid, dia_of);
    let all: Vec<usize> = (0..grid.len()).collect();
    let full = evaluate(&table, probes, &grid, &all, folds, Criterion::Recall);
    let both = evaluate(&table, probes, &grid, &all, folds, Criterion::RecallPlusMrr);
    println!("\nLeave-one-conversation-out over {} configurations ({} folds), hybrid:", grid.len(), folds);
    println!("| chosen by | figures | R@5 | R@10 | MRR |");
    println!("|---|---|---|---|---|");
    let row =
        |by: &str, name: &str, m: [f64; 3]| println!("| {by} | {name} | {:.3} | {:.3} | {:.3} |", m[0], m[1], m[2]);
    row("R@10", "held-out", full.held_out);
    row("R@10", "in-sample", full.in_sample);
    row("R@10 + MRR", "held-out", both.held_out);
    row("R@10 + MRR", "in-sample", both.in_sample);
    println!("\nPer category (chosen by R@10 + MRR):");
    println!("| category | questions | held-out R@10 | in-sample R@10 | held-out MRR |");
    println!("|---|---|---|---|---|");
    for (c, name) in CATEGORIES {
        let n = probes.iter().filter(|p| p.category == c).count();
        if let (Some(h), Some(i)) = (both.held_out_by_category.get(&c), both.in_sample_by_category.get(&c)) {
            println!("| {c} {name} | {n} | {:.3} | {:.3} | {:.3} |", h[1], i[1], h[2]);
        }
    }
    println!("\nChosen by R@10 per held-out conversation: {}", full.chosen.join("; "));
    println!("Best on all five by R@10 (in-sample): {}", full.in_sample_choice);
    println!("Chosen by R@10 + MRR per held-out conversation: {}", both.chosen.join("; "));
    println!("Best on all five by R@10 + MRR (in-sample): {}", both.in_sample_choice);

    type Keep = fn(&Config) -> bool;
    let ablations: [(&str, Keep); 7] = [
        ("RRF only (no score fusion)", |c| c.ranking.fusion == Fusion::Rrf),
        ("score fusion only", |c| c.ranking.fusion == Fusion::Score),
        ("no neighbour evidence", |c| c.ranking.neighbour == 0.0),
        ("no entity boost", |c| c.ranking.entity == 0.0),
        ("no temporal boost", |c| c.ranking.temporal == 0.0),
        ("no graph list", |c| c.weights.graph == 0.0),
        ("no signals (fusion only)", |c| !c.ranking.has_signals()),
    ];
    println!("\nAblation (chosen by R@10 + MRR; each restricts the grid):");
    println!("| configurations | R@10 | MRR | in-sample R@10 | in-sample MRR |");
    println!("|---|---|---|---|---|");
    println!(
        "| whole grid | {:.3} | {:.3} | {:.3} | {:.3} |",
        both.held_out[1], both.held_out[2], both.in_sample[1], both.in_sample[2]
    );
    for (name, keep) in ablations {
        let subset: Vec<usize> = (0..grid.len()).filter(|&i| keep(&grid[i])).collect();
        if subset.is_empty() {
            continue;
        }
        let o = evaluate(&table, probes, &grid, &subset, folds, Criterion::RecallPlusMrr);
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:.3} |",
            o.held_out[1], o.held_out[2], o.in_sample[1], o.in_sample[2]
        );
    }
}
