use hoist_core::{
    AutoDeploy, DeploymentId, DeploymentState, DeploymentTrigger, RuntimeName, ServiceName,
    ServiceSpec, StaticFolder, UploadId,
};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::ScalingSettings;

/// A deploy as the client asks for it (`POST /v1/deployments`); every field but `source` (or
/// `upload` in its place) is optional and, when given, wins over `hoist.toml` and
/// `leapcell.yaml`. The scaling settings sit at the top level, beside the others.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct DeployRequest {
    /// A git URL, or the absolute path of a local git repository (or a directory in one) on
    /// the server's machine. Left out (empty) when `upload` names the source.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// The service name; derived from the source when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The app's directory inside the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// A runtime and maybe its version: `node@22`, `python@3.13`, `go@1.24`, `python+node`,
    /// or Leapcell's `nodejs20`, `python3.13`. Detected from the app's files when not given;
    /// with no version, the project's pin (`.nvmrc`, `package.json` `engines.node`,
    /// `.python-version`, `runtime.txt`, `go.mod`) chooses it, else the service keeps the one
    /// it runs on, else the family's default. A version not available is refused (400,
    /// field `runtime`) with the list of those that are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeName>,
    /// The build command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// The start command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// The port the app listens on (1 to 65535).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// The memory limit, e.g. `512mb` or `1gb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// `KEY=VALUE` assignments; in a recorded request only the names are kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(flatten)]
    pub scaling: ScalingSettings,
    // Deploy from anywhere (UPLOAD's fields).
    /// An upload of this service (`POST /v1/services/{name}/uploads`) whose commit is
    /// deployed, in place of `source`; the deployment's source is then `upload:<commit>` and
    /// `branch` only labels where the commit came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "u-0123456789")]
    pub upload: Option<UploadId>,
    // ---- deploying again by itself (issue 14: deploy on push) ----
    /// `off`, `push` (the default: the git host's webhook, `/hooks/NAME/...`, deploys) or
    /// `poll` (the server asks the remote every `poll_interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_deploy: Option<AutoDeploy>,
    /// How often `poll` asks the remote: a duration from `1s` to `24h` (default `1m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval: Option<String>,
    /// Globs of repository paths (`api/**`): a push deploys only when a changed file
    /// matches one. An empty list: every push to the branch deploys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<Vec<String>>,
    // ---- static files served by the gateway (issue 15) ----
    /// The folder of the build's output the gateway serves itself, relative to the app's
    /// root directory (`dist`); without it, a common layout is detected.
    #[serde(rename = "static", default, skip_serializing_if = "Option::is_none")]
    pub static_dir: Option<String>,
    /// Where the folder's files appear in the site (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_prefix: Option<String>,
    /// A path that matches no file and does not look like one serves the root `index.html`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_spa: Option<bool>,
}

/// The fields of [`DeployRequest`] but the scaling ones, decoded on their own: serde's
/// `deny_unknown_fields` does not work together with `flatten`, and a flattened part's errors
/// lose their field name. So the body is split by key, each part decoded strictly with its
/// path, and a key that belongs to neither part is refused by this struct.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployFields {
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    branch: Option<String>,
    #[serde(default)]
    root: Option<String>,
    #[serde(default)]
    runtime: Option<RuntimeName>,
    #[serde(default)]
    build: Option<String>,
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    port: Option<i64>,
    #[serde(default)]
    memory: Option<String>,
    #[serde(default)]
    env: Vec<String>,
    // UPLOAD's field.
    #[serde(default)]
    upload: Option<UploadId>,
    // ---- deploy on push ----
    #[serde(default)]
    auto_deploy: Option<AutoDeploy>,
    #[serde(default)]
    poll_interval: Option<String>,
    #[serde(default)]
    watch: Option<Vec<String>>,
    // ---- static files ----
    #[serde(default, rename = "static")]
    static_dir: Option<String>,
    #[serde(default)]
    static_prefix: Option<String>,
    #[serde(default)]
    static_spa: Option<bool>,
}

