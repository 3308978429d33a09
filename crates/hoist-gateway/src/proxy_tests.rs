//! The gateway in front of a real HTTP server on loopback (in this process, reached in the
//! host's network namespace as an instance would be in its own), spoken to with raw requests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hoist_sandbox::NetNs;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use crate::{
    AccessLog, AccessRecord, Activator, Gateway, GatewayConfig, PoolLimits, RoutingTable,
    ServicePool, Upstream,
};

/// The Host header values of each request the app received.
type Seen = Arc<Mutex<Vec<Vec<String>>>>;

struct NoStarts;

impl Activator for NoStarts {
    fn start_instance(&self, _service: &str) {}
}

#[derive(Default)]
struct Records(Mutex<Vec<AccessRecord>>);

impl AccessLog for Records {
    fn record(&self, batch: Vec<AccessRecord>) {
        self.0.lock().unwrap().extend(batch);
    }
}

struct TestGateway {
    /// Runs the app (the gateway has its own threads); dropped with the test.
    _rt: tokio::runtime::Runtime,
    port: u16,
    seen: Seen,
    records: Arc<Records>,
    pool: Arc<ServicePool>,
    shutdown: CancellationToken,
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// An app that records the Host headers it gets, reads the whole body and answers 200.
fn start_app(rt: &tokio::runtime::Runtime) -> (u16, Seen) {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Seen::default();
    let record = seen.clone();
    rt.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let record = record.clone();
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let record = record.clone();
                async move {
                    let hosts = req
                        .headers()
                        .get_all(hyper::header::HOST)
                        .iter()
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).to_string())
                        .collect();
                    record.lock().unwrap().push(hosts);
                    let body = req.into_body().collect().await?;
                    let text = format!("got {} bytes\n", body.to_bytes().len());
                    Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(text))))
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc),
            );
        }
    });
    (port, seen)
}

/// A gateway for `localhost` that routes `svc.localhost` to the app.
fn gateway() -> TestGateway {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (app_port, seen) = start_app(&rt);
    let gw = Gateway::new(GatewayConfig::new("localhost"));
    let records = Arc::new(Records::default());
    gw.set_access_log(records.clone());
    let pool = ServicePool::new(
        "svc",
        PoolLimits {
            concurrency: 10,
            max_instances: 1,
        },
        Arc::new(NoStarts),
    );
    pool.set_deployed(true);
    pool.add(Upstream::new(
        "i-1".into(),
        Arc::new(NetNs::host().unwrap()),
        app_port,
        None,
    ));
    let mut table = RoutingTable::new();
    table.insert(pool.clone());
    gw.publish(table);
    let listener = Gateway::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = listener.local_addr().unwrap().port();
    let shutdown = CancellationToken::new();
    rt.spawn(gw.serve(listener, shutdown.clone()));
    TestGateway {
        _rt: rt,
        port,
        seen,
        records,
        pool,
        shutdown,
    }
}

impl TestGateway {
    /// Sends `raw` on a new connection and reads the answer to its end: (status, body).
    fn exchange(&self, raw: &str) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(raw.as_bytes()).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        let text = String::from_utf8_lossy(&buf).to_string();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string();
        (status, body)
    }

    fn seen(&self) -> Vec<Vec<String>> {
        self.seen.lock().unwrap().clone()
    }

    /// The access records of the service once `n` have arrived (bounded wait).
    fn records(&self, n: usize) -> Vec<(u16, String)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got: Vec<(u16, String)> = self
                .records
                .0
                .lock()
                .unwrap()
                .iter()
                .map(|r| (r.status, r.path.clone()))
                .collect();
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn a_request_with_two_host_headers_is_refused_and_reaches_no_app() {
    let gw = gateway();
    for (first, second) in [("svc", "other"), ("other", "svc"), ("svc", "svc")] {
        let (status, body) = gw.exchange(&format!(
            "GET / HTTP/1.1\r\nHost: {first}.localhost\r\nHost: {second}.localhost\r\nConnection: close\r\n\r\n"
        ));
        assert_eq!(status, 400, "Host {first} then {second}: {body}");
        assert!(body.contains("more than one Host"), "{body}");
    }
    assert!(gw.seen().is_empty(), "the app got {:?}", gw.seen());
    // The same request with one Host reaches the app, with that Host.
    let (status, _) =
        gw.exchange("GET / HTTP/1.1\r\nHost: svc.localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200);
    assert_eq!(gw.seen(), vec![vec!["svc.localhost".to_string()]]);
}

#[test]
fn an_http11_request_without_a_host_or_with_a_malformed_one_is_refused() {
    let gw = gateway();
    let (status, body) = gw.exchange("GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 400, "{body}");
    let (status, body) =
        gw.exchange("GET / HTTP/1.1\r\nHost: user@svc.localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 400, "{body}");
    // HTTP/1.0 needs no Host: nothing is routed, and that is a 404.
    let (status, _) = gw.exchange("GET / HTTP/1.0\r\n\r\n");
    assert_eq!(status, 404);
    assert!(gw.seen().is_empty(), "the app got {:?}", gw.seen());
}

#[test]
fn an_absolute_form_target_is_routed_by_its_authority_which_the_app_hears_as_host() {
    let gw = gateway();
    let (status, body) = gw.exchange(
        "GET http://svc.localhost/ HTTP/1.1\r\nHost: other.localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(gw.seen(), vec![vec!["svc.localhost".to_string()]]);
    // And the other way round: the target names a service that does not exist.
    let (status, _) = gw.exchange(
        "GET http://other.localhost/ HTTP/1.1\r\nHost: svc.localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 404);
    assert_eq!(gw.seen().len(), 1, "{:?}", gw.seen());
}

#[test]
fn a_malformed_chunked_body_is_the_clients_error_not_the_apps() {
    let gw = gateway();
    let (status, body) = gw.exchange(
        "POST /upload HTTP/1.1\r\nHost: svc.localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\nzz\r\n",
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(gw.records(1), vec![(400, "/upload".to_string())]);
    let snapshot = gw.pool.stats().snapshot();
    assert_eq!(snapshot.errors(), 0, "no 5xx counted");
    assert_eq!(snapshot.classes[3], 1, "one 4xx counted");
    // A well-formed one goes through.
    let (status, body) = gw.exchange(
        "POST /upload HTTP/1.1\r\nHost: svc.localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    assert_eq!((status, body.as_str()), (200, "got 5 bytes\n"));
}
