//! A deploy as it is asked for: the request, checked ([`Validated`]), and the spec it resolves
//! to (leapcell.yaml < hoist.toml < flags). Running it is the pipeline's (`pipeline.rs`); this
//! module knows nothing of the platform.

use std::path::Path;
use std::str::FromStr;

use hoist_api_types::DeployRequest;
use hoist_build::{LogSink, OutputStream};
use hoist_core::{
    AutoDeployLayer, EnvVars, MemoryMb, Port, RootDir, Runtime, RuntimeName, Scaling, ScalingLayer,
    ServiceName, ServiceSpec, SpecError, SpecLayer, StaticDir, StaticLayer, StaticPrefix,
    validate_branch,
};

use crate::runtime_choice::RuntimeChoice;
use hoist_store::UploadRecord;

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

/// The service a deploy request is for: its `name`, or the one derived from its source. The
/// API checks the caller's token against it before anything else happens.
pub fn target_service(req: &DeployRequest) -> Result<ServiceName, SpecError> {
    match &req.name {
        Some(n) => ServiceName::from_str(n),
        None => ServiceName::derive_from_source(req.source.trim()),
    }
}

/// A request's checks and resolution into a [`Validated`] deploy; `upload` is the upload
/// the request names (found by the caller), whose commit is then the source.
pub(crate) fn validate(
    req: &DeployRequest,
    upload: Option<&UploadRecord>,
) -> Result<Validated, SpecError> {
    if let Some(upload) = upload {
        return validate_upload(req, upload);
    }
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
    let name = target_service(req)?;
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
    finish(req, name, source, root)
}

/// A deploy of an uploaded commit: the upload decides the service (a name given must be
/// the same) and the source; the root directory is taken as given, since the client, not
/// the server, knows where in its repository it deploys from.
fn validate_upload(req: &DeployRequest, upload: &UploadRecord) -> Result<Validated, SpecError> {
    if !req.source.trim().is_empty() {
        return Err(SpecError::invalid(
            "source",
            req.source.as_str(),
            "give either `source` or `upload`, not both",
        ));
    }
    let name = match &req.name {
        Some(n) => ServiceName::from_str(n)?,
        None => upload.service.clone(),
    };
    if name != upload.service {
        return Err(SpecError::invalid(
            "upload",
            upload.id.as_str(),
            format!(
                "is an upload of service '{}', not of '{name}'",
                upload.service
            ),
        ));
    }
    if let Some(b) = &req.branch {
        validate_branch(b)?;
    }
    let root = RootDir::new(req.root.as_deref().unwrap_or(""))?;
    finish(req, name, hoist_core::upload_source(&upload.commit), root)
}

