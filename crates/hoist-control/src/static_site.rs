//! Static files, control side: after a build, the deploy takes the static folder out of the
//! built app (`--static`, hoist.toml's `static`, or a layout found without configuration) into
//! the content-addressed store (`DATA/static`), and records it on the deployment; when a
//! deployment goes live (a deploy's switch, a rollback, the server's start) its site is
//! handed to the gateway's pool, with the replaced deployment's manifest answering for the
//! grace time after the switch, so a page loaded before the deploy still gets its chunks.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hoist_core::{
    DeploymentId, RootDir, ServiceName, ServiceSpec, StaticFolder, StaticPrefix, echo, size_text,
};
use hoist_static::{Layout, Limits, Manifest, ManifestId, Site, SiteConfig, StaticError};
use hoist_store::DeploymentRecord;

use crate::Platform;

/// Names listed when a static folder is missing: enough to spot `build/` beside `dist/`.
const LISTED: usize = 20;
/// Files left out by an ingest that are named in the deploy output; the rest are counted.
const SKIPS_LISTED: usize = 10;

/// The platform's part of static files: the store shared by every deployment, the limits of
/// one folder and how long a replaced deployment's files keep answering.
pub(crate) struct StaticFiles {
    pub(crate) store: Arc<hoist_static::Store>,
    pub(crate) limits: Limits,
    pub(crate) grace: Duration,
}

/// Why a deploy's static step failed; the deployment fails with it, the live one keeps
/// serving.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StaticStepError(pub(crate) String);

/// What the step took from the build (recorded on the deployment): the manifest, kept for
/// the switch.
pub(crate) struct Taken {
    pub(crate) manifest: Arc<Manifest>,
}

/// One folder to take and where the site serves it.
struct Source {
    /// As the user sees it: `dist`.
    label: String,
    /// Relative to the app's root directory.
    rel: PathBuf,
    /// Where its files are mounted inside the site (`/` for the folder itself, `/_next/static`
    /// for Next.js's build assets).
    mount: String,
}

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
                let found = tokio::task::spawn_blocking(move || {
                    hoist_static::detect(&app_root, has_start)
                })
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
                (sources, StaticPrefix::default(), false, Some(what.to_string()))
            }
        };
        let app_root = spec.root_dir.join_onto(&app_dir);
        let store = self.static_files.store.clone();
        let limits = self.static_files.limits;
        // File times come from the kernel's coarse clock, a tick behind this one.
        let started = SystemTime::now() - Duration::from_millis(100);
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
        let (manifest, saved, fresh) = tokio::task::spawn_blocking(move || {
            let saved = store.save_manifest(&manifest);
            let fresh = new_to_store(store.root(), &manifest, started);
            (manifest, saved, fresh)
        })
        .await
        .map_err(|e| StaticStepError(format!("saving the static manifest: {e}")))?;
        let saved = saved.map_err(|e| StaticStepError(format!("saving the static manifest: {e}")))?;
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
        log(format!(
            "static: {} files, {} from {from} ({fresh} new to the store), served by the gateway at {}{}",
            folder.files,
            size_text(folder.bytes),
            folder.prefix,
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
            Some(m) => (*m).clone(),
            None => load(store, &folder.manifest).map_err(|e| format!("deployment {}: {e}", live.id))?,
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

fn load(store: &hoist_static::Store, id: &str) -> Result<Manifest, StaticError> {
    let id: ManifestId = id.parse()?;
    store.load_manifest(&id)
}

/// `--static dist` must be a real folder of the built app, reached through no symlink: the
/// ingest reads it on the host, where a link would mean a host path.
fn check_folder(app_root: &Path, dir: &str, root: &RootDir) -> Result<(), StaticStepError> {
    let mut path = app_root.to_path_buf();
    let mut walked = Vec::new();
    for part in dir.split('/') {
        path.push(part);
        walked.push(part);
        let here = echo(&walked.join("/")).into_owned();
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(StaticStepError(format!(
                    "--static {dir}: {here} is a symlink in the build's output; name the folder itself"
                )));
            }
            Ok(m) if !m.is_dir() => {
                return Err(StaticStepError(format!(
                    "--static {dir}: {here} is not a folder after the build"
                )));
            }
            Ok(_) => {}
            Err(_) => {
                let parent = path.parent().unwrap_or(app_root);
                let inside = if walked.len() == 1 {
                    if root.is_root() {
                        "the app's root directory".to_string()
                    } else {
                        format!("the app's root directory ({root})")
                    }
                } else {
                    format!("{}/", walked[..walked.len() - 1].join("/"))
                };
                return Err(StaticStepError(format!(
                    "--static {dir}: no such folder after the build; {inside} holds {}",
                    listing(parent)
                )));
            }
        }
    }
    Ok(())
}

/// `app.py, build/, requirements.txt` (folders with a slash), sorted, at most [`LISTED`].
fn listing(dir: &Path) -> String {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return "nothing readable".into();
    };
    let mut names: Vec<String> = entries
        .flatten()
        // Overlay whiteouts (files the build deleted) are character devices: not there.
        .filter(|e| {
            e.file_type()
                .is_ok_and(|t| t.is_dir() || t.is_file() || t.is_symlink())
        })
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                format!("{name}/")
            } else {
                name
            }
        })
        .collect();
    if names.is_empty() {
        return "nothing".into();
    }
    names.sort();
    let more = names.len().saturating_sub(LISTED);
    names.truncate(LISTED);
    let mut text = names
        .iter()
        .map(|n| echo(n).into_owned())
        .collect::<Vec<_>>()
        .join(", ");
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

