//! Static answers through a real gateway on loopback: they never reach the activator, and a
//! miss still does.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::{
    AccessLog, AccessRecord, Activator, Gateway, GatewayConfig, PoolLimits, RoutingTable,
    ServicePool,
};

/// Counts the instance starts the pool asks for; none ever finishes.
#[derive(Default)]
struct Starts(AtomicUsize);

impl Activator for Starts {
    fn start_instance(&self, _service: &str) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Records(Mutex<Vec<AccessRecord>>);

impl AccessLog for Records {
    fn record(&self, batch: Vec<AccessRecord>) {
        self.0.lock().unwrap().extend(batch);
    }
}

struct Fixture {
    _rt: tokio::runtime::Runtime,
    port: u16,
    pool: Arc<ServicePool>,
    starts: Arc<Starts>,
    records: Arc<Records>,
    shutdown: CancellationToken,
    dir: PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const JS: &str = "console.log('static');\n";

/// 1 MB that no two offsets of share a 4-byte window: a byte sent from the wrong offset of
/// the file shows.
fn big() -> Vec<u8> {
    (0u32..1 << 18)
        .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
        .collect()
}

/// A deployed service with no instance and a static folder (`/index.html`, a hashed bundle).
fn fixture(test: &str, has_app: bool) -> Fixture {
    let dir = std::env::temp_dir().join(format!("hoist-gw-static-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("dist/assets")).unwrap();
    std::fs::write(dir.join("dist/index.html"), "<!doctype html><p>home</p>").unwrap();
    std::fs::write(dir.join("dist/assets/app.3f9c1a2b.js"), JS).unwrap();
    std::fs::write(dir.join("dist/big.bin"), big()).unwrap();
    if test == "large" {
        // More than loopback's socket buffers take from a client that reads nothing.
        std::fs::write(dir.join("dist/huge.bin"), big().repeat(32)).unwrap();
    }
    let store = Arc::new(hoist_static::Store::open(dir.join("store")).unwrap());
    let manifest = store
        .ingest(&dir.join("dist"), &hoist_static::Limits::default())
        .unwrap();
    let config = hoist_static::SiteConfig {
        has_app,
        ..Default::default()
    };
    let site = hoist_static::Site::new(store, manifest, config).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut config = GatewayConfig::new("localhost");
    // A miss waits this long for the start that never comes, then gets a 503.
    config.hold_timeout = Duration::from_secs(1);
    let gw = Gateway::new(config);
    let records = Arc::new(Records::default());
    gw.set_access_log(records.clone());
    let starts = Arc::new(Starts::default());
    let limits = PoolLimits {
        concurrency: 10,
        max_instances: 1,
    };
    let pool = ServicePool::new("svc", limits, starts.clone());
    pool.set_deployed(true);
    pool.set_static(Some(Arc::new(site)));
    let mut table = RoutingTable::new();
    table.insert(pool.clone());
    gw.publish(table);
    let listener = Gateway::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = listener.local_addr().unwrap().port();
    let shutdown = CancellationToken::new();
    rt.spawn(gw.serve(listener, shutdown.clone()));
    Fixture {
        _rt: rt,
        port,
        pool,
        starts,
        records,
        shutdown,
        dir,
    }
}

impl Fixture {
    /// One request on a new connection: (status, head, body).
    fn exchange(&self, method: &str, path: &str) -> (u16, String, String) {
        let (status, head, body) = self.exchange_bytes(method, path, "");
        (status, head, String::from_utf8_lossy(&body).to_string())
    }

    fn exchange_bytes(&self, method: &str, path: &str, extra: &str) -> (u16, String, Vec<u8>) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: svc.localhost\r\n{extra}Connection: close\r\n\r\n"
        );
        s.write_all(raw.as_bytes()).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        let split = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(buf.len());
        let head = String::from_utf8_lossy(&buf[..split]).to_ascii_lowercase();
        let body = buf.get(split + 4..).unwrap_or_default().to_vec();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, head, body)
    }

