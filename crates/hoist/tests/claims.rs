//! End-to-end checks of README claims the other suites leave unchecked: billing figures of a
//! known workload, a graceful stop's refusals, cap, clean-up and stored last lines, image
//! clean-up at its default, `--max-builds 1`, the rate of `http_5xx` events, OOM events,
//! and the values of `/metrics` gauges. Request limits at their exact boundaries, WebSockets
//! past the request timeout, `--grep`'s cap and the master key are in `limits.rs`.
//!
//! Tests whose server settings agree share one server (`shared_server()`); each deploys its own
//! service of the claims app (tests/apps/claims). Every wait is bounded, only loopback is used.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use common::{
    Server, claims_app, deploy_claims, exchange, git_repo, metric, shared_server, unique,
    utc_day_now, wait_until,
};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The seconds of `hoist`'s duration text (`850ms`, `2.4s`, `3m12s`).
fn seconds_of(text: &str) -> f64 {
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse::<f64>().unwrap_or(f64::NAN) / 1000.0;
    }
    if let Some((m, s)) = text.split_once('m')
        && let Some(s) = s.strip_suffix('s')
    {
        return m.parse::<f64>().unwrap_or(f64::NAN) * 60.0 + s.parse::<f64>().unwrap_or(f64::NAN);
    }
    text.strip_suffix('s')
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN)
}

fn newest_deployment(server: &Server, name: &str) -> String {
    server.service(name)["deployments"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no deployment of {name}"))
        .to_string()
}

/// A GET on the gateway with a read timeout of `timeout` (the harness's `get` gives 30 s).
fn get_within(port: u16, service: &str, path: &str, timeout: Duration) -> std::io::Result<u16> {
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {service}.localhost:{port}\r\nConnection: close\r\n\r\n"
    );
    exchange(port, head.as_bytes(), timeout).map(|a| a.status)
}