/// Ingests each folder and mounts it where the site serves it; the limits hold for all of
/// them together.
fn ingest_all(
    store: &hoist_static::Store,
    dirs: &[(String, PathBuf, String)],
    limits: &Limits,
) -> Result<Manifest, StaticStepError> {
    let mut all = Manifest::default();
    let mut left = *limits;
    for (label, path, mount) in dirs {
        let one = store
            .ingest(path, &left)
            .map_err(|e| refusal(label, e, limits))?;
        left.max_files = left.max_files.saturating_sub(one.files() as u64);
        left.max_bytes = left.max_bytes.saturating_sub(one.bytes());
        all.merge_at(mount, one);
    }
    Ok(all)
}

/// The ingest's refusal in the deploy's words: the folder as the user named it, and for the
/// limits the numbers found and allowed (never the server's own paths).
fn refusal(label: &str, e: StaticError, limits: &Limits) -> StaticStepError {
    StaticStepError(match e {
        StaticError::TooManyFiles { found, .. } => format!(
            "static folder {label}/ holds {found} files, over the limit of {} files",
            limits.max_files
        ),
        StaticError::TooManyBytes { found, .. } => format!(
            "static folder {label}/ holds {found} bytes ({}), over the limit of {} bytes ({})",
            size_text(found),
            limits.max_bytes,
            size_text(limits.max_bytes)
        ),
        StaticError::Missing { .. } => format!("static folder {label}/ does not exist"),
        StaticError::NotADirectory { .. } => format!("static folder {label}/ is not a folder"),
        other => format!("static folder {label}/: {other}"),
    })
}

/// How many of the manifest's files the ingest that began at `started` stored first (the
/// rest were in the store already, from an earlier deployment): an object renamed into the
/// store (`objects/ab/abcd…`) since then is new.
fn new_to_store(root: &Path, manifest: &Manifest, started: SystemTime) -> usize {
    use std::collections::HashSet;
    let hashes: HashSet<&str> = manifest.entries().map(|(_, f)| f.hash.as_str()).collect();
    hashes
        .into_iter()
        .filter(|h| {
            let Some(shard) = h.get(..2) else {
                return false;
            };
            std::fs::symlink_metadata(root.join("objects").join(shard).join(h))
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= started)
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "hoist-static-step-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_missing_folder_says_what_the_build_left() {
        let app = tmp("missing");
        std::fs::create_dir_all(app.join("build")).unwrap();
        std::fs::write(app.join("app.py"), "").unwrap();
        let e = check_folder(&app, "dist", &RootDir::root()).unwrap_err();
        assert_eq!(
            e.0,
            "--static dist: no such folder after the build; the app's root directory holds app.py, build/"
        );
        let e = check_folder(&app, "build/out", &RootDir::root()).unwrap_err();
        assert!(e.0.contains("build/ holds nothing"), "{}", e.0);
        std::os::unix::fs::symlink("/etc", app.join("dist")).unwrap();
        let e = check_folder(&app, "dist", &RootDir::root()).unwrap_err();
        assert!(e.0.contains("dist is a symlink"), "{}", e.0);
        check_folder(&app, "build", &RootDir::root()).unwrap();
        let _ = std::fs::remove_dir_all(&app);
    }

    #[test]
    fn the_limits_are_refused_with_the_numbers() {
        let app = tmp("limits");
        std::fs::create_dir_all(app.join("dist")).unwrap();
        std::fs::write(app.join("dist/a.js"), "a".repeat(100)).unwrap();
        std::fs::write(app.join("dist/b.js"), "b".repeat(100)).unwrap();
        let store = hoist_static::Store::open(app.join("store")).unwrap();
        let dirs = [("dist".to_string(), app.join("dist"), "/".to_string())];
        let files = Limits {
            max_files: 1,
            max_bytes: 1 << 30,
        };
        let e = ingest_all(&store, &dirs, &files).err().unwrap();
        assert_eq!(
            e.0,
            "static folder dist/ holds 2 files, over the limit of 1 files"
        );
        let bytes = Limits {
            max_files: 10,
            max_bytes: 150,
        };
        let e = ingest_all(&store, &dirs, &bytes).err().unwrap();
        assert!(
            e.0.starts_with("static folder dist/ holds 200 bytes (200 B), over the limit of 150 bytes"),
            "{}",
            e.0
        );
        let started = SystemTime::now() - Duration::from_secs(1);
        let m = ingest_all(&store, &dirs, &Limits::default()).unwrap();
        assert_eq!((m.files(), m.bytes()), (2, 200));
        assert_eq!(new_to_store(store.root(), &m, started), 2);
        assert_eq!(
            new_to_store(store.root(), &m, SystemTime::now() + Duration::from_secs(60)),
            0
        );
        let _ = std::fs::remove_dir_all(&app);
    }
}
