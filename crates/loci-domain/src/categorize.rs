//! Automatic categorisation: new memories are queued for a [`Categorizer`]
//! (an LLM behind a trait) and the names it returns are added to the
//! memory's client-supplied categories. Runs off the request path: a slow,
//! failing or absent model never delays or fails a write.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use loci_core::{MemoryId, OrgId};
use loci_stores::Database;
use tokio::sync::mpsc;

/// Something that proposes category names for a text.
#[async_trait]
pub trait Categorizer: Send + Sync + std::fmt::Debug {
    async fn categorize(&self, text: &str) -> Result<Vec<String>, String>;
}

#[derive(Debug)]
struct Job {
    org: OrgId,
    memory: MemoryId,
    text: String,
}

/// Handle to the background categorisation worker.
#[derive(Debug, Clone)]
pub struct AutoCategorizer {
    tx: mpsc::Sender<Job>,
    stats: Arc<Stats>,
}

/// Counters of the worker (also useful to tests).
#[derive(Debug, Default)]
pub struct Stats {
    pub categorized: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
}

impl AutoCategorizer {
    const QUEUE: usize = 1_000;

    /// Starts the worker on the current runtime.
    pub fn start(db: Database, categorizer: Arc<dyn Categorizer>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Job>(Self::QUEUE);
        let stats = Arc::new(Stats::default());
        let worker_stats = stats.clone();
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                match categorizer.categorize(&job.text).await {
                    Ok(names) if !names.is_empty() => {
                        let result = async {
                            let tx = db.begin_tenant(&job.org).await?;
                            loci_stores::repo::categories::assign(&tx, job.memory, &names).await?;
                            tx.commit().await
                        }
                        .await;
                        match result {
                            Ok(()) => {
                                worker_stats.categorized.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                worker_stats.failed.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(error = %e, "could not store automatic categories");
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        worker_stats.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, "automatic categorisation failed; the memory keeps its own categories");
                    }
                }
            }
        });
        Self { tx, stats }
    }

    /// Queues a memory; never waits (a full queue drops the job).
    pub fn enqueue(&self, org: &OrgId, memory: MemoryId, text: &str) {
        let job = Job { org: org.clone(), memory, text: text.to_owned() };
        if self.tx.try_send(job).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}
