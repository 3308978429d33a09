//! NDJSON streams: one JSON object per line, flushed as it happens. Followers subscribe before
//! they read the backlog, then skip what the backlog already had, so no line falls in between.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::Response;
use hoist_control::{Event, Platform};
use hoist_core::{DeploymentId, DeploymentState};
use hoist_store::{LogFilter, LogLine};
use tokio::sync::{broadcast, mpsc};

fn ndjson(rx: mpsc::Receiver<Bytes>) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}

fn line<T: serde::Serialize>(value: &T) -> Bytes {
    let mut v = serde_json::to_vec(value).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

fn is_settled(state: DeploymentState) -> bool {
    state.is_terminal() || state == DeploymentState::Live
}

/// The build and start of one deployment, ending with its outcome.
pub(crate) fn deployment_events(platform: Arc<Platform>, id: DeploymentId) -> Response {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let mut sub = platform.logs().subscribe();
        let mut last_id = 0i64;
        let store = platform.store().clone();
        let Ok(Some(d)) = store.get_deployment(&id) else {
            return;
        };
        let filter = |after: i64| LogFilter {
            deployment: Some(id.to_string()),
            after_id: Some(after),
            ..LogFilter::default()
        };
        let send_backlog = |after: i64| {
            store
                .query_logs(d.service.as_str(), &filter(after))
                .unwrap_or_default()
        };
        for l in send_backlog(last_id) {
            last_id = l.id;
            if tx.send(line(&Event::Log(l))).await.is_err() {
                return;
            }
        }
        loop {
            // Live is recorded before the gateway switches; the stream ends once the
            // pipeline is over, so a client that sees "live" is served by the new version.
            if let Ok(Some(now)) = store.get_deployment(&id)
                && is_settled(now.state)
                && !platform.is_in_pipeline(&now.service, &id)
            {
                // Lines stored before the state changed may not have been broadcast to us yet,
                // and the pipeline's last lines (what image clean-up freed) may still be on
                // their way to the store: wait for them, then send what is stored.
                platform.logs().flushed().await;
                for l in send_backlog(last_id) {
                    let _ = tx.send(line(&Event::Log(l))).await;
                }
                let url = (now.state == DeploymentState::Live).then(|| platform.url(&now.service));
                let _ = tx
                    .send(line(&Event::Deployment {
                        id: id.to_string(),
                        service: now.service.to_string(),
                        state: now.state.as_str().to_string(),
                        reason: now.failure_reason,
                        url,
                    }))
                    .await;
                return;
            }
            let ev = tokio::time::timeout(Duration::from_millis(500), sub.recv()).await;
            match ev {
                Ok(Ok(Event::Log(l)))
                    if l.deployment.as_deref() == Some(id.as_str()) && l.id > last_id =>
                {
                    last_id = l.id;
                    if tx.send(line(&Event::Log(l))).await.is_err() {
                        return;
                    }
                }
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    for l in send_backlog(last_id) {
                        last_id = l.id;
                        if tx.send(line(&Event::Log(l))).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => return,
                // Other events, or a quiet half second: re-check the state above.
                _ => {}
            }
            if tx.is_closed() {
                return;
            }
        }
    });
    ndjson(rx)
}

/// How a log stream is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// One JSON object per line.
    Ndjson,
    /// Server-Sent Events: `data: <json>` per line, with keep-alive comments.
    Sse,
}

/// A service's logs: the backlog, then (with `follow`) new lines as they are stored.
pub(crate) fn service_logs(
    platform: Arc<Platform>,
    service: String,
    filter: LogFilter,
    follow: bool,
    format: Format,
) -> Response {
    let (tx, rx) = mpsc::channel::<LogLine>(1024);
    tokio::spawn(async move {
        let mut sub = platform.logs().subscribe();
        let store = platform.store().clone();
        let mut last_id = 0i64;
        let backlog = {
            let (store, service, filter) = (store.clone(), service.clone(), filter.clone());
            tokio::task::spawn_blocking(move || store.query_logs(&service, &filter))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default()
        };
        for l in backlog {
            last_id = l.id;
            if tx.send(l).await.is_err() {
                return;
            }
        }
        if !follow {
            return;
        }
        loop {
            match sub.recv().await {
                Ok(Event::Log(l)) => {
                    if l.id > last_id && l.service == service && filter.matches(&l) {
                        last_id = l.id;
                        if tx.send(l).await.is_err() {
                            return;
                        }
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
                        last_id = l.id;
                        if tx.send(l).await.is_err() {
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    match format {
        Format::Ndjson => {
            let lines = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|l| (Ok::<_, Infallible>(line(&l)), rx))
            });
            Response::builder()
                .header(header::CONTENT_TYPE, "application/x-ndjson")
                .header(header::CACHE_CONTROL, "no-cache")
                .body(Body::from_stream(lines))
                .unwrap_or_default()
        }
        Format::Sse => {
            let events = futures_util::stream::unfold(rx, |mut rx| async move {
                let l = rx.recv().await?;
                let event = axum::response::sse::Event::default()
                    .id(l.id.to_string())
                    .json_data(&l)
                    .unwrap_or_default();
                Some((Ok::<_, Infallible>(event), rx))
            });
            axum::response::IntoResponse::into_response(
                axum::response::sse::Sse::new(events)
                    .keep_alive(axum::response::sse::KeepAlive::default()),
            )
        }
    }
}
