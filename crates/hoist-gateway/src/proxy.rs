use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use bytes::Bytes;
use hoist_core::RequestLimits;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::connections::{Connections, Lent};
use crate::headers::{forwarded, is_upgrade, request_host, strip_hop_by_hop, strip_port};
use crate::listen::{Acceptor, ConnLimit, InUse};
use crate::observe::{AccessBatch, AccessLog, AccessRecord};
use crate::table::{InFlight, Rejection, RoutingTable, ServicePool, Traffic};

/// Response bodies fail with hyper's errors or the gateway's own (a response past the request
/// timeout); either way the client's connection is closed mid-body.
type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type ProxyBody = BoxBody<Bytes, BoxError>;

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Requests for `NAME.<domain>` go to service NAME.
    pub domain: String,
    pub max_body_bytes: u64,
    /// How long a request may be held waiting for an instance (cold start, full instances).
    pub hold_timeout: std::time::Duration,
    /// How long an instance may take to answer a request.
    pub request_timeout: std::time::Duration,
    /// Threads that accept and proxy, each with its own event loop, listener and upstream
    /// connection pool.
    pub workers: usize,
    /// Per-request statistics and access records (off only to measure what they cost).
    pub record_requests: bool,
    /// The workers' scheduling priority (`nice`), 0 to leave it as the process has it.
    pub nice: i32,
    /// Client connections open at once, over all workers; at the cap the one idle longest is
    /// closed to make room, or new ones wait in the backlog (see `listen`).
    pub max_connections: usize,
}

impl GatewayConfig {
    pub fn new(domain: &str) -> GatewayConfig {
        GatewayConfig {
            domain: domain.to_string(),
            max_body_bytes: RequestLimits::MAX_REQUEST_BODY as u64,
            hold_timeout: std::time::Duration::from_secs(60),
            request_timeout: RequestLimits::MAX_REQUEST_DURATION,
            workers: 1,
            record_requests: true,
            nice: 0,
            max_connections: 10_000,
        }
    }
}

pub struct Gateway {
    config: GatewayConfig,
    table: Arc<ArcSwap<RoutingTable>>,
    access_log: std::sync::OnceLock<Arc<dyn AccessLog>>,
}

/// One gateway thread. Like nginx's workers, each thread runs its own single-threaded event
/// loop: a request, its upstream connection and their wakeups stay on one core. On a
/// work-stealing runtime the client and server halves of a proxied request wake each other
/// across threads, which cost the gateway about a third of nginx's throughput (BENCHMARKS.md).
struct Worker {
    gw: Arc<Gateway>,
    upstreams: Arc<Connections>,
    access: AccessBatch,
}

impl Gateway {
    pub fn new(config: GatewayConfig) -> Arc<Gateway> {
        let table = Arc::new(ArcSwap::from_pointee(RoutingTable::new()));
        Arc::new(Gateway {
            config,
            table,
            access_log: std::sync::OnceLock::new(),
        })
    }

    /// Where access records go (set once, by the control plane, before serving).
    pub fn set_access_log(&self, log: Arc<dyn AccessLog>) {
        let _ = self.access_log.set(log);
    }

