//! Deploying again without anyone running `hoist deploy`: what triggered a deployment, whether
//! a service redeploys on push or by polling its remote, and which changed files count.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{SpecError, format_duration, millis, parse_duration_in};

/// What started a deployment. Recorded with it (`deployments.trigger`) and shown by
/// `hoist status` and `hoist deployments`. A rollback starts none: it makes an earlier
/// deployment live again, which records when (`rolled_back_at`).
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum DeploymentTrigger {
    /// `hoist deploy` (the CLI says so with `X-Hoist-Client: cli`).
    Cli,
    /// Any other client of `POST /v1/deployments` (the dashboard, a script).
    Api,
    /// A webhook of the git host, with the delivery id it sent.
    Push { delivery: String },
    /// A new commit found by polling the remote (`--auto-deploy poll`).
    Poll,
}

impl DeploymentTrigger {
    /// The kind as stored and printed: `cli`, `api`, `push`, `poll`.
    pub fn kind(&self) -> &'static str {
        match self {
            DeploymentTrigger::Cli => "cli",
            DeploymentTrigger::Api => "api",
            DeploymentTrigger::Push { .. } => "push",
            DeploymentTrigger::Poll => "poll",
        }
    }

    /// The push's delivery id.
    pub fn delivery(&self) -> Option<&str> {
        match self {
            DeploymentTrigger::Push { delivery } => Some(delivery),
            _ => None,
        }
    }

    /// Back from the stored kind and delivery id; `None` for a kind this version does not know.
    pub fn from_parts(kind: &str, delivery: Option<String>) -> Option<DeploymentTrigger> {
        Some(match kind {
            "cli" => DeploymentTrigger::Cli,
            "api" => DeploymentTrigger::Api,
            "push" => DeploymentTrigger::Push {
                delivery: delivery.unwrap_or_default(),
            },
            "poll" => DeploymentTrigger::Poll,
            _ => return None,
        })
    }
}

impl std::fmt::Display for DeploymentTrigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeploymentTrigger::Push { delivery } if !delivery.is_empty() => {
                write!(f, "push {delivery}")
            }
            other => f.write_str(other.kind()),
        }
    }
}

/// Whether a service deploys again by itself when its branch moves.
#[cfg_attr(
    feature = "schema",
    derive(utoipa::ToSchema),
    schema(rename_all = "lowercase")
)]
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
    strum::VariantNames,
)]
#[strum(serialize_all = "lowercase")]
pub enum AutoDeploy {
    /// Only `hoist deploy` deploys.
    Off,
    /// The git host's webhook (`/hooks/NAME/github|gitlab|gitea`) deploys: the default, as on
    /// Render and Vercel; nothing happens until the hook is set up at the host.
    #[default]
    Push,
    /// The server runs `git ls-remote` of the branch every `poll_interval`.
    Poll,
}

text_enum!(AutoDeploy, "auto_deploy");

/// Shortest poll interval: a remote polled more often than once a second gains nothing.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// A minute, as Render's and Argo CD's pollers default to a few minutes; one is still cheap
/// (one `git ls-remote`).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(60);
/// Watch paths per service, and the length of one: a list long enough for any real tree.
const MAX_WATCH: usize = 64;
const MAX_WATCH_LEN: usize = 512;

/// The auto-deploy settings one source gives (flags, `hoist.toml`); unset ones keep the
/// weaker source's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoDeployLayer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<AutoDeploy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poll_interval_ms: Option<u64>,
    /// `None`: not named (a weaker layer's list applies); `Some(empty)`: every file counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch: Option<Vec<String>>,
}

impl AutoDeployLayer {
    pub fn is_empty(&self) -> bool {
        *self == AutoDeployLayer::default()
    }

    /// `stronger`'s settings win.
    pub fn merge(self, stronger: AutoDeployLayer) -> AutoDeployLayer {
        AutoDeployLayer {
            mode: stronger.mode.or(self.mode),
            poll_interval_ms: stronger.poll_interval_ms.or(self.poll_interval_ms),
            watch: stronger.watch.or(self.watch),
        }
    }

    /// Sets `poll_interval` from its text (`30s`, `1m`).
    pub fn set_poll_interval(&mut self, text: &str) -> Result<(), SpecError> {
        let d = parse_duration_in("poll_interval", text, MIN_POLL_INTERVAL, MAX_POLL_INTERVAL)?;
        self.poll_interval_ms = Some(millis(d));
        Ok(())
    }

    /// Sets the watch paths, each checked to be a glob.
    pub fn set_watch(&mut self, globs: Vec<String>) -> Result<(), SpecError> {
        if globs.len() > MAX_WATCH {
            return Err(SpecError::invalid(
                "watch",
                format!("{} paths", globs.len()),
                format!("at most {MAX_WATCH} watch paths"),
            ));
        }
        for g in &globs {
            check_glob(g)?;
        }
        self.watch = Some(globs);
        Ok(())
    }
}

