use hoist_core::{ScalingLayer, SpecError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Scaling settings as a client sends them: the body of `POST /v1/services/{name}/scale`, and
/// flattened into a deploy request. Unset ones keep the service's current values. Counts and
/// durations are checked when applied (`max_instances` between 1 and 100, `min_instances` at
/// most `max_instances`, idle times between 100ms and 7d, `idle_stop` after `idle_freeze`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct ScalingSettings {
    /// Instances kept running even with no traffic (0: serverless, the default).
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_instances: Option<u32>,
    /// The most instances that may run at once.
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_instances: Option<u32>,
    /// In-flight requests one instance takes before another is started.
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Idle time before an instance is frozen: a duration with a unit, e.g. `30s`, `500ms`.
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_freeze: Option<String>,
    /// Idle time before a frozen instance is stopped, e.g. `15m`.
    #[cfg_attr(feature = "cli", arg(long))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_stop: Option<String>,
    // ---- startup CPU boost (issue 15) ----
    /// A starting instance gets at least a whole core until it is ready and for a settle time
    /// after, then its memory's share (on by default; `--startup-boost off`).
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "on|off", value_parser = parse_switch_arg)
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_boost: Option<bool>,
}

#[cfg(feature = "cli")]
fn parse_switch_arg(s: &str) -> Result<bool, String> {
    hoist_core::parse_switch("--startup-boost", s).map_err(|e| e.to_string())
}

impl ScalingSettings {
    /// The JSON names of the fields, for bodies that flatten these settings.
    pub const FIELDS: [&'static str; 6] = [
        "min_instances",
        "max_instances",
        "concurrency",
        "idle_freeze",
        "idle_stop",
        "startup_boost",
    ];

    pub fn is_empty(&self) -> bool {
        *self == ScalingSettings::default()
    }

    /// The one conversion into the domain's layer: durations parsed and bounded, errors naming
    /// the setting.
    pub fn to_layer(&self) -> Result<ScalingLayer, SpecError> {
        let mut layer = ScalingLayer {
            min_instances: self.min_instances,
            max_instances: self.max_instances,
            concurrency: self.concurrency,
            startup_boost: self.startup_boost,
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

impl TryFrom<&ScalingSettings> for ScalingLayer {
    type Error = SpecError;

    fn try_from(settings: &ScalingSettings) -> Result<ScalingLayer, SpecError> {
        settings.to_layer()
    }
}
