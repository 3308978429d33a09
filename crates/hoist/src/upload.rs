//! `hoist deploy PATH` against a server on another machine (or with `--upload`): the commit
//! deployed goes to the server as a git bundle, since the server cannot read this machine's
//! files.
//!
//! - The commit is HEAD, or the branch `--branch` names; with `--include-uncommitted`, a
//!   snapshot commit of the work tree on top of HEAD. The snapshot and the bundle are made in
//!   a temporary repository that borrows the user's objects (git alternates) and has a
//!   temporary index: the user's repository (its index, refs, HEAD, objects) is only read.
//! - The bundle is thin against the commits the server already has for the service (its
//!   recent uploads that are ancestors here): only what is new is sent.
//! - A shallow clone (CI's `fetch-depth: 1`) sends its shallow commits along: the server
//!   records where the history stops and stores the commit without its parents.
//! - It is written to a temporary file first, so its size is known: one over the server's
//!   limit is refused here, before anything is sent; the rest is streamed with its length.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use hoist_api_types::{BUNDLE_CONTENT_TYPE, ServerInfo, Upload};
use hoist_core::{ServiceName, size_text};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::AsyncReadExt;

use crate::api::Api;

/// Whether `hoist deploy PATH` must upload: the server is on another machine. The rule:
/// the server's `machine` (a hash of its `/etc/machine-id`, from `GET /v1/server`) differs
/// from this machine's; when either side cannot tell, the server is taken to be elsewhere
/// unless `HOIST_API` names a loopback address (`localhost`, `127.0.0.0/8`, `::1`).
pub(crate) fn server_is_elsewhere(api_base: &str, server: Option<&ServerInfo>) -> bool {
    let here = ServerInfo::this_machine();
    match (server.and_then(|s| s.machine.as_deref()), here.as_deref()) {
        (Some(there), Some(here)) => there != here,
        _ => !is_loopback_url(api_base),
    }
}

fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What the deploy needs from an upload.
pub(crate) struct Uploaded {
    pub(crate) upload: Upload,
    /// The deploy's root directory: the path's place in its repository, then `--root`.
    pub(crate) root: Option<String>,
    /// The branch the commit came from (a label of the deployment), if on one.
    pub(crate) branch: Option<String>,
}

/// How `hoist deploy` asked for the upload.
pub(crate) struct UploadAsk<'a> {
    pub(crate) path: &'a Path,
    pub(crate) service: &'a ServiceName,
    pub(crate) branch: Option<&'a str>,
    pub(crate) root: Option<&'a str>,
    pub(crate) include_uncommitted: bool,
    /// Lines go to stderr (`--json` keeps stdout for the document).
    pub(crate) to_stderr: bool,
}

/// A temporary directory removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn say(to_stderr: bool, text: &str) -> anyhow::Result<()> {
    if to_stderr {
        crate::out::errln!("{text}");
        Ok(())
    } else {
        crate::out::outln!("{text}")
    }
}

