//! End-to-end tests of the API's streams as an EventSource client sees them: the deployment
//! stream speaks Server-Sent Events when asked (every event with an id, ending with the
//! outcome) and NDJSON otherwise, and a client that reconnects with `Last-Event-ID` gets no
//! line twice and misses none, on the deployment stream and on a followed log stream.
//!
//! One server and one deploy of the probe app; every read off a socket has a deadline.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Server, exchange, wait_until};

/// A first deploy may build the runtime (about a minute).
const DEPLOY: Duration = Duration::from_secs(300);
/// How long a followed line may take to arrive (it is there within milliseconds).
const FOLLOW: Duration = Duration::from_secs(10);

/// One Server-Sent Event: its id and its data as JSON.
#[derive(Debug, Clone)]
struct Sse {
    id: Option<String>,
    /// The `event:` field (none: a plain message).
    event: Option<String>,
    data: serde_json::Value,
}

/// Parses SSE events out of lines (HTTP chunk framing between them is ignored: it never
/// starts with a field name).
#[derive(Default)]
struct SseParser {
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
}

impl SseParser {
    fn line(&mut self, line: &str) -> Option<Sse> {
        let line = line.trim_end_matches('\r');
        if let Some(id) = line.strip_prefix("id:") {
            self.id = Some(id.trim().to_string());
        } else if let Some(event) = line.strip_prefix("event:") {
            self.event = Some(event.trim().to_string());
        } else if let Some(data) = line.strip_prefix("data:") {
            self.data = Some(data.trim().to_string());
        } else if line.is_empty()
            && let Some(data) = self.data.take()
        {
            let data = serde_json::from_str(&data)
                .unwrap_or_else(|e| panic!("SSE data is not JSON ({e}): {data}"));
            return Some(Sse {
                id: self.id.take(),
                event: self.event.take(),
                data,
            });
        }
        None
    }

    fn all(text: &str) -> Vec<Sse> {
        let mut p = SseParser::default();
        text.lines().filter_map(|l| p.line(l)).collect()
    }
}

fn get_head(server: &Server, path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n{extra}Connection: close\r\n\r\n",
        server.token()
    )
}

/// A followed stream: its head, and its events as they come.
struct Follow {
    head: String,
    events: mpsc::Receiver<Sse>,
    socket: TcpStream,
}

impl Follow {
    fn open(server: &Server, path: &str, extra: &str) -> Follow {
        let mut socket =
            TcpStream::connect(("127.0.0.1", server.api_port)).expect("connect to the API");
        socket
            .write_all(get_head(server, path, extra).as_bytes())
            .expect("send the request");
        let (head_tx, head_rx) = mpsc::channel();
        let (tx, events) = mpsc::channel();
        let reader = socket.try_clone().expect("the socket");
        std::thread::spawn(move || {
            let mut lines = BufReader::new(reader).lines();
            let mut head = String::new();
            for line in lines.by_ref() {
                let Ok(line) = line else { return };
                if line.trim().is_empty() {
                    break;
                }
                head.push_str(&line);
                head.push('\n');
            }
            let _ = head_tx.send(head);
            let mut parser = SseParser::default();
            for line in lines {
                let Ok(line) = line else { return };
                if let Some(e) = parser.line(&line)
                    && tx.send(e).is_err()
                {
                    return;
                }
            }
        });
        let head = head_rx
            .recv_timeout(FOLLOW)
            .expect("the stream's head within the deadline");
        Follow {
            head,
            events,
            socket,
        }
    }

    /// Events until one whose line contains `needle`, for at most `within`.
    fn until(&self, needle: &str, within: Duration) -> Vec<Sse> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("no line with {needle:?} within {within:?}: {seen:?}"));
            let e = self
                .events
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no line with {needle:?} within {within:?}: {seen:?}"));
            let done = e.data["line"].as_str().is_some_and(|l| l.contains(needle));
            seen.push(e);
            if done {
                return seen;
            }
        }
    }

    fn close(self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }
}

fn log_id(e: &Sse) -> i64 {
    let id =
        e.id.as_deref()
            .unwrap_or_else(|| panic!("an event without id: {e:?}"));
    id.parse()
        .unwrap_or_else(|_| panic!("a log line's event id is not its line id: {e:?}"))
}

fn assert_increasing(ids: &[i64], what: &str) {
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "{what}: ids not strictly increasing (a line twice or out of order): {ids:?}"
    );
}

