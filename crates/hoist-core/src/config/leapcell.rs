//! `leapcell.yaml`: Leapcell's own file, read so its example repositories deploy unchanged.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{ConfigWarning, key_error};
use crate::{MemoryMb, Port, SpecError, SpecLayer, echo, layer::non_empty};

const LEAPCELL: &str = "leapcell.yaml";

/// The keys of `leapcell.yaml` Hoist uses; Leapcell's others (`region`, `serviceName`, …)
/// land in `unused`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LeapcellYaml {
    runtime: Option<serde_yaml_ng::Value>,
    #[serde(rename = "buildCommand")]
    build_command: Option<serde_yaml_ng::Value>,
    #[serde(rename = "startCommand")]
    start_command: Option<serde_yaml_ng::Value>,
    port: Option<serde_yaml_ng::Value>,
    memory: Option<serde_yaml_ng::Value>,
    #[serde(flatten)]
    unused: BTreeMap<String, serde_yaml_ng::Value>,
}

impl SpecLayer {
    /// Reads a Leapcell `leapcell.yaml`, so projects set up for Leapcell deploy unchanged.
    ///
    /// Keys Hoist has no use for are not errors, because the file belongs to another platform;
    /// they come back as warnings for the deploy to show.
    pub fn from_leapcell_yaml(text: &str) -> Result<(SpecLayer, Vec<ConfigWarning>), SpecError> {
        use serde_yaml_ng::Value;

        let file_error = |message: String| SpecError::file(LEAPCELL, message);
        let document: Value = serde_yaml_ng::from_str(text)
            .map_err(|e| file_error(format!("not valid YAML: {e}")))?;
        let mapping = match document {
            Value::Mapping(mapping) => mapping,
            // An empty file (or one holding only comments) sets nothing.
            Value::Null => return Ok((SpecLayer::default(), Vec::new())),
            _ => return Err(file_error("expected a mapping of keys to values".into())),
        };
        // Only text keys can be settings; a key such as `1:` is Leapcell's business (if
        // anyone's) and must not be taken for a field by its position.
        let mut warnings = Vec::new();
        let mut keyed = serde_yaml_ng::Mapping::new();
        for (key, value) in mapping {
            match key {
                Value::String(_) => {
                    keyed.insert(key, value);
                }
                other => warnings.push(ConfigWarning {
                    file: LEAPCELL,
                    key: echo(&yaml_key_text(&other)).into_owned(),
                }),
            }
        }
        let file = LeapcellYaml::deserialize(Value::Mapping(keyed))
            .map_err(|e| file_error(format!("not valid: {e}")))?;

        let mut layer = SpecLayer::default();
        let type_error = |key: &str, expected: &str, value: &Value| {
            file_error(format!(
                "key `{key}`: must be {expected}, got {}",
                yaml_kind(value)
            ))
        };
        if let Some(value) = &file.runtime {
            match value {
                Value::String(s) => {
                    layer.runtime = Some(s.parse().map_err(key_error(LEAPCELL, "runtime"))?)
                }
                _ => return Err(type_error("runtime", "a string", value)),
            }
        }
        for (key, value, slot) in [
            (
                "buildCommand",
                &file.build_command,
                &mut layer.build_command,
            ),
            (
                "startCommand",
                &file.start_command,
                &mut layer.start_command,
            ),
        ] {
            match value {
                None => {}
                Some(Value::String(s)) => *slot = non_empty(Some(s.clone())),
                Some(other) => return Err(type_error(key, "a string", other)),
            }
        }
        if let Some(value) = &file.port {
            let port = match value {
                Value::String(s) => s.parse(),
                Value::Number(n) => match n.as_i64() {
                    Some(n) => Port::from_i64(n),
                    None => Err(SpecError::invalid(
                        "port",
                        n.to_string(),
                        "must be a number between 1 and 65535",
                    )),
                },
                _ => return Err(type_error("port", "a port number", value)),
            };
            layer.port = Some(port.map_err(key_error(LEAPCELL, "port"))?);
        }
        if let Some(value) = &file.memory {
            let memory = match value {
                Value::String(s) => MemoryMb::parse(s),
                Value::Number(n) => MemoryMb::parse(&n.to_string()),
                _ => return Err(type_error("memory", "a size such as 512mb", value)),
            };
            layer.memory = Some(memory.map_err(key_error(LEAPCELL, "memory"))?);
        }
        warnings.extend(file.unused.into_keys().map(|key| ConfigWarning {
            file: LEAPCELL,
            key: echo(&key).into_owned(),
        }));
        Ok((layer, warnings))
    }
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

/// A YAML key that is not text, as the warning names it (`1`, `true`, `[a, b]`).
fn yaml_key_text(key: &serde_yaml_ng::Value) -> String {
    serde_yaml_ng::to_string(key)
        .map(|s| s.trim_end().to_string())
        .unwrap_or_else(|_| yaml_kind(key).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Runtime;

    /// The layer of a leapcell.yaml, warnings aside.
    fn leapcell(text: &str) -> Result<SpecLayer, SpecError> {
        SpecLayer::from_leapcell_yaml(text).map(|(layer, _)| layer)
    }

    #[test]
    fn leapcell_runtime_spellings_carry_their_version() {
        for (text, name) in [
            ("runtime: nodejs20\n", "node@20"),
            ("runtime: python3.13\n", "python@3.13"),
            ("runtime: go1.24\n", "go@1.24"),
            ("runtime: node\n", "node"),
        ] {
            let layer = leapcell(text).unwrap();
            assert_eq!(layer.runtime.unwrap().to_string(), name);
        }
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
        let layer = leapcell(yaml).unwrap();
        assert_eq!(layer.runtime, Some("python@3.11".parse().unwrap()));
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
        let layer = leapcell("port: \"3000\"\nmemory: 512\nbuildCommand: \"\"\n").unwrap();
        assert_eq!(layer.port, Some(Port::new(3000).unwrap()));
        assert_eq!(layer.memory, Some(MemoryMb::new(512).unwrap()));
        assert_eq!(layer.build_command, None);

        let layer = leapcell("memory: 512MB\nstartCommand: |\n  node server.js\n").unwrap();
        assert_eq!(layer.memory, Some(MemoryMb::new(512).unwrap()));
        assert_eq!(layer.start_command.as_deref(), Some("node server.js"));

        let layer = leapcell("runtime:\nport: ~\n").unwrap();
        assert_eq!(layer, SpecLayer::default());
    }

    #[test]
    fn leapcell_empty_file() {
        assert_eq!(leapcell("").unwrap(), SpecLayer::default());
        assert_eq!(leapcell("# nothing\n").unwrap(), SpecLayer::default());
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
            let err = leapcell(yaml).unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with("leapcell.yaml: "), "{yaml}: {msg}");
            assert!(msg.contains(key), "{yaml}: {msg}");
            assert!(msg.contains(rule), "{yaml}: {msg}");
        }
    }

    #[test]
    fn leapcell_malformed() {
        let err = leapcell("port: [").unwrap_err();
        assert!(err.to_string().starts_with("leapcell.yaml: not valid YAML"));
        let err = leapcell("- a\n- b\n").unwrap_err();
        assert!(err.to_string().contains("mapping"), "{err}");
    }

    #[test]
    fn unused_leapcell_keys_are_warnings_not_errors() {
        let yaml = "
runtime: node
region: us-east-1
serviceName: whatever
port: 3000
1: numbered
";
        let (layer, warnings) = SpecLayer::from_leapcell_yaml(yaml).unwrap();
        assert_eq!(layer.runtime, Some(Runtime::Node.into()));
        assert_eq!(layer.port, Some(Port::new(3000).unwrap()));
        let texts: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "leapcell.yaml: key `1` is not used by Hoist; ignored",
                "leapcell.yaml: key `region` is not used by Hoist; ignored",
                "leapcell.yaml: key `serviceName` is not used by Hoist; ignored",
            ]
        );
        // A file of only used keys warns about nothing.
        let (_, warnings) =
            SpecLayer::from_leapcell_yaml("runtime: python\nbuildCommand: make\n").unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}
