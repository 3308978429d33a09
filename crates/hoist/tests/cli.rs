//! End-to-end tests of the CLI as a user or a script meets it: a real `hoist server`, the real
//! `hoist` binary, real git. One server and one deployed probe service are shared by the tests
//! that only read; the tests that change a service deploy their own.

mod common;

use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use common::{Server, commit_all, git, git_repo, probe_app, scratch, shared_server, wait_exit};
use serde_json::Value;

/// The shared probe service: its server, name, and what its deploy printed.
struct Probe {
    server: Arc<Server>,
    name: &'static str,
    deploy: Output,
    /// The commit that was deployed (in full).
    commit: String,
}

/// Deploys the probe once per shared server (a test holding the returned server keeps it up),
/// from a repository with uncommitted changes (one modified file, one untracked), so its
/// output shows both the steps and the notice about what is not deployed.
fn probe() -> Probe {
    static DEPLOYED: Mutex<Option<(Weak<Server>, Output, String)>> = Mutex::new(None);
    let mut slot = DEPLOYED.lock().unwrap_or_else(|p| p.into_inner());
    let name = "cli-probe";
    if let Some((weak, deploy, commit)) = slot.as_ref()
        && let Some(server) = weak.upgrade()
    {
        return Probe {
            server,
            name,
            deploy: deploy.clone(),
            commit: commit.clone(),
        };
    }
    let probe = {
        let server = shared_server();
        let repo = git_repo(&probe_app(), "cli-probe");
        let commit = git_out(&repo, &["rev-parse", "HEAD"]);
        std::fs::write(repo.join("app.py"), "# not committed\n").expect("edit app.py");
        std::fs::write(repo.join("scratch-notes.txt"), "notes\n").expect("untracked file");
        let deploy = server.hoist(&["deploy", repo.to_str().unwrap(), "--name", name]);
        assert!(
            deploy.status.success(),
            "deploy failed:\n{}\n{}",
            String::from_utf8_lossy(&deploy.stdout),
            String::from_utf8_lossy(&deploy.stderr)
        );
        Probe {
            server,
            name,
            deploy,
            commit,
        }
    };
    *slot = Some((
        Arc::downgrade(&probe.server),
        probe.deploy.clone(),
        probe.commit.clone(),
    ));
    probe
}

fn git_out(repo: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .expect("git");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// The CLI pointed at `server`, with no terminal anywhere and no display.
fn cli(server: &Server, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hoist"));
    cmd.args(args)
        .env("HOIST_API", format!("http://127.0.0.1:{}", server.api_port))
        .env("HOIST_DATA_DIR", &server.data)
        .env_remove("HOIST_TOKEN")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null());
    cmd
}

/// Runs `hoist ARGS` with stdout a pipe whose reader is already gone (as `| head -1` leaves
/// it once head has its line); returns the exit code and stderr.
fn into_closed_pipe(server: &Server, args: &[&str], tag: &str) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let err_file = scratch(&format!("closed-pipe-{tag}")).join("stderr");
    let mut child = cli(server, args)
        .stdout(writer)
        .stderr(std::fs::File::create(&err_file).expect("stderr file"))
        .spawn()
        .expect("run hoist");
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let err = std::fs::read_to_string(&err_file).unwrap_or_default();
    (status.and_then(|s| s.code()), err)
}

#[test]
fn output_into_a_closed_pipe_ends_quietly_with_exit_0() {
    let p = probe();
    for args in [
        &["logs", p.name][..],
        &["logs", p.name, "--json"],
        &["ls"],
        &["status", p.name],
        &["deployments", p.name],
    ] {
        let (code, err) = into_closed_pipe(&p.server, args, &args.join("-"));
        assert_eq!(code, Some(0), "hoist {args:?} into a closed pipe: {err}");
        assert!(
            !err.contains("panicked") && err.trim().is_empty(),
            "hoist {args:?} into a closed pipe said: {err}"
        );
    }
}

#[test]
fn an_error_into_a_closed_stderr_still_exits_1_without_a_panic() {
    let s = shared_server();
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let mut child = cli(&s, &["status", "cli-no-such-service"])
        .stdout(Stdio::null())
        .stderr(writer)
        .spawn()
        .expect("run hoist");
    let status = wait_exit(&mut child, Duration::from_secs(60));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "101 is a panic");
}

