//! From a git source to an image: fetching the source at a pinned commit, the runtimes
//! (Debian root filesystems built with mmdebstrap), build sandboxes and content-addressed app
//! layers.

mod builder;
mod error;
mod fetch;
mod layer;
mod runtime_build;
mod runtimes;
mod sources;

pub use builder::{BuildOutput, BuildRequest, Builder, NODE_EXTRA_CA_CERTS};
pub use error::BuildError;
pub use fetch::{Fetched, fetch, fetch_at, remote_head};
pub use layer::{AppLayer, digest_dir};
pub use runtimes::{RuntimeImage, RuntimeInfo, Runtimes, upstream_version};
pub use sources::{BundleHeader, Ingested, SourceStore, UploadError, parse_bundle_header};

/// Where a line of build output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
    /// Hoist's own progress lines ("cloning", "building runtime python").
    System,
}

/// Receives build output line by line, as it happens.
pub type LogSink = std::sync::Arc<dyn Fn(OutputStream, String) + Send + Sync>;

/// Reads two pipes line by line into one channel, in arrival order; the channel closes when
/// both pipes have. Invalid UTF-8 is replaced rather than ending the stream.
pub fn merge_lines<O, E>(
    stdout: O,
    stderr: E,
) -> tokio::sync::mpsc::Receiver<(OutputStream, String)>
where
    O: tokio::io::AsyncRead + Unpin + Send + 'static,
    E: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    spawn_reader(stdout, OutputStream::Stdout, tx.clone());
    spawn_reader(stderr, OutputStream::Stderr, tx);
    rx
}

/// The longest line kept whole; a longer one is split, so output without newlines (a binary
/// dumped to stdout) cannot grow the server's memory.
pub const MAX_LINE: usize = 16 * 1024;

fn spawn_reader<R>(
    reader: R,
    stream: OutputStream,
    tx: tokio::sync::mpsc::Sender<(OutputStream, String)>,
) where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    use tokio::io::AsyncBufReadExt;
    tokio::spawn(async move {
        let mut reader = tokio::io::BufReader::with_capacity(MAX_LINE, reader);
        let mut line: Vec<u8> = Vec::new();
        loop {
            let (consumed, complete) = match reader.fill_buf().await {
                Ok([]) | Err(_) => break,
                Ok(buf) => {
                    let room = MAX_LINE - line.len();
                    match buf.iter().take(room).position(|&b| b == b'\n') {
                        Some(i) => {
                            line.extend_from_slice(&buf[..i]);
                            (i + 1, true)
                        }
                        None => {
                            let n = buf.len().min(room);
                            line.extend_from_slice(&buf[..n]);
                            (n, line.len() >= MAX_LINE)
                        }
                    }
                }
            };
            reader.consume(consumed);
            if complete && !send_line(&tx, stream, &mut line).await {
                return;
            }
        }
        if !line.is_empty() {
            send_line(&tx, stream, &mut line).await;
        }
    });
}

async fn send_line(
    tx: &tokio::sync::mpsc::Sender<(OutputStream, String)>,
    stream: OutputStream,
    line: &mut Vec<u8>,
) -> bool {
    while line.last() == Some(&b'\r') {
        line.pop();
    }
    let text = String::from_utf8_lossy(line).into_owned();
    line.clear();
    tx.send((stream, text)).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_split_at_newlines_and_capped_in_length() {
        let long = "y".repeat(MAX_LINE * 2 + 10);
        let input = format!("one\r\ntwo\n{long}");
        let mut rx = merge_lines(std::io::Cursor::new(input.into_bytes()), tokio::io::empty());
        let mut got = Vec::new();
        while let Some((_, l)) = rx.recv().await {
            got.push(l);
        }
        assert_eq!(got[0], "one");
        assert_eq!(got[1], "two");
        assert_eq!(got[2].len(), MAX_LINE);
        assert_eq!(got[3].len(), MAX_LINE);
        assert_eq!(got[4].len(), 10);
        assert_eq!(got.len(), 5);
    }
}
