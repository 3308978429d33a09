//! The API's accept loop. `axum::serve` retries a failed accept after a second and has no cap
//! and no header timeout: a few hundred clients that open a connection and send nothing hold
//! the API (and the descriptors of the whole server) forever. This is the gateway's treatment
//! (`hoist_gateway::listen`): a cap that closes the longest-idle connection first, a back-off
//! on accept errors, logged once a second, and a 30 s limit on every request head.

use std::sync::Arc;

use axum::Router;
use hoist_gateway::listen::{Acceptor, ConnLimit, HEAD_TIMEOUT, Tracked, drive};
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// Serves `router` on `listener` under `limit` until the limit's shutdown token is cancelled;
/// returns once the connections open then have finished (log followers keep theirs open:
/// callers bound the wait).
pub async fn serve(listener: TcpListener, router: Router, limit: Arc<ConnLimit>) {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT);
    let service = TowerToHyperService::new(router);
    let connections = tokio_util::task::TaskTracker::new();
    let mut acceptor = match Acceptor::new(listener, limit) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "API listener");
            return;
        }
    };
    while let Some((conn, peer)) = acceptor.accept().await {
        let state = conn.state().clone();
        let svc = hyper::service::service_fn({
            let state = state.clone();
            let service = service.clone();
            move |req: hyper::Request<Incoming>| {
                let in_use = state.begin();
                let call = service.call(req);
                async move {
                    let resp = call.await?;
                    if resp.status() == hyper::StatusCode::SWITCHING_PROTOCOLS {
                        in_use.set_upgraded();
                    }
                    Ok::<_, std::convert::Infallible>(resp.map(|body| Tracked::new(body, in_use)))
                }
            }
        });
        let http = builder
            .serve_connection_with_upgrades(TokioIo::new(conn), svc)
            .into_owned();
        connections.spawn(async move {
            if let Err(e) = drive(http, state).await {
                tracing::debug!(error = %e, %peer, "API connection");
            }
        });
    }
    connections.close();
    connections.wait().await;
}
