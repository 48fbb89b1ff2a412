//! The indexers: drain the outbox into the vector, lexical and graph indexes.
//!
//! Delivery is at least once: rows are leased, applied, and completed only
//! after every index they target has accepted and flushed the change; a
//! failure gives them back with exponential backoff. Each row is applied from
//! the memory's *current* state in the relational store (not from the row's
//! operation), so replays and reordering converge: a memory that is gone or
//! deleted is removed from the indexes, any other is upserted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use loci_core::model::{Memory, MemoryFilter, PageRequest};
use loci_core::{MemoryId, MemoryState, OrgId};
use loci_embed::Embedder;
use loci_index::{GraphIndex, IndexDoc, LexicalIndex, VectorIndex};
use loci_stores::Database;
use loci_stores::repo::{memories, outbox};
use tokio::sync::watch;

use crate::DomainError;

/// Index names, as used in `missing_sources`, metrics and `loci reindex`.
pub const VECTOR: &str = "vector";
pub const LEXICAL: &str = "lexical";
pub const GRAPH: &str = "graph";

/// The indexes of one deployment, as the ports `loci-index` defines (which
/// engine backs each is chosen by the composition root). The vector index
/// exists only with an embedder.
#[derive(Debug, Clone)]
pub struct Indexes {
    pub vector: Option<Arc<dyn VectorIndex>>,
    pub lexical: Arc<dyn LexicalIndex>,
    pub graph: Arc<dyn GraphIndex>,
    pub embedder: Option<Arc<dyn Embedder>>,
}

/// How long processed outbox rows are kept (for inspection) before the
/// indexer deletes them, how often it looks, and how many go per statement.
pub const OUTBOX_RETENTION: Duration = Duration::from_secs(24 * 3600);
const OUTBOX_PRUNE_EVERY: Duration = Duration::from_secs(600);
const OUTBOX_PRUNE_BATCH: u64 = 5_000;

/// How memories become index documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexingOptions {
    /// Neighbouring memories of the same stream stored as context.
    pub context_window: u64,
    /// Whether the embedded text includes the context.
    pub embed_context: bool,
}

impl Default for IndexingOptions {
    fn default() -> Self {
        Self { context_window: 1, embed_context: false }
    }
}

impl IndexingOptions {
    /// From `[search]` (`context_window`, `embed_context`).
    pub fn from_settings(search: &loci_settings::SearchSettings) -> Self {
        Self { context_window: search.context_window as u64, embed_context: search.embed_context }
    }
}

/// What one pass of the indexer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassOutcome {
    pub claimed: usize,
    pub completed: usize,
    pub retried: usize,
}

#[derive(Debug)]
pub struct Indexer {
    db: Database,
    indexes: Indexes,
    options: IndexingOptions,
    batch: u64,
    lease: Duration,
}

/// How long claimed rows stay with their consumer: rows of an indexer that
/// died come back after this (a live one finishes a batch well within it;
/// if not, another consumer re-applies it, which is idempotent).
const LEASE: Duration = Duration::from_secs(30);

/// Longest wait before a failed row is retried.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

fn backoff(attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.clamp(1, 16) - 1).unwrap_or(0);
    Duration::from_millis(500u64.saturating_mul(1 << exp)).min(MAX_BACKOFF)
}

impl Indexer {
    pub fn new(db: Database, indexes: Indexes, options: IndexingOptions, batch: u64) -> Self {
        Self { db, indexes, options, batch: batch.max(1), lease: LEASE }
    }

    pub fn indexes(&self) -> &Indexes {
        &self.indexes
    }

    /// The backlog: pending outbox rows and the age of the oldest.
    pub async fn lag(&self) -> Result<outbox::OutboxLag, DomainError> {
        Ok(outbox::lag(&self.db).await?)
    }

    /// Claims one batch and applies it. Errors here are about the outbox
    /// itself (the relational store); index failures are retried rows.
    pub async fn run_once(&self) -> Result<PassOutcome, DomainError> {
        let entries = outbox::claim(&self.db, self.batch, self.lease).await?;
        let mut outcome = PassOutcome { claimed: entries.len(), ..Default::default() };
        let mut by_org: BTreeMap<OrgId, Vec<outbox::OutboxEntry>> = BTreeMap::new();
        for e in entries {
            by_org.entry(e.org_id.clone()).or_default().push(e);
        }
        for (org, entries) in by_org {
            let ids: Vec<i64> = entries.iter().map(|e| e.id).collect();
            let span = tracing::info_span!("indexer.batch", rows = ids.len());
            match tracing::Instrument::instrument(self.apply(&org, &entries), span).await {
                Ok(()) => {
                    outbox::complete(&self.db, &ids).await?;
                    outcome.completed += ids.len();
                }
                Err(error) => {
                    let attempts = entries.iter().map(|e| e.attempts).max().unwrap_or(1);
                    tracing::warn!(org = %org, rows = ids.len(), attempts, %error, "indexing failed; will retry");
                    outbox::retry_later(&self.db, &ids, &error, backoff(attempts)).await?;
                    outcome.retried += ids.len();
                }
            }
        }
        Ok(outcome)
    }

