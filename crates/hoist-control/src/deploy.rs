//! A deploy as it is asked for: the request, checked ([`Validated`]), and the spec it resolves
//! to (leapcell.yaml < hoist.toml < flags). Running it is the pipeline's (`pipeline.rs`); this
//! module knows nothing of the platform.

use std::path::Path;
use std::str::FromStr;

use hoist_core::{
    EnvVars, MemoryMb, Port, RootDir, Runtime, Scaling, ScalingLayer, ServiceName, ServiceSpec,
    SpecError, SpecLayer, validate_branch,
};
use serde::{Deserialize, Serialize};

/// PATH_MAX; browsers and git hosts cap URLs well below it.
const MAX_SOURCE_LEN: usize = 4096;

/// A deploy as the client asks for it; every field but `source` is optional and, when given,
/// wins over `hoist.toml` and `leapcell.yaml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    pub source: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub root: Option<String>,
    #[serde(default)]
    pub runtime: Option<String>,
    #[serde(default)]
    pub build: Option<String>,
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub port: Option<i64>,
    #[serde(default)]
    pub memory: Option<String>,
    /// `KEY=VALUE` assignments.
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub min_instances: Option<u32>,
    #[serde(default)]
    pub max_instances: Option<u32>,
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// A duration such as `30s` or `500ms`.
    #[serde(default)]
    pub idle_freeze: Option<String>,
    #[serde(default)]
    pub idle_stop: Option<String>,
}

/// Scaling settings as a client sends them (`hoist scale`, or with a deploy); unset ones keep
/// the service's current values.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalingRequest {
    #[serde(default)]
    pub min_instances: Option<u32>,
    #[serde(default)]
    pub max_instances: Option<u32>,
    #[serde(default)]
    pub concurrency: Option<u32>,
    #[serde(default)]
    pub idle_freeze: Option<String>,
    #[serde(default)]
    pub idle_stop: Option<String>,
}

impl ScalingRequest {
    pub fn to_layer(&self) -> Result<ScalingLayer, SpecError> {
        let mut layer = ScalingLayer {
            min_instances: self.min_instances,
            max_instances: self.max_instances,
            concurrency: self.concurrency,
            ..ScalingLayer::default()
        };
        if let Some(d) = &self.idle_freeze {
            layer.set("idle_freeze", d)?;
        }
        if let Some(d) = &self.idle_stop {
            layer.set("idle_stop", d)?;
        }
        Ok(layer)
    }
}

pub(crate) struct Validated {
    pub(crate) name: ServiceName,
    pub(crate) source: String,
    pub(crate) branch: Option<String>,
    pub(crate) root: RootDir,
    /// Settings from flags, except the environment: that is `env`.
    pub(crate) flags: SpecLayer,
    /// `--env` assignments: they join the service env when the deployment goes live, and
    /// until then live only in memory (never in plain text in the database).
    pub(crate) env: EnvVars,
}

impl DeployRequest {
    pub(crate) fn validate(&self) -> Result<Validated, SpecError> {
        let source = self.source.trim().to_string();
        if source.is_empty() {
            return Err(SpecError::Missing {
                field: "source",
                hint: "give a git URL or the path of a local git repository".into(),
            });
        }
        if source.len() > MAX_SOURCE_LEN {
            return Err(SpecError::invalid(
                "source",
                source,
                "must be at most 4096 bytes (no URL or path is longer)",
            ));
        }
        if !hoist_core::is_remote_source(&source) && !Path::new(&source).is_absolute() {
            return Err(SpecError::invalid(
                "source",
                source,
                "a local path must be absolute (the CLI resolves it for you)",
            ));
        }
        let name = match &self.name {
            Some(n) => ServiceName::from_str(n)?,
            None => ServiceName::derive_from_source(&source)?,
        };
        if let Some(b) = &self.branch {
            validate_branch(b)?;
        }
        let mut root = RootDir::new(self.root.as_deref().unwrap_or(""))?;
        let mut source = source;
        if !hoist_core::is_remote_source(&source)
            && let Some((top, prefix)) = repo_toplevel(Path::new(&source))
        {
            // A directory inside a repository deploys that directory: the repository is
            // the source and the directory becomes (the start of) the root directory.
            let joined = Path::new(&prefix).join(root.as_str());
            root = RootDir::new(&joined.display().to_string())?;
            source = top;
        }
        let mut env = EnvVars::new();
        for assignment in &self.env {
            let (k, v) = EnvVars::parse_assignment(assignment)?;
            env.insert(k, v)?;
        }
        let flags = SpecLayer {
            runtime: self.runtime.as_deref().map(Runtime::from_str).transpose()?,
            build_command: self.build.clone().filter(|b| !b.trim().is_empty()),
            start_command: self.start.clone().filter(|s| !s.trim().is_empty()),
            port: self.port.map(Port::from_i64).transpose()?,
            memory: self.memory.as_deref().map(MemoryMb::parse).transpose()?,
            env: EnvVars::new(),
            scaling: ScalingRequest {
                min_instances: self.min_instances,
                max_instances: self.max_instances,
                concurrency: self.concurrency,
                idle_freeze: self.idle_freeze.clone(),
                idle_stop: self.idle_stop.clone(),
            }
            .to_layer()?,
        };
        Ok(Validated {
            name,
            source,
            branch: self.branch.clone(),
            root,
            flags,
            env,
        })
    }

    /// The request as recorded: `--env` values are secrets, so only their names are kept.
    pub(crate) fn redacted(&self) -> serde_json::Value {
        let mut copy = self.clone();
        copy.env = self
            .env
            .iter()
            .map(|a| a.split_once('=').map_or(a.as_str(), |(k, _)| k).to_string())
            .collect();
        serde_json::to_value(&copy).unwrap_or_default()
    }
}

/// For a path inside a git work tree: the top level and the path's place in it.
fn repo_toplevel(path: &Path) -> Option<(String, String)> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(path)
        .args(["rev-parse", "--show-toplevel", "--show-prefix"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let top = lines.next()?.to_string();
    let prefix = lines.next().unwrap_or("").trim_end_matches('/').to_string();
    (!prefix.is_empty()).then_some((top, prefix))
}

pub(crate) fn resolve_spec(
    app_root: &Path,
    v: &Validated,
    branch: &str,
    scaling: Scaling,
) -> Result<ServiceSpec, SpecError> {
    let read = |file: &'static str| crate::config_file::read_config(app_root, file);
    let mut layer = SpecLayer::default();
    let leapcell = match read("leapcell.yaml")? {
        Some(text) => Some(text),
        None => read("leapcell.yml")?,
    };
    if let Some(text) = leapcell {
        layer = layer.merge(SpecLayer::from_leapcell_yaml(&text)?);
    }
    if let Some(text) = read("hoist.toml")? {
        layer = layer.merge(SpecLayer::from_hoist_toml(&text)?);
    }
    let layer = layer.merge(v.flags.clone());
    let files: Vec<String> = std::fs::read_dir(app_root)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let names: Vec<&str> = files.iter().map(String::as_str).collect();
    // Scaling settings not named by this deploy keep the service's current values (so a
    // `hoist scale` survives a redeploy).
    ServiceSpec::resolve(
        v.name.clone(),
        v.source.clone(),
        Some(branch.to_string()),
        v.root.clone(),
        layer,
        Runtime::detect(&names),
        scaling,
    )
}
