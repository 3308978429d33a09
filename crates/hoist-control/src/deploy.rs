//! A deploy as it is asked for: the request, checked ([`Validated`]), and the spec it resolves
//! to (leapcell.yaml < hoist.toml < flags). Running it is the pipeline's (`pipeline.rs`); this
//! module knows nothing of the platform.

use std::path::Path;
use std::str::FromStr;

use hoist_api_types::DeployRequest;
use hoist_build::{LogSink, OutputStream};
use hoist_core::{
    AutoDeployLayer, EnvVars, MemoryMb, Port, RootDir, Runtime, Scaling, ScalingLayer, ServiceName,
    ServiceSpec, SpecError, SpecLayer, validate_branch,
};

/// PATH_MAX; browsers and git hosts cap URLs well below it.
const MAX_SOURCE_LEN: usize = 4096;

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
    /// The commit to deploy when it is not the branch's tip at fetch time: a push's `after`.
    pub(crate) commit: Option<String>,
}

/// A request's checks and resolution into a [`Validated`] deploy.
pub(crate) fn validate(req: &DeployRequest) -> Result<Validated, SpecError> {
    let source = req.source.trim().to_string();
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
    let name = match &req.name {
        Some(n) => ServiceName::from_str(n)?,
        None => ServiceName::derive_from_source(&source)?,
    };
    if let Some(b) = &req.branch {
        validate_branch(b)?;
    }
    let mut root = RootDir::new(req.root.as_deref().unwrap_or(""))?;
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
    for assignment in &req.env {
        let (k, v) = EnvVars::parse_assignment(assignment)?;
        env.insert(k, v)?;
    }
    let flags = SpecLayer {
        runtime: req.runtime,
        build_command: req.build.clone().filter(|b| !b.trim().is_empty()),
        start_command: req.start.clone().filter(|s| !s.trim().is_empty()),
        port: req.port.map(Port::from_i64).transpose()?,
        memory: req.memory.as_deref().map(MemoryMb::parse).transpose()?,
        env: EnvVars::new(),
        scaling: req.scaling.to_layer()?,
        auto_deploy: auto_deploy_layer(req)?,
    };
    Ok(Validated {
        name,
        source,
        branch: req.branch.clone(),
        root,
        flags,
        env,
        commit: None,
    })
}

/// The request's `auto_deploy`, `poll_interval` and `watch`, checked.
fn auto_deploy_layer(req: &DeployRequest) -> Result<AutoDeployLayer, SpecError> {
    let mut layer = AutoDeployLayer {
        mode: req.auto_deploy,
        ..AutoDeployLayer::default()
    };
    if let Some(interval) = &req.poll_interval {
        layer.set_poll_interval(interval)?;
    }
    if let Some(watch) = &req.watch {
        layer.set_watch(watch.clone())?;
    }
    Ok(layer)
}

/// The request as recorded: `--env` values are secrets, so only their names are kept.
pub(crate) fn redacted(req: &DeployRequest) -> serde_json::Value {
    let mut copy = req.clone();
    copy.env = req
        .env
        .iter()
        .map(|a| a.split_once('=').map_or(a.as_str(), |(k, _)| k).to_string())
        .collect();
    serde_json::to_value(&copy).unwrap_or_default()
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

/// The spec a deploy resolves to, with the scaling settings the deploy itself names (flags,
/// hoist.toml, leapcell.yaml): applied again at the switch onto the service's settings then,
/// so a `hoist scale` made while the deploy built is not undone by it.
pub(crate) fn resolve_spec(
    app_root: &Path,
    v: &Validated,
    branch: &str,
    scaling: Scaling,
    sink: &LogSink,
) -> Result<(ServiceSpec, ScalingLayer), SpecError> {
    let read = |file: &'static str| crate::config_file::read_config(app_root, file);
    let mut layer = SpecLayer::default();
    let leapcell = match read("leapcell.yaml")? {
        Some(text) => Some(text),
        None => read("leapcell.yml")?,
    };
    if let Some(text) = leapcell {
        let (leapcell, warnings) = SpecLayer::from_leapcell_yaml(&text)?;
        // Leapcell's own settings (region, …) deploy unchanged; the build log says which
        // ones had no effect here.
        for warning in warnings {
            sink(OutputStream::System, format!("warning: {warning}"));
        }
        layer = layer.merge(leapcell);
    }
    if let Some(text) = read("hoist.toml")? {
        layer = layer.merge(SpecLayer::from_hoist_toml(&text)?);
    }
    let layer = layer.merge(v.flags.clone());
    let scaling_layer = layer.scaling;
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
    let spec = ServiceSpec::resolve(
        v.name.clone(),
        v.source.clone(),
        Some(branch.to_string()),
        v.root.clone(),
        layer,
        Runtime::detect(&names),
        scaling,
    )?;
    Ok((spec, scaling_layer))
}
