//! Fetching a source with the real git: a shallow clone of one branch, pinned to the commit
//! that was at its tip, without the `.git` directory (the image needs the tree, not history).

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use crate::BuildError;

#[derive(Debug, Clone)]
pub struct Fetched {
    pub commit: String,
    pub branch: String,
}

/// Clones `branch` (or the remote's HEAD) of `source` into `dest`, which must not exist.
pub async fn fetch(source: &str, branch: Option<&str>, dest: &Path) -> Result<Fetched, BuildError> {
    fetch_at(source, branch, None, dest).await
}

/// [`fetch`], then, when `commit` is given and the branch has moved past it since (a push
/// deploys the commit it announced), that commit: fetched by its id, which git's protocol v2
/// allows for any commit the remote has.
pub async fn fetch_at(
    source: &str,
    branch: Option<&str>,
    commit: Option<&str>,
    dest: &Path,
) -> Result<Fetched, BuildError> {
    // Errors are shown to users and stored: never with the URL's password or token.
    let shown = hoist_core::redact_credentials(source);
    let url = if hoist_core::is_remote_source(source) {
        source.to_string()
    } else {
        let path = Path::new(source);
        if !path.exists() {
            return Err(BuildError::SourceMissing(source.to_string()));
        }
        // A directory that is not a repository is told apart by the clone's own error
        // (below): a check before it would cost every deploy one more git process.
        // file:// makes git honour --depth for local repositories too.
        let abs =
            std::fs::canonicalize(path).map_err(BuildError::io(format!("resolving {source}")))?;
        format!("file://{}", abs.display())
    };
    let mut args = vec![
        "clone",
        "--quiet",
        "--depth",
        "1",
        "--no-tags",
        "--single-branch",
    ];
    if let Some(b) = branch {
        args.extend(["--branch", b]);
    }
    let dest_s = dest.display().to_string();
    args.extend(["--", url.as_str(), dest_s.as_str()]);
    if let Err(message) = git(&args, None).await {
        let lower = message.to_lowercase();
        if let Some(b) = branch
            && (lower.contains("not found in upstream") || lower.contains("remote branch"))
        {
            return Err(BuildError::BranchMissing {
                branch: b.to_string(),
                source_url: shown.clone(),
            });
        }
        if lower.contains("does not appear to be a git repository")
            || lower.contains("not a git repository")
        {
            return Err(BuildError::NotARepository(shown));
        }
        return Err(BuildError::Fetch {
            source_url: shown.clone(),
            message: message.replace(source, &shown),
        });
    }
    let wanted = commit;
    // Read off the fresh clone's own files when they are plain (a push's deploy waits for
    // this, and a git process costs as much as the rest of the step); else one process for
    // both, before a pin detaches HEAD: the commit, then the branch.
    let head = match read_head(dest) {
        Some((commit, name)) => Ok(format!("{commit}\n{name}")),
        None => git(&["rev-parse", "HEAD", "--abbrev-ref", "HEAD"], Some(dest)).await,
    };
    let (mut commit, branch) = match head {
        Ok(out) => {
            let mut lines = out.lines();
            let commit = lines.next().unwrap_or_default().to_string();
            let name = lines
                .next()
                .map(str::to_string)
                .unwrap_or_else(|| branch.unwrap_or("HEAD").to_string());
            (commit, name)
        }
        Err(message) => {
            return Err(BuildError::Fetch {
                source_url: shown.clone(),
                message: format!("the repository has no commits on that branch ({message})"),
            });
        }
    };
    if let Some(wanted) = wanted
        && !commit.eq_ignore_ascii_case(wanted)
    {
        let pinned = async {
            git(
                &["fetch", "--quiet", "--depth", "1", "origin", wanted],
                Some(dest),
            )
            .await?;
            git(
                &["checkout", "--quiet", "--detach", "FETCH_HEAD"],
                Some(dest),
            )
            .await?;
            git(&["rev-parse", "HEAD"], Some(dest)).await
        };
        commit = pinned.await.map_err(|message| BuildError::Fetch {
            source_url: shown.clone(),
            message: format!("commit {wanted} could not be fetched ({message})"),
        })?;
    }
    std::fs::remove_dir_all(dest.join(".git"))
        .map_err(BuildError::io("removing .git from the fetched tree"))?;
    Ok(Fetched { commit, branch })
}

