//! Client connections of a listener: how many may be open at once, which one makes room when
//! that many are, and what an accept error costs.
//!
//! Every open client connection holds a file descriptor, and a server out of descriptors can
//! do nothing at all: not accept, not answer its API, not run `crun` to stop an instance. So
//! each listener (the gateway's, the API's) admits at most `max` connections. At the cap, the
//! connection idle longest (between requests on a keep-alive connection) is closed to make
//! room, as nginx reuses its idle keep-alive connections; a connection that has not sent a
//! whole request head yet (a slow client, or a slowloris) is not idle and is never closed for
//! room. When every connection under the cap is busy, the listener stops accepting: new
//! connections wait in the kernel's backlog until one closes or goes idle (a slow head is
//! closed after [`HEAD_TIMEOUT`]), rather than being accepted and closed at once, which would
//! spend a descriptor and a handshake on each only to refuse it.
//!
//! An accept that fails for the listener's sake (out of descriptors or memory) is retried after
//! a back-off that doubles up to a second, and logged at most once a second with a count:
//! retried at once, it fails again at once, forever, with a log line each time.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use hyper::body::{Body, Frame, SizeHint};
use hyper_util::server::graceful::GracefulConnection;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long a new connection may take to send its first request head; later heads get the
/// same from hyper's own header timeout. A connection that sends nothing at all, or only part
/// of the HTTP/2 preface, is otherwise held forever by hyper-util (its protocol sniffing has no
/// timeout).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a connection closed to make room may take to finish closing. It had nothing in
/// flight, but hyper may still be writing its last response to a client that does not read
/// it; since it no longer counts toward the cap, it must not stay open for good.
const EVICTED_CLOSE_LIMIT: Duration = Duration::from_secs(5);

/// The first and the longest wait after an accept error.
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one log line per this long about failed accepts; the others are counted in it.
const ERROR_LOG_EVERY: Duration = Duration::from_secs(1);

/// Descriptors kept for the server's own files (database, logs, `crun` and `ip` runs,
/// sandboxes) when the default caps are worked out.
const RESERVED_FILES: u64 = 256;

/// Raises this process's soft limit on open files to its hard limit, as servers do when they
/// start (nginx's `worker_rlimit_nofile`, systemd's own services): the usual soft limit of
/// 1024 is a few hundred clients. Returns the soft limit in force afterwards.
pub fn raise_open_files_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if soft >= hard {
        return soft;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => hard,
        Err(e) => {
            tracing::warn!(error = %e, soft, hard, "cannot raise the open-file limit");
            soft
        }
    }
}

/// The default caps `(gateway, API)` under a limit of `open_files`: the API gets 256
/// connections (an eighth of the limit when that is fewer), the gateway half of what is left
/// after the API's and [`RESERVED_FILES`], since each client connection it proxies holds
/// one to an instance as well.
pub fn default_caps(open_files: u64) -> (usize, usize) {
    let api = (open_files / 8).clamp(1, 256);
    let gateway = (open_files.saturating_sub(RESERVED_FILES + api) / 2).max(16);
    (gateway as usize, api as usize)
}

/// The open connections of one listener (shared by all of its accepting threads) and its cap.
pub struct ConnLimit {
    /// Names the listener in log lines.
    what: &'static str,
    max: usize,
    slots: Mutex<Slots>,
    /// A connection closed or went idle while an acceptor waited for room.
    changed: Notify,
    /// Acceptors waiting for room; only then must a connection going idle wake them.
    waiting: AtomicU32,
    /// Orders connections by when they last went idle: a counter, not a clock, so the request
    /// path reads no clock for it.
    seq: AtomicU64,
    /// Stops the acceptors, which then ask every connection to close gracefully.
    shutdown: CancellationToken,
    errors: Mutex<ErrorLog>,
}

#[derive(Default)]
struct Slots {
    open: HashMap<u64, Entry>,
    /// Open connections that count toward the cap (those closed to make room no longer do,
    /// while they finish closing).
    counted: usize,
    next_id: u64,
}

struct Entry {
    conn: Arc<ConnState>,
    evicted: bool,
}

