//! From a git source to an image: fetching the source at a pinned commit, the runtimes
//! (Debian root filesystems built with mmdebstrap), build sandboxes and content-addressed app
//! layers.

mod builder;
mod error;
mod fetch;
mod layer;
mod runtimes;

pub use builder::{BuildOutput, BuildRequest, Builder};
pub use error::BuildError;
pub use fetch::{Fetched, fetch};
pub use layer::{AppLayer, digest_dir};
pub use runtimes::{RuntimeImage, RuntimeInfo, Runtimes};

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

fn spawn_reader<R>(
    reader: R,
    stream: OutputStream,
    tx: tokio::sync::mpsc::Sender<(OutputStream, String)>,
) where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    use tokio::io::AsyncBufReadExt;
    tokio::spawn(async move {
        let mut reader = tokio::io::BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    while matches!(buf.last(), Some(b'\n' | b'\r')) {
                        buf.pop();
                    }
                    let line = String::from_utf8_lossy(&buf).into_owned();
                    if tx.send((stream, line)).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
}
