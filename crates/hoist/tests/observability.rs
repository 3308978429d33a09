//! End-to-end tests of what users see of their services: the access log and log filters,
//! live following (NDJSON and Server-Sent Events), `/metrics`, per-minute metrics, events
//! with their log context, bursts of output, and retention.
//!
//! Each test runs its own server (free ports, own data dir) and the probe app; every wait is
//! bounded, and only loopback is used.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Server, wait_until};

const WHOLE_CORE: &[&str] = &["--memory", "1769"];

fn lines_of(out: &str, needle: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// The lines of `hoist logs ... --json` as JSON values.
fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The wall clock in milliseconds since the epoch, as the server stamps log lines.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The lines a child writes to `pipe`, handed over by a thread so a reader can give up
/// after a deadline (`recv_timeout`) instead of blocking on the pipe forever.
fn lines_of_pipe(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Takes lines from `rx` until one contains `needle`, for at most `within`.
fn line_with(rx: &mpsc::Receiver<String>, needle: &str, within: Duration) -> Option<String> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return Some(line),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

#[test]
fn every_request_has_an_access_line_and_logs_filter_by_stream_text_time_and_instance() {
    let server = Server::start("access-log", &[]);
    server.deploy_probe("shop", WHOLE_CORE);
    let mut first_instance = String::new();
    for i in 0..3 {
        let (status, body) = server.get("shop", &format!("/?item={i}"));
        assert_eq!(status, 200, "{body}");
        first_instance = common::probe_instance(&body);
    }
    assert_eq!(server.get("shop", "/status?code=503").0, 503);
    let access = wait_until(
        "four access lines",
        Duration::from_secs(10),
        || {
            let out = server.hoist_ok(&["logs", "shop", "--stream", "access"]);
            (lines_of(&out, "GET /").len() >= 4).then_some(out)
        },
        || server.hoist_ok(&["logs", "shop", "--stream", "access"]),
    );
    assert_eq!(
        lines_of(&access, "GET /").len(),
        4,
        "one line per request: {access}"
    );
    let first = &lines_of(&access, "GET /?item=0")[0];
    assert!(
        first.contains(" 200 ") && first.contains("ms in=0 out=") && first.contains("instance=i-"),
        "{first}"
    );
    assert!(access.contains("GET /status?code=503 503"), "{access}");
    // Only access lines were asked for.
    assert!(!access.contains("probe listening"), "{access}");
    let streams = json_lines(&server.hoist_ok(&["logs", "shop", "--stream", "access", "--json"]));
    assert!(
        streams.len() == 4 && streams.iter().all(|l| l["stream"] == "access"),
        "{streams:?}"
    );

    let grep = server.hoist_ok(&["logs", "shop", "--grep", "item=1"]);
    assert_eq!(
        lines_of(&grep, "item=").len(),
        2,
        "access and app line: {grep}"
    );
    assert!(
        lines_of(&grep, "item=")
            .iter()
            .all(|l| l.contains("item=1")),
        "{grep}"
    );
    assert!(
        server
            .hoist_ok(&["logs", "shop", "--grep", "no such text"])
            .trim()
            .is_empty()
    );

    let json = server.hoist_ok(&[
        "logs", "shop", "--stream", "access", "--json", "--tail", "1",
    ]);
    let line: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON line");
    assert_eq!(line["stream"], "access");
    assert_eq!(line["instance"], first_instance.as_str(), "{line}");

    // A second instance (the first is stopped): --instance shows each one's lines only.
    server.hoist_ok(&["stop", "shop"]);
    let (status, body) = server.get("shop", "/?item=later");
    assert_eq!(status, 200, "{body}");
    let second_instance = common::probe_instance(&body);
    assert_ne!(second_instance, first_instance);
    wait_until(
        "the second instance's access line",
        Duration::from_secs(10),
        || {
            server
                .hoist_ok(&["logs", "shop", "--stream", "access"])
                .contains("GET /?item=later ")
                .then_some(())
        },
        || server.hoist_ok(&["logs", "shop", "--stream", "access"]),
    );
    for (mine, other, own_line, other_line) in [
        (&first_instance, &second_instance, "item=0", "item=later"),
        (&second_instance, &first_instance, "item=later", "item=0"),
    ] {
        let out = server.hoist_ok(&["logs", "shop", "--instance", mine]);
        assert!(
            out.contains("probe listening") && out.contains(own_line),
            "--instance {mine}: {out}"
        );
        assert!(
            !out.contains(other_line) && !out.contains(other.as_str()),
            "--instance {mine} shows {other}'s lines: {out}"
        );
        let lines = json_lines(&server.hoist_ok(&["logs", "shop", "--instance", mine, "--json"]));
        let strays: Vec<_> = lines
            .iter()
            .filter(|l| l["instance"] != mine.as_str())
            .collect();
        assert!(strays.is_empty(), "--instance {mine}: {strays:?}");
    }

    // --since: a window that starts after every line so far holds only the newer one. The
    // window is counted back from the server's "now" at the query, which can only be later
    // than the test's, so the cutoff is at least `old + 500 ms` (the old lines are out for
    // sure) and the new line, 3 s after the old ones, is in unless the query takes 2.5 s.
    let all = json_lines(&server.hoist_ok(&["logs", "shop", "--json"]));
    let old = all
        .iter()
        .filter_map(|l| l["ts"].as_i64())
        .max()
        .expect("timestamped lines");
    let newer_from = old + 3000;
    wait_until(
        "the clock passes the old lines by 3 s",
        Duration::from_secs(10),
        || (now_ms() >= newer_from).then_some(()),
        || format!("now {} ms, waiting for {newer_from}", now_ms()),
    );
    assert_eq!(server.get("shop", "/?item=fresh").0, 200);
    let fresh = wait_until(
        "the fresh access line",
        Duration::from_secs(10),
        || {
            let out = server.hoist_ok(&["logs", "shop", "--grep", "item=fresh", "--json"]);
            json_lines(&out)
                .into_iter()
                .find(|l| l["stream"] == "access")
        },
        || server.hoist_ok(&["logs", "shop", "--grep", "item=fresh"]),
    );
    assert!(fresh["ts"].as_i64().unwrap_or(0) >= newer_from, "{fresh}");
    let cutoff = old + 500;
    let window = format!("{}ms", now_ms() - cutoff);
    let since = server.hoist_ok(&["logs", "shop", "--since", &window]);
    assert!(
        since.contains("GET /?item=fresh "),
        "--since {window}: {since}"
    );
    for gone in ["item=0", "item=1", "item=2", "item=later", "code=503"] {
        assert!(
            !since.contains(gone),
            "--since {window} shows {gone}: {since}"
        );
    }
    let lines = json_lines(&server.hoist_ok(&["logs", "shop", "--since", &window, "--json"]));
    let early: Vec<_> = lines
        .iter()
        .filter(|l| l["ts"].as_i64().unwrap_or(0) < cutoff)
        .collect();
    assert!(early.is_empty(), "--since {window}: {early:?}");

    // Bad filters name what is wrong.
    let err = server.hoist_err(&["logs", "shop", "--stream", "nope"]);
    assert!(err.contains("unknown log stream 'nope'"), "{err}");
    let err = server.hoist_err(&["logs", "shop", "--since", "yesterday"]);
    assert!(err.contains("duration"), "{err}");
    let err = server.hoist_err(&["logs", "shop", "--instance", "../etc"]);
    assert!(err.contains("instance"), "{err}");
}

/// How long a followed line may take to show before the test gives up: far above the
/// milliseconds it takes (BENCHMARKS.md has the figure, from this test's `--nocapture`
/// output), so a busy machine does not fail it, and far below "never".
const FOLLOW_DEADLINE: Duration = Duration::from_secs(5);

#[test]
fn following_shows_each_new_line_as_it_happens_over_ndjson_and_sse() {
    let server = Server::start("follow", &[]);
    server.deploy_probe("live", WHOLE_CORE);
    server.get("live", "/");

    // The CLI, following.
    let mut follow = Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(["logs", "live", "-f", "--stream", "access", "--tail", "0"])
        .env("HOIST_API", format!("http://127.0.0.1:{}", server.api_port))
        .env("HOIST_DATA_DIR", &server.data)
        .stdout(Stdio::piped())
        .spawn()
        .expect("run hoist logs -f");
    let out = lines_of_pipe(follow.stdout.take().expect("piped stdout"));
    // Requests until one shows: then the follower is surely subscribed.
    let attached = (0..40).any(|i| {
        server.get("live", &format!("/?warmup={i}"));
        line_with(&out, "warmup=", Duration::from_millis(250)).is_some()
    });
    assert!(attached, "no line of 40 requests was followed");
    let mut lags = Vec::new();
    for i in 0..5 {
        let sent = Instant::now();
        server.get("live", &format!("/?follow={i}"));
        // Lines of the warm-up requests may still come first: they are skipped.
        let line = line_with(&out, &format!("follow={i} "), FOLLOW_DEADLINE);
        let lag = sent.elapsed();
        assert!(
            line.is_some(),
            "request {i}'s access line was not followed within {FOLLOW_DEADLINE:?}"
        );
        lags.push(lag);
    }
    let _ = follow.kill();
    let _ = follow.wait();
    lags.sort();
    eprintln!("follow lags: {lags:?} (median {:?})", lags[lags.len() / 2]);

    // Server-Sent Events, straight from the API.
    let mut s = TcpStream::connect(("127.0.0.1", server.api_port)).expect("connect to the API");
    write!(
        s,
        "GET /v1/services/live/logs?follow=true&stream=access&tail=0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nAccept: text/event-stream\r\n\r\n",
        server.token()
    )
    .expect("send the request");
    let sse = lines_of_pipe(s.try_clone().expect("the socket"));
    let mut head = String::new();
    loop {
        let l = sse
            .recv_timeout(FOLLOW_DEADLINE)
            .unwrap_or_else(|_| panic!("no complete head: {head}"));
        if l.trim().is_empty() {
            break;
        }
        head.push_str(&l);
        head.push('\n');
    }
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    let mut seen = None;
    for i in 0..20 {
        server.get("live", &format!("/?over=sse-{i}"));
        seen = line_with(&sse, "over=sse", Duration::from_millis(250));
        if seen.is_some() {
            break;
        }
    }
    let seen = seen.expect("no request's line arrived over SSE");
    assert!(seen.contains("data: {"), "{seen}");
    let _ = s.shutdown(std::net::Shutdown::Both);
}

#[test]
fn metrics_count_requests_by_class_latency_instances_and_builds() {
    let server = Server::start("metrics", &["--metrics-resolution", "1s"]);
    server.deploy_probe("meter", WHOLE_CORE);
    for _ in 0..5 {
        server.get("meter", "/");
    }
    server.get("meter", "/status?code=500");
    server.get("meter", "/status?code=404");

    let head = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text; version=1.0.0\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        server.token()
    );
    let answer = common::exchange(server.api_port, head.as_bytes(), Duration::from_secs(30))
        .expect("GET /metrics");
    assert_eq!(answer.status, 200, "{answer:?}");
    let text = answer.body;
    let value = |series: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{series} not in:\n{text}"))
    };
    // Exactly the requests made: the CLI and readiness checks do not go through the gateway.
    assert_eq!(
        value(r#"hoist_requests_total{service="meter",code="2xx"}"#),
        5.0
    );
    assert_eq!(
        value(r#"hoist_requests_total{service="meter",code="5xx"}"#),
        1.0
    );
    assert_eq!(
        value(r#"hoist_requests_total{service="meter",code="4xx"}"#),
        1.0
    );
    assert_eq!(
        value(r#"hoist_request_duration_seconds_count{service="meter"}"#),
        7.0
    );
    assert_eq!(
        value(r#"hoist_instances{service="meter",state="ready"}"#),
        1.0
    );
    assert!(value(r#"hoist_instance_memory_bytes{service="meter""#) > 1e6);
    assert_eq!(value(r#"hoist_builds_total{result="succeeded"}"#), 1.0);
    assert_eq!(value("hoist_services "), 1.0);
    assert!(text.contains("# EOF"), "OpenMetrics ends with EOF");
    // Without the token: refused.
    let (status, _) = common::http(server.api_port, "127.0.0.1", "/metrics").unwrap();
    assert_eq!(status, 401);

    // Per-resolution series (one second here instead of a minute).
    let rows = wait_until(
        "a sampled interval with the requests",
        Duration::from_secs(10),
        || {
            let (_, rows) = server.api("GET", "/v1/services/meter/metrics?since=10m", None);
            let total: u64 = rows
                .as_array()?
                .iter()
                .map(|r| r["requests"].as_u64().unwrap_or(0))
                .sum();
            (total >= 7).then_some(rows)
        },
        || {
            server
                .api("GET", "/v1/services/meter/metrics?since=10m", None)
                .1
                .to_string()
        },
    );
    let busy = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["requests"].as_u64().unwrap_or(0) > 0)
        .unwrap();
    assert!(busy["p50_ms"].as_f64().is_some(), "{busy}");
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .any(|r| r["errors"].as_u64() == Some(1)),
        "{rows}"
    );
    let table = server.hoist_ok(&["metrics", "meter", "--since", "10m"]);
    assert!(
        table.contains("REQUESTS") && table.contains("P99"),
        "{table}"
    );
}

#[test]
fn crashes_5xx_answers_and_failed_starts_are_events_with_their_log_lines() {
    let server = Server::start("events", &[]);
    server.deploy_probe("fragile", WHOLE_CORE);
    server.get("fragile", "/status?code=503");
    server.get("fragile", "/crash");
    let events = wait_until(
        "a crash and a 5xx event",
        Duration::from_secs(10),
        || {
            let (_, e) = server.api("GET", "/v1/services/fragile/events", None);
            let kinds: Vec<String> = e
                .as_array()?
                .iter()
                .map(|e| e["kind"].as_str().unwrap_or_default().to_string())
                .collect();
            (kinds.contains(&"crash".to_string()) && kinds.contains(&"http_5xx".to_string()))
                .then_some(e)
        },
        || {
            server
                .api("GET", "/v1/services/fragile/events", None)
                .1
                .to_string()
        },
    );
    let crash = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "crash")
        .unwrap();
    assert!(
        crash["detail"].as_str().unwrap().contains("exit code 3"),
        "{crash}"
    );
    assert!(
        crash["context"].as_array().unwrap().iter().any(|l| l
            .as_str()
            .unwrap_or_default()
            .contains("crashing on request")),
        "{crash}"
    );
    let listed = server.hoist_ok(&["events", "fragile"]);
    assert!(
        listed.contains("crash") && listed.contains("| crashing on request"),
        "{listed}"
    );
    assert_eq!(
        server.service("fragile")["events_24h"]["crash"],
        1,
        "{}",
        server.status("fragile")
    );

    // A deploy whose app never answers: a failed start, with the app's last words.
    server.deploy_err(&[
        common::git_repo(&common::probe_app(), "events-bad")
            .to_str()
            .unwrap(),
        "--name",
        "fragile",
        "--start",
        "echo about to fail; exit 4",
    ]);
    let listed = wait_until(
        "a start_failed event",
        Duration::from_secs(10),
        || {
            let out = server.hoist_ok(&["events", "fragile"]);
            out.contains("start_failed").then_some(out)
        },
        || server.hoist_ok(&["events", "fragile"]),
    );
    assert!(listed.contains("| about to fail"), "{listed}");
}

#[test]
fn a_burst_of_output_does_not_block_the_app_and_nothing_is_lost_silently() {
    const PRINTED: usize = 20_000;
    let server = Server::start("burst", &[]);
    server.deploy_probe("loud", WHOLE_CORE);
    let started = Instant::now();
    let (status, body) = server.get("loud", &format!("/spew?n={PRINTED}"));
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    eprintln!("{PRINTED} lines: {} (request {took:?})", body.trim());
    // Python writes them in a fraction of a second (BENCHMARKS.md); an app blocked on its
    // pipe until the lines are stored would take far longer.
    assert!(
        took < Duration::from_secs(5),
        "the app was held up: {took:?}"
    );
    // Every line is stored, or a line says how many were not: stored + dropped = printed.
    // The count of dropped lines is per service, so it also covers the two other lines of
    // the service written meanwhile: the app's own "request /spew..." line and the access
    // line of the request.
    const WRITTEN: usize = PRINTED + 2;
    let count = || {
        let out = server.hoist_ok(&["logs", "loud", "--grep", "spew", "--tail", "100000"]);
        let numbers: Vec<usize> = lines_of(&out, "spew line ")
            .iter()
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        let others = lines_of(&out, "/spew?n=").len();
        let dropped = server.hoist_ok(&["logs", "loud", "--grep", "were dropped", "--json"]);
        let reported: usize = dropped
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|l| {
                l["line"]
                    .as_str()?
                    .split_whitespace()
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .sum();
        (numbers, others, reported)
    };
    let (numbers, others, reported) = wait_until(
        "the burst is stored or reported",
        Duration::from_secs(30),
        || {
            let (numbers, others, reported) = count();
            (numbers.len() + others + reported >= WRITTEN).then_some((numbers, others, reported))
        },
        || {
            let (numbers, others, reported) = count();
            format!(
                "{} stored, {others} other lines, {reported} reported dropped",
                numbers.len()
            )
        },
    );
    eprintln!(
        "stored {} lines (and {others} of the 2 others), reported {reported} dropped",
        numbers.len()
    );
    assert_eq!(
        numbers.len() + others + reported,
        WRITTEN,
        "stored ({} + {others}) + reported dropped ({reported}) must be what was written",
        numbers.len()
    );
    let distinct: std::collections::HashSet<_> = numbers.iter().collect();
    assert_eq!(distinct.len(), numbers.len(), "a line is stored twice");
    assert!(
        numbers.iter().all(|n| *n < PRINTED),
        "a stored line the app did not print"
    );
    // The writer's queue holds 16 K lines: a burst this size is mostly stored, not mostly
    // reported lost.
    assert!(
        numbers.len() >= PRINTED / 2,
        "only {} of {PRINTED} lines stored ({reported} dropped)",
        numbers.len()
    );
}

#[test]
fn logs_past_their_age_are_removed() {
    // Retention 4 s, swept every second. The app's own lines are removed one by one: a line
    // 2 s younger than another is still inside the window when the sweep that removes the
    // older one runs. Access lines go by whole segment files, once every line in one is old.
    let server = Server::start("retention", &["--log-retention", "4s"]);
    server.deploy_probe("brief", WHOLE_CORE);
    let app_line = |needle: &str| -> Option<i64> {
        let out = server.hoist_ok(&["logs", "brief", "--grep", needle, "--json"]);
        json_lines(&out)
            .iter()
            .find(|l| l["stream"] == "stdout")
            .and_then(|l| l["ts"].as_i64())
    };
    server.get("brief", "/?old=1");
    let old = wait_until(
        "the old line is stored",
        Duration::from_secs(10),
        || app_line("old=1"),
        || server.hoist_ok(&["logs", "brief", "--grep", "old=1"]),
    );
    wait_until(
        "2 s pass",
        Duration::from_secs(10),
        || (now_ms() >= old + 2000).then_some(()),
        String::new,
    );
    server.get("brief", "/?new=1");
    let new = wait_until(
        "the new line is stored",
        Duration::from_secs(10),
        || app_line("new=1"),
        || server.hoist_ok(&["logs", "brief", "--grep", "new=1"]),
    );
    wait_until(
        "the old line is removed after 4 s",
        Duration::from_secs(20),
        || app_line("old=1").is_none().then_some(()),
        || server.hoist_ok(&["logs", "brief", "--grep", "old=1"]),
    );
    let removed_at = now_ms();
    assert!(
        removed_at >= old + 4000,
        "removed {} ms after it was written, before its 4 s were up",
        removed_at - old
    );
    // The younger line stays. (Its own 4 s may be over if this machine stalled for seconds
    // since the sweep; then there is nothing to check.)
    let present = app_line("new=1").is_some();
    let young = now_ms() < new + 4000;
    assert!(
        present || !young,
        "a line {} ms old was removed with the older one",
        now_ms() - new
    );
    if !young {
        eprintln!("the younger line's window ended before it was checked");
    }
    // In the end no line of the old request is left, access line included.
    wait_until(
        "every line of the old request is removed",
        Duration::from_secs(20),
        || {
            server
                .hoist_ok(&["logs", "brief", "--grep", "old=1"])
                .trim()
                .is_empty()
                .then_some(())
        },
        || server.hoist_ok(&["logs", "brief", "--grep", "old=1"]),
    );
}

#[test]
fn every_request_answered_before_a_stop_is_in_the_access_log_after_the_restart() {
    let mut server = Server::start("stop-flush", &[]);
    server.deploy_probe("shop", WHOLE_CORE);
    let gw_port = server.gw_port;
    let so_far = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = so_far.clone();
    // Requests keep coming while the server stops, so the gateway's last batch of access
    // records is still open when SIGTERM arrives.
    let client = std::thread::spawn(move || {
        let mut answered = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        for i in 0..5000 {
            let host = format!("shop.localhost:{gw_port}");
            match common::http(gw_port, &host, &format!("/?last={i}")) {
                Ok((200, _)) => {
                    answered.push(i);
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => break,
            }
            if Instant::now() > deadline {
                break;
            }
        }
        answered
    });
    wait_until(
        "requests are being answered",
        Duration::from_secs(10),
        || (so_far.load(std::sync::atomic::Ordering::Relaxed) >= 20).then_some(()),
        || {
            format!(
                "{} answered",
                so_far.load(std::sync::atomic::Ordering::Relaxed)
            )
        },
    );
    let stopped = server.terminate(Duration::from_secs(40));
    assert!(
        stopped.is_some_and(|s| s.success()),
        "the server did not stop cleanly: {stopped:?}"
    );
    let answered = client.join().expect("client thread");
    assert!(
        !answered.is_empty(),
        "no request was answered before the stop"
    );
    server.spawn();
    let out = server.hoist_ok(&["logs", "shop", "--stream", "access", "--grep", "last="]);
    let missing: Vec<_> = answered
        .iter()
        .filter(|i| !out.contains(&format!("GET /?last={i} ")))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered requests have no access line after the restart: {missing:?}",
        missing.len(),
        answered.len()
    );
}
