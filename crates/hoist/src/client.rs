//! The API client behind every subcommand but `server`.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use futures_util::StreamExt;
use hoist_core::duration_text;
use serde_json::Value;

pub(crate) struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    pub(crate) fn from_env() -> anyhow::Result<Api> {
        let base = std::env::var("HOIST_API").unwrap_or_else(|_| "http://127.0.0.1:7070".into());
        let token = match std::env::var("HOIST_TOKEN") {
            Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => {
                let file = crate::default_data_dir().join("admin-token");
                std::fs::read_to_string(&file)
                    .with_context(|| {
                        format!(
                            "no API token: set HOIST_TOKEN, or HOIST_DATA_DIR to the server's data dir (could not read {})",
                            file.display()
                        )
                    })?
                    .trim()
                    .to_string()
            }
        };
        Ok(Api {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::new(),
        })
    }

    pub(crate) fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
    }

    pub(crate) async fn send(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        let resp = rb.send().await.map_err(|e| {
            anyhow!(
                "cannot reach the Hoist API at {} ({e}); is `hoist server` running?",
                self.base
            )
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let msg = body["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| status.to_string());
        bail!("{msg}")
    }

    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self
            .send(self.req(reqwest::Method::GET, path))
            .await?
            .json()
            .await?)
    }

    /// Calls `each` for every JSON line of an NDJSON response until it returns false or the
    /// stream ends.
    async fn ndjson(&self, path: &str, each: impl FnMut(Value) -> bool) -> anyhow::Result<()> {
        self.ndjson_from(self.req(reqwest::Method::GET, path), each)
            .await
    }

    /// As [`Api::ndjson`], for a request built by the caller (with query parameters).
    pub(crate) async fn ndjson_from(
        &self,
        rb: reqwest::RequestBuilder,
        mut each: impl FnMut(Value) -> bool,
    ) -> anyhow::Result<()> {
        let resp = self.send(rb).await?;
        let mut stream = resp.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            buf.extend_from_slice(&chunk.context("reading the stream from the API")?);
            while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                if let Ok(v) = serde_json::from_slice::<Value>(&line)
                    && !each(v)
                {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

#[derive(Args)]
pub struct DeployArgs {
    /// A git URL, or the path of a local git repository.
    source: String,
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    branch: Option<String>,
    /// The app's directory inside the repository.
    #[arg(long)]
    root: Option<String>,
    /// python, node, go, rust or debian.
    #[arg(long)]
    runtime: Option<String>,
    /// Build command (bash).
    #[arg(long)]
    build: Option<String>,
    /// Start command (bash).
    #[arg(long)]
    start: Option<String>,
    #[arg(long)]
    port: Option<i64>,
    /// Memory in MB (128-7076), e.g. 512 or 1gb.
    #[arg(long)]
    memory: Option<String>,
    /// Environment variable KEY=VALUE (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    #[command(flatten)]
    scaling: ScalingArgs,
    /// Return once the deployment is accepted instead of following it to the end.
    #[arg(long)]
    no_wait: bool,
}

/// Scaling settings; unset ones keep the service's current values.
#[derive(Args)]
pub struct ScalingArgs {
    /// Instances kept warm and never frozen (0 = serverless: nothing runs without traffic).
    #[arg(long)]
    min_instances: Option<u32>,
    /// Most instances that may run at once.
    #[arg(long)]
    max_instances: Option<u32>,
    /// Requests one instance takes at once before another is started.
    #[arg(long)]
    concurrency: Option<u32>,
    /// Idle time before an instance is frozen, e.g. 500ms, 30s.
    #[arg(long)]
    idle_freeze: Option<String>,
    /// Idle time before a frozen instance is stopped, e.g. 15m.
    #[arg(long)]
    idle_stop: Option<String>,
}

impl ScalingArgs {
    fn json(&self) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.to_string(), v);
            }
        };
        put("min_instances", self.min_instances.map(Value::from));
        put("max_instances", self.max_instances.map(Value::from));
        put("concurrency", self.concurrency.map(Value::from));
        put("idle_freeze", self.idle_freeze.clone().map(Value::from));
        put("idle_stop", self.idle_stop.clone().map(Value::from));
        m
    }
}

#[derive(Args)]
pub struct ScaleArgs {
    name: String,
    #[command(flatten)]
    scaling: ScalingArgs,
}

