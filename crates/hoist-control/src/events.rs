//! Events (5xx answers, crashes, OOM kills, failed starts): stored with the log lines around
//! them, a moment after they happen so the lines on their way to the log are there too, and
//! with the service's secret values masked.

use std::sync::Arc;
use std::time::Duration;

use hoist_core::{InstanceId, ServiceName};
use hoist_store::{LogFilter, LogStream, NewEvent, Store, now_ms};

use crate::mask::Masks;
use crate::tasks::Tasks;

const CONTEXT_LINES: usize = 10;

pub(crate) struct Events {
    store: Arc<Store>,
    masks: Masks,
    /// Each event is stored by a short task of its own, which a stop waits for.
    tasks: Arc<Tasks>,
}

impl Events {
    pub(crate) fn new(store: Arc<Store>, masks: Masks, tasks: Arc<Tasks>) -> Events {
        Events {
            store,
            masks,
            tasks,
        }
    }

    /// Stores an event with the last log lines of its instance (or service) as context,
    /// a moment later so the lines on their way to the log are there too.
    pub(crate) fn record(&self, mut event: NewEvent) {
        // A 5xx event quotes the request's path, which may carry a secret as the access line
        // does; the context lines given here were not through the log hub either.
        let masks = &self.masks;
        if let Some(masked) = masks.apply(&event.service, &event.detail) {
            event.detail = masked;
        }
        for line in &mut event.context {
            if let Some(masked) = masks.apply(&event.service, line) {
                *line = masked;
            }
        }
        let store = self.store.clone();
        self.tasks.spawn("event", async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let filter = LogFilter {
                instance: event.instance.clone(),
                streams: vec![LogStream::Stdout, LogStream::Stderr, LogStream::System],
                tail: Some(CONTEXT_LINES),
                ..LogFilter::default()
            };
            let _ = tokio::task::spawn_blocking(move || {
                if event.context.is_empty() {
                    event.context = store
                        .query_logs(&event.service, &filter)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|l| l.line)
                        .collect();
                }
                if let Err(e) = store.insert_event(&event) {
                    tracing::warn!(error = %e, "recording an event");
                }
            })
            .await;
        });
    }

    /// An instance ended by itself: a crash, or an OOM kill.
    pub(crate) fn instance(
        &self,
        service: &ServiceName,
        deployment: &hoist_core::DeploymentId,
        instance: &InstanceId,
        oom: bool,
        detail: String,
    ) {
        self.record(NewEvent {
            service: service.to_string(),
            ts: now_ms(),
            kind: if oom {
                hoist_core::EventKind::Oom
            } else {
                hoist_core::EventKind::Crash
            },
            instance: Some(instance.to_string()),
            deployment: Some(deployment.to_string()),
            detail,
            context: Vec::new(),
        });
    }
}
