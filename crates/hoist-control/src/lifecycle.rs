//! The channel deployment changes are announced on ([`Lifecycle`]): followers of a deployment
//! (the API's deployment stream) read it instead of polling the database. The end of a
//! deployment's pipeline is announced there too, since "live" is recorded before the pipeline
//! is over. Changes are written and announced by `transitions.rs`; this part holds no
//! platform, so the platform can own it.

use std::collections::HashMap;
use std::sync::Mutex;

use hoist_core::{DeploymentId, ServiceName};
use hoist_store::StateChange;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// What followers of deployments are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A deployment's state was written.
    State {
        service: ServiceName,
        change: StateChange,
    },
    /// The pipeline of `id` is over: it writes nothing more, to its state or its log.
    PipelineOver {
        service: ServiceName,
        id: DeploymentId,
    },
}

/// Why a deployment was cancelled: the text of its `failure_reason` after "cancelled: ".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    NewerDeploy,
    Rollback,
    ServerStopping,
    ServiceDeleted,
}

impl std::fmt::Display for CancelReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CancelReason::NewerDeploy => "a newer deployment of this service was started",
            CancelReason::Rollback => "a rollback of this service was started",
            CancelReason::ServerStopping => "the server is stopping",
            CancelReason::ServiceDeleted => "the service was deleted",
        })
    }
}

/// The channel deployment changes are announced on, and why pipelines were cancelled.
pub struct Lifecycle {
    changes: broadcast::Sender<Change>,
    /// Set by whoever cancels a pipeline, read by the pipeline as it records the outcome.
    cancelled: Mutex<HashMap<DeploymentId, CancelReason>>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle::new()
    }
}

impl Lifecycle {
    pub fn new() -> Lifecycle {
        // A follower that falls this far behind looks at the database again (see the API's
        // deployment stream); changes come at most a handful per deploy.
        let (changes, _) = broadcast::channel(1024);
        Lifecycle {
            changes,
            cancelled: Mutex::default(),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    pub(crate) fn announce(&self, change: Change) {
        // No follower is no error.
        let _ = self.changes.send(change);
    }

    fn reasons(&self) -> std::sync::MutexGuard<'_, HashMap<DeploymentId, CancelReason>> {
        self.cancelled.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cancels the pipeline of `id` for `why`; the first reason given is the one recorded.
    pub(crate) fn cancel(&self, id: &DeploymentId, token: &CancellationToken, why: CancelReason) {
        self.reasons().entry(id.clone()).or_insert(why);
        token.cancel();
    }

    /// Why `id` was cancelled, forgetting it: the pipeline asks once, as it ends.
    pub(crate) fn take_reason(&self, id: &DeploymentId) -> Option<CancelReason> {
        self.reasons().remove(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancellation_keeps_its_first_reason_until_taken() {
        let lifecycle = Lifecycle::new();
        let id = DeploymentId::generate();
        let token = CancellationToken::new();
        lifecycle.cancel(&id, &token, CancelReason::Rollback);
        lifecycle.cancel(&id, &token, CancelReason::NewerDeploy);
        assert!(token.is_cancelled());
        assert_eq!(lifecycle.take_reason(&id), Some(CancelReason::Rollback));
        assert_eq!(lifecycle.take_reason(&id), None);
    }
}
