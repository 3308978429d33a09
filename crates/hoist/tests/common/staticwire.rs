//! Helpers of tests/static_assets.rs: one server for the file's tests (with a short grace
//! for replaced static files), the test app in a repository of its own, and raw requests
//! whose bodies are bytes (compressed answers are not text).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::Server;

/// How long a replaced deployment's hashed files answer on the test server: long enough for
/// a check right after a deploy, short enough to wait out.
pub const GRACE: Duration = Duration::from_secs(8);

/// The one server of the file's tests; the last test to let go stops it.
pub fn server() -> Arc<Server> {
    static SLOT: Mutex<Weak<Server>> = Mutex::new(Weak::new());
    let mut slot = SLOT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = slot.upgrade() {
        return s;
    }
    let grace = format!("{}s", GRACE.as_secs());
    let s = Arc::new(Server::start("static", &["--static-grace", &grace]));
    *slot = Arc::downgrade(&s);
    s
}

/// tests/apps/staticsite: a Python app whose build writes `dist/`.
pub fn site_app() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps/staticsite")
}

/// A repository holding `files` (path, content) and nothing else.
pub fn repo_of(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = super::scratch(&format!("src-{name}"));
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, text).expect("write");
    }
    super::git_repo(&dir, name)
}

/// An answer with its body as bytes.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }

    /// Whether the gateway answered it from the static files.
    pub fn is_static(&self) -> bool {
        self.header("x-hoist-static") == Some("hit")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `METHOD target` for `service` on the gateway, with `extra` header lines (each ending in
/// `\r\n`); `target` is sent exactly as given (`/../x`, `/%2e%2e/x`).
pub fn request(server: &Server, method: &str, service: &str, target: &str, extra: &str) -> Reply {
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {service}.localhost:{}\r\n{extra}Connection: close\r\n\r\n",
        server.gw_port
    );
    exchange_bytes(server.gw_port, head.as_bytes())
        .unwrap_or_else(|e| panic!("{method} {service}{target}: {e}"))
}

pub fn get(server: &Server, service: &str, target: &str, extra: &str) -> Reply {
    request(server, "GET", service, target, extra)
}

fn exchange_bytes(port: u16, head: &[u8]) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(head)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no complete answer: {buf:?}")))?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut body = buf[end + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&raw[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        let Some(chunk) = raw.get(start..start + size) else {
            break;
        };
        out.extend_from_slice(chunk);
        raw = raw.get(start + size + 2..).unwrap_or_default();
    }
    out
}