#[test]
fn a_deploy_prints_each_steps_duration_as_a_plain_line() {
    let p = probe();
    let out = stdout(&p.deploy);
    for step in ["fetch", "build", "start"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("==> {step} took ")))
            .unwrap_or_else(|| panic!("no duration of the {step} step:\n{out}"));
        let took = line.rsplit(' ').next().unwrap_or_default();
        assert!(
            took.ends_with("ms") || took.ends_with('s'),
            "{step} took {took:?}"
        );
    }
    // No spinner without a terminal: no carriage returns, no escape sequences.
    let all = format!("{out}{}", stderr(&p.deploy));
    assert!(!all.contains('\r') && !all.contains('\x1b'), "{all:?}");
    let url = format!("http://{}.localhost:{}/", p.name, p.server.gw_port);
    assert_eq!(out.lines().last(), Some(url.as_str()), "{out}");
}

#[test]
fn a_deploy_of_a_dirty_work_tree_names_the_files_and_the_commit_it_deploys() {
    let p = probe();
    let err = stderr(&p.deploy);
    assert!(err.contains(" M app.py"), "the modified file: {err}");
    assert!(
        err.contains("?? scratch-notes.txt"),
        "the untracked file: {err}"
    );
    let named = err
        .split("deploying the last commit on main: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no commit named: {err}"));
    assert!(
        named.len() >= 7 && p.commit.starts_with(named),
        "the commit deployed is {}, the notice names {named}: {err}",
        p.commit
    );
    // What serves is the commit, not the edited file.
    p.server
        .wait_for(p.name, "/", "probe", Duration::from_secs(30));
}

#[test]
fn read_commands_print_the_apis_answer_with_json() {
    let p = probe();
    let s = &p.server;
    let json = |args: &[&str]| -> Value {
        let out = s.hoist_ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("hoist {args:?}: {e}\n{out}"))
    };
    let service = s.service(p.name);

    let ls = json(&["ls", "--json"]);
    assert!(
        ls.as_array()
            .is_some_and(|l| l.iter().any(|x| x["name"] == p.name)),
        "{ls}"
    );
    let status = json(&["status", p.name, "--json"]);
    assert_eq!(status["name"], p.name);
    assert_eq!(status["live_deployment"], service["live_deployment"]);
    assert_eq!(status["url"], service["url"]);

    let deployments = json(&["deployments", p.name, "--json"]);
    assert_eq!(
        deployments[0]["id"], service["live_deployment"],
        "{deployments}"
    );

    for (args, path) in [
        (
            &["events", p.name, "--json"][..],
            format!("/v1/services/{}/events", p.name),
        ),
        (
            &["usage", p.name, "--json"],
            format!("/v1/services/{}/usage", p.name),
        ),
        (
            &["env", "ls", p.name, "--json"],
            format!("/v1/services/{}/env", p.name),
        ),
        (&["runtimes", "--json"], "/v1/runtimes".to_string()),
        (
            &["deployments", p.name, "--json"],
            format!("/v1/services/{}/deployments", p.name),
        ),
    ] {
        let (code, api) = s.api("GET", &path, None);
        assert_eq!(code, 200, "{path}: {api}");
        assert_eq!(json(args), api, "hoist {args:?} against GET {path}");
    }
    let metrics = json(&["metrics", p.name, "--json"]);
    assert!(metrics.is_array(), "{metrics}");

    // A stream is NDJSON: one log line object per line.
    let logs = s.hoist_ok(&["logs", p.name, "--build", "--json"]);
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        !lines.is_empty() && lines.iter().all(|l| l["stream"] == "build"),
        "{logs}"
    );

    // `scale --json`: the settings the API answered with.
    let scaled = json(&["scale", p.name, "--concurrency", "33", "--json"]);
    assert_eq!(scaled["concurrency"], 33, "{scaled}");
}

#[test]
fn deploy_and_rollback_print_the_deployment_with_json() {
    let s = shared_server();
    let repo = git_repo(&probe_app(), "cli-json-deploy");
    let first = cli(
        &s,
        &[
            "deploy",
            repo.to_str().unwrap(),
            "--name",
            "cli-json",
            "--json",
        ],
    )
    .output()
    .expect("deploy");
    assert!(first.status.success(), "{}", stderr(&first));
    let d: Value =
        serde_json::from_slice(&first.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&first)));
    assert_eq!(d["state"], "live", "{d}");
    assert_eq!(d["service"], "cli-json", "{d}");
    // The build log went to stderr, not into the JSON document.
    assert!(
        stderr(&first).contains("==> build took"),
        "{}",
        stderr(&first)
    );

    std::fs::write(repo.join("v2.txt"), "2\n").expect("write");
    git(&repo, &["add", "v2.txt"]);
    commit_all(&repo, "v2");
    s.deploy_ok(&[repo.to_str().unwrap(), "--name", "cli-json"]);
    let back: Value = serde_json::from_str(&s.hoist_ok(&["rollback", "cli-json", "--json"]))
        .expect("rollback --json is one JSON document");
    assert_eq!(back["id"], d["id"], "{back}");
    assert_eq!(s.service("cli-json")["live_deployment"], d["id"]);
}

