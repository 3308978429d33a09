//! End-to-end checks of README claims about limits and refusals: request limits at their exact
//! boundaries (sent over raw sockets, so the bytes are exactly those counted), WebSocket
//! connections past the request timeout, `--grep`'s cap of the newest 10,000 matches, and a
//! server that takes `HOIST_MASTER_KEY` and refuses to start with a wrong key.
//!
//! The boundary and grep tests share one default server; each deploys its own service of the
//! claims app (tests/apps/claims). Every wait is bounded, only loopback is used.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Answer, Server, deploy_claims, shared_server, unique, wait_until};

/// Sends `head` then `body` on a new connection from another thread while this one reads
/// the answer (a server may answer, and close, before the body is all sent).
fn send(port: u16, head: String, body: Vec<u8>) -> Answer {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut w = s.try_clone().expect("clone the socket");
    let writer = std::thread::spawn(move || {
        let _ = w
            .write_all(head.as_bytes())
            .and_then(|()| w.write_all(&body));
    });
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let _ = writer.join();
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete answer: {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Answer {
        status,
        headers: Vec::new(),
        body: body.to_string(),
    }
}

fn get_with(port: u16, target: &str, extra: &str) -> Answer {
    send(
        port,
        format!(
            "GET {target} HTTP/1.1\r\nHost: edge.localhost\r\n{extra}Connection: close\r\n\r\n"
        ),
        Vec::new(),
    )
}

fn post(port: u16, framing: &str, body: Vec<u8>) -> Answer {
    send(
        port,
        format!(
            "POST /upload HTTP/1.1\r\nHost: edge.localhost\r\n{framing}Connection: close\r\n\r\n"
        ),
        body,
    )
}

/// `len` bytes of body as chunks of at most 1 MiB, with the last chunk.
fn chunked(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + len / 100_000 + 16);
    let mut left = len;
    while left > 0 {
        let n = left.min(1 << 20);
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.resize(out.len() + n, b'b');
        out.extend_from_slice(b"\r\n");
        left -= n;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

const MB_100: usize = 100 * 1024 * 1024;
const KB_16: usize = 16 * 1024;

#[test]
fn limits_accept_their_exact_boundaries_and_refuse_one_byte_more() {
    let server = shared_server();
    // A whole core, so 100 MB are read quickly.
    deploy_claims(&server, "edge", &[]);
    let port = server.gw_port;

    // One header line, `name: value`, of exactly 16 KB, and one byte more.
    let name = "X-Big";
    let value = |n: usize| "a".repeat(n - name.len() - 2);
    let a = get_with(port, "/", &format!("{name}: {}\r\n", value(KB_16)));
    assert_eq!(a.status, 200, "{a:?}");
    assert!(a.body.contains(&format!("header {KB_16}")), "{}", a.body);
    let a = get_with(port, "/", &format!("{name}: {}\r\n", value(KB_16 + 1)));
    assert_eq!(a.status, 431, "{}", a.body);

    // The request target (path and query) of exactly 16 KB, and one byte more.
    let target = |n: usize| format!("/?{}", "c".repeat(n - 2));
    let a = get_with(port, &target(KB_16), "");
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains(&format!("target {KB_16} ")), "{}", a.body);
    let a = get_with(port, &target(KB_16 + 1), "");
    assert_eq!(a.status, 414, "{}", a.body);

    // A body of exactly 100 MB, declared and chunked, and one byte more.
    let a = post(
        port,
        &format!("Content-Length: {MB_100}\r\n"),
        vec![b'b'; MB_100],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body, format!("received {MB_100} bytes\n"));
    let a = post(
        port,
        &format!("Content-Length: {}\r\n", MB_100 + 1),
        Vec::new(),
    );
    assert_eq!(a.status, 413, "{}", a.body);
    let a = post(port, "Transfer-Encoding: chunked\r\n", chunked(MB_100));
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body, format!("received {MB_100} bytes\n"));
    let a = post(port, "Transfer-Encoding: chunked\r\n", chunked(MB_100 + 1));
    assert_eq!(a.status, 413, "{}", a.body);
    assert!(a.body.contains("100 MB"), "{}", a.body);
}

