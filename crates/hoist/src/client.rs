//! The service commands: `ls`, `status`, `deployments`, `scale`, `stop`, `usage`, `delete`,
//! `open`, `runtimes`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};
use clap::Args;
use hoist_api_types::{
    Deployment, RuntimeInfo, Scaling, ScalingSettings, ServiceView, StopResult, UsageDay,
};

use crate::JsonFlag;
use crate::api::Api;
use crate::out::{self, age, duration, first_line, outln, print_table, table};

#[derive(Args)]
pub struct ScaleArgs {
    name: String,
    /// Unset ones keep the service's current values.
    #[command(flatten)]
    scaling: ScalingSettings,
    #[command(flatten)]
    out: JsonFlag,
}

/// An optional text for a table cell.
fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// The scaling settings in one line: `min 0, max 10, concurrency 80, freeze after 30s, ...`.
fn scaling_text(sc: &Scaling) -> String {
    format!(
        "min {}, max {}, concurrency {}, freeze after {}, stop after {}, startup boost {}",
        sc.min_instances,
        sc.max_instances,
        sc.concurrency,
        duration(sc.idle_freeze_ms),
        duration(sc.idle_stop_ms),
        if sc.startup_boost { "on" } else { "off" },
    )
}

pub async fn ls(flag: JsonFlag) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let services: Vec<ServiceView> = api.get("/v1/services").await?;
    if flag.json {
        return out::json(&services);
    }
    let mut t = table(&["NAME", "LIVE", "LATEST", "URL"], &[]);
    for s in &services {
        t.add_row(vec![
            s.service.name.to_string(),
            or_dash(s.service.live_deployment.as_ref()),
            or_dash(s.deployments.first().map(|d| d.state)),
            s.url.clone(),
        ]);
    }
    print_table(&t)
}

pub async fn status(name: &str, flag: JsonFlag) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let s: ServiceView = api.get(&format!("/v1/services/{name}")).await?;
    if flag.json {
        return out::json(&s);
    }
    outln!("service  {}", s.service.name)?;
    outln!("url      {}", s.url)?;
    let live = s.service.live_deployment.as_ref().map(|id| {
        match s.deployments.iter().find(|d| &d.id == id) {
            Some(d) => match d.rolled_back_at {
                Some(at) => format!(
                    "{id} (by {}; live again by a rollback {} ago)",
                    d.trigger,
                    age(at)
                ),
                None => format!("{id} (by {})", d.trigger),
            },
            None => id.to_string(),
        }
    });
    outln!("live     {}", or_dash(live))?;
    let live_deployment = s
        .service
        .live_deployment
        .as_ref()
        .and_then(|id| s.deployments.iter().find(|d| &d.id == id));
    // The runtime version the live deployment was built on (`node@22 (22.23.5)`).
    let runtime = live_deployment.and_then(|d| {
        let name = d.spec.as_ref()?.runtime.to_string();
        Some(match &d.runtime_version {
            Some(v) => format!("{name} ({v})"),
            None => name,
        })
    });
    outln!("runtime  {}", or_dash(runtime))?;
    let live_static = live_deployment.and_then(|d| d.static_files.as_ref().map(|f| (d, f)));
    if let Some((d, f)) = live_static {
        let site = if d.spec.as_ref().is_some_and(|s| s.start_command.is_none()) {
            "; a static site, no instance runs"
        } else {
            ""
        };
        outln!(
            "static   {} at {}: {} (served by the gateway{site}{})",
            f.dir,
            f.prefix,
            static_text(f),
            if f.spa { ", spa" } else { "" }
        )?;
    }
    let mode = if s.scaling.min_instances > 0 {
        "persistent"
    } else {
        "serverless"
    };
    outln!("scaling  {mode} ({})", scaling_text(&s.scaling))?;
    outln!(
        "now      {} running, {} starting, {} requests waiting; {} cold starts in all",
        s.running.len(),
        s.starting,
        s.waiting,
        s.cold_starts,
    )?;
    if !s.events_24h.is_empty() {
        let parts: Vec<String> = s
            .events_24h
            .iter()
            .map(|(kind, n)| format!("{n} {kind}"))
            .collect();
        outln!(
            "events   {} in the last 24h (`hoist events {}`)",
            parts.join(", "),
            s.service.name
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
            "CPU",
        ],
        &[3, 4, 5, 6, 7],
    );
    for i in &s.running {
        // `1000m boosted until 2026-12-02T03:12:09.000Z` while the startup boost lasts, else the share.
        let cpu = match (i.boosted, i.boosted_until) {
            (true, Some(until)) => format!(
                "{}m boosted until {}",
                i.cpu_millicores,
                out::timestamp(until)
            ),
            (true, None) => format!("{}m boosted", i.cpu_millicores),
            (false, _) => format!("{}m", i.cpu_millicores),
        };
        t.add_row(vec![
            i.id.to_string(),
            i.deployment.to_string(),
            i.state.clone(),
            i.in_flight.to_string(),
            duration(i.idle_ms),
            duration(i.active_ms),
            duration(i.frozen_ms),
            i.requests.to_string(),
            cpu,
        ]);
    }
    print_table(&t)?;
    outln!()?;
    print_table(&deployments_table(&s.deployments))?;
    outln!()?;
    let mut t = table(
        &["INSTANCE", "DEPLOYMENT", "STATE", "AGE", "COLD", "EXIT"],
        &[],
    );
    for i in &s.instances {
        t.add_row(vec![
            i.id.to_string(),
            i.deployment.to_string(),
            i.state.to_string(),
            age(i.created_at),
            if i.cold { "yes" } else { "no" }.to_string(),
            first_line(i.exit_reason.as_deref()).to_string(),
        ]);
    }
    print_table(&t)
}

