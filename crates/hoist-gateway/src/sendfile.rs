//! Large static bodies leave through `sendfile(2)`: the socket takes the file's pages from
//! the page cache instead of a copy of them, as nginx's `sendfile on` does.
//!
//! hyper writes a response as slices (head, then body) and knows nothing of files. A static
//! body at least `hoist_static::mapped::MAP_AT` large is a memory map the static store has
//! registered, so the client socket's writer looks each large slice up
//! ([`hoist_static::mapped_file`]) and, for one that is part of a mapped object, sends that
//! range of the object's file instead of writing the memory. Anything else (every proxied
//! body) is written as before.

use std::fs::File;
use std::io;
use std::task::{Context, Poll, ready};

use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bytes sent by sendfile since the process started (read by the tests, to tell that the
/// path was taken).
pub(crate) static SENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

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
