//! Hardening findings of issue 11, each checked the way a user (or an attacker with a
//! repository) would meet it: a symlinked `--root`, an overflowing duration, secrets printed
//! into the log, a deployment's spec across a restart, and errors echoing huge input.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Server, commit_all, files_containing, git, git_repo, probe_app, random_hex, scratch};

const LONG: Duration = Duration::from_secs(120);

#[test]
fn a_root_symlinked_out_of_the_repository_is_refused_and_nothing_is_read_through_it() {
    let server = Server::start("srvlink", &[]);
    // A host directory the server can read, holding a config a repository must not reach.
    let outside = scratch("srvlink-outside");
    std::fs::write(
        outside.join("hoist.toml"),
        "runtime = \"python\"\nstart = \"python3 app.py\"\n\n[env]\nMARK = \"leaked-from-the-host\"\n",
    )
    .unwrap();
    let repo = git_repo(&probe_app(), "srvlink");
    std::os::unix::fs::symlink(&outside, repo.join("srvlink")).unwrap();
    git(&repo, &["add", "srvlink"]);
    commit_all(&repo, "a link out");

    let err = server.deploy_err(&[
        repo.to_str().unwrap(),
        "--name",
        "linked",
        "--root",
        "srvlink",
    ]);
    assert!(
        err.contains("--root srvlink: a symlink to outside the repository"),
        "{err}"
    );
    // The host file was not read: its [env] is in no spec, log line or record.
    let found = files_containing(&server.data, b"leaked-from-the-host");
    assert!(
        found.is_empty(),
        "the host's hoist.toml was read: {found:?}"
    );
    let view = server.service("linked");
    assert!(!view.to_string().contains("leaked-from-the-host"), "{view}");
}

#[test]
fn an_idle_stop_that_overflows_is_refused_naming_idle_stop() {
    let server = Server::start("overflow", &[]);
    server.deploy_probe("huge", &[]);
    // 213503982335 days in milliseconds wrap a u64 to 34,448,384 ms (9.5 hours).
    let err = server.hoist_err(&["scale", "huge", "--idle-stop", "213503982335d"]);
    assert!(err.contains("idle_stop"), "{err}");
    let err = server.hoist_err(&["scale", "huge", "--idle-stop", "8d"]);
    assert!(
        err.contains("invalid idle_stop '8d': must be between 100ms and 7d"),
        "{err}"
    );
    // Nothing was stored: the service keeps its 15 minutes.
    assert_eq!(server.service("huge")["scaling"]["idle_stop_ms"], 900_000);
    // The same bound for hoist.toml and deploy flags, and for the server's own options.
    let repo = git_repo(&probe_app(), "overflow-flag");
    let err = server.deploy_err(&[
        repo.to_str().unwrap(),
        "--name",
        "huge",
        "--idle-freeze",
        "213503982335d",
    ]);
    assert!(err.contains("idle_freeze"), "{err}");
    let (code, err) = common::refused_server(&["--build-timeout", "213503982335d"]);
    assert!(code.is_some_and(|c| c != 0), "exit {code:?}: {err}");
    assert!(err.contains("invalid --build-timeout"), "{err}");
}

