//! `hoist.toml`: Hoist's own config file.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::key_error;
use crate::{EnvVars, MemoryMb, Port, SpecError, SpecLayer, echo, layer::non_empty};

const HOIST_TOML: &str = "hoist.toml";

/// The keys of `hoist.toml`, as [`HoistToml`] names its fields: what an unknown key is
/// compared with for a suggestion. (A test checks each one is a field.)
const HOIST_TOML_KEYS: [&str; 19] = [
    "runtime",
    "build",
    "build_command",
    "start",
    "start_command",
    "port",
    "memory",
    "env",
    "min_instances",
    "max_instances",
    "concurrency",
    "idle_freeze",
    "idle_stop",
    "cron",
    "auto_deploy",
    "poll_interval",
    "watch",
    // startup CPU boost (issue 15)
    "startup_boost",
    // static files (issue 15)
    "static",
];

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HoistToml {
    runtime: Option<toml::Value>,
    build: Option<toml::Value>,
    build_command: Option<toml::Value>,
    start: Option<toml::Value>,
    start_command: Option<toml::Value>,
    port: Option<toml::Value>,
    memory: Option<toml::Value>,
    env: Option<toml::Value>,
    min_instances: Option<toml::Value>,
    max_instances: Option<toml::Value>,
    concurrency: Option<toml::Value>,
    idle_freeze: Option<toml::Value>,
    idle_stop: Option<toml::Value>,
    cron: Option<toml::Value>,
    auto_deploy: Option<toml::Value>,
    poll_interval: Option<toml::Value>,
    watch: Option<toml::Value>,
    // ---- startup CPU boost (issue 15) ----
    startup_boost: Option<toml::Value>,
    /// `static = "dist"`, or a `[static]` table with `dir`, `prefix`, `spa`.
    #[serde(rename = "static")]
    static_files: Option<toml::Value>,
    /// Every other key: refused, with the nearest known key as a suggestion.
    #[serde(flatten)]
    unknown: BTreeMap<String, toml::Value>,
}