/// What the listener knows of one connection.
pub struct ConnState {
    limit: Arc<ConnLimit>,
    /// 0 while the connection is busy (reading a head, answering, or new); otherwise the
    /// limit's sequence number from when it last went idle.
    idle: AtomicU64,
    in_flight: AtomicU32,
    /// It has had a request; before that the first-head timeout applies.
    served: AtomicBool,
    /// It was switched to another protocol (WebSocket): never idle in HTTP's sense.
    upgraded: AtomicBool,
    /// Asks the connection to close once its current request is done: a flag and a waker
    /// rather than a `CancellationToken`, whose every poll (one per wake of the connection's
    /// task) takes two locks.
    closing: AtomicBool,
    /// It was closed to make room (so it is no longer counted): its close is bounded.
    evicted: AtomicBool,
    close_waker: AtomicWaker,
}

/// A connection's place under the cap, given back when dropped (with the socket it goes with).
pub struct Slot {
    id: u64,
    conn: Arc<ConnState>,
}

impl ConnLimit {
    /// A cap of `max` connections (at least one) for the listener `what`; once `shutdown` is
    /// cancelled its acceptors stop and ask every connection to close after its current
    /// request.
    pub fn new(max: usize, what: &'static str, shutdown: CancellationToken) -> Arc<ConnLimit> {
        Arc::new(ConnLimit {
            what,
            max: max.max(1),
            slots: Mutex::new(Slots::default()),
            changed: Notify::new(),
            waiting: AtomicU32::new(0),
            seq: AtomicU64::new(0),
            shutdown,
            errors: Mutex::new(ErrorLog::default()),
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections open now that count toward the cap.
    pub fn open(&self) -> usize {
        self.lock().counted
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        // Held only for map updates that cannot leave it half done.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for room for one more connection: at the cap, closes the connection idle longest,
    /// or waits until one closes or goes idle.
    pub async fn reserve(self: &Arc<Self>) -> Slot {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            let _waiting = {
                let mut slots = self.lock();
                if slots.counted < self.max {
                    return self.admit(&mut slots);
                }
                // Registered before looking for an idle connection, so one that goes idle
                // right after the look still wakes this wait.
                notified.as_mut().enable();
                let waiting = Waiting::new(&self.waiting);
                if self.evict_idle(&mut slots) {
                    return self.admit(&mut slots);
                }
                waiting
            };
            notified.await;
        }
    }

    fn admit(self: &Arc<Self>, slots: &mut Slots) -> Slot {
        let id = slots.next_id;
        slots.next_id += 1;
        let conn = Arc::new(ConnState {
            limit: self.clone(),
            idle: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            served: AtomicBool::new(false),
            upgraded: AtomicBool::new(false),
            // Shut down already (another acceptor got in first): closed as soon as it runs.
            closing: AtomicBool::new(self.shutdown.is_cancelled()),
            evicted: AtomicBool::new(false),
            close_waker: AtomicWaker::new(),
        });
        slots.open.insert(
            id,
            Entry {
                conn: conn.clone(),
                evicted: false,
            },
        );
        slots.counted += 1;
        Slot { id, conn }
    }

    /// Closes the connection idle longest, if one is; it stops counting toward the cap at
    /// once (it closes within moments: it has nothing in flight).
    fn evict_idle(&self, slots: &mut Slots) -> bool {
        let oldest = slots
            .open
            .values_mut()
            .filter(|e| !e.evicted && !e.conn.upgraded.load(Ordering::Relaxed))
            .filter_map(|e| {
                let since = e.conn.idle.load(Ordering::SeqCst);
                (since != 0).then_some((since, e))
            })
            .min_by_key(|(since, _)| *since);
        let Some((since, entry)) = oldest else {
            return false;
        };
        // A request that began since the look makes it busy again: then it is not taken.
        if entry
            .conn
            .idle
            .compare_exchange(since, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return false;
        }
        entry.evicted = true;
        entry.conn.evicted.store(true, Ordering::SeqCst);
        entry.conn.ask_to_close();
        slots.counted -= 1;
        true
    }

    /// Asks every open connection to close after its current request (at shutdown).
    fn close_all(&self) {
        for entry in self.lock().open.values() {
            entry.conn.ask_to_close();
        }
    }

    /// Closes the connection idle longest, if any (out of descriptors below the cap: the one
    /// freed lets the next accept succeed).
    pub fn shed_idle(&self) -> bool {
        self.evict_idle(&mut self.lock())
    }

    fn release(&self, id: u64) {
        {
            let mut slots = self.lock();
            if let Some(entry) = slots.open.remove(&id)
                && !entry.evicted
            {
                slots.counted -= 1;
            }
        }
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.changed.notify_waiters();
        }
    }

    /// Counts a failed accept and logs it, at most once a second.
    fn accept_failed(&self, e: &io::Error) {
        let due = self
            .errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .note(Instant::now());
        let Some(since_last) = due else {
            return;
        };
        tracing::error!(
            listener = self.what,
            error = %e,
            failed = since_last,
            open = self.open(),
            max = self.max,
            "accepting connections failed; retrying after a pause (failures counted since the last line)"
        );
    }
}

#[derive(Default)]
struct ErrorLog {
    last: Option<Instant>,
    failed: u64,
}

impl ErrorLog {
    /// Counts a failure at `now`; if a line is due, returns how many failures it reports
    /// (this one and those since the line before).
    fn note(&mut self, now: Instant) -> Option<u64> {
        self.failed += 1;
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < ERROR_LOG_EVERY)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.failed))
    }
}

