//! A service's environment variables: sealed at rest under the master key, changed without a
//! rebuild, and rolled out by replacing running instances the way a deploy does.
//!
//! An instance's environment is its deployment's file env (from `hoist.toml` or
//! `leapcell.yaml`, part of the repository) overlaid by the service env (`hoist env set`, and
//! `--env` flags of deploys that went live). Only the service env is secret; it is the part
//! kept sealed.

use std::sync::Arc;

use hoist_api_types::{EnvApplied, EnvChange};
use hoist_core::{EnvVars, ServiceName, SpecError};
use hoist_store::{LogStream, NewLogLine, now_ms};

use crate::error::ControlError;
use crate::handle::InstancePlan;
use crate::platform::Platform;
use crate::rollout::ReplaceError;
pub(crate) use crate::vault::{combined, values};

impl Platform {
    /// The service's environment (values included; the API shows them only when asked).
    pub fn env(&self, name: &ServiceName) -> Result<EnvVars, ControlError> {
        if self.store.get_service(name)?.is_none() {
            return Err(ControlError::ServiceNotFound(name.to_string()));
        }
        Ok(self.vault.open(name)?.0)
    }

    /// Applies `change` to the service's environment, stores it sealed and, if the service
    /// has a live deployment, replaces its running instances with ones that have the new
    /// environment: new requests go to a replacement once it is ready, the old instances
    /// finish what they are serving. No image is rebuilt.
    pub async fn change_env(
        self: &Arc<Self>,
        name: &ServiceName,
        change: EnvChange,
    ) -> Result<EnvApplied, ControlError> {
        if self.store.get_service(name)?.is_none() {
            return Err(ControlError::ServiceNotFound(name.to_string()));
        }
        for n in &change.unset {
            EnvVars::validate_name(n)?;
        }
        let files = self.live_plan(name).map(|(p, _)| p.spec.env.clone());
        let (env, revision, changed) = self.vault.update(name, |next| {
            for n in &change.unset {
                if next.remove(n).is_none() {
                    return Err(ControlError::Invalid(SpecError::invalid(
                        "env",
                        n.as_str(),
                        "is not set for this service",
                    )));
                }
            }
            for (k, v) in &change.set {
                next.insert(k.as_str(), v.as_str())?;
            }
            if let Some(files) = &files {
                combined(files, next)?;
            }
            Ok(())
        })?;
        let names = env.iter().map(|(k, _)| k.to_string()).collect();
        let replaced = if changed {
            self.env_line(
                name,
                format!(
                    "environment changed (revision {revision}): {}",
                    describe(&change)
                ),
            );
            self.roll_out_env(name).await?
        } else {
            0
        };
        Ok(EnvApplied {
            names,
            revision,
            changed,
            replaced,
        })
    }

    /// Brings the live deployment's instances to the service's current environment. Two
    /// rollouts may race (an env change and the end of a deploy); the one that loses looks
    /// again and stops once the live plan carries the latest revision.
    pub(crate) async fn roll_out_env(
        self: &Arc<Self>,
        name: &ServiceName,
    ) -> Result<usize, ControlError> {
        for _ in 0..5 {
            let Some((plan, _)) = self.live_plan(name) else {
                return Ok(0);
            };
            let (env, revision) = self.vault.open(name)?;
            if plan.revision >= revision {
                return Ok(0);
            }
            let next = Arc::new(InstancePlan {
                env: combined(&plan.spec.env, &env)?,
                revision,
                ..(*plan).clone()
            });
            match self.replace_live(next, false, || Ok(())).await {
                Ok(n) => return Ok(n),
                Err(ReplaceError::Raced) => continue,
                Err(ReplaceError::Start(reason) | ReplaceError::Record(reason)) => {
                    return Err(ControlError::NotApplied(reason));
                }
            }
        }
        Err(ControlError::NotApplied(
            "the service kept changing while the new environment rolled out".into(),
        ))
    }

    fn env_line(&self, name: &ServiceName, line: String) {
        self.logs.try_write(NewLogLine {
            service: name.to_string(),
            deployment: None,
            instance: None,
            stream: LogStream::System,
            ts: now_ms(),
            line,
        });
    }
}

/// Names only: values never reach a log line.
fn describe(change: &EnvChange) -> String {
    let mut parts = Vec::new();
    if !change.set.is_empty() {
        parts.push(format!(
            "set {}",
            change.set.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    if !change.unset.is_empty() {
        parts.push(format!("unset {}", change.unset.join(", ")));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_described_by_names_only() {
        let change = EnvChange {
            set: [("TOKEN".to_string(), "hunter2".to_string())].into(),
            unset: vec!["OLD".into()],
        };
        let text = describe(&change);
        assert_eq!(text, "set TOKEN; unset OLD");
    }
}