/// An app printing its secret on a request, and a build echoing it.
fn leaky_app(dir: &Path) {
    std::fs::write(
        dir.join("app.py"),
        r#"import os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class H(BaseHTTPRequestHandler):
    def do_GET(self):
        print("the secret is " + os.environ.get("SECRET", "unset") + " here", flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

HTTPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("hoist.toml"),
        "runtime = \"python\"\nbuild = \"echo build sees $SECRET too\"\nstart = \"python3 app.py\"\nmemory = 128\n",
    )
    .unwrap();
}

fn logs(server: &Server, args: &[&str]) -> String {
    server.hoist_ok(&[&["logs", "leaky"], args].concat())
}

#[test]
fn secret_values_printed_by_a_build_or_the_app_are_masked_in_logs_and_on_disk() {
    let server = Server::start("mask", &[]);
    let src = scratch("mask-src");
    leaky_app(&src);
    let repo = git_repo(&src, "mask");
    // A deploy's --env flag reaches its build before it is the service's.
    let flag_secret = random_hex(24);
    server.deploy_ok(&[
        repo.to_str().unwrap(),
        "--name",
        "leaky",
        "--env",
        &format!("SECRET={flag_secret}"),
    ]);
    let build = logs(&server, &["--build"]);
    assert!(build.contains("build sees *** too"), "{build}");

    // The service env's value, set and then built with and printed by the app.
    let secret = random_hex(24);
    server.hoist_ok(&["env", "set", "leaky", &format!("SECRET={secret}")]);
    server.deploy_ok(&[repo.to_str().unwrap(), "--name", "leaky"]);
    let build = logs(&server, &["--build"]);
    assert!(build.contains("build sees *** too"), "{build}");
    // The request's query carries it too: access lines are masked as well.
    let path = format!("/?token={secret}");
    let (status, _) = server.get("leaky", &path);
    assert_eq!(status, 200);
    let all = common::wait_until(
        "the app's line in the log",
        LONG,
        || {
            let all = logs(&server, &[]);
            (all.contains("the secret is *** here") && all.contains("token=***")).then_some(all)
        },
        || logs(&server, &[]),
    );
    for s in [&flag_secret, &secret] {
        assert!(!all.contains(s.as_str()), "{s} in hoist logs:\n{all}");
        assert!(
            !build.contains(s.as_str()),
            "{s} in the build log:\n{build}"
        );
        let grep = logs(&server, &["--grep", s]);
        assert!(!grep.contains(s.as_str()), "{grep}");
    }

    // Nothing on disk holds a value in plain text: the database, its WAL, the access log's
    // segments, or anything else under the data dir (the tmpfs of running sandboxes, which
    // holds their environment, is a link and not followed); nor the server's own log.
    for s in [&flag_secret, &secret] {
        let found = files_containing(&server.data, s.as_bytes());
        assert!(found.is_empty(), "{s} found in plain text in {found:?}");
        let log = std::fs::read(server.data.with_extension("log")).unwrap_or_default();
        assert!(
            !log.windows(s.len()).any(|w| w == s.as_bytes()),
            "{s} in the server log"
        );
    }
}

#[test]
fn a_deployments_spec_env_from_hoist_toml_survives_a_restart() {
    let mut server = Server::start("spec-env", &[]);
    let repo = git_repo(&probe_app(), "spec-env");
    std::fs::write(
        repo.join("hoist.toml"),
        "runtime = \"python\"\nstart = \"python3 app.py\"\nmemory = 128\n\n[env]\nFLAVOR = \"from-the-repo\"\n",
    )
    .unwrap();
    commit_all(&repo, "env");
    server.deploy_ok(&[repo.to_str().unwrap(), "--name", "flavored"]);
    let id = server.service("flavored")["deployments"][0]["id"]
        .as_str()
        .expect("a deployment id")
        .to_string();
    let spec_env = |server: &Server| {
        let (status, d) = server.api("GET", &format!("/v1/deployments/{id}"), None);
        assert_eq!(status, 200, "{d}");
        d["spec"]["env"].clone()
    };
    let before = spec_env(&server);
    assert_eq!(before, serde_json::json!({ "FLAVOR": "from-the-repo" }));

    server.restart();
    assert_eq!(spec_env(&server), before);
    // And the instance started after the restart gets it, as before.
    server.wait_for("flavored", "/env", "\"FLAVOR\": \"from-the-repo\"", LONG);
    server.restart();
    assert_eq!(spec_env(&server), before);
    // The repository's default did not become one of the service's own variables (which
    // would override the next hoist.toml): the start-up seal of pre-sealing databases did
    // that to every spec's env.
    let names = server.hoist_ok(&["env", "ls", "flavored"]);
    assert!(!names.contains("FLAVOR"), "{names}");
}

#[test]
fn an_error_about_a_100_kb_name_is_short_and_names_the_problem() {
    let server = Server::start("echo", &[]);
    let name = "a".repeat(100_000);
    let body = serde_json::json!({ "source": "/nonexistent", "name": name }).to_string();
    let (status, v) = server.api("POST", "/v1/deployments", Some(&body));
    assert_eq!(
        status,
        400,
        "{}",
        &v.to_string()[..200.min(v.to_string().len())]
    );
    let error = v["error"].as_str().unwrap_or_default();
    assert!(v.to_string().len() < 1024, "{} bytes", v.to_string().len());
    assert!(
        error.starts_with("invalid name 'aaaa") && error.contains("at most 63 characters"),
        "{error}"
    );

    // The same in a path, and through the CLI. hyper refuses a request target over 64 KB
    // itself (414, with no echo), so the path's name is 60 kB.
    let name = "a".repeat(60_000);
    let (status, v) = server.api("GET", &format!("/v1/services/{name}"), None);
    assert_eq!(status, 400);
    assert!(v.to_string().len() < 1024, "{} bytes", v.to_string().len());
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("at most 63 characters")),
        "{v}"
    );
    let err = server.hoist_err(&["scale", &name, "--concurrency", "2"]);
    assert!(
        err.len() < 1024 && err.contains("at most 63 characters"),
        "{err}"
    );

    // An unknown field's name in a body, and an env name, are cut the same way.
    let field = "b".repeat(100_000);
    let body = format!(r#"{{"source": "/x", "{field}": 1}}"#);
    let (status, v) = server.api("POST", "/v1/deployments", Some(&body));
    assert_eq!(status, 400);
    assert!(v.to_string().len() < 1024, "{} bytes", v.to_string().len());
    assert!(v.to_string().contains("unknown field"), "{v}");
    let env = format!(r#"{{"set": {{"{}": "v"}}}}"#, "1".repeat(100_000));
    server.deploy_probe("echoed", &[]);
    let (status, v) = server.api("PATCH", "/v1/services/echoed/env", Some(&env));
    assert_eq!(
        status,
        400,
        "{}",
        &v.to_string()[..200.min(v.to_string().len())]
    );
    assert!(v.to_string().len() < 1024, "{} bytes", v.to_string().len());
    assert!(v.to_string().contains("invalid env"), "{v}");
}
