//! Floods of connections: thousands of clients that send part of a request head and hold, a
//! server out of file descriptors, and the connection cap that keeps it from running out.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::{Server, exchange, wait_until};

/// What a clean stop may take at most (the drain limit for requests in flight).
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// Lets this test process hold `n` sockets and more: raises its soft open-file limit to the
/// hard one. Returns how many connections it can hold with room to spare.
fn room_for_connections(n: usize) -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let hard: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|h| h.parse().ok())
        .unwrap_or(1024);
    let _ = Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={hard}:{hard}"),
        ])
        .status();
    n.min(hard.saturating_sub(200) as usize)
}

/// Opens up to `n` connections to `port` that each send `partial` (part of a request head) and
/// hold. Connections the server's backlog has no room for are given up on after a moment.
fn hold_partial_heads(port: u16, partial: &str, n: usize) -> Vec<TcpStream> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
            continue;
        };
        if s.write_all(partial.as_bytes()).is_ok() {
            held.push(s);
        }
    }
    held
}

/// The log's text without the terminal colour codes tracing puts around fields.
fn without_colours(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut rest = log;
    while let Some(i) = rest.find('\x1b') {
        out.push_str(&rest[..i]);
        rest = rest[i..].find('m').map_or("", |m| &rest[i + m + 1..]);
    }
    out.push_str(rest);
    out
}

fn log_bytes(server: &Server) -> u64 {
    std::fs::metadata(server.log_file()).map_or(0, |m| m.len())
}

fn open_files(server: &Server) -> usize {
    server
        .pid()
        .and_then(|pid| std::fs::read_dir(format!("/proc/{pid}/fd")).ok())
        .map_or(0, |d| d.count())
}

fn get_ok(server: &Server, service: &str, timeout: Duration) -> Option<()> {
    let head = format!(
        "GET / HTTP/1.1\r\nHost: {service}.localhost:{}\r\nConnection: close\r\n\r\n",
        server.gw_port
    );
    let answer = exchange(server.gw_port, head.as_bytes(), timeout).ok()?;
    (answer.status == 200 && answer.body.starts_with("probe")).then_some(())
}

fn partial_head(server: &Server, service: &str) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: {service}.localhost:{}\r\nX-Slow: ",
        server.gw_port
    )
}

#[test]
fn a_flood_of_unfinished_requests_leaves_the_server_answering_and_its_stop_clean() {
    let n = room_for_connections(3000);
    let mut server = Server::start_with_nofile("flood", 1024, &[]);
    server.deploy_probe("flood", &["--min-instances", "1"]);
    server.wait_for("flood", "/", "probe", Duration::from_secs(30));
    let (log_before, rss_before) = (log_bytes(&server), server.rss_kb());

    let held = hold_partial_heads(server.gw_port, &partial_head(&server, "flood"), n);
    assert!(
        held.len() >= n * 9 / 10,
        "only {} of {n} connections were made",
        held.len()
    );
    // The gateway takes up to its cap (320 under 1024 files); the rest wait in the backlog.
    wait_until(
        "the gateway holds a few hundred of the connections",
        Duration::from_secs(20),
        || (open_files(&server) >= 300).then_some(()),
        || format!("{} files open", open_files(&server)),
    );
    // The API answers, with and without a token, while the flood is held.
    let health = exchange(
        server.api_port,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    )
    .expect("the API answers /healthz during the flood");
    assert_eq!(health.status, 200, "{health:?}");
    let (status, view) = server.api("GET", "/v1/services/flood", None);
    assert_eq!(status, 200, "{view}");
    let files = open_files(&server);
    assert!(files < 1000, "{files} files open under a limit of 1024");
    let grown = log_bytes(&server) - log_before;
    assert!(
        grown < 64 * 1024,
        "the server logged {grown} bytes during the flood"
    );
    let rss = server.rss_kb();
    assert!(
        rss < rss_before + 100 * 1024,
        "RSS went from {rss_before} KB to {rss} KB"
    );

    drop(held);
    wait_until(
        "a fresh request is answered once the flood is gone",
        Duration::from_secs(5),
        || get_ok(&server, "flood", Duration::from_secs(2)),
        || format!("{} files open", open_files(&server)),
    );
    let status = server
        .terminate(DRAIN_LIMIT)
        .expect("SIGTERM ends the server within the drain limit");
    assert!(status.success(), "{status:?}");
    let log = std::fs::read_to_string(server.log_file()).unwrap_or_default();
    assert!(
        !log.contains("Too many open files"),
        "the server ran out of files:\n{}",
        &log[log.len().saturating_sub(3000)..]
    );
}

