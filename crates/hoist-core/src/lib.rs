//! Domain types shared by every Hoist crate.
//!
//! Everything a user can type (names, sizes, ports, env vars, config files) is parsed into a
//! validated newtype here, so the rest of the system never has to re-check raw strings and every
//! rejection carries the field name and the rule that was broken.

/// Serializes a type as its `as_str()` form and deserializes it through `FromStr`, so the wire
/// format and the CLI format are one and the same and deserialization can never bypass
/// validation.
macro_rules! serde_via_str {
    ($ty:ty) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// For an enum whose text forms come from strum (`Display`, `IntoStaticStr`, `VariantArray`,
/// `VariantNames`): `ALL`, `as_str`, a `FromStr` whose error names `$what` and lists every
/// allowed value, and serde through the text form.
macro_rules! text_enum {
    ($ty:ty, $what:literal) => {
        impl $ty {
            pub const ALL: &'static [$ty] = <Self as strum::VariantArray>::VARIANTS;

            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::SpecError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $crate::parse_variant($what, s)
            }
        }

        serde_via_str!($ty);
    };
}

mod autodeploy;
mod config;
mod cron;
mod duration;
mod env;
mod error;
mod event;
mod ids;
mod layer;
mod limits;
mod log_stream;
mod memory;
mod name;
mod port;
mod root_dir;
mod runtime;
pub mod runtime_catalog;
mod runtime_name;
pub mod runtime_pin;
mod scaling;
mod spec;
mod state;
// Static files served by the gateway (issue 15).
mod static_files;
mod token;
mod variants;

pub use autodeploy::{
    AutoDeploy, AutoDeployLayer, AutoDeploySettings, DEFAULT_POLL_INTERVAL, DeploymentTrigger,
    MIN_POLL_INTERVAL,
};
pub use config::ConfigWarning;
pub use cron::{
    CRON_RETRIES_MAX, CRON_TIMEOUT_DEFAULT, CRON_TIMEOUT_MAX, CRON_TIMEOUT_MIN, CronConcurrency,
    CronFileJob, CronJobId, CronJobSpec, CronMethod, CronPath, CronRunStatus, CronSchedule,
    CronSource, CronTimezone, check_cron_retries, parse_cron_timeout,
};
pub use duration::{
    MAX_DURATION, duration_text, format_duration, millis, parse_duration, parse_duration_in,
    span_text,
};
pub use env::{ENV_TOTAL_LIMIT, EnvVars};
pub use error::{ECHO_LIMIT, SpecError, StateError, echo, echo_within, echo_words};
pub use event::EventKind;
pub use ids::{DeploymentId, InstanceId, TokenId, UploadId};
pub use layer::SpecLayer;
pub use limits::RequestLimits;
pub use log_stream::LogStream;
pub use memory::{CPU_PERIOD_US, MemoryMb, cpu_quota_us};
pub use name::ServiceName;
pub use port::Port;
pub use root_dir::RootDir;
pub use runtime::Runtime;
pub use runtime_name::{RuntimeName, RuntimeVersion};
pub use scaling::{CONCURRENCY_LIMIT, MAX_INSTANCES_LIMIT, Scaling, ScalingLayer, parse_switch};
pub use spec::{ServiceSpec, validate_branch};
pub use state::{DeploymentState, InstanceState};
pub use static_files::{
    STATIC_FIELD, STATIC_PREFIX_FIELD, StaticDir, StaticFolder, StaticLayer, StaticPrefix,
    StaticSettings,
};
pub use token::{Denied, Over, Principal, TokenName, TokenRole};
pub use variants::{parse_variant, variant_list};

/// Whether a deploy source names a remote repository (`https://…`, `ssh://…`, `git@host:path`)
/// rather than a local path.
pub fn is_remote_source(source: &str) -> bool {
    source.contains("://") || (source.contains('@') && source.contains(':'))
}

/// Whether fetching `source` reads the server's own disk: a local path, or a `file:` URL
/// (which git fetches like a path). Only an admin may deploy one: the server reads it as root.
pub fn reads_server_disk(source: &str) -> bool {
    !is_remote_source(source)
        || source
            .trim_start()
            .get(..5)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("file:"))
}

/// How a deployment whose source was uploaded records it: `upload:<commit>`. The commit is
/// in the server's source store (the client sent it as a git bundle), not at any URL.
pub const UPLOAD_SOURCE_PREFIX: &str = "upload:";

/// The source recorded for a deploy of uploaded `commit`.
pub fn upload_source(commit: &str) -> String {
    format!("{UPLOAD_SOURCE_PREFIX}{commit}")
}

/// The commit of an `upload:<commit>` source; `None` for a git URL or a path.
pub fn uploaded_commit(source: &str) -> Option<&str> {
    source.strip_prefix(UPLOAD_SOURCE_PREFIX)
}

/// A size for people, in the units the server's size flags take (powers of 1024):
/// `512 B`, `1.5 KB`, `200.0 MB`, `1.2 GB`.
pub fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `scheme://user:secret@host/path` → `scheme://***@host/path`: source URLs are logged and
/// shown, their credentials must not be.
pub fn redact_credentials(source: &str) -> String {
    let Some((scheme, rest)) = source.split_once("://") else {
        return source.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => source.to_string(),
    }
}

#[cfg(test)]
mod redact_tests {
    use super::redact_credentials;

    #[test]
    fn sizes_read_in_the_units_the_flags_take() {
        assert_eq!(super::size_text(512), "512 B");
        assert_eq!(super::size_text(1536), "1.5 KB");
        assert_eq!(super::size_text(200 << 20), "200.0 MB");
        assert_eq!(super::size_text(3 << 40), "3.0 TB");
        assert_eq!(super::uploaded_commit("upload:abc"), Some("abc"));
        assert_eq!(super::uploaded_commit("/srv/app"), None);
        assert_eq!(super::upload_source("abc"), "upload:abc");
    }

    #[test]
    fn credentials_in_urls_are_hidden() {
        assert_eq!(
            redact_credentials("https://bob:ghp_secret@example.com/org/app.git"),
            "https://***@example.com/org/app.git"
        );
        assert_eq!(
            redact_credentials("https://example.com/a@b"),
            "https://example.com/a@b"
        );
        assert_eq!(redact_credentials("/srv/repo"), "/srv/repo");
    }
}
