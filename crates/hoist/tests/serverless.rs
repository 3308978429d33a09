//! End-to-end tests of serverless scaling: freeze when idle, thaw on the next request, stop
//! after longer idleness, cold starts held by the activator (shared, queued, rejected, failed),
//! persistent mode, usage accounting and the request limits checked before any start.
//!
//! Each test runs its own server (free ports, own data dir) and the probe app; every wait is
//! bounded in count and time, and only loopback is used.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, exchange, probe_instance, utc_day_now, wait_until};

const FAST: &[&str] = &["--idle-freeze", "300ms", "--idle-stop", "2s"];

fn cold_starts(server: &Server, name: &str) -> u64 {
    server.service(name)["cold_starts"].as_u64().unwrap_or(0)
}

/// `GET /` on the probe, asserting 200; returns the instance that answered.
fn instance_answering(server: &Server, name: &str) -> String {
    let (status, body) = server.get(name, "/");
    assert_eq!(status, 200, "{body}");
    probe_instance(&body)
}

fn wait_for_state(server: &Server, name: &str, id: &str, state: &str, within: Duration) {
    wait_until(
        &format!("{name}'s instance {id} {state}"),
        within,
        || {
            server
                .running(name)
                .iter()
                .any(|(i, s)| i == id && s == state)
                .then_some(())
        },
        || format!("{:?}", server.running(name)),
    );
}