#[test]
fn accept_errors_are_backed_off_and_logged_once_a_second_with_a_count() {
    let n = room_for_connections(2000);
    // A cap above what the open-file limit allows: accepts fail with EMFILE below the cap.
    let mut server = Server::start_with_nofile("emfile", 1024, &["--max-connections", "5000"]);
    server.deploy_probe("emfile", &["--min-instances", "1"]);
    server.wait_for("emfile", "/", "probe", Duration::from_secs(30));
    let log_before = log_bytes(&server);

    let held = hold_partial_heads(server.gw_port, &partial_head(&server, "emfile"), n);
    assert!(held.len() >= n * 9 / 10, "only {} connections", held.len());
    // Failed accepts are logged with a count of those since the line before (the gateway
    // is not the only part of the server that logs running out of files).
    let counted_failures = || {
        let log = without_colours(&std::fs::read_to_string(server.log_file()).unwrap_or_default());
        log.lines()
            .filter(|l| l.contains("Too many open files") && l.contains("failed="))
            .count()
    };
    wait_until(
        "two lines about failed accepts, with counts",
        Duration::from_secs(10),
        || (counted_failures() >= 2).then_some(()),
        || format!("{} such lines", counted_failures()),
    );
    let grown = log_bytes(&server) - log_before;
    assert!(grown < 16 * 1024, "the server logged {grown} bytes");

    drop(held);
    // The back-off is at most a second: the gateway accepts again soon after.
    wait_until(
        "a fresh request is answered once the flood is gone",
        Duration::from_secs(5),
        || get_ok(&server, "emfile", Duration::from_secs(2)),
        || format!("{} files open", open_files(&server)),
    );
    let status = server
        .terminate(DRAIN_LIMIT)
        .expect("SIGTERM ends the server within the drain limit");
    assert!(status.success(), "{status:?}");
}

/// Sends one keep-alive request on `s` and reads its whole answer; returns the status.
fn keep_alive_get(s: &mut TcpStream, host: &str) -> u16 {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "answer cut short: {buf:?}");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a content-length");
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).unwrap();
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Whether the server closed `s` (an end of stream or a reset) within `within`.
fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    match s.read(&mut [0u8; 1]) {
        Ok(n) => n == 0,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// Whether `s` is open now: nothing to read, and no end of stream.
fn still_open(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let open =
        matches!(s.peek(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    s.set_nonblocking(false).unwrap();
    open
}

#[test]
fn at_the_cap_the_longest_idle_keep_alive_connection_is_closed_first() {
    let server = Server::start("capped", &["--max-connections", "8"]);
    server.deploy_probe("capped", &["--min-instances", "1"]);
    server.wait_for("capped", "/", "probe", Duration::from_secs(30));
    let host = format!("capped.localhost:{}", server.gw_port);
    let addr = SocketAddr::from(([127, 0, 0, 1], server.gw_port));

    // The oldest connection is still sending its head: busy, not idle.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(partial_head(&server, "capped").as_bytes())
        .unwrap();
    // Seven keep-alive connections that each made a request, oldest first: the cap is full.
    let mut idle: Vec<TcpStream> = (0..7)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            assert_eq!(keep_alive_get(&mut s, &host), 200);
            s
        })
        .collect();

    // A new connection is served: the connection idle longest made room for it. One try: a
    // second would take the place of the next idle connection.
    assert_eq!(
        get_ok(&server, "capped", Duration::from_secs(10)),
        Some(()),
        "a new connection at the cap is served"
    );
    assert!(
        closed_by_server(&mut idle[0], Duration::from_secs(10)),
        "the longest-idle connection was closed"
    );
    for (i, s) in idle.iter_mut().enumerate().skip(1) {
        assert!(still_open(s), "idle connection {i} is still open");
        assert_eq!(keep_alive_get(s, &host), 200, "and still serves");
    }
    assert!(still_open(&slow), "the slow one is not taken for idle");
}

#[test]
fn a_stop_out_of_file_descriptors_still_ends_within_the_drain_limit() {
    let mut server = Server::start("nofds", &[]);
    server.deploy_probe("nofds", &["--idle-freeze", "1s"]);
    server.wait_for("nofds", "/", "probe", Duration::from_secs(30));
    wait_until(
        "the instance freezes",
        Duration::from_secs(20),
        || {
            server
                .running("nofds")
                .iter()
                .any(|(_, state)| state == "frozen")
                .then_some(())
        },
        || format!("{:?}", server.running("nofds")),
    );
    // Out of descriptors, as under a flood: no crun, no cgroup write, no new socket.
    let pid = server.pid().expect("running");
    let st = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), "--nofile=10:1024"])
        .status()
        .expect("prlimit");
    assert!(st.success());
    let stopped = server.terminate(DRAIN_LIMIT);
    // The next start cleans up whatever the stop could not (the frozen instance, its mounts).
    server.spawn();
    let status = stopped.expect("SIGTERM ends the server within the drain limit");
    assert!(status.success(), "{status:?}");
}