/// Counts an acceptor as waiting for room while it lives.
struct Waiting<'a>(&'a AtomicU32);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicU32) -> Waiting<'a> {
        count.fetch_add(1, Ordering::SeqCst);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.conn.limit.release(self.id);
    }
}

impl Slot {
    pub fn conn(&self) -> &Arc<ConnState> {
        &self.conn
    }
}

impl ConnState {
    /// Marks a request as begun on this connection until the returned guard is dropped (when
    /// its response body is done).
    pub fn begin(self: &Arc<Self>) -> InUse {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.served.store(true, Ordering::Relaxed);
        self.idle.store(0, Ordering::SeqCst);
        InUse(self.clone())
    }

    /// The connection now speaks another protocol (101 Switching Protocols): it is never taken
    /// for idle.
    pub fn set_upgraded(&self) {
        self.upgraded.store(true, Ordering::Relaxed);
    }

    /// Bytes arrived: a head (or body) is being read, so the connection is not idle.
    fn touch(&self) {
        if self.idle.load(Ordering::Relaxed) != 0 {
            self.idle.store(0, Ordering::SeqCst);
        }
    }

    pub fn is_idle(&self) -> bool {
        self.idle.load(Ordering::SeqCst) != 0
    }

    fn ask_to_close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        self.close_waker.wake();
    }

    pub fn asked_to_close(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }
}

/// A request in progress on a connection; the connection is idle again once every one is
/// dropped.
pub struct InUse(Arc<ConnState>);

impl InUse {
    /// See [`ConnState::set_upgraded`].
    pub fn set_upgraded(&self) {
        self.0.set_upgraded();
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        let conn = &self.0;
        if conn.in_flight.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        let limit = &conn.limit;
        let seq = limit.seq.fetch_add(1, Ordering::Relaxed) + 1;
        conn.idle.store(seq, Ordering::SeqCst);
        // A request begun on another stream (HTTP/2) between the count and the store set
        // idle to 0 before this store: take the mark back, or a busy connection looks idle.
        if conn.in_flight.load(Ordering::SeqCst) != 0 {
            let _ = conn
                .idle
                .compare_exchange(seq, 0, Ordering::SeqCst, Ordering::SeqCst);
            return;
        }
        if limit.waiting.load(Ordering::SeqCst) > 0 {
            limit.changed.notify_waiters();
        }
    }
}

/// A response body that keeps its request counted on the connection until it is done.
pub struct Tracked<B> {
    inner: B,
    _in_use: InUse,
}

