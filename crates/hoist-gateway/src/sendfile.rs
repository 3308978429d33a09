//! Large static bodies leave through `sendfile(2)`: the socket takes the file's pages from
//! the page cache instead of a copy of them, as nginx's `sendfile on` does.
//!
//! hyper writes a response as slices (head, then body) and knows nothing of files. A static
//! body at least `hoist_static::mapped::MAP_AT` large is a memory map the static store has
//! registered, so the client socket's writer looks each large slice up
//! ([`hoist_static::mapped_file`]) and, for one that is part of a mapped object, sends that
//! range of the object's file instead of writing the memory. Anything else (every proxied
//! body) is written as before.
//!
//! The sending itself runs on the sender threads ([`start_senders`]), not on the gateway
//! worker that parsed the request. On loopback and on fast links nearly all of a large
//! body's cost is the kernel's TCP transmit path, charged to the thread that calls sendfile:
//! about 300 µs per megabyte measured here, so one worker sending 1 MB files is saturated at
//! about 3,000 a second, while every other connection it holds waits behind the copies. The
//! worker hands the send over (a duplicate of the socket's descriptor, the file and the
//! range) and goes on; a sender thread on any core waits for the socket to take the bytes.

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};

use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// Bytes sent by sendfile since the process started (read by the tests, to tell that the
/// path was taken).
pub(crate) static SENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Of those, the bytes the sender threads sent, and the sends they hold now (for the tests).
pub(crate) static SENT_OFF: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
pub(crate) static SENDING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts a send in [`SENDING`] while it lives.
struct Holding;

impl Holding {
    fn new() -> Holding {
        SENDING.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Holding
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        SENDING.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Slices shorter than this are never looked up: a small write gains nothing from sendfile,
/// and the lookup takes a read lock.
const LOOKUP_AT: usize = 64 << 10;

/// The first slice of `bufs` that is part of a mapped static object: its index, file and
/// offset in the file.
pub(crate) fn mapped_in(bufs: &[io::IoSlice<'_>]) -> Option<(usize, std::sync::Arc<File>, u64)> {
    bufs.iter().enumerate().find_map(|(i, buf)| {
        if buf.len() < LOOKUP_AT {
            return None;
        }
        hoist_static::mapped_file(buf).map(|(file, offset)| (i, file, offset))
    })
}

/// Writes the response head before a sendfile'd body with `MSG_MORE`: the kernel holds it
/// to leave in the same segment as the body's first bytes (nginx's `tcp_nopush`), instead of
/// a packet of its own that wakes the client for a few hundred bytes.
pub(crate) fn poll_send_head(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    head: &[u8],
) -> Poll<io::Result<usize>> {
    use std::os::fd::AsRawFd;
    let more = nix::sys::socket::MsgFlags::from_bits_retain(nix::libc::MSG_MORE);
    loop {
        ready!(stream.poll_write_ready(cx))?;
        match stream.try_io(Interest::WRITABLE, || {
            nix::sys::socket::send(stream.as_raw_fd(), head, more).map_err(io::Error::from)
        }) {
            Ok(n) => return Poll::Ready(Ok(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
}

/// The sender threads: one runtime for the whole process, its threads as many as the cores,
/// at the gateway workers' priority.
static SENDERS: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

/// Starts the sender threads (once; later calls keep the first ones). Until they run, and if
/// they cannot be started, large bodies are sent by the worker itself.
pub(crate) fn start_senders(nice: i32) -> io::Result<()> {
    if SENDERS.get().is_some() {
        return Ok(());
    }
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("gateway-send")
        .on_thread_start(move || {
            if nice != 0
                && let Err(e) = crate::proxy::set_thread_nice(nice)
            {
                tracing::warn!(error = %e, nice, "gateway sender keeps the server's priority");
            }
        })
        .enable_io()
        .build()?;
    // Two racing callers (gateways started at once in one process): the loser's runtime ran
    // nothing, and is shut down without waiting, since a plain drop inside the caller's async
    // context panics.
    if let Err(loser) = SENDERS.set(rt) {
        loser.shutdown_background();
    }
    Ok(())
}

/// A send handed to a sender thread, waited for by the connection that asked.
pub(crate) struct InFlight {
    /// The file, offset and length asked for: hyper asks again for the same slice until it
    /// is told it went.
    key: (usize, u64, usize),
    done: oneshot::Receiver<io::Result<usize>>,
}

/// Sends `len` bytes of `file` from `offset` to the socket from a sender thread; `Ready`
/// with all `len` once they went. Without sender threads, the worker sends them itself.
pub(crate) fn poll_send_off(
    stream: &TcpStream,
    flight: &mut Option<InFlight>,
    cx: &mut Context<'_>,
    file: Arc<File>,
    offset: u64,
    len: usize,
) -> Poll<io::Result<usize>> {
    let key = (Arc::as_ptr(&file) as usize, offset, len);
    let sending = match flight {
        Some(sending) => sending,
        None => {
            let Some(senders) = SENDERS.get() else {
                return poll_send(stream, cx, &file, offset, len);
            };
            // A duplicate keeps the socket open while the sender holds it, even if the
            // connection is dropped meanwhile (the sender then stops; see `send_all`). Out of
            // descriptors, the worker sends the body itself rather than failing the answer.
            let Ok(fd) = stream.as_fd().try_clone_to_owned() else {
                return poll_send(stream, cx, &file, offset, len);
            };
            let (tx, done) = oneshot::channel();
            senders.spawn(send_all(fd, file, offset, len, tx));
            flight.insert(InFlight { key, done })
        }
    };
    if sending.key != key {
        // hyper gave up on the slice it asked for and wrote something else: the bytes already
        // in flight would corrupt the response. It does not do that; if it ever did, the
        // connection closes instead.
        *flight = None;
        return Poll::Ready(Err(io::Error::other(
            "a different body was written while a file was being sent",
        )));
    }
    let res = ready!(Pin::new(&mut sending.done).poll(cx));
    *flight = None;
    Poll::Ready(res.unwrap_or_else(|_| Err(io::Error::other("the file's sender stopped"))))
}

/// The sender's side: all `len` bytes, or the error that stopped them. Stops early, with the
/// socket's duplicate closed, once the connection that asked is gone.
async fn send_all(
    fd: OwnedFd,
    file: Arc<File>,
    offset: u64,
    len: usize,
    mut tx: oneshot::Sender<io::Result<usize>>,
) {
    let _holding = Holding::new();
    let send = async {
        // The duplicate shares the original's open file (O_NONBLOCK included) and gets its
        // own registration with this runtime's poller.
        let stream = TcpStream::from_std(std::net::TcpStream::from(fd))?;
        let mut sent = 0;
        while sent < len {
            let n = std::future::poll_fn(|cx| {
                poll_send(&stream, cx, &file, offset + sent as u64, len - sent)
            })
            .await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the client stopped reading",
                ));
            }
            sent += n;
            SENT_OFF.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(sent)
    };
    let res = tokio::select! {
        res = send => res,
        () = tx.closed() => return,
    };
    let _ = tx.send(res);
}

/// Sends `len` bytes of `file` from `offset` to the socket; how many went.
pub(crate) fn poll_send(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    file: &File,
    offset: u64,
    len: usize,
) -> Poll<io::Result<usize>> {
    loop {
        ready!(stream.poll_write_ready(cx))?;
        let mut off = offset as i64;
        match stream.try_io(Interest::WRITABLE, || {
            nix::sys::sendfile::sendfile64(stream, file, Some(&mut off), len)
                .map_err(io::Error::from)
        }) {
            Ok(n) => {
                SENT.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                return Poll::Ready(Ok(n));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
}
