//! The env vault: each service's own environment, sealed at rest under the master key (the
//! key never enters the database), opened for the instances that need it, and masked in the
//! service's log lines whenever it changes. Nothing else holds the key.

use std::collections::BTreeMap;
use std::sync::Arc;

use hoist_core::{ENV_TOTAL_LIMIT, EnvVars, ServiceName, SpecError};
use hoist_secrets::MasterKey;
use hoist_store::Store;

use crate::error::ControlError;
use crate::mask::Masks;

/// The service env's AEAD context: a sealed env copied onto another service does not open.
fn context(name: &ServiceName) -> String {
    format!("service-env:{name}")
}

pub(crate) struct EnvVault {
    secrets: MasterKey,
    store: Arc<Store>,
    masks: Masks,
}

impl EnvVault {
    pub(crate) fn new(secrets: MasterKey, store: Arc<Store>, masks: Masks) -> EnvVault {
        EnvVault {
            secrets,
            store,
            masks,
        }
    }

    /// The service's own (secret) environment and its revision.
    pub(crate) fn open(&self, name: &ServiceName) -> Result<(EnvVars, u64), ControlError> {
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
    pub(crate) fn seal(
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
    pub(crate) fn update(
        &self,
        name: &ServiceName,
        edit: impl Fn(&mut EnvVars) -> Result<(), ControlError>,
    ) -> Result<(EnvVars, u64, bool), ControlError> {
        loop {
            let (current, revision) = self.open(name)?;
            let mut next = current.clone();
            edit(&mut next)?;
            if next == current {
                return Ok((next, revision, false));
            }
            if let Some(revision) = self.seal(name, &next, revision)? {
                // The new values are masked in the service's log lines from now on, and the
                // replaced ones too: instances that still run with them drain after this.
                self.masks.set(name.as_str(), "env", values(&next));
                self.masks
                    .set(name.as_str(), "env (previous)", values(&current));
                return Ok((next, revision, true));
            }
            // The revision moved, or the service is gone: retrying would never end then.
            if self.store.get_service(name)?.is_none() {
                return Err(ControlError::ServiceNotFound(name.to_string()));
            }
        }
    }

    /// Seals another of the service's secrets (its webhook secret) under its own context, so
    /// a sealed value does not open as anything else.
    pub(crate) fn seal_secret(&self, context: &str, plain: &[u8]) -> Result<Vec<u8>, ControlError> {
        Ok(self.secrets.seal(context, plain)?)
    }

    /// Opens what [`EnvVault::seal_secret`] sealed.
    pub(crate) fn open_secret(
        &self,
        context: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, ControlError> {
        Ok(self.secrets.open(context, sealed)?)
    }

    /// Seals the plain-text environments that versions before sealing kept in specs, then
    /// removes every plain copy from the database.
    ///
    /// Once, for a database an older version made: in a later one a spec's `env` is the
    /// repository's `[env]`, not a secret, and sealing it as the service's own would make it
    /// override the next hoist.toml.
    pub(crate) fn seal_legacy(&self) -> Result<(), ControlError> {
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
                self.seal(&svc.name, &env, revision)?;
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
}
