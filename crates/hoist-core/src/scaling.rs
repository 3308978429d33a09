use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{SpecError, format_duration, millis, parse_duration_in};

/// How a service scales: how many instances may run, how many requests each takes at once, and
/// when an idle instance is frozen and then stopped.
///
/// Serverless is the default (`min_instances = 0`): with no traffic nothing runs. With
/// `min_instances >= 1` that many instances stay warm and are never frozen, like Leapcell's
/// persistent mode.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scaling {
    pub min_instances: u32,
    pub max_instances: u32,
    /// In-flight requests one instance takes before another is started.
    pub concurrency: u32,
    /// Idle time (no request in flight) after which an instance is frozen.
    pub idle_freeze_ms: u64,
    /// Idle time after which a frozen instance is stopped and its memory released.
    pub idle_stop_ms: u64,
    // ---- startup CPU boost (issue 15) ----
    /// Whether a starting instance gets at least a whole core until it is ready and for a
    /// settle time after (the server's `--startup-boost-settle`), then its memory's share.
    /// Settings stored before the boost existed have no such field and load as on.
    #[serde(default = "boost_on")]
    pub startup_boost: bool,
}

fn boost_on() -> bool {
    true
}

impl Default for Scaling {
    fn default() -> Self {
        Scaling {
            min_instances: 0,
            max_instances: 10,
            concurrency: 80,
            idle_freeze_ms: 30_000,
            idle_stop_ms: 15 * 60_000,
            startup_boost: true,
        }
    }
}

/// Scaling settings as one source gives them (flags, `hoist.toml`, `hoist scale`); unset fields
/// keep whatever the service had.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScalingLayer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_instances: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_instances: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_freeze_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_stop_ms: Option<u64>,
    // ---- startup CPU boost (issue 15) ----
    #[serde(skip_serializing_if = "Option::is_none")]
    pub startup_boost: Option<bool>,
}

/// Upper bounds that keep one service from taking the whole machine by a typo.
pub const MAX_INSTANCES_LIMIT: u32 = 100;
pub const CONCURRENCY_LIMIT: u32 = 1000;
/// Below this, freezing and thawing would happen between the requests of one page load.
pub const MIN_IDLE_FREEZE: Duration = Duration::from_millis(100);
/// The longest an idle instance is kept (frozen or not). A week covers any traffic pattern
/// with a weekly rhythm; an instance wanted around for longer than that is what persistent
/// mode (`min_instances`) is for, and holding memory for an idle one beyond it is a typo more
/// likely than a wish.
const MAX_IDLE: Duration = Duration::from_secs(7 * 24 * 3600);

impl ScalingLayer {
    pub fn is_empty(&self) -> bool {
        *self == ScalingLayer::default()
    }

    /// `stronger`'s settings win.
    pub fn merge(self, stronger: ScalingLayer) -> ScalingLayer {
        ScalingLayer {
            min_instances: stronger.min_instances.or(self.min_instances),
            max_instances: stronger.max_instances.or(self.max_instances),
            concurrency: stronger.concurrency.or(self.concurrency),
            idle_freeze_ms: stronger.idle_freeze_ms.or(self.idle_freeze_ms),
            idle_stop_ms: stronger.idle_stop_ms.or(self.idle_stop_ms),
            startup_boost: stronger.startup_boost.or(self.startup_boost),
        }
    }

    /// Sets one setting from its user-facing name (`min_instances` or `min-instances`) and text
    /// (`3`, `500ms`, `15m`).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), SpecError> {
        let count = |field: &'static str| {
            value.trim().parse::<u32>().map_err(|_| {
                SpecError::invalid(field, value.trim(), "must be a whole number, 0 or more")
            })
        };
        // Checked against the bounds here, before the conversion to milliseconds: a huge
        // value must be refused, not wrapped into an ordinary-looking one. How idle_stop
        // relates to idle_freeze is checked by `Scaling::validate`, once both are known.
        let duration = |field: &'static str| {
            parse_duration_in(field, value, MIN_IDLE_FREEZE, MAX_IDLE).map(millis)
        };
        match key.replace('-', "_").as_str() {
            "min_instances" => self.min_instances = Some(count("min_instances")?),
            "max_instances" => self.max_instances = Some(count("max_instances")?),
            "concurrency" => self.concurrency = Some(count("concurrency")?),
            "idle_freeze" => self.idle_freeze_ms = Some(duration("idle_freeze")?),
            "idle_stop" => self.idle_stop_ms = Some(duration("idle_stop")?),
            "startup_boost" => self.startup_boost = Some(parse_switch("startup_boost", value)?),
            _ => {
                return Err(SpecError::invalid(
                    "scaling setting",
                    key,
                    "expected one of min_instances, max_instances, concurrency, idle_freeze, idle_stop, startup_boost",
                ));
            }
        }
        Ok(())
    }
}

