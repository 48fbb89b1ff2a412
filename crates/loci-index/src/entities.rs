//! Read queries over the entity graph: the entities a caller can see, one
//! entity, its co-mention network and the shortest chain of co-mentions
//! between two entities.
//!
//! Visibility is the [`SearchFilter`]'s: an entity exists for a caller only
//! through memories the filter admits. A name mentioned only in memories the
//! caller cannot see appears nowhere: not in a list, a count, a network or a
//! path.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;

use async_trait::async_trait;

use crate::{IndexError, SearchFilter};

/// Most entities (or neighbours) one answer lists.
pub const MAX_ENTITY_LIMIT: usize = 500;
/// Bounds of a path search's `max_hops`.
pub const PATH_HOPS: std::ops::RangeInclusive<usize> = 2..=12;
/// Most entities a path search reaches before it gives up: the work of one
/// search is bounded whatever the graph.
pub const PATH_VISIT_BUDGET: usize = 20_000;

/// An entity as a caller sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitySummary {
    /// The normalised name: the entity's key in its org.
    pub name: String,
    /// The name as first written.
    pub display_name: String,
    /// What the extractor took it for (`person`, `project`, ...).
    pub kind: String,
    /// Visible memories that mention it.
    pub memories: u64,
}

/// An entity mentioned together with another one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub entity: EntitySummary,
    /// Visible memories that mention both.
    pub shared_memories: u64,
}

/// An entity and the entities co-mentioned with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityNetwork {
    pub entity: EntitySummary,
    /// Most shared memories first, then by name.
    pub neighbours: Vec<Neighbour>,
}

/// The entity graph's read side. Names are normalised names
/// ([`crate::extract::normalise`]); every answer is deterministic.
#[async_trait]
pub trait EntityGraph: Send + Sync + std::fmt::Debug {
    /// Entities that at least `min_memories` visible memories mention, the
    /// most mentioned first (then by name), at most `limit`.
    async fn entities(
        &self,
        filter: &SearchFilter,
        min_memories: u64,
        limit: usize,
    ) -> Result<Vec<EntitySummary>, IndexError>;

    /// The entity named `name`, if a visible memory mentions it.
    async fn entity(&self, filter: &SearchFilter, name: &str) -> Result<Option<EntitySummary>, IndexError>;

    /// The entity named `name` and at most `limit` entities that visible
    /// memories mention together with it; `None` when no visible memory
    /// mentions it.
    async fn network(
        &self,
        filter: &SearchFilter,
        name: &str,
        limit: usize,
    ) -> Result<Option<EntityNetwork>, IndexError>;

    /// A shortest chain of co-mentions in visible memories from `from` to
    /// `to` (both included, `max_hops` edges at most); `None` when there is
    /// none within the bound or within [`PATH_VISIT_BUDGET`] entities. Ties
    /// between chains of one length go to the smaller names (each entity is
    /// reached from the smallest-named entity of the previous step).
    async fn path(
        &self,
        filter: &SearchFilter,
        from: &str,
        to: &str,
        max_hops: usize,
    ) -> Result<Option<Vec<EntitySummary>>, IndexError>;
}

/// A shortest chain from `from` to `to`, breadth-first, one call of `step`
/// per level: `step(frontier)` answers every `(a, b, name of b)` with `a` in
/// the frontier and `b` co-mentioned with it. Each newly reached entity keeps
/// the entity of the previous level with the smallest `(name, key)`, so the
/// answer is stable (the rule of [`EntityGraph::path`]). `None` when `to` is
/// not within `max_hops` edges or [`PATH_VISIT_BUDGET`] entities. Every
/// engine's path search runs this; only `step` is the engine's.
pub async fn shortest_chain<K, E, F, Fut>(
    from: (K, String),
    to: &K,
    max_hops: usize,
    mut step: F,
) -> Result<Option<Vec<K>>, E>
where
    K: Clone + Eq + Hash + Ord,
    F: FnMut(Vec<K>) -> Fut,
    Fut: Future<Output = Result<Vec<(K, K, String)>, E>>,
{
    if from.0 == *to {
        return Ok(Some(vec![to.clone()]));
    }
    let mut names: HashMap<K, String> = HashMap::from([(from.0.clone(), from.1)]);
    let mut parent: HashMap<K, K> = HashMap::new();
    let mut visited: HashSet<K> = HashSet::from([from.0.clone()]);
    let mut frontier = vec![from.0];
    for _ in 0..max_hops {
        let mut reached: BTreeMap<K, (String, K)> = BTreeMap::new();
        for (a, b, name) in step(frontier).await? {
            if visited.contains(&b) {
                continue;
            }
            let via = (names.get(&a).cloned().unwrap_or_default(), a);
            names.insert(b.clone(), name);
            match reached.get(&b) {
                Some(best) if *best <= via => {}
                _ => {
                    reached.insert(b, via);
                }
            }
        }
        if reached.is_empty() {
            return Ok(None);
        }
        for (b, (_, a)) in &reached {
            visited.insert(b.clone());
            parent.insert(b.clone(), a.clone());
        }
        if parent.contains_key(to) {
            let mut chain = vec![to.clone()];
            while let Some(p) = chain.last().and_then(|c| parent.get(c)) {
                chain.push(p.clone());
            }
            chain.reverse();
            return Ok(Some(chain));
        }
        if visited.len() > PATH_VISIT_BUDGET {
            return Ok(None);
        }
        frontier = reached.into_keys().collect();
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chain over a fixed edge list; ties go to the smaller name.
    async fn chain(edges: &[(&str, &str)], from: &str, to: &str, hops: usize) -> Option<Vec<String>> {
        let edges: Vec<(String, String)> = edges
            .iter()
            .flat_map(|(a, b)| [((*a).to_owned(), (*b).to_owned()), ((*b).to_owned(), (*a).to_owned())])
            .collect();
        let step = |frontier: Vec<String>| {
            let out: Vec<(String, String, String)> = edges
                .iter()
                .filter(|(a, _)| frontier.contains(a))
                .map(|(a, b)| (a.clone(), b.clone(), b.clone()))
                .collect();
            async move { Ok::<_, ()>(out) }
        };
        shortest_chain((from.to_owned(), from.to_owned()), &to.to_owned(), hops, step).await.unwrap()
    }

    #[tokio::test]
    async fn the_shortest_chain_is_stable_and_bounded() {
        let diamond = [("a", "c"), ("a", "b"), ("b", "d"), ("c", "d"), ("d", "e")];
        assert_eq!(chain(&diamond, "a", "e", 6).await, Some(vec!["a".into(), "b".into(), "d".into(), "e".into()]));
        assert_eq!(chain(&diamond, "a", "e", 2).await, None, "three hops do not fit in two");
        assert_eq!(chain(&diamond, "a", "a", 2).await, Some(vec!["a".into()]));
        assert_eq!(chain(&diamond, "a", "z", 6).await, None);
    }
}
