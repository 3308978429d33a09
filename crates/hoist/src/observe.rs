//! `hoist logs`, `hoist events`, `hoist metrics`: what a service did, as the API records it.

use clap::Args;
use serde_json::Value;

use crate::client::{Api, format_ts, text};

#[derive(Args)]
pub struct LogsArgs {
    name: String,
    /// Keep printing new lines as they arrive.
    #[arg(short, long)]
    follow: bool,
    /// Only the latest build's output (or that of --deployment).
    #[arg(long)]
    build: bool,
    /// Only lines from this long ago on, e.g. 10m, 2h, 7d.
    #[arg(long)]
    since: Option<String>,
    #[arg(long)]
    deployment: Option<String>,
    #[arg(long)]
    instance: Option<String>,
    /// stdout, stderr, access, build or system (repeatable).
    #[arg(long)]
    stream: Vec<String>,
    /// Only lines containing this text (searches everything retained).
    #[arg(long)]
    grep: Option<String>,
    /// One JSON object per line, as the API gives them.
    #[arg(long)]
    json: bool,
    /// How many of the most recent matching lines to print first.
    #[arg(long)]
    tail: Option<usize>,
}

pub async fn logs(args: LogsArgs) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let mut query: Vec<(&str, String)> = vec![
        ("follow", args.follow.to_string()),
        ("build", args.build.to_string()),
    ];
    let optional = [
        ("since", args.since),
        ("deployment", args.deployment),
        ("instance", args.instance),
        ("grep", args.grep),
        ("tail", args.tail.map(|t| t.to_string())),
    ];
    query.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
    if !args.stream.is_empty() {
        query.push(("stream", args.stream.join(",")));
    }
    let rb = api
        .req(
            reqwest::Method::GET,
            &format!("/v1/services/{}/logs", args.name),
        )
        .query(&query);
    let json = args.json;
    api.ndjson_from(rb, |l| {
        if json {
            println!("{l}");
            return true;
        }
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

#[derive(Args)]
pub struct EventsArgs {
    name: String,
    /// How many of the most recent events.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Without the log lines around each event.
    #[arg(long)]
    brief: bool,
}

pub async fn events(args: EventsArgs) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let events = api
        .get(&format!(
            "/v1/services/{}/events?limit={}",
            args.name, args.limit
        ))
        .await?;
    let events = events.as_array().cloned().unwrap_or_default();
    if events.is_empty() {
        println!(
            "{}: no events (5xx answers, crashes, OOM kills, failed starts)",
            args.name
        );
        return Ok(());
    }
    for e in events.iter().rev() {
        println!(
            "{} {:<12} {:<13} {}",
            format_ts(e["ts"].as_i64().unwrap_or(0)),
            text(&e["kind"]),
            e["instance"].as_str().unwrap_or("-"),
            text(&e["detail"])
        );
        if !args.brief {
            for line in e["context"].as_array().into_iter().flatten() {
                println!("    | {}", line.as_str().unwrap_or_default());
            }
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct MetricsArgs {
    name: String,
    /// How far back, per minute (at most 24h).
    #[arg(long, default_value = "30m")]
    since: String,
}

pub async fn metrics(args: MetricsArgs) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let rows = api
        .send(
            api.req(
                reqwest::Method::GET,
                &format!("/v1/services/{}/metrics", args.name),
            )
            .query(&[("since", &args.since)]),
        )
        .await?
        .json::<Value>()
        .await?;
    let rows = rows.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!(
            "{}: no minutes recorded yet in the last {} (one row per minute, written as it ends)",
            args.name, args.since
        );
        return Ok(());
    }
    println!(
        "{:<6} {:>8} {:>6} {:>9} {:>9} {:>9} {:>5} {:>9} {:>8}",
        "MINUTE", "REQUESTS", "5XX", "P50", "P95", "P99", "INST", "MEMORY", "CPU"
    );
    let ms = |v: &Value| {
        v.as_f64()
            .map_or_else(|| "-".to_string(), |x| format!("{x:.1}ms"))
    };
    for r in rows {
        let minute = format_ts(r["minute"].as_i64().unwrap_or(0));
        // HH:MM of the RFC 3339 timestamp.
        let hhmm = minute.get(11..16).unwrap_or(&minute);
        println!(
            "{:<6} {:>8} {:>6} {:>9} {:>9} {:>9} {:>5} {:>7.0}MB {:>6}ms",
            hhmm,
            r["requests"].as_u64().unwrap_or(0),
            r["errors"].as_u64().unwrap_or(0),
            ms(&r["p50_ms"]),
            ms(&r["p95_ms"]),
            ms(&r["p99_ms"]),
            r["instances"].as_u64().unwrap_or(0),
            r["memory_mb"].as_f64().unwrap_or(0.0),
            r["cpu_ms"].as_u64().unwrap_or(0),
        );
    }
    Ok(())
}