/// The checks every deploy shares once its service, source and root are known.
fn finish(
    req: &DeployRequest,
    name: ServiceName,
    source: String,
    root: RootDir,
) -> Result<Validated, SpecError> {
    let mut env = EnvVars::new();
    for assignment in &req.env {
        let (k, v) = EnvVars::parse_assignment(assignment)?;
        env.insert(k, v)?;
    }
    // A version no catalogue line has is refused now, before anything is fetched.
    if let Some(runtime) = &req.runtime {
        hoist_core::runtime_catalog::select(runtime)?;
    }
    let flags = SpecLayer {
        runtime: req.runtime.clone(),
        build_command: req.build.clone().filter(|b| !b.trim().is_empty()),
        start_command: req.start.clone().filter(|s| !s.trim().is_empty()),
        port: req.port.map(Port::from_i64).transpose()?,
        memory: req.memory.as_deref().map(MemoryMb::parse).transpose()?,
        env: EnvVars::new(),
        scaling: req.scaling.to_layer()?,
        cron: None,
        auto_deploy: auto_deploy_layer(req)?,
        static_files: static_layer(req)?,
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

/// The request's `static`, `static_prefix` and `static_spa`, checked (each error names its
/// field); a blank folder is "not given", as for the commands.
fn static_layer(req: &DeployRequest) -> Result<StaticLayer, SpecError> {
    Ok(StaticLayer {
        dir: req
            .static_dir
            .as_deref()
            .filter(|d| !d.trim().is_empty())
            .map(StaticDir::new)
            .transpose()?,
        prefix: req
            .static_prefix
            .as_deref()
            .map(StaticPrefix::new)
            .transpose()?,
        spa: req.static_spa,
    })
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

/// What a deploy resolves to: the spec, the scaling settings the deploy itself names (flags,
/// hoist.toml, leapcell.yaml: applied again at the switch onto the service's settings then,
/// so a `hoist scale` made while the deploy built is not undone by it), and the runtime
/// version chosen with its reason.
pub(crate) struct Resolved {
    pub(crate) spec: ServiceSpec,
    pub(crate) scaling: ScalingLayer,
    pub(crate) runtime: RuntimeChoice,
}

/// The spec a deploy resolves to; `current` is the runtime the service's live deployment
/// runs on (see `runtime_choice`).
pub(crate) fn resolve_spec(
    app_root: &Path,
    v: &Validated,
    branch: &str,
    scaling: Scaling,
    current: Option<&RuntimeName>,
    sink: &LogSink,
) -> Result<Resolved, SpecError> {
    let read = |file: &'static str| crate::config_file::read_config(app_root, file);
    let mut layer = SpecLayer::default();
    // Where each layer names the runtime, for the choice of its version.
    let mut leapcell_runtime = None;
    let mut toml_runtime = None;
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
        leapcell_runtime = leapcell.runtime.clone();
        layer = layer.merge(leapcell);
    }
    if let Some(text) = read("hoist.toml")? {
        let toml = SpecLayer::from_hoist_toml(&text)?;
        toml_runtime = toml.runtime.clone();
        layer = layer.merge(toml);
    }
    let mut layer = layer.merge(v.flags.clone());
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
    let detected = Runtime::detect(&names);
    let asked = [
        ("--runtime", v.flags.runtime.as_ref()),
        ("hoist.toml", toml_runtime.as_ref()),
        ("leapcell.yaml", leapcell_runtime.as_ref()),
    ];
    let runtime = crate::runtime_choice::choose(app_root, &asked, detected, current)?;
    // The spec records the version chosen, never a bare family.
    if let Some(choice) = &runtime {
        layer.runtime = Some(choice.entry.runtime_name());
    }
    // Scaling settings not named by this deploy keep the service's current values (so a
    // `hoist scale` survives a redeploy).
    let spec = ServiceSpec::resolve(
        v.name.clone(),
        v.source.clone(),
        Some(branch.to_string()),
        v.root.clone(),
        layer,
        detected,
        scaling,
    )?;
    let runtime = runtime.ok_or_else(|| SpecError::Missing {
        field: "runtime",
        hint: "set --runtime or `runtime` in hoist.toml".into(),
    })?;
    Ok(Resolved {
        spec,
        scaling: scaling_layer,
        runtime,
    })
}

#[cfg(test)]
mod upload_tests {
    use hoist_core::UploadId;

    use super::*;

    fn upload() -> UploadRecord {
        UploadRecord {
            id: UploadId::generate(),
            service: "shop".parse().unwrap(),
            commit: "57c7124f4e0873315bc0721cdfc055fe8a6cc31c".into(),
            bytes_received: 10,
            bytes_stored: 10,
            already_stored: false,
            created_at: 0,
        }
    }

    #[test]
    fn an_upload_gives_the_service_and_the_source() {
        let u = upload();
        let req = DeployRequest {
            root: Some("services/web".into()),
            branch: Some("main".into()),
            upload: Some(u.id.clone()),
            ..DeployRequest::default()
        };
        let v = validate(&req, Some(&u)).unwrap();
        assert_eq!(v.name.as_str(), "shop");
        assert_eq!(v.source, format!("upload:{}", u.commit));
        assert_eq!(v.root.as_str(), "services/web");
        assert_eq!(v.branch.as_deref(), Some("main"));
    }

    #[test]
    fn an_upload_of_another_service_or_beside_a_source_is_refused_naming_the_field() {
        let u = upload();
        let other = DeployRequest {
            name: Some("admin".into()),
            upload: Some(u.id.clone()),
            ..DeployRequest::default()
        };
        let e = validate(&other, Some(&u)).err().unwrap();
        assert_eq!(e.field(), Some("upload"));
        assert!(
            e.to_string().contains("of service 'shop', not of 'admin'"),
            "{e}"
        );
        let both = DeployRequest {
            source: "/srv/app".into(),
            upload: Some(u.id.clone()),
            ..DeployRequest::default()
        };
        assert_eq!(
            validate(&both, Some(&u)).err().unwrap().field(),
            Some("source")
        );
        // Without the upload the usual rules hold: no source at all is missing.
        let none = DeployRequest::default();
        assert_eq!(validate(&none, None).err().unwrap().field(), Some("source"));
    }
}
