//! The platform's background loops (the scaler, metrics sampling, retention, the disk gauge,
//! the log index, the log and access writers) as named tasks: each watches one stop signal,
//! and a clean stop waits until every one has ended, so none is cut off halfway through a
//! database write or left running after the platform is gone. (Pingora's background
//! services are the model: a task per service, told to stop by one shared signal.)

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A set of named background tasks with one stop signal.
pub(crate) struct Tasks {
    stop: CancellationToken,
    tracker: TaskTracker,
    /// How many tasks of each name run now.
    running: Arc<Mutex<BTreeMap<&'static str, usize>>>,
}

/// Counts a task as running until it ends (or panics).
struct Running {
    name: &'static str,
    running: Arc<Mutex<BTreeMap<&'static str, usize>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = running.get_mut(self.name) {
            *n -= 1;
            if *n == 0 {
                running.remove(self.name);
            }
        }
        tracing::debug!(task = self.name, "background task ended");
    }
}

impl Tasks {
    /// Tasks stopped by `stop` (or by [`Tasks::stop`]).
    pub(crate) fn new(stop: CancellationToken) -> Tasks {
        Tasks {
            stop,
            tracker: TaskTracker::new(),
            running: Arc::default(),
        }
    }

    /// The signal a task must watch to end.
    pub(crate) fn stopping(&self) -> &CancellationToken {
        &self.stop
    }

    /// Runs `task` in the background under `name`, until it returns; it must return soon
    /// after the stop signal.
    pub(crate) fn spawn<F>(&self, name: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        *self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name)
            .or_default() += 1;
        let guard = Running {
            name,
            running: self.running.clone(),
        };
        self.tracker.spawn(async move {
            let _guard = guard;
            task.await;
        });
    }

    /// The names of the tasks running now (each once).
    pub(crate) fn running(&self) -> Vec<&'static str> {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect()
    }

    /// Signals every task to stop and waits until all have ended.
    pub(crate) async fn stop(&self) {
        tracing::debug!(tasks = ?self.running(), "stopping background tasks");
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn stop_waits_for_every_task_to_end() {
        let tasks = Tasks::new(CancellationToken::new());
        let finished = Arc::new(AtomicBool::new(false));
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        {
            let stop = tasks.stopping().clone();
            let finished = finished.clone();
            // A loop that, once told to stop, still has a last write to finish.
            tasks.spawn("slow", async move {
                stop.cancelled().await;
                let _ = released.await;
                finished.store(true, Ordering::SeqCst);
            });
        }
        let stop = tasks.stopping().clone();
        tasks.spawn("quick", async move { stop.cancelled().await });
        assert_eq!(tasks.running(), vec!["quick", "slow"]);

        let stopping = tasks.stop();
        tokio::pin!(stopping);
        // Paused time: an hour passes without the slow task ending, and stop is still waiting.
        assert!(
            tokio::time::timeout(Duration::from_secs(3600), &mut stopping)
                .await
                .is_err(),
            "stop returned while a task was still running"
        );
        assert_eq!(tasks.running(), vec!["slow"]);
        let _ = release.send(());
        stopping.await;
        assert!(finished.load(Ordering::SeqCst));
        assert!(tasks.running().is_empty());
    }
}
