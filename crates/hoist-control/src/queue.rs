//! The services' push queues (see `autodeploy.rs`): at most one deploy waiting per service,
//! a newer one replacing it. Kept apart from the platform, which holds them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hoist_core::{DeploymentTrigger, ServiceName};
use tokio::sync::Notify;

/// A deploy waiting in a service's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Job {
    pub(crate) commit: String,
    pub(crate) trigger: DeploymentTrigger,
}

#[derive(Default)]
pub(crate) struct Queue {
    waiting: Mutex<Option<Job>>,
    wake: Notify,
}

impl Queue {
    /// Puts `job` in the queue; the one it replaced, if one was waiting.
    pub(crate) fn put(&self, job: Job) -> Option<Job> {
        let replaced = self
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(job);
        self.wake.notify_one();
        replaced
    }

    /// Waits until a job was put (since the last wait ended).
    pub(crate) async fn woken(&self) {
        self.wake.notified().await
    }

    pub(crate) fn take(&self) -> Option<Job> {
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

/// One queue per service that had a push.
#[derive(Default)]
pub(crate) struct Queues {
    queues: Mutex<HashMap<ServiceName, Arc<Queue>>>,
}

impl Queues {
    /// The service's queue, and whether it was made now (its worker must be started).
    pub(crate) fn get(&self, name: &ServiceName) -> (Arc<Queue>, bool) {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        match queues.get(name) {
            Some(q) => (q.clone(), false),
            None => {
                let q = Arc::new(Queue::default());
                queues.insert(name.clone(), q.clone());
                (q, true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(commit: &str) -> Job {
        Job {
            commit: commit.into(),
            trigger: DeploymentTrigger::Poll,
        }
    }

    #[tokio::test]
    async fn a_newer_job_replaces_the_waiting_one_and_wakes_the_worker_once() {
        let q = Queue::default();
        assert_eq!(q.put(job("a")), None);
        assert_eq!(q.put(job("b")), Some(job("a")));
        tokio::time::timeout(std::time::Duration::from_secs(5), q.woken())
            .await
            .expect("a put wakes the worker");
        assert_eq!(q.take(), Some(job("b")));
        assert_eq!(q.take(), None);
        let queues = Queues::default();
        let name: ServiceName = "web".parse().unwrap();
        assert!(queues.get(&name).1);
        assert!(!queues.get(&name).1);
    }
}
