//! End-to-end: real `hoist server`, real CLI, real git, crun, SQLite and gateway. Each test
//! starts its own server; runtimes are shared through the runtime cache.

mod common;

use std::io::{BufRead, Read, Write};
use std::time::Duration;

use common::{Server, example, git_repo, http, probe_app};

const LONG: Duration = Duration::from_secs(60);

#[test]
fn flask_example_under_gunicorn_serves_through_the_gateway() {
    let server = Server::start("flask", &[]);
    let repo = git_repo(&example("flask-hello"), "flask");
    let out = server.deploy_ok(&[
        repo.to_str().unwrap(),
        "--name",
        "shop",
        "--env",
        "GREETING=hi there",
    ]);
    let url = format!("http://shop.localhost:{}/", server.gw_port);
    assert_eq!(
        out.lines().last(),
        Some(url.as_str()),
        "the URL is the last line:\n{out}"
    );
    let (status, body) = server.get("shop", "/");
    assert_eq!(status, 200);
    assert!(body.starts_with("Hello from Flask on Hoist!"), "{body}");
    let (_, info) = server.get("shop", "/info");
    assert!(
        info.contains("\"greeting\":\"hi there\""),
        "env vars reach the app: {info}"
    );
    assert!(info.contains("\"forwarded_for\":\"127.0.0.1\""), "{info}");
    assert!(
        info.contains(&format!(
            "\"forwarded_host\":\"shop.localhost:{}\"",
            server.gw_port
        )),
        "{info}"
    );
    let logs = server.hoist(&["logs", "shop"]);
    let logs = String::from_utf8_lossy(&logs.stdout);
    assert!(
        logs.contains("Booting worker"),
        "gunicorn's output is in the logs:\n{logs}"
    );
    let build = server.hoist(&["logs", "shop", "--build"]);
    let build = String::from_utf8_lossy(&build.stdout);
    assert!(
        build.contains("Successfully installed"),
        "pip's output is in the build log:\n{build}"
    );
}

#[test]
fn express_example_from_leapcell_yaml_serves() {
    let server = Server::start("express", &[]);
    let repo = git_repo(&example("express-hello"), "express");
    server.deploy_ok(&[repo.to_str().unwrap(), "--name", "web"]);
    let (status, body) = server.get("web", "/");
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("Hello from Express on Hoist!"), "{body}");
}

#[test]
fn fastapi_bound_to_loopback_is_reachable() {
    let server = Server::start("fastapi", &[]);
    let repo = git_repo(&example("fastapi-hello"), "fastapi");
    server.deploy_ok(&[repo.to_str().unwrap(), "--name", "api"]);
    let (status, body) = server.get("api", "/");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Hello from FastAPI on Hoist"), "{body}");
}

#[test]
fn two_services_listen_on_the_same_port_and_unknown_hosts_get_404() {
    let server = Server::start("twoports", &[]);
    let repo = git_repo(&probe_app(), "twoports");
    let path = repo.to_str().unwrap();
    server.deploy_ok(&[path, "--name", "one", "--env", "VERSION=one"]);
    server.deploy_ok(&[path, "--name", "two", "--env", "VERSION=two"]);
    assert!(server.get("one", "/").1.starts_with("probe one"));
    assert!(server.get("two", "/").1.starts_with("probe two"));
    let env = server.get("two", "/env").1;
    assert!(
        env.contains("\"PORT\": \"8080\""),
        "both listen on 8080: {env}"
    );
    let (status, body) = server.get("nothing-here", "/");
    assert_eq!(status, 404);
    assert!(
        body.contains(&format!("nothing-here.localhost:{}", server.gw_port)),
        "{body}"
    );
    // Request bodies stream through, protocol upgrades pass both ways.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.gw_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let host = format!("one.localhost:{}", server.gw_port);
    let body = "x".repeat(3 * 1024 * 1024) + "the-end!";
    write!(s, "POST /echo HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(
        resp.contains(&format!("received {} bytes, last the-end!", body.len())),
        "{resp}"
    );

    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.gw_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /upgrade HTTP/1.1\r\nHost: {host}\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n"
    )
    .unwrap();
    let mut reader = std::io::BufReader::new(s.try_clone().unwrap());
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    let mut line = String::new();
    while line != "\r\n" {
        line.clear();
        // The socket's read timeout bounds each read; an early end is a failure, not a loop.
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "the upgrade's head was cut"
        );
    }
    s.write_all(b"ping over the upgraded connection\n").unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "echo: ping over the upgraded connection\n");

    let headers = server.get("two", "/headers").1;
    assert!(
        headers.contains("\"x-forwarded-proto\": \"http\""),
        "{headers}"
    );

    let ls = String::from_utf8_lossy(&server.hoist(&["ls"]).stdout).to_string();
    assert!(ls.contains("one") && ls.contains("two"), "{ls}");
    assert!(server.hoist(&["delete", "one", "--yes"]).status.success());
    assert_eq!(
        server.get("one", "/").0,
        404,
        "a deleted service has no route"
    );
    assert!(server.get("two", "/").1.starts_with("probe two"));
}

