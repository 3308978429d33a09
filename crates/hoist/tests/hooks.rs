//! Deploy on push, end to end: a bare repository on disk is the service's remote, the test
//! pushes to it and then sends the webhook delivery GitHub (or GitLab, or Gitea) would send,
//! signed with the service's secret, to a real `hoist server`; the probe app answers with the
//! `VERSION` its pushed `hoist.toml` sets. The polling mode is the same without the webhook.

mod common;

use std::time::Duration;

use common::hooks::{Remote, deliver, github, hmac_hex, push_payload, rev};
use common::{Server, probe_app, wait_until};

/// A deploy, from fetch to an answering instance, on a loaded CI machine.
const DEPLOYED: Duration = Duration::from_secs(180);

fn probe_toml(version: &str) -> String {
    format!(
        "runtime = \"python\"\nstart = \"python3 app.py\"\nmemory = 128\n\n[env]\nVERSION = \"{version}\"\n"
    )
}

/// The service's deployments, newest first, as `(trigger kind, delivery, commit)`.
fn deployments(server: &Server, name: &str) -> Vec<(String, String, String)> {
    let (status, list) = server.api("GET", &format!("/v1/services/{name}/deployments"), None);
    assert_eq!(status, 200, "{list}");
    list.as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            (
                s(&d["trigger"]["kind"]),
                s(&d["trigger"]["delivery"]),
                s(&d["commit_sha"]),
            )
        })
        .collect()
}

fn secret(server: &Server, name: &str) -> (String, serde_json::Value) {
    let out = server.hoist_ok(&["hooks", name, "--json"]);
    let info: serde_json::Value = serde_json::from_str(&out).expect("hooks --json");
    (info["secret"].as_str().expect("a secret").to_string(), info)
}

