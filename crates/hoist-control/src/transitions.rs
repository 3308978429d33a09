//! Deployment state changes, control side: every change goes through [`Platform::transition`]
//! or [`Platform::go_live`], which write it through the store's checked path
//! ([`hoist_store::Store::transition_deployment`]), log a refused one as the bug it is, and
//! announce what changed on the lifecycle's channel.

use hoist_core::{DeploymentId, DeploymentState, ServiceName};
use hoist_store::{StateChange, StoreError};
use tokio::sync::broadcast;

use crate::Platform;
use crate::lifecycle::Change;

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