#[test]
fn usage_bills_active_time_cpu_time_and_gb_seconds_of_a_known_workload() {
    let server = shared_server();
    // 1769 MB: a whole core, so a request's CPU time is close to its duration.
    deploy_claims(&server, "bill", &[]);
    const N: u64 = 4;
    const BUSY_MS: u64 = 600;
    let mut sum = Duration::ZERO;
    // One at a time: active time is then the sum of the request durations.
    for _ in 0..N {
        let t = Instant::now();
        let (status, body) = server.get("bill", &format!("/busy?ms={BUSY_MS}"));
        sum += t.elapsed();
        assert_eq!(status, 200, "{body}");
    }
    let sum_ms = sum.as_millis() as u64;
    // A stop records the instance's usage at once (requests are counted as they begin, so a
    // periodic flush during the last one would show it only in part).
    let id = server.running("bill")[0].0.clone();
    server.hoist_ok(&["stop", "bill"]);
    wait_until(
        "the instance's usage is recorded as it stops",
        Duration::from_secs(20),
        || {
            server.service("bill")["instances"]
                .as_array()?
                .iter()
                .any(|i| i["id"] == id.as_str() && i["state"] == "stopped")
                .then_some(())
        },
        || server.service("bill")["instances"].to_string(),
    );
    let day = utc_day_now();
    let today = wait_until(
        "today's usage has the requests",
        Duration::from_secs(20),
        || {
            let (_, days) = server.api("GET", "/v1/services/bill/usage?days=7", None);
            let today = days
                .as_array()?
                .iter()
                .find(|d| d["day"] == day.as_str())?
                .clone();
            (today["requests"].as_u64()? >= N).then_some(today)
        },
        || {
            server
                .api("GET", "/v1/services/bill/usage", None)
                .1
                .to_string()
        },
    );
    eprintln!("{N} requests of {BUSY_MS} ms CPU took {sum_ms} ms in all; usage: {today}");
    assert_eq!(today["requests"], N, "only the test's requests: {today}");
    let active = today["active_ms"].as_u64().unwrap_or(0);
    // At least the CPU each burnt (it cannot take less wall time), at most what the client
    // waited plus a little for the gateway's bookkeeping.
    assert!(
        active >= N * BUSY_MS && active <= sum_ms + 250,
        "active {active} ms; requests took {sum_ms} ms, burnt {} ms CPU: {today}",
        N * BUSY_MS
    );
    let cpu = today["cpu_ms"].as_u64().unwrap_or(0);
    // The busy loops, plus the app's boot and its serving (well under 2 s on a whole core).
    assert!(
        (N * BUSY_MS - 20..=N * BUSY_MS + 2000).contains(&cpu),
        "cpu {cpu} ms for {} ms of busy loops: {today}",
        N * BUSY_MS
    );
    // GB-seconds = active seconds × memory GB (1769 MB of 1024 MB a GB).
    let gb_s = today["gb_seconds"].as_f64().unwrap_or(0.0);
    let expected = active as f64 / 1000.0 * 1769.0 / 1024.0;
    assert!(
        (gb_s - expected).abs() <= expected * 0.005 + 0.002,
        "gb_seconds {gb_s}, expected {expected:.3} (active {active} ms at 1769 MB): {today}"
    );

    // The CLI shows the same figures for the day.
    let cli = server.hoist_ok(&["usage", "bill"]);
    let row: Vec<&str> = cli
        .lines()
        .find(|l| l.starts_with(&day))
        .unwrap_or_else(|| panic!("a row for {day}:\n{cli}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[1], N.to_string(), "{cli}");
    let (cli_active, cli_cpu) = (seconds_of(row[2]), seconds_of(row[4]));
    assert!(
        (cli_active - active as f64 / 1000.0).abs() <= 0.06,
        "ACTIVE {} vs {active} ms:\n{cli}",
        row[2]
    );
    assert!(
        (cli_cpu - cpu as f64 / 1000.0).abs() <= 0.06,
        "CPU {} vs {cpu} ms:\n{cli}",
        row[4]
    );
    let cli_gb: f64 = row[5].parse().unwrap_or(f64::NAN);
    assert!((cli_gb - gb_s).abs() <= 0.0011, "GB-SECONDS:\n{cli}");
}

#[test]
fn sigterm_refuses_new_connections_cuts_requests_at_30_s_cleans_up_and_stores_the_last_lines() {
    let mut server = Server::start("sigterm-cap", &[]);
    // Under 8 characters: a longer env value printed by the app is masked in the log. The
    // server and its data dir are this test's own, so the word needs no uniqueness.
    let bye = "drained";
    let said = unique("said");
    deploy_claims(&server, "drain", &["--env", &format!("TERM_WORD={bye}")]);
    let run = std::fs::canonicalize(server.data.join("run")).expect("the run dir");
    let port = server.gw_port;

    // One request longer than the 30 s cap, one that ends 5 s after it arrives (and prints a
    // line the moment it does).
    let long = thread::spawn(move || {
        let t = Instant::now();
        let status = get_within(port, "drain", "/sleep?ms=45000", Duration::from_secs(90));
        (status, t)
    });
    let short_path = format!("/say?text={said}&ms=5000");
    let short =
        thread::spawn(move || get_within(port, "drain", &short_path, Duration::from_secs(60)));
    let in_flight = r#"hoist_requests_in_flight{service="drain"}"#;
    wait_until(
        "both requests are in flight",
        Duration::from_secs(10),
        || (metric(&server.metrics_text(), in_flight) == Some(2.0)).then_some(()),
        || format!("{:?}", metric(&server.metrics_text(), in_flight)),
    );
    let (ids, netns) = server.sandbox_ids();
    assert!(!ids.is_empty(), "sandboxes exist before the stop");

    let pid = server.pid().expect("the server runs").to_string();
    let term = Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|s| s.success())
    );
    wait_until(
        "a new connection is refused",
        Duration::from_secs(5),
        || {
            matches!(
                TcpStream::connect(("127.0.0.1", port)),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
            )
            .then_some(())
        },
        || "the gateway still accepts".to_string(),
    );
    assert!(
        !short.is_finished(),
        "refused while a request was still in flight"
    );
    let short = short.join().expect("short request thread");
    assert!(
        matches!(short, Ok(200)),
        "the request in flight finished: {short:?}"
    );

    // The server ends itself (the harness's SIGTERM here is a second, ignored one).
    let exit = server.terminate(Duration::from_secs(60));
    let exited_after = term.elapsed();
    eprintln!("the server exited {exited_after:?} after SIGTERM: {exit:?}");
    assert!(exit.is_some_and(|s| s.success()), "exit: {exit:?}");
    assert!(
        exited_after < Duration::from_secs(42),
        "exited {exited_after:?} after SIGTERM (the cap is 30 s)"
    );
    let (long, sent) = long.join().expect("long request thread");
    let cut_after = sent.elapsed();
    assert!(
        !matches!(long, Ok(200)),
        "the 45 s request was cut, not answered: {long:?}"
    );
    assert!(
        cut_after >= Duration::from_secs(25),
        "the request was let run until the cap, not cut at once: {long:?} after {cut_after:?}"
    );
    let left = common::host_leftovers(&run, &ids, &netns);
    assert!(left.is_empty(), "left behind after SIGTERM: {left:?}");

    server.spawn();
    for word in [&said, &format!("terminating {bye}")] {
        let logs = server.hoist_ok(&["logs", "drain", "--grep", word]);
        assert!(
            logs.contains(word.as_str()),
            "{word:?} is stored:\n{}",
            server.hoist_ok(&["logs", "drain", "--tail", "20"])
        );
    }
}