#[test]
fn a_signed_push_deploys_its_commit_and_nothing_else_does() {
    let server = Server::start(
        "hooks-push",
        &["--public-api-url", "https://hoist.example.test/"],
    );
    let remote = Remote::new(&probe_app(), "hooks-push");
    let bare = remote.bare.to_str().unwrap();
    let out = server.deploy_ok(&[bare, "--name", "hk", "--branch", "main"]);
    assert!(out.contains("http://hk."), "{out}");
    assert!(server.get("hk", "/").1.starts_with("probe v1"));
    // The CLI's deploy is recorded as the CLI's.
    assert_eq!(deployments(&server, "hk")[0].0, "cli");

    let (secret, info) = secret(&server, "hk");
    assert_eq!(secret.len(), 64, "{info}");
    assert_eq!(
        info["urls"]["github"], "https://hoist.example.test/hooks/hk/github",
        "{info}"
    );
    assert_eq!(
        info["urls"]["gitlab"],
        "https://hoist.example.test/hooks/hk/gitlab"
    );
    assert_eq!(
        info["urls"]["gitea"],
        "https://hoist.example.test/hooks/hk/gitea"
    );
    assert_eq!(info["auto_deploy"], "push");
    assert_eq!(info["branch"], "main");
    let text = server.hoist_ok(&["hooks", "hk"]);
    assert!(
        text.contains(&secret) && text.contains("deploys pushes to main"),
        "{text}"
    );

    // A ping answers 200 once signed.
    let ping = deliver(
        &server,
        "/hooks/hk/github",
        &[
            ("X-GitHub-Event", "ping".into()),
            ("X-GitHub-Delivery", "ping-1".into()),
            (
                "X-Hub-Signature-256",
                format!("sha256={}", hmac_hex(&secret, b"{\"zen\":\"hi\"}")),
            ),
        ],
        b"{\"zen\":\"hi\"}",
    );
    assert_eq!(ping.status, 200, "{}", ping.body);
    assert!(ping.body.contains("pong"), "{}", ping.body);

    let before = rev(&remote.work, "HEAD");
    let v2 = remote.push("main", &[("hoist.toml", &probe_toml("v2"))], "v2");
    let body = push_payload("main", &before, &v2, &["hoist.toml"]);

    // A wrong signature, a missing one, and one over another body: 401, nothing deployed.
    for (what, headers) in [
        (
            "wrong secret",
            vec![
                ("X-GitHub-Event", "push".to_string()),
                ("X-GitHub-Delivery", "bad-1".into()),
                (
                    "X-Hub-Signature-256",
                    format!("sha256={}", hmac_hex("not the secret", &body)),
                ),
            ],
        ),
        (
            "no signature",
            vec![
                ("X-GitHub-Event", "push".to_string()),
                ("X-GitHub-Delivery", "bad-2".into()),
            ],
        ),
        (
            "another body",
            vec![
                ("X-GitHub-Event", "push".to_string()),
                ("X-GitHub-Delivery", "bad-3".into()),
                (
                    "X-Hub-Signature-256",
                    format!("sha256={}", hmac_hex(&secret, b"{}")),
                ),
            ],
        ),
    ] {
        let a = deliver(&server, "/hooks/hk/github", &headers, &body);
        assert_eq!(a.status, 401, "{what}: {}", a.body);
        assert!(a.body.contains("X-Hub-Signature-256"), "{what}: {}", a.body);
    }
    assert_eq!(
        deployments(&server, "hk").len(),
        1,
        "a refused delivery deployed"
    );

    // Signed: 202 at once, and the pushed commit serves.
    let a = github(&server, "hk", "delivery-v2", &secret, &body);
    assert_eq!(a.status, 202, "{}", a.body);
    assert!(
        a.body.contains("queued") && a.body.contains(&v2),
        "{}",
        a.body
    );
    server.wait_for("hk", "/", "probe v2", DEPLOYED);
    let list = deployments(&server, "hk");
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(
        list[0],
        ("push".to_string(), "delivery-v2".to_string(), v2.clone())
    );
    let shown = server.hoist_ok(&["deployments", "hk"]);
    assert!(shown.contains("push delivery-v2"), "{shown}");
    let status = server.status("hk");
    assert!(status.contains("(by push delivery-v2)"), "{status}");

    // The same delivery again: acknowledged, deployed once.
    let again = github(&server, "hk", "delivery-v2", &secret, &body);
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(again.body.contains("duplicate"), "{}", again.body);
    assert_eq!(deployments(&server, "hk").len(), 2);

    // A push to another branch: acknowledged, nothing deployed.
    let other = remote.push(
        "feature",
        &[("hoist.toml", &probe_toml("feature"))],
        "feature",
    );
    let body = push_payload("feature", &v2, &other, &["hoist.toml"]);
    let a = github(&server, "hk", "delivery-feature", &secret, &body);
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("refs/heads/feature"), "{}", a.body);
    assert_eq!(deployments(&server, "hk").len(), 2);

    // GitLab's token and Gitea's signature are checked the same way.
    let gl = |token: &str, delivery: &str| {
        deliver(
            &server,
            "/hooks/hk/gitlab",
            &[
                ("X-Gitlab-Event", "Push Hook".into()),
                ("X-Gitlab-Event-UUID", delivery.into()),
                ("X-Gitlab-Token", token.into()),
            ],
            &body,
        )
    };
    assert_eq!(gl("wrong", "gl-1").status, 401);
    let a = gl(&secret, "gl-2");
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("refs/heads/feature"), "{}", a.body);
    let gitea = |sig: String| {
        deliver(
            &server,
            "/hooks/hk/gitea",
            &[
                ("X-Gitea-Event", "push".into()),
                ("X-Gitea-Delivery", "gt-1".into()),
                ("X-Gitea-Signature", sig),
            ],
            &body,
        )
    };
    assert_eq!(gitea(hmac_hex("wrong", &body)).status, 401);
    assert_eq!(gitea(hmac_hex(&secret, &body)).status, 200);
    assert_eq!(deployments(&server, "hk").len(), 2);

    // Watch paths: a push outside them deploys nothing, one inside does.
    server.deploy_ok(&[
        bare, "--name", "hk", "--branch", "main", "--watch", "api/**",
    ]);
    assert_eq!(deployments(&server, "hk").len(), 3);
    let docs = remote.push("main", &[("docs/notes.md", "notes\n")], "docs");
    let body = push_payload("main", &v2, &docs, &["docs/notes.md"]);
    let a = github(&server, "hk", "delivery-docs", &secret, &body);
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("watch paths"), "{}", a.body);
    assert_eq!(deployments(&server, "hk").len(), 3);
    let v3 = remote.push(
        "main",
        &[
            ("api/handler.py", "# v3\n"),
            ("hoist.toml", &probe_toml("v3")),
        ],
        "v3",
    );
    let body = push_payload("main", &docs, &v3, &["api/handler.py", "hoist.toml"]);
    let a = github(&server, "hk", "delivery-v3", &secret, &body);
    assert_eq!(a.status, 202, "{}", a.body);
    server.wait_for("hk", "/", "probe v3", DEPLOYED);
    assert_eq!(deployments(&server, "hk")[0].2, v3);

    // --rotate: the old secret is refused from then on.
    let rotated = server.hoist_ok(&["hooks", "hk", "--rotate", "--json"]);
    let rotated: serde_json::Value = serde_json::from_str(&rotated).expect("json");
    let new_secret = rotated["secret"].as_str().expect("secret").to_string();
    assert_ne!(new_secret, secret);
    let a = github(&server, "hk", "delivery-old-secret", &secret, &body);
    assert_eq!(a.status, 401, "{}", a.body);
    let a = github(&server, "hk", "delivery-v3", &new_secret, &body);
    assert!(a.body.contains("duplicate"), "{}", a.body);

    // Bad input: each a specific error, nothing deployed.
    let a = github(&server, "nosuch", "x-1", &new_secret, &body);
    assert_eq!(a.status, 404, "{}", a.body);
    let a = deliver(&server, "/hooks/hk/bitbucket", &[], &body);
    assert_eq!(a.status, 404, "{}", a.body);
    let not_json = b"ref=refs/heads/main";
    let a = github(&server, "hk", "x-2", &new_secret, not_json);
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("not JSON"), "{}", a.body);
    let big = vec![b' '; 25 * 1024 * 1024 + 1];
    let a = github(&server, "hk", "x-3", &new_secret, &big);
    assert_eq!(a.status, 413, "{}", a.body);
    // A service whose only deploy never got its source has nothing to deploy on push.
    let missing = server.data.join("no-such-repo");
    server.deploy_err(&[missing.to_str().unwrap(), "--name", "nosrc"]);
    let a = github(&server, "nosrc", "x-4", &new_secret, &body);
    assert_eq!(a.status, 409, "{}", a.body);
    assert!(
        a.body.contains("no deployment with a git source"),
        "{}",
        a.body
    );
    assert_eq!(deployments(&server, "hk").len(), 4);
}

