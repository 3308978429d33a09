use serde::{Deserialize, Deserializer, Serialize};

use crate::{
    AutoDeploySettings, EnvVars, MemoryMb, Port, RootDir, Runtime, RuntimeName, Scaling,
    ServiceName, SpecError, SpecLayer, StaticSettings,
};

/// Everything needed to build and run one service, fully resolved and validated.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub name: ServiceName,
    /// Git URL or local path the code comes from.
    pub source: String,
    /// Branch to deploy; `None` means the repository's default branch.
    #[serde(default, deserialize_with = "deserialize_branch")]
    pub branch: Option<String>,
    #[serde(default)]
    pub root_dir: RootDir,
    /// The runtime version it runs on (`node@24`). A deploy records the catalogued version
    /// it chose; a spec stored before versions existed holds a bare family (`node`), which
    /// means what it did then (`runtime_catalog::entry_for`).
    pub runtime: RuntimeName,
    #[serde(default)]
    pub build_command: Option<String>,
    /// `null` only for a static site (a static folder, configured or found in the build's
    /// output, and nothing to run): it never runs an instance.
    #[serde(default)]
    pub start_command: Option<String>,
    #[serde(default)]
    pub port: Port,
    #[serde(default)]
    pub memory: MemoryMb,
    #[serde(default)]
    pub env: EnvVars,
    #[serde(default)]
    pub scaling: Scaling,
    /// The cron jobs of the repository's hoist.toml; the switch to this deployment makes them
    /// the service's hoist.toml jobs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cron: Vec<crate::CronFileJob>,
    /// Deploying again on push or by polling (`auto_deploy`, `poll_interval`, `watch`).
    #[serde(default)]
    pub auto_deploy: AutoDeploySettings,
    // ---- static files (issue 15) ----
    /// The folder of the build's output the gateway serves itself (`--static`, hoist.toml's
    /// `static`); `None` when none is named (one may still be detected at the build).
    #[serde(rename = "static", default, skip_serializing_if = "Option::is_none")]
    pub static_files: Option<StaticSettings>,
}

impl ServiceSpec {
    /// Turns the merged settings into a complete spec, filling defaults and reporting the first
    /// setting that is still missing, with a hint on where to set it. Scaling settings the
    /// layer does not name keep their values in `scaling` (the service's current ones), and
    /// the combination is what is checked.
    pub fn resolve(
        name: ServiceName,
        source: String,
        branch: Option<String>,
        root_dir: RootDir,
        layer: SpecLayer,
        detected_runtime: Option<Runtime>,
        scaling: Scaling,
    ) -> Result<ServiceSpec, SpecError> {
        if source.trim().is_empty() {
            return Err(SpecError::Missing {
                field: "source",
                hint: "give a git URL or a local directory to deploy".into(),
            });
        }
        // An empty branch is what a blank form field or `--branch ""` produces: use the default.
        let branch = branch.filter(|b| !b.is_empty());
        if let Some(branch) = &branch {
            validate_branch(branch)?;
        }
        // Merging with an empty layer normalizes blank commands to None.
        let layer = SpecLayer::default().merge(layer);
        let static_files = layer.static_files.resolve()?;
        // A static site with nothing to build or run needs no toolchain: plain Debian is the
        // smallest image to run its build command (if any) in.
        let static_only = layer.start_command.is_none() && static_files.is_some();
        let runtime = layer
            .runtime
            .or(detected_runtime.map(RuntimeName::from))
            .or(static_only.then(|| RuntimeName::from(Runtime::Debian)))
            .ok_or_else(|| SpecError::Missing {
                field: "runtime",
                hint: "set --runtime (python, node, go, rust, debian, python+node, each with an optional @version such as node@22) or `runtime` in hoist.toml/leapcell.yaml"
                    .into(),
            })?;
        // No start command is left for the build to settle: a static folder found in its
        // output makes a static site, and without one the deploy fails with
        // [`ServiceSpec::nothing_to_run`].
        let start_command = layer.start_command;
        layer.env.check_size()?;
        let scaling = scaling.apply(&layer.scaling)?;
        let auto_deploy = AutoDeploySettings::resolve(&layer.auto_deploy)?;
        Ok(ServiceSpec {
            name,
            source,
            branch,
            root_dir,
            runtime,
            build_command: layer.build_command,
            start_command,
            port: layer.port.unwrap_or_default(),
            memory: layer.memory.unwrap_or_default(),
            env: layer.env,
            scaling,
            cron: layer.cron.unwrap_or_default(),
            auto_deploy,
            static_files,
        })
    }