#[test]
fn instances_are_sandboxed_and_an_oom_kill_only_restarts_that_instance() {
    // A service on the host (a database, say), opened to instances with --host-ports.
    let host_service = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = host_service.local_addr().unwrap().port();
    let server = Server::start("sandbox", &["--host-ports", &port.to_string()]);
    let repo = git_repo(&probe_app(), "sandbox");
    let path = repo.to_str().unwrap();
    server.deploy_ok(&[path, "--name", "boxed", "--memory", "128"]);
    server.deploy_ok(&[path, "--name", "neighbour"]);

    for target in ["/app/x", "/etc/x", "/usr/x", "/x"] {
        let body = server.get("boxed", &format!("/write?path={target}")).1;
        assert!(body.contains("Read-only file system"), "{target}: {body}");
    }
    assert_eq!(server.get("boxed", "/write?path=/tmp/x").1, "written\n");

    let pids: Vec<u32> =
        serde_json::from_str(server.get("boxed", "/ps").1.trim()).expect("pid list");
    assert!(
        pids.contains(&1),
        "the instance has its own PID namespace (its init is PID 1): {pids:?}"
    );
    assert!(
        pids.len() <= 3,
        "only the instance's processes are visible: {pids:?}"
    );

    let userns = server.get("boxed", "/newuserns").1;
    assert_eq!(
        userns, "refused: errno 1\n",
        "no new namespaces from inside"
    );

    let resolved = server.get("boxed", "/resolve?host=host.hoist.internal").1;
    assert!(
        resolved.trim().starts_with("10.213."),
        "host.hoist.internal resolves: {resolved}"
    );

    // The opened host service is reachable by its stable name.
    let greeter = std::thread::spawn(move || {
        if let Ok((mut conn, _)) = host_service.accept() {
            let _ = conn.write_all(b"hello from the host\n");
        }
    });
    let reply = server
        .get(
            "boxed",
            &format!("/connect?host=host.hoist.internal&port={port}"),
        )
        .1;
    assert_eq!(reply, "hello from the host\n");
    let _ = greeter.join();

    // Inbound traffic reaches the app only through the gateway: the probe listens on
    // 0.0.0.0:8080, yet its own address is closed to the host, over IPv4 and IPv6.
    let instance = common::probe_instance(&server.get("boxed", "/").1);
    let hosts = std::fs::read_to_string(
        server
            .data
            .join("run/bundles")
            .join(&instance)
            .join("hosts"),
    )
    .expect("the instance's /etc/hosts");
    // The instance's own line names it by its hostname, the service's name.
    let guest: std::net::IpAddr = hosts
        .lines()
        .find_map(|l| l.strip_suffix("\tboxed"))
        .unwrap_or_else(|| panic!("the instance's address in {hosts}"))
        .parse()
        .expect("an address");
    let direct =
        std::net::TcpStream::connect_timeout(&(guest, 8080).into(), Duration::from_secs(1));
    assert!(direct.is_err(), "{guest}:8080 answered the host directly");
    let ip = |args: &[&str]| -> String {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .expect("run ip");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let host_side = hosts
        .lines()
        .find_map(|l| l.strip_suffix("\thost.hoist.internal"))
        .unwrap_or_else(|| panic!("the host's address in {hosts}"));
    let link = ip(&["-o", "-4", "addr", "show", "to", host_side]);
    let link = link
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("the link with {host_side}: {link}"));
    assert_eq!(
        ip(&["-o", "-6", "addr", "show", "dev", link]),
        "",
        "IPv6 on {link}"
    );

    let before = server.get("boxed", "/").1;
    // The instance is killed mid-request: the gateway answers for it.
    let oom = server.raw_get("boxed", "/alloc?mb=400", "", LONG);
    assert_eq!(
        oom.status, 502,
        "allocating past the memory limit kills the instance: {oom:?}"
    );
    assert!(oom.body.contains("did not answer"), "{}", oom.body);
    let after = server.wait_for("boxed", "/", "probe", LONG);
    assert_ne!(before, after, "a new instance replaced the killed one");
    assert!(
        server.status("boxed").contains("out of memory"),
        "{}",
        server.status("boxed")
    );
    assert!(
        server.get("neighbour", "/").1.starts_with("probe"),
        "the neighbour is untouched"
    );
}