pub async fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let source = if hoist_core::is_remote_source(&args.source) {
        args.source.clone()
    } else {
        std::path::absolute(&args.source)
            .with_context(|| format!("resolving {}", args.source))?
            .display()
            .to_string()
    };
    let mut body = serde_json::json!({
        "source": source,
        "name": args.name,
        "branch": args.branch,
        "root": args.root,
        "runtime": args.runtime,
        "build": args.build,
        "start": args.start,
        "port": args.port,
        "memory": args.memory,
        "env": args.env,
    });
    if let Some(obj) = body.as_object_mut() {
        obj.extend(args.scaling.json());
    }
    let created: Value = api
        .send(
            api.req(reqwest::Method::POST, "/v1/deployments")
                .json(&body),
        )
        .await?
        .json()
        .await?;
    let id = created["id"].as_str().unwrap_or_default().to_string();
    let service = created["service"].as_str().unwrap_or_default().to_string();
    println!("deploying {service} as {id}");
    if args.no_wait {
        println!("follow it with `hoist status {service}` or `hoist logs {service} --build -f`");
        return Ok(());
    }
    let mut outcome: Option<Value> = None;
    api.ndjson(
        &format!("/v1/deployments/{id}/events"),
        |ev| match ev["type"].as_str() {
            Some("log") => {
                if let Some(line) = ev["line"].as_str() {
                    println!("{line}");
                }
                true
            }
            Some("deployment") => {
                outcome = Some(ev);
                false
            }
            _ => true,
        },
    )
    .await?;
    let Some(ev) = outcome else {
        bail!(
            "lost the connection to the server before deployment {id} finished; see `hoist status {service}`"
        );
    };
    match ev["state"].as_str() {
        Some("live") => {
            println!("{}", ev["url"].as_str().unwrap_or_default());
            Ok(())
        }
        Some(state) => bail!(
            "deployment {id} {state}: {}",
            ev["reason"].as_str().unwrap_or("no reason recorded")
        ),
        None => bail!("deployment {id} ended in an unknown state"),
    }
}

fn age(ms: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let s = ((now - ms) / 1000).max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

pub(crate) fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

pub async fn ls() -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let services = api.get("/v1/services").await?;
    println!("{:<24} {:<14} {:<12} URL", "NAME", "LIVE", "LATEST");
    for s in services.as_array().into_iter().flatten() {
        println!(
            "{:<24} {:<14} {:<12} {}",
            text(&s["name"]),
            text(&s["live_deployment"]),
            text(&s["deployments"][0]["state"]),
            text(&s["url"])
        );
    }
    Ok(())
}

pub async fn status(name: &str) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let s = api.get(&format!("/v1/services/{name}")).await?;
    println!("service  {}", text(&s["name"]));
    println!("url      {}", text(&s["url"]));
    println!("live     {}", text(&s["live_deployment"]));
    let sc = &s["scaling"];
    let min = sc["min_instances"].as_u64().unwrap_or(0);
    println!(
        "scaling  {} (min {}, max {}, concurrency {}, freeze after {}, stop after {})",
        if min > 0 { "persistent" } else { "serverless" },
        min,
        sc["max_instances"].as_u64().unwrap_or(0),
        sc["concurrency"].as_u64().unwrap_or(0),
        duration_text(sc["idle_freeze_ms"].as_u64().unwrap_or(0)),
        duration_text(sc["idle_stop_ms"].as_u64().unwrap_or(0)),
    );
    println!(
        "now      {} running, {} starting, {} requests waiting; {} cold starts in all",
        s["running"].as_array().map_or(0, Vec::len),
        s["starting"].as_u64().unwrap_or(0),
        s["waiting"].as_u64().unwrap_or(0),
        s["cold_starts"].as_u64().unwrap_or(0),
    );
    if let Some(events) = s["events_24h"].as_object()
        && !events.is_empty()
    {
        let parts: Vec<String> = events
            .iter()
            .map(|(k, v)| format!("{} {k}", v.as_u64().unwrap_or(0)))
            .collect();
        println!(
            "events   {} in the last 24h (`hoist events {}`)",
            parts.join(", "),
            s["name"].as_str().unwrap_or_default()
        );
    }
    println!();
    println!(
        "{:<14} {:<14} {:<9} {:>9} {:>8} {:>10} {:>10} {:>9}",
        "RUNNING", "DEPLOYMENT", "STATE", "IN FLIGHT", "IDLE", "ACTIVE", "FROZEN", "REQUESTS"
    );
    for i in s["running"].as_array().into_iter().flatten() {
        println!(
            "{:<14} {:<14} {:<9} {:>9} {:>8} {:>10} {:>10} {:>9}",
            text(&i["id"]),
            text(&i["deployment"]),
            text(&i["state"]),
            i["in_flight"].as_u64().unwrap_or(0),
            duration_text(i["idle_ms"].as_u64().unwrap_or(0)),
            duration_text(i["active_ms"].as_u64().unwrap_or(0)),
            duration_text(i["frozen_ms"].as_u64().unwrap_or(0)),
            i["requests"].as_u64().unwrap_or(0),
        );
    }
    println!();
    println!(
        "{:<14} {:<10} {:<11} {:<6} REASON",
        "DEPLOYMENT", "COMMIT", "STATE", "AGE"
    );
    for d in s["deployments"].as_array().into_iter().flatten() {
        let commit: String = text(&d["commit_sha"]).chars().take(8).collect();
        let reason = d["failure_reason"]
            .as_str()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("");
        println!(
            "{:<14} {:<10} {:<11} {:<6} {}",
            text(&d["id"]),
            commit,
            text(&d["state"]),
            age(d["created_at"].as_i64().unwrap_or(0)),
            reason
        );
    }
    println!();
    println!(
        "{:<14} {:<14} {:<9} {:<6} {:<5} EXIT",
        "INSTANCE", "DEPLOYMENT", "STATE", "AGE", "COLD"
    );
    for i in s["instances"].as_array().into_iter().flatten() {
        let exit = i["exit_reason"]
            .as_str()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("");
        println!(
            "{:<14} {:<14} {:<9} {:<6} {:<5} {}",
            text(&i["id"]),
            text(&i["deployment"]),
            text(&i["state"]),
            age(i["created_at"].as_i64().unwrap_or(0)),
            if i["cold"].as_bool().unwrap_or(false) {
                "yes"
            } else {
                "no"
            },
            exit
        );
    }
    Ok(())
}