    /// A static site: nothing runs, the gateway answers every request from the files.
    pub fn is_static_only(&self) -> bool {
        self.start_command.is_none()
    }

    /// The refusal of a service with neither a start command nor a static folder (none was
    /// named, and none was found in the build's output).
    pub fn nothing_to_run() -> SpecError {
        SpecError::Missing {
            field: "start command",
            hint: "set --start, `startCommand` in leapcell.yaml or `start` in hoist.toml; or, for a static site, --static DIR (`static = \"dist\"` in hoist.toml): no static folder was found in the build's output either (a dist/ or build/ holding index.html)".into(),
        }
    }
}

fn deserialize_branch<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    let branch = Option::<String>::deserialize(deserializer)?;
    if let Some(branch) = &branch {
        validate_branch(branch).map_err(serde::de::Error::custom)?;
    }
    Ok(branch)
}

/// The longest branch name taken (git's own refs are file names, at most 255 bytes).
const MAX_BRANCH_LEN: usize = 255;

/// Sanity-checks a git branch name.
///
/// A subset of `git check-ref-format`: enough to refuse anything that could be mistaken for a git
/// option or revision expression when passed to `git fetch`/`git clone`.
pub fn validate_branch(branch: &str) -> Result<(), SpecError> {
    let rule = if branch.is_empty() {
        Some("must not be empty")
    } else if branch.len() > MAX_BRANCH_LEN {
        // Each ref is a file under .git/refs: longer than a file name may be, it cannot exist.
        Some("must be at most 255 bytes")
    } else if branch.starts_with('-') {
        Some("must not start with '-'")
    } else if branch.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else if branch.chars().any(char::is_whitespace) {
        Some("must not contain spaces")
    } else if branch.contains("..") {
        Some("must not contain '..'")
    } else if branch.contains(['~', '^', ':', '?', '*', '[', '\\']) {
        Some("must not contain any of ~ ^ : ? * [ \\")
    } else if branch.contains("@{") || branch == "@" {
        Some("must not contain '@{' or be '@'")
    } else if branch.starts_with('/') || branch.ends_with('/') || branch.contains("//") {
        Some("must not start or end with '/' or contain '//'")
    } else if branch.ends_with('.') || branch.ends_with(".lock") || branch.contains("/.") {
        Some("must not end with '.' or '.lock' or have a component starting with '.'")
    } else if branch.starts_with('.') {
        Some("must not start with '.'")
    } else {
        None
    };
    match rule {
        Some(rule) => Err(SpecError::invalid("branch", branch, rule)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> ServiceName {
        "web".parse().unwrap()
    }

    fn resolve(layer: SpecLayer, detected: Option<Runtime>) -> Result<ServiceSpec, SpecError> {
        ServiceSpec::resolve(
            name(),
            "https://github.com/me/web.git".into(),
            Some("main".into()),
            RootDir::new("app").unwrap(),
            layer,
            detected,
            Scaling::default(),
        )
    }

    fn start(cmd: &str) -> SpecLayer {
        SpecLayer {
            start_command: Some(cmd.into()),
            ..SpecLayer::default()
        }
    }

    #[test]
    fn resolve_fills_defaults() {
        let spec = resolve(start("python app.py"), Some(Runtime::Python)).unwrap();
        assert_eq!(spec.name, name());
        assert_eq!(spec.source, "https://github.com/me/web.git");
        assert_eq!(spec.branch.as_deref(), Some("main"));
        assert_eq!(spec.root_dir.as_str(), "app");
        assert_eq!(spec.runtime, Runtime::Python.into());
        assert_eq!(spec.build_command, None);
        assert_eq!(spec.start_command.as_deref(), Some("python app.py"));
        assert_eq!(spec.static_files, None);
        assert_eq!(spec.port, Port::default());
        assert_eq!(spec.memory, MemoryMb::default());
        assert!(spec.env.is_empty());
    }

    #[test]
    fn layer_runtime_beats_detected() {
        let layer = SpecLayer {
            runtime: Some(Runtime::Debian.into()),
            build_command: Some("make".into()),
            port: Some(Port::new(3000).unwrap()),
            memory: Some(MemoryMb::new(2048).unwrap()),
            ..start("./server")
        };
        let spec = resolve(layer, Some(Runtime::Go)).unwrap();
        assert_eq!(spec.runtime, Runtime::Debian.into());
        assert_eq!(spec.build_command.as_deref(), Some("make"));
        assert_eq!(spec.port.get(), 3000);
        assert_eq!(spec.memory.get(), 2048);
    }

    #[test]
    fn missing_runtime() {
        let err = resolve(start("x"), None).unwrap_err();
        assert_eq!(
            err,
            SpecError::Missing {
                field: "runtime",
                hint: "set --runtime (python, node, go, rust, debian, python+node, each with an optional @version such as node@22) or `runtime` in hoist.toml/leapcell.yaml".into()
            }
        );
        assert!(err.to_string().starts_with("missing runtime: "));
    }

    #[test]
    fn missing_start_command() {
        // Left for the build to settle (a static folder may turn up in its output).
        for layer in [SpecLayer::default(), start(""), start("   ")] {
            let spec = resolve(layer, Some(Runtime::Node)).unwrap();
            assert!(spec.is_static_only());
        }
        let err = ServiceSpec::nothing_to_run();
        let msg = err.to_string();
        assert!(msg.starts_with("missing start command: "), "{msg}");
        assert!(msg.contains("--start"), "{msg}");
        assert!(msg.contains("startCommand"), "{msg}");
        assert!(msg.contains("`start`"), "{msg}");
        assert!(msg.contains("--static"), "{msg}");
    }

    #[test]
    fn a_static_site_needs_no_runtime_or_start_command() {
        let layer = SpecLayer {
            static_files: crate::StaticLayer {
                dir: Some("dist".parse().unwrap()),
                ..Default::default()
            },
            ..SpecLayer::default()
        };
        let spec = resolve(layer.clone(), None).unwrap();
        assert_eq!(spec.runtime, RuntimeName::from(Runtime::Debian));
        assert!(spec.is_static_only());
        let json = serde_json::to_string(&spec).unwrap();
        assert!(
            json.contains(r#""static":{"dir":"dist","prefix":"/","spa":false}"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<ServiceSpec>(&json).unwrap(), spec);
        // With a start command the runtime is the app's, and still required.
        let with_app = SpecLayer {
            start_command: Some("node server.js".into()),
            ..layer
        };
        assert_eq!(
            resolve(with_app, None).unwrap_err().field(),
            Some("runtime")
        );
    }

    #[test]
    fn blank_build_command_is_none() {
        let layer = SpecLayer {
            build_command: Some(" ".into()),
            ..start("x")
        };
        assert_eq!(
            resolve(layer, Some(Runtime::Go)).unwrap().build_command,
            None
        );
    }

    #[test]
    fn resolve_checks_branch_source_and_env() {
        let err = ServiceSpec::resolve(
            name(),
            "src".into(),
            Some("-x".into()),
            RootDir::root(),
            start("x"),
            Some(Runtime::Go),
            Scaling::default(),
        )
        .unwrap_err();
        assert_eq!(err.field(), Some("branch"));

        let spec = ServiceSpec::resolve(
            name(),
            "src".into(),
            Some(String::new()),
            RootDir::root(),
            start("x"),
            Some(Runtime::Go),
            Scaling::default(),
        )
        .unwrap();
        assert_eq!(spec.branch, None);

        let err = ServiceSpec::resolve(
            name(),
            " ".into(),
            None,
            RootDir::root(),
            start("x"),
            Some(Runtime::Go),
            Scaling::default(),
        )
        .unwrap_err();
        assert_eq!(err.field(), Some("source"));

        let mut a = EnvVars::new();
        a.insert("A", "x".repeat(2000)).unwrap();
        let mut b = EnvVars::new();
        b.insert("B", "x".repeat(2000)).unwrap();
        let layer = SpecLayer {
            env: a,
            ..start("x")
        }
        .merge(SpecLayer {
            env: b,
            ..SpecLayer::default()
        });
        let err = resolve(layer, Some(Runtime::Go)).unwrap_err();
        assert!(err.to_string().contains("3072"), "{err}");
    }

    #[test]
    fn serde_roundtrip() {
        let mut env = EnvVars::new();
        env.insert("K", "v").unwrap();
        let layer = SpecLayer {
            env,
            build_command: Some("make".into()),
            ..start("./app")
        };
        let spec = resolve(layer, Some(Runtime::Rust)).unwrap();
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(
            json,
            r#"{"name":"web","source":"https://github.com/me/web.git","branch":"main","root_dir":"app","runtime":"rust","build_command":"make","start_command":"./app","port":8080,"memory":512,"env":{"K":"v"},"scaling":{"min_instances":0,"max_instances":10,"concurrency":80,"idle_freeze_ms":30000,"idle_stop_ms":900000,"startup_boost":true},"auto_deploy":{"mode":"push","poll_interval_ms":60000,"watch":[]}}"#
        );
        assert_eq!(serde_json::from_str::<ServiceSpec>(&json).unwrap(), spec);
    }

    #[test]
    fn deserialize_defaults_and_validation() {
        let spec: ServiceSpec = serde_json::from_str(
            r#"{"name":"web","source":"/x","runtime":"go","start_command":"./app"}"#,
        )
        .unwrap();
        assert_eq!(spec.branch, None);
        assert!(spec.root_dir.is_root());
        assert_eq!(spec.port, Port::default());
        assert_eq!(spec.memory, MemoryMb::default());
        for bad in [
            r#"{"name":"Web","source":"/x","runtime":"go","start_command":"a"}"#,
            r#"{"name":"web","source":"/x","runtime":"go","start_command":"a","branch":"a..b"}"#,
            r#"{"name":"web","source":"/x","runtime":"go","start_command":"a","root_dir":"../x"}"#,
            r#"{"name":"web","source":"/x","runtime":"go","start_command":"a","port":0}"#,
            r#"{"name":"web","source":"/x","runtime":"go","start_command":"a","memory":1}"#,
        ] {
            assert!(serde_json::from_str::<ServiceSpec>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn valid_branches() {
        for branch in [
            "main",
            "feature/x",
            "release-1.2",
            "v1.0",
            "user@host",
            "a_b",
            &"b".repeat(255),
        ] {
            validate_branch(branch).unwrap();
        }
    }

    #[test]
    fn invalid_branches_name_field() {
        let cases = [
            ("", "empty"),
            ("-main", "'-'"),
            ("--upload-pack=x", "'-'"),
            ("a b", "spaces"),
            ("a\tb", "control"),
            ("a\u{7f}", "control"),
            ("a..b", "'..'"),
            ("a~1", "~"),
            ("a^", "~"),
            ("a:b", "~"),
            ("a?", "~"),
            ("a*", "~"),
            ("a[", "~"),
            ("a\\b", "~"),
            ("a@{1}", "@{"),
            ("/a", "'/'"),
            ("a/", "'/'"),
            ("a//b", "'//'"),
            ("a.", "'.lock'"),
            ("a.lock", "'.lock'"),
            ("a/.b", "component"),
            (".a", "start with '.'"),
            (&"b".repeat(256), "at most 255 bytes"),
        ];
        for (branch, rule) in cases {
            let err = validate_branch(branch).unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with("invalid branch '"), "{branch:?}: {msg}");
            assert!(msg.contains(rule), "{branch:?}: {msg}");
        }
    }
}
