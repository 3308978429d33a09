//! The service commands: `ls`, `status`, `deployments`, `scale`, `stop`, `usage`, `delete`,
//! `open`, `runtimes`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

use crate::JsonFlag;
use crate::api::Api;
use crate::out::{self, age, duration, first_line, outln, print_table, table};

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
    pub(crate) fn json(&self) -> serde_json::Map<String, Value> {
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
    #[command(flatten)]
    out: JsonFlag,
}

pub(crate) fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

pub async fn ls(flag: JsonFlag) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let services: Value = api.get("/v1/services").await?;
    if flag.json {
        return out::json(&services);
    }
    let mut t = table(&["NAME", "LIVE", "LATEST", "URL"], &[]);
    for s in services.as_array().into_iter().flatten() {
        t.add_row(vec![
            text(&s["name"]),
            text(&s["live_deployment"]),
            text(&s["deployments"][0]["state"]),
            text(&s["url"]),
        ]);
    }
    print_table(&t)
}

pub async fn status(name: &str, flag: JsonFlag) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let s: Value = api.get(&format!("/v1/services/{name}")).await?;
    if flag.json {
        return out::json(&s);
    }
    outln!("service  {}", text(&s["name"]))?;
    outln!("url      {}", text(&s["url"]))?;
    outln!("live     {}", text(&s["live_deployment"]))?;
    let sc = &s["scaling"];
    let min = sc["min_instances"].as_u64().unwrap_or(0);
    outln!(
        "scaling  {} (min {}, max {}, concurrency {}, freeze after {}, stop after {})",
        if min > 0 { "persistent" } else { "serverless" },
        min,
        sc["max_instances"].as_u64().unwrap_or(0),
        sc["concurrency"].as_u64().unwrap_or(0),
        duration(sc["idle_freeze_ms"].as_u64().unwrap_or(0)),
        duration(sc["idle_stop_ms"].as_u64().unwrap_or(0)),
    )?;
    outln!(
        "now      {} running, {} starting, {} requests waiting; {} cold starts in all",
        s["running"].as_array().map_or(0, Vec::len),
        s["starting"].as_u64().unwrap_or(0),
        s["waiting"].as_u64().unwrap_or(0),
        s["cold_starts"].as_u64().unwrap_or(0),
    )?;
    if let Some(events) = s["events_24h"].as_object()
        && !events.is_empty()
    {
        let parts: Vec<String> = events
            .iter()
            .map(|(k, v)| format!("{} {k}", v.as_u64().unwrap_or(0)))
            .collect();
        outln!(
            "events   {} in the last 24h (`hoist events {}`)",
            parts.join(", "),
            s["name"].as_str().unwrap_or_default()
        )?;
    }
    outln!()?;
    let mut t = table(
        &[
            "RUNNING",
            "DEPLOYMENT",
            "STATE",
            "IN FLIGHT",
            "IDLE",
            "ACTIVE",
            "FROZEN",
            "REQUESTS",
        ],
        &[3, 4, 5, 6, 7],
    );
    for i in s["running"].as_array().into_iter().flatten() {
        t.add_row(vec![
            text(&i["id"]).to_string(),
            text(&i["deployment"]).to_string(),
            text(&i["state"]).to_string(),
            i["in_flight"].as_u64().unwrap_or(0).to_string(),
            duration(i["idle_ms"].as_u64().unwrap_or(0)),
            duration(i["active_ms"].as_u64().unwrap_or(0)),
            duration(i["frozen_ms"].as_u64().unwrap_or(0)),
            i["requests"].as_u64().unwrap_or(0).to_string(),
        ]);
    }
    print_table(&t)?;
    outln!()?;
    print_table(&deployments_table(s["deployments"].as_array()))?;
    outln!()?;
    let mut t = table(
        &["INSTANCE", "DEPLOYMENT", "STATE", "AGE", "COLD", "EXIT"],
        &[],
    );
    for i in s["instances"].as_array().into_iter().flatten() {
        t.add_row(vec![
            text(&i["id"]).to_string(),
            text(&i["deployment"]).to_string(),
            text(&i["state"]).to_string(),
            age(i["created_at"].as_i64().unwrap_or(0)),
            if i["cold"].as_bool().unwrap_or(false) {
                "yes"
            } else {
                "no"
            }
            .to_string(),
            first_line(i["exit_reason"].as_str()).to_string(),
        ]);
    }
    print_table(&t)
}