    /// Binds the gateway's address so that each worker can bind it too (`SO_REUSEPORT`, the
    /// kernel spreads connections over the workers). A plain bind first makes an address
    /// another program holds an error, as it would be without the shared port.
    pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
        let addr = std::net::TcpListener::bind(addr)?.local_addr()?;
        reuseport_listener(addr)
    }

    /// Replaces the routing table atomically: a request sees the old table or the new one.
    pub fn publish(&self, table: RoutingTable) {
        self.table.store(Arc::new(table));
    }

    pub fn table(&self) -> Arc<RoutingTable> {
        self.table.load_full()
    }

    /// The service a Host header names, if it is under our domain.
    pub fn service_for_host<'a>(&self, host: &'a str) -> Option<&'a str> {
        let host = strip_port(host);
        let name = host
            .strip_suffix(self.config.domain.as_str())?
            .strip_suffix('.')?;
        (!name.is_empty() && !name.contains('.')).then_some(name)
    }

    /// Serves on `listener` (from [`Gateway::bind`]) with the configured number of workers
    /// until `shutdown`; returns when every worker has stopped accepting.
    pub async fn serve(
        self: Arc<Self>,
        listener: std::net::TcpListener,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> std::io::Result<()> {
        let addr = listener.local_addr()?;
        // One cap for the whole gateway: the descriptors it guards are the process's.
        let limit = ConnLimit::new(self.config.max_connections, "gateway", shutdown.clone());
        if let Err(e) = crate::sendfile::start_senders(self.config.nice) {
            tracing::warn!(error = %e, "large static bodies are sent by the gateway workers");
        }
        let mut listeners = vec![listener];
        for _ in 1..self.config.workers.max(1) {
            listeners.push(reuseport_listener(addr)?);
        }
        let mut done = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let gw = self.clone();
            let limit = limit.clone();
            let nice = self.config.nice;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            std::thread::Builder::new()
                .name(format!("gateway-{i}"))
                .spawn(move || {
                    if nice != 0
                        && let Err(e) = set_thread_nice(nice)
                    {
                        tracing::warn!(error = %e, nice, "gateway worker keeps the server's priority");
                    }
                    let worker = Arc::new(Worker {
                        gw,
                        upstreams: Arc::default(),
                        access: AccessBatch::default(),
                    });
                    rt.block_on({
                        let worker = worker.clone();
                        async move {
                            match TcpListener::from_std(listener) {
                                Ok(l) => worker.accept(l, limit).await,
                                Err(e) => tracing::error!(error = %e, "gateway worker listener"),
                            }
                        }
                    });
                    // Connections still open after the drain are dropped with the runtime;
                    // their requests are recorded as they go, and handed over here.
                    drop(rt);
                    worker.flush_access();
                    let _ = tx.send(());
                })?;
            done.push(rx);
        }
        for rx in done {
            let _ = rx.await;
        }
        Ok(())
    }
}

/// Sets the calling thread's nice value (on Linux, `setpriority` on a thread id applies to
/// that thread alone).
pub(crate) fn set_thread_nice(nice: i32) -> std::io::Result<()> {
    let tid = nix::unistd::gettid().as_raw();
    // SAFETY: setpriority takes plain integers and touches no memory of ours.
    let rc =
        unsafe { nix::libc::setpriority(nix::libc::PRIO_PROCESS, tid as nix::libc::id_t, nice) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn reuseport_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, bind, listen, setsockopt,
        socket, sockopt,
    };
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    setsockopt(&fd, sockopt::ReusePort, &true)?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrStorage::from(addr),
    )?;
    // Room for a burst to wait in while the gateway is at its connection cap (the kernel
    // clamps it to net.core.somaxconn).
    listen(&fd, Backlog::new(4096).or_else(|_| Backlog::new(1024))?)?;
    Ok(std::net::TcpListener::from(fd))
}