impl<B> Tracked<B> {
    pub fn new(inner: B, in_use: InUse) -> Tracked<B> {
        Tracked {
            inner,
            _in_use: in_use,
        }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A client socket with its place under the cap: the place is given back when the socket is
/// closed, also when it outlives its HTTP connection (an upgrade to WebSocket).
pub struct Conn {
    stream: TcpStream,
    slot: Slot,
    /// A large static body being sent from a sender thread.
    sending: Option<crate::sendfile::InFlight>,
}

impl Conn {
    pub fn state(&self) -> &Arc<ConnState> {
        self.slot.conn()
    }

    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.stream.set_nodelay(nodelay)
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.slot.conn.touch();
        }
        polled
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some((_, file, offset)) = crate::sendfile::mapped_in(&[io::IoSlice::new(buf)]) {
            let this = &mut *self;
            return crate::sendfile::poll_send_off(
                &this.stream,
                &mut this.sending,
                cx,
                file,
                offset,
                buf.len(),
            );
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // A large static body goes by sendfile; the slices before it (the response head) are
        // written first, and hyper comes back with the rest.
        match crate::sendfile::mapped_in(bufs) {
            Some((0, file, offset)) => {
                let this = &mut *self;
                crate::sendfile::poll_send_off(
                    &this.stream,
                    &mut this.sending,
                    cx,
                    file,
                    offset,
                    bufs[0].len(),
                )
            }
            Some((1, _, _)) => crate::sendfile::poll_send_head(&self.stream, cx, &bufs[0]),
            Some((i, _, _)) => Pin::new(&mut self.stream).poll_write_vectored(cx, &bufs[..i]),
            None => Pin::new(&mut self.stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Accepts connections from one listener under a [`ConnLimit`] shared with the listener's
/// other acceptors.
pub struct Acceptor {
    /// Polled for readiness itself: room is made for a connection (perhaps by closing an idle
    /// one) only once one is waiting, never ahead of it.
    listener: AsyncFd<std::net::TcpListener>,
    limit: Arc<ConnLimit>,
    backoff: Duration,
}

impl Acceptor {
    pub fn new(listener: TcpListener, limit: Arc<ConnLimit>) -> io::Result<Acceptor> {
        let listener = listener.into_std()?;
        // SAFETY: a TcpListener owns its descriptor, which stays open and the same until the
        // listener (owned by the AsyncFd from here on) is dropped.
        let listener = unsafe { AsyncFd::register(listener) }.map_err(io::Error::from)?;
        Ok(Acceptor {
            listener,
            limit,
            backoff: BACKOFF_MIN,
        })
    }

    /// The next connection once there is room for it; `None` once the limit's shutdown token
    /// is cancelled.
    pub async fn accept(&mut self) -> Option<(Conn, SocketAddr)> {
        let shutdown = self.limit.shutdown.clone();
        loop {
            let mut ready = tokio::select! {
                ready = self.listener.readable() => match ready {
                    Ok(r) => r,
                    Err(e) => {
                        self.failed(&e, &shutdown).await?;
                        continue;
                    }
                },
                _ = shutdown.cancelled() => return self.shut_down(),
            };
            // Readiness is edge-triggered and outlives the accept that used it: only the
            // kernel's queue says whether a connection is waiting now, and room must not be
            // made (by closing an idle connection) for one that is not.
            if !connection_waiting(self.listener.get_ref()) {
                ready.clear_ready();
                continue;
            }
            let slot = tokio::select! {
                slot = self.limit.reserve() => slot,
                _ = shutdown.cancelled() => return self.shut_down(),
            };
            let accepted = match ready.try_io(|l| l.get_ref().accept()) {
                Ok(accepted) => accepted,
                // Taken meanwhile (by nobody else today, but readiness is only a hint).
                Err(_would_block) => continue,
            };
            let conn = accepted.and_then(|(stream, peer)| {
                stream.set_nonblocking(true)?;
                Ok((TcpStream::from_std(stream)?, peer))
            });
            match conn {
                Ok((stream, peer)) => {
                    self.backoff = BACKOFF_MIN;
                    return Some((
                        Conn {
                            stream,
                            slot,
                            sending: None,
                        },
                        peer,
                    ));
                }
                // The peer's doing (it reset before we took the connection): the next one
                // is unaffected.
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    drop(slot);
                    self.failed(&e, &shutdown).await?;
                }
            }
        }
    }

    /// Stops accepting: every open connection of the listener is asked to close.
    fn shut_down(&self) -> Option<(Conn, SocketAddr)> {
        self.limit.close_all();
        None
    }

    /// After an error of the listener's own: logs it (at most once a second), frees a
    /// descriptor if that is what is missing, and pauses; `None` if shut down meanwhile.
    async fn failed(&mut self, e: &io::Error, shutdown: &CancellationToken) -> Option<()> {
        self.limit.accept_failed(e);
        if is_out_of_descriptors(e) {
            self.limit.shed_idle();
        }
        tokio::select! {
            _ = tokio::time::sleep(self.backoff) => {}
            _ = shutdown.cancelled() => {
                self.shut_down();
                return None;
            }
        }
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        Some(())
    }
}

/// Whether `listener` has a connection in its accept queue (a zero-timeout poll).
fn connection_waiting(listener: &std::net::TcpListener) -> bool {
    use std::os::fd::AsRawFd;
    let mut pfd = nix::libc::pollfd {
        fd: listener.as_raw_fd(),
        events: nix::libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { nix::libc::poll(&mut pfd, 1, 0) };
    // An error of poll itself says nothing: let accept find out.
    n != 0 && (n < 0 || pfd.revents != 0)
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::EMFILE) | Some(nix::libc::ENFILE)
    )
}

/// Drives one HTTP connection to its end. Asked to close (to make room, or at shutdown), it
/// finishes the request it is answering and writes out its response first (hyper's graceful
/// shutdown, which closes a connection between requests at once); one that has not sent a
/// whole first head yet is dropped there and then, as it is when no head arrived within
/// [`HEAD_TIMEOUT`] (hyper would wait out its header timeout for it).
pub fn drive<C>(conn: C, state: Arc<ConnState>) -> Drive<C>
where
    C: GracefulConnection,
{
    Drive {
        conn: Box::pin(conn),
        state,
        first_head: Some(Box::pin(tokio::time::sleep(HEAD_TIMEOUT))),
        close_by: None,
        closing: false,
    }
}

/// The future of [`drive`]: written out rather than a `select!`, so that a wake of the
/// connection's task costs only hyper's own poll, a waker registration and two loads; the
/// first-head timer is dropped as soon as a request came.
pub struct Drive<C> {
    conn: Pin<Box<C>>,
    state: Arc<ConnState>,
    first_head: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Armed when a connection closed to make room starts closing.
    close_by: Option<Pin<Box<tokio::time::Sleep>>>,
    closing: bool,
}

impl<C: GracefulConnection> std::future::Future for Drive<C> {
    type Output = Result<(), C::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if !this.closing {
            // Registered before the flag is read, so an ask after the read still wakes us.
            this.state.close_waker.register(cx.waker());
            if this.state.closing.load(Ordering::SeqCst) {
                if !this.state.served.load(Ordering::Relaxed) {
                    return Poll::Ready(Ok(()));
                }
                this.closing = true;
                this.conn.as_mut().graceful_shutdown();
                if this.state.evicted.load(Ordering::SeqCst) {
                    this.close_by = Some(Box::pin(tokio::time::sleep(EVICTED_CLOSE_LIMIT)));
                }
            }
        }
        if let Poll::Ready(done) = this.conn.as_mut().poll(cx) {
            return Poll::Ready(done);
        }
        if let Some(timer) = this.close_by.as_mut()
            && timer.as_mut().poll(cx).is_ready()
        {
            tracing::debug!("connection closed for room dropped after {EVICTED_CLOSE_LIMIT:?}");
            return Poll::Ready(Ok(()));
        }
        if let Some(timer) = this.first_head.as_mut() {
            if this.state.served.load(Ordering::Relaxed) {
                this.first_head = None;
            } else if timer.as_mut().poll(cx).is_ready() {
                tracing::debug!("connection closed: no request head within {HEAD_TIMEOUT:?}");
                return Poll::Ready(Ok(()));
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(max: usize) -> Arc<ConnLimit> {
        ConnLimit::new(max, "test", CancellationToken::new())
    }

    /// Finishes one request on the slot's connection, leaving it idle.
    fn serve_one(slot: &Slot) {
        drop(slot.conn().begin());
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_connection_idle_longest_is_closed_first() {
        let l = limit(3);
        let a = l.reserve().await;
        let b = l.reserve().await;
        let c = l.reserve().await;
        serve_one(&b);
        serve_one(&a);
        // c is still reading its first head: not idle.
        let d = tokio::time::timeout(Duration::from_secs(1), l.reserve())
            .await
            .expect("room made at once");
        assert!(b.conn().asked_to_close(), "b went idle first");
        assert!(!a.conn().asked_to_close());
        assert!(!c.conn().asked_to_close());
        assert_eq!(l.open(), 3, "the closing one no longer counts");
        drop(b);
        assert_eq!(l.open(), 3);
        drop((a, c, d));
        assert_eq!(l.open(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn connections_reading_a_head_answering_or_upgraded_are_not_closed_for_room() {
        let l = limit(3);
        let reading = l.reserve().await;
        serve_one(&reading);
        // Bytes of its next head arrived.
        reading.conn().touch();
        let answering = l.reserve().await;
        let in_use = answering.conn().begin();
        let upgraded = l.reserve().await;
        upgraded.conn().set_upgraded();
        serve_one(&upgraded);
        let next = l.reserve();
        tokio::pin!(next);
        // Paused time: the minute passes at once if nothing can happen before it.
        assert!(
            tokio::time::timeout(Duration::from_secs(60), &mut next)
                .await
                .is_err(),
            "nothing idle: the new connection waits"
        );
        for s in [&reading, &answering, &upgraded] {
            assert!(!s.conn().asked_to_close());
        }
        // The answer is done: that connection is idle now and makes room for the waiting one.
        drop(in_use);
        let made = tokio::time::timeout(Duration::from_secs(1), next)
            .await
            .expect("room made once a connection went idle");
        assert!(answering.conn().asked_to_close());
        assert!(!reading.conn().asked_to_close());
        assert!(!upgraded.conn().asked_to_close());
        drop((made, reading, answering, upgraded));
        assert_eq!(l.open(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_reserve_is_woken_by_a_connection_going_idle() {
        let l = limit(1);
        let busy = l.reserve().await;
        let in_use = busy.conn().begin();
        let waiter = tokio::spawn({
            let l = l.clone();
            async move { l.reserve().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(in_use);
        let next = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("woken")
            .expect("no panic");
        assert!(busy.conn().asked_to_close());
        drop((busy, next));
        assert_eq!(l.open(), 0);
    }

    /// A real HTTP/1 connection whose client asked for a 1 MB answer and reads none of it:
    /// hyper is stuck writing it, and so never finishes closing.
    async fn unread_answer() -> (
        impl GracefulConnection<Error = hyper::Error>,
        tokio::io::DuplexStream,
    ) {
        use tokio::io::AsyncWriteExt;
        let (mut client, server) = tokio::io::duplex(1024);
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let svc = hyper::service::service_fn(|_req| async {
            Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                bytes::Bytes::from(vec![b'x'; 1 << 20]),
            )))
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(server), svc);
        (conn, client)
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_closed_for_room_is_dropped_if_it_does_not_finish_closing() {
        let l = limit(1);
        let old = l.reserve().await;
        serve_one(&old);
        let (stuck, _client) = unread_answer().await;
        let conn = tokio::spawn(drive(stuck, old.conn().clone()));
        tokio::task::yield_now().await;
        let _new = l.reserve().await;
        assert!(old.conn().asked_to_close());
        tokio::time::sleep(EVICTED_CLOSE_LIMIT + Duration::from_millis(1)).await;
        assert!(
            conn.is_finished(),
            "uncounted, it must not stay open for good"
        );

        // Asked to close at shutdown instead, a connection keeps its drain time.
        let token = CancellationToken::new();
        let l = ConnLimit::new(1, "test", token.clone());
        let draining = l.reserve().await;
        serve_one(&draining);
        let (stuck, _client2) = unread_answer().await;
        let conn = tokio::spawn(drive(stuck, draining.conn().clone()));
        tokio::task::yield_now().await;
        l.close_all();
        tokio::time::sleep(EVICTED_CLOSE_LIMIT * 2).await;
        assert!(!conn.is_finished(), "the drain limit bounds it, not this");
        conn.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_asks_every_connection_to_close() {
        let token = CancellationToken::new();
        let l = ConnLimit::new(4, "test", token.clone());
        let a = l.reserve().await;
        token.cancel();
        // What an acceptor does when it sees the token cancelled.
        l.close_all();
        assert!(a.conn().asked_to_close());
        let late = l.reserve().await;
        assert!(
            late.conn().asked_to_close(),
            "admitted after shutdown: closed at once"
        );
    }

    #[test]
    fn default_caps_leave_room_for_upstream_connections_and_the_servers_own_files() {
        assert_eq!(default_caps(1024), (320, 128));
        assert_eq!(default_caps(20_000), (9744, 256));
        for files in [256, 1024, 4096, 65_536, 1 << 20] {
            let (gateway, api) = default_caps(files);
            assert!(
                (2 * gateway + api) as u64 + RESERVED_FILES <= files.max(512),
                "{files}: {gateway} {api}"
            );
        }
    }

    #[test]
    fn failed_accepts_are_logged_at_most_once_a_second_with_a_count() {
        let mut log = ErrorLog::default();
        let t0 = Instant::now();
        assert_eq!(log.note(t0), Some(1), "the first one at once");
        for i in 1..1000 {
            assert_eq!(log.note(t0 + Duration::from_micros(i * 999)), None);
        }
        assert_eq!(
            log.note(t0 + ERROR_LOG_EVERY),
            Some(1000),
            "a second later, with the 999 in between"
        );
        assert_eq!(log.note(t0 + ERROR_LOG_EVERY * 3 / 2), None);
        assert!(is_out_of_descriptors(&io::Error::from_raw_os_error(
            nix::libc::EMFILE
        )));
    }
}