    fn records(&self, n: usize) -> Vec<AccessRecord> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.records.0.lock().unwrap().clone();
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn a_static_hit_never_reaches_the_activator_and_is_recorded_as_static() {
    let f = fixture("hit", true);
    for _ in 0..20 {
        let (status, head, body) = f.exchange("GET", "/assets/app.3f9c1a2b.js");
        assert_eq!((status, body.as_str()), (200, JS));
        assert!(head.contains("x-hoist-static: hit"), "{head}");
        assert!(
            head.contains("cache-control: public, max-age=31536000, immutable"),
            "{head}"
        );
    }
    let (status, head, body) = f.exchange("HEAD", "/assets/app.3f9c1a2b.js");
    assert_eq!((status, body.as_str()), (200, ""));
    assert!(
        head.contains(&format!("content-length: {}", JS.len())),
        "{head}"
    );
    let records = f.records(21);
    assert_eq!(records.len(), 21);
    assert!(
        records
            .iter()
            .all(|r| r.served_static && r.instance.is_none() && !r.cold)
    );
    assert!(
        records[0].line().ends_with("instance=- static"),
        "{}",
        records[0].line()
    );
    assert_eq!(records[0].bytes_out, JS.len() as u64);
    assert_eq!(f.starts.0.load(Ordering::SeqCst), 0, "no start asked for");
    assert_eq!(
        (f.pool.cold_starts(), f.pool.waiting(), f.pool.in_flight()),
        (0, 0, 0)
    );
    assert_eq!(f.pool.stats().snapshot().requests(), 21);
}

#[test]
fn a_miss_goes_to_the_pool_which_asks_for_an_instance() {
    let f = fixture("miss", true);
    let (status, head, _) = f.exchange("GET", "/api/users");
    assert_eq!(status, 503, "no instance came within the hold time");
    assert!(!head.contains("x-hoist-static"), "{head}");
    assert!(
        f.starts.0.load(Ordering::SeqCst) >= 1,
        "the activator was asked"
    );
    let (status, _, _) = f.exchange("POST", "/assets/app.3f9c1a2b.js");
    assert_eq!(status, 503, "only GET and HEAD are static");
    let records = f.records(2);
    assert!(records.iter().all(|r| !r.served_static), "{records:?}");
}

#[test]
fn a_static_only_site_answers_misses_itself_and_never_asks_for_an_instance() {
    let f = fixture("only", false);
    let (status, head, _) = f.exchange("GET", "/nope");
    assert_eq!(status, 404);
    assert!(head.contains("x-hoist-static: hit"), "{head}");
    let (status, head, _) = f.exchange("DELETE", "/");
    assert_eq!(status, 405);
    assert!(head.contains("allow: get, head"), "{head}");
    let (status, _, body) = f.exchange("GET", "/");
    assert_eq!((status, body.as_str()), (200, "<!doctype html><p>home</p>"));
    let (status, _, _) = f.exchange("GET", "/%2e%2e/%2e%2e/etc/passwd");
    assert_eq!(status, 404);
    assert_eq!(f.records(4).len(), 4);
    assert_eq!(f.starts.0.load(Ordering::SeqCst), 0);
    // Taken away (the service deleted or redeployed without static files): the app's again.
    f.pool.set_static(None);
    let (status, _, _) = f.exchange("GET", "/");
    assert_eq!(status, 503);
    assert!(f.starts.0.load(Ordering::SeqCst) >= 1);
}

/// A client whose receive buffer is a few KB: loopback's default would take a 1 MB body
/// whole without the client reading any of it.
fn small_window_client(port: u16) -> TcpStream {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrIn, connect, setsockopt, socket, sockopt,
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    setsockopt(&fd, sockopt::RcvBuf, &4096).unwrap();
    connect(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::new(127, 0, 0, 1, port),
    )
    .unwrap();
    TcpStream::from(fd)
}

/// Waits up to 10 s for `cond`.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

// One test for everything that reads the sendfile counters, which are the process's.
#[test]
fn a_large_file_goes_out_whole_and_in_ranges_by_sendfile_from_the_sender_threads() {
    let f = fixture("large", true);
    let big = big();
    let sent = crate::sendfile::SENT.load(Ordering::Relaxed);
    let sent_off = crate::sendfile::SENT_OFF.load(Ordering::Relaxed);
    for _ in 0..3 {
        let (status, head, body) = f.exchange_bytes("GET", "/big.bin", "");
        assert_eq!(status, 200, "{head}");
        assert!(body == big, "the 1 MB body differs ({} bytes)", body.len());
    }
    let (status, head, body) =
        f.exchange_bytes("GET", "/big.bin", "Range: bytes=300001-900000\r\n");
    assert_eq!(status, 206, "{head}");
    assert!(
        body[..] == big[300_001..=900_000],
        "the range differs ({} bytes)",
        body.len()
    );
    let (start, end) = (big.len() - 70_000, big.len());
    let (status, _, body) = f.exchange_bytes("GET", "/big.bin", "Range: bytes=-70000\r\n");
    assert_eq!((status, body.len()), (206, end - start));
    assert!(body[..] == big[start..end]);
    let by_sendfile = crate::sendfile::SENT.load(Ordering::Relaxed) - sent;
    assert!(
        by_sendfile >= 3 << 20,
        "only {by_sendfile} bytes went by sendfile"
    );
    // Sent from the sender threads, not by the worker that parsed the request.
    let by_senders = crate::sendfile::SENT_OFF.load(Ordering::Relaxed) - sent_off;
    assert!(
        by_senders >= 3 << 20,
        "only {by_senders} bytes went from the sender threads"
    );
    // A small body is written as before.
    let (status, _, body) = f.exchange("GET", "/assets/app.3f9c1a2b.js");
    assert_eq!((status, body.as_str()), (200, JS));

    // A client that stops reading holds a sender, and the worker goes on answering others;
    // once it hangs up, the sender lets go of the socket.
    let mut stuck = small_window_client(f.port);
    stuck
        .write_all(b"GET /huge.bin HTTP/1.1\r\nHost: svc.localhost\r\n\r\n")
        .unwrap();
    eventually("a sender holding the stuck client's body", || {
        crate::sendfile::SENDING.load(Ordering::Relaxed) >= 1
    });
    let (status, _, body) = f.exchange("GET", "/assets/app.3f9c1a2b.js");
    assert_eq!((status, body.as_str()), (200, JS));
    drop(stuck);
    eventually("the sender to let go of the closed connection", || {
        crate::sendfile::SENDING.load(Ordering::Relaxed) == 0
    });
}
