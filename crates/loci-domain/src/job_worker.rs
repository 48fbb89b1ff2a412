//! The workers of the job queue, shared by every job kind (`add_memories`,
//! `index_codebase`): claim due jobs of one kind up to the free slots, run
//! each in a task that keeps extending its lease while it runs (a worker
//! that dies stops extending it, and the job is claimed again when the
//! lease ends), and sleep until woken, the poll interval, or stop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use loci_stores::Database;
use loci_stores::repo::jobs::{self, ClaimedJob};
use tokio::sync::{Notify, Semaphore, watch};

/// How a kind of job is run.
#[derive(Debug, Clone)]
pub(crate) struct Worker {
    pub db: Database,
    pub kind: &'static str,
    pub concurrency: usize,
    pub lease: Duration,
    pub wake: Arc<Notify>,
}

impl Worker {
    /// Runs claimed jobs with `run` until `stop`.
    pub async fn run<F, Fut>(self, poll: Duration, mut stop: watch::Receiver<bool>, run: F)
    where
        F: Fn(ClaimedJob) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let slots = Arc::new(Semaphore::new(self.concurrency.max(1)));
        loop {
            let free = slots.available_permits();
            let claimed = if free == 0 {
                Vec::new()
            } else {
                match jobs::claim(&self.db, self.kind, free as u64, self.lease).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, kind = self.kind, "could not claim jobs");
                        Vec::new()
                    }
                }
            };
            for job in claimed {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (db, lease, id) = (self.db.clone(), self.lease, job.id);
                let work = run(job);
                tokio::spawn(async move {
                    leased(&db, id, lease, work).await;
                    drop(permit);
                });
            }
            tokio::select! {
                _ = stop.changed() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }
}

/// Runs `work`, extending job `id`'s lease every third of it meanwhile.
async fn leased(db: &Database, id: loci_core::JobId, lease: Duration, work: impl Future<Output = ()>) {
    tokio::pin!(work);
    let mut beat = tokio::time::interval(lease / 3);
    beat.tick().await;
    loop {
        tokio::select! {
            () = &mut work => return,
            _ = beat.tick() => {
                if let Err(e) = jobs::available_after(db, id, lease).await {
                    tracing::warn!(error = %e, job = %id, "could not extend a job's lease");
                }
            }
        }
    }
}
