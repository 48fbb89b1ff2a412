//! The tasks a serving process runs next to its requests, started together
//! and stopped together.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Services;

/// How often the planner statistics are refreshed as data grows (SQLite and
/// PostgreSQL, `Database::optimize`). Each run is bounded and skips tables
/// that did not grow, so it can run often: a tenant that grows from nothing to 100,000 memories in
/// an hour gets statistics within a minute, not after the hour.
const OPTIMIZE_EVERY: Duration = Duration::from_secs(60);
/// How often deleted memories past their retention are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// How often queued jobs are looked for when no enqueue in this process
/// wakes the runner (jobs queued by another process, retries, leases run
/// out after a crash).
const JOB_POLL: Duration = Duration::from_secs(1);

/// Which background tasks to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tasks {
    /// Drain the outbox into the indexes (every process that accepts writes
    /// and should make them searchable).
    pub indexer: bool,
    /// Refresh SQLite's planner statistics hourly (a no-op on PostgreSQL,
    /// whose autovacuum does it).
    pub optimize: bool,
    /// Run queued jobs (asynchronous `infer` adds).
    pub jobs: bool,
}

impl Tasks {
    /// A server: every task.
    pub const SERVER: Self = Self { indexer: true, optimize: true, jobs: true };
    /// One agent over stdio: what makes its writes searchable and its jobs
    /// done.
    pub const STDIO: Self = Self { indexer: true, optimize: false, jobs: true };
}

/// Running background tasks. [`Background::shutdown`] stops them, waits for
/// them and flushes the access log; dropping it stops them without waiting
/// (what the indexer has not completed stays in the outbox).
#[derive(Debug)]
pub struct Background {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    services: Services,
}

impl Background {
    /// Starts `tasks` on the current runtime.
    pub fn start(services: &Services, tasks: Tasks) -> Self {
        let (stop, stopped) = watch::channel(false);
        let mut handles = Vec::new();
        if tasks.indexer {
            let poll = Duration::from_millis(services.settings.search.indexer_poll_ms);
            handles.push(tokio::spawn(services.indexer.clone().run(poll, stopped.clone())));
        }
        if tasks.jobs {
            handles.push(tokio::spawn(services.infer.clone().run_jobs(JOB_POLL, stopped.clone())));
            handles.push(tokio::spawn(services.code.clone().run_jobs(JOB_POLL, stopped.clone())));
        }
        if tasks.optimize {
            handles.push(tokio::spawn(purge_periodically(services.clone(), stopped.clone())));
            handles.push(tokio::spawn(optimize_periodically(services.clone(), stopped)));
        }
        Self { stop, tasks: handles, services: services.clone() }
    }

    /// Stops every task, waits for it to finish its current step, then
    /// writes the access-log records still queued.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "a background task ended abnormally");
            }
        }
        self.services.access_log().flush().await;
    }
}

/// Hard-deletes deleted memories past `gdpr.deleted_retention_days`, once
/// at start and then every hour; a failure is logged and tried again.
async fn purge_periodically(services: Services, mut stop: watch::Receiver<bool>) {
    let retention = Duration::from_secs(services.settings.gdpr.deleted_retention_days * 86_400);
    let mut every = tokio::time::interval(PURGE_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {
                if let Err(e) = services.gdpr.purge_deleted(retention).await {
                    tracing::warn!(error = %e, "purge of deleted memories failed");
                }
            }
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
        }
    }
}

async fn optimize_periodically(services: Services, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(OPTIMIZE_EVERY);
    every.tick().await;
    loop {
        tokio::select! {
            _ = every.tick() => {
                if let Err(e) = services.database.optimize().await {
                    tracing::warn!(error = %e, "database optimize failed");
                }
            }
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
        }
    }
}