/// Deployments newest first: id, commit, state, age, the first line of the reason.
fn deployments_table(list: Option<&Vec<Value>>) -> comfy_table::Table {
    let mut list: Vec<&Value> = list.into_iter().flatten().collect();
    list.sort_by_key(|d| std::cmp::Reverse(d["created_at"].as_i64().unwrap_or(0)));
    let mut t = table(&["DEPLOYMENT", "COMMIT", "STATE", "AGE", "REASON"], &[]);
    for d in list {
        t.add_row(vec![
            text(&d["id"]).to_string(),
            text(&d["commit_sha"]).chars().take(8).collect(),
            text(&d["state"]).to_string(),
            age(d["created_at"].as_i64().unwrap_or(0)),
            first_line(d["failure_reason"].as_str()).to_string(),
        ]);
    }
    t
}

pub async fn deployments(name: &str, flag: JsonFlag) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let s: Value = api.get(&format!("/v1/services/{name}")).await?;
    let list = &s["deployments"];
    if flag.json {
        return out::json(list);
    }
    print_table(&deployments_table(list.as_array()))
}

pub async fn scale(args: ScaleArgs) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let body = Value::Object(args.scaling.json());
    let sc: Value = api
        .call(
            api.req(
                reqwest::Method::POST,
                &format!("/v1/services/{}/scale", args.name),
            )
            .json(&body),
        )
        .await?;
    if args.out.json {
        return out::json(&sc);
    }
    outln!(
        "{}: min {}, max {}, concurrency {}, freeze after {}, stop after {}",
        args.name,
        sc["min_instances"].as_u64().unwrap_or(0),
        sc["max_instances"].as_u64().unwrap_or(0),
        sc["concurrency"].as_u64().unwrap_or(0),
        duration(sc["idle_freeze_ms"].as_u64().unwrap_or(0)),
        duration(sc["idle_stop_ms"].as_u64().unwrap_or(0)),
    )
}

pub async fn stop(name: &str) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let r: Value = api
        .call(api.req(reqwest::Method::POST, &format!("/v1/services/{name}/stop")))
        .await?;
    outln!(
        "stopped {} instance(s) of {name}; the next request starts one again",
        r["stopped"].as_u64().unwrap_or(0)
    )?;
    let s: Value = api.get(&format!("/v1/services/{name}")).await?;
    let min = s["scaling"]["min_instances"].as_u64().unwrap_or(0);
    if min > 0 {
        outln!(
            "note: {name} is persistent (min_instances {min}), so {min} instance(s) start again at once; `hoist scale {name} --min-instances 0` makes it serverless"
        )?;
    }
    Ok(())
}

#[derive(Args)]
pub struct UsageArgs {
    name: String,
    /// How many days back.
    #[arg(long, default_value_t = 30)]
    days: u32,
    #[command(flatten)]
    out: JsonFlag,
}

pub async fn usage(args: UsageArgs) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let days: Value = api
        .get(&format!(
            "/v1/services/{}/usage?days={}",
            args.name, args.days
        ))
        .await?;
    if args.out.json {
        return out::json(&days);
    }
    let mut t = table(
        &[
            "DAY",
            "REQUESTS",
            "ACTIVE",
            "FROZEN",
            "CPU",
            "GB-SECONDS",
            "COLD",
        ],
        &[1, 2, 3, 4, 5, 6],
    );
    for d in days.as_array().into_iter().flatten() {
        t.add_row(vec![
            text(&d["day"]).to_string(),
            d["requests"].as_u64().unwrap_or(0).to_string(),
            duration(d["active_ms"].as_u64().unwrap_or(0)),
            duration(d["frozen_ms"].as_u64().unwrap_or(0)),
            duration(d["cpu_ms"].as_u64().unwrap_or(0)),
            format!("{:.3}", d["gb_seconds"].as_f64().unwrap_or(0.0)),
            d["cold_starts"].as_u64().unwrap_or(0).to_string(),
        ]);
    }
    print_table(&t)
}

