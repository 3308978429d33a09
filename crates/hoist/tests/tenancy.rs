//! End-to-end tests of what one service (one tenant) can reach of another's and of the host:
//! build caches are the service's own, and the host's ports are closed to instances and builds
//! except the ones the operator opens with `--host-ports`.
//!
//! Each test runs its own server (free ports, own data dir); the only network used is the
//! host's own addresses, as seen from the sandboxes this server made.

mod common;

use std::net::TcpListener;
use std::path::Path;

use common::{Server, git_repo, probe_app, reach_app};

/// Every path under `dir` whose file name is `name` (symlinks are not followed).
fn find_named(dir: &Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name() == name {
                found.push(path.clone());
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    found
}

/// The build step's verdict on the marker, from the service's latest build log.
fn saw_marker(server: &Server, service: &str) -> String {
    let log = server.hoist_ok(&["logs", service, "--build"]);
    log.lines()
        .find_map(|l| {
            l.split_once("cache check: ")
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no cache check in the build log of {service}:\n{log}"))
}

#[test]
fn build_caches_are_the_services_own_and_go_with_it() {
    let server = Server::start("caches", &[]);
    let repo = git_repo(&probe_app(), "caches");
    let path = repo.to_str().unwrap();
    const MARKER: &str = "tenancy-marker-from-a";
    let check = format!(
        "if [ -e /root/.cache/pip/{MARKER} ]; then echo 'cache check: marker present'; \
         else echo 'cache check: no marker'; fi"
    );

    // A writes into its pip cache, as `pip install` would (or as a poisoner would).
    let write = format!("{check}; echo poisoned > /root/.cache/pip/{MARKER}");
    server.deploy_ok(&[path, "--name", "tenant-a", "--build", &write]);
    assert_eq!(saw_marker(&server, "tenant-a"), "no marker");

    // B, another service on the same runtime, builds with its own, empty cache.
    server.deploy_ok(&[path, "--name", "tenant-b", "--build", &check]);
    assert_eq!(
        saw_marker(&server, "tenant-b"),
        "no marker",
        "service B's build read what service A's build left in /root/.cache/pip"
    );

    // A's own next build still finds its cache: caches persist between a service's builds.
    server.deploy_ok(&[path, "--name", "tenant-a", "--build", &check]);
    assert_eq!(saw_marker(&server, "tenant-a"), "marker present");
    assert!(
        !find_named(&server.data, MARKER).is_empty(),
        "the marker is somewhere in the data dir while A exists"
    );

    // Deleting A takes its caches with it: nothing of them is left in the data dir.
    server.hoist_ok(&["delete", "tenant-a", "--yes"]);
    let left = find_named(&server.data, MARKER);
    assert!(left.is_empty(), "A's cache outlived its deletion: {left:?}");
    // And a new service of the same name starts with no cache.
    server.deploy_ok(&[path, "--name", "tenant-a", "--build", &check]);
    assert_eq!(saw_marker(&server, "tenant-a"), "no marker");
}

/// A TCP listener on every host address (as PostgreSQL with `listen_addresses = '*'`): the
/// kernel completes connections to it without `accept`, which is all the reach app needs.
fn host_listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("0.0.0.0:0").expect("a listener on 0.0.0.0");
    let port = l.local_addr().expect("its address").port();
    (l, port)
}

fn reach(server: &Server, service: &str, port: u16) -> String {
    let (status, body) = server.get(service, &format!("/reach?port={port}"));
    assert_eq!(status, 200, "/reach?port={port}: {body}");
    body.trim().to_string()
}

#[test]
fn only_the_host_ports_the_operator_opened_are_reachable_from_instances_and_builds() {
    let (_open, p) = host_listener();
    let (_closed, q) = host_listener();
    let server = Server::start_wildcard("hostports", &["--host-ports", &p.to_string()]);
    let repo = git_repo(&reach_app(), "hostports");
    let path = repo.to_str().unwrap();

    // The build tries both ports; its output is in the build log.
    let build = format!("python3 app.py {p} {q}");
    server.deploy_ok(&[path, "--name", "reach", "--build", &build]);
    let log = server.hoist_ok(&["logs", "reach", "--build"]);
    assert!(
        log.contains(&format!("reach {p}: connected")),
        "the build reaches the opened port:\n{log}"
    );
    assert!(
        log.contains(&format!("reach {q}: failed")),
        "the build must not reach a port that was not opened:\n{log}"
    );

    assert_eq!(reach(&server, "reach", p), format!("reach {p}: connected"));
    let closed = reach(&server, "reach", q);
    assert!(
        closed.starts_with(&format!("reach {q}: failed")),
        "an instance reached host port {q}, which was not opened: {closed}"
    );
    // The server's own ports, although bound to 0.0.0.0, are not reachable from inside.
    for (what, port) in [("gateway", server.gw_port), ("API", server.api_port)] {
        let answer = reach(&server, "reach", port);
        assert!(
            answer.starts_with(&format!("reach {port}: failed")),
            "an instance reached the {what}: {answer}"
        );
    }
}

/// Runs `hoist server` with `args`, expecting it to exit on its own with an error; returns
/// its stderr.
fn server_refuses(args: &[&str]) -> String {
    let (code, stderr) = common::refused_server(args);
    assert!(
        code.is_some_and(|c| c != 0),
        "server {args:?} did not refuse (exit {code:?}):\n{stderr}"
    );
    stderr
}

#[test]
fn bad_host_ports_are_refused_with_the_reason() {
    for bad in ["abc", "0", "70000", "5432,,6379", "5432;6379"] {
        let err = server_refuses(&["--host-ports", bad]);
        assert!(
            err.contains("is not a TCP port (1-65535)"),
            "--host-ports {bad}: {err}"
        );
    }
    // The server's own ports cannot be opened, whatever address they are bound to.
    let (_l, port) = host_listener();
    drop(_l);
    for flag in ["--listen", "--api-listen"] {
        let addr = format!("127.0.0.1:{port}");
        let err = server_refuses(&[flag, &addr, "--host-ports", &format!("22,{port}")]);
        assert!(
            err.contains(&format!(
                "host port {port} is the server's own gateway or API port"
            )),
            "{flag} {addr}: {err}"
        );
    }
}
