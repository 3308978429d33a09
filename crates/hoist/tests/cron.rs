//! Cron jobs end to end: a real server, real sandboxes, and an app that counts its calls
//! (tests/apps/cronapp). One server for the file; the cases run in order in one test, as
//! the last one kills the server with -9.

mod common;

use std::time::Duration;

use common::cron::{cronapp, now_ms, rfc3339_ms, with_status};
use common::{Server, git_repo, wait_until};

fn deploy_cronapp(server: &Server, name: &str, flags: &[&str]) {
    let repo = git_repo(&cronapp(), &format!("{name}-{}", server.api_port));
    server.deploy_ok(&[&[repo.to_str().unwrap(), "--name", name], flags].concat());
}

#[test]
fn cron_jobs_end_to_end() {
    let mut server = Server::start("cron", &[]);
    // Warm (one instance always up), so the precision is the scheduler's, not a cold start's.
    deploy_cronapp(&server, "ticker", &["--min-instances", "1"]);

    // hoist.toml's job is there after the deploy, from the file.
    let ls = server.hoist_ok(&["cron", "ls", "ticker", "--json"]);
    let jobs: serde_json::Value = serde_json::from_str(&ls).unwrap();
    let yearly = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == "yearly")
        .unwrap_or_else(|| panic!("no hoist.toml job in {ls}"));
    assert_eq!(yearly["source"], "hoist.toml");
    assert_eq!(yearly["timezone"], "Europe/Berlin");

    per_second_runs_are_on_time(&server);
    bad_input_is_refused_naming_the_field(&server);
    forbid_skips_while_a_slow_run_is_in_flight(&server);
    a_failing_endpoint_is_retried_with_the_same_execution_id(&server);
    a_deploy_replaces_the_files_jobs_and_keeps_the_apis(&server);
    a_run_starts_a_service_at_zero_which_goes_back_to_zero(&server);
    // The answers are what the served document says.
    for (template, path) in [
        ("/v1/services/{name}/cron", "/v1/services/ticker/cron"),
        (
            "/v1/services/{name}/cron/runs",
            "/v1/services/ticker/cron/runs?limit=1000",
        ),
        (
            "/v1/services/{name}/cron/runs",
            "/v1/services/sleepy/cron/runs",
        ),
    ] {
        let problems = server.schema_problems(template, path);
        assert!(problems.is_empty(), "{problems:#?}");
    }
    missed_runs_after_kill_9_are_recorded_and_the_schedule_goes_on(&mut server);
}

fn per_second_runs_are_on_time(server: &Server) {
    server.hoist_ok(&[
        "cron",
        "add",
        "ticker",
        "--schedule",
        "* * * * * *",
        "--path",
        "/tick",
        "--job",
        "tick",
        "--method",
        "post",
    ]);
    let calls = wait_until(
        "five per-second runs",
        Duration::from_secs(20),
        || {
            let c = server.app_calls("ticker", "tick");
            (c.len() >= 5).then_some(c)
        },
        || format!("{:?}", server.app_calls("ticker", "tick")),
    );
    let mut scheduled = Vec::new();
    for c in &calls {
        let at = rfc3339_ms(c["schedule_time"].as_str().unwrap());
        let lag = c["arrived_ms"].as_i64().unwrap() - at;
        assert!(
            (0..1000).contains(&lag),
            "arrived {lag} ms after its time: {c}"
        );
        assert_eq!(at % 1000, 0, "{c}");
        assert_eq!(c["method"], "POST");
        assert_eq!(c["secret_ok"], true, "the cron secret: {c}");
        assert!(c["execution"].as_str().unwrap().starts_with("x-"));
        scheduled.push(at);
    }
    // One run for each second, none twice.
    for w in scheduled.windows(2) {
        assert_eq!(w[1] - w[0], 1000, "{scheduled:?}");
    }
    server.hoist_ok(&["cron", "rm", "ticker", "tick"]);
    // The runs are on record, with the instance that answered.
    let runs = server.cron_runs("ticker", "tick");
    let ok = with_status(&runs, "ok");
    assert!(ok.len() >= 5, "{runs:?}");
    assert!(
        ok.iter()
            .all(|r| r["http_status"] == 200 && r["instance"].is_string())
    );
    let text = server.metrics_text();
    assert!(
        text.contains("hoist_cron_runs_total{service=\"ticker\",job=\"tick\",result=\"ok\"}"),
        "no cron run counter in /metrics"
    );
    assert!(text.contains("hoist_cron_lag_seconds_bucket"));
}