#[test]
fn deployments_lists_newest_first_and_answers_to_releases() {
    let p = probe();
    let service = p.server.service(p.name);
    for cmd in ["deployments", "releases"] {
        let out = p.server.hoist_ok(&[cmd, p.name]);
        let mut lines = out.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        assert_eq!(
            header,
            [
                "DEPLOYMENT",
                "COMMIT",
                "STATE",
                "TRIGGER",
                "AGE",
                "STATIC",
                "REASON"
            ],
            "{out}"
        );
        let newest: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        assert_eq!(
            Some(newest[0]),
            service["live_deployment"].as_str(),
            "hoist {cmd}:\n{out}"
        );
        assert!(
            newest[1].len() >= 7 && p.commit.starts_with(newest[1]),
            "commit {} in:\n{out}",
            p.commit
        );
        assert_eq!(newest[2], "live", "{out}");
        // Deployed by the CLI, which says so (X-Hoist-Client: cli).
        assert_eq!(newest[3], "cli", "{out}");
    }
}

#[test]
fn delete_without_a_terminal_refuses_unless_yes() {
    let s = shared_server();
    s.deploy_probe("cli-doomed", &[]);
    let refused = cli(&s, &["delete", "cli-doomed"]).output().expect("delete");
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    assert!(stderr(&refused).contains("--yes"), "{}", stderr(&refused));
    let (code, _) = s.api("GET", "/v1/services/cli-doomed", None);
    assert_eq!(code, 200, "nothing was deleted");
    assert_eq!(
        s.get("cli-doomed", "/").0,
        200,
        "the service still serves after the refusal"
    );

    let deleted = cli(&s, &["delete", "cli-doomed", "--yes"])
        .output()
        .expect("delete --yes");
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    let (code, _) = s.api("GET", "/v1/services/cli-doomed", None);
    assert_eq!(code, 404);
}

#[test]
fn open_prints_the_url_and_needs_no_display() {
    let p = probe();
    let out = cli(&p.server, &["open", p.name]).output().expect("open");
    assert!(out.status.success(), "{}", stderr(&out));
    let url = format!("http://{}.localhost:{}/", p.name, p.server.gw_port);
    assert_eq!(stdout(&out).trim(), url);
}

#[test]
fn an_api_error_is_printed_as_the_api_words_it() {
    let s = shared_server();
    let path = "/v1/services/Not_A_Name";
    let (code, body) = s.api("GET", path, None);
    assert_eq!(code, 400, "{body}");
    let message = body["error"].as_str().expect("an error message");
    let out = cli(&s, &["status", "Not_A_Name"]).output().expect("status");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), format!("error: {message}\n"));
}

#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef hoist"),
        ("fish", "complete -c hoist"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_hoist"))
            .args(["completions", shell])
            .stdin(Stdio::null())
            .output()
            .expect("hoist completions");
        let text = stdout(&out);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        assert!(text.contains(marker), "{shell}:\n{text}");
        for sub in ["deploy", "deployments", "logs", "delete"] {
            assert!(text.contains(sub), "{shell} completes {sub}");
        }
    }
}

#[test]
fn on_a_terminal_a_long_step_shows_a_spinner_with_its_elapsed_time() {
    let s = shared_server();
    let repo = git_repo(&probe_app(), "cli-spinner");
    // A build step of 3 s at least: the spinner is read from the steps once a second.
    let command = format!(
        "{} deploy {} --name cli-spinner --build 'sleep 3'",
        env!("CARGO_BIN_EXE_hoist"),
        repo.display()
    );
    // `script` runs the CLI on a pseudo-terminal and keeps what it drew in a file.
    let typescript = scratch("cli-spinner").join("typescript");
    let mut child = Command::new("script")
        .args(["--quiet", "--return", "--command", &command])
        .arg(&typescript)
        .env("HOIST_API", format!("http://127.0.0.1:{}", s.api_port))
        .env("HOIST_DATA_DIR", &s.data)
        .env_remove("HOIST_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("script");
    let status = wait_exit(&mut child, Duration::from_secs(120));
    let drawn = std::fs::read_to_string(&typescript).unwrap_or_default();
    assert!(status.is_some_and(|s| s.success()), "{drawn}");
    assert!(
        ["building 1s", "building 2s", "building 3s"]
            .iter()
            .any(|frame| drawn.contains(frame)),
        "a spinner frame with the build's elapsed time:\n{drawn:?}"
    );
    assert!(
        drawn.contains("\x1b["),
        "drawn with terminal escapes: {drawn:?}"
    );
    assert!(drawn.contains("==> build took "), "{drawn:?}");
}
