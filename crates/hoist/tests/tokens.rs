//! API tokens for CI, against a real server: an admin makes a `deploy` token for one service
//! and a `read` token with the CLI; the deploy token deploys (`HOIST_TOKEN=… hoist deploy …`)
//! and rolls back its service, and gets `403` naming what it lacks for another service, the
//! platform's metrics and the tokens; the read token deploys nothing; a dashboard session
//! does what its token does; a revoked token gets `401`, and its session ends. The secret is
//! shown once: the listing, the database file and the data dir hold only its hash.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Answer, Server, commit_all, files_containing, git_repo, probe_app};
use hoist_api_types::{ApiErrorBody, CreatedToken, ServiceView, SessionInfo, TokenInfo};
use sha2::{Digest, Sha256};

fn error(a: &Answer) -> String {
    serde_json::from_str::<ApiErrorBody>(a.body.trim())
        .map(|e| e.error)
        .unwrap_or_else(|_| a.body.clone())
}

/// The answer's status and its error message, for the asserts of a refusal.
fn refused(a: &Answer, status: u16) -> String {
    assert_eq!(a.status, status, "{}", a.body);
    error(a)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// The `[env]` the probe app answers `/` with (`probe VERSION …`), committed: a new commit.
fn set_version(repo: &Path, version: &str) {
    let toml = "runtime = \"python\"\nstart = \"python3 app.py\"\nmemory = 128\n";
    std::fs::write(
        repo.join("hoist.toml"),
        format!("{toml}\n[env]\nVERSION = \"{version}\"\n"),
    )
    .unwrap();
    commit_all(repo, version);
}

#[test]
fn a_deploy_token_deploys_its_service_and_nothing_else() {
    let server = Server::start("tokens", &[]);
    let web_repo = git_repo(&probe_app(), "tokens-web");
    let api_repo = git_repo(&probe_app(), "tokens-api");
    let (web_src, api_src) = (web_repo.to_str().unwrap(), api_repo.to_str().unwrap());
    // Another team's service, built while the CI's is.
    server.deploy_ok(&[api_src, "--name", "api", "--no-wait"]);
    server.deploy_ok(&[web_src, "--name", "web"]);
    server.wait_for("web", "/", "probe v1", Duration::from_secs(30));

    // ---- the admin makes tokens ------------------------------------------------------
    let out = server.hoist_ok(&[
        "tokens",
        "create",
        "--name",
        "ci",
        "--role",
        "deploy",
        "--service",
        "web",
        "--json",
    ]);
    let ci: CreatedToken = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(ci.token.service.as_ref().map(|s| s.as_str()), Some("web"));
    assert!(ci.token.id.as_str().starts_with("tok_"), "{}", ci.token.id);
    let ci_secret = ci.secret.as_str();
    // For a person: the secret once, and the line a CI job runs.
    let text = server.hoist_ok(&["tokens", "create", "--name", "grafana", "--role", "read"]);
    let reader = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("hoist_"))
        .unwrap_or_else(|| panic!("no secret in:\n{text}"))
        .to_string();
    assert!(
        text.contains(&format!("HOIST_TOKEN={reader} hoist status")),
        "{text}"
    );
    assert!(text.contains("shown this once"), "{text}");

    // Refused: a service that does not exist, a name in use, a role that is not one.
    let e = server.hoist_err(&[
        "tokens",
        "create",
        "--name",
        "x",
        "--role",
        "deploy",
        "--service",
        "nope",
    ]);
    assert!(e.contains("invalid service 'nope': no such service"), "{e}");
    let e = server.hoist_err(&["tokens", "create", "--name", "ci", "--role", "read"]);
    assert!(e.contains("already named 'ci'"), "{e}");
    let admin = server.token();
    let a = server.api_as(
        &admin,
        "POST",
        "/v1/tokens",
        "",
        Some(r#"{"name":"x","role":"owner"}"#),
    );
    let body: ApiErrorBody = serde_json::from_str(a.body.trim()).unwrap();
    assert_eq!(
        (a.status, body.field.as_deref()),
        (400, Some("role")),
        "{}",
        a.body
    );

    // Shown once: neither the listing nor the API's list has a secret.
    let ls = server.hoist_ok(&["tokens", "ls"]);
    assert!(
        ls.contains(ci.token.id.as_str()) && ls.contains("grafana"),
        "{ls}"
    );
    assert!(!ls.contains("hoist_"), "{ls}");
    let a = server.api_as(&admin, "GET", "/v1/tokens", "", None);
    let list: Vec<TokenInfo> = serde_json::from_str(a.body.trim()).unwrap();
    let names: Vec<&str> = list.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["admin", "ci", "grafana"]);
    assert!(!a.body.contains(ci_secret) && !a.body.contains(&reader));

    // ---- what the deploy token may not do ------------------------------------------
    let a = server.api_as(ci_secret, "GET", "/v1/services", "", None);
    let seen: Vec<ServiceView> = serde_json::from_str(a.body.trim()).unwrap();
    let seen: Vec<&str> = seen.iter().map(|s| s.service.name.as_str()).collect();
    assert_eq!(seen, ["web"], "a token for web lists web only");
    assert_eq!(
        server
            .api_as(ci_secret, "GET", "/v1/services/web", "", None)
            .status,
        200
    );
    let e = refused(
        &server.api_as(ci_secret, "GET", "/v1/services/api", "", None),
        403,
    );
    assert_eq!(
        e,
        "this token (deploy, service web) cannot read service 'api': it is for service 'web' only"
    );
    let e = refused(
        &server.api_as(ci_secret, "GET", "/v1/services/api/logs", "", None),
        403,
    );
    assert!(e.contains("read the logs of service 'api'"), "{e}");
    let api_deployment = server.service("api")["deployments"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let e = refused(
        &server.api_as(
            ci_secret,
            "GET",
            &format!("/v1/deployments/{api_deployment}"),
            "",
            None,
        ),
        403,
    );
    assert!(e.contains("service 'api'"), "{e}");
    let body = format!(r#"{{"source": "{api_src}", "name": "api"}}"#);
    let e = refused(
        &server.api_as(ci_secret, "POST", "/v1/deployments", "", Some(&body)),
        403,
    );
    assert!(e.contains("cannot deploy service 'api'"), "{e}");
    // Its own service from a path on the server's disk: the server would read it as root.
    let body = format!(r#"{{"source": "{web_src}", "name": "web"}}"#);
    let e = refused(
        &server.api_as(ci_secret, "POST", "/v1/deployments", "", Some(&body)),
        403,
    );
    assert!(
        e.contains("cannot deploy a path on the server's disk")
            && e.contains("needs an admin token"),
        "{e}"
    );
    // Nor as a file: URL, which git fetches from the same disk.
    let body = format!(r#"{{"source": "file://{web_src}", "name": "web"}}"#);
    let e = refused(
        &server.api_as(ci_secret, "POST", "/v1/deployments", "", Some(&body)),
        403,
    );
    assert!(e.contains("a path on the server's disk"), "{e}");
    let e = refused(
        &server.api_as(
            ci_secret,
            "POST",
            "/v1/tokens",
            "",
            Some(r#"{"name":"me","role":"admin"}"#),
        ),
        403,
    );
    assert_eq!(
        e,
        "this token (deploy, service web) cannot create tokens: that needs an admin token"
    );
    let e = refused(&server.api_as(ci_secret, "GET", "/metrics", "", None), 403);
    assert!(e.contains("for every service"), "{e}");
    let e = refused(
        &server.api_as(ci_secret, "POST", "/v1/services/web/scale", "", Some("{}")),
        403,
    );
    assert!(e.contains("that needs an admin token"), "{e}");
    // Through the CLI, as a CI job would run it: the API's message as it is.
    let out = server.hoist_as(
        ci_secret,
        &["tokens", "create", "--name", "me", "--role", "admin"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot create tokens: that needs an admin token"),
        "{}",
        stderr(&out)
    );
    let out = server.hoist_as(ci_secret, &["status", "api"]);
    assert!(!out.status.success() && stderr(&out).contains("it is for service 'web' only"));

    // ---- what it is for: `HOIST_TOKEN=… hoist deploy …`, and a rollback -----------------
    // The CLI uploads the commit for a token that may not deploy a path on the server.
    set_version(&web_repo, "v2");
    let out = server.hoist_as(ci_secret, &["deploy", web_src, "--name", "web"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    server.wait_for("web", "/", "probe v2", Duration::from_secs(30));
    let live = &server.service("web")["deployments"][0];
    assert!(
        live["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("upload:")),
        "{live}"
    );
    let out = server.hoist_as(ci_secret, &["rollback", "web"]);
    assert!(out.status.success(), "{}", stderr(&out));
    server.wait_for("web", "/", "probe v1", Duration::from_secs(30));
    // The rollback is recorded on the deployment it made live, and the CLI shows it.
    let view = server.service("web");
    let live_id = view["live_deployment"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let live = view["deployments"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["id"] == live_id.as_str()))
        .cloned()
        .unwrap_or_default();
    assert!(live["rolled_back_at"].is_i64(), "{live_id}: {live}\n{view}");
    let listed = stdout(&server.hoist_as(ci_secret, &["deployments", "web"]));
    assert!(
        listed
            .lines()
            .any(|l| l.contains(&live_id) && l.contains("rollback")),
        "{listed}"
    );
    // Its secrets too, as its deploys can run code that reads them; not a read token.
    assert_eq!(
        server
            .api_as(
                ci_secret,
                "GET",
                "/v1/services/web/env?reveal=true",
                "",
                None
            )
            .status,
        200
    );

    // ---- a read token reads, and deploys nothing ----------------------------------------
    assert_eq!(
        server
            .api_as(&reader, "GET", "/v1/services/api", "", None)
            .status,
        200
    );
    let out = server.hoist_as(&reader, &["deploy", web_src, "--name", "web"]);
    assert!(!out.status.success());
    // The CLI uploads for it first, which is refused the same way.
    assert!(
        stderr(&out).contains(
            "this token (read, every service) cannot upload a source for service 'web': that \
             needs a deploy token"
        ),
        "{}",
        stderr(&out)
    );
    let e = refused(
        &server.api_as(&reader, "POST", "/v1/services/web/rollback", "", None),
        403,
    );
    assert!(e.contains("that needs a deploy token"), "{e}");
    let e = refused(
        &server.api_as(&reader, "GET", "/v1/services/web/env?reveal=true", "", None),
        403,
    );
    assert!(e.contains("reveal the variables"), "{e}");

    // ---- a dashboard session is its token ------------------------------------------------
    let a = server.api_as(
        "",
        "POST",
        "/v1/session",
        "",
        Some(&format!(r#"{{"token":"{ci_secret}"}}"#)),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let info: SessionInfo = serde_json::from_str(a.body.trim()).unwrap();
    assert_eq!(
        (
            info.role.as_str(),
            info.service.as_ref().map(|s| s.as_str())
        ),
        ("deploy", Some("web"))
    );
    let cookie = a
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .map(|kv| format!("Cookie: {kv}\r\n"))
        .unwrap();
    assert_eq!(
        server
            .api_as("", "GET", "/v1/services/web", &cookie, None)
            .status,
        200
    );
    let e = refused(
        &server.api_as("", "GET", "/v1/services/api", &cookie, None),
        403,
    );
    assert!(e.contains("it is for service 'web' only"), "{e}");

    // ---- revoked: 401 for the token and its session, and their open streams end ---------
    // Followers opened before the revoke, with the token and with its session (NDJSON: no
    // keep-alive, so a stream the server does not end sits quiet until the read timeout).
    let follow = "GET /v1/services/web/logs?follow=true&tail=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    let (opened_tx, opened) = std::sync::mpsc::channel();
    let (ended_tx, ended) = std::sync::mpsc::channel();
    for (what, auth) in [
        (
            "the token's",
            format!("Authorization: Bearer {ci_secret}\r\n"),
        ),
        ("the session's", cookie.clone()),
    ] {
        let head = format!("{follow}{auth}Connection: close\r\n\r\n");
        let (port, opened_tx, ended_tx) = (server.api_port, opened_tx.clone(), ended_tx.clone());
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            let mut socket = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
            socket
                .set_read_timeout(Some(Duration::from_secs(120)))
                .expect("a timeout");
            socket.write_all(head.as_bytes()).expect("send the request");
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let _ = opened_tx.send((what, String::from_utf8_lossy(&got).to_string()));
            // Until the server ends the stream (Ok(0)), or the read times out (Err).
            let end = loop {
                match socket.read(&mut buf) {
                    Ok(0) => break Ok(()),
                    Ok(_) => {}
                    Err(e) => break Err(e.kind()),
                }
            };
            let _ = ended_tx.send((what, end));
        });
    }
    for _ in 0..2 {
        let (what, head) = opened
            .recv_timeout(Duration::from_secs(30))
            .expect("the follower's answer starts");
        assert!(head.starts_with("HTTP/1.1 200"), "{what} stream: {head}");
    }
    let out = server.hoist_ok(&["tokens", "revoke", ci.token.id.as_str()]);
    assert!(out.contains("revoked") && out.contains("ci"), "{out}");
    let e = refused(
        &server.api_as(ci_secret, "GET", "/v1/services/web", "", None),
        401,
    );
    assert!(e.contains("was revoked"), "{e}");
    assert_eq!(
        server
            .api_as("", "GET", "/v1/services/web", &cookie, None)
            .status,
        401
    );
    // The server ends them (within its 5 s recheck), long before the readers' timeout.
    for _ in 0..2 {
        let (what, end) = ended
            .recv_timeout(Duration::from_secs(150))
            .expect("the follower's read ends");
        assert_eq!(
            end,
            Ok(()),
            "{what} stream was not ended by the server after the revoke"
        );
    }
    let out = server.hoist_as(ci_secret, &["deploy", web_src, "--name", "web"]);
    assert!(
        !out.status.success() && stderr(&out).contains("was revoked"),
        "{}",
        stderr(&out)
    );
    let ls = server.hoist_ok(&["tokens", "ls"]);
    assert!(!ls.contains(ci.token.id.as_str()), "{ls}");
    // The server's own admin token is the last admin: it stays.
    let admin_id = list[0].id.as_str();
    let e = server.hoist_err(&["tokens", "revoke", admin_id]);
    assert!(e.contains("last admin token"), "{e}");

    // ---- on disk: the hash, never the secret ----------------------------------------------
    let db = rusqlite::Connection::open_with_flags(
        server.data.join("hoist.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let (hash, role, service, revoked): (String, String, Option<String>, Option<i64>) = db
        .query_row(
            "SELECT hash, role, service, revoked_at FROM api_tokens WHERE id = ?1",
            [ci.token.id.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(hash, sha256_hex(ci_secret));
    assert_eq!((role.as_str(), service.as_deref()), ("deploy", Some("web")));
    assert!(revoked.is_some());
    drop(db);
    for secret in [ci_secret, reader.as_str()] {
        let hex = secret.trim_start_matches("hoist_");
        let found = files_containing(&server.data, hex.as_bytes());
        assert!(found.is_empty(), "a token's secret on disk: {found:?}");
    }
    assert!(!files_containing(&server.data, sha256_hex(&reader).as_bytes()).is_empty());
}
