//! Access-log writer: reads are recorded off the request path, in batches.
//! A full queue drops records (and counts them) rather than slowing reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use loci_stores::Database;
use loci_stores::records::AccessRecord;
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
            loop {
                let next = tokio::time::timeout(Self::LINGER, rx.recv()).await;
                let closed = matches!(next, Ok(None));
                let timed_out = next.is_err();
                match next {
                    Ok(Some(Message::Record(r))) => batch.push(r),
                    Ok(Some(Message::Flush(done))) => waiting.push(done),
                    Ok(None) | Err(_) => {}
                }
                let linger_over = timed_out || closed || !waiting.is_empty();
                if !batch.is_empty() && (batch.len() >= Self::BATCH || linger_over) {
                    let records = std::mem::take(&mut batch);
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

    /// Waits until everything queued so far is written (tests, shutdown).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}