fn bad_input_is_refused_naming_the_field(server: &Server) {
    for (flag, value, says) in [
        (
            "--schedule",
            "* * *",
            "invalid schedule '* * *': has 3 fields; expected five fields",
        ),
        ("--schedule", "61 * * * *", "invalid schedule '61 * * * *'"),
        (
            "--timezone",
            "Mars/Olympus",
            "invalid timezone 'Mars/Olympus'",
        ),
        (
            "--path",
            "tasks",
            "invalid path 'tasks': must start with '/'",
        ),
        (
            "--method",
            "FETCH",
            "invalid method 'FETCH': must be one of GET, POST, PUT, PATCH, DELETE",
        ),
        (
            "--concurrency",
            "maybe",
            "invalid concurrency 'maybe': must be one of forbid, allow, replace",
        ),
        ("--timeout", "5", "invalid timeout '5'"),
    ] {
        let mut args = vec![
            "cron",
            "add",
            "ticker",
            "--schedule",
            "* * * * *",
            "--path",
            "/tick",
        ];
        match args.iter().position(|a| *a == flag) {
            Some(i) => args[i + 1] = value,
            None => args.extend([flag, value]),
        }
        let err = server.hoist_err(&args);
        assert!(err.contains(says), "{flag} {value}: {err}");
    }
    // Over the API: 400 naming the field.
    let (status, body) = server.api(
        "POST",
        "/v1/services/ticker/cron",
        Some(r#"{"schedule": "*/5 * * *", "path": "/tick"}"#),
    );
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("schedule")),
        "{body}"
    );
    let (status, body) = server.api(
        "POST",
        "/v1/services/ticker/cron",
        Some(r#"{"schedule": "* * * * *", "path": "/tick", "timezone": "Europe/Nowhere"}"#),
    );
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("timezone")),
        "{body}"
    );
    let (status, body) = server.api(
        "POST",
        "/v1/services/ticker/cron",
        Some(r#"{"schedule": "* * * * *", "path": "/tick", "every": 1}"#),
    );
    assert_eq!(status, 400, "{body}");
    // Nothing was added by any of them.
    let (_, jobs) = server.api("GET", "/v1/services/ticker/cron", None);
    assert_eq!(jobs.as_array().map(Vec::len), Some(1), "{jobs}");

    // On deploy: a bad [[cron]] in hoist.toml fails it before the build, naming the key.
    let repo = git_repo(&cronapp(), &format!("badcron-{}", server.api_port));
    let toml = std::fs::read_to_string(repo.join("hoist.toml")).unwrap();
    std::fs::write(
        repo.join("hoist.toml"),
        toml.replace("0 0 1 1 *", "0 0 1 1"),
    )
    .unwrap();
    common::commit_all(&repo, "a bad schedule");
    let err = server.deploy_err(&[repo.to_str().unwrap(), "--name", "badcron"]);
    assert!(
        err.contains(
            "hoist.toml: [[cron]] #1: key `schedule`: invalid schedule '0 0 1 1': has 4 fields"
        ),
        "{err}"
    );
}