/// A static folder's size: `42 files, 1.2 MB`.
fn static_text(f: &hoist_api_types::StaticFolder) -> String {
    format!(
        "{} file{}, {}",
        f.files,
        if f.files == 1 { "" } else { "s" },
        hoist_core::size_text(f.bytes)
    )
}

/// Deployments newest first: id, commit, state, trigger, age, static folder, the first line
/// of the reason.
fn deployments_table(list: &[Deployment]) -> comfy_table::Table {
    let mut list: Vec<&Deployment> = list.iter().collect();
    list.sort_by_key(|d| std::cmp::Reverse(d.created_at));
    let mut t = table(
        &[
            "DEPLOYMENT",
            "COMMIT",
            "STATE",
            "TRIGGER",
            "AGE",
            "STATIC",
            "REASON",
        ],
        &[],
    );
    for d in list {
        t.add_row(vec![
            d.id.to_string(),
            d.commit_sha
                .as_deref()
                .map_or_else(|| "-".to_string(), |c| c.chars().take(8).collect()),
            d.state.to_string(),
            match d.rolled_back_at {
                Some(_) => format!("{}, rollback", d.trigger),
                None => d.trigger.to_string(),
            },
            age(d.created_at),
            d.static_files
                .as_ref()
                .map_or_else(|| "-".to_string(), static_text),
            first_line(d.failure_reason.as_deref()).to_string(),
        ]);
    }
    t
}

pub async fn deployments(name: &str, flag: JsonFlag) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let list: Vec<Deployment> = api.get(&format!("/v1/services/{name}/deployments")).await?;
    if flag.json {
        return out::json(&list);
    }
    print_table(&deployments_table(&list))
}

pub async fn scale(args: ScaleArgs) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let sc: Scaling = api
        .call(
            api.req(
                reqwest::Method::POST,
                &format!("/v1/services/{}/scale", args.name),
            )
            .json(&args.scaling),
        )
        .await?;
    if args.out.json {
        return out::json(&sc);
    }
    outln!("{}: {}", args.name, scaling_text(&sc))
}

pub async fn stop(name: &str) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let r: StopResult = api
        .call(api.req(reqwest::Method::POST, &format!("/v1/services/{name}/stop")))
        .await?;
    outln!(
        "stopped {} instance(s) of {name}; the next request starts one again",
        r.stopped
    )?;
    let s: ServiceView = api.get(&format!("/v1/services/{name}")).await?;
    let min = s.scaling.min_instances;
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
    let days: Vec<UsageDay> = api
        .call(
            api.req(
                reqwest::Method::GET,
                &format!("/v1/services/{}/usage", args.name),
            )
            .query(&hoist_api_types::UsageQuery {
                days: Some(args.days),
            }),
        )
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
    for d in &days {
        t.add_row(vec![
            d.day.clone(),
            d.requests.to_string(),
            duration(d.active_ms),
            duration(d.frozen_ms),
            duration(d.cpu_ms),
            format!("{:.3}", d.gb_seconds),
            d.cold_starts.to_string(),
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
    let _: ServiceView = api.get(&format!("/v1/services/{name}")).await?;
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
    let s: ServiceView = api.get(&format!("/v1/services/{name}")).await?;
    let url = s.url;
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
            crate::out::errln!("note: could not open a browser (xdg-open: {e})");
        }
    }
    Ok(())
}

pub async fn runtimes(flag: JsonFlag) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let list: Vec<RuntimeInfo> = api.get("/v1/runtimes").await?;
    if flag.json {
        return out::json(&list);
    }
    let mut t = table(
        &["NAME", "VERSION", "SIZE", "BUILT", "SOURCE", "SUPPORT"],
        &[2],
    );
    for r in &list {
        let mut support: Vec<String> = match (&r.end_of_life, r.eol) {
            (Some(date), true) => vec![format!("end of life since {date}")],
            (Some(date), false) => vec![format!("until {date}")],
            (None, _) => Vec::new(),
        };
        if r.default {
            support.push(format!("default {}", r.family));
        }
        let support = if support.is_empty() {
            "-".to_string()
        } else {
            support.join(", ")
        };
        t.add_row(vec![
            r.name.clone(),
            or_dash(r.version.as_ref()),
            or_dash(r.size_bytes.map(|b| format!("{} MB", b / 1_000_000))),
            if r.installed {
                "yes"
            } else {
                "no (built on first use)"
            }
            .to_string(),
            r.source.clone(),
            support,
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
