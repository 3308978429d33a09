use serde::{Deserialize, Serialize};

use crate::{
    AutoDeployLayer, CronFileJob, EnvVars, MemoryMb, Port, RuntimeName, ScalingLayer, StaticLayer,
};

/// One source of service settings (a config file, CLI flags, an API request), every field
/// optional so layers can be stacked with [`SpecLayer::merge`] before
/// [`crate::ServiceSpec::resolve`] fills in defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpecLayer {
    #[serde(skip_serializing_if = "Option::is_none")]
    /// A family and maybe a version (`node@22`); which version it becomes is chosen at
    /// deploy (`runtime_catalog`, `runtime_pin`).
    pub runtime: Option<RuntimeName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<Port>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryMb>,
    #[serde(skip_serializing_if = "EnvVars::is_empty")]
    pub env: EnvVars,
    #[serde(skip_serializing_if = "ScalingLayer::is_empty")]
    pub scaling: ScalingLayer,
    /// The cron jobs of hoist.toml (`[[cron]]`), all of them: a layer that has the key
    /// replaces a weaker one's list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cron: Option<Vec<CronFileJob>>,
    /// `auto_deploy`, `poll_interval`, `watch`.
    #[serde(skip_serializing_if = "AutoDeployLayer::is_empty")]
    pub auto_deploy: AutoDeployLayer,
    // ---- static files (issue 15) ----
    /// `--static DIR` and hoist.toml's `static` (a folder, or a table with `dir`, `prefix`,
    /// `spa`), merged setting by setting.
    #[serde(rename = "static", skip_serializing_if = "StaticLayer::is_empty")]
    pub static_files: StaticLayer,
}

/// Trims a command and treats a blank one as unset, so `buildCommand: ""` in a file (a common
/// way of saying "none") does not override a command from a weaker layer with nothing.
pub(crate) fn non_empty(command: Option<String>) -> Option<String> {
    command.and_then(|c| {
        let trimmed = c.trim();
        if trimmed.is_empty() {
            None
        } else if trimmed.len() == c.len() {
            Some(c)
        } else {
            Some(trimmed.to_owned())
        }
    })
}

impl SpecLayer {
    /// Combines two layers: `stronger`'s settings win, env maps are merged per variable.
    pub fn merge(self, stronger: SpecLayer) -> SpecLayer {
        let mut env = self.env;
        env.merge(stronger.env);
        SpecLayer {
            runtime: stronger.runtime.or(self.runtime),
            build_command: non_empty(stronger.build_command).or(non_empty(self.build_command)),
            start_command: non_empty(stronger.start_command).or(non_empty(self.start_command)),
            port: stronger.port.or(self.port),
            memory: stronger.memory.or(self.memory),
            env,
            scaling: self.scaling.merge(stronger.scaling),
            cron: stronger.cron.or(self.cron),
            auto_deploy: self.auto_deploy.merge(stronger.auto_deploy),
            static_files: self.static_files.merge(stronger.static_files),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Runtime;

    fn env(pairs: &[(&str, &str)]) -> EnvVars {
        let mut env = EnvVars::new();
        for (k, v) in pairs {
            env.insert(*k, *v).unwrap();
        }
        env
    }

    #[test]
    fn merge_stronger_wins() {
        let weak = SpecLayer {
            runtime: Some(Runtime::Python.into()),
            build_command: Some("pip install".into()),
            start_command: Some("python app.py".into()),
            port: Some(Port::new(5000).unwrap()),
            memory: None,
            env: env(&[("A", "weak"), ("B", "weak")]),
            scaling: ScalingLayer::default(),
            cron: None,
            auto_deploy: AutoDeployLayer::default(),
            static_files: StaticLayer::default(),
        };
        let strong = SpecLayer {
            runtime: None,
            build_command: Some(String::new()),
            start_command: Some("gunicorn app:app".into()),
            port: None,
            memory: Some(MemoryMb::new(1024).unwrap()),
            env: env(&[("B", "strong"), ("C", "strong")]),
            scaling: ScalingLayer::default(),
            cron: None,
            auto_deploy: AutoDeployLayer::default(),
            static_files: StaticLayer::default(),
        };
        let merged = weak.merge(strong);
        assert_eq!(merged.runtime, Some(Runtime::Python.into()));
        // An empty command in the stronger layer means "unset", not "no build".
        assert_eq!(merged.build_command.as_deref(), Some("pip install"));
        assert_eq!(merged.start_command.as_deref(), Some("gunicorn app:app"));
        assert_eq!(merged.port, Some(Port::new(5000).unwrap()));
        assert_eq!(merged.memory, Some(MemoryMb::new(1024).unwrap()));
        assert_eq!(
            merged.env,
            env(&[("A", "weak"), ("B", "strong"), ("C", "strong")])
        );
    }

    #[test]
    fn merge_with_defaults_is_identity() {
        let layer = SpecLayer {
            runtime: Some(Runtime::Go.into()),
            port: Some(Port::new(1234).unwrap()),
            ..SpecLayer::default()
        };
        assert_eq!(layer.clone().merge(SpecLayer::default()), layer);
        assert_eq!(SpecLayer::default().merge(layer.clone()), layer);
    }

    #[test]
    fn serde_roundtrip() {
        let layer = SpecLayer {
            runtime: Some(Runtime::Rust.into()),
            memory: Some(MemoryMb::new(256).unwrap()),
            env: env(&[("X", "1")]),
            ..SpecLayer::default()
        };
        let json = serde_json::to_string(&layer).unwrap();
        assert_eq!(json, r#"{"runtime":"rust","memory":256,"env":{"X":"1"}}"#);
        assert_eq!(serde_json::from_str::<SpecLayer>(&json).unwrap(), layer);
        assert!(serde_json::from_str::<SpecLayer>(r#"{"prot":1}"#).is_err());
    }
}