#[test]
fn bad_input_gets_specific_errors_and_the_live_deployment_keeps_serving() {
    let server = Server::start("bad", &["--start-timeout", "3s"]);
    let repo = git_repo(&probe_app(), "bad");
    let path = repo.to_str().unwrap();
    server.deploy_ok(&[path, "--name", "svc", "--env", "VERSION=good"]);
    let serving = || server.get("svc", "/").1;
    assert!(serving().starts_with("probe good"));

    let missing = server.deploy_err(&["/nonexistent/app", "--name", "svc"]);
    assert!(
        missing.contains("source /nonexistent/app does not exist"),
        "{missing}"
    );
    let plain = common::scratch("not-a-repo");
    std::fs::write(plain.join("app.py"), "print(1)").unwrap();
    let not_repo = server.deploy_err(&[plain.to_str().unwrap(), "--name", "svc"]);
    assert!(not_repo.contains("is not a git repository"), "{not_repo}");
    let branch = server.deploy_err(&[path, "--name", "svc", "--branch", "nope"]);
    assert!(branch.contains("branch 'nope' does not exist"), "{branch}");
    let name = server.deploy_err(&[path, "--name", "Bad_Name"]);
    assert!(name.contains("invalid name 'Bad_Name'"), "{name}");
    let memory = server.deploy_err(&[path, "--name", "svc", "--memory", "64"]);
    assert!(memory.contains("invalid memory"), "{memory}");
    let port = server.deploy_err(&[path, "--name", "svc", "--port", "70000"]);
    assert!(port.contains("invalid port"), "{port}");
    assert!(serving().starts_with("probe good"));

    let build = server.deploy_err(&[path, "--name", "svc", "--build", "echo compiling; exit 3"]);
    assert!(
        build.contains("build command failed with exit code 3"),
        "{build}"
    );
    assert!(serving().starts_with("probe good"));

    let exits = server.deploy_err(&[path, "--name", "svc", "--start", "echo giving up; exit 4"]);
    assert!(
        exits.contains("exited (exit code 4)") && exits.contains("giving up"),
        "{exits}"
    );
    assert!(serving().starts_with("probe good"));

    let silent = server.deploy_err(&[path, "--name", "svc", "--start", "sleep 600"]);
    assert!(
        silent.contains("did not answer HTTP on port 8080 within 3s"),
        "{silent}"
    );
    assert!(serving().starts_with("probe good"));

    // Each deploy that got as far as a deployment record is recorded as failed; the good
    // one is still the live one.
    let states: Vec<(String, String)> = server.service("svc")["deployments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["state"].as_str().unwrap_or_default().to_string(),
                d["failure_reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let failed = states.iter().filter(|(s, _)| s == "failed").count();
    // Missing source, not a repository, unknown branch, build, start exits, start silent;
    // a bad name, memory or port is refused before any deployment exists.
    const FAILED_DEPLOYS: usize = 6;
    assert_eq!(failed, FAILED_DEPLOYS, "failures are recorded: {states:#?}");
    assert_eq!(
        states.iter().filter(|(s, _)| s == "live").count(),
        1,
        "{states:#?}"
    );

    // A crash later on: the instance comes back without a redeploy.
    let before = serving();
    let _ = server.get("svc", "/crash");
    let after = server.wait_for("svc", "/", "probe good", LONG);
    assert_ne!(before, after, "served by a replacement instance");
    let logs = String::from_utf8_lossy(&server.hoist(&["logs", "svc"]).stdout).to_string();
    assert!(
        logs.contains("crashing on request") && logs.contains("crashed: exit code 3"),
        "{logs}"
    );
}

#[test]
fn a_killed_server_restarts_with_its_state_and_serves_again() {
    let mut server = Server::start("restart", &[]);
    let repo = git_repo(&probe_app(), "restart");
    server.deploy_ok(&[
        repo.to_str().unwrap(),
        "--name",
        "durable",
        "--env",
        "VERSION=kept",
    ]);
    assert!(server.get("durable", "/").1.starts_with("probe kept"));
    let crun_state = server.data.join("run/crun");
    let containers = || -> Vec<String> {
        std::fs::read_dir(&crun_state)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = containers();
    assert!(!before.is_empty());
    server.restart();
    server.wait_for("durable", "/", "probe kept", LONG);
    let status = server.status("durable");
    assert!(status.contains("live"), "{status}");
    let after = containers();
    assert!(
        before.iter().all(|c| !after.contains(c)),
        "containers from before the kill are gone: {before:?} {after:?}"
    );
    assert!(
        !after.is_empty() && after.len() <= 2,
        "one instance and at most one warm standby: {after:?}"
    );

    // A new commit deploys over the restored one.
    std::fs::write(
        repo.join("hoist.toml"),
        "runtime = \"python\"\nstart = \"python3 app.py\"\nmemory = 192\n",
    )
    .unwrap();
    common::commit_all(&repo, "two");
    server.deploy_ok(&[
        repo.to_str().unwrap(),
        "--name",
        "durable",
        "--env",
        "VERSION=next",
    ]);
    assert!(server.get("durable", "/").1.starts_with("probe next"));
}

#[test]
fn the_api_needs_a_token_and_describes_itself() {
    let server = Server::start("api", &[]);
    let (status, body) = http(server.api_port, "127.0.0.1", "/v1/services").unwrap();
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("missing bearer token"), "{body}");
    let (status, doc) = http(server.api_port, "127.0.0.1", "/openapi.json").unwrap();
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&doc).expect("OpenAPI JSON");
    assert!(doc["paths"]["/v1/deployments"]["post"].is_object());
    let token_file = server.data.join("admin-token");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&token_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let out = server.hoist(&["status", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("service 'nope' not found"));
    let runtimes = String::from_utf8_lossy(&server.hoist(&["runtimes"]).stdout).to_string();
    for r in ["python", "node", "go", "rust", "debian"] {
        assert!(runtimes.contains(r), "{runtimes}");
    }
}

/// The gateway's threads: its workers (`gateway-N`) and its sender threads (`gateway-send`,
/// which send large static bodies).
#[derive(Debug, Clone, Copy, PartialEq)]
enum GatewayThreads {
    Workers,
    Senders,
}

/// The nice value of each of the server's gateway threads of `kind`.
fn gateway_thread_nice(pid: u32, kind: GatewayThreads) -> Vec<i64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the server's threads");
    let mut nice = Vec::new();
    for task in tasks.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let comm = comm.trim_end();
        let Some(rest) = comm.strip_prefix("gateway-") else {
            continue;
        };
        let is = if rest == "send" {
            GatewayThreads::Senders
        } else if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
            GatewayThreads::Workers
        } else {
            continue;
        };
        if is != kind {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).expect("thread stat");
        // Fields after the command name start at field 3 (state); nice is field 19.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        nice.push(fields[16].parse().expect("nice value"));
    }
    nice
}

