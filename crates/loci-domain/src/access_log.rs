//! Access-log writer: reads are recorded off the request path, in batches.
//! A full queue drops records (and counts them) rather than slowing reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use loci_core::model::AccessRecord;
use loci_stores::Database;
use tokio::sync::{mpsc, oneshot};

enum Message {
    Record(AccessRecord),
    Flush(oneshot::Sender<()>),
}

/// Handle to the background writer; cheap to clone.
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: mpsc::Sender<Message>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Message::Record(_) => "Record",
            Message::Flush(_) => "Flush",
        })
    }
}

impl AccessLog {
    const QUEUE: usize = 10_000;
    const BATCH: usize = 500;
    const LINGER: Duration = Duration::from_millis(200);

    /// Starts the writer task on the current runtime.
    pub fn start(db: Database) -> Self {
        let (tx, mut rx) = mpsc::channel::<Message>(Self::QUEUE);
        tokio::spawn(async move {
            let mut batch: Vec<AccessRecord> = Vec::new();
            let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
            // A batch is written when full, when its first record has waited
            // LINGER, on a flush, or when the last sender is gone.
            let mut deadline: Option<tokio::time::Instant> = None;
            loop {
                let next = match deadline {
                    Some(at) => tokio::time::timeout_at(at, rx.recv()).await.ok(),
                    None => Some(rx.recv().await),
                };
                let closed = matches!(next, Some(None));
                match next {
                    Some(Some(Message::Record(r))) => {
                        if batch.is_empty() {
                            deadline = Some(tokio::time::Instant::now() + Self::LINGER);
                        }
                        batch.push(r);
                    }
                    Some(Some(Message::Flush(done))) => waiting.push(done),
                    Some(None) | None => {}
                }
                let due = deadline.is_some_and(|at| tokio::time::Instant::now() >= at);
                if !batch.is_empty() && (batch.len() >= Self::BATCH || due || closed || !waiting.is_empty()) {
                    let records = std::mem::take(&mut batch);
                    deadline = None;
                    let n = records.len();
                    if let Err(e) = loci_stores::repo::access_logs::record(&db, records).await {
                        tracing::warn!(error = %e, records = n, "could not write access-log records");
                    }
                }
                for done in waiting.drain(..) {
                    let _ = done.send(());
                }
                if closed {
                    break;
                }
            }
        });
        Self { tx, dropped: Arc::new(AtomicU64::new(0)) }
    }

    /// Queues one read; never waits.
    pub fn record(&self, record: AccessRecord) {
        if self.tx.try_send(Message::Record(record)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until everything queued so far is written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}