pub(crate) fn format_ts(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

pub async fn scale(args: ScaleArgs) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let body = Value::Object(args.scaling.json());
    let sc: Value = api
        .send(
            api.req(
                reqwest::Method::POST,
                &format!("/v1/services/{}/scale", args.name),
            )
            .json(&body),
        )
        .await?
        .json()
        .await?;
    println!(
        "{}: min {}, max {}, concurrency {}, freeze after {}, stop after {}",
        args.name,
        sc["min_instances"].as_u64().unwrap_or(0),
        sc["max_instances"].as_u64().unwrap_or(0),
        sc["concurrency"].as_u64().unwrap_or(0),
        duration_text(sc["idle_freeze_ms"].as_u64().unwrap_or(0)),
        duration_text(sc["idle_stop_ms"].as_u64().unwrap_or(0)),
    );
    Ok(())
}

pub async fn stop(name: &str) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let r: Value = api
        .send(api.req(reqwest::Method::POST, &format!("/v1/services/{name}/stop")))
        .await?
        .json()
        .await?;
    println!(
        "stopped {} instance(s) of {name}; the next request starts one again",
        r["stopped"].as_u64().unwrap_or(0)
    );
    let s = api.get(&format!("/v1/services/{name}")).await?;
    let min = s["scaling"]["min_instances"].as_u64().unwrap_or(0);
    if min > 0 {
        println!(
            "note: {name} is persistent (min_instances {min}), so {min} instance(s) start again at once; `hoist scale {name} --min-instances 0` makes it serverless"
        );
    }
    Ok(())
}

#[derive(Args)]
pub struct UsageArgs {
    name: String,
    /// How many days back.
    #[arg(long, default_value_t = 30)]
    days: u32,
}

pub async fn usage(args: UsageArgs) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let days = api
        .get(&format!(
            "/v1/services/{}/usage?days={}",
            args.name, args.days
        ))
        .await?;
    println!(
        "{:<10} {:>9} {:>11} {:>11} {:>10} {:>12} {:>6}",
        "DAY", "REQUESTS", "ACTIVE", "FROZEN", "CPU", "GB-SECONDS", "COLD"
    );
    for d in days.as_array().into_iter().flatten() {
        println!(
            "{:<10} {:>9} {:>11} {:>11} {:>10} {:>12.3} {:>6}",
            text(&d["day"]),
            d["requests"].as_u64().unwrap_or(0),
            duration_text(d["active_ms"].as_u64().unwrap_or(0)),
            duration_text(d["frozen_ms"].as_u64().unwrap_or(0)),
            duration_text(d["cpu_ms"].as_u64().unwrap_or(0)),
            d["gb_seconds"].as_f64().unwrap_or(0.0),
            d["cold_starts"].as_u64().unwrap_or(0),
        );
    }
    Ok(())
}

pub async fn delete(name: &str) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    api.send(api.req(reqwest::Method::DELETE, &format!("/v1/services/{name}")))
        .await?;
    println!("deleted {name}");
    Ok(())
}

pub async fn runtimes() -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let list = api.get("/v1/runtimes").await?;
    println!(
        "{:<8} {:<10} {:<28} {:>8}  PACKAGES",
        "NAME", "INSTALLED", "VERSION", "SIZE"
    );
    for r in list.as_array().into_iter().flatten() {
        let size = r["size_bytes"]
            .as_u64()
            .map(|b| format!("{} MB", b / 1_000_000))
            .unwrap_or_else(|| "-".into());
        let pkgs: Vec<&str> = r["packages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        println!(
            "{:<8} {:<10} {:<28} {:>8}  {}",
            text(&r["name"]),
            if r["installed"].as_bool().unwrap_or(false) {
                "yes"
            } else {
                "no (built on first use)"
            },
            text(&r["version"]),
            size,
            pkgs.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(super::format_ts(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::format_ts(1_764_100_800_123),
            "2025-11-25T20:00:00.123Z"
        );
    }
}