/// The gateway's threads are started by a task after the API answers, and each sets its own
/// priority once it runs: wait (bounded) until there are `count` of `kind`, all at `nice`,
/// before comparing.
fn settled_gateway_thread_nice(
    pid: u32,
    kind: GatewayThreads,
    count: usize,
    nice: i64,
) -> Vec<i64> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let seen = gateway_thread_nice(pid, kind);
        if (seen.len() == count && seen.iter().all(|n| *n == nice))
            || std::time::Instant::now() > deadline
        {
            return seen;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn gateway_threads_run_at_the_configured_priority_and_bad_values_are_refused() {
    // The default is one gateway thread per two cores (at least one).
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let workers = (cores / 2).max(1);
    let default = Server::start("nice-default", &[]);
    let pid = default.pid().expect("server running");
    assert_eq!(
        settled_gateway_thread_nice(pid, GatewayThreads::Workers, workers, -5),
        vec![-5; workers],
        "default --gateway-nice on {workers} gateway thread(s) for {cores} cores"
    );
    // One sender thread per core, at the workers' priority.
    assert_eq!(
        settled_gateway_thread_nice(pid, GatewayThreads::Senders, cores, -5),
        vec![-5; cores],
        "sender threads for {cores} cores"
    );

    let chosen = Server::start(
        "nice-chosen",
        &["--gateway-nice", "-2", "--gateway-workers", "3"],
    );
    let pid = chosen.pid().expect("server running");
    assert_eq!(
        settled_gateway_thread_nice(pid, GatewayThreads::Workers, 3, -2),
        vec![-2, -2, -2]
    );
    assert_eq!(
        settled_gateway_thread_nice(pid, GatewayThreads::Senders, cores, -2),
        vec![-2; cores]
    );
    // The rest of the server keeps its own priority.
    let main: Vec<String> = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap()
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(main[16], "0");

    let (code, stderr) = common::refused_server(&["--gateway-nice", "40"]);
    assert!(code.is_some_and(|c| c != 0), "exit {code:?}: {stderr}");
    assert!(
        stderr.contains("--gateway-nice") && stderr.contains("-20..=19"),
        "{stderr}"
    );
}

#[test]
fn a_request_past_the_request_timeout_gets_504_and_a_stream_still_running_is_cut() {
    let server = Server::start("timeout", &["--request-timeout", "2s"]);
    server.deploy_probe("slow", &[]);

    // The app answers after 4 s: a 504 means the gateway gave up first; not before its 2 s.
    let started = std::time::Instant::now();
    let a = server.raw_get("slow", "/sleep?ms=4000", "", Duration::from_secs(10));
    let took = started.elapsed();
    assert_eq!(a.status, 504, "{a:?}");
    assert!(a.body.contains("did not answer within 2s."), "{}", a.body);
    assert!(took >= Duration::from_millis(1900), "504 after {took:?}");

    // Headers in time, then a line every 250 ms for 5 s: cut at the 2 s mark, with no
    // end-of-body marker, so the client knows the response is incomplete.
    let started = std::time::Instant::now();
    let a = server.raw_get("slow", "/trickle?n=20&ms=250", "", Duration::from_secs(10));
    let took = started.elapsed();
    assert_eq!(a.status, 200, "{a:?}");
    // Cut: some ticks came (the headers were in time), the last did not. Not before the
    // 2 s mark. (How late the cut comes shows in the ticks, not in a wall-clock bound.)
    assert!(a.body.contains("tick 3"), "{a:?}");
    assert!(!a.body.contains("tick 19"), "{a:?}");
    assert!(took >= Duration::from_millis(1900), "cut after {took:?}");
    // The instance is free again, and serves.
    let view = server.service("slow");
    assert_eq!(view["running"][0]["in_flight"], 0, "{view}");
    assert_eq!(server.get("slow", "/").0, 200);

    let (code, err) = common::refused_server(&["--request-timeout", "soon"]);
    assert!(code.is_some_and(|c| c != 0), "exit {code:?}: {err}");
    assert!(err.contains("--request-timeout"), "{err}");
    let (code, err) = common::refused_server(&["--request-timeout", "0s"]);
    assert!(code.is_some_and(|c| c != 0), "exit {code:?}: {err}");
    assert!(err.contains("must be more than zero"), "{err}");
}