    /// Runs passes until the outbox has nothing due (tests, benchmarks,
    /// `loci reindex`). Stops early when a pass completes nothing.
    pub async fn drain(&self) -> Result<usize, DomainError> {
        self.drain_with(&|_| {}).await
    }

    /// [`drain`](Self::drain), calling `on_pass` with the rows completed so
    /// far after every pass (progress of long rebuilds).
    pub async fn drain_with(&self, on_pass: &(dyn Fn(usize) + Sync)) -> Result<usize, DomainError> {
        let mut done = 0;
        loop {
            let pass = self.run_once().await?;
            done += pass.completed;
            on_pass(done);
            if pass.claimed == 0 || pass.completed == 0 {
                return Ok(done);
            }
        }
    }

    /// Enqueues every memory of every org for the named indexes, without
    /// emptying them or waiting: the running indexer makes them (a new
    /// embedding model's empty vector index). Returns how many were queued.
    pub async fn queue_rebuild(&self, only: &[&str]) -> Result<u64, DomainError> {
        let orgs = outbox::orgs(&self.db).await?;
        let only: Vec<String> = only.iter().map(|s| (*s).to_owned()).collect();
        requeue(&self.db, &orgs, Some(&only)).await
    }

    /// Rebuilds indexes from the relational store: empties the named indexes
    /// (all when `only` is `None`) for each org (every org when `orgs` is
    /// `None`), enqueues every memory of those orgs for them, and drains the
    /// outbox. Crash-safe: what was enqueued stays enqueued. Returns how many
    /// memories were enqueued.
    pub async fn reindex(&self, orgs: Option<Vec<OrgId>>, only: Option<Vec<String>>) -> Result<u64, DomainError> {
        self.reindex_with(orgs, only, &|_, _| {}).await
    }