fn check_glob(glob: &str) -> Result<(), SpecError> {
    if glob.trim().is_empty() || glob.len() > MAX_WATCH_LEN {
        return Err(SpecError::invalid(
            "watch",
            glob,
            "must be a non-empty glob of at most 512 bytes, e.g. 'api/**'",
        ));
    }
    globset::Glob::new(glob)
        .map(|_| ())
        .map_err(|e| SpecError::invalid("watch", glob, format!("not a glob: {}", e.kind())))
}

/// The auto-deploy settings in force for a service (part of its spec).
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoDeploySettings {
    pub mode: AutoDeploy,
    /// How often `poll` mode asks the remote.
    pub poll_interval_ms: u64,
    /// Globs of repository paths; a push deploys only when a changed file matches one. Empty:
    /// every push to the branch deploys.
    pub watch: Vec<String>,
}

impl Default for AutoDeploySettings {
    fn default() -> Self {
        AutoDeploySettings {
            mode: AutoDeploy::default(),
            poll_interval_ms: millis(DEFAULT_POLL_INTERVAL),
            watch: Vec::new(),
        }
    }
}

impl AutoDeploySettings {
    /// The defaults with `layer` on top.
    pub fn resolve(layer: &AutoDeployLayer) -> Result<AutoDeploySettings, SpecError> {
        let d = AutoDeploySettings::default();
        let watch = layer.watch.clone().unwrap_or_default();
        for g in &watch {
            check_glob(g)?;
        }
        Ok(AutoDeploySettings {
            mode: layer.mode.unwrap_or(d.mode),
            poll_interval_ms: layer.poll_interval_ms.unwrap_or(d.poll_interval_ms),
            watch,
        })
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(millis(MIN_POLL_INTERVAL)))
    }

    /// `1m`, as durations print.
    pub fn poll_interval_text(&self) -> String {
        format_duration(self.poll_interval())
    }

    /// The watch paths compiled; `None` when every file counts.
    pub fn watch_set(&self) -> Result<Option<globset::GlobSet>, SpecError> {
        if self.watch.is_empty() {
            return Ok(None);
        }
        let mut set = globset::GlobSetBuilder::new();
        for g in &self.watch {
            set.add(
                globset::GlobBuilder::new(g)
                    // `api/*` stays in `api/`; `**` crosses directories, as in .gitignore.
                    .literal_separator(true)
                    .build()
                    .map_err(|e| SpecError::invalid("watch", g, e.kind().to_string()))?,
            );
        }
        set.build()
            .map(Some)
            .map_err(|e| SpecError::invalid("watch", self.watch.join(", "), e.to_string()))
    }

    /// Whether a push that changed `files` deploys.
    pub fn matches<'a>(&self, files: impl IntoIterator<Item = &'a str>) -> Result<bool, SpecError> {
        Ok(match self.watch_set()? {
            None => true,
            Some(set) => files.into_iter().any(|f| set.is_match(f)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_round_trips_through_its_stored_parts_and_json() {
        for t in [
            DeploymentTrigger::Cli,
            DeploymentTrigger::Api,
            DeploymentTrigger::Push {
                delivery: "abc-1".into(),
            },
            DeploymentTrigger::Poll,
        ] {
            let back =
                DeploymentTrigger::from_parts(t.kind(), t.delivery().map(str::to_string)).unwrap();
            assert_eq!(back, t);
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::from_str::<DeploymentTrigger>(&json).unwrap(), t);
        }
        assert_eq!(
            serde_json::to_value(DeploymentTrigger::Push {
                delivery: "d1".into()
            })
            .unwrap(),
            serde_json::json!({"kind": "push", "delivery": "d1"})
        );
        assert_eq!(DeploymentTrigger::from_parts("cron", None), None);
    }

    #[test]
    fn watch_paths_match_like_gitignore_globs() {
        let mut layer = AutoDeployLayer::default();
        layer
            .set_watch(vec!["api/**".into(), "requirements.txt".into()])
            .unwrap();
        let s = AutoDeploySettings::resolve(&layer).unwrap();
        assert!(s.matches(["api/v1/app.py"]).unwrap());
        assert!(s.matches(["README.md", "requirements.txt"]).unwrap());
        assert!(
            !s.matches(["web/api/x.py", "docs/requirements.txt"])
                .unwrap()
        );
        assert!(!s.matches([]).unwrap());
        let all = AutoDeploySettings::default();
        assert!(all.matches(["anything"]).unwrap());
    }

    #[test]
    fn bad_settings_name_their_field() {
        let mut layer = AutoDeployLayer::default();
        let e = layer.set_watch(vec!["api/[".into()]).unwrap_err();
        assert!(e.to_string().contains("watch"), "{e}");
        let e = layer.set_poll_interval("500ms").unwrap_err();
        assert!(e.to_string().contains("poll_interval"), "{e}");
        assert!(e.to_string().contains("between 1s"), "{e}");
        layer.set_poll_interval("2s").unwrap();
        assert_eq!(layer.poll_interval_ms, Some(2000));
        let e = "sometimes".parse::<AutoDeploy>().unwrap_err();
        assert!(e.to_string().contains("off, push, poll"), "{e}");
    }
}
