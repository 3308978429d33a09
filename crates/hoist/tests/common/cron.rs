//! Helpers of the cron tests (tests/cron.rs): the app that counts its calls, what it saw, and
//! the runs the server recorded.

use std::path::{Path, PathBuf};

use super::Server;

/// The cron app (tests/apps/cronapp): records every call's cron headers and arrival time.
pub fn cronapp() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps/cronapp")
}

impl Server {
    /// The calls the cron app has seen for `job` (as JSON objects).
    pub fn app_calls(&self, service: &str, job: &str) -> Vec<serde_json::Value> {
        let (status, body) = self.get(service, &format!("/calls?job={job}"));
        if status != 200 {
            return Vec::new();
        }
        serde_json::from_str(&body).unwrap_or_default()
    }

    /// The runs of `job` the server recorded, oldest first.
    pub fn cron_runs(&self, service: &str, job: &str) -> Vec<serde_json::Value> {
        let (status, v) = self.api(
            "GET",
            &format!("/v1/services/{service}/cron/runs?job={job}&limit=1000"),
            None,
        );
        assert_eq!(status, 200, "runs of {service}/{job}: {v}");
        let mut runs = v.as_array().cloned().unwrap_or_default();
        runs.reverse();
        runs
    }
}

/// Runs with `status`.
pub fn with_status<'a>(runs: &'a [serde_json::Value], status: &str) -> Vec<&'a serde_json::Value> {
    runs.iter().filter(|r| r["status"] == status).collect()
}

/// Milliseconds since the epoch now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// An RFC 3339 time (`X-Hoist-Schedule-Time`) as ms since the epoch.
pub fn rfc3339_ms(text: &str) -> i64 {
    let t: jiff::Timestamp = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
    t.as_millisecond()
}

impl Server {
    /// Problems of the answer to `GET path` against the served document's schema for
    /// `template` (none when it validates).
    pub fn schema_problems(&self, template: &str, path: &str) -> Vec<String> {
        let (_, doc) = self.api("GET", "/openapi.json", None);
        let (status, body) = self.api("GET", path, None);
        if status != 200 {
            return vec![format!("GET {path}: {status} {body}")];
        }
        let schema = &doc["paths"][template]["get"]["responses"]["200"]["content"]["application/json"]
            ["schema"];
        if !schema.is_object() {
            return vec![format!("GET {template}: no schema in the document")];
        }
        let mut root = schema.clone();
        root["components"] = doc["components"].clone();
        let validator = jsonschema::validator_for(&root).expect("a valid JSON Schema");
        validator
            .iter_errors(&body)
            .map(|e| format!("GET {path}: {e} at {}", e.instance_path()))
            .collect()
    }
}
