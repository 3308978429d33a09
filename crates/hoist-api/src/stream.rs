//! Streams of a service's logs and of one deployment, as NDJSON (one JSON object per line) or
//! Server-Sent Events, flushed as things happen. Followers subscribe before they read the
//! backlog, then skip what the backlog already had, so no line falls in between.
//!
//! Every event carries an id: a log line's id, or `end` for a deployment's outcome. A client
//! that reconnects with the last id it saw (`Last-Event-ID`, as EventSource does by itself)
//! gets the lines after it and no line twice; one that saw `end` gets `204 No Content`, which
//! tells an EventSource to stop reconnecting.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hoist_api_types::{DeploymentOutcome, LogFormat, LogsSkipped, StreamEvent};
use hoist_control::{Change, Event, Platform};
use hoist_core::{DeploymentId, DeploymentState};
use hoist_store::{LogFilter, LogLine};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use crate::auth::Auth;

/// The id of a deployment stream's last event, its outcome.
const END_ID: &str = "end";

/// How a stream is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// One JSON object per line.
    Ndjson,
    /// Server-Sent Events: `id:` and `data: <json>` per event, with keep-alive comments.
    Sse,
}

impl Format {
    /// `?format=sse|ndjson` when given, else Server-Sent Events if `Accept` asks for
    /// `text/event-stream`, else NDJSON.
    /// The asked `format` wins (the query decoder already refused an unknown one); without
    /// one, `Accept: text/event-stream` asks for SSE.
    pub(crate) fn negotiate(format: Option<LogFormat>, headers: &HeaderMap) -> Format {
        match format {
            Some(LogFormat::Sse) => Format::Sse,
            Some(LogFormat::Ndjson) => Format::Ndjson,
            None if headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("text/event-stream")) =>
            {
                Format::Sse
            }
            None => Format::Ndjson,
        }
    }
}

/// Where a reconnecting client left off (its `Last-Event-ID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resume {
    /// A fresh stream.
    Start,
    /// After the log line with this id.
    After(i64),
    /// After the deployment's outcome: nothing is left to send.
    Ended,
}

impl Resume {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Result<Resume, String> {
        let Some(value) = headers.get("last-event-id") else {
            return Ok(Resume::Start);
        };
        // Not text at all is no id this stream sent: starting over would send lines twice.
        let text = value
            .to_str()
            .map_err(|_| {
                "invalid Last-Event-ID: expected the id of an event this stream sent".to_string()
            })?
            .trim();
        match text {
            "" => Ok(Resume::Start),
            END_ID => Ok(Resume::Ended),
            _ => text.parse::<i64>().map(Resume::After).map_err(|_| {
                format!(
                    "invalid Last-Event-ID '{}': expected the id of an event this stream sent",
                    hoist_core::echo(text)
                )
            }),
        }
    }

    /// The log line id to continue after.
    fn after(self) -> i64 {
        match self {
            Resume::After(id) => id,
            Resume::Start | Resume::Ended => 0,
        }
    }
}

/// One event of a stream: its id, its SSE event name (none: a plain message) and its JSON.
struct Item {
    id: String,
    name: Option<&'static str>,
    json: Vec<u8>,
}

impl Item {
    fn new<T: serde::Serialize>(id: impl ToString, value: &T) -> Item {
        Item {
            id: id.to_string(),
            name: None,
            json: serde_json::to_vec(value).unwrap_or_default(),
        }
    }

    fn named<T: serde::Serialize>(name: &'static str, id: impl ToString, value: &T) -> Item {
        Item {
            name: Some(name),
            ..Item::new(id, value)
        }
    }

    /// Appends the item as sent in `format`. serde_json's compact output has no raw newline,
    /// so the JSON is one SSE `data:` line.
    fn encode(&self, format: Format, out: &mut Vec<u8>) {
        match format {
            Format::Ndjson => {
                out.extend_from_slice(&self.json);
                out.push(b'\n');
            }
            Format::Sse => {
                if let Some(name) = self.name {
                    out.extend_from_slice(b"event: ");
                    out.extend_from_slice(name.as_bytes());
                    out.push(b'\n');
                }
                out.extend_from_slice(b"id: ");
                out.extend_from_slice(self.id.as_bytes());
                out.extend_from_slice(b"\ndata: ");
                out.extend_from_slice(&self.json);
                out.extend_from_slice(b"\n\n");
            }
        }
    }
}

