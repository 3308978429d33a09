//! Static files, control side: after a build, the deploy takes the static folder out of the
//! built app (`--static`, hoist.toml's `static`, or a layout found without configuration) into
//! the content-addressed store (`DATA/static`), and records it on the deployment; when a
//! deployment goes live (a deploy's switch, a rollback, the server's start) its site is
//! handed to the gateway's pool, with the replaced deployment's manifest answering for the
//! grace time after the switch, so a page loaded before the deploy still gets its chunks.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hoist_core::{DeploymentId, ServiceName, ServiceSpec, StaticFolder, StaticPrefix, size_text};
use hoist_static::{Layout, Manifest, Site, SiteConfig};
use hoist_store::DeploymentRecord;

use crate::Platform;
use crate::static_step::{
    SKIPS_LISTED, Source, StaticStepError, Taken, check_folder, ingest_all, load,
};

impl Platform {
    /// The static step of a deploy, after the build: the folder configured in `spec` (which
    /// must exist), else one found by [`hoist_static::detect`]; `None` when there is neither.
    /// `layer` is the app layer the build made: `app/<root>` in it is the app as its instances
    /// see it (the source and what the build wrote).
    pub(crate) async fn take_static(
        &self,
        id: &DeploymentId,
        spec: &ServiceSpec,
        layer: &Path,
        log: &(dyn Fn(String) + Send + Sync),
    ) -> Result<Option<Taken>, StaticStepError> {
        let app_dir = layer.join("app");
        let (sources, prefix, spa, detected) = match &spec.static_files {
            Some(settings) => {
                let app_root = spec
                    .root_dir
                    .resolve_in(&app_dir)
                    .map_err(|e| StaticStepError(format!("--static {}: {e}", settings.dir)))?;
                check_folder(&app_root, settings.dir.as_str(), &spec.root_dir)?;
                (
                    vec![Source {
                        label: settings.dir.to_string(),
                        rel: PathBuf::from(settings.dir.as_str()),
                        mount: "/".into(),
                    }],
                    settings.prefix.clone(),
                    settings.spa,
                    None,
                )
            }
            None => {
                // Detection reads only a real directory of the built app; a build whose
                // root is gone (or a link) simply has nothing detected.
                let Ok(app_root) = spec.root_dir.resolve_in(&app_dir) else {
                    return Ok(None);
                };
                let has_start = spec.start_command.is_some();
                let found =
                    tokio::task::spawn_blocking(move || hoist_static::detect(&app_root, has_start))
                        .await
                        .map_err(|e| StaticStepError(format!("detecting static files: {e}")))?;
                let Some(found) = found else {
                    return Ok(None);
                };
                log(format!("static: detected {found}"));
                let what = match found.layout {
                    Layout::SpaBuild => "a dist/ or build/ folder holding index.html",
                    Layout::NextStandalone => "Next.js standalone output",
                };
                let sources = found
                    .mounts
                    .iter()
                    .map(|m| Source {
                        label: m.dir.display().to_string(),
                        rel: m.dir.clone(),
                        mount: m.prefix.clone(),
                    })
                    .collect();
                (
                    sources,
                    StaticPrefix::default(),
                    false,
                    Some(what.to_string()),
                )
            }
        };
        let app_root = spec.root_dir.join_onto(&app_dir);
        let store = self.static_files.store.clone();
        let limits = self.static_files.limits;
        let dirs: Vec<(String, PathBuf, String)> = sources
            .iter()
            .map(|s| (s.label.clone(), app_root.join(&s.rel), s.mount.clone()))
            .collect();
        let manifest = tokio::task::spawn_blocking(move || ingest_all(&store, &dirs, &limits))
            .await
            .map_err(|e| StaticStepError(format!("taking the static files: {e}")))??;
        for skipped in manifest.skipped().iter().take(SKIPS_LISTED) {
            log(format!("static: {skipped}"));
        }
        if manifest.skipped().len() > SKIPS_LISTED {
            log(format!(
                "static: {} more files skipped",
                manifest.skipped().len() - SKIPS_LISTED
            ));
        }
        let store = self.static_files.store.clone();
        let fresh = manifest.new_files();
        let (manifest, saved) = tokio::task::spawn_blocking(move || {
            let saved = store.save_manifest(&manifest);
            (manifest, saved)
        })
        .await
        .map_err(|e| StaticStepError(format!("saving the static manifest: {e}")))?;
        let saved =
            saved.map_err(|e| StaticStepError(format!("saving the static manifest: {e}")))?;
        let dir = sources
            .iter()
            .map(|s| s.label.as_str())
            .collect::<Vec<_>>()
            .join(" + ");
        let folder = StaticFolder {
            manifest: saved.to_string(),
            files: manifest.files() as u64,
            bytes: manifest.bytes(),
            dir,
            prefix,
            spa,
            detected,
        };
        self.store
            .set_deployment_static(id, &folder)
            .map_err(|e| StaticStepError(format!("recording the static folder: {e}")))?;
        let from = sources
            .iter()
            .map(|s| format!("{}/", s.label))
            .collect::<Vec<_>>()
            .join(" and ");
        // Next.js's two folders are mounted at their own paths inside the site.
        let at = match sources.as_slice() {
            [_] => folder.prefix.to_string(),
            many => many
                .iter()
                .map(|s| s.mount.as_str())
                .collect::<Vec<_>>()
                .join(" and "),
        };
        log(format!(
            "static: {} files, {} from {from} ({fresh} new to the store), served by the gateway at {at}{}",
            folder.files,
            size_text(folder.bytes),
            if spec.is_static_only() {
                " (a static site: no instance runs)"
            } else {
                ""
            }
        ));
        Ok(Some(Taken {
            manifest: Arc::new(manifest),
        }))
    }