impl SpecLayer {
    /// Reads Hoist's own `hoist.toml`.
    ///
    /// Unlike leapcell.yaml, unknown keys are errors: the file is ours, so an unknown key is a
    /// typo that would otherwise silently deploy with the wrong settings.
    pub fn from_hoist_toml(text: &str) -> Result<SpecLayer, SpecError> {
        use toml::Value;

        let file_error = |message: String| SpecError::file(HOIST_TOML, message);
        let file: HoistToml = toml::from_str(text)
            .map_err(|e| file_error(format!("not valid TOML: {}", e.to_string().trim_end())))?;
        if let Some(key) = file.unknown.keys().next() {
            return Err(file_error(unknown_key(key)));
        }

        let type_error = |key: &str, expected: &str, value: &Value| {
            file_error(format!(
                "key `{key}`: must be {expected}, got {}",
                value.type_str()
            ))
        };
        let string = |key: &str, value: &Value| match value {
            Value::String(s) => Ok(s.clone()),
            _ => Err(type_error(key, "a string", value)),
        };

        let mut layer = SpecLayer::default();
        if let Some(value) = &file.runtime {
            layer.runtime = Some(
                string("runtime", value)?
                    .parse()
                    .map_err(key_error(HOIST_TOML, "runtime"))?,
            );
        }
        for (short, long, slot) in [
            (
                "build",
                (&file.build, &file.build_command),
                &mut layer.build_command,
            ),
            (
                "start",
                (&file.start, &file.start_command),
                &mut layer.start_command,
            ),
        ] {
            let (key, value) = match long {
                (Some(_), Some(_)) => {
                    return Err(file_error(format!(
                        "keys `{short}` and `{short}_command` mean the same thing; keep only one"
                    )));
                }
                (Some(v), None) => (short.to_string(), v),
                (None, Some(v)) => (format!("{short}_command"), v),
                (None, None) => continue,
            };
            *slot = non_empty(Some(string(&key, value)?));
        }
        if let Some(value) = &file.port {
            let port = match value {
                Value::Integer(n) => Port::from_i64(*n),
                Value::String(s) => s.parse(),
                _ => return Err(type_error("port", "a port number", value)),
            };
            layer.port = Some(port.map_err(key_error(HOIST_TOML, "port"))?);
        }
        if let Some(value) = &file.memory {
            let memory = match value {
                Value::Integer(n) => MemoryMb::parse(&n.to_string()),
                Value::String(s) => MemoryMb::parse(s),
                _ => {
                    return Err(type_error(
                        "memory",
                        "a size such as 512 or \"512mb\"",
                        value,
                    ));
                }
            };
            layer.memory = Some(memory.map_err(key_error(HOIST_TOML, "memory"))?);
        }
        if let Some(value) = &file.env {
            let Value::Table(vars) = value else {
                return Err(type_error("env", "a table ([env])", value));
            };
            layer.env = env_from_toml(vars).map_err(key_error(HOIST_TOML, "env"))?;
        }
        for (key, value) in [
            ("min_instances", &file.min_instances),
            ("max_instances", &file.max_instances),
            ("concurrency", &file.concurrency),
            ("idle_freeze", &file.idle_freeze),
            ("idle_stop", &file.idle_stop),
        ] {
            let Some(value) = value else { continue };
            let text = match value {
                Value::Integer(n) => n.to_string(),
                Value::String(s) => s.clone(),
                _ => {
                    return Err(type_error(
                        key,
                        "a number or a duration such as \"30s\"",
                        value,
                    ));
                }
            };
            layer
                .scaling
                .set(key, &text)
                .map_err(key_error(HOIST_TOML, key))?;
        }
        if let Some(value) = &file.startup_boost {
            let text = match value {
                Value::Boolean(b) => b.to_string(),
                Value::String(s) => s.clone(),
                _ => return Err(type_error("startup_boost", "true or false", value)),
            };
            layer
                .scaling
                .set("startup_boost", &text)
                .map_err(key_error(HOIST_TOML, "startup_boost"))?;
        }
        if let Some(value) = &file.cron {
            layer.cron = Some(super::cron_toml::cron_jobs(value)?);
        }
        if let Some(value) = &file.auto_deploy {
            layer.auto_deploy.mode = Some(
                string("auto_deploy", value)?
                    .parse()
                    .map_err(key_error(HOIST_TOML, "auto_deploy"))?,
            );
        }
        if let Some(value) = &file.poll_interval {
            layer
                .auto_deploy
                .set_poll_interval(&string("poll_interval", value)?)
                .map_err(key_error(HOIST_TOML, "poll_interval"))?;
        }
        if let Some(value) = &file.watch {
            let globs = match value {
                Value::Array(items) => items
                    .iter()
                    .map(|v| string("watch", v))
                    .collect::<Result<Vec<_>, _>>()?,
                Value::String(s) => vec![s.clone()],
                _ => return Err(type_error("watch", "an array of globs", value)),
            };
            layer
                .auto_deploy
                .set_watch(globs)
                .map_err(key_error(HOIST_TOML, "watch"))?;
        }
        if let Some(value) = &file.static_files {
            layer.static_files = super::static_toml::static_layer(value)?;
        }
        Ok(layer)
    }
}

