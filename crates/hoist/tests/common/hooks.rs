//! For the deploy-on-push tests: a bare repository on disk as the remote, pushes to it, and
//! webhook deliveries signed as GitHub, GitLab and Gitea sign them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{Answer, Server, exchange, git, git_repo, scratch};

/// A work tree and the bare repository it pushes to (the service's remote).
pub struct Remote {
    pub work: PathBuf,
    pub bare: PathBuf,
}

impl Remote {
    /// `app` copied into a work tree with one commit on `main`, and a bare clone of it that
    /// the work tree pushes to.
    pub fn new(app: &Path, name: &str) -> Remote {
        let work = git_repo(app, name);
        let bare = scratch(&format!("bare-{name}")).join("remote.git");
        let st = Command::new("git")
            .args(["clone", "-q", "--bare"])
            .arg(&work)
            .arg(&bare)
            .status()
            .expect("git clone --bare");
        assert!(st.success(), "git clone --bare");
        git(&work, &["remote", "add", "hoist", bare.to_str().unwrap()]);
        Remote { work, bare }
    }

    /// Writes `files` (path, content), commits them on `branch` and pushes it; the commit id.
    pub fn push(&self, branch: &str, files: &[(&str, &str)], message: &str) -> String {
        let current = head_branch(&self.work);
        if current != branch {
            let exists = Command::new("git")
                .arg("-C")
                .arg(&self.work)
                .args(["rev-parse", "--verify", "-q", branch])
                .output()
                .expect("git rev-parse")
                .status
                .success();
            if exists {
                git(&self.work, &["checkout", "-q", branch]);
            } else {
                git(&self.work, &["checkout", "-q", "-b", branch]);
            }
        }
        for (path, content) in files {
            let p = self.work.join(path);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).expect("mkdir");
            }
            std::fs::write(&p, content).expect("write");
        }
        git(&self.work, &["add", "-A"]);
        git(
            &self.work,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.com",
                "commit",
                "-qm",
                message,
            ],
        );
        git(&self.work, &["push", "-q", "hoist", branch]);
        let sha = rev(&self.work, "HEAD");
        if current != branch {
            git(&self.work, &["checkout", "-q", &current]);
        }
        sha
    }
}

fn head_branch(repo: &Path) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "--abbrev-ref", "HEAD"])
        .output()
        .expect("git rev-parse");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn rev(repo: &Path, what: &str) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", what])
        .output()
        .expect("git rev-parse");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The body GitHub sends for a push of `after` to `branch` changing `files`.
pub fn push_payload(branch: &str, before: &str, after: &str, files: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "ref": format!("refs/heads/{branch}"),
        "before": before,
        "after": after,
        "created": false,
        "deleted": false,
        "forced": false,
        "repository": {"name": "app", "full_name": "me/app", "default_branch": "main"},
        "pusher": {"name": "t", "email": "t@example.com"},
        "head_commit": {"id": after, "message": "change", "added": [], "removed": [], "modified": files},
        "commits": [{"id": after, "message": "change", "added": [], "removed": [], "modified": files}]
    }))
    .expect("payload")
}

/// Hex HMAC-SHA256 of `body` under `secret`, as GitHub and Gitea compute it.
pub fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// POSTs a delivery to the API listener's `/hooks/{service}/{provider}` with `headers`.
pub fn deliver(server: &Server, path: &str, headers: &[(&str, String)], body: &[u8]) -> Answer {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    exchange(server.api_port, &bytes, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

/// A GitHub push delivery signed with `secret`.
pub fn github(server: &Server, service: &str, delivery: &str, secret: &str, body: &[u8]) -> Answer {
    deliver(
        server,
        &format!("/hooks/{service}/github"),
        &[
            ("X-GitHub-Event", "push".into()),
            ("X-GitHub-Delivery", delivery.into()),
            (
                "X-Hub-Signature-256",
                format!("sha256={}", hmac_hex(secret, body)),
            ),
        ],
        body,
    )
}
