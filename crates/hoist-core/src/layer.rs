use serde::{Deserialize, Serialize};

use crate::{EnvVars, MemoryMb, Port, Runtime, ScalingLayer, SpecError};

const LEAPCELL: &str = "leapcell.yaml";
const HOIST_TOML: &str = "hoist.toml";

/// One source of service settings (a config file, CLI flags, an API request), every field
/// optional so layers can be stacked with [`SpecLayer::merge`] before
/// [`crate::ServiceSpec::resolve`] fills in defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpecLayer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<Runtime>,
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
}

/// Trims a command and treats a blank one as unset, so `buildCommand: ""` in a file (a common
/// way of saying "none") does not override a command from a weaker layer with nothing.
fn non_empty(command: Option<String>) -> Option<String> {
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
    /// Reads a Leapcell `leapcell.yaml`, so projects set up for Leapcell deploy unchanged.
    ///
    /// Unknown keys are ignored because the file belongs to another platform and carries settings
    /// Hoist has no use for.
    pub fn from_leapcell_yaml(text: &str) -> Result<SpecLayer, SpecError> {
        use serde_yaml_ng::Value;

        let file_error = |message: String| SpecError::file(LEAPCELL, message);
        let document: Value = serde_yaml_ng::from_str(text)
            .map_err(|e| file_error(format!("not valid YAML: {e}")))?;
        let mapping = match document {
            Value::Mapping(mapping) => mapping,
            // An empty file (or one holding only comments) sets nothing.
            Value::Null => return Ok(SpecLayer::default()),
            _ => return Err(file_error("expected a mapping of keys to values".into())),
        };

        let mut layer = SpecLayer::default();
        for (key, value) in mapping {
            let Value::String(key) = key else { continue };
            let key_error = |e: SpecError| file_error(format!("key `{}`: {e}", crate::echo(&key)));
            let type_error = |expected: &str| {
                file_error(format!(
                    "key `{}`: must be {expected}, got {}",
                    crate::echo(&key),
                    yaml_kind(&value)
                ))
            };
            match key.as_str() {
                "runtime" => match &value {
                    Value::Null => {}
                    Value::String(s) => layer.runtime = Some(s.parse().map_err(key_error)?),
                    _ => return Err(type_error("a string")),
                },
                "buildCommand" | "startCommand" => {
                    let command = match &value {
                        Value::Null => None,
                        Value::String(s) => Some(s.clone()),
                        _ => return Err(type_error("a string")),
                    };
                    if key == "buildCommand" {
                        layer.build_command = non_empty(command);
                    } else {
                        layer.start_command = non_empty(command);
                    }
                }
                "port" => match &value {
                    Value::Null => {}
                    Value::String(s) => layer.port = Some(s.parse().map_err(key_error)?),
                    Value::Number(n) => {
                        let port = match n.as_i64() {
                            Some(n) => Port::from_i64(n),
                            None => Err(SpecError::invalid(
                                "port",
                                n.to_string(),
                                "must be a number between 1 and 65535",
                            )),
                        };
                        layer.port = Some(port.map_err(key_error)?);
                    }
                    _ => return Err(type_error("a port number")),
                },
                "memory" => match &value {
                    Value::Null => {}
                    Value::String(s) => layer.memory = Some(MemoryMb::parse(s).map_err(key_error)?),
                    Value::Number(n) => {
                        layer.memory = Some(MemoryMb::parse(&n.to_string()).map_err(key_error)?);
                    }
                    _ => return Err(type_error("a size such as 512mb")),
                },
                _ => {}
            }
        }
        Ok(layer)
    }

    /// Reads Hoist's own `hoist.toml`.
    ///
    /// Unlike leapcell.yaml, unknown keys are errors: the file is ours, so an unknown key is a
    /// typo that would otherwise silently deploy with the wrong settings.
    pub fn from_hoist_toml(text: &str) -> Result<SpecLayer, SpecError> {
        use toml::Value;

        let file_error = |message: String| SpecError::file(HOIST_TOML, message);
        let table: toml::Table = toml::from_str(text)
            .map_err(|e| file_error(format!("not valid TOML: {}", e.to_string().trim_end())))?;

        let mut layer = SpecLayer::default();
        let mut build_key: Option<&str> = None;
        let mut start_key: Option<&str> = None;
        for (key, value) in &table {
            let key_error = |e: SpecError| file_error(format!("key `{}`: {e}", crate::echo(key)));
            let type_error = |expected: &str| {
                file_error(format!(
                    "key `{}`: must be {expected}, got {}",
                    crate::echo(key),
                    value.type_str()
                ))
            };
            let as_string = || match value {
                Value::String(s) => Ok(s.clone()),
                _ => Err(type_error("a string")),
            };
            match key.as_str() {
                "runtime" => layer.runtime = Some(as_string()?.parse().map_err(key_error)?),
                "build" | "build_command" | "start" | "start_command" => {
                    let is_build = key.starts_with("build");
                    let seen = if is_build {
                        &mut build_key
                    } else {
                        &mut start_key
                    };
                    if let Some(other) = seen.replace(key) {
                        return Err(file_error(format!(
                            "keys `{other}` and `{key}` mean the same thing; keep only one"
                        )));
                    }
                    let command = non_empty(Some(as_string()?));
                    if is_build {
                        layer.build_command = command;
                    } else {
                        layer.start_command = command;
                    }
                }
                "port" => {
                    let port = match value {
                        Value::Integer(n) => Port::from_i64(*n),
                        Value::String(s) => s.parse(),
                        _ => return Err(type_error("a port number")),
                    };
                    layer.port = Some(port.map_err(key_error)?);
                }
                "memory" => {
                    let memory = match value {
                        Value::Integer(n) => MemoryMb::parse(&n.to_string()),
                        Value::String(s) => MemoryMb::parse(s),
                        _ => return Err(type_error("a size such as 512 or \"512mb\"")),
                    };
                    layer.memory = Some(memory.map_err(key_error)?);
                }
                "env" => {
                    let Value::Table(vars) = value else {
                        return Err(type_error("a table ([env])"));
                    };
                    layer.env = env_from_toml(vars).map_err(key_error)?;
                }
                "min_instances" | "max_instances" | "concurrency" | "idle_freeze" | "idle_stop" => {
                    let text = match value {
                        Value::Integer(n) => n.to_string(),
                        Value::String(s) => s.clone(),
                        _ => return Err(type_error("a number or a duration such as \"30s\"")),
                    };
                    layer.scaling.set(key, &text).map_err(key_error)?;
                }
                _ => {
                    return Err(file_error(format!(
                        "unknown key `{}`; expected one of runtime, build, start, port, memory, env, min_instances, max_instances, concurrency, idle_freeze, idle_stop",
                        crate::echo(key)
                    )));
                }
            }
        }
        Ok(layer)
    }

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
        }
    }
}