/// A client WebSocket frame (masked, as RFC 6455 requires of clients) with a short text.
fn ws_frame(text: &str) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut f = vec![0x81, 0x80 | text.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Reads one short unmasked server frame's text.
fn ws_read(s: &mut TcpStream) -> std::io::Result<String> {
    let mut head = [0u8; 2];
    s.read_exact(&mut head)?;
    let mut payload = vec![0u8; usize::from(head[1] & 0x7F)];
    s.read_exact(&mut payload)?;
    Ok(String::from_utf8_lossy(&payload).to_string())
}

#[test]
fn a_websocket_outlives_the_request_timeout_and_still_echoes() {
    let server = Server::start("ws-timeout", &["--request-timeout", "2s"]);
    deploy_claims(&server, "sock", &[]);
    // The timeout is in force for plain requests.
    let slow = server.raw_get("sock", "/sleep?ms=4000", "", Duration::from_secs(30));
    assert_eq!(slow.status, 504, "{slow:?}");

    let mut s = TcpStream::connect(("127.0.0.1", server.gw_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET /ws HTTP/1.1\r\nHost: sock.localhost:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.gw_port
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).expect("the handshake's answer");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "the app's accept key: {head}"
    );
    let opened = Instant::now();
    s.write_all(&ws_frame("now")).unwrap();
    assert_eq!(ws_read(&mut s).unwrap(), "echo now");
    // The app answers this one 3 s later, past the 2 s timeout, and the connection lives on.
    s.write_all(&ws_frame("after 3000")).unwrap();
    assert_eq!(ws_read(&mut s).expect("the late echo"), "echo after 3000");
    s.write_all(&ws_frame("still here")).unwrap();
    assert_eq!(
        ws_read(&mut s).expect("an echo past the timeout"),
        "echo still here"
    );
    assert!(opened.elapsed() >= Duration::from_secs(3));
}

/// The numbers of the `needle-row NNNNNN` lines in `out`.
fn rows(out: &str) -> Vec<u32> {
    out.lines()
        .filter_map(|l| l.split("needle-row ").nth(1))
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

#[test]
fn grep_shows_the_newest_10000_matches_and_tail_changes_that() {
    let server = shared_server();
    deploy_claims(&server, "chatty", &[]);
    let (status, body) = server.get("chatty", "/print?n=12000");
    assert_eq!(status, 200, "{body}");
    wait_until(
        "all 12,000 lines are stored",
        Duration::from_secs(30),
        || {
            let out =
                server.hoist_ok(&["logs", "chatty", "--grep", "needle-row", "--tail", "20000"]);
            (rows(&out).len() >= 12_000).then_some(())
        },
        || {
            let out =
                server.hoist_ok(&["logs", "chatty", "--grep", "needle-row", "--tail", "20000"]);
            format!("{} stored", rows(&out).len())
        },
    );
    let check = |args: &[&str], first: u32| {
        let out = server.hoist_ok(&[&["logs", "chatty", "--grep", "needle-row"], args].concat());
        let mut got = rows(&out);
        got.sort_unstable();
        let want: Vec<u32> = (first..=12_000).collect();
        assert!(
            got == want,
            "{args:?}: {} lines, {:?}..{:?}; want {first}..12000",
            got.len(),
            got.first(),
            got.last()
        );
    };
    check(&[], 2_001);
    check(&["--tail", "500"], 11_501);
    check(&["--tail", "12000"], 1);
}

const KEY_1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const KEY_2: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const KEY_3: &str = "3333333333333333333333333333333333333333333333333333333333333333";

#[test]
fn hoist_master_key_is_taken_and_a_wrong_key_is_refused_at_start() {
    let secret = unique("sealed");
    let mut server = Server::start_env("master-key", &[], &[("HOIST_MASTER_KEY", KEY_1)]);
    assert!(
        !server.data.join("master.key").exists(),
        "the key came from HOIST_MASTER_KEY; no key file is made"
    );
    server.deploy_probe("keyed", &["--env", &format!("SECRET={secret}")]);
    let env_has_secret = |server: &Server| {
        wait_until(
            "the app sees its secret",
            Duration::from_secs(60),
            || {
                server
                    .get("keyed", "/env")
                    .1
                    .contains(&secret)
                    .then_some(())
            },
            || server.get("keyed", "/env").1,
        )
    };
    env_has_secret(&server);
    let stop = |server: &mut Server| {
        let exit = server.terminate(Duration::from_secs(45));
        assert!(exit.is_some_and(|s| s.success()), "{exit:?}");
    };
    stop(&mut server);
    server.spawn_env(&[("HOIST_MASTER_KEY", KEY_1)]);
    env_has_secret(&server);
    stop(&mut server);

    // Another key in HOIST_MASTER_KEY, a changed key file, a malformed key: each refused.
    std::fs::write(server.data.join("master.key"), format!("{KEY_3}\n")).unwrap();
    std::fs::set_permissions(
        server.data.join("master.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[("HOIST_MASTER_KEY", KEY_2)],
            "does not open with this master key",
        ),
        (&[], "does not open with this master key"),
        (&[("HOIST_MASTER_KEY", "not-hex")], "expected 64 hex digits"),
    ];
    for (env, says) in cases {
        let (status, stderr) = server.start_refused(env, Duration::from_secs(30));
        assert!(
            status.is_some_and(|s| !s.success()),
            "{env:?}: the server must exit non-zero, got {status:?}\n{stderr}"
        );
        assert!(stderr.contains(says), "{env:?}: {stderr}");
        assert!(!stderr.contains(&secret), "{stderr}");
    }
    // Nothing was harmed: the right key still opens everything.
    server.spawn_env(&[("HOIST_MASTER_KEY", KEY_1)]);
    env_has_secret(&server);
}