fn forbid_skips_while_a_slow_run_is_in_flight(server: &Server) {
    server.hoist_ok(&[
        "cron",
        "add",
        "ticker",
        "--schedule",
        "* * * * * *",
        "--path",
        "/slow?ms=2500",
        "--job",
        "slow",
    ]);
    let runs = wait_until(
        "two slow runs and the skips between them",
        Duration::from_secs(30),
        || {
            let runs = server.cron_runs("ticker", "slow");
            (with_status(&runs, "ok").len() >= 2 && with_status(&runs, "skipped").len() >= 2)
                .then_some(runs)
        },
        || format!("{:?}", server.cron_runs("ticker", "slow")),
    );
    server.hoist_ok(&["cron", "rm", "ticker", "slow"]);
    // Never two in flight: each call arrived after the one before had been answered.
    let calls = server.app_calls("ticker", "slow");
    for w in calls.windows(2) {
        let gap = w[1]["arrived_ms"].as_i64().unwrap() - w[0]["arrived_ms"].as_i64().unwrap();
        assert!(gap >= 2500, "overlapping runs: {calls:?}");
    }
    let skipped = with_status(&runs, "skipped");
    assert!(
        skipped[0]["detail"].as_str().unwrap().contains("forbid"),
        "{runs:?}"
    );
    let out = server.hoist_ok(&["cron", "runs", "ticker", "slow"]);
    assert!(
        out.contains("skipped") && out.contains("SCHEDULED"),
        "{out}"
    );
}

fn a_failing_endpoint_is_retried_with_the_same_execution_id(server: &Server) {
    server.hoist_ok(&[
        "cron",
        "add",
        "ticker",
        "--schedule",
        "0 0 1 1 *",
        "--path",
        "/flaky",
        "--job",
        "flaky",
        "--retries",
        "3",
    ]);
    let started = server.hoist_ok(&["cron", "run", "ticker", "flaky", "--json"]);
    let started: serde_json::Value = serde_json::from_str(&started).unwrap();
    let execution = started["execution_id"].as_str().unwrap().to_string();
    // Fails twice (500), then answers: 1 s and 2 s of back-off between.
    let runs = wait_until(
        "the flaky run to succeed on its third attempt",
        Duration::from_secs(20),
        || {
            let runs = server.cron_runs("ticker", "flaky");
            (!with_status(&runs, "ok").is_empty()).then_some(runs)
        },
        || format!("{:?}", server.cron_runs("ticker", "flaky")),
    );
    let seen: Vec<(i64, &str, i64)> = runs
        .iter()
        .map(|r| {
            (
                r["attempt"].as_i64().unwrap(),
                r["status"].as_str().unwrap(),
                r["http_status"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [(1, "retried", 500), (2, "retried", 500), (3, "ok", 200)]
    );
    assert!(runs.iter().all(|r| r["execution_id"] == execution.as_str()));
    let calls = server.app_calls("ticker", "flaky");
    assert_eq!(calls.len(), 3);
    assert!(
        calls.iter().all(|c| c["execution"] == execution.as_str()),
        "{calls:?}"
    );

    // One that never succeeds is an event after its last retry (a new execution: 500).
    server.hoist_ok(&[
        "cron",
        "add",
        "ticker",
        "--schedule",
        "0 0 1 1 *",
        "--path",
        "/flaky",
        "--job",
        "broken",
        "--retries",
        "0",
    ]);
    server.hoist_ok(&["cron", "run", "ticker", "broken"]);
    wait_until(
        "a cron_failed event",
        Duration::from_secs(20),
        || {
            let out = server.hoist_ok(&["events", "ticker", "--json"]);
            out.contains("cron_failed").then_some(())
        },
        || server.hoist_ok(&["events", "ticker"]),
    );
}

fn a_deploy_replaces_the_files_jobs_and_keeps_the_apis(server: &Server) {
    // Paused and resumed through the CLI on the way.
    let paused = server.hoist_ok(&["cron", "pause", "ticker", "flaky", "--json"]);
    let paused: serde_json::Value = serde_json::from_str(&paused).unwrap();
    assert_eq!(paused["paused"], true, "{paused}");
    assert_eq!(paused["next_run_at"], serde_json::Value::Null, "{paused}");
    let ls = server.hoist_ok(&["cron", "ls", "ticker"]);
    assert!(ls.contains("paused"), "{ls}");
    server.hoist_ok(&["cron", "resume", "ticker", "flaky"]);

    let repo = git_repo(&cronapp(), &format!("ticker2-{}", server.api_port));
    let toml = std::fs::read_to_string(repo.join("hoist.toml")).unwrap();
    let toml = toml
        .replace("id = \"yearly\"", "id = \"monthly\"")
        .replace("0 0 1 1 *", "0 0 1 * *");
    std::fs::write(repo.join("hoist.toml"), toml).unwrap();
    common::commit_all(&repo, "another job");
    server.deploy_ok(&[repo.to_str().unwrap(), "--name", "ticker"]);
    let (_, jobs) = server.api("GET", "/v1/services/ticker/cron", None);
    let mut ids: Vec<(String, String)> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["id"].as_str().unwrap().into(),
                j["source"].as_str().unwrap().into(),
            )
        })
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            ("broken".into(), "api".into()),
            ("flaky".into(), "api".into()),
            ("monthly".into(), "hoist.toml".into())
        ]
    );
}