/// While events keep coming, a stream writes at most once in this long: a busy service's
/// followers then cost the server a write (and the client a wake-up) per batch of lines, not
/// per line. An event after a quiet spell is written at once.
const LINGER: Duration = Duration::from_millis(25);
/// The same for a follower that asked for at most `max_rate` lines a second (a dashboard): it
/// is told of skipped lines this often anyway, and redraws about once a second, so a write
/// every 25 ms would only wake it (and its network process) ten times for nothing.
const LIMITED_LINGER: Duration = SKIPPED_EVERY;
/// The most events in one write.
const BATCH: usize = 1024;
/// An idle SSE stream sends a comment this often, so proxies and browsers keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The response: the events of `rx`, as they come, at most one write per `linger` (see
/// [`LINGER`]).
fn respond(rx: mpsc::Receiver<Item>, format: Format, linger: Duration) -> Response {
    struct Writer {
        rx: mpsc::Receiver<Item>,
        batch: Vec<Item>,
        last_write: Option<Instant>,
    }
    let writer = Writer {
        rx,
        batch: Vec::new(),
        last_write: None,
    };
    let body = futures_util::stream::unfold(writer, move |mut w| async move {
        let first = match format {
            Format::Sse => match tokio::time::timeout(KEEP_ALIVE, w.rx.recv()).await {
                Ok(first) => first?,
                Err(_) => return Some((Ok::<_, Infallible>(Bytes::from_static(b":\n\n")), w)),
            },
            Format::Ndjson => w.rx.recv().await?,
        };
        w.batch.push(first);
        if let Some(at) = w.last_write {
            tokio::time::sleep_until(at + linger).await;
        }
        while w.batch.len() < BATCH {
            match w.rx.try_recv() {
                Ok(item) => w.batch.push(item),
                Err(_) => break,
            }
        }
        let mut out = Vec::with_capacity(w.batch.iter().map(|i| i.json.len() + 32).sum());
        for item in w.batch.drain(..) {
            item.encode(format, &mut out);
        }
        w.last_write = Some(Instant::now());
        Some((Ok(Bytes::from(out)), w))
    });
    let content_type = match format {
        Format::Ndjson => "application/x-ndjson",
        Format::Sse => "text/event-stream",
    };
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .unwrap_or_default()
}

/// How often a stream asks whether its credential is still good (a revoked token or an ended
/// session ends the streams it opened within this long).
const RECHECK: Duration = Duration::from_secs(5);