/// Runs git in `dir` with `env`; its stdout, trimmed, or its stderr as the error.
fn git(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .context("running git (is it installed?)")?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        bail!(
            "git {}: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    }
}

/// The commit `hoist deploy` deploys from the repository at `top`, and the branch it is on.
fn commit_to_deploy(top: &Path, branch: Option<&str>) -> anyhow::Result<(String, Option<String>)> {
    if let Some(b) = branch {
        let commit = git(
            top,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("refs/heads/{b}^{{commit}}"),
            ],
            &[],
        )
        .or_else(|_| {
            git(
                top,
                &[
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    &format!("{b}^{{commit}}"),
                ],
                &[],
            )
        })
        .map_err(|_| anyhow::anyhow!("branch '{b}' does not exist in {}", top.display()))?;
        return Ok((commit, Some(b.to_string())));
    }
    let commit = git(top, &["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], &[])
        .map_err(|_| anyhow::anyhow!("{} has no commits yet: commit something to deploy (or pass --include-uncommitted after a first commit)", top.display()))?;
    let current = git(top, &["rev-parse", "--abbrev-ref", "HEAD"], &[]).ok();
    Ok((commit, current.filter(|b| b != "HEAD")))
}

/// A commit of the work tree as it is (tracked changes and untracked files that are not
/// ignored) on top of `head`, written into `objects` (the scratch repository's): the user's
/// index and object store are not written.
fn snapshot(
    top: &Path,
    head: &str,
    scratch: &Path,
    objects: &str,
    user_objects: &str,
) -> anyhow::Result<String> {
    let index = scratch.join("index").display().to_string();
    let env = [
        ("GIT_INDEX_FILE", index.as_str()),
        ("GIT_OBJECT_DIRECTORY", objects),
        ("GIT_ALTERNATE_OBJECT_DIRECTORIES", user_objects),
        ("GIT_AUTHOR_NAME", "hoist"),
        ("GIT_AUTHOR_EMAIL", "hoist@localhost"),
        ("GIT_COMMITTER_NAME", "hoist"),
        ("GIT_COMMITTER_EMAIL", "hoist@localhost"),
    ];
    git(top, &["read-tree", head], &env)?;
    git(top, &["add", "--all", "."], &env)?;
    let tree = git(top, &["write-tree"], &env)?;
    let short = &head[..head.len().min(12)];
    git(
        top,
        &[
            "commit-tree",
            &tree,
            "-p",
            head,
            "-m",
            &format!("hoist deploy --include-uncommitted: the work tree on {short}"),
        ],
        &env,
    )
}

/// Makes the bundle, sends it, and answers what the server stored.
pub(crate) async fn upload(
    api: &Api,
    server: Option<&ServerInfo>,
    ask: UploadAsk<'_>,
) -> anyhow::Result<Uploaded> {
    let path = ask.path;
    let top = git(path, &["rev-parse", "--show-toplevel"], &[])
        .map_err(|_| anyhow::anyhow!("{} is not in a git repository", path.display()))?;
    let top = PathBuf::from(top);
    let prefix = git(path, &["rev-parse", "--show-prefix"], &[])?;
    let prefix = prefix.trim_end_matches('/');
    let root = match (prefix.is_empty(), ask.root) {
        (true, r) => r.map(str::to_string),
        (false, None) => Some(prefix.to_string()),
        (false, Some(r)) => Some(Path::new(prefix).join(r).display().to_string()),
    };
    // A shallow clone (CI's usual checkout) lacks the commit's history: the server is told
    // where it stops, and stores the commit without it.
    let shallow: Vec<String> =
        if git(&top, &["rev-parse", "--is-shallow-repository"], &[])? == "true" {
            let file = git(
                &top,
                &[
                    "rev-parse",
                    "--path-format=absolute",
                    "--git-path",
                    "shallow",
                ],
                &[],
            )?;
            std::fs::read_to_string(&file)
                .with_context(|| format!("reading {file}"))?
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        } else {
            Vec::new()
        };
    let (mut commit, branch) = commit_to_deploy(&top, ask.branch)?;
    let current = git(&top, &["rev-parse", "--abbrev-ref", "HEAD"], &[]).unwrap_or_default();

    let scratch = Scratch(std::env::temp_dir().join(format!(
        "hoist-upload-{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond()
    )));
    let repo = scratch.0.join("up.git");
    let repo_s = repo.display().to_string();
    git(&top, &["init", "--quiet", "--bare", &repo_s], &[])?;
    let user_objects = git(
        &top,
        &[
            "rev-parse",
            "--path-format=absolute",
            "--git-path",
            "objects",
        ],
        &[],
    )?;
    std::fs::write(
        repo.join("objects/info/alternates"),
        format!("{user_objects}\n"),
    )
    .context("preparing the upload")?;
    let objects = repo.join("objects").display().to_string();
    if !shallow.is_empty() {
        // The scratch repository's history stops where the clone's does.
        std::fs::write(repo.join("shallow"), format!("{}\n", shallow.join("\n")))
            .context("preparing the upload")?;
    }

    if ask.include_uncommitted {
        if ask.branch.is_some_and(|b| b != current) {
            bail!(
                "--include-uncommitted takes the work tree, which is on '{current}', not on branch '{}'",
                ask.branch.unwrap_or_default()
            );
        }
        let dirty = git(&top, &["status", "--porcelain"], &[])?;
        if dirty.is_empty() {
            say(
                ask.to_stderr,
                "no uncommitted changes: deploying the last commit",
            )?;
        } else {
            commit = snapshot(&top, &commit, &scratch.0, &objects, &user_objects)?;
            let n = dirty.lines().count();
            say(
                ask.to_stderr,
                &format!("{n} uncommitted change(s) included: snapshot commit {commit}"),
            )?;
        }
    }
    let gd = format!("--git-dir={repo_s}");
    git(
        &top,
        &[&gd, "update-ref", "refs/heads/deploy", &commit],
        &[],
    )?;

    // What the server has already: its recent uploads for this service that are this
    // commit's ancestors here (or the commit itself, whose parents it then has).
    let known: Vec<Upload> = api
        .get(&format!("/v1/services/{}/uploads", ask.service))
        .await
        .unwrap_or_default();
    // Each commit once: a service redeployed from the same commit has many uploads of it.
    let mut commits: Vec<&str> = known.iter().map(|k| k.commit.as_str()).collect();
    commits.sort_unstable();
    commits.dedup();
    let mut exclude: Vec<String> = Vec::new();
    for k in commits {
        if k == commit {
            let parents =
                git(&top, &[&gd, "rev-parse", &format!("{commit}^@")], &[]).unwrap_or_default();
            exclude.extend(parents.lines().map(str::to_string));
        } else if git(&top, &[&gd, "merge-base", "--is-ancestor", k, &commit], &[]).is_ok() {
            exclude.push(k.to_string());
        }
    }
    exclude.sort();
    exclude.dedup();
    let bundle = scratch.0.join("deploy.bundle");
    let bundle_s = bundle.display().to_string();
    let mut args = vec![
        gd.as_str(),
        "bundle",
        "create",
        "--quiet",
        bundle_s.as_str(),
        "refs/heads/deploy",
    ];
    let nots: Vec<String> = exclude.iter().map(|k| format!("^{k}")).collect();
    args.extend(nots.iter().map(String::as_str));
    git(&top, &args, &[])?;
    let size = std::fs::metadata(&bundle)
        .context("reading the bundle")?
        .len();
    if let Some(limit) = server.and_then(|s| s.max_upload_bytes)
        && size > limit
    {
        bail!(
            "the upload is {} ({size} bytes); this server takes at most {} ({limit} bytes, `hoist server --max-upload`)",
            size_text(size),
            size_text(limit)
        );
    }
    let short = &commit[..commit.len().min(12)];
    say(
        ask.to_stderr,
        &format!(
            "uploading {short} ({}{})",
            size_text(size),
            if exclude.is_empty() {
                String::new()
            } else {
                format!(
                    ", only what the server lacks of {} known commit(s)",
                    exclude.len()
                )
            }
        ),
    )?;
    let upload = send(api, ask.service, &bundle, size, &shallow).await?;
    say(
        ask.to_stderr,
        &format!(
            "==> upload {}: {} sent, {} newly stored{}",
            upload.id,
            size_text(upload.bytes_received),
            size_text(upload.bytes_stored),
            if upload.already_stored {
                " (the server had this commit)"
            } else {
                ""
            }
        ),
    )?;
    Ok(Uploaded {
        upload,
        root,
        branch,
    })
}

/// Streams the bundle with its length, with a progress bar on a terminal.
async fn send(
    api: &Api,
    service: &ServiceName,
    bundle: &Path,
    size: u64,
    shallow: &[String],
) -> anyhow::Result<Upload> {
    let file = tokio::fs::File::open(bundle)
        .await
        .context("opening the bundle")?;
    let bar = std::io::stderr().is_terminal().then(|| {
        ProgressBar::new(size).with_style(
            ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {bytes_per_sec} {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        )
    });
    let counter = bar.clone();
    let chunks = futures_util::stream::unfold(file, move |mut file| {
        let counter = counter.clone();
        async move {
            let mut buf = vec![0u8; 256 * 1024];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    if let Some(bar) = &counter {
                        bar.inc(n as u64);
                    }
                    Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), file))
                }
                Err(e) => Some((Err(e), file)),
            }
        }
    })
    .boxed();
    let mut req = api.req(
        reqwest::Method::POST,
        &format!("/v1/services/{service}/uploads"),
    );
    if !shallow.is_empty() {
        req = req.query(&[("shallow", shallow.join(","))]);
    }
    let result = api
        .call::<Upload>(
            req.header(reqwest::header::CONTENT_TYPE, BUNDLE_CONTENT_TYPE)
                .header(reqwest::header::CONTENT_LENGTH, size)
                .body(reqwest::Body::wrap_stream(chunks)),
        )
        .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses_are_this_machine() {
        for url in [
            "http://127.0.0.1:7070",
            "http://localhost:7070/",
            "http://[::1]:7070",
            "https://user:pw@127.0.0.2",
            "http://LOCALHOST",
        ] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in [
            "http://10.0.0.5:7070",
            "https://hoist.example.com",
            "http://[2001:db8::1]:80",
        ] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }

    #[test]
    fn the_servers_machine_decides_when_both_sides_know_it() {
        let mut info = ServerInfo::new("0", "localhost");
        if info.machine.is_none() {
            return; // no /etc/machine-id here: the address rule below is all there is
        }
        assert!(
            !server_is_elsewhere("http://10.0.0.5:7070", Some(&info)),
            "same machine"
        );
        info.machine = Some("0000000000000000".into());
        assert!(
            server_is_elsewhere("http://127.0.0.1:7070", Some(&info)),
            "other machine"
        );
        info.machine = None;
        assert!(!server_is_elsewhere("http://127.0.0.1:7070", Some(&info)));
        assert!(server_is_elsewhere("http://10.0.0.5:7070", None));
    }
}
