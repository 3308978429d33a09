//! The API client behind every subcommand but `server`.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use futures_util::StreamExt;
use serde_json::Value;

struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    fn from_env() -> anyhow::Result<Api> {
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

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
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

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self
            .send(self.req(reqwest::Method::GET, path))
            .await?
            .json()
            .await?)
    }

    /// Calls `each` for every JSON line of an NDJSON response until it returns false or the
    /// stream ends.
    async fn ndjson(&self, path: &str, mut each: impl FnMut(Value) -> bool) -> anyhow::Result<()> {
        let resp = self.send(self.req(reqwest::Method::GET, path)).await?;
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
    let body = serde_json::json!({
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

fn text(v: &Value) -> &str {
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
        "{:<14} {:<14} {:<9} {:<6} EXIT",
        "INSTANCE", "DEPLOYMENT", "STATE", "AGE"
    );
    for i in s["instances"].as_array().into_iter().flatten() {
        let exit = i["exit_reason"]
            .as_str()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("");
        println!(
            "{:<14} {:<14} {:<9} {:<6} {}",
            text(&i["id"]),
            text(&i["deployment"]),
            text(&i["state"]),
            age(i["created_at"].as_i64().unwrap_or(0)),
            exit
        );
    }
    Ok(())
}

#[derive(Args)]
pub struct LogsArgs {
    name: String,
    /// Keep printing new lines as they arrive.
    #[arg(short, long)]
    follow: bool,
    /// Only the latest build's output.
    #[arg(long)]
    build: bool,
    /// How many of the most recent lines to print first.
    #[arg(long)]
    tail: Option<usize>,
}

fn format_ts(ms: i64) -> String {
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

pub async fn logs(args: LogsArgs) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let mut path = format!(
        "/v1/services/{}/logs?follow={}&build={}",
        args.name, args.follow, args.build
    );
    if let Some(t) = args.tail {
        path.push_str(&format!("&tail={t}"));
    }
    api.ndjson(&path, |l| {
        let who = l["instance"]
            .as_str()
            .or(l["deployment"].as_str())
            .unwrap_or("-");
        println!(
            "{} {:<6} {:<12} {}",
            format_ts(l["ts"].as_i64().unwrap_or(0)),
            text(&l["stream"]),
            who,
            text(&l["line"])
        );
        true
    })
    .await
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