/// 1 MiB that no other deploy has (so each deploy makes its own image of a known size).
fn ballast(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn du(path: &Path) -> u64 {
    let out = std::process::Command::new("du")
        .args(["-sB1"])
        .arg(path)
        .output()
        .expect("du");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Also a regression test: the deploy's stream ended once the pipeline was over, sending only
/// the lines already stored, so the pipeline's last line (what clean-up freed, written just
/// before) was missing from `hoist deploy`'s output whenever it was still queued for the
/// store (seen under load; `hoist logs NAME --build` had it).
#[test]
fn the_last_10_images_are_kept_by_default_and_the_11th_oldest_is_removed_with_its_space() {
    let server = shared_server();
    let repo = git_repo(&claims_app(), &format!("gc10-{}", server.api_port));
    let path = repo.to_str().unwrap();
    let mut images: Vec<PathBuf> = Vec::new();
    let mut oldest_size = 0;
    let mut last_output = String::new();
    for k in 1..=11u64 {
        std::fs::write(repo.join("ballast.bin"), ballast(k)).unwrap();
        common::git(&repo, &["add", "-A"]);
        common::commit_all(&repo, &format!("ballast {k}"));
        if k == 11 {
            oldest_size = du(&images[0]);
        }
        last_output = server.deploy_ok(&[path, "--name", "gc10", "--memory", "256"]);
        let id = newest_deployment(&server, "gc10");
        let image = server.deployment(&id)["image"]
            .as_str()
            .unwrap_or_else(|| panic!("{id} has an image"))
            .replace(':', "-");
        images.push(server.data.join("layers").join(image));
        if k <= 10 {
            for (i, p) in images.iter().enumerate() {
                assert!(p.is_dir(), "after deploy {k}, image {} is kept", i + 1);
            }
        }
    }
    wait_until(
        "the 11th-oldest image's files are removed",
        Duration::from_secs(10),
        || (!images[0].exists()).then_some(()),
        || images[0].display().to_string(),
    );
    for (i, p) in images.iter().enumerate().skip(1) {
        assert!(p.is_dir(), "image {} of the last 10 is kept", i + 1);
    }
    // What it says it freed is what the image took: about 1 MB.
    let said = |text: &str| {
        text.lines()
            .find(|l| l.contains("removed 1 old image(s), freeing"))
            .map(str::to_string)
    };
    let line = wait_until(
        "the build log says what was freed",
        Duration::from_secs(10),
        || said(&server.hoist_ok(&["logs", "gc10", "--build"])),
        || server.hoist_ok(&["logs", "gc10", "--build", "--tail", "5"]),
    );
    assert!(line.contains("(keeping the last 10)"), "{line}");
    let freed_mb: f64 = line
        .split("freeing ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a figure in {line}"));
    let measured_mb = oldest_size as f64 / 1e6;
    assert!(
        (freed_mb - measured_mb).abs() <= 0.15 && freed_mb >= 1.0,
        "said {freed_mb} MB freed; the image took {measured_mb:.2} MB: {line}"
    );
    assert!(
        said(&last_output).is_some(),
        "the 11th deploy's own output says what it freed:\n{last_output}"
    );
}

#[test]
fn with_max_builds_1_a_second_deploy_waits_while_the_first_builds() {
    let server = Server::start("one-build", &["--max-builds", "1"]);
    let repo = git_repo(&claims_app(), "one-build");
    let path = repo.to_str().unwrap();
    let first = server.submit(&[path, "--name", "first", "--build", "sleep 4"]);
    wait_until(
        "the first deploy builds",
        Duration::from_secs(60),
        || (server.deployment(&first)["state"] == "building").then_some(()),
        || server.deployment(&first).to_string(),
    );
    let second = server.submit(&[path, "--name", "second", "--build", "sleep 2"]);
    let (mut most_building, mut saw_wait) = (0, false);
    server.follow_until_live(&[&first, &second], Duration::from_secs(120), |states| {
        let building = states.iter().filter(|s| *s == "building").count();
        most_building = most_building.max(building);
        saw_wait |= states[0] == "building" && states[1] == "queued";
    });
    assert_eq!(most_building, 1, "one build at a time");
    assert!(
        saw_wait,
        "the second deploy was queued while the first built"
    );
}

/// The count of further 5xx answers an `http_5xx` event's detail reports.
fn more_in(detail: &str) -> u64 {
    detail
        .split_once(" (")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_burst_of_5xx_answers_is_one_event_a_second_counting_the_rest() {
    let server = shared_server();
    deploy_claims(&server, "errs", &[]);
    const N: usize = 50;
    let barrier = Barrier::new(N);
    let began = now_ms();
    let statuses: Vec<u16> = thread::scope(|s| {
        let handles: Vec<_> = (0..N)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    server.get("errs", "/status?code=500").0
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ended = now_ms();
    assert!(statuses.iter().all(|s| *s == 500), "{statuses:?}");
    eprintln!("a burst of {N} 500s in {} ms", ended - began);
    // What was held back is counted in the next event: one more 500, in a later second.
    wait_until(
        "a second after the burst",
        Duration::from_secs(3),
        || (now_ms() / 1000 > ended / 1000).then_some(()),
        String::new,
    );
    assert_eq!(server.get("errs", "/status?code=500").0, 500);
    let events = || {
        let (_, e) = server.api("GET", "/v1/services/errs/events?limit=1000", None);
        e.as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["kind"] == "http_5xx")
            .cloned()
            .collect::<Vec<_>>()
    };
    let counted = |events: &[serde_json::Value]| -> u64 {
        events
            .iter()
            .map(|e| 1 + more_in(e["detail"].as_str().unwrap_or_default()))
            .sum()
    };
    let found = wait_until(
        "the events account for every 500",
        Duration::from_secs(10),
        || {
            let e = events();
            (counted(&e) > N as u64).then_some(e)
        },
        || serde_json::Value::from(events()).to_string(),
    );
    assert_eq!(
        counted(&found),
        N as u64 + 1,
        "{}",
        serde_json::Value::from(found.clone())
    );
    // One a second: the seconds the burst touched, plus the trailing one.
    let seconds = (ended / 1000 - began / 1000 + 1) as usize;
    assert!(
        found.len() <= seconds + 1,
        "{} events for a burst over {seconds} s: {}",
        found.len(),
        serde_json::Value::from(found.clone())
    );
    let listed = server.hoist_ok(&["events", "errs"]);
    assert!(
        listed.contains("http_5xx") && listed.contains("more 5xx answers since the last event"),
        "{listed}"
    );
}

#[test]
fn an_oom_kill_is_an_event_of_its_own_kind() {
    let server = shared_server();
    deploy_claims(&server, "hog", &["--memory", "128"]);
    let status = get_within(
        server.gw_port,
        "hog",
        "/alloc?mb=400",
        Duration::from_secs(60),
    );
    assert!(!matches!(status, Ok(200)), "400 MB in 128 MB: {status:?}");
    let listed = wait_until(
        "hoist events shows the OOM kill",
        Duration::from_secs(20),
        || {
            let out = server.hoist_ok(&["events", "hog"]);
            out.lines()
                .any(|l| l.split_whitespace().any(|w| w == "oom"))
                .then_some(out)
        },
        || server.hoist_ok(&["events", "hog"]),
    );
    let (_, events) = server.api("GET", "/v1/services/hog/events", None);
    let kinds: Vec<&str> = events
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"oom") && !kinds.contains(&"crash"),
        "an OOM kill, not a crash: {kinds:?}\n{listed}"
    );
}

#[test]
fn metrics_gauges_show_requests_in_flight_and_waiting_instance_cpu_and_the_data_dir_size() {
    let server = shared_server();
    deploy_claims(&server, "gauge", &["--env", "START_DELAY_MS=5000"]);
    let in_flight = r#"hoist_requests_in_flight{service="gauge"}"#;
    let waiting = r#"hoist_requests_waiting{service="gauge"}"#;
    let gauges = || {
        let text = server.metrics_text();
        (metric(&text, in_flight), metric(&text, waiting))
    };
    assert_eq!(gauges(), (Some(0.0), Some(0.0)));

    // A request held by the app: one in flight, none waiting.
    let port = server.gw_port;
    let held =
        thread::spawn(move || get_within(port, "gauge", "/sleep?ms=5000", Duration::from_secs(60)));
    wait_until(
        "one request in flight",
        Duration::from_secs(4),
        || (gauges() == (Some(1.0), Some(0.0))).then_some(()),
        || format!("{:?}", gauges()),
    );
    assert!(matches!(held.join().unwrap(), Ok(200)));
    wait_until(
        "none in flight once answered",
        Duration::from_secs(3),
        || (gauges() == (Some(0.0), Some(0.0))).then_some(()),
        || format!("{:?}", gauges()),
    );

    // CPU the instance burnt shows against it.
    assert_eq!(server.get("gauge", "/busy?ms=500").0, 200);
    let id = server.running("gauge")[0].0.clone();
    let text = server.metrics_text();
    let cpu = text
        .lines()
        .find(|l| {
            l.starts_with("hoist_instance_cpu_seconds") && l.contains(&format!("instance=\"{id}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("CPU of {id} in:\n{text}"));
    assert!(
        (0.5..30.0).contains(&cpu),
        "{id} burnt 0.5 s of CPU; shown {cpu}"
    );

    // From zero, a request waits for the (5 s) start: one waiting, none in flight.
    server.hoist_ok(&["stop", "gauge"]);
    let cold = thread::spawn(move || get_within(port, "gauge", "/", Duration::from_secs(60)));
    wait_until(
        "one request waiting",
        Duration::from_secs(4),
        || (gauges() == (Some(0.0), Some(1.0))).then_some(()),
        || format!("{:?}", gauges()),
    );
    assert!(matches!(cold.join().unwrap(), Ok(200)));
    wait_until(
        "none waiting once answered",
        Duration::from_secs(3),
        || (gauges() == (Some(0.0), Some(0.0))).then_some(()),
        || format!("{:?}", gauges()),
    );

    // The data dir holds the database, at least.
    let db = std::fs::metadata(server.data.join("hoist.db"))
        .expect("hoist.db")
        .len();
    let size = wait_until(
        "the data dir's size is measured",
        Duration::from_secs(10),
        || metric(&server.metrics_text(), "hoist_data_dir_bytes "),
        || "no hoist_data_dir_bytes".to_string(),
    );
    assert!(
        size >= db as f64,
        "data dir {size} bytes, hoist.db alone {db}"
    );
}
