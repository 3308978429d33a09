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
use std::time::{Duration, Instant};

use common::{Server, wait_until};

const WHOLE_CORE: &[&str] = &["--memory", "1769"];

fn lines_of(out: &str, needle: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_request_has_an_access_line_and_logs_filter_by_stream_text_time_and_instance() {
    let server = Server::start("access-log", &[]);
    server.deploy_probe("shop", WHOLE_CORE);
    for i in 0..3 {
        assert_eq!(server.get("shop", &format!("/?item={i}")).0, 200);
    }
    assert_eq!(server.get("shop", "/status?code=503").0, 503);
    let access = wait_until(
        "four access lines",
        Duration::from_secs(5),
        || {
            let out = server.hoist_ok(&["logs", "shop", "--stream", "access"]);
            (lines_of(&out, "GET /").len() >= 4).then_some(out)
        },
        || server.hoist_ok(&["logs", "shop", "--stream", "access"]),
    );
    let first = &lines_of(&access, "GET /?item=0")[0];
    assert!(
        first.contains(" 200 ") && first.contains("ms in=0 out=") && first.contains("instance=i-"),
        "{first}"
    );
    assert!(access.contains("GET /status?code=503 503"), "{access}");
    // Only access lines were asked for.
    assert!(!access.contains("probe listening"), "{access}");

    let grep = server.hoist_ok(&["logs", "shop", "--grep", "item=1"]);
    assert_eq!(
        lines_of(&grep, "item=").len(),
        2,
        "access and app line: {grep}"
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
    let instance = line["instance"].as_str().unwrap().to_string();
    let by_instance = server.hoist_ok(&["logs", "shop", "--instance", &instance]);
    assert!(by_instance.contains("probe listening"), "{by_instance}");
    assert!(
        server
            .hoist_ok(&["logs", "shop", "--since", "1h"])
            .contains("item=2")
    );

    // Bad filters name what is wrong.
    let err = server.hoist_err(&["logs", "shop", "--stream", "nope"]);
    assert!(err.contains("unknown log stream 'nope'"), "{err}");
    let err = server.hoist_err(&["logs", "shop", "--since", "yesterday"]);
    assert!(err.contains("duration"), "{err}");
    let err = server.hoist_err(&["logs", "shop", "--instance", "../etc"]);
    assert!(err.contains("instance"), "{err}");
}

#[test]
fn following_shows_a_new_line_within_200_ms_over_ndjson_and_sse() {
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
        .unwrap();
    let mut out = BufReader::new(follow.stdout.take().unwrap());
    std::thread::sleep(Duration::from_millis(500));
    let mut lags = Vec::new();
    for i in 0..5 {
        let sent = Instant::now();
        server.get("live", &format!("/?follow={i}"));
        // The line of the request made before following began may arrive first: the gateway
        // hands access lines over every 50 ms.
        let mut line = String::new();
        while !line.contains("follow=") {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "follow ended");
        }
        let lag = sent.elapsed();
        assert!(line.contains(&format!("follow={i}")), "{line}");
        lags.push(lag);
    }
    let _ = follow.kill();
    let _ = follow.wait();
    lags.sort();
    eprintln!("follow lags: {lags:?}");
    assert!(
        lags[lags.len() / 2] < Duration::from_millis(200),
        "median lag {:?}",
        lags[lags.len() / 2]
    );

    // Server-Sent Events, straight from the API.
    let mut s = TcpStream::connect(("127.0.0.1", server.api_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /v1/services/live/logs?follow=true&stream=access&tail=0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nAccept: text/event-stream\r\n\r\n",
        server.token()
    )
    .unwrap();
    let mut reader = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut l = String::new();
        reader.read_line(&mut l).unwrap();
        if l == "\r\n" {
            break;
        }
        head.push_str(&l);
    }
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    std::thread::sleep(Duration::from_millis(200));
    server.get("live", "/?over=sse");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = String::new();
    while Instant::now() < deadline && !seen.contains("over=sse") {
        let mut l = String::new();
        if reader.read_line(&mut l).unwrap_or(0) == 0 {
            break;
        }
        seen.push_str(&l);
    }
    assert!(
        seen.contains("data: {") && seen.contains("over=sse"),
        "{seen}"
    );
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

    let (status, text) = {
        let mut s = TcpStream::connect(("127.0.0.1", server.api_port)).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            server.token()
        )
        .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        (body.lines().next().unwrap_or_default().to_string(), body)
    };
    assert!(status.contains("200"), "{status}");
    let value = |series: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{series} not in:\n{text}"))
    };
    assert!(value(r#"hoist_requests_total{service="meter",code="2xx"}"#) >= 5.0);
    assert_eq!(
        value(r#"hoist_requests_total{service="meter",code="5xx"}"#),
        1.0
    );
    assert_eq!(
        value(r#"hoist_requests_total{service="meter",code="4xx"}"#),
        1.0
    );
    assert!(value(r#"hoist_request_duration_seconds_count{service="meter"}"#) >= 7.0);
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
    assert!(
        server.status("fragile").contains("1 crash"),
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
    let server = Server::start("burst", &[]);
    server.deploy_probe("loud", WHOLE_CORE);
    let started = Instant::now();
    let (status, body) = server.get("loud", "/spew?n=20000");
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    eprintln!("20000 lines: {} (request {took:?})", body.trim());
    assert!(
        took < Duration::from_secs(5),
        "the app was held up: {took:?}"
    );
    // Every line is stored, or a line says how many were not.
    let stored = wait_until(
        "the burst is stored",
        Duration::from_secs(20),
        || {
            let out = server.hoist_ok(&["logs", "loud", "--grep", "spew line", "--tail", "100000"]);
            let n = lines_of(&out, "spew line").len();
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
            (n + reported >= 20_000).then_some((n, reported))
        },
        || "not all lines stored or reported".to_string(),
    );
    eprintln!("stored {} lines, reported {} dropped", stored.0, stored.1);
}

#[test]
fn logs_past_their_age_are_removed() {
    let server = Server::start("retention", &["--log-retention", "3s"]);
    server.deploy_probe("brief", WHOLE_CORE);
    server.get("brief", "/?old=1");
    wait_until(
        "the line is stored",
        Duration::from_secs(5),
        || {
            server
                .hoist_ok(&["logs", "brief", "--grep", "old=1"])
                .contains("old=1")
                .then_some(())
        },
        String::new,
    );
    wait_until(
        "the line is removed after 3 s",
        Duration::from_secs(15),
        || {
            (!server
                .hoist_ok(&["logs", "brief", "--grep", "old=1"])
                .contains("old=1"))
            .then_some(())
        },
        || server.hoist_ok(&["logs", "brief", "--grep", "old=1"]),
    );
    // Fresh lines stay.
    server.get("brief", "/?new=1");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        server
            .hoist_ok(&["logs", "brief", "--grep", "new=1"])
            .contains("new=1")
    );
}

#[test]
fn every_request_answered_before_a_stop_is_in_the_access_log_after_the_restart() {
    let mut server = Server::start("stop-flush", &[]);
    server.deploy_probe("shop", WHOLE_CORE);
    let gw_port = server.gw_port;
    // Requests keep coming while the server stops, so the gateway's last batch of access
    // records is still open when SIGTERM arrives.
    let client = std::thread::spawn(move || {
        let mut answered = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        for i in 0..5000 {
            let host = format!("shop.localhost:{gw_port}");
            match common::http(gw_port, &host, &format!("/?last={i}")) {
                Ok((200, _)) => answered.push(i),
                Ok(_) => {}
                Err(_) => break,
            }
            if Instant::now() > deadline {
                break;
            }
        }
        answered
    });
    std::thread::sleep(Duration::from_millis(500));
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