fn recheck_interval() -> tokio::time::Interval {
    // The first tick is a period away: the request was just authenticated.
    let mut every = tokio::time::interval_at(Instant::now() + RECHECK, RECHECK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every
}

/// Whether the deployment's pipeline is over (its outcome is recorded and nothing more is
/// written to its log by it).
fn pipeline_over(platform: &Platform, id: &DeploymentId) -> bool {
    match platform.store().get_deployment(id) {
        Ok(Some(d)) => {
            (d.state.is_terminal() || d.state == DeploymentState::Live)
                && !platform.is_in_pipeline(&d.service, id)
        }
        // Gone (its service deleted), or unreadable: nothing more will come.
        _ => true,
    }
}

/// The build and start of one deployment, ending with its outcome once its pipeline is over.
/// Woken by the log hub's lines and the lifecycle's announcements; never polls.
pub(crate) fn deployment_events(
    platform: Arc<Platform>,
    auth: Auth,
    id: DeploymentId,
    format: Format,
    resume: Resume,
) -> Response {
    if resume == Resume::Ended {
        return StatusCode::NO_CONTENT.into_response();
    }
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        // Both before anything is read: what happens from here on is seen.
        let mut changes = platform.deployment_changes();
        let mut lines = platform.logs().subscribe();
        let store = platform.store().clone();
        let Ok(Some(d)) = store.get_deployment(&id) else {
            return;
        };
        let service = d.service.to_string();
        let backlog = |after: i64| {
            let filter = LogFilter {
                deployment: Some(id.to_string()),
                after_id: Some(after),
                ..LogFilter::default()
            };
            store.query_logs(&service, &filter).unwrap_or_default()
        };
        let mut last_id = resume.after();
        macro_rules! send_line {
            ($l:expr) => {{
                let l: LogLine = $l;
                last_id = l.id;
                if tx
                    .send(Item::new(l.id, &StreamEvent::Log(l.into())))
                    .await
                    .is_err()
                {
                    return;
                }
            }};
        }
        for l in backlog(last_id) {
            send_line!(l);
        }
        let mut over = pipeline_over(&platform, &id);
        let mut recheck = recheck_interval();
        while !over {
            tokio::select! {
                _ = recheck.tick() => if !auth.still_valid(&store) {
                    return;
                },
                line = lines.recv() => match line {
                    Ok(Event::Log(l)) if l.deployment.as_deref() == Some(id.as_str()) && l.id > last_id => {
                        send_line!(l);
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        for l in backlog(last_id) {
                            send_line!(l);
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                change = changes.recv() => match change {
                    Ok(Change::PipelineOver { id: ended, .. }) => over = ended == id,
                    Ok(Change::State { .. }) => {}
                    // Missed announcements: the record says whether the end was among them.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        over = pipeline_over(&platform, &id);
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tx.closed() => return,
            }
        }
        // Lines stored before the end may not have been broadcast to us yet, and the
        // pipeline's last lines may still be on their way to the store: wait for them, then
        // send what is stored.
        platform.logs().flushed().await;
        for l in backlog(last_id) {
            if tx
                .send(Item::new(l.id, &StreamEvent::Log(l.into())))
                .await
                .is_err()
            {
                return;
            }
        }
        let Ok(Some(now)) = store.get_deployment(&id) else {
            return;
        };
        // Live is recorded before the gateway switches; the outcome is sent once the
        // pipeline is over, so a client that sees "live" is served by the new version.
        let url = (now.state == DeploymentState::Live).then(|| platform.url(&now.service));
        let outcome = StreamEvent::Deployment(DeploymentOutcome {
            id: id.to_string(),
            service: now.service.to_string(),
            state: now.state,
            reason: now.failure_reason,
            url,
        });
        let _ = tx.send(Item::new(END_ID, &outcome)).await;
    });
    respond(rx, format, LINGER)
}

/// Whether a log stream goes on after the backlog, and how fast.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Follow {
    pub(crate) follow: bool,
    /// The most new lines a second to send (`max_rate`).
    pub(crate) max_rate: Option<u32>,
}

/// How often a limited follower is told how many lines it was not sent.
const SKIPPED_EVERY: Duration = Duration::from_millis(250);

/// A token bucket of `rate` lines a second, holding one second's worth: a burst (a stack
/// trace) is sent whole, a steady flood is cut to `rate`. What it refuses is counted.
struct RateLimit {
    rate: f64,
    tokens: f64,
    at: Instant,
    skipped: u64,
}

impl RateLimit {
    fn new(rate: u32, now: Instant) -> RateLimit {
        RateLimit {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            at: now,
            skipped: 0,
        }
    }

    /// Whether a line may be sent now; counts it as skipped when not.
    fn admit(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.skipped += 1;
            false
        }
    }

    /// The count of skipped lines since the last call.
    fn take_skipped(&mut self) -> u64 {
        std::mem::take(&mut self.skipped)
    }
}

/// A service's logs: the backlog, then (with `follow`) new lines as they are stored, at most
/// `max_rate` a second when given. After a `Last-Event-ID`, the backlog is every matching line
/// after it, however many.
pub(crate) fn service_logs(
    platform: Arc<Platform>,
    auth: Auth,
    service: String,
    mut filter: LogFilter,
    follow: Follow,
    format: Format,
    resume: Resume,
) -> Response {
    if let Resume::After(after) = resume {
        filter.after_id = Some(filter.after_id.map_or(after, |a| a.max(after)));
        filter.tail = None;
    }
    let (tx, rx) = mpsc::channel::<Item>(4096);
    tokio::spawn(async move {
        let mut sub = platform.logs().subscribe();
        let store = platform.store().clone();
        let mut last_id = resume.after();
        let mut limit = follow.max_rate.map(|r| RateLimit::new(r, Instant::now()));
        macro_rules! send_line {
            ($l:expr) => {{
                let l: LogLine = $l;
                last_id = l.id;
                if tx
                    .send(Item::new(l.id, &hoist_api_types::LogLine::from(l)))
                    .await
                    .is_err()
                {
                    return;
                }
            }};
        }
        // A line of the live part: sent, or counted as skipped by the rate limit.
        macro_rules! follow_line {
            ($l:expr) => {{
                let l: LogLine = $l;
                if limit
                    .as_mut()
                    .is_none_or(|limit| limit.admit(Instant::now()))
                {
                    send_line!(l);
                } else {
                    last_id = l.id;
                }
            }};
        }
        let backlog = {
            let (store, service, filter) = (store.clone(), service.clone(), filter.clone());
            tokio::task::spawn_blocking(move || store.query_logs(&service, &filter))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default()
        };
        for l in backlog {
            send_line!(l);
        }
        if !follow.follow {
            return;
        }
        let mut tell_skipped = tokio::time::interval(SKIPPED_EVERY);
        tell_skipped.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut recheck = recheck_interval();
        loop {
            // A follower of a quiet service notices a client that left without waiting for
            // a line to fail to send.
            let received = tokio::select! {
                r = sub.recv() => r,
                _ = recheck.tick() => {
                    if !auth.still_valid(&store) {
                        return;
                    }
                    continue;
                }
                _ = tell_skipped.tick(), if limit.is_some() => {
                    let skipped = limit.as_mut().map_or(0, RateLimit::take_skipped);
                    if skipped > 0 {
                        // Its id is the last line counted, so a reconnect resumes after it.
                        let event = LogsSkipped { skipped, through_id: last_id };
                        if tx.send(Item::named("skipped", last_id, &event)).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
                _ = tx.closed() => return,
            };
            match received {
                Ok(Event::Log(l)) => {
                    if l.id > last_id && l.service == service && filter.matches(&l) {
                        follow_line!(l);
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let catch_up = LogFilter {
                        after_id: Some(last_id),
                        tail: None,
                        ..filter.clone()
                    };
                    for l in store.query_logs(&service, &catch_up).unwrap_or_default() {
                        follow_line!(l);
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let linger = if follow.max_rate.is_some() {
        LIMITED_LINGER
    } else {
        LINGER
    };
    respond(rx, format, linger)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(*name, value.parse().expect("a header value"));
        }
        h
    }

    #[test]
    fn the_query_wins_over_accept_and_ndjson_is_the_default() {
        let sse = headers(&[("accept", "text/event-stream")]);
        assert_eq!(Format::negotiate(None, &sse), Format::Sse);
        assert_eq!(
            Format::negotiate(Some(LogFormat::Sse), &HeaderMap::new()),
            Format::Sse
        );
        assert_eq!(
            Format::negotiate(Some(LogFormat::Ndjson), &sse),
            Format::Ndjson
        );
        assert_eq!(Format::negotiate(None, &HeaderMap::new()), Format::Ndjson);
    }

    #[test]
    fn last_event_id_is_a_line_id_or_the_end() {
        assert_eq!(Resume::from_headers(&HeaderMap::new()), Ok(Resume::Start));
        let at = |v: &str| Resume::from_headers(&headers(&[("last-event-id", v)]));
        assert_eq!(at("42"), Ok(Resume::After(42)));
        assert_eq!(at(" 42 "), Ok(Resume::After(42)));
        assert_eq!(at("end"), Ok(Resume::Ended));
        assert_eq!(at(""), Ok(Resume::Start));
        let err = at("d-1").unwrap_err();
        assert!(err.starts_with("invalid Last-Event-ID 'd-1'"), "{err}");
    }

    #[test]
    fn the_rate_limit_sends_a_burst_whole_then_its_rate_and_counts_the_rest() {
        let start = Instant::now();
        let mut limit = RateLimit::new(10, start);
        // One second's worth at once: all sent.
        assert!((0..10).all(|_| limit.admit(start)));
        // A flood in the same instant: none, each counted.
        assert_eq!((0..90).filter(|_| limit.admit(start)).count(), 0);
        assert_eq!(limit.take_skipped(), 90);
        assert_eq!(limit.take_skipped(), 0, "taken once");
        // Half a second later, half a second's worth.
        let later = start + Duration::from_millis(500);
        assert_eq!((0..100).filter(|_| limit.admit(later)).count(), 5);
        assert_eq!(limit.take_skipped(), 95);
        // A long quiet spell refills one second's worth, not more.
        let much_later = later + Duration::from_secs(60);
        assert_eq!((0..100).filter(|_| limit.admit(much_later)).count(), 10);
    }

    #[test]
    fn events_are_encoded_as_ndjson_lines_or_sse_events_with_their_name_and_id() {
        let line = Item::new(7, &serde_json::json!({"line": "a\nb"}));
        let skipped = Item::named("skipped", 9, &serde_json::json!({"skipped": 2}));
        let mut out = Vec::new();
        line.encode(Format::Ndjson, &mut out);
        assert_eq!(out, b"{\"line\":\"a\\nb\"}\n");
        let mut out = Vec::new();
        line.encode(Format::Sse, &mut out);
        skipped.encode(Format::Sse, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "id: 7\ndata: {\"line\":\"a\\nb\"}\n\nevent: skipped\nid: 9\ndata: {\"skipped\":2}\n\n"
        );
    }
}