    /// [`reindex`](Self::reindex), calling `on_progress(done, enqueued)`
    /// while the outbox drains.
    pub async fn reindex_with(
        &self,
        orgs: Option<Vec<OrgId>>,
        only: Option<Vec<String>>,
        on_progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<u64, DomainError> {
        let orgs = match orgs {
            Some(o) => o,
            None => outbox::orgs(&self.db).await?,
        };
        let targets = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|n| n == name));
        for org in &orgs {
            if targets(LEXICAL) {
                self.indexes.lexical.clear(Some(org)).await?;
                self.indexes.lexical.flush().await?;
            }
            if targets(GRAPH) {
                self.indexes.graph.clear(Some(org)).await?;
            }
            if targets(VECTOR)
                && let Some(vector) = &self.indexes.vector
            {
                vector.clear(Some(org)).await?;
                vector.flush().await?;
            }
        }
        let enqueued = requeue(&self.db, &orgs, only.as_deref()).await?;
        self.drain_with(&|done| on_progress(done as u64, enqueued)).await?;
        Ok(enqueued)
    }

    /// Runs until `stop` turns true, pausing `poll` whenever there is nothing
    /// to do (or the store fails).
    pub async fn run(self: Arc<Self>, poll: Duration, mut stop: watch::Receiver<bool>) {
        let mut pruned_at = std::time::Instant::now();
        loop {
            if *stop.borrow() {
                return;
            }
            if pruned_at.elapsed() >= OUTBOX_PRUNE_EVERY {
                pruned_at = std::time::Instant::now();
                self.prune_outbox().await;
            }
            let idle = match self.run_once().await {
                Ok(pass) => pass.claimed == 0 || pass.completed == 0,
                Err(error) => {
                    tracing::warn!(%error, "indexer pass failed");
                    true
                }
            };
            if idle {
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    // A dropped sender (the server is gone) also stops it.
                    changed = stop.changed() => if changed.is_err() { return },
                }
            }
        }
    }

    /// Deletes processed outbox rows past their retention, in batches so a
    /// large backlog never holds the writer for long.
    pub async fn prune_outbox(&self) -> u64 {
        let mut total = 0;
        loop {
            match outbox::prune(&self.db, OUTBOX_RETENTION, OUTBOX_PRUNE_BATCH).await {
                Ok(n) => {
                    total += n;
                    if n < OUTBOX_PRUNE_BATCH {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "outbox prune failed");
                    break;
                }
            }
        }
        if total > 0 {
            tracing::debug!(rows = total, "processed outbox rows pruned");
        }
        total
    }

    /// Applies one org's rows; `Err` carries a message for `last_error`.
    async fn apply(&self, org: &OrgId, entries: &[outbox::OutboxEntry]) -> Result<(), String> {
        let mut ids: Vec<MemoryId> = entries.iter().map(|e| e.memory_id).collect();
        ids.sort();
        ids.dedup();
        // Rows of a reindex name their targets; anything else goes everywhere.
        let wants = |name: &str| entries.iter().any(|e| e.only.as_ref().is_none_or(|o| o.iter().any(|n| n == name)));
        let (live, gone) = self.load(org, &ids).await.map_err(|e| e.to_string())?;
        let docs = self.documents(org, &live).await.map_err(|e| e.to_string())?;
        let mut failures = Vec::new();
        if wants(LEXICAL)
            && let Err(e) = self.apply_lexical(org, &docs, &gone).await
        {
            failures.push(format!("{LEXICAL}: {e}"));
        }
        if wants(GRAPH)
            && let Err(e) = self.apply_graph(org, &docs, &gone).await
        {
            failures.push(format!("{GRAPH}: {e}"));
        }
        if wants(VECTOR)
            && let Err(e) = self.apply_vector(org, &docs, &gone).await
        {
            failures.push(format!("{VECTOR}: {e}"));
        }
        if failures.is_empty() { Ok(()) } else { Err(failures.join("; ")) }
    }

    /// Current memories among `ids` (any state but deleted) and the ids that
    /// are deleted or gone.
    async fn load(&self, org: &OrgId, ids: &[MemoryId]) -> Result<(Vec<Memory>, Vec<MemoryId>), DomainError> {
        let tx = self.db.begin_tenant_read(org).await?;
        let filter = MemoryFilter {
            ids: ids.to_vec(),
            states: vec![MemoryState::Active, MemoryState::Paused, MemoryState::Archived],
            ..Default::default()
        };
        let page = memories::list(&tx, &filter, PageRequest { page: 1, size: ids.len() as u64 }).await?;
        tx.commit().await?;
        let live = page.items;
        let gone = ids.iter().filter(|id| !live.iter().any(|m| m.id == **id)).copied().collect();
        Ok((live, gone))
    }

    async fn documents(&self, org: &OrgId, live: &[Memory]) -> Result<Vec<IndexDoc>, DomainError> {
        let mut docs = Vec::with_capacity(live.len());
        let tx = self.db.begin_tenant_read(org).await?;
        for m in live {
            let mut doc = IndexDoc::from_memory(m);
            let (before, after) = memories::neighbours(&tx, m, self.options.context_window).await?;
            doc.context = before.into_iter().chain(after).collect::<Vec<_>>().join("\n");
            docs.push(doc);
        }
        tx.commit().await?;
        Ok(docs)
    }

    async fn apply_lexical(&self, org: &OrgId, docs: &[IndexDoc], gone: &[MemoryId]) -> Result<(), DomainError> {
        let lexical = &self.indexes.lexical;
        lexical.upsert(docs).await?;
        lexical.delete(org, gone).await?;
        lexical.flush().await?;
        Ok(())
    }

    async fn apply_graph(&self, org: &OrgId, docs: &[IndexDoc], gone: &[MemoryId]) -> Result<(), DomainError> {
        let graph = &self.indexes.graph;
        graph.upsert(docs).await?;
        graph.delete(org, gone).await?;
        graph.flush().await?;
        Ok(())
    }

    async fn apply_vector(&self, org: &OrgId, docs: &[IndexDoc], gone: &[MemoryId]) -> Result<(), String> {
        let (Some(vector), Some(embedder)) = (&self.indexes.vector, &self.indexes.embedder) else {
            return Ok(());
        };
        let texts: Vec<String> = docs
            .iter()
            .map(|d| {
                if self.options.embed_context && !d.context.is_empty() {
                    format!("{}\n{}", d.content, d.context)
                } else {
                    d.content.clone()
                }
            })
            .collect();
        let embeddings =
            if texts.is_empty() { Vec::new() } else { embedder.embed(&texts).await.map_err(|e| e.to_string())? };
        let pairs: Vec<(IndexDoc, Vec<f32>)> = docs.iter().cloned().zip(embeddings).collect();
        vector.upsert(&pairs).await.map_err(|e| e.to_string())?;
        vector.delete(org, gone).await.map_err(|e| e.to_string())?;
        vector.flush().await.map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Enqueues every memory of `orgs` for the named indexes (all when `only`
/// is `None`) without emptying or draining anything, and without opening
/// an index: the indexer of a running server picks them up (a restore under
/// a live server). Returns how many memories were enqueued.
pub async fn requeue(db: &Database, orgs: &[OrgId], only: Option<&[String]>) -> Result<u64, DomainError> {
    let mut enqueued = 0;
    for org in orgs {
        let tx = db.begin_tenant(org).await?;
        enqueued += outbox::enqueue_all(&tx, only).await?;
        tx.commit().await?;
    }
    Ok(enqueued)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(4));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }
}