fn a_run_starts_a_service_at_zero_which_goes_back_to_zero(server: &Server) {
    deploy_cronapp(
        server,
        "sleepy",
        &["--idle-freeze", "200ms", "--idle-stop", "1s"],
    );
    server.hoist_ok(&["stop", "sleepy"]);
    wait_until(
        "sleepy at zero",
        Duration::from_secs(20),
        || server.running("sleepy").is_empty().then_some(()),
        || format!("{:?}", server.running("sleepy")),
    );
    server.hoist_ok(&[
        "cron",
        "add",
        "sleepy",
        "--schedule",
        "0 0 1 1 *",
        "--path",
        "/tick",
        "--job",
        "wake",
    ]);
    server.hoist_ok(&["cron", "run", "sleepy", "wake"]);
    let runs = wait_until(
        "the run to start an instance and succeed",
        Duration::from_secs(30),
        || {
            let runs = server.cron_runs("sleepy", "wake");
            (!with_status(&runs, "ok").is_empty()).then_some(runs)
        },
        || format!("{:?}", server.cron_runs("sleepy", "wake")),
    );
    assert!(runs[0]["instance"].is_string(), "{runs:?}");
    // The run was not activity after it ended: the service stops again on its idle timers.
    wait_until(
        "sleepy back at zero after the run",
        Duration::from_secs(30),
        || server.running("sleepy").is_empty().then_some(()),
        || format!("{:?}", server.running("sleepy")),
    );
}

fn missed_runs_after_kill_9_are_recorded_and_the_schedule_goes_on(server: &mut Server) {
    server.hoist_ok(&[
        "cron",
        "add",
        "ticker",
        "--schedule",
        "* * * * * *",
        "--path",
        "/tick",
        "--job",
        "beat",
    ]);
    wait_until(
        "beat running",
        Duration::from_secs(20),
        || (!with_status(&server.cron_runs("ticker", "beat"), "ok").is_empty()).then_some(()),
        || format!("{:?}", server.cron_runs("ticker", "beat")),
    );
    server.kill9();
    let killed = now_ms();
    // Down for three scheduled times at least.
    wait_until(
        "three seconds of downtime",
        Duration::from_secs(10),
        || (now_ms() - killed > 3_000).then_some(()),
        String::new,
    );
    server.spawn();
    let restarted = now_ms();
    let runs = wait_until(
        "missed runs recorded and new ones after the restart",
        Duration::from_secs(30),
        || {
            let runs = server.cron_runs("ticker", "beat");
            let after = runs
                .iter()
                .filter(|r| r["status"] == "ok" && r["scheduled_at"].as_i64() > Some(restarted))
                .count();
            (after >= 2).then_some(runs)
        },
        || format!("{:?}", server.cron_runs("ticker", "beat")),
    );
    let missed = with_status(&runs, "missed");
    assert!(missed.len() >= 2, "{runs:?}");
    assert!(missed.iter().all(|r| {
        let at = r["scheduled_at"].as_i64().unwrap();
        at > killed - 1000 && at <= restarted
    }));
    // No scheduled time was run twice.
    let mut ran: Vec<i64> = runs
        .iter()
        .filter(|r| r["status"] == "ok")
        .map(|r| r["scheduled_at"].as_i64().unwrap())
        .collect();
    let n = ran.len();
    ran.sort_unstable();
    ran.dedup();
    assert_eq!(ran.len(), n, "a time ran twice: {runs:?}");
}
