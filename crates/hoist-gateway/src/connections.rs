//! A gateway worker's keep-alive connections to instances.
//!
//! A connection goes back on its instance's idle list the moment its response body has been
//! read to the end (the response body wrapper hands it back), so nothing has to wait for it to
//! become reusable: hyper-util's pooled client spawns a task per request for that, and looks
//! connections up by hashed URI authority. Here the instance is already known, because the
//! gateway picked it.
//!
//! A request that meets a connection the instance closed while it sat idle is given back by
//! hyper unsent (`try_send_request`), and goes on another connection or a new one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use crate::table::Upstream;

pub(crate) type RequestBody = BoxBody<Bytes, std::io::Error>;

/// An idle connection is closed after this long without a request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a connection given back may take to become ready for the next request.
const READY_WAIT: Duration = Duration::from_millis(100);
/// More idle connections than this per instance are closed: a burst's connections are not
/// all worth keeping.
const MAX_IDLE_PER_INSTANCE: usize = 256;

#[derive(Default)]
pub(crate) struct Connections {
    idle: Mutex<HashMap<Arc<str>, Vec<Idle>>>,
}

struct Idle {
    sender: SendRequest<RequestBody>,
    since: Instant,
}

/// A connection lent to one request until its response body is done.
pub(crate) struct Lent {
    sender: SendRequest<RequestBody>,
    upstream: Arc<Upstream>,
    owner: Arc<Connections>,
}

impl Lent {
    /// Puts the connection back on its instance's idle list; call only once the response body
    /// was read to its end, so the connection can carry the next request.
    pub(crate) fn give_back(self) {
        if self.sender.is_closed() {
            return;
        }
        let mut idle = self.owner.lock();
        let entry = Idle {
            sender: self.sender,
            since: Instant::now(),
        };
        match idle.get_mut(&*self.upstream.instance) {
            Some(list) if list.len() < MAX_IDLE_PER_INSTANCE => list.push(entry),
            Some(_) => {}
            None => {
                idle.insert(self.upstream.instance.clone(), vec![entry]);
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    #[error("connecting: {0}")]
    Connect(#[source] std::io::Error),
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

impl Connections {
    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, Vec<Idle>>> {
        // Only the worker's own thread takes it, so it is never contended; the lists stay
        // valid whatever panicked while it was held.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most recently used idle connection to `instance` that is still open.
    fn take_idle(&self, instance: &str) -> Option<SendRequest<RequestBody>> {
        let mut idle = self.lock();
        let list = idle.get_mut(instance)?;
        while let Some(i) = list.pop() {
            if !i.sender.is_closed() && i.since.elapsed() < IDLE_TIMEOUT {
                return Some(i.sender);
            }
        }
        None
    }

    /// Sends `req` to `upstream` on an idle connection, or a new one.
    pub(crate) async fn send(
        self: &Arc<Self>,
        upstream: &Arc<Upstream>,
        mut req: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, Lent), SendError> {
        while let Some(mut sender) = self.take_idle(&upstream.instance) {
            // The response before was read to its end; the connection's task may not have
            // seen that yet, which takes it microseconds. An instance that answered before
            // reading the whole request body leaves the connection busy until that body is
            // sent, which a slow client can drag out: such a connection is dropped rather
            // than waited for.
            if !sender.is_ready() {
                match tokio::time::timeout(READY_WAIT, sender.ready()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) | Err(_) => continue,
                }
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok((resp, self.lend(sender, upstream))),
                Err(mut e) => match e.take_message() {
                    // Closed under us before a byte was written: safe to send elsewhere.
                    Some(unsent) => req = unsent,
                    None => return Err(e.into_error().into()),
                },
            }
        }
        let stream = upstream
            .netns
            .connect(upstream.port)
            .await
            .map_err(SendError::Connect)?;
        let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection");
            }
        });
        let resp = sender
            .try_send_request(req)
            .await
            .map_err(|e| e.into_error())?;
        Ok((resp, self.lend(sender, upstream)))
    }

    fn lend(self: &Arc<Self>, sender: SendRequest<RequestBody>, upstream: &Arc<Upstream>) -> Lent {
        Lent {
            sender,
            upstream: upstream.clone(),
            owner: self.clone(),
        }
    }

    /// Closes connections idle too long or closed by their instance, and forgets instances
    /// with none left (instances come and go: their entries must not pile up).
    pub(crate) fn sweep(&self) {
        let mut idle = self.lock();
        idle.retain(|_, list| {
            list.retain(|i| !i.sender.is_closed() && i.since.elapsed() < IDLE_TIMEOUT);
            !list.is_empty()
        });
    }
}