    /// The site deployment `live` serves, with the manifest of `previous` (the deployment it
    /// replaced at `switched_at`, epoch ms) answering until the grace time after the switch.
    /// `None` when `live` has no static folder. Reads manifests: call it off the event loop
    /// for a large one (a deploy has its manifest at hand: `current`).
    pub(crate) fn site_for(
        &self,
        live: &DeploymentRecord,
        current: Option<Arc<Manifest>>,
        previous: Option<&DeploymentRecord>,
        switched_at: i64,
    ) -> Result<Option<Arc<Site>>, String> {
        let Some(folder) = &live.static_folder else {
            return Ok(None);
        };
        let store = &self.static_files.store;
        let manifest = match current {
            // The deploy's own: moved, not copied, when nothing else holds it.
            Some(m) => Arc::try_unwrap(m).unwrap_or_else(|m| (*m).clone()),
            None => {
                load(store, &folder.manifest).map_err(|e| format!("deployment {}: {e}", live.id))?
            }
        };
        let has_app = live
            .spec
            .as_ref()
            .is_some_and(|s| s.start_command.is_some());
        let config = SiteConfig {
            prefix: folder.prefix.as_str().to_string(),
            spa: folder.spa,
            has_app,
        };
        let mut site = Site::new(store.clone(), manifest, config).map_err(|e| e.to_string())?;
        let until = UNIX_EPOCH
            + Duration::from_millis(u64::try_from(switched_at).unwrap_or(0))
            + self.static_files.grace;
        if let Some(prev) = previous.filter(|_| until > SystemTime::now())
            && let Some(prev_folder) = &prev.static_folder
        {
            match load(store, &prev_folder.manifest) {
                Ok(earlier) => site = site.with_earlier(earlier, until),
                // The new files serve regardless: only the grace of the old ones is lost.
                Err(e) => {
                    tracing::warn!(deployment = %prev.id, error = %e, "the replaced deployment's static manifest")
                }
            }
        }
        Ok(Some(Arc::new(site)))
    }

    /// The site deployment `id` serves once a deploy switches to it now, replacing the live
    /// one; `manifest` is what its static step took (saves reading it back).
    pub(crate) fn site_at_switch(
        &self,
        name: &ServiceName,
        id: &DeploymentId,
        manifest: Option<Arc<Manifest>>,
    ) -> Result<Option<Arc<Site>>, String> {
        let get = |id: &DeploymentId| self.store.get_deployment(id).map_err(|e| e.to_string());
        let next = get(id)?.ok_or_else(|| format!("deployment {id} not found"))?;
        let live = self
            .state()
            .get(name)
            .and_then(|s| s.live.as_ref().map(|l| l.id.clone()));
        let previous = match live {
            Some(live) if &live != id => get(&live)?,
            _ => None,
        };
        self.site_for(&next, manifest, previous.as_ref(), hoist_store::now_ms())
    }

    /// Hands the gateway the site of the service's live deployment as the database has it
    /// (at start-up, and after a rollback); the replaced deployment's files answer until the
    /// grace time after the recorded switch, also when the server restarted meanwhile.
    pub(crate) async fn publish_static(self: &Arc<Self>, name: &ServiceName) {
        let me = self.clone();
        let service = name.clone();
        let found = tokio::task::spawn_blocking(move || me.stored_site(&service)).await;
        let site = match found {
            Ok(Ok(site)) => site,
            Ok(Err(reason)) => {
                tracing::error!(service = %name, %reason, "the live deployment's static files");
                None
            }
            Err(e) => {
                tracing::error!(service = %name, error = %e, "the live deployment's static files");
                None
            }
        };
        if let Some(pool) = self.services.pool(name) {
            pool.set_static(site);
        }
    }

    /// [`Platform::site_for`] the live deployment, from the database (blocking).
    pub(crate) fn stored_site(&self, name: &ServiceName) -> Result<Option<Arc<Site>>, String> {
        let service = self
            .store
            .get_service(name)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("service '{name}' not found"))?;
        let Some(live) = service.live_deployment else {
            return Ok(None);
        };
        let get = |id: &DeploymentId| self.store.get_deployment(id).map_err(|e| e.to_string());
        let Some(live) = get(&live)? else {
            return Ok(None);
        };
        let switch = self.store.last_switch(name).map_err(|e| e.to_string())?;
        let (previous, at) = match switch {
            Some(s) => (s.from.map(|f| get(&f)).transpose()?.flatten(), s.at),
            None => (None, 0),
        };
        self.site_for(&live, None, previous.as_ref(), at)
    }
}
