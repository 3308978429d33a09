//! `hoist logs`, `hoist events`, `hoist metrics`: what a service did, as the API records it.

use clap::Args;
use hoist_api_types::{
    CommaList, EventRecord, EventsQuery, LogLine, LogStream, LogsQuery, MinuteMetrics, SeriesQuery,
};

use crate::JsonFlag;
use crate::api::Api;
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
    #[arg(long, value_parser = parse_stream)]
    stream: Vec<LogStream>,
    /// Only lines containing this text (searches everything retained).
    #[arg(long)]
    grep: Option<String>,
    #[command(flatten)]
    out: JsonFlag,
    /// How many of the most recent matching lines to print first.
    #[arg(long)]
    tail: Option<usize>,
}

/// `--stream`, by the streams' one text form (the API's and the store's).
fn parse_stream(text: &str) -> Result<LogStream, String> {
    LogStream::parse(text.trim()).ok_or_else(|| {
        format!(
            "unknown log stream '{text}': expected one of {}",
            hoist_core::variant_list::<LogStream>()
        )
    })
}

pub async fn logs(args: LogsArgs) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let query = LogsQuery {
        follow: args.follow,
        build: args.build,
        deployment: args.deployment,
        instance: args.instance,
        stream: (!args.stream.is_empty()).then_some(CommaList(args.stream)),
        since: args.since,
        grep: args.grep,
        tail: args.tail,
        format: None,
        // The CLI follows every line: it is what `grep` and scripts read.
        max_rate: None,
    };
    let rb = api
        .req(
            reqwest::Method::GET,
            &format!("/v1/services/{}/logs", args.name),
        )
        .query(&query);
    let json = args.out.json;
    api.ndjson(rb, |l: LogLine| {
        if json {
            out::ndjson_line(&l)?;
            return Ok(true);
        }
        let who = l
            .instance
            .as_deref()
            .or(l.deployment.as_deref())
            .unwrap_or("-");
        // A stream has no last row to size a table by: fixed widths that fit the ids.
        outln!(
            "{} {:<6} {:<12} {}",
            timestamp(l.ts),
            l.stream.as_str(),
            who,
            l.line
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
    let events: Vec<EventRecord> = api
        .call(
            api.req(
                reqwest::Method::GET,
                &format!("/v1/services/{}/events", args.name),
            )
            .query(&EventsQuery {
                limit: Some(args.limit),
            }),
        )
        .await?;
    if args.out.json {
        return out::json(&events);
    }
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
            timestamp(e.ts),
            e.kind.to_string(),
            e.instance.clone().unwrap_or_else(|| "-".into()),
            e.detail.clone(),
        ]);
        if !args.brief {
            for line in &e.context {
                t.add_row(vec![
                    String::new(),
                    String::new(),
                    String::new(),
                    format!("| {line}"),
                ]);
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
    let rows: Vec<MinuteMetrics> = api
        .call(
            api.req(
                reqwest::Method::GET,
                &format!("/v1/services/{}/metrics", args.name),
            )
            .query(&SeriesQuery {
                since: Some(args.since.clone()),
            }),
        )
        .await?;
    if args.out.json {
        return out::json(&rows);
    }
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
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |x| format!("{x:.1}ms"));
    for r in &rows {
        let minute = timestamp(r.minute);
        // HH:MM of the RFC 3339 timestamp.
        let hhmm = minute.get(11..16).unwrap_or(&minute).to_string();
        t.add_row(vec![
            hhmm,
            r.requests.to_string(),
            r.errors.to_string(),
            ms(r.p50_ms),
            ms(r.p95_ms),
            ms(r.p99_ms),
            r.instances.to_string(),
            format!("{:.0}MB", r.memory_mb),
            out::duration(r.cpu_ms),
        ]);
    }
    print_table(&t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_logs_query_is_what_the_api_reads() {
        let query = LogsQuery {
            follow: true,
            stream: Some(CommaList(vec![LogStream::Stderr, LogStream::Access])),
            since: Some("2h".into()),
            ..LogsQuery::default()
        };
        let req = reqwest::Client::new()
            .get("http://127.0.0.1/v1/services/shop/logs")
            .query(&query)
            .build()
            .unwrap();
        assert_eq!(
            req.url().query(),
            Some("follow=true&build=false&stream=stderr%2Caccess&since=2h")
        );
    }

    #[test]
    fn stream_names_are_the_apis() {
        for &s in LogStream::ALL {
            let wire = serde_json::to_value(s).unwrap_or_default();
            assert_eq!(wire.as_str(), Some(s.as_str()));
            assert_eq!(parse_stream(s.as_str()), Ok(s));
        }
        let err = parse_stream("nope").unwrap_err();
        assert!(err.starts_with("unknown log stream 'nope'"), "{err}");
    }
}
