//! `hoist logs`, `hoist events`, `hoist metrics`: what a service did, as the API records it.

use clap::Args;
use serde_json::Value;

use crate::JsonFlag;
use crate::api::Api;
use crate::client::text;
use crate::out::{self, outln, print_table, table, timestamp};

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
    #[command(flatten)]
    out: JsonFlag,
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
    let json = args.out.json;
    api.ndjson(rb, |l: Value| {
        if json {
            out::ndjson_line(&l)?;
            return Ok(true);
        }
        let who = l["instance"]
            .as_str()
            .or(l["deployment"].as_str())
            .unwrap_or("-");
        // A stream has no last row to size a table by: fixed widths that fit the ids.
        outln!(
            "{} {:<6} {:<12} {}",
            timestamp(l["ts"].as_i64().unwrap_or(0)),
            text(&l["stream"]),
            who,
            text(&l["line"])
        )?;
        Ok(true)
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
    #[command(flatten)]
    out: JsonFlag,
}

pub async fn events(args: EventsArgs) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let events: Value = api
        .get(&format!(
            "/v1/services/{}/events?limit={}",
            args.name, args.limit
        ))
        .await?;
    if args.out.json {
        return out::json(&events);
    }
    let events = events.as_array().cloned().unwrap_or_default();
    if events.is_empty() {
        return outln!(
            "{}: no events (5xx answers, crashes, OOM kills, failed starts)",
            args.name
        );
    }
    // Oldest first, as a log reads; each event's log lines below it, under its detail.
    let mut t = table(&["TIME", "KIND", "INSTANCE", "DETAIL"], &[]);
    for e in events.iter().rev() {
        t.add_row(vec![
            timestamp(e["ts"].as_i64().unwrap_or(0)),
            text(&e["kind"]).to_string(),
            e["instance"].as_str().unwrap_or("-").to_string(),
            text(&e["detail"]).to_string(),
        ]);
        if !args.brief {
            for line in e["context"].as_array().into_iter().flatten() {
                let line = format!("| {}", line.as_str().unwrap_or_default());
                t.add_row(vec![String::new(), String::new(), String::new(), line]);
            }
        }
    }
    print_table(&t)
}

#[derive(Args)]
pub struct MetricsArgs {
    name: String,
    /// How far back, per minute (at most 24h).
    #[arg(long, default_value = "30m")]
    since: String,
    #[command(flatten)]
    out: JsonFlag,
}

pub async fn metrics(args: MetricsArgs) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let rows: Value = api
        .call(
            api.req(
                reqwest::Method::GET,
                &format!("/v1/services/{}/metrics", args.name),
            )
            .query(&[("since", &args.since)]),
        )
        .await?;
    if args.out.json {
        return out::json(&rows);
    }
    let rows = rows.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return outln!(
            "{}: no minutes recorded yet in the last {} (one row per minute, written as it ends)",
            args.name,
            args.since
        );
    }
    let mut t = table(
        &[
            "MINUTE", "REQUESTS", "5XX", "P50", "P95", "P99", "INST", "MEMORY", "CPU",
        ],
        &[1, 2, 3, 4, 5, 6, 7, 8],
    );
    // Latencies keep a decimal below a millisecond, so they are not durations of whole ms.
    let ms = |v: &Value| {
        v.as_f64()
            .map_or_else(|| "-".to_string(), |x| format!("{x:.1}ms"))
    };
    for r in rows {
        let minute = timestamp(r["minute"].as_i64().unwrap_or(0));
        // HH:MM of the RFC 3339 timestamp.
        let hhmm = minute.get(11..16).unwrap_or(&minute).to_string();
        t.add_row(vec![
            hhmm,
            r["requests"].as_u64().unwrap_or(0).to_string(),
            r["errors"].as_u64().unwrap_or(0).to_string(),
            ms(&r["p50_ms"]),
            ms(&r["p95_ms"]),
            ms(&r["p99_ms"]),
            r["instances"].as_u64().unwrap_or(0).to_string(),
            format!("{:.0}MB", r["memory_mb"].as_f64().unwrap_or(0.0)),
            out::duration(r["cpu_ms"].as_u64().unwrap_or(0)),
        ]);
    }
    print_table(&t)
}