#[test]
fn the_deployment_stream_speaks_sse_with_ids_and_a_reconnect_gets_no_line_twice() {
    let server = Server::start("streams", &[]);
    let repo = common::git_repo(&common::probe_app(), "streams");
    let id = server.submit(&[repo.to_str().unwrap(), "--name", "streams"]);
    let events_path = format!("/v1/deployments/{id}/events");

    // SSE, asked for by Accept, followed to the end: it ends once the pipeline is over.
    let answer = exchange(
        server.api_port,
        get_head(&server, &events_path, "Accept: text/event-stream\r\n").as_bytes(),
        DEPLOY,
    )
    .expect("the deployment stream ends");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream")),
        "{:?}",
        answer.headers
    );
    let events = SseParser::all(&answer.body);
    let (outcome, lines) = events.split_last().expect("events on the stream");
    assert_eq!(outcome.id.as_deref(), Some("end"), "{outcome:?}");
    assert_eq!(outcome.data["type"], "deployment", "{outcome:?}");
    assert_eq!(outcome.data["state"], "live", "{outcome:?}");
    assert!(outcome.data["url"].as_str().is_some(), "{outcome:?}");
    assert!(lines.len() >= 3, "{events:?}");
    for e in lines {
        assert_eq!(e.data["type"], "log", "{e:?}");
        assert_eq!(Some(log_id(e)), e.data["id"].as_i64(), "{e:?}");
    }
    let ids: Vec<i64> = lines.iter().map(log_id).collect();
    assert_increasing(&ids, "deployment stream");
    let text: Vec<&str> = lines
        .iter()
        .filter_map(|e| e.data["line"].as_str())
        .collect();
    assert!(
        text.iter().any(|l| l.starts_with("==> fetching")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|l| l.contains("is live at")),
        "the pipeline's last lines come before its outcome: {text:?}"
    );

    // A reconnect after a line gets the lines after it, none twice, then the outcome.
    let cut = ids[ids.len() / 2];
    let again = exchange(
        server.api_port,
        get_head(
            &server,
            &format!("{events_path}?format=sse"),
            &format!("Last-Event-ID: {cut}\r\n"),
        )
        .as_bytes(),
        FOLLOW,
    )
    .expect("the resumed stream ends");
    assert_eq!(again.status, 200, "{}", again.body);
    let resumed = SseParser::all(&again.body);
    let (end, rest) = resumed.split_last().expect("events on the resumed stream");
    assert_eq!(end.id.as_deref(), Some("end"), "{resumed:?}");
    assert_eq!(end.data["state"], "live");
    let rest_ids: Vec<i64> = rest.iter().map(log_id).collect();
    let after_cut: Vec<i64> = ids.iter().copied().filter(|i| *i > cut).collect();
    assert!(
        rest_ids.starts_with(&after_cut),
        "resumed after {cut}: {rest_ids:?}, the first reading had {after_cut:?} after it"
    );
    assert!(rest_ids.iter().all(|i| *i > cut), "{rest_ids:?}");
    assert_increasing(&rest_ids, "resumed deployment stream");

    // After the outcome there is nothing more: an EventSource is told to stop reconnecting.
    let ended = exchange(
        server.api_port,
        get_head(
            &server,
            &format!("{events_path}?format=sse"),
            "Last-Event-ID: end\r\n",
        )
        .as_bytes(),
        FOLLOW,
    )
    .expect("an answer");
    assert_eq!(ended.status, 204, "{}", ended.body);

    // Not asked for SSE: NDJSON, as the CLI reads it.
    let ndjson = exchange(
        server.api_port,
        get_head(&server, &events_path, "").as_bytes(),
        FOLLOW,
    )
    .expect("the NDJSON stream ends");
    assert!(
        ndjson
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/x-ndjson")),
        "{:?}",
        ndjson.headers
    );
    let objects: Vec<serde_json::Value> = ndjson
        .body
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let last = objects.last().expect("NDJSON lines");
    assert_eq!(last["type"], "deployment", "{last}");
    assert_eq!(last["state"], "live", "{last}");
    // The same lines in both formats: what the first reading had, in order. The instance goes
    // on writing lines of its deployment after the outcome (its app's own output), so a later
    // reading may have more before its outcome, as the resumed one above may.
    let nd_ids: Vec<i64> = objects[..objects.len() - 1]
        .iter()
        .map(|o| {
            o["id"]
                .as_i64()
                .unwrap_or_else(|| panic!("a line without id: {o}"))
        })
        .collect();
    assert!(
        nd_ids.starts_with(&ids),
        "the same events in both formats: NDJSON {nd_ids:?}, SSE {ids:?}"
    );

    // The log stream, followed over SSE with tail=0 (as an EventSource would reconnect to
    // it): lines written while the client was away reach it after a reconnect, none twice.
    let logs = "/v1/services/streams/logs?follow=true&stream=access&tail=0&format=sse";
    let first = Follow::open(&server, logs, "");
    assert!(
        first
            .head
            .to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{}",
        first.head
    );
    let mut seen = Vec::new();
    for i in 0..3 {
        let (status, body) = server.get("streams", &format!("/?mark=first-{i}"));
        assert_eq!(status, 200, "{body}");
        seen.extend(first.until(&format!("mark=first-{i}"), FOLLOW));
    }
    let last_seen = log_id(seen.last().expect("lines seen"));
    first.close();

    for i in 0..3 {
        let (status, body) = server.get("streams", &format!("/?mark=away-{i}"));
        assert_eq!(status, 200, "{body}");
    }
    // Stored before the reconnect, so only Last-Event-ID can bring them.
    wait_until(
        "the lines written while away are stored",
        FOLLOW,
        || {
            let stored = exchange(
                server.api_port,
                get_head(
                    &server,
                    "/v1/services/streams/logs?stream=access&grep=mark%3Daway-2",
                    "",
                )
                .as_bytes(),
                FOLLOW,
            )
            .ok()?;
            stored.body.contains("mark=away-2").then_some(())
        },
        || "not stored yet".into(),
    );

    let second = Follow::open(&server, logs, &format!("Last-Event-ID: {last_seen}\r\n"));
    let mut resumed = second.until("mark=away-2", FOLLOW);
    let (status, body) = server.get("streams", "/?mark=after");
    assert_eq!(status, 200, "{body}");
    resumed.extend(second.until("mark=after", FOLLOW));
    second.close();

    let lines_of = |events: &[Sse]| -> Vec<String> {
        events
            .iter()
            .filter_map(|e| e.data["line"].as_str().map(str::to_string))
            .collect()
    };
    let resumed_ids: Vec<i64> = resumed.iter().map(log_id).collect();
    assert!(
        resumed_ids.iter().all(|i| *i > last_seen),
        "a line seen before the reconnect came again: {resumed_ids:?} after {last_seen}"
    );
    assert_increasing(&resumed_ids, "resumed log stream");
    let resumed_lines = lines_of(&resumed);
    for i in 0..3 {
        let mark = format!("mark=away-{i} ");
        let n = resumed_lines.iter().filter(|l| l.contains(&mark)).count();
        assert_eq!(
            n, 1,
            "the line of {mark:?} {n} times after the reconnect: {resumed_lines:?}"
        );
    }
    assert!(
        !resumed_lines.iter().any(|l| l.contains("mark=first-")),
        "{resumed_lines:?}"
    );

    // A follower that asks for at most 5 new lines a second (as the dashboard asks for 200)
    // of a burst of 2000: it is sent some, and told how many it was not sent, so every line of
    // the burst is accounted for, and the ids (of lines and of `skipped` events) only grow.
    let limited = Follow::open(
        &server,
        "/v1/services/streams/logs?follow=true&stream=stdout&tail=0&format=sse&max_rate=5",
        "",
    );
    let (status, body) = server.get("streams", "/spew?n=2000");
    assert_eq!(status, 200, "{body}");
    let (mut sent, mut skipped, mut ids) = (0u64, 0u64, Vec::new());
    let deadline = Instant::now() + FOLLOW;
    while sent + skipped < 2000 {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| {
                panic!("of 2000 lines, {sent} sent and {skipped} skipped within {FOLLOW:?}")
            });
        let Ok(e) = limited.events.recv_timeout(left) else {
            panic!("of 2000 lines, {sent} sent and {skipped} skipped within {FOLLOW:?}");
        };
        ids.push(log_id(&e));
        match e.event.as_deref() {
            Some("skipped") => {
                skipped += e.data["skipped"]
                    .as_u64()
                    .expect("a count of skipped lines");
                assert_eq!(e.data["through_id"].as_i64(), ids.last().copied(), "{e:?}");
            }
            None => {
                // The burst, and the probe's own line about the request that made it.
                let line = e.data["line"].as_str().unwrap_or_default();
                if line.starts_with("spew line ") {
                    sent += 1;
                } else {
                    assert!(line.starts_with("request /spew"), "{e:?}");
                }
            }
            Some(other) => panic!("an unexpected event {other:?}: {e:?}"),
        }
    }
    limited.close();
    assert!(skipped > 0 && sent < 2000, "{sent} sent, {skipped} skipped");
    assert_increasing(&ids, "rate-limited log stream");
}