#[test]
fn an_idle_instance_freezes_thaws_on_a_request_and_stops_and_the_next_request_starts_one() {
    let server = Server::start("s2z", &[]);
    server.deploy_probe("zero", FAST);

    let first = instance_answering(&server, "zero");
    wait_for_state(&server, "zero", &first, "frozen", Duration::from_secs(10));
    let status = server.hoist_ok(&["status", "zero"]);
    assert!(
        status.contains("serverless") && status.contains(&first) && status.contains("frozen"),
        "{status}"
    );

    // The request thaws the same instance: nothing is started for it.
    let colds = cold_starts(&server, "zero");
    assert_eq!(
        instance_answering(&server, "zero"),
        first,
        "a thaw, not a new instance"
    );
    let last_request = Instant::now();
    assert_eq!(cold_starts(&server, "zero"), colds);
    let view = server.service("zero");
    let running = &view["running"][0];
    assert!(running["requests"].as_u64().unwrap_or(0) >= 2, "{view}");
    assert!(running["frozen_ms"].as_u64().unwrap_or(0) > 0, "{view}");

    // Frozen again, then stopped once idle for idle_stop (2 s) and not before.
    wait_until(
        "the idle instance stops",
        Duration::from_secs(8),
        || server.running("zero").is_empty().then_some(()),
        || format!("{:?}", server.running("zero")),
    );
    let stopped_after = last_request.elapsed();
    assert!(
        stopped_after >= Duration::from_millis(1800),
        "stopped after only {stopped_after:?} of idleness (idle_stop is 2s)"
    );
    // Its record says so (still "stopping" until the app has exited), with its requests.
    let view = server.service("zero");
    let record = view["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["id"] == first.as_str())
        .unwrap_or_else(|| panic!("{first} in the instance records: {view}"))
        .clone();
    assert!(
        record["state"] == "stopping" || record["state"] == "stopped",
        "{record}"
    );
    assert_eq!(record["usage"]["requests"], 2, "{record}");

    // From zero: the request is held through a cold start and answered.
    let second = instance_answering(&server, "zero");
    assert_ne!(second, first);
    assert!(cold_starts(&server, "zero") > colds);
    assert_eq!(server.running("zero").len(), 1);
    let status = server.hoist_ok(&["status", "zero"]);
    assert!(status.contains("cold starts in all"), "{status}");
    assert!(!status.contains("; 0 cold starts in all"), "{status}");

    // Usage reaches the daily totals (the stopped instance's at once, the rest within the
    // 5-second flush): three requests, one cold start, some frozen time.
    let day = utc_day_now();
    let usage = wait_until(
        "usage is recorded",
        Duration::from_secs(10),
        || {
            let (status, days) = server.api("GET", "/v1/services/zero/usage?days=7", None);
            assert_eq!(status, 200, "{days}");
            let today = days
                .as_array()?
                .iter()
                .find(|d| d["day"] == day.as_str())?
                .clone();
            (today["requests"].as_u64()? >= 3 && today["cold_starts"].as_u64()? >= 1)
                .then_some(today)
        },
        || format!("{}", server.api("GET", "/v1/services/zero/usage", None).1),
    );
    assert!(usage["frozen_ms"].as_u64().unwrap_or(0) > 0, "{usage}");
    let cli = server.hoist_ok(&["usage", "zero"]);
    let row = cli
        .lines()
        .find(|l| l.starts_with(&day))
        .unwrap_or_else(|| panic!("a row for {day}:\n{cli}"));
    let requests: u64 = row
        .split_whitespace()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    assert!(requests >= 3, "{cli}");
    assert!(cli.starts_with("DAY"), "{cli}");
}

/// `GET /kaithhealth`, asserting the app (not the gateway) answered it: the probe has no
/// such route, and any answer is what readiness asks for.
fn health_check(server: &Server, name: &str) {
    let (status, body) = server.get(name, "/kaithhealth");
    assert_eq!((status, body.as_str()), (404, "not found\n"));
}

#[test]
fn health_checks_are_answered_but_do_not_keep_a_service_alive() {
    let server = Server::start("health", &[]);
    server.deploy_probe("mon", FAST);
    instance_answering(&server, "mon");
    let last_request = Instant::now();

    // A monitor polls every 100 ms: the instance still freezes between polls and stops
    // idle_stop (2 s) after the last user request. Bounded at 8 s.
    let mut frozen_between = 0;
    loop {
        thread::sleep(Duration::from_millis(100));
        let running = server.running("mon");
        if running.is_empty() {
            break;
        }
        frozen_between += running.iter().filter(|(_, s)| s == "frozen").count();
        assert!(
            last_request.elapsed() < Duration::from_secs(8),
            "still running under health checks: {running:?}"
        );
        health_check(&server, "mon");
    }
    let stopped_after = last_request.elapsed();
    assert!(
        stopped_after >= Duration::from_millis(1800),
        "stopped after {stopped_after:?}"
    );
    assert!(frozen_between >= 3, "frozen {frozen_between} times");

    // From zero, a health check starts an instance to answer it, which is not kept.
    let colds = cold_starts(&server, "mon");
    health_check(&server, "mon");
    assert_eq!(cold_starts(&server, "mon"), colds + 1);
    wait_until(
        "the instance started for a health check stops",
        Duration::from_secs(3),
        || server.running("mon").is_empty().then_some(()),
        || format!("{:?}", server.running("mon")),
    );

    // A user's request still keeps its instance for idle_stop.
    let id = instance_answering(&server, "mon");
    wait_for_state(&server, "mon", &id, "frozen", Duration::from_secs(10));
    assert_eq!(server.running("mon").len(), 1);
}

#[test]
fn concurrent_requests_to_a_stopped_service_share_one_cold_start() {
    let server = Server::start("share", &[]);
    server.deploy_probe("shared", &[]);
    let out = server.hoist_ok(&["stop", "shared"]);
    assert!(out.contains("stopped 1 instance"), "{out}");
    assert!(server.running("shared").is_empty());
    let colds = cold_starts(&server, "shared");

    const N: usize = 20;
    let barrier = Barrier::new(N);
    let answers: Vec<(u16, String)> = thread::scope(|s| {
        let handles: Vec<_> = (0..N)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    server.get("shared", "/")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut instances = HashSet::new();
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        instances.insert(probe_instance(body));
    }
    assert_eq!(
        instances.len(),
        1,
        "all {N} requests are served by the one instance started for them: {instances:?}"
    );
    assert_eq!(cold_starts(&server, "shared"), colds + 1);
    let running = server.running("shared");
    assert_eq!(running.len(), 1, "{running:?}");
    let view = server.service("shared");
    assert_eq!(view["waiting"], 0, "{view}");
    assert_eq!(view["starting"], 0, "{view}");
}

#[test]
fn a_burst_beyond_capacity_gets_answers_or_503_with_retry_after_and_nothing_hangs() {
    let server = Server::start("burst", &[]);
    server.deploy_probe("narrow", &["--max-instances", "1", "--concurrency", "2"]);
    server.hoist_ok(&["stop", "narrow"]);

    const N: usize = 200;
    let barrier = Barrier::new(N);
    let started = Instant::now();
    let results: Vec<Result<(common::Answer, Duration), String>> = thread::scope(|s| {
        let handles: Vec<_> = (0..N)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let t = Instant::now();
                    let head = format!(
                        "GET /sleep?ms=100 HTTP/1.1\r\nHost: narrow.localhost:{}\r\nConnection: close\r\n\r\n",
                        server.gw_port
                    );
                    exchange(server.gw_port, head.as_bytes(), Duration::from_secs(30))
                        .map(|a| (a, t.elapsed()))
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (mut ok, mut rejected) = (0, 0);
    let mut slowest = Duration::ZERO;
    for r in &results {
        let (answer, took) = r
            .as_ref()
            .unwrap_or_else(|e| panic!("a request got no answer: {e}"));
        slowest = slowest.max(*took);
        match answer.status {
            200 => ok += 1,
            503 => {
                rejected += 1;
                assert_eq!(answer.header("retry-after"), Some("1"), "{answer:?}");
                assert!(answer.body.contains("limits"), "{}", answer.body);
            }
            other => panic!("unexpected status {other}: {answer:?}"),
        }
    }
    eprintln!(
        "burst of {N}: {ok} served, {rejected} rejected, slowest {slowest:?}, all in {:?}",
        started.elapsed()
    );
    assert!(ok >= 2, "some requests are served ({ok} of {N})");
    assert!(
        rejected >= 1,
        "some requests are turned away ({rejected} of {N})"
    );
    assert!(
        slowest < Duration::from_secs(20),
        "slowest answer {slowest:?}"
    );
    let view = server.service("narrow");
    assert_eq!(view["waiting"], 0, "{view}");
    assert_eq!(view["starting"], 0, "{view}");
    let running = server.running("narrow");
    assert_eq!(running.len(), 1, "max_instances is 1: {running:?}");
}

#[test]
fn a_client_that_leaves_while_held_is_not_counted_and_the_start_completes() {
    let server = Server::start("leave", &[]);
    // The start takes 10 s, so each step below is seen while it is still under way, however
    // slow this machine is at answering the test's polls.
    server.deploy_probe("slow", &["--env", "START_DELAY_MS=10000"]);
    server.hoist_ok(&["stop", "slow"]);
    assert!(server.running("slow").is_empty());

    let mut s = TcpStream::connect(("127.0.0.1", server.gw_port)).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: slow.localhost:{}\r\nConnection: close\r\n\r\n",
        server.gw_port
    )
    .unwrap();
    wait_until(
        "the request is held while an instance starts",
        Duration::from_secs(5),
        || {
            let v = server.service("slow");
            (v["waiting"] == 1 && v["starting"] == 1).then_some(())
        },
        || format!("{}", server.service("slow")),
    );
    drop(s);
    // The hold ends with the connection, long before the instance is up.
    wait_until(
        "the departed request is no longer waiting",
        Duration::from_secs(5),
        || {
            let v = server.service("slow");
            (v["waiting"] == 0).then_some(v)
        },
        || format!("{}", server.service("slow")),
    );
    let view = server.service("slow");
    assert_eq!(
        view["starting"], 1,
        "the instance is still starting, so the hold ended with the client: {view}"
    );

    let up = wait_until(
        "the instance started for the departed request comes up",
        Duration::from_secs(30),
        || {
            let r = server.running("slow");
            (r.len() == 1).then(|| r[0].0.clone())
        },
        || format!("{}", server.service("slow")),
    );
    let view = server.service("slow");
    assert_eq!(view["waiting"], 0, "{view}");
    assert_eq!(view["starting"], 0, "{view}");
    let colds = cold_starts(&server, "slow");
    assert_eq!(instance_answering(&server, "slow"), up);
    assert_eq!(cold_starts(&server, "slow"), colds, "no second start");
}

/// A TCP service on the host that the probe app asks (through `host.hoist.internal`) whether
/// it may start; it answers "open" or "closed" until dropped.
struct Gate {
    port: u16,
    open: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Gate {
    fn new() -> Gate {
        let listener = TcpListener::bind("0.0.0.0:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let (o, st) = (open.clone(), stop.clone());
        let thread = thread::spawn(move || {
            while !st.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let word: &[u8] = if o.load(Ordering::Acquire) {
                            b"open\n"
                        } else {
                            b"closed\n"
                        };
                        let _ = conn.write_all(word);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Gate {
            port,
            open,
            stop,
            thread: Some(thread),
        }
    }

    fn set(&self, open: bool) {
        self.open.store(open, Ordering::Release);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_failed_start_answers_every_held_request_with_503_and_the_reason() {
    let gate = Gate::new();
    let server = Server::start("fail", &["--host-ports", &gate.port.to_string()]);
    let port = format!("GATE_PORT={}", gate.port);
    server.deploy_probe("gated", &["--env", &port]);
    server.hoist_ok(&["stop", "gated"]);
    gate.set(false);

    const N: usize = 3;
    let barrier = Barrier::new(N);
    let started = Instant::now();
    let answers: Vec<(common::Answer, Duration)> = thread::scope(|s| {
        let handles: Vec<_> = (0..N)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let t = Instant::now();
                    let a = server.raw_get("gated", "/", "", Duration::from_secs(30));
                    (a, t.elapsed())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (a, took) in &answers {
        assert_eq!(a.status, 503, "{a:?}");
        assert!(
            a.body.contains("could not start") && a.body.contains("exit code 7"),
            "{}",
            a.body
        );
        assert_eq!(a.header("retry-after"), Some("1"), "{a:?}");
        // Well before the hold timeout (65 s): the failure itself ends the hold.
        assert!(*took < Duration::from_secs(15), "answered after {took:?}");
    }
    eprintln!("{N} held requests failed after {:?}", started.elapsed());
    let view = server.service("gated");
    assert_eq!(view["waiting"], 0, "{view}");
    assert!(server.running("gated").is_empty());
    let status = server.hoist_ok(&["status", "gated"]);
    assert!(
        status.contains("failed") && status.contains("exit code 7"),
        "{status}"
    );
    let logs = server.hoist_ok(&["logs", "gated"]);
    assert!(logs.contains("gate says closed"), "{logs}");

    // Once starts can succeed again, the next request gets an instance.
    gate.set(true);
    let (status, body) = server.get("gated", "/");
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.running("gated").len(), 1);
}

#[test]
fn an_instance_that_dies_while_frozen_is_replaced_on_the_next_request() {
    let server = Server::start("frozen-crash", &[]);
    server.deploy_probe("brittle", &["--idle-freeze", "300ms"]);
    let first = instance_answering(&server, "brittle");
    wait_for_state(
        &server,
        "brittle",
        &first,
        "frozen",
        Duration::from_secs(10),
    );

    let pid = server
        .instance_pid(&first)
        .unwrap_or_else(|| panic!("no pid file for {first}"));
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // With the cgroup v2 freezer a SIGKILL ends a frozen process at once. The v1 freezer
    // (this host's, if /sys/fs/cgroup/freezer exists) keeps it pending until the cgroup is
    // thawed, so the test thaws it from the host to get the same death-while-frozen.
    let v1_state = std::path::Path::new("/sys/fs/cgroup/freezer/hoist")
        .join(&first)
        .join("ctr/freezer.state");
    if v1_state.exists() {
        std::fs::write(&v1_state, "THAWED").expect("thaw the killed instance from the host");
    }
    wait_until(
        "the dead instance leaves the running list",
        Duration::from_secs(10),
        || (!server.running("brittle").iter().any(|(i, _)| i == &first)).then_some(()),
        || format!("{:?}", server.running("brittle")),
    );

    let second = instance_answering(&server, "brittle");
    assert_ne!(second, first, "served by a new instance");
    let status = server.hoist_ok(&["status", "brittle"]);
    let line = status
        .lines()
        .find(|l| l.starts_with(&first))
        .unwrap_or_else(|| panic!("{first} in\n{status}"));
    assert!(
        line.contains("failed") && line.contains("crashed while frozen"),
        "{status}"
    );
    assert!(line.contains("signal 9"), "{status}");
}

#[test]
fn a_persistent_instance_is_never_frozen_and_scale_and_stop_take_effect_at_once() {
    let server = Server::start("persist", &[]);
    server.deploy_probe("warm", &["--min-instances", "1", "--idle-freeze", "300ms"]);
    let status = server.hoist_ok(&["status", "warm"]);
    assert!(status.contains("persistent (min 1"), "{status}");
    let id = instance_answering(&server, "warm");
    // Watched for five times idle_freeze: never frozen, not even for a moment.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_millis(1500) {
        assert_eq!(
            server.running("warm"),
            vec![(id.clone(), "ready".to_string())],
            "kept warm past idle_freeze"
        );
        thread::sleep(Duration::from_millis(50));
    }

    let out = server.hoist_ok(&["scale", "warm", "--min-instances", "0"]);
    assert!(out.contains("min 0"), "{out}");
    wait_for_state(&server, "warm", &id, "frozen", Duration::from_secs(10));

    server.hoist_ok(&["stop", "warm"]);
    assert!(
        server.running("warm").is_empty(),
        "stop takes a serverless service to zero at once"
    );

    // Back to persistent: the scaler brings the minimum back without a request, and keeps it
    // after a stop.
    server.hoist_ok(&["scale", "warm", "--min-instances", "1"]);
    let colds = cold_starts(&server, "warm");
    let restored = wait_until(
        "the minimum instance is started",
        Duration::from_secs(15),
        || {
            let r = server.running("warm");
            (r.len() == 1 && r[0].1 == "ready").then(|| r[0].0.clone())
        },
        || format!("{:?}", server.running("warm")),
    );
    let out = server.hoist_ok(&["stop", "warm"]);
    assert!(out.contains("persistent"), "{out}");
    wait_until(
        "the minimum instance comes back after a stop",
        Duration::from_secs(15),
        || {
            let r = server.running("warm");
            (r.len() == 1 && r[0].0 != restored).then_some(())
        },
        || format!("{:?}", server.running("warm")),
    );
    assert_eq!(
        cold_starts(&server, "warm"),
        colds,
        "starts for the minimum are not cold starts"
    );

    // A redeploy switches to as many new instances as serve now (here the minimum of 2),
    // all ready at the switch rather than one plus a start afterwards.
    server.hoist_ok(&["scale", "warm", "--min-instances", "2"]);
    let before = wait_until(
        "two instances serve",
        Duration::from_secs(15),
        || {
            let r = server.running("warm");
            (r.len() == 2 && r.iter().all(|(_, s)| s == "ready")).then_some(r)
        },
        || format!("{:?}", server.running("warm")),
    );
    server.deploy_probe("warm", &["--env", "VERSION=v2"]);
    let after = server.running("warm");
    assert_eq!(after.len(), 2, "{after:?}");
    for (id, state) in &after {
        assert_eq!(state, "ready", "{after:?}");
        assert!(
            before.iter().all(|(old, _)| old != id),
            "{before:?} -> {after:?}"
        );
    }
}

#[test]
fn oversized_requests_are_refused_without_starting_anything_and_bad_scaling_is_named() {
    let server = Server::start("limits", &[]);
    // Scaling from hoist.toml, with a flag over it.
    let repo = common::git_repo(&common::probe_app(), "limits");
    std::fs::write(
        repo.join("hoist.toml"),
        "runtime = \"python\"\nstart = \"python3 app.py\"\nmemory = 128\nmax_instances = 3\nconcurrency = 9\nidle_freeze = \"45s\"\n",
    )
    .unwrap();
    common::commit_all(&repo, "scaling");
    server.deploy_ok(&[
        repo.to_str().unwrap(),
        "--name",
        "guarded",
        "--concurrency",
        "7",
    ]);
    let scaling = &server.service("guarded")["scaling"];
    assert_eq!(scaling["max_instances"], 3, "from hoist.toml: {scaling}");
    assert_eq!(
        scaling["idle_freeze_ms"], 45_000,
        "from hoist.toml: {scaling}"
    );
    assert_eq!(scaling["concurrency"], 7, "the flag wins: {scaling}");
    server.hoist_ok(&["stop", "guarded"]);
    assert!(server.running("guarded").is_empty());
    let colds = cold_starts(&server, "guarded");
    let t = Duration::from_secs(10);

    let big = format!("X-Big: {}\r\n", "a".repeat(20 * 1024));
    let a = server.raw_get("guarded", "/", &big, t);
    assert_eq!(a.status, 431, "{a:?}");
    assert!(
        a.body.contains("X-Big") || a.body.contains("x-big"),
        "{}",
        a.body
    );

    let many: String = (0..7)
        .map(|i| format!("X-Part-{i}: {}\r\n", "b".repeat(10 * 1024)))
        .collect();
    let a = server.raw_get("guarded", "/", &many, t);
    assert_eq!(a.status, 431, "{a:?}");
    assert!(a.body.contains("64 KB"), "{}", a.body);
    // Beyond what the gateway buffers for a head at all: refused while it is being read.
    let huge: String = (0..10)
        .map(|i| format!("X-Part-{i}: {}\r\n", "b".repeat(10 * 1024)))
        .collect();
    let a = server.raw_get("guarded", "/", &huge, t);
    assert_eq!(a.status, 431, "{a:?}");

    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: guarded.localhost:{}\r\nContent-Length: 200000000\r\nConnection: close\r\n\r\n",
        server.gw_port
    );
    let a = exchange(server.gw_port, head.as_bytes(), t).unwrap();
    assert_eq!(a.status, 413, "{a:?}");
    assert!(a.body.contains("100 MB"), "{}", a.body);

    let long = format!("/{}", "c".repeat(17 * 1024));
    let a = server.raw_get("guarded", &long, "", t);
    assert_eq!(a.status, 414, "{a:?}");

    let view = server.service("guarded");
    assert!(
        view["running"].as_array().is_some_and(Vec::is_empty),
        "nothing was started for refused requests: {view}"
    );
    assert_eq!(view["starting"], 0, "{view}");
    assert_eq!(view["waiting"], 0, "{view}");
    assert_eq!(cold_starts(&server, "guarded"), colds);

    let err = server.hoist_err(&["scale", "guarded", "--max-instances", "0"]);
    assert!(err.contains("max_instances"), "{err}");
    let err = server.hoist_err(&["scale", "guarded", "--idle-freeze", "soon"]);
    assert!(err.contains("idle_freeze") && err.contains("soon"), "{err}");
    let err = server.hoist_err(&[
        "scale",
        "guarded",
        "--min-instances",
        "5",
        "--max-instances",
        "2",
    ]);
    assert!(
        err.contains("min_instances") && err.contains("max_instances"),
        "{err}"
    );
    let err = server.hoist_err(&["scale", "nope", "--concurrency", "5"]);
    assert!(err.contains("service 'nope' not found"), "{err}");
    let scaling = &server.service("guarded")["scaling"];
    assert_eq!(scaling["max_instances"], 3, "unchanged: {scaling}");
    assert_eq!(scaling["min_instances"], 0, "unchanged: {scaling}");
    assert_eq!(scaling["idle_freeze_ms"], 45_000, "unchanged: {scaling}");

    // The service itself is fine: a normal request starts an instance.
    assert_eq!(server.get("guarded", "/").0, 200);
    assert_eq!(server.running("guarded").len(), 1);

    // A deploy's scaling flags are checked against the service's current settings, not the
    // defaults: with idle_stop at 1h, an idle_freeze of 20m is fine, one of 2h is not.
    server.hoist_ok(&["scale", "guarded", "--idle-stop", "1h"]);
    let repo = common::git_repo(&common::probe_app(), "guarded");
    let repo = repo.to_str().expect("utf-8 path");
    let err = server.hoist_err(&["deploy", repo, "--name", "guarded", "--idle-freeze", "2h"]);
    assert!(
        err.contains("idle_freeze") && err.contains("idle_stop"),
        "{err}"
    );
    server.deploy_ok(&[repo, "--name", "guarded", "--idle-freeze", "20m"]);
    let scaling = &server.service("guarded")["scaling"];
    assert_eq!(scaling["idle_freeze_ms"], 20 * 60_000, "{scaling}");
    assert_eq!(scaling["idle_stop_ms"], 60 * 60_000, "{scaling}");
    assert_eq!(scaling["max_instances"], 3, "kept: {scaling}");
}

/// Regression test of a fixed bug: an instance moved Ready -> Freezing -> Frozen without
/// waking the pool's waiters, so a request that arrived in the Freezing window found no ready
/// instance, nothing to thaw and no reason to start one, and slept until something else
/// changed the pool (idle_stop, another request, or the 65 s hold timeout). The scaler now
/// wakes the pool once a freeze ends.
///
/// The window is made wide: many idle threads (the freezer has to stop each) in an instance
/// whose CPU share (128 MB: 7 % of a core) a busy loop beside the app uses up, so the freezer
/// waits for the cgroup's next CPU period before the threads can stop. The shortest
/// idle_freeze (100 ms) makes each try short; idle_stop stays far above the answer deadline,
/// since an idle stop would also wake the pool and hide the bug.
#[test]
fn a_request_arriving_while_its_instance_freezes_is_answered_at_once() {
    const TRIES: u64 = FREEZE_WINDOW_TRIES;
    let server = Server::start("freeze-window", &[]);
    server.deploy_probe(
        "window",
        &[
            "--memory",
            "128",
            "--start",
            "(while :; do :; done) & exec python3 app.py",
            "--idle-freeze",
            "100ms",
            "--idle-stop",
            "15m",
        ],
    );
    assert_eq!(server.get("window", "/threads?n=800").0, 200);
    for i in 0..TRIES {
        assert_eq!(server.get("window", "/").0, 200);
        // Sweep the freeze moment: idle_freeze (100 ms) plus up to a scaler tick (100 ms)
        // and the freezer's own time.
        thread::sleep(Duration::from_millis(90 + (i * 7) % 160));
        let t = Instant::now();
        let head = format!(
            "GET / HTTP/1.1\r\nHost: window.localhost:{}\r\nConnection: close\r\n\r\n",
            server.gw_port
        );
        // "At once" against the bug's tens of seconds: a generous bound for a busy machine.
        let answer = exchange(server.gw_port, head.as_bytes(), Duration::from_secs(10));
        assert!(
            answer.as_ref().is_ok_and(|a| a.status == 200),
            "try {i}: no answer within {:?} ({answer:?}); running: {:?}",
            t.elapsed(),
            server.running("window")
        );
    }
}

/// With the fix taken out, the test failed at tries 6, 7 and 6 of three runs (and at 48, or
/// not in 150, without the busy loop): forty leave a wide margin.
const FREEZE_WINDOW_TRIES: u64 = 40;

/// Whether `pid` is gone (or a zombie), or has a SIGKILL pending: what a `kill -9` of a
/// frozen process looks like on cgroup v2 and v1.
fn killed_or_pending(pid: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0)
    };
    let sigkill = 1 << (9 - 1);
    status
        .lines()
        .any(|l| l.starts_with("State:") && l.contains('Z'))
        || (field("SigPnd:") | field("ShdPnd:")) & sigkill != 0
}

/// On cgroup v1 a SIGKILL to a frozen instance stays pending until the thaw, so the instance
/// is still listed as frozen; the request that thaws it meets it dying and must be served by a
/// new instance, not get a 502.
#[test]
fn the_first_request_after_a_kill_while_frozen_is_served() {
    let server = Server::start("frozen-kill", &[]);
    server.deploy_probe("killed", &["--idle-freeze", "300ms"]);
    let first = instance_answering(&server, "killed");
    wait_for_state(&server, "killed", &first, "frozen", Duration::from_secs(10));
    let pid = server.instance_pid(&first).expect("pid file");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_until(
        "the kill has landed (pending while frozen, or the process is gone)",
        Duration::from_secs(10),
        || killed_or_pending(pid).then_some(()),
        || std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default(),
    );
    let (status, body) = server.get("killed", "/");
    assert_eq!(status, 200, "{body}");
    assert_ne!(probe_instance(&body), first);
}

/// Regression test of a fixed bug: frozen time was lost when a frozen instance was stopped
/// (`Upstream::retire` moved Frozen -> Retired without adding the open frozen stretch to
/// `frozen_ms`). An idle stop always retires a frozen instance, so the whole last frozen
/// stretch (by default 14.5 of an instance's last 15 minutes) never reached the instance
/// record or `hoist usage`.
#[test]
fn frozen_time_up_to_an_idle_stop_is_counted() {
    let server = Server::start("frozen-usage", &[]);
    server.deploy_probe("meter", FAST);
    let id = instance_answering(&server, "meter");
    wait_for_state(&server, "meter", &id, "frozen", Duration::from_secs(10));
    // Frozen from before the first sighting to after the last one: that stretch is a lower
    // bound of the frozen time, however late either sighting was.
    let frozen_at = Instant::now();
    let mut last_seen = frozen_at;
    wait_until(
        "the idle instance stops",
        Duration::from_secs(10),
        || {
            let asked = Instant::now();
            let running = server.running("meter");
            if running.iter().any(|(i, s)| i == &id && s == "frozen") {
                last_seen = asked;
            }
            running.is_empty().then_some(())
        },
        || format!("{:?}", server.running("meter")),
    );
    let frozen_for = last_seen - frozen_at;
    let view = server.service("meter");
    let record = view["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} in the instance records: {view}"))
        .clone();
    let recorded = record["usage"]["frozen_ms"].as_u64().unwrap_or(0);
    assert!(
        // (Whole milliseconds on the server's side: 2 ms for rounding.)
        recorded + 2 >= frozen_for.as_millis() as u64,
        "frozen for at least {frozen_for:?} before the stop, recorded {recorded} ms: {record}"
    );
}