#[test]
fn polling_deploys_a_pushed_commit_within_two_intervals() {
    let server = Server::start("hooks-poll", &[]);
    let remote = Remote::new(&probe_app(), "hooks-poll");
    let bare = remote.bare.to_str().unwrap();
    server.deploy_ok(&[
        bare,
        "--name",
        "pl",
        "--auto-deploy",
        "poll",
        "--poll-interval",
        "2s",
    ]);
    let refused = server.deploy_err(&[bare, "--name", "pl", "--poll-interval", "100ms"]);
    assert!(refused.contains("poll_interval"), "{refused}");
    let info = server.hoist_ok(&["hooks", "pl"]);
    assert!(info.contains("polls main every 2s"), "{info}");

    let v2 = remote.push("main", &[("hoist.toml", &probe_toml("v2"))], "v2");
    let interval = Duration::from_secs(2);
    wait_until(
        "a deployment triggered by the poller for the pushed commit",
        2 * interval,
        || {
            deployments(&server, "pl")
                .first()
                .filter(|d| d.0 == "poll")
                .cloned()
        },
        || format!("{:?}", deployments(&server, "pl")),
    );
    server.wait_for("pl", "/", "probe v2", DEPLOYED);
    assert_eq!(deployments(&server, "pl")[0].2, v2);
    // The poller saw that commit deployed: it deploys nothing more until the branch moves.
    let v3 = remote.push("main", &[("hoist.toml", &probe_toml("v3"))], "v3");
    server.wait_for("pl", "/", "probe v3", DEPLOYED);
    let list = deployments(&server, "pl");
    assert_eq!(list.iter().filter(|d| d.0 == "poll").count(), 2, "{list:?}");
    assert_eq!(list[0].2, v3);
}