impl<'de> Deserialize<'de> for DeployRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut body = deserializer.deserialize_map(NoRepeatedKeys)?;
        let scaling: serde_json::Map<_, _> = ScalingSettings::FIELDS
            .iter()
            .filter_map(|f| body.remove_entry(*f))
            .collect();
        let scaling: ScalingSettings =
            crate::from_json_value(scaling.into()).map_err(|e| D::Error::custom(e.to_string()))?;
        // An error about the body as a whole (a missing field) is passed on as serde's own
        // message: the caller's decoder says it is about the body.
        let whole = |e: crate::BodyError| {
            if e.field == "." || e.field.is_empty() {
                D::Error::custom(e.message)
            } else {
                D::Error::custom(e.to_string())
            }
        };
        let f: DeployFields = crate::from_json_value(body.into()).map_err(|e| {
            if e.message.starts_with("unknown field") {
                // serde lists the fields of this part only; the client may send both.
                let field = e.message.split('`').nth(1).unwrap_or_default().to_string();
                D::Error::custom(format!(
                    "unknown field `{field}`, expected one of {}",
                    DeployRequest::FIELDS
                        .iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            } else {
                whole(e)
            }
        })?;
        // `source` may be left out only for an upload; without either the message is serde's
        // own, as it was when `source` was required.
        if f.source.is_none() && f.upload.is_none() {
            return Err(D::Error::custom("missing field `source`"));
        }
        Ok(DeployRequest {
            source: f.source.unwrap_or_default(),
            name: f.name,
            branch: f.branch,
            root: f.root,
            runtime: f.runtime,
            build: f.build,
            start: f.start,
            port: f.port,
            memory: f.memory,
            env: f.env,
            scaling,
            upload: f.upload,
            auto_deploy: f.auto_deploy,
            poll_interval: f.poll_interval,
            watch: f.watch,
            static_dir: f.static_dir,
            static_prefix: f.static_prefix,
            static_spa: f.static_spa,
        })
    }
}

/// A JSON object as a map, refusing a key given twice (`{"port":1,"port":2}`), as the
/// derived decoders of the other bodies do: the last value must not win silently.
struct NoRepeatedKeys;

impl<'de> serde::de::Visitor<'de> for NoRepeatedKeys {
    type Value = serde_json::Map<String, serde_json::Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut body = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if body.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("duplicate field `{key}`")));
            }
            let value = map.next_value()?;
            body.insert(key, value);
        }
        Ok(body)
    }
}

impl DeployRequest {
    /// Every JSON field a deploy request may have.
    pub const FIELDS: [&'static str; 23] = [
        "source",
        "name",
        "branch",
        "root",
        "runtime",
        "build",
        "start",
        "port",
        "memory",
        "env",
        "min_instances",
        "max_instances",
        "concurrency",
        "idle_freeze",
        "idle_stop",
        // startup CPU boost (issue 15)
        "startup_boost",
        // UPLOAD's.
        "upload",
        // deploy on push
        "auto_deploy",
        "poll_interval",
        "watch",
        // static files
        "static",
        "static_prefix",
        "static_spa",
    ];
}

/// `POST /v1/services/{name}/rollback`: to the given deployment, or (no body, or no
/// `deployment`) to the one live before the current one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "d-0123456789")]
    pub deployment: Option<DeploymentId>,
}

/// One step of a deployment's pipeline, with its timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentStep {
    /// `fetch`, `build`, `start`, ...
    pub step: String,
    /// `running`, `done` or `failed`.
    pub state: String,
    /// Milliseconds since the Unix epoch.
    pub started_at: i64,
    /// Milliseconds since the Unix epoch; `null` while the step runs.
    pub finished_at: Option<i64>,
}

/// One deployment: one build of one service, and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Deployment {
    #[schema(value_type = String, example = "d-0123456789")]
    pub id: DeploymentId,
    #[schema(value_type = String)]
    pub service: ServiceName,
    pub state: DeploymentState,
    pub source: String,
    pub branch: Option<String>,
    pub commit_sha: Option<String>,
    /// What the client asked for, kept to explain the resolved spec (`env` values removed).
    /// Requests recorded by older servers have `null` for the fields not given.
    #[schema(value_type = DeployRequest)]
    pub request: serde_json::Value,
    /// The resolved spec; `null` until the deployment got far enough to resolve one.
    pub spec: Option<ServiceSpec>,
    pub image: Option<String>,
    pub runtime_version: Option<String>,
    pub failure_reason: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Milliseconds since the Unix epoch.
    pub updated_at: i64,
    /// Milliseconds since the Unix epoch; `null` until the pipeline ended.
    pub finished_at: Option<i64>,
    pub steps: Vec<DeploymentStep>,
    /// What started it: `{"kind": "cli"}`, `api`, `poll`, or
    /// `{"kind": "push", "delivery": "<the git host's delivery id>"}`.
    pub trigger: DeploymentTrigger,
    /// When a rollback last made this deployment live again (milliseconds since the Unix
    /// epoch): a rollback starts no deployment of its own, it is recorded on the one it made
    /// live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_at: Option<i64>,
    // ---- static files (issue 15) ----
    /// The static folder its deploy took from the build, which the gateway serves while it
    /// is live (files, bytes, where and how); left out for a deployment without one.
    #[serde(rename = "static", default, skip_serializing_if = "Option::is_none")]
    pub static_files: Option<StaticFolder>,
}
