//! The log hub: every line (build output, app output, Hoist's own notes) goes through one
//! writer task that stores it in batches and then tells live followers, so a follower never
//! sees a line that is not yet durable and the app's pipe is never blocked on SQLite. The
//! writer masks each service's secret values in its lines (see [`crate::mask`]) before they
//! are stored or shown, whichever way they came in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hoist_store::{LogLine, NewLogLine, Store};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::mask::Masks;
use crate::tasks::Tasks;

/// What followers of logs and deployments receive.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Log(LogLine),
    Deployment {
        id: String,
        service: String,
        state: String,
        reason: Option<String>,
        url: Option<String>,
    },
}

/// Lines and events share one queue so followers see them in the order they happened: a
/// deployment's "failed" event never overtakes the build line that explains it.
enum Item {
    Line(NewLogLine),
    /// Many lines in one item: the access log's batches.
    Lines(Vec<NewLogLine>),
    Event(Event),
    /// Answered once everything queued before it is stored.
    Flushed(oneshot::Sender<()>),
    /// The last item: the writer stores what came before and ends.
    Close,
}

#[derive(Clone)]
pub struct LogHub {
    tx: mpsc::Sender<Item>,
    events: broadcast::Sender<Event>,
    /// Lines dropped per service because the writer was a full queue behind; the writer
    /// turns the counts into a line of their own.
    dropped: Arc<Mutex<HashMap<String, u64>>>,
    masks: Masks,
}

const BATCH: usize = 512;

impl LogHub {
    /// Starts the writer as a task of `tasks`; it ends at [`LogHub::close`].
    pub(crate) fn start(store: Arc<Store>, tasks: &Tasks) -> LogHub {
        let (tx, mut rx) = mpsc::channel::<Item>(16 * 1024);
        let (events, _) = broadcast::channel(16 * 1024);
        let out = events.clone();
        let dropped: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
        let counts = dropped.clone();
        let masks = Masks::default();
        let mask = masks.clone();
        tasks.spawn("log writer", async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                let mut lines = Vec::with_capacity(batch.len());
                let lost: Vec<(String, u64)> = counts
                    .lock()
                    .map(|mut m| m.drain().collect())
                    .unwrap_or_default();
                for (service, n) in lost {
                    lines.push(NewLogLine {
                        service,
                        deployment: None,
                        instance: None,
                        stream: hoist_store::LogStream::System,
                        ts: hoist_store::now_ms(),
                        line: format!(
                            "{n} log lines were dropped: they came faster than they could be stored"
                        ),
                    });
                }
                for item in batch.drain(..) {
                    match item {
                        Item::Line(l) => lines.push(l),
                        Item::Lines(many) => lines.extend(many),
                        Item::Event(e) => {
                            flush(&store, &out, &mask, std::mem::take(&mut lines)).await;
                            let _ = out.send(e);
                        }
                        Item::Flushed(done) => {
                            flush(&store, &out, &mask, std::mem::take(&mut lines)).await;
                            let _ = done.send(());
                        }
                        Item::Close => {
                            flush(&store, &out, &mask, std::mem::take(&mut lines)).await;
                            return;
                        }
                    }
                }
                flush(&store, &out, &mask, lines).await;
            }
        });
        LogHub {
            tx,
            events,
            dropped,
            masks,
        }
    }

    /// The secret values masked in each service's lines; kept current by whoever changes
    /// them (the service env when it is stored, a deploy's `--env` flags while it runs).
    pub fn masks(&self) -> &Masks {
        &self.masks
    }

    pub async fn write(&self, line: NewLogLine) {
        let _ = self.tx.send(Item::Line(line)).await;
    }

    /// Never waits: an app writing faster than lines can be stored must not block on its
    /// pipe. A line that does not fit the queue is dropped and counted; the count is written
    /// to the service's log.
    pub fn try_write(&self, line: NewLogLine) {
        if let Err(mpsc::error::TrySendError::Full(Item::Line(l))) =
            self.tx.try_send(Item::Line(line))
            && let Ok(mut m) = self.dropped.lock()
        {
            *m.entry(l.service).or_default() += 1;
        }
    }

    /// [`LogHub::try_write`] for many lines in one hand-over.
    pub fn try_write_many(&self, lines: Vec<NewLogLine>) {
        if lines.is_empty() {
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(Item::Lines(lost))) =
            self.tx.try_send(Item::Lines(lines))
            && let Ok(mut m) = self.dropped.lock()
        {
            for l in lost {
                *m.entry(l.service).or_default() += 1;
            }
        }
    }

    /// Returns once every line written before the call is stored: a stopping server waits on
    /// it, so the lines of its last moments are not lost with the process.
    pub async fn flushed(&self) {
        let (done, stored) = oneshot::channel();
        if self.tx.send(Item::Flushed(done)).await.is_ok() {
            let _ = stored.await;
        }
    }

    /// Ends the writer once what was written before is stored; later lines are dropped.
    pub(crate) async fn close(&self) {
        let _ = self.tx.send(Item::Close).await;
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Queued behind the lines written before it.
    pub fn announce(&self, event: Event) {
        if let Err(mpsc::error::TrySendError::Full(Item::Event(e))) =
            self.tx.try_send(Item::Event(event))
        {
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(Item::Event(e)).await;
            });
        }
    }
}

async fn flush(
    store: &Arc<Store>,
    out: &broadcast::Sender<Event>,
    masks: &Masks,
    mut lines: Vec<NewLogLine>,
) {
    if lines.is_empty() {
        return;
    }
    // Before anything keeps the line: the database, its WAL, the access log's segments and
    // every follower see the masked text only.
    masks.apply_all(lines.iter_mut().map(|l| (l.service.as_str(), &mut l.line)));
    let store = store.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let ids = store.append_logs(&lines);
        (lines, ids)
    })
    .await;
    match stored {
        Ok((lines, Ok(ids))) => {
            // Nobody follows: no event per line to build and drop (the access log's lines
            // come at the gateway's rate).
            if out.receiver_count() == 0 {
                return;
            }
            // A line not stored (its service was deleted meanwhile) is not shown either.
            for (l, id) in lines.into_iter().zip(ids) {
                let Some(id) = id else { continue };
                let _ = out.send(Event::Log(LogLine {
                    id,
                    service: l.service,
                    deployment: l.deployment,
                    instance: l.instance,
                    stream: l.stream,
                    ts: l.ts,
                    line: l.line,
                }));
            }
        }
        Ok((_, Err(e))) => tracing::error!(error = %e, "storing log lines"),
        Err(e) => tracing::error!(error = %e, "log writer task"),
    }
}
