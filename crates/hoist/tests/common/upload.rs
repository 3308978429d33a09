//! Helpers of tests/upload.rs: git bundles made with the real git, raw uploads, and what the
//! server's source store holds on disk.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{Server, exchange};

/// The output of `git ARGS` in `repo`, trimmed; panics on failure.
pub fn git_out(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `git bundle create - REVS…` in `repo`.
pub fn bundle(repo: &Path, revs: &[&str]) -> Vec<u8> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["bundle", "create", "-q", "-"])
        .args(revs)
        .output()
        .expect("git bundle");
    assert!(
        out.status.success(),
        "git bundle {revs:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// What the source store holds: every file under `DATA/sources` (objects, refs, and
/// uploads still arriving) with its size.
pub fn store_files(server: &Server) -> Vec<(PathBuf, u64)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, u64)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => walk(&p, out),
                Ok(_) => out.push((p.clone(), e.metadata().map(|m| m.len()).unwrap_or(0))),
                Err(_) => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(&server.data.join("sources"), &mut out);
    out.sort();
    out
}

/// The objects part of [`store_files`] (what an upload stores).
pub fn store_objects(server: &Server) -> Vec<(PathBuf, u64)> {
    store_files(server)
        .into_iter()
        .filter(|(p, _)| {
            p.components()
                .any(|c| c.as_os_str() == "objects" || c.as_os_str() == "incoming")
        })
        .collect()
}

/// How an upload's body is framed on the wire.
pub enum Framing {
    /// `Content-Length: N`, then the body given (which may be shorter: none at all, to see
    /// the server answer from the header alone).
    Length(usize),
    /// Chunked, with the final empty chunk.
    Chunked,
    /// Chunked, and the body stops without its final chunk (the server must answer from
    /// what it read: nothing is left unread in the socket to turn its close into a reset).
    ChunkedOpen,
}

/// `POST /v1/services/NAME/uploads` with `body` on a raw connection. Answers the status and
/// the JSON body.
pub fn post_upload(
    server: &Server,
    name: &str,
    body: &[u8],
    framing: Framing,
) -> (u16, serde_json::Value) {
    let header = match framing {
        Framing::Length(n) => format!("Content-Length: {n}\r\n"),
        Framing::Chunked | Framing::ChunkedOpen => "Transfer-Encoding: chunked\r\n".to_string(),
    };
    let mut req = format!(
        "POST /v1/services/{name}/uploads HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Type: application/x-git-bundle\r\n{header}Connection: close\r\n\r\n",
        server.token()
    )
    .into_bytes();
    match framing {
        Framing::Length(_) => req.extend_from_slice(body),
        Framing::Chunked | Framing::ChunkedOpen => {
            for chunk in body.chunks(64 * 1024) {
                req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                req.extend_from_slice(chunk);
                req.extend_from_slice(b"\r\n");
            }
            if matches!(framing, Framing::Chunked) {
                req.extend_from_slice(b"0\r\n\r\n");
            }
        }
    }
    let answer = exchange(server.api_port, &req, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("POST uploads: {e}"));
    let json = serde_json::from_str(answer.body.trim()).unwrap_or(serde_json::Value::Null);
    (answer.status, json)
}

/// A file of `n` bytes that git cannot compress (so a bundle holding it is at least `n`).
pub fn incompressible(path: &Path, n: usize) {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut data = Vec::with_capacity(n);
    while data.len() < n {
        // xorshift64: no dependency for noise.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    data.truncate(n);
    std::fs::write(path, data).expect("write noise");
}