impl Worker {
    /// Accepts until the limit's shutdown token is cancelled, then lets open connections
    /// finish the requests they carry (connections between requests, or still sending a
    /// head, are closed at once), for at most `DRAIN_LIMIT`.
    async fn accept(self: Arc<Self>, listener: TcpListener, limit: Arc<ConnLimit>) {
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        // Heads larger than this get hyper's own 431; a slow client gets 30 s to send its
        // head (slowloris), and a kept-alive connection 30 s between requests.
        builder
            .http1()
            .max_buf_size(RequestLimits::MAX_HEADERS_TOTAL + RequestLimits::MAX_HEADER_LINE)
            .timer(TokioTimer::new())
            .header_read_timeout(crate::listen::HEAD_TIMEOUT);
        let connections = tokio_util::task::TaskTracker::new();
        let sweeper = tokio::spawn({
            let upstreams = self.upstreams.clone();
            async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
                loop {
                    tick.tick().await;
                    upstreams.sweep();
                }
            }
        });
        let flusher = tokio::spawn({
            let worker = self.clone();
            async move {
                worker
                    .access
                    .flush_started(|| worker.gw.access_log.get().cloned())
                    .await
            }
        });
        let mut acceptor = match Acceptor::new(listener, limit) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "gateway worker listener");
                return;
            }
        };
        while let Some((conn, peer)) = acceptor.accept().await {
            let _ = conn.set_nodelay(true);
            let state = conn.state().clone();
            let worker = self.clone();
            // The client's address as a header value, made once for all of the connection's
            // requests.
            let client_ip = HeaderValue::from_str(&peer.ip().to_string()).ok();
            let svc = hyper::service::service_fn({
                let state = state.clone();
                move |req| worker.clone().handle(req, client_ip.clone(), state.begin())
            });
            let http = builder
                .serve_connection_with_upgrades(TokioIo::new(conn), svc)
                .into_owned();
            connections.spawn(async move {
                if let Err(e) = crate::listen::drive(http, state).await {
                    tracing::debug!(error = %e, %peer, "gateway connection");
                }
            });
        }
        drop(acceptor);
        connections.close();
        if tokio::time::timeout(DRAIN_LIMIT, connections.wait())
            .await
            .is_err()
        {
            tracing::warn!("gateway: connections still open after the drain limit; closing them");
        }
        flusher.abort();
        sweeper.abort();
    }

    fn flush_access(&self) {
        if let Some(log) = self.gw.access_log.get() {
            self.access.flush(log.as_ref());
        }
    }

    /// 414/431/413 for requests over the limits, checked before any instance is woken.
    fn check_limits(&self, req: &Request<Incoming>) -> Option<Response<ProxyBody>> {
        let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
        if target > RequestLimits::MAX_HEADER_LINE {
            return Some(page(
                StatusCode::URI_TOO_LONG,
                "Request target too long",
                &format!(
                    "The request line may be at most {} KB.",
                    RequestLimits::MAX_HEADER_LINE / 1024
                ),
            ));
        }
        let mut total = target;
        for (name, value) in req.headers() {
            let line = name.as_str().len() + 2 + value.len();
            if line > RequestLimits::MAX_HEADER_LINE {
                return Some(page(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "Request header too large",
                    &format!(
                        "Header {} is over the {} KB limit for one header.",
                        escape(name.as_str()),
                        RequestLimits::MAX_HEADER_LINE / 1024
                    ),
                ));
            }
            total += line + 2;
        }
        if total > RequestLimits::MAX_HEADERS_TOTAL {
            return Some(page(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "Request headers too large",
                &format!(
                    "All request headers together may be at most {} KB.",
                    RequestLimits::MAX_HEADERS_TOTAL / 1024
                ),
            ));
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.gw.config.max_body_bytes) {
            return Some(self.too_large());
        }
        None
    }

    fn too_large(&self) -> Response<ProxyBody> {
        page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request body too large",
            &format!(
                "The limit is {} MB.",
                self.gw.config.max_body_bytes / (1024 * 1024)
            ),
        )
    }

    /// Answers one request, and records it for its service (statistics and access log) once
    /// its response body is done.
    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        client_ip: Option<HeaderValue>,
        in_use: InUse,
    ) -> Result<Response<ProxyBody>, Infallible> {
        if !self.gw.config.record_requests {
            return Ok(tracked(self.route(req, client_ip).await.0, in_use));
        }
        let started = std::time::Instant::now();
        let method = req.method().clone();
        let path = req
            .uri()
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
        let (resp, outcome) = self.route(req, client_ip).await;
        let Some(outcome) = outcome else {
            return Ok(tracked(resp, in_use));
        };
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            in_use.set_upgraded();
        }
        let pending = Pending {
            started,
            ts_ms: epoch_ms(),
            method,
            path,
            status: resp.status().as_u16(),
            outcome,
            worker: self.clone(),
        };
        Ok(resp.map(|inner| {
            Recorded {
                inner,
                bytes_out: 0,
                pending: Some(pending),
                _in_use: in_use,
            }
            .boxed()
        }))
    }

    /// Routes and forwards; says what happened for a request that named a service.
    async fn route(
        &self,
        req: Request<Incoming>,
        client_ip: Option<HeaderValue>,
    ) -> (Response<ProxyBody>, Option<Outcome>) {
        let host_value = match request_host(&req) {
            Ok(h) => h,
            Err(why) => {
                let page = page(StatusCode::BAD_REQUEST, "Bad request", why);
                return (page, None);
            }
        };
        let host = host_value
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let host_lc = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            std::borrow::Cow::Owned(host.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(host)
        };
        let pool = {
            let table = self.gw.table.load();
            self.gw
                .service_for_host(&host_lc)
                .and_then(|n| table.route(n).cloned())
        };
        let Some(pool) = pool else {
            let page = page(
                StatusCode::NOT_FOUND,
                "No such app",
                &format!("Nothing is deployed at {}.", escape(host)),
            );
            return (page, None);
        };
        let mut outcome = Outcome {
            pool: pool.clone(),
            instance: None,
            cold: false,
            served_static: false,
            body: Arc::new(BodyCount::default()),
        };
        if let Some(rejected) = self.check_limits(&req) {
            return (rejected, Some(outcome));
        }
        let req = match crate::static_route::answer(&pool, req) {
            Ok(resp) => {
                outcome.served_static = true;
                return (resp, Some(outcome));
            }
            Err(req) => req,
        };
        let traffic = Traffic::of_request(req.uri().path(), req.headers());
        let admitted = match pool.acquire(self.gw.config.hold_timeout, traffic).await {
            Ok(a) => a,
            Err(rejection) => return (rejected(pool.name(), rejection), Some(outcome)),
        };
        let upstream = admitted.guard.upstream().clone();
        outcome.instance = Some(upstream.instance.clone());
        outcome.cold = admitted.cold;
        // Only a request without a body can be sent twice, and only one that met a freshly
        // thawed instance is worth keeping a copy of (see `Upstream::thawed_within`).
        let replay = (upstream.thawed_within(THAW_SUSPECT) && req.body().is_end_stream())
            .then(|| head_of(&req));
        let req = req.map(Some);
        let body = outcome.body.clone();
        let send =
            |req, guard| self.forward(req, &client_ip, host_value.as_ref(), &pool, guard, &body);
        let mut resp = match send(req, admitted.guard).await {
            Forwarded::Answered(resp) => resp,
            Forwarded::Unanswered(page) => {
                let Some(head) = replay else {
                    return (page, Some(outcome));
                };
                tracing::warn!(service = pool.name(), instance = %upstream.instance,
                    "instance died right after its thaw; retrying on another");
                pool.remove(&upstream.instance);
                let admitted = match pool.acquire(self.gw.config.hold_timeout, traffic).await {
                    Ok(a) => a,
                    Err(rejection) => {
                        return (rejected(pool.name(), rejection), Some(outcome));
                    }
                };
                outcome.instance = Some(admitted.guard.upstream().instance.clone());
                outcome.cold |= admitted.cold;
                match send(Request::from_parts(head, None), admitted.guard).await {
                    Forwarded::Answered(resp) | Forwarded::Unanswered(resp) => resp,
                }
            }
        };
        // The scheduler records which instance answered a run.
        if traffic == Traffic::Cron
            && let Some(instance) = &outcome.instance
            && let Ok(v) = HeaderValue::from_str(instance)
        {
            resp.headers_mut().insert("x-hoist-instance", v);
        }
        (resp, Some(outcome))
    }

    async fn forward(
        &self,
        mut req: Request<Option<Incoming>>,
        client_ip: &Option<HeaderValue>,
        host: Option<&HeaderValue>,
        pool: &Arc<ServicePool>,
        guard: InFlight,
        body_count: &Arc<BodyCount>,
    ) -> Forwarded {
        let name = pool.name();
        let upstream = guard.upstream().clone();
        // Origin form: the connection already goes to the instance.
        if req.uri().scheme().is_some() || req.uri().authority().is_some() {
            let path = req
                .uri()
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| hyper::http::uri::PathAndQuery::from_static("/"));
            *req.uri_mut() = Uri::from(path);
            // The target's authority is what was routed on (RFC 9112 §3.2.2): the app hears
            // it as Host, whatever Host said.
            if let Some(v) = host {
                req.headers_mut().insert(header::HOST, v.clone());
            }
        }
        let client_version = req.version();
        let upgrade = is_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let headers = req.headers_mut();
        if !upgrade {
            strip_hop_by_hop(headers);
        }
        if !headers.contains_key(header::HOST)
            && let Some(v) = host
        {
            headers.insert(header::HOST, v.clone());
        }
        forwarded(headers, client_ip.as_ref(), host);
        // Instances speak HTTP/1.1 whatever the client spoke to us.
        *req.version_mut() = Version::HTTP_11;
        // Bodies without a Content-Length are counted as they stream.
        let req = req.map(|body| {
            LimitedBody {
                inner: body,
                left: self.gw.config.max_body_bytes,
                count: body_count.clone(),
            }
            .boxed()
        });

        let deadline = tokio::time::Instant::now() + self.gw.config.request_timeout;
        let sent = tokio::time::timeout_at(deadline, self.upstreams.send(&upstream, req));
        Forwarded::Answered(match sent.await {
            Ok(Ok((mut resp, lent))) => {
                // The client hears our HTTP version, not the instance's (a Python server
                // answering HTTP/1.0 must not downgrade the client's connection).
                *resp.version_mut() = client_version;
                if resp.status() == StatusCode::SWITCHING_PROTOCOLS
                    && let Some(client_upgrade) = client_upgrade
                {
                    let upstream_upgrade = hyper::upgrade::on(&mut resp);
                    tokio::spawn(async move {
                        let _guard = guard;
                        if let (Ok(client), Ok(server)) =
                            tokio::join!(client_upgrade, upstream_upgrade)
                        {
                            let mut client = TokioIo::new(client);
                            let mut server = TokioIo::new(server);
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    return Forwarded::Answered(resp.map(|_| empty()));
                }
                strip_hop_by_hop(resp.headers_mut());
                resp.map(|body| {
                    GuardedBody {
                        inner: body,
                        _guard: guard,
                        connection: Some(lent),
                        deadline,
                        timer: None,
                    }
                    .boxed()
                })
            }
            Ok(Err(_)) if body_count.over.load(Ordering::Acquire) => self.too_large(),
            // The client's body broke (a malformed chunk, a connection closed mid-body): the
            // client's error, not the app's, so no 502 and no 5xx event for the app.
            Ok(Err(e)) if body_count.client_failed.load(Ordering::Acquire) => {
                tracing::debug!(service = name, error = %e, "request body from the client failed");
                page(
                    StatusCode::BAD_REQUEST,
                    "Bad request",
                    "The request body was malformed or ended early.",
                )
            }
            Ok(Err(e)) => {
                tracing::warn!(service = name, instance = %upstream.instance, error = %e, "upstream request failed");
                return Forwarded::Unanswered(page(
                    StatusCode::BAD_GATEWAY,
                    "Bad gateway",
                    &format!("{} did not answer.", escape(name)),
                ));
            }
            Err(_) => page(
                StatusCode::GATEWAY_TIMEOUT,
                "Gateway timeout",
                &format!(
                    "{} did not answer within {}.",
                    escape(name),
                    hoist_core::format_duration(self.gw.config.request_timeout)
                ),
            ),
        })
    }
}

/// What became of a forwarded request.
enum Forwarded {
    /// The instance answered, or the gateway did on its behalf (timeout, limits).
    Answered(Response<ProxyBody>),
    /// The instance could not be reached or died before answering: a 502 page.
    Unanswered(Response<ProxyBody>),
}

/// How long a stopping gateway waits for requests in flight.
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long after a thaw an upstream failure is taken for an instance that died frozen.
const THAW_SUSPECT: std::time::Duration = std::time::Duration::from_secs(2);

/// The parts needed to send a request without a body again.
fn head_of<B>(req: &Request<B>) -> hyper::http::request::Parts {
    let mut builder = Request::builder()
        .method(req.method().clone())
        .uri(req.uri().clone())
        .version(req.version());
    if let Some(h) = builder.headers_mut() {
        *h = req.headers().clone();
    }
    match builder.body(()) {
        Ok(r) => r.into_parts().0,
        Err(_) => Request::new(()).into_parts().0,
    }
}

/// The answer for a request that got no instance.
fn rejected(service: &str, rejection: Rejection) -> Response<ProxyBody> {
    let service = escape(service);
    let mut resp = match rejection {
        Rejection::Overloaded => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service overloaded",
            &format!("{service} is at its instance and concurrency limits. Retry shortly."),
        ),
        Rejection::Timeout => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service unavailable",
            &format!("No instance of {service} became ready in time."),
        ),
        Rejection::StartFailed(reason) => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service failed to start",
            &format!(
                "An instance of {service} could not start: {}",
                escape(first_line(&reason))
            ),
        ),
        Rejection::NotDeployed => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service unavailable",
            &format!("{service} has no live deployment."),
        ),
    };
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// A request body that fails once it has carried more than `left` bytes, so chunked uploads
/// meet the same limit as those that declare a Content-Length.
struct LimitedBody {
    /// None for a replayed request, which has no body.
    inner: Option<Incoming>,
    left: u64,
    count: Arc<BodyCount>,
}

