//! Deployment states: the only code that writes `deployments.state`.
//!
//! Every change names the state its caller saw (`from`) and the one it wants (`to`). It is
//! checked against the lifecycle ([`DeploymentState::transition`]) before anything is
//! written, then written as a conditional update (`WHERE id = ? AND state = <from>`): of two
//! writers that saw the same state, one wins and the other gets
//! [`StoreError::StateMoved`] with the row as the winner left it. Either refusal changes
//! nothing.

use hoist_core::{DeploymentId, DeploymentState, ServiceName};
use rusqlite::{OptionalExtension, Transaction, params};

use super::{Store, parse};
use crate::{StoreError, now_ms};

/// One deployment state change, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    pub id: DeploymentId,
    pub from: DeploymentState,
    pub to: DeploymentState,
}

impl Store {
    /// Records a new deployment as queued.
    pub fn insert_deployment(
        &self,
        id: &DeploymentId,
        service: &ServiceName,
        source: &str,
        branch: Option<&str>,
        request: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        self.conn().execute(
            "INSERT INTO deployments (id, service, state, source, branch, request, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            params![
                id.as_str(),
                service.as_str(),
                DeploymentState::Queued.as_str(),
                source,
                branch,
                request.to_string(),
                now
            ],
        )?;
        Ok(())
    }

    /// Moves a deployment from `from` to `to`, recording the step timing; leaving the
    /// pipeline (live, failed, cancelled) also records the finish time, and `reason` (kept
    /// for failures and cancellations) is stored when given.
    pub fn transition_deployment(
        &self,
        id: &DeploymentId,
        from: DeploymentState,
        to: DeploymentState,
        reason: Option<&str>,
    ) -> Result<StateChange, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let change = transition(&tx, id, from, to, reason, now_ms())?;
        tx.commit()?;
        Ok(change)
    }

    /// Makes `deployment` (now in state `from`: starting for a deploy, superseded for a
    /// rollback) the service's live one; the deployment live before it becomes superseded.
    /// One transaction through the checked path, so there is never a moment with two live
    /// deployments on record, and a refused change leaves both and the service as they were.
    /// Returns the changes in the order they were made.
    pub fn set_live(
        &self,
        name: &ServiceName,
        deployment: &DeploymentId,
        from: DeploymentState,
    ) -> Result<Vec<StateChange>, StoreError> {
        let now = now_ms();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let previous: Option<String> = tx
            .query_row(
                "SELECT live_deployment FROM services WHERE name = ?1",
                params![name.as_str()],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        let mut changes = Vec::with_capacity(2);
        let replaced = previous.filter(|p| p != deployment.as_str());
        // When and from what the service switched: the replaced deployment's hashed static
        // files keep answering for a while after this moment (migration 13).
        tx.execute(
            "UPDATE services SET switched_at = ?2, switched_from = ?3 WHERE name = ?1",
            params![name.as_str(), now, replaced.as_deref()],
        )?;
        if let Some(prev) = replaced {
            let prev: DeploymentId = parse(prev, "deployment id")?;
            changes.push(transition(
                &tx,
                &prev,
                DeploymentState::Live,
                DeploymentState::Superseded,
                None,
                now,
            )?);
        }
        changes.push(transition(
            &tx,
            deployment,
            from,
            DeploymentState::Live,
            None,
            now,
        )?);
        tx.execute(
            "UPDATE services SET live_deployment = ?2, updated_at = ?3 WHERE name = ?1",
            params![name.as_str(), deployment.as_str(), now],
        )?;
        if from == DeploymentState::Superseded {
            // Live again: a rollback.
            tx.execute(
                "UPDATE deployments SET rolled_back_at = ?2 WHERE id = ?1",
                params![deployment.as_str(), now],
            )?;
        }
        tx.commit()?;
        Ok(changes)
    }

    /// Fails every deployment that was between queued and starting: what a restart
    /// interrupted (nothing of their pipeline runs any more). One transaction.
    pub fn fail_interrupted(&self, reason: &str) -> Result<Vec<StateChange>, StoreError> {
        let now = now_ms();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let in_progress: Vec<(String, String)> = {
            let mut stmt = tx.prepare(
                "SELECT id, state FROM deployments
                 WHERE state IN ('queued','fetching','building','starting') ORDER BY created_at",
            )?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?
        };
        let mut changes = Vec::with_capacity(in_progress.len());
        for (id, state) in in_progress {
            let id: DeploymentId = parse(id, "deployment id")?;
            let from: DeploymentState = parse(state, "deployment state")?;
            changes.push(transition(
                &tx,
                &id,
                from,
                DeploymentState::Failed,
                Some(reason),
                now,
            )?);
        }
        tx.commit()?;
        Ok(changes)
    }
}

/// The checked, conditional write of one state change, inside the caller's transaction.
fn transition(
    tx: &Transaction<'_>,
    id: &DeploymentId,
    from: DeploymentState,
    to: DeploymentState,
    reason: Option<&str>,
    now: i64,
) -> Result<StateChange, StoreError> {
    if from.transition(to).is_err() {
        return Err(StoreError::RefusedTransition {
            id: id.clone(),
            from,
            to,
        });
    }
    // Going live for the first time, failing or being cancelled ends the pipeline; a
    // rollback (superseded -> live) keeps the finish time of the build that made it.
    let ends_pipeline = from.is_in_progress() && !to.is_in_progress();
    let written = tx.execute(
        "UPDATE deployments SET state = ?3, updated_at = ?4,
                failure_reason = coalesce(?5, failure_reason),
                finished_at = CASE WHEN ?6 THEN ?4 ELSE finished_at END
         WHERE id = ?1 AND state = ?2",
        params![
            id.as_str(),
            from.as_str(),
            to.as_str(),
            now,
            reason,
            ends_pipeline
        ],
    )?;
    if written == 0 {
        let found: Option<String> = tx
            .query_row(
                "SELECT state FROM deployments WHERE id = ?1",
                params![id.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        return Err(StoreError::StateMoved {
            id: id.clone(),
            expected: from,
            found: found.map(|s| parse(s, "deployment state")).transpose()?,
        });
    }
    if from.is_in_progress() {
        // The running step ends with the deployment's failure; otherwise it is done. (Marking
        // by finish time afterwards would also hit steps that ended in the same millisecond.)
        let outcome = match to {
            DeploymentState::Failed | DeploymentState::Cancelled => to.as_str(),
            _ => "done",
        };
        tx.execute(
            "UPDATE deployment_steps SET state = ?3, finished_at = ?2
             WHERE deployment = ?1 AND finished_at IS NULL",
            params![id.as_str(), now, outcome],
        )?;
    }
    if to.is_in_progress() {
        tx.execute(
            "INSERT OR REPLACE INTO deployment_steps (deployment, step, state, started_at)
             VALUES (?1, ?2, 'running', ?3)",
            params![id.as_str(), to.as_str(), now],
        )?;
    }
    Ok(StateChange {
        id: id.clone(),
        from,
        to,
    })
}
