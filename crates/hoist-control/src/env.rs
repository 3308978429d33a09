//! A service's environment variables: sealed at rest under the master key, changed without a
//! rebuild, and rolled out by replacing running instances the way a deploy does.
//!
//! An instance's environment is its deployment's file env (from `hoist.toml` or
//! `leapcell.yaml`, part of the repository) overlaid by the service env (`hoist env set`, and
//! `--env` flags of deploys that went live). Only the service env is secret; it is the part
//! kept sealed.

use std::collections::BTreeMap;
use std::sync::Arc;

use hoist_api_types::{EnvApplied, EnvChange};
use hoist_core::{ENV_TOTAL_LIMIT, EnvVars, ServiceName, SpecError};
use hoist_store::{LogStream, NewLogLine, now_ms};

use crate::instance::InstancePlan;
use crate::rollout::ReplaceError;
use crate::{ControlError, Platform};

/// The service env's AEAD context: a sealed env copied onto another service does not open.
fn context(name: &ServiceName) -> String {
    format!("service-env:{name}")
}

impl Platform {
    /// The service's own (secret) environment and its revision.
    pub(crate) fn service_env(&self, name: &ServiceName) -> Result<(EnvVars, u64), ControlError> {
        let (sealed, revision) = self.store.service_env(name)?;
        let Some(sealed) = sealed else {
            return Ok((EnvVars::new(), revision));
        };
        let plain = self.secrets.open(&context(name), &sealed)?;
        let map: BTreeMap<String, String> = serde_json::from_slice(&plain)
            .map_err(|_| ControlError::CorruptEnv(name.to_string()))?;
        // Stored envs were valid when sealed; a limit lowered since must not lock them out.
        let mut env = EnvVars::new();
        for (k, v) in map {
            env.insert(k, v)
                .map_err(|_| ControlError::CorruptEnv(name.to_string()))?;
        }
        Ok((env, revision))
    }

    /// Seals and stores `env` over revision `expected`; `None` if it moved in between.
    pub(crate) fn store_env(
        &self,
        name: &ServiceName,
        env: &EnvVars,
        expected: u64,
    ) -> Result<Option<u64>, ControlError> {
        let plain = serde_json::to_vec(env.as_map())
            .map_err(|_| ControlError::CorruptEnv(name.to_string()))?;
        let sealed = self.secrets.seal(&context(name), &plain)?;
        Ok(self.store.set_service_env(name, &sealed, expected)?)
    }

    /// Applies `edit` to the service env and stores the result sealed. Optimistic: when a
    /// concurrent change moved the revision, the edit is made again on top of it. Returns the
    /// env, its revision and whether it changed (nothing is stored when it did not).
    pub(crate) fn update_env(
        &self,
        name: &ServiceName,
        edit: impl Fn(&mut EnvVars) -> Result<(), ControlError>,
    ) -> Result<(EnvVars, u64, bool), ControlError> {
        loop {
            let (current, revision) = self.service_env(name)?;
            let mut next = current.clone();
            edit(&mut next)?;
            if next == current {
                return Ok((next, revision, false));
            }
            if let Some(revision) = self.store_env(name, &next, revision)? {
                // The new values are masked in the service's log lines from now on, and the
                // replaced ones too: instances that still run with them drain after this.
                let masks = self.logs.masks();
                masks.set(name.as_str(), "env", values(&next));
                masks.set(name.as_str(), "env (previous)", values(&current));
                return Ok((next, revision, true));
            }
        }
    }

    /// The service's environment (values included; the API shows them only when asked).
    pub fn env(&self, name: &ServiceName) -> Result<EnvVars, ControlError> {
        if self.store.get_service(name)?.is_none() {
            return Err(ControlError::ServiceNotFound(name.to_string()));
        }
        Ok(self.service_env(name)?.0)
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
        let (env, revision, changed) = self.update_env(name, |next| {
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
            let (env, revision) = self.service_env(name)?;
            if plan.revision >= revision {
                return Ok(0);
            }
            let next = Arc::new(InstancePlan {
                env: combined(&plan.spec.env, &env)?,
                revision,
                ..(*plan).clone()
            });
            match self.replace_live(next, false).await {
                Ok(n) => return Ok(n),
                Err(ReplaceError::Raced) => continue,
                Err(ReplaceError::Start(reason)) => return Err(ControlError::NotApplied(reason)),
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

    /// Seals the plain-text environments that versions before sealing kept in specs, then
    /// removes every plain copy from the database.
    ///
    /// Once, for a database an older version made: in a later one a spec's `env` is the
    /// repository's `[env]`, not a secret, and sealing it as the service's own would make it
    /// override the next hoist.toml.
    pub(crate) fn seal_legacy_env(&self) -> Result<(), ControlError> {
        if !self.store.legacy_plain_env_pending()? {
            return Ok(());
        }
        for svc in self.store.list_services()? {
            let (sealed, revision) = self.store.service_env(&svc.name)?;
            if sealed.is_some() {
                continue;
            }
            let Some(map) = svc.spec.get("env").and_then(|e| e.as_object()) else {
                continue;
            };
            let mut env = EnvVars::new();
            for (k, v) in map {
                if let Some(v) = v.as_str() {
                    env.insert(k.as_str(), v)?;
                }
            }
            if !env.is_empty() {
                self.store_env(&svc.name, &env, revision)?;
            }
        }
        let scrubbed = self.store.scrub_plain_env()?;
        if scrubbed > 0 {
            tracing::info!(
                rows = scrubbed,
                "sealed environment variables stored in plain text by an older version"
            );
        }
        Ok(())
    }
}

/// The environment an instance gets: the deployment's file env overlaid by the service env,
/// within the size limit.
pub(crate) fn combined(files: &EnvVars, service: &EnvVars) -> Result<EnvVars, SpecError> {
    let mut env = files.clone();
    env.merge(service.clone());
    if env.total_size() > ENV_TOTAL_LIMIT {
        return Err(SpecError::invalid(
            "env",
            "(all variables)",
            format!(
                "the service's variables and those from hoist.toml/leapcell.yaml would total {} bytes, over the limit of {ENV_TOTAL_LIMIT} bytes (3 KB)",
                env.total_size()
            ),
        ));
    }
    Ok(env)
}

/// The values of an environment, for masking them in log lines.
pub(crate) fn values(env: &EnvVars) -> impl Iterator<Item = String> + '_ {
    env.iter().map(|(_, v)| v.to_string())
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
    fn the_service_env_wins_over_the_files_and_the_total_is_capped() {
        let mut files = EnvVars::new();
        files.insert("A", "file").unwrap();
        files.insert("B", "file").unwrap();
        let mut service = EnvVars::new();
        service.insert("B", "secret").unwrap();
        let env = combined(&files, &service).unwrap();
        assert_eq!(env.get("A"), Some("file"));
        assert_eq!(env.get("B"), Some("secret"));

        let mut big = EnvVars::new();
        big.insert("C", "x".repeat(ENV_TOTAL_LIMIT - 10)).unwrap();
        let err = combined(&files, &big).unwrap_err().to_string();
        assert!(err.contains("3 KB") && !err.contains("xxxx"), "{err}");
    }

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
