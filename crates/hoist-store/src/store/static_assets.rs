//! A deployment's static folder (migration 13: its manifest's id, files, bytes and how it is
//! served) and the service's last switch, which the gateway's grace time for the replaced
//! deployment's files is counted from.

use hoist_core::{DeploymentId, ServiceName, StaticFolder, StaticPrefix};
use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use super::{Store, corrupt, parse};
use crate::StoreError;

/// How the folder is served, kept as JSON beside the counted columns.
#[derive(Serialize, Deserialize)]
struct Config {
    dir: String,
    prefix: StaticPrefix,
    spa: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    detected: Option<String>,
}

/// When a service's live deployment last changed, and the one it replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastSwitch {
    /// Epoch milliseconds.
    pub at: i64,
    pub from: Option<DeploymentId>,
}

/// The folder from the four columns starting at `first` (`static_manifest`, `static_files`,
/// `static_bytes`, `static_config`); `None` for a deployment without one.
pub(super) fn folder_from(row: &Row<'_>, first: usize) -> Result<Option<StaticFolder>, StoreError> {
    let Some(manifest) = row.get::<_, Option<String>>(first)? else {
        return Ok(None);
    };
    let files: i64 = row.get::<_, Option<i64>>(first + 1)?.unwrap_or(0);
    let bytes: i64 = row.get::<_, Option<i64>>(first + 2)?.unwrap_or(0);
    let config: String = row
        .get::<_, Option<String>>(first + 3)?
        .ok_or_else(|| corrupt(format!("static manifest {manifest} without its settings")))?;
    let config: Config = serde_json::from_str(&config).map_err(corrupt)?;
    Ok(Some(StaticFolder {
        manifest,
        files: u64::try_from(files).map_err(corrupt)?,
        bytes: u64::try_from(bytes).map_err(corrupt)?,
        dir: config.dir,
        prefix: config.prefix,
        spa: config.spa,
        detected: config.detected,
    }))
}

impl Store {
    /// Records the static folder a deployment's build gave.
    pub fn set_deployment_static(
        &self,
        id: &DeploymentId,
        folder: &StaticFolder,
    ) -> Result<(), StoreError> {
        let config = serde_json::to_string(&Config {
            dir: folder.dir.clone(),
            prefix: folder.prefix.clone(),
            spa: folder.spa,
            detected: folder.detected.clone(),
        })
        .map_err(corrupt)?;
        self.conn().execute(
            "UPDATE deployments SET static_manifest = ?2, static_files = ?3, static_bytes = ?4,
                    static_config = ?5, updated_at = ?6
             WHERE id = ?1",
            params![
                id.as_str(),
                folder.manifest,
                i64::try_from(folder.files).map_err(corrupt)?,
                i64::try_from(folder.bytes).map_err(corrupt)?,
                config,
                crate::now_ms()
            ],
        )?;
        Ok(())
    }

    /// The service's last switch of its live deployment; `None` before any (or for a
    /// database from before migration 13 that has not switched since).
    pub fn last_switch(&self, name: &ServiceName) -> Result<Option<LastSwitch>, StoreError> {
        let row: Option<(Option<i64>, Option<String>)> = self
            .conn()
            .query_row(
                "SELECT switched_at, switched_from FROM services WHERE name = ?1",
                params![name.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((Some(at), from)) = row else {
            return Ok(None);
        };
        Ok(Some(LastSwitch {
            at,
            from: from.map(|f| parse(f, "deployment id")).transpose()?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use hoist_core::DeploymentState;

    use super::*;

    /// A database in a directory of this test's own, removed when dropped.
    struct Dir(std::path::PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn store() -> (Dir, Store) {
        let dir = std::env::temp_dir().join(format!("hoist-store-static-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("hoist.db")).unwrap();
        (Dir(dir), store)
    }

    #[test]
    fn a_static_folder_is_kept_with_its_deployment_and_a_switch_with_its_service() {
        let (_dir, store) = store();
        let name: ServiceName = "web".parse().unwrap();
        store.ensure_service(&name).unwrap();
        let (a, b) = (DeploymentId::generate(), DeploymentId::generate());
        for id in [&a, &b] {
            store
                .insert_deployment(id, &name, "/src", None, &serde_json::json!({}))
                .unwrap();
            for (from, to) in [
                (DeploymentState::Queued, DeploymentState::Fetching),
                (DeploymentState::Fetching, DeploymentState::Building),
                (DeploymentState::Building, DeploymentState::Starting),
            ] {
                store.transition_deployment(id, from, to, None).unwrap();
            }
        }
        assert_eq!(
            store.get_deployment(&a).unwrap().unwrap().static_folder,
            None
        );
        let folder = StaticFolder {
            manifest: "m-1".into(),
            files: 42,
            bytes: 1 << 20,
            dir: "dist".into(),
            prefix: StaticPrefix::default(),
            spa: true,
            detected: Some("a dist/ or build/ folder holding index.html".into()),
        };
        store.set_deployment_static(&a, &folder).unwrap();
        assert_eq!(
            store.get_deployment(&a).unwrap().unwrap().static_folder,
            Some(folder)
        );

        assert_eq!(store.last_switch(&name).unwrap(), None);
        store
            .set_live(&name, &a, DeploymentState::Starting)
            .unwrap();
        let first = store.last_switch(&name).unwrap().unwrap();
        assert_eq!(first.from, None);
        store
            .set_live(&name, &b, DeploymentState::Starting)
            .unwrap();
        let second = store.last_switch(&name).unwrap().unwrap();
        assert_eq!(second.from, Some(a.clone()));
        assert!(second.at >= first.at);
    }
}
