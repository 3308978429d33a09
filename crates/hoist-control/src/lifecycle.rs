//! The control side of deployment states: every change goes through [`Platform::transition`]
//! or [`Platform::go_live`], which write it through the store's checked path
//! ([`hoist_store::Store::transition_deployment`]), log a refused one as the bug it is, and
//! announce what changed on a channel ([`Lifecycle`]) that followers of a deployment (the
//! API's deployment stream) read instead of polling the database. The end of a deployment's
//! pipeline is announced there too, since "live" is recorded before the pipeline is over.

use std::collections::HashMap;
use std::sync::Mutex;

use hoist_core::{DeploymentId, DeploymentState, ServiceName};
use hoist_store::{StateChange, StoreError};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::Platform;

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

impl Platform {
    /// Deployment changes as they are written, and the ends of pipelines.
    pub fn deployment_changes(&self) -> broadcast::Receiver<Change> {
        self.lifecycle.subscribe()
    }

    /// Moves deployment `id` of `service` from `from` to `to` (the one way to change a state
    /// outside going live), and announces it.
    pub(crate) fn transition(
        &self,
        service: &ServiceName,
        id: &DeploymentId,
        from: DeploymentState,
        to: DeploymentState,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let change = self
            .store
            .transition_deployment(id, from, to, reason)
            .inspect_err(refused)?;
        self.changed(service, change, reason);
        Ok(())
    }

    /// Makes `id` (now `from`: starting, or superseded for a rollback) the service's live
    /// deployment, superseding the one before it, and announces both changes.
    pub(crate) fn go_live(
        &self,
        service: &ServiceName,
        id: &DeploymentId,
        from: DeploymentState,
    ) -> Result<(), StoreError> {
        let changes = self
            .store
            .set_live(service, id, from)
            .inspect_err(refused)?;
        for change in changes {
            self.changed(service, change, None);
        }
        Ok(())
    }

    /// Announces that the pipeline of `id` is over.
    pub(crate) fn pipeline_over(&self, service: &ServiceName, id: &DeploymentId) {
        self.lifecycle.announce(Change::PipelineOver {
            service: service.clone(),
            id: id.clone(),
        });
    }

    fn changed(&self, service: &ServiceName, change: StateChange, reason: Option<&str>) {
        tracing::debug!(
            deployment = %change.id,
            service = %service,
            from = %change.from,
            to = %change.to,
            "deployment state"
        );
        // Also on the log hub, behind the lines written before it, for its followers.
        self.announce(&change.id, service, change.to, reason.map(str::to_string));
        self.lifecycle.announce(Change::State {
            service: service.clone(),
            change,
        });
    }
}

/// A refused change is a bug in whoever asked for it: the lifecycle or the state it saw was
/// wrong. It is logged with both states, and nothing was written.
fn refused(e: &StoreError) {
    match e {
        StoreError::RefusedTransition { id, from, to } => {
            tracing::error!(deployment = %id, %from, %to, "refused deployment state change");
        }
        // Deleted with its service while its pipeline ran: expected, not a bug.
        StoreError::StateMoved {
            id, found: None, ..
        } => {
            tracing::info!(deployment = %id, "deployment gone before its state was recorded");
        }
        StoreError::StateMoved {
            id,
            expected,
            found: Some(found),
        } => {
            tracing::error!(
                deployment = %id,
                from = %expected,
                found = %found,
                "deployment state change lost: the deployment was not in the state seen"
            );
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DeployError;

    #[test]
    fn a_cancellation_says_why_and_the_first_reason_stays() {
        let lifecycle = Lifecycle::new();
        let id = DeploymentId::generate();
        let token = CancellationToken::new();
        lifecycle.cancel(&id, &token, CancelReason::Rollback);
        lifecycle.cancel(&id, &token, CancelReason::NewerDeploy);
        assert!(token.is_cancelled());
        let why = lifecycle.take_reason(&id).expect("a reason");
        assert_eq!(
            DeployError::Cancelled(why).to_string(),
            "cancelled: a rollback of this service was started"
        );
        assert_eq!(lifecycle.take_reason(&id), None);
        // The texts users see (and the e2e tests look for) in failure_reason.
        assert_eq!(
            DeployError::Cancelled(CancelReason::NewerDeploy).to_string(),
            "cancelled: a newer deployment of this service was started"
        );
        assert_eq!(
            DeployError::Cancelled(CancelReason::ServerStopping).to_string(),
            "cancelled: the server is stopping"
        );
    }
}
