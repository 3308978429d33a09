//! The gateway's side of the access log: a bounded, non-blocking hand-off of access
//! records to the control plane's writer (see `observe`). A full queue drops the batch and
//! counts it; the gateway never waits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hoist_gateway::{AccessLog, AccessRecord};
use tokio::sync::{mpsc, oneshot};

/// Batches of access records waiting for the writer (a gateway worker hands one over every
/// 50 ms, or at 1024 records); beyond this they are dropped (and counted).
const ACCESS_QUEUE: usize = 256;

pub(crate) struct AccessQueue {
    tx: mpsc::Sender<AccessItem>,
    dropped: AtomicU64,
}

pub(crate) enum AccessItem {
    Batch(Vec<AccessRecord>),
    /// Answered once the batches before it are on their way to the log hub.
    Passed(oneshot::Sender<()>),
}

impl AccessQueue {
    /// The queue, and its receiving end for the writer.
    pub(crate) fn new() -> (Arc<AccessQueue>, mpsc::Receiver<AccessItem>) {
        let (tx, rx) = mpsc::channel(ACCESS_QUEUE);
        let queue = Arc::new(AccessQueue {
            tx,
            dropped: AtomicU64::new(0),
        });
        (queue, rx)
    }

    /// Returns once the batches handed over before the call have passed the writer.
    pub(crate) async fn passed(&self) {
        let (done, passed) = oneshot::channel();
        if self.tx.send(AccessItem::Passed(done)).await.is_ok() {
            let _ = passed.await;
        }
    }

    /// Records dropped since the last call.
    pub(crate) fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Ordering::Relaxed)
    }
}

impl AccessLog for AccessQueue {
    fn record(&self, batch: Vec<AccessRecord>) {
        if let Err(e) = self.tx.try_send(AccessItem::Batch(batch)) {
            let lost = match e {
                mpsc::error::TrySendError::Full(AccessItem::Batch(b))
                | mpsc::error::TrySendError::Closed(AccessItem::Batch(b)) => b.len(),
                _ => 0,
            };
            self.dropped.fetch_add(lost as u64, Ordering::Relaxed);
        }
    }
}