#[derive(Args)]
pub struct DeleteArgs {
    name: String,
    /// Delete without asking to type the name (for scripts; needed without a terminal).
    #[arg(long, short = 'y')]
    yes: bool,
}

pub async fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let name = &args.name;
    // A missing service is reported before anything is asked.
    let _: Value = api.get(&format!("/v1/services/{name}")).await?;
    if !args.yes {
        let stdin = std::io::stdin();
        confirm_delete(
            name,
            stdin.is_terminal(),
            stdin.lock(),
            &mut std::io::stderr(),
        )?;
    }
    api.send(api.req(reqwest::Method::DELETE, &format!("/v1/services/{name}")))
        .await?;
    outln!("deleted {name}")
}

/// Asks on a terminal for the service's name before a delete: images and logs go with it, and
/// nothing brings them back. Without a terminal there is no one to ask, so only `--yes` will do.
fn confirm_delete(
    name: &str,
    terminal: bool,
    mut input: impl BufRead,
    prompt: &mut impl Write,
) -> anyhow::Result<()> {
    if !terminal {
        bail!(
            "not deleting {name}: there is no terminal to confirm on; pass --yes to delete it with its images and logs"
        );
    }
    write!(
        prompt,
        "This deletes {name} with its instances, route, images and logs; it cannot be undone.\nType the name of the service to confirm: "
    )?;
    prompt.flush()?;
    let mut typed = String::new();
    input
        .read_line(&mut typed)
        .context("reading the confirmation")?;
    if typed.trim() != name {
        bail!("not deleting {name}: the name typed does not match");
    }
    Ok(())
}

pub async fn open(name: &str) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let s: Value = api.get(&format!("/v1/services/{name}")).await?;
    let url = text(&s["url"]).to_string();
    outln!("{url}")?;
    let display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()));
    if display {
        // The URL is printed: a browser that cannot be started is worth a note, not a failure.
        let started = std::process::Command::new("xdg-open")
            .arg(&url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if let Err(e) = started {
            eprintln!("note: could not open a browser (xdg-open: {e})");
        }
    }
    Ok(())
}

pub async fn runtimes(flag: JsonFlag) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let list: Value = api.get("/v1/runtimes").await?;
    if flag.json {
        return out::json(&list);
    }
    let mut t = table(&["NAME", "INSTALLED", "VERSION", "SIZE", "PACKAGES"], &[3]);
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
        t.add_row(vec![
            text(&r["name"]).to_string(),
            if r["installed"].as_bool().unwrap_or(false) {
                "yes"
            } else {
                "no (built on first use)"
            }
            .to_string(),
            text(&r["version"]).to_string(),
            size,
            pkgs.join(", "),
        ]);
    }
    print_table(&t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_without_a_terminal_refuses_and_reads_nothing() {
        let mut prompt = Vec::new();
        let err = confirm_delete("shop", false, &b"shop\n"[..], &mut prompt).unwrap_err();
        assert!(err.to_string().contains("--yes"), "{err}");
        assert!(prompt.is_empty());
    }

    #[test]
    fn delete_on_a_terminal_needs_the_name_typed() {
        let mut prompt = Vec::new();
        assert!(confirm_delete("shop", true, &b"shop\n"[..], &mut prompt).is_ok());
        assert!(String::from_utf8_lossy(&prompt).contains("Type the name"));
        for typed in [&b"y\n"[..], b"sho\n", b""] {
            let err = confirm_delete("shop", true, typed, &mut Vec::new()).unwrap_err();
            assert!(err.to_string().contains("does not match"), "{err}");
        }
    }
}