/// Converts the `[env]` table; scalars are stringified so `PORT = 8080` or `DEBUG = true` work
/// as users expect, while nested values are refused since they have no env representation.
fn env_from_toml(vars: &toml::Table) -> Result<EnvVars, SpecError> {
    let mut env = EnvVars::new();
    for (name, value) in vars {
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(SpecError::invalid(
                    "env",
                    name.as_str(),
                    format!(
                        "value must be a string, number or boolean, got {}",
                        other.type_str()
                    ),
                ));
            }
        };
        env.insert(name.as_str(), text)?;
    }
    Ok(env)
}

fn yaml_kind(value: &serde_yaml_ng::Value) -> &'static str {
    use serde_yaml_ng::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> EnvVars {
        let mut env = EnvVars::new();
        for (k, v) in pairs {
            env.insert(*k, *v).unwrap();
        }
        env
    }

    #[test]
    fn leapcell_full() {
        let yaml = "
runtime: python3.11
buildCommand: pip install -r requirements.txt
startCommand: gunicorn app:app -b 0.0.0.0:8080
port: 8080
memory: 1gb
region: us-east-1
serviceName: whatever
";
        let layer = SpecLayer::from_leapcell_yaml(yaml).unwrap();
        assert_eq!(layer.runtime, Some(Runtime::Python));
        assert_eq!(
            layer.build_command.as_deref(),
            Some("pip install -r requirements.txt")
        );
        assert_eq!(
            layer.start_command.as_deref(),
            Some("gunicorn app:app -b 0.0.0.0:8080")
        );
        assert_eq!(layer.port, Some(Port::new(8080).unwrap()));
        assert_eq!(layer.memory, Some(MemoryMb::new(1024).unwrap()));
        assert!(layer.env.is_empty());
    }

    #[test]
    fn leapcell_value_forms() {
        let layer =
            SpecLayer::from_leapcell_yaml("port: \"3000\"\nmemory: 512\nbuildCommand: \"\"\n")
                .unwrap();
        assert_eq!(layer.port, Some(Port::new(3000).unwrap()));
        assert_eq!(layer.memory, Some(MemoryMb::new(512).unwrap()));
        assert_eq!(layer.build_command, None);

        let layer =
            SpecLayer::from_leapcell_yaml("memory: 512MB\nstartCommand: |\n  node server.js\n")
                .unwrap();
        assert_eq!(layer.memory, Some(MemoryMb::new(512).unwrap()));
        assert_eq!(layer.start_command.as_deref(), Some("node server.js"));

        let layer = SpecLayer::from_leapcell_yaml("runtime:\nport: ~\n").unwrap();
        assert_eq!(layer, SpecLayer::default());
    }

    #[test]
    fn leapcell_empty_file() {
        assert_eq!(
            SpecLayer::from_leapcell_yaml("").unwrap(),
            SpecLayer::default()
        );
        assert_eq!(
            SpecLayer::from_leapcell_yaml("# nothing\n").unwrap(),
            SpecLayer::default()
        );
    }

    #[test]
    fn leapcell_bad_values_name_file_key_and_rule() {
        let cases = [
            ("port: 0", "key `port`", "between 1 and 65535"),
            ("port: 99999", "key `port`", "between 1 and 65535"),
            ("port: \"http\"", "key `port`", "between 1 and 65535"),
            ("port: 80.5", "key `port`", "between 1 and 65535"),
            ("port: [1]", "key `port`", "got a list"),
            ("memory: 64mb", "key `memory`", "between 128 and 7076 MB"),
            ("memory: lots", "key `memory`", "512mb"),
            ("memory: true", "key `memory`", "got a boolean"),
            (
                "runtime: cobol",
                "key `runtime`",
                "python, node, go, rust, debian",
            ),
            ("runtime: 3", "key `runtime`", "must be a string"),
            (
                "buildCommand: [a, b]",
                "key `buildCommand`",
                "must be a string",
            ),
            (
                "startCommand: {a: 1}",
                "key `startCommand`",
                "must be a string",
            ),
        ];
        for (yaml, key, rule) in cases {
            let err = SpecLayer::from_leapcell_yaml(yaml).unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with("leapcell.yaml: "), "{yaml}: {msg}");
            assert!(msg.contains(key), "{yaml}: {msg}");
            assert!(msg.contains(rule), "{yaml}: {msg}");
        }
    }

    #[test]
    fn leapcell_malformed() {
        let err = SpecLayer::from_leapcell_yaml("port: [").unwrap_err();
        assert!(err.to_string().starts_with("leapcell.yaml: not valid YAML"));
        let err = SpecLayer::from_leapcell_yaml("- a\n- b\n").unwrap_err();
        assert!(err.to_string().contains("mapping"), "{err}");
    }

    #[test]
    fn hoist_toml_full() {
        let text = r#"
runtime = "node"
build = "npm ci && npm run build"
start = "node dist/server.js"
port = 3000
memory = "1gb"

[env]
NODE_ENV = "production"
WORKERS = 4
DEBUG = false
"#;
        let layer = SpecLayer::from_hoist_toml(text).unwrap();
        assert_eq!(layer.runtime, Some(Runtime::Node));
        assert_eq!(
            layer.build_command.as_deref(),
            Some("npm ci && npm run build")
        );
        assert_eq!(layer.start_command.as_deref(), Some("node dist/server.js"));
        assert_eq!(layer.port, Some(Port::new(3000).unwrap()));
        assert_eq!(layer.memory, Some(MemoryMb::new(1024).unwrap()));
        assert_eq!(
            layer.env,
            env(&[
                ("DEBUG", "false"),
                ("NODE_ENV", "production"),
                ("WORKERS", "4")
            ])
        );
    }

    #[test]
    fn hoist_toml_aliases_and_forms() {
        let layer = SpecLayer::from_hoist_toml(
            "build_command = \"make\"\nstart_command = \"./app\"\nmemory = 256\nport = \"9000\"\n",
        )
        .unwrap();
        assert_eq!(layer.build_command.as_deref(), Some("make"));
        assert_eq!(layer.start_command.as_deref(), Some("./app"));
        assert_eq!(layer.memory, Some(MemoryMb::new(256).unwrap()));
        assert_eq!(layer.port, Some(Port::new(9000).unwrap()));

        let layer = SpecLayer::from_hoist_toml("build = \"\"\nstart = \"  \"\n").unwrap();
        assert_eq!(layer.build_command, None);
        assert_eq!(layer.start_command, None);

        assert_eq!(
            SpecLayer::from_hoist_toml("").unwrap(),
            SpecLayer::default()
        );
    }

    #[test]
    fn hoist_toml_errors() {
        let cases = [
            ("strat = \"x\"", "unknown key `strat`"),
            ("[envs]\nA = \"1\"", "unknown key `envs`"),
            ("port = 0", "key `port`: invalid port '0'"),
            ("port = 1.5", "key `port`: must be a port number, got float"),
            (
                "memory = 64",
                "key `memory`: invalid memory '64': must be between 128 and 7076 MB",
            ),
            ("memory = true", "key `memory`: must be a size"),
            (
                "runtime = \"java\"",
                "key `runtime`: invalid runtime 'java'",
            ),
            (
                "runtime = 1",
                "key `runtime`: must be a string, got integer",
            ),
            (
                "build = [\"make\"]",
                "key `build`: must be a string, got array",
            ),
            ("env = \"A=1\"", "key `env`: must be a table"),
            ("[env]\n\"1A\" = \"x\"", "key `env`: invalid env '1A'"),
            (
                "[env]\nA = [1]",
                "key `env`: invalid env 'A': value must be a string",
            ),
            ("build = \"a\"\nbuild_command = \"b\"", "keep only one"),
            ("start = \"a\"\nstart_command = \"b\"", "keep only one"),
            ("port = ", "not valid TOML"),
        ];
        for (text, expected) in cases {
            let err = SpecLayer::from_hoist_toml(text).unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with("hoist.toml: "), "{text}: {msg}");
            assert!(msg.contains(expected), "{text}: {msg}");
        }
    }

    #[test]
    fn hoist_toml_env_size_limit() {
        let text = format!("[env]\nA = \"{}\"\n", "x".repeat(3100));
        let err = SpecLayer::from_hoist_toml(&text).unwrap_err();
        assert!(err.to_string().contains("3072"), "{err}");
    }

    #[test]
    fn merge_stronger_wins() {
        let weak = SpecLayer {
            runtime: Some(Runtime::Python),
            build_command: Some("pip install".into()),
            start_command: Some("python app.py".into()),
            port: Some(Port::new(5000).unwrap()),
            memory: None,
            env: env(&[("A", "weak"), ("B", "weak")]),
            scaling: ScalingLayer::default(),
        };
        let strong = SpecLayer {
            runtime: None,
            build_command: Some(String::new()),
            start_command: Some("gunicorn app:app".into()),
            port: None,
            memory: Some(MemoryMb::new(1024).unwrap()),
            env: env(&[("B", "strong"), ("C", "strong")]),
            scaling: ScalingLayer::default(),
        };
        let merged = weak.merge(strong);
        assert_eq!(merged.runtime, Some(Runtime::Python));
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
    fn hoist_toml_scaling_keys() {
        let layer = SpecLayer::from_hoist_toml(
            "start = \"x\"\nmin_instances = 1\nconcurrency = 5\nidle_freeze = \"500ms\"\nidle_stop = \"2m\"\n",
        )
        .unwrap();
        assert_eq!(layer.scaling.min_instances, Some(1));
        assert_eq!(layer.scaling.concurrency, Some(5));
        assert_eq!(layer.scaling.idle_freeze_ms, Some(500));
        assert_eq!(layer.scaling.idle_stop_ms, Some(120_000));
        let err = SpecLayer::from_hoist_toml("idle_freeze = \"soon\"\n").unwrap_err();
        assert!(err.to_string().contains("idle_freeze"), "{err}");
    }

    #[test]
    fn merge_with_defaults_is_identity() {
        let layer = SpecLayer {
            runtime: Some(Runtime::Go),
            port: Some(Port::new(1234).unwrap()),
            ..SpecLayer::default()
        };
        assert_eq!(layer.clone().merge(SpecLayer::default()), layer);
        assert_eq!(SpecLayer::default().merge(layer.clone()), layer);
    }

    #[test]
    fn serde_roundtrip() {
        let layer = SpecLayer {
            runtime: Some(Runtime::Rust),
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