/// `on`/`off` (also `true`/`false`, `yes`/`no`, `1`/`0`), as a flag or a key's text gives it.
pub fn parse_switch(field: &'static str, value: &str) -> Result<bool, SpecError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(SpecError::invalid(
            field,
            value.trim(),
            "expected on or off",
        )),
    }
}

impl Scaling {
    /// The settings after `layer` is applied, checked as a whole (`min <= max`, and so on).
    pub fn apply(&self, layer: &ScalingLayer) -> Result<Scaling, SpecError> {
        let next = Scaling {
            min_instances: layer.min_instances.unwrap_or(self.min_instances),
            max_instances: layer.max_instances.unwrap_or(self.max_instances),
            concurrency: layer.concurrency.unwrap_or(self.concurrency),
            idle_freeze_ms: layer.idle_freeze_ms.unwrap_or(self.idle_freeze_ms),
            idle_stop_ms: layer.idle_stop_ms.unwrap_or(self.idle_stop_ms),
            startup_boost: layer.startup_boost.unwrap_or(self.startup_boost),
        };
        next.validate()?;
        Ok(next)
    }

    pub fn validate(&self) -> Result<(), SpecError> {
        if !(1..=MAX_INSTANCES_LIMIT).contains(&self.max_instances) {
            return Err(SpecError::invalid(
                "max_instances",
                self.max_instances.to_string(),
                format!("must be between 1 and {MAX_INSTANCES_LIMIT}"),
            ));
        }
        if self.min_instances > self.max_instances {
            return Err(SpecError::invalid(
                "min_instances",
                self.min_instances.to_string(),
                format!("must not exceed max_instances ({})", self.max_instances),
            ));
        }
        if !(1..=CONCURRENCY_LIMIT).contains(&self.concurrency) {
            return Err(SpecError::invalid(
                "concurrency",
                self.concurrency.to_string(),
                format!("must be between 1 and {CONCURRENCY_LIMIT}"),
            ));
        }
        let freeze = self.idle_freeze();
        if freeze < MIN_IDLE_FREEZE || freeze > MAX_IDLE {
            return Err(SpecError::invalid(
                "idle_freeze",
                format_duration(freeze),
                format!(
                    "must be between {} and {}",
                    format_duration(MIN_IDLE_FREEZE),
                    format_duration(MAX_IDLE)
                ),
            ));
        }
        if self.idle_stop() < freeze || self.idle_stop() > MAX_IDLE {
            return Err(SpecError::invalid(
                "idle_stop",
                format_duration(self.idle_stop()),
                format!(
                    "must be at least idle_freeze ({}) and at most {}",
                    format_duration(freeze),
                    format_duration(MAX_IDLE)
                ),
            ));
        }
        Ok(())
    }

    pub fn idle_freeze(&self) -> Duration {
        Duration::from_millis(self.idle_freeze_ms)
    }

    pub fn idle_stop(&self) -> Duration {
        Duration::from_millis(self.idle_stop_ms)
    }

    /// Persistent mode: instances are kept warm, never frozen below the minimum.
    pub fn is_persistent(&self) -> bool {
        self.min_instances > 0
    }