/// "unknown key `min_instance`: did you mean `min_instances`?", or the list of keys when none
/// is near: a typo is told apart from a setting Hoist does not have.
fn unknown_key(key: &str) -> String {
    let nearest = HOIST_TOML_KEYS
        .iter()
        .map(|known| (strsim::damerau_levenshtein(key, known), *known))
        .min();
    match nearest {
        // Within a third of the key's length: `strat` → `start`, `min_instance` →
        // `min_instances`, `envs` → `env`; `region` suggests nothing.
        Some((distance, known)) if distance <= (known.len() / 3).max(1) => {
            format!("unknown key `{}`: did you mean `{known}`?", echo(key))
        }
        _ => format!(
            "unknown key `{}`; expected one of {}",
            echo(key),
            HOIST_TOML_KEYS.join(", ")
        ),
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
    fn runtime_versions_in_hoist_toml() {
        for (text, name) in [
            ("runtime = \"node@22\"", "node@22"),
            ("runtime = \"python@3.13\"", "python@3.13"),
            ("runtime = \"python+node\"", "python+node"),
        ] {
            let layer = SpecLayer::from_hoist_toml(text).unwrap();
            assert_eq!(layer.runtime.unwrap().to_string(), name);
        }
        let err = SpecLayer::from_hoist_toml("runtime = \"node@x\"").unwrap_err();
        assert!(err.to_string().contains("key `runtime`"), "{err}");
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
        assert_eq!(layer.runtime, Some(Runtime::Node.into()));
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
            (
                "runtime = 1979-05-27",
                "key `runtime`: must be a string, got datetime",
            ),
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
    fn hoist_toml_startup_boost() {
        let off = SpecLayer::from_hoist_toml("startup_boost = false\n").unwrap();
        assert_eq!(off.scaling.startup_boost, Some(false));
        let on = SpecLayer::from_hoist_toml("startup_boost = \"on\"\n").unwrap();
        assert_eq!(on.scaling.startup_boost, Some(true));
        assert_eq!(
            SpecLayer::from_hoist_toml("")
                .unwrap()
                .scaling
                .startup_boost,
            None
        );
        let msg = SpecLayer::from_hoist_toml("startup_boost = 2\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "hoist.toml: key `startup_boost`: must be true or false, got integer"
        );
    }

    #[test]
    fn an_unknown_hoist_toml_key_names_the_file_the_key_and_the_nearest_known_one() {
        let cases = [
            ("min_instance = 1", "min_instance", "min_instances"),
            ("strat = \"x\"", "strat", "start"),
            ("[envs]\nA = \"1\"", "envs", "env"),
            ("idle_frezee = \"30s\"", "idle_frezee", "idle_freeze"),
            ("max-instances = 3", "max-instances", "max_instances"),
            ("buildcommand = \"make\"", "buildcommand", "build_command"),
        ];
        for (text, key, nearest) in cases {
            let msg = SpecLayer::from_hoist_toml(text).unwrap_err().to_string();
            assert_eq!(
                msg,
                format!("hoist.toml: unknown key `{key}`: did you mean `{nearest}`?"),
                "{text}"
            );
        }
        // Nothing near: the known keys are listed instead of a far-fetched guess.
        let msg = SpecLayer::from_hoist_toml("region = \"eu\"")
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "hoist.toml: unknown key `region`; expected one of runtime, build, build_command, start, start_command, port, memory, env, min_instances, max_instances, concurrency, idle_freeze, idle_stop, cron, auto_deploy, poll_interval, watch, startup_boost, static"
        );
    }

    #[test]
    fn every_listed_hoist_toml_key_is_a_field() {
        for key in HOIST_TOML_KEYS {
            let file: HoistToml = toml::from_str(&format!("{key} = 1")).unwrap();
            assert!(file.unknown.is_empty(), "{key} is not a field");
        }
    }

    #[test]
    fn a_duration_without_a_unit_in_hoist_toml_is_refused() {
        let layer = SpecLayer::from_hoist_toml(
            "auto_deploy = \"poll\"\npoll_interval = \"2s\"\nwatch = [\"api/**\"]\n",
        )
        .unwrap();
        assert_eq!(layer.auto_deploy.mode, Some(crate::AutoDeploy::Poll));
        assert_eq!(layer.auto_deploy.poll_interval_ms, Some(2000));
        assert_eq!(layer.auto_deploy.watch, Some(vec!["api/**".to_string()]));
        let err = SpecLayer::from_hoist_toml("auto_deploy = \"always\"\n").unwrap_err();
        assert!(err.to_string().contains("auto_deploy"), "{err}");
        let msg = SpecLayer::from_hoist_toml("idle_freeze = 30\n")
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with(
                "hoist.toml: key `idle_freeze`: invalid idle_freeze '30': add a unit, e.g. 30s"
            ),
            "{msg}"
        );
    }
}