/// What a request body amounted to, shared with the code that records the request.
#[derive(Debug, Default)]
struct BodyCount {
    bytes: AtomicU64,
    /// The body went over the limit (the answer is a 413).
    over: AtomicBool,
    /// Reading the body from the client failed (the answer is a 400).
    client_failed: AtomicBool,
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    self.count.bytes.fetch_add(n, Ordering::Relaxed);
                    if n > self.left {
                        self.count.over.store(true, Ordering::Release);
                        return Poll::Ready(Some(Err(std::io::Error::other(
                            "request body over the limit",
                        ))));
                    }
                    self.left -= n;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.count.client_failed.store(true, Ordering::Release);
                Poll::Ready(Some(Err(std::io::Error::other(e))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

/// What the routing of a request for a service came to.
struct Outcome {
    pool: Arc<ServicePool>,
    instance: Option<Arc<str>>,
    cold: bool,
    /// Answered from the service's static files, by the gateway.
    served_static: bool,
    body: Arc<BodyCount>,
}

/// A request waiting for its response body to finish before it is recorded.
struct Pending {
    started: std::time::Instant,
    ts_ms: i64,
    method: hyper::Method,
    path: String,
    status: u16,
    outcome: Outcome,
    /// Whose access batch the record joins.
    worker: Arc<Worker>,
}

/// Counts the response body and records the request when it is done (or abandoned: a client
/// that goes away mid-body still made a request).
struct Recorded {
    inner: ProxyBody,
    bytes_out: u64,
    pending: Option<Pending>,
    /// Keeps the client connection busy until the body is done.
    _in_use: InUse,
}

impl Drop for Recorded {
    fn drop(&mut self) {
        let Some(p) = self.pending.take() else {
            return;
        };
        let took = p.started.elapsed();
        let bytes_in = p.outcome.body.bytes.load(Ordering::Relaxed);
        p.outcome
            .pool
            .stats()
            .observe(p.status, took, bytes_in, self.bytes_out);
        if let Some(log) = p.worker.gw.access_log.get() {
            let record = AccessRecord {
                service: p.outcome.pool.shared_name(),
                ts_ms: p.ts_ms,
                method: p.method,
                path: p.path,
                status: p.status,
                duration: took,
                bytes_in,
                bytes_out: self.bytes_out,
                instance: p.outcome.instance,
                cold: p.outcome.cold,
                served_static: p.outcome.served_static,
            };
            p.worker.access.push(record, log.as_ref());
        }
    }
}

impl Body for Recorded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.bytes_out += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn epoch_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Keeps the request counted as in flight until its response body is done, and no longer
/// than the request timeout: a response still streaming then is cut, so a stalled stream
/// cannot keep its instance busy (and billed, and unfrozen) forever.
struct GuardedBody {
    inner: Incoming,
    _guard: InFlight,
    /// The upstream connection, given back for the next request once this body is read to
    /// its end; closed if the body is abandoned halfway.
    connection: Option<Lent>,
    deadline: tokio::time::Instant,
    /// Armed only once the body makes its reader wait: most bodies are read without waiting
    /// and need no timer.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// The error a response body ends with when the request timeout passes mid-body.
#[derive(Debug, thiserror::Error)]
#[error("the response was still streaming when the request timeout passed")]
struct BodyTimeout;

impl Drop for GuardedBody {
    fn drop(&mut self) {
        // A body hyper never polls because it is empty (204, 304, Content-Length: 0).
        if self.inner.is_end_stream()
            && let Some(lent) = self.connection.take()
        {
            lent.give_back();
        }
    }
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => {
                if let Some(lent) = self.connection.take() {
                    lent.give_back();
                }
            }
            Poll::Ready(Some(Err(_))) => self.connection = None,
            Poll::Pending => {
                let deadline = self.deadline;
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.as_mut().poll(cx).is_ready() {
                    self.connection = None;
                    return Poll::Ready(Some(Err(BodyTimeout.into())));
                }
            }
            Poll::Ready(Some(Ok(_))) => {}
        }
        polled.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response that keeps its client connection busy until its body is done.
fn tracked(resp: Response<ProxyBody>, in_use: InUse) -> Response<ProxyBody> {
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        in_use.set_upgraded();
    }
    resp.map(|body| crate::listen::Tracked::new(body, in_use).boxed())
}

fn empty() -> ProxyBody {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(status: StatusCode, title: &str, detail: &str) -> Response<ProxyBody> {
    let body = format!(
        "<!doctype html><html><head><title>{title}</title></head><body><h1>{} {title}</h1><p>{detail}</p><hr><p>hoist</p></body></html>\n",
        status.as_u16()
    );
    let mut resp = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gw() -> Arc<Gateway> {
        Gateway::new(GatewayConfig {
            max_body_bytes: 1024,
            ..GatewayConfig::new("localhost")
        })
    }

    #[test]
    fn host_maps_to_service_under_the_domain_only() {
        let g = gw();
        assert_eq!(g.service_for_host("shop.localhost:8080"), Some("shop"));
        assert_eq!(g.service_for_host("shop.localhost"), Some("shop"));
        assert_eq!(g.service_for_host("localhost:8080"), None);
        assert_eq!(g.service_for_host("a.b.localhost"), None);
        assert_eq!(g.service_for_host("shop.example.com"), None);
        assert_eq!(g.service_for_host("shoplocalhost"), None);
    }
}