/// The commit and branch of a fresh clone's HEAD, from `.git/HEAD` and the branch's loose ref
/// (where `git clone` writes them); `None` for anything else (a detached HEAD, a packed or
/// reftable ref), which `git rev-parse` then answers.
fn read_head(dest: &Path) -> Option<(String, String)> {
    let git_dir = dest.join(".git");
    let head = std::fs::read_to_string(git_dir.join("HEAD")).ok()?;
    let reference = head.trim().strip_prefix("ref: ")?;
    let name = reference.strip_prefix("refs/heads/")?;
    if name.contains("..") {
        return None;
    }
    let commit = std::fs::read_to_string(git_dir.join(reference)).ok()?;
    let commit = commit.trim();
    let is_id =
        (commit.len() == 40 || commit.len() == 64) && commit.bytes().all(|b| b.is_ascii_hexdigit());
    is_id.then(|| (commit.to_string(), name.to_string()))
}

/// The commit `branch` of `source` points at now (`git ls-remote`), without fetching
/// anything; `None` when the remote has no such branch.
pub async fn remote_head(source: &str, branch: &str) -> Result<Option<String>, BuildError> {
    let shown = hoist_core::redact_credentials(source);
    let reference = format!("refs/heads/{branch}");
    let out = git(&["ls-remote", "--", source, reference.as_str()], None)
        .await
        .map_err(|message| BuildError::Fetch {
            source_url: shown.clone(),
            message: message.replace(source, &shown),
        })?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .find(|(_, r)| *r == reference)
        .map(|(sha, _)| sha.to_string()))
}

async fn git(args: &[&str], cwd: Option<&Path>) -> Result<String, String> {
    let mut cmd = Command::new("git");
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let out = cmd
        .args(args)
        // Never wait for a password prompt: a private repo is an error, not a hang.
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "/bin/true")
        .stdin(Stdio::null())
        // A cancelled deploy drops this future; git must not go on writing into a build
        // directory that is about to be removed.
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("running git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git_ok(dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    #[tokio::test]
    async fn a_fetch_names_the_commit_and_branch_git_does_and_pins_a_commit() {
        let dir = std::env::temp_dir().join(format!("hoist-fetch-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let repo = dir.join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        git_ok(&repo, &["init", "-q", "-b", "trunk"]);
        std::fs::write(repo.join("a"), "1").unwrap();
        git_ok(&repo, &["add", "-A"]);
        git_ok(&repo, &["commit", "-qm", "one"]);
        let first = git_ok(&repo, &["rev-parse", "HEAD"]);
        std::fs::write(repo.join("a"), "2").unwrap();
        git_ok(&repo, &["commit", "-qam", "two"]);
        let second = git_ok(&repo, &["rev-parse", "HEAD"]);
        let source = repo.display().to_string();

        let tip = fetch(&source, None, &dir.join("tip")).await.unwrap();
        assert_eq!(
            (tip.commit.as_str(), tip.branch.as_str()),
            (second.as_str(), "trunk")
        );
        assert_eq!(std::fs::read_to_string(dir.join("tip/a")).unwrap(), "2");
        assert!(!dir.join("tip/.git").exists());

        let pinned = fetch_at(&source, Some("trunk"), Some(&first), &dir.join("pinned"))
            .await
            .unwrap();
        assert_eq!(
            (pinned.commit.as_str(), pinned.branch.as_str()),
            (first.as_str(), "trunk")
        );
        assert_eq!(std::fs::read_to_string(dir.join("pinned/a")).unwrap(), "1");

        assert_eq!(remote_head(&source, "trunk").await.unwrap(), Some(second));
        assert_eq!(remote_head(&source, "nope").await.unwrap(), None);
        let missing = fetch(
            &dir.join("none").display().to_string(),
            None,
            &dir.join("x"),
        )
        .await;
        assert!(
            matches!(missing, Err(BuildError::SourceMissing(_))),
            "{missing:?}"
        );
        std::fs::create_dir_all(dir.join("plain")).unwrap();
        let plain = fetch(
            &dir.join("plain").display().to_string(),
            None,
            &dir.join("y"),
        )
        .await;
        assert!(
            matches!(plain, Err(BuildError::NotARepository(_))),
            "{plain:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