    /// How many instances a switch to a new plan (a deploy, an env change, a rollback)
    /// starts, given how many serve now: as many as serve (a loaded service must not drop to
    /// one instance and a wave of cold starts), at least the minimum, and at least one when
    /// the new plan must prove it starts; never more than `max_instances`.
    pub fn target_instances(&self, running: usize, at_least_one: bool) -> usize {
        running
            .max(self.min_instances as usize)
            .max(usize::from(at_least_one))
            .min(self.max_instances as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_switch_starts_what_serves_now_within_min_and_max() {
        let s = Scaling {
            min_instances: 2,
            max_instances: 4,
            ..Scaling::default()
        };
        assert_eq!(s.target_instances(0, false), 2);
        assert_eq!(s.target_instances(3, false), 3);
        // More serve than the (lowered) maximum allows: the switch brings them down to it.
        assert_eq!(s.target_instances(9, true), 4);
        let serverless = Scaling::default();
        assert_eq!(serverless.target_instances(0, false), 0);
        assert_eq!(serverless.target_instances(0, true), 1);
    }

    #[test]
    fn defaults_are_serverless() {
        let s = Scaling::default();
        assert!(!s.is_persistent());
        assert_eq!(s.concurrency, 80);
        assert_eq!(s.max_instances, 10);
        assert_eq!(s.idle_freeze(), Duration::from_secs(30));
        assert_eq!(s.idle_stop(), Duration::from_secs(900));
        s.validate().unwrap();
    }

    #[test]
    fn set_parses_names_counts_and_durations() {
        let mut l = ScalingLayer::default();
        l.set("min-instances", "1").unwrap();
        l.set("max_instances", "3").unwrap();
        l.set("concurrency", "5").unwrap();
        l.set("idle-freeze", "500ms").unwrap();
        l.set("idle_stop", "15m").unwrap();
        let s = Scaling::default().apply(&l).unwrap();
        assert_eq!(
            s,
            Scaling {
                min_instances: 1,
                max_instances: 3,
                concurrency: 5,
                idle_freeze_ms: 500,
                idle_stop_ms: 900_000,
                startup_boost: true,
            }
        );
        assert!(s.is_persistent());
    }

    #[test]
    fn bad_values_name_the_setting() {
        let mut l = ScalingLayer::default();
        assert!(
            l.set("concurrency", "-1")
                .unwrap_err()
                .to_string()
                .contains("concurrency")
        );
        assert!(
            l.set("idle_freeze", "soon")
                .unwrap_err()
                .to_string()
                .contains("idle_freeze")
        );
        assert!(
            l.set("replicas", "2")
                .unwrap_err()
                .to_string()
                .contains("replicas")
        );

        let cases = [
            (
                ScalingLayer {
                    max_instances: Some(0),
                    ..Default::default()
                },
                "max_instances",
            ),
            (
                ScalingLayer {
                    max_instances: Some(101),
                    ..Default::default()
                },
                "max_instances",
            ),
            (
                ScalingLayer {
                    min_instances: Some(3),
                    max_instances: Some(2),
                    ..Default::default()
                },
                "must not exceed max_instances (2)",
            ),
            (
                ScalingLayer {
                    concurrency: Some(0),
                    ..Default::default()
                },
                "concurrency",
            ),
            (
                ScalingLayer {
                    idle_freeze_ms: Some(10),
                    ..Default::default()
                },
                "idle_freeze",
            ),
            (
                ScalingLayer {
                    idle_freeze_ms: Some(60_000),
                    idle_stop_ms: Some(1000),
                    ..Default::default()
                },
                "idle_stop",
            ),
        ];
        for (layer, expected) in cases {
            let err = Scaling::default().apply(&layer).unwrap_err().to_string();
            assert!(err.contains(expected), "{err} should contain {expected}");
        }
    }

    #[test]
    fn idle_durations_are_checked_at_and_past_their_bounds() {
        for field in ["idle_freeze", "idle_stop"] {
            let mut l = ScalingLayer::default();
            l.set(field, "100ms").unwrap();
            l.set(field, "7d").unwrap();
            l.set(field, "168h").unwrap();
            for bad in ["99ms", "7d1ms", "8d", "213503982335d", "36500d"] {
                let err = l.set(field, bad).unwrap_err().to_string();
                assert!(
                    err.starts_with(&format!("invalid {field} '{bad}'")),
                    "{field} {bad}: {err}"
                );
            }
        }
        // The overflow of issue 11: 213503982335 days were stored as 34,448,384 ms.
        let mut l = ScalingLayer::default();
        assert!(l.set("idle_stop", "213503982335d").is_err());
        assert_eq!(l.idle_stop_ms, None);
        // A stored value past the bound (written by hand, or by an older version) is refused
        // by validate, as before.
        let stored = Scaling {
            idle_stop_ms: u64::MAX,
            ..Scaling::default()
        };
        assert!(
            stored
                .validate()
                .unwrap_err()
                .to_string()
                .contains("idle_stop")
        );
    }

    #[test]
    fn merge_prefers_the_stronger_layer() {
        let weak = ScalingLayer {
            min_instances: Some(1),
            concurrency: Some(10),
            ..Default::default()
        };
        let strong = ScalingLayer {
            concurrency: Some(20),
            ..Default::default()
        };
        let m = weak.merge(strong);
        assert_eq!(m.min_instances, Some(1));
        assert_eq!(m.concurrency, Some(20));
    }

    #[test]
    fn startup_boost_is_on_by_default_and_a_switch() {
        assert!(Scaling::default().startup_boost);
        // Settings stored before the boost existed: every field but it.
        let stored: Scaling = serde_json::from_str(
            r#"{"min_instances":0,"max_instances":3,"concurrency":80,"idle_freeze_ms":30000,"idle_stop_ms":900000}"#,
        )
        .unwrap();
        assert!(stored.startup_boost);
        assert_eq!(stored.max_instances, 3);
        let mut l = ScalingLayer::default();
        l.set("startup-boost", "off").unwrap();
        let off = Scaling::default().apply(&l).unwrap();
        assert!(!off.startup_boost);
        // A later layer that does not name it keeps it off.
        assert!(!off.apply(&ScalingLayer::default()).unwrap().startup_boost);
        l.set("startup_boost", "ON").unwrap();
        assert!(Scaling::default().apply(&l).unwrap().startup_boost);
        let err = l.set("startup_boost", "maybe").unwrap_err().to_string();
        assert_eq!(err, "invalid startup_boost 'maybe': expected on or off");
    }

    #[test]
    fn old_records_without_scaling_get_defaults() {
        let s: Scaling = serde_json::from_str("{}").unwrap();
        assert_eq!(s, Scaling::default());
    }
}
