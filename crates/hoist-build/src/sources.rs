//! Uploaded sources: the commits clients sent as git bundles (`hoist deploy . --upload`),
//! kept in one bare git repository under the data dir (`DATA/sources/store.git`). Git is the
//! content-addressed store: an object is stored once whatever number of uploads carry it, a
//! bundle whose commit is already there adds nothing (`git fetch` sees it is connected and
//! skips the pack), and a thin bundle (one made `--not` commits the server has) sends only
//! what is new. Each upload keeps its commit reachable with a ref `refs/uploads/<id>`.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use crate::BuildError;

/// The longest bundle header read: a ref line is under 300 bytes and a thin bundle lists a
/// few prerequisites, so a header past this is not one `git bundle create` wrote for a deploy.
const MAX_HEADER: u64 = 1024 * 1024;

/// Why an upload was refused or could not be stored. All but `Io` are the client's: the
/// bundle it sent.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(
        "the body is not a git bundle: it must start with `# v2 git bundle` or `# v3 git bundle` (make one with `git bundle create FILE REF`)"
    )]
    NotABundle,
    #[error("the git bundle's header is malformed: {0}")]
    BadHeader(String),
    #[error(
        "the bundle needs commits the server does not have: {} (send a full bundle: `git bundle create FILE REF` with no exclusions)",
        .0.join(", ")
    )]
    MissingPrerequisites(Vec<String>),
    #[error("the bundle's ref {0} does not point at a commit")]
    NotACommit(String),
    #[error("the bundle could not be stored: {0}")]
    Unpack(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl UploadError {
    /// Whether the bundle is at fault (a `400`), rather than the server.
    pub fn is_bad_bundle(&self) -> bool {
        !matches!(self, UploadError::Io { .. })
    }

    fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> UploadError {
        let context = context.into();
        move |source| UploadError::Io { context, source }
    }
}

/// A bundle's header: the refs it carries and the commits it needs the receiver to have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleHeader {
    /// `(object, refname)` pairs.
    pub refs: Vec<(String, String)>,
    /// Commits the bundle's pack may be thin against.
    pub prerequisites: Vec<String>,
}

fn is_object_name(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Reads a bundle's header (git's `gitformat-bundle`: the signature line, v3 capabilities
/// `@key=value`, prerequisites `-<oid> [comment]`, refs `<oid> <refname>`, an empty line).
pub fn parse_bundle_header(reader: impl BufRead) -> Result<BundleHeader, UploadError> {
    let mut lines = reader.take(MAX_HEADER).split(b'\n');
    let first = match lines.next() {
        Some(Ok(l)) => l,
        _ => return Err(UploadError::NotABundle),
    };
    let v3 = match first.as_slice() {
        b"# v2 git bundle" => false,
        b"# v3 git bundle" => true,
        _ => return Err(UploadError::NotABundle),
    };
    let mut header = BundleHeader {
        refs: Vec::new(),
        prerequisites: Vec::new(),
    };
    for line in lines {
        let line = line.map_err(|e| UploadError::BadHeader(e.to_string()))?;
        let line = String::from_utf8(line)
            .map_err(|_| UploadError::BadHeader("a header line is not UTF-8".into()))?;
        if line.is_empty() {
            if header.refs.is_empty() {
                return Err(UploadError::BadHeader("it names no ref".into()));
            }
            return Ok(header);
        }
        if let Some(cap) = line.strip_prefix('@') {
            // Only the object format matters here; the store is SHA-1 as git's default.
            if !v3 {
                return Err(UploadError::BadHeader(format!(
                    "a v2 bundle has no capability line (`@{cap}`)"
                )));
            }
            if let Some(format) = cap.strip_prefix("object-format=")
                && format != "sha1"
            {
                return Err(UploadError::BadHeader(format!(
                    "object format {format} is not supported (the store is sha1)"
                )));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix('-') {
            let oid = rest.split(' ').next().unwrap_or_default();
            if !is_object_name(oid) {
                return Err(UploadError::BadHeader(format!(
                    "bad prerequisite line `{}`",
                    hoist_core::echo(&line)
                )));
            }
            header.prerequisites.push(oid.to_string());
            continue;
        }
        match line.split_once(' ') {
            Some((oid, name)) if is_object_name(oid) && !name.is_empty() => {
                header.refs.push((oid.to_string(), name.to_string()))
            }
            _ => {
                return Err(UploadError::BadHeader(format!(
                    "bad ref line `{}`",
                    hoist_core::echo(&line)
                )));
            }
        }
    }
    Err(UploadError::BadHeader(
        "it ends before the empty line that closes it".into(),
    ))
}

/// An upload stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    pub commit: String,
    /// How much the store's objects grew by.
    pub bytes_stored: u64,
    /// The commit was in the store before.
    pub already_stored: bool,
}

/// The server's source store (see the module's documentation).
pub struct SourceStore {
    dir: PathBuf,
    /// One upload at a time: the bytes an upload stored are the store's growth while it
    /// ran, which another upload must not add to. Uploads are rare next to requests.
    lock: tokio::sync::Mutex<()>,
}

impl SourceStore {
    /// The store under `data_dir/sources` (made on the first upload). Uploads a stopped
    /// server was receiving (a `kill -9` mid-body) are removed: no request waits for them.
    pub fn new(data_dir: &Path) -> SourceStore {
        let dir = data_dir.join("sources");
        let _ = std::fs::remove_dir_all(dir.join("incoming"));
        SourceStore {
            dir,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The bare repository.
    pub fn repo(&self) -> PathBuf {
        self.dir.join("store.git")
    }

    /// Where uploads are written while they arrive: on the store's file system, removed
    /// once stored or refused.
    pub fn incoming_dir(&self) -> Result<PathBuf, UploadError> {
        let dir = self.dir.join("incoming");
        std::fs::create_dir_all(&dir).map_err(UploadError::io("creating the uploads directory"))?;
        Ok(dir)
    }

    async fn ensure_repo(&self) -> Result<PathBuf, UploadError> {
        let repo = self.repo();
        if !repo.join("HEAD").exists() {
            std::fs::create_dir_all(&self.dir)
                .map_err(UploadError::io("creating the source store"))?;
            let path = repo.display().to_string();
            git(&["init", "--quiet", "--bare", &path], &[])
                .await
                .map_err(UploadError::Unpack)?;
        }
        Ok(repo)
    }

    /// Stores the bundle at `bundle` under `refs/uploads/<ref_id>`: checks its header and
    /// prerequisites, then fetches it into the store. `shallow` are the shallow commits of the
    /// clone it was made in (full hex names): they are added to the store's own `shallow`
    /// file, git's record of where a history it holds stops, so that a commit of a shallow
    /// clone is stored without the parents the clone never had. Only trees are ever checked
    /// out of the store, so a cut history costs nothing.
    pub async fn ingest(
        &self,
        bundle: &Path,
        ref_id: &str,
        shallow: &[String],
    ) -> Result<Ingested, UploadError> {
        let file = std::fs::File::open(bundle).map_err(UploadError::io("opening the upload"))?;
        let header = parse_bundle_header(std::io::BufReader::new(file))?;
        let [(commit, refname)] = header.refs.as_slice() else {
            return Err(UploadError::BadHeader(format!(
                "it names {} refs: send one, the commit to deploy",
                header.refs.len()
            )));
        };
        let _one = self.lock.lock().await;
        let repo = self.ensure_repo().await?;
        let gd = format!("--git-dir={}", repo.display());
        if let Some(bad) = shallow.iter().find(|s| s.len() != 40 || !is_object_name(s)) {
            return Err(UploadError::BadHeader(format!(
                "shallow commit '{}' is not a full object name",
                hoist_core::echo(bad)
            )));
        }
        if !shallow.is_empty() {
            add_shallow(&repo, shallow)?;
        }
        let missing: Vec<String> = {
            let mut missing = Vec::new();
            for p in &header.prerequisites {
                if !has_commit(&gd, p).await {
                    missing.push(p.clone());
                }
            }
            missing
        };
        if !missing.is_empty() {
            return Err(UploadError::MissingPrerequisites(missing));
        }
        let path = bundle.display().to_string();
        git(&[&gd, "bundle", "verify", "--quiet", &path], &[])
            .await
            .map_err(|e| UploadError::BadHeader(e.replace(&path, "the bundle")))?;
        let already_stored = has_commit(&gd, commit).await;
        let objects = repo.join("objects");
        let before = dir_bytes(&objects);
        let target = format!("refs/uploads/{ref_id}");
        let refspec = format!("+{refname}:{target}");
        git(
            &[
                &gd,
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                &path,
                &refspec,
            ],
            &[],
        )
        .await
        .map_err(|e| UploadError::Unpack(e.replace(&path, "the bundle")))?;
        if !has_commit(&gd, commit).await {
            let _ = git(&[&gd, "update-ref", "-d", &target], &[]).await;
            return Err(UploadError::NotACommit(refname.clone()));
        }
        let after = dir_bytes(&objects);
        Ok(Ingested {
            commit: commit.clone(),
            bytes_stored: after.saturating_sub(before),
            already_stored,
        })
    }

    /// Whether the store holds `commit` with everything it needs (any upload's).
    pub async fn contains(&self, commit: &str) -> bool {
        let gd = format!("--git-dir={}", self.repo().display());
        is_object_name(commit) && has_commit(&gd, commit).await
    }

    /// Removes the refs of uploads (their objects stay until git's own gc drops what no ref
    /// reaches).
    pub async fn forget(&self, ref_ids: &[String]) {
        let gd = format!("--git-dir={}", self.repo().display());
        for id in ref_ids {
            let _ = git(
                &[&gd, "update-ref", "-d", &format!("refs/uploads/{id}")],
                &[],
            )
            .await;
        }
    }

    /// Writes the tree of stored `commit` into `dest` (which must not exist), as a fetch
    /// of a git source leaves it: the files, no `.git`.
    pub async fn checkout(&self, commit: &str, dest: &Path) -> Result<(), BuildError> {
        let fail = |message: String| BuildError::Fetch {
            source_url: hoist_core::upload_source(commit),
            message,
        };
        if !is_object_name(commit) {
            return Err(fail("not a commit name".into()));
        }
        std::fs::create_dir_all(dest).map_err(BuildError::io("creating the source directory"))?;
        // A throwaway index beside the tree, so the store (a bare repository) is only read.
        let index = dest.with_extension("index");
        let index_s = index.display().to_string();
        let env = [("GIT_INDEX_FILE", index_s.as_str())];
        let gd = format!("--git-dir={}", self.repo().display());
        let wt = format!("--work-tree={}", dest.display());
        let out = async {
            git(&[&gd, &wt, "read-tree", commit], &env).await?;
            git(&[&gd, &wt, "checkout-index", "--all", "--force"], &env).await
        }
        .await;
        let _ = std::fs::remove_file(&index);
        out.map(|_| ()).map_err(|e| {
            fail(format!(
                "the commit is not in the server's source store ({e})"
            ))
        })
    }
}

/// Adds `commits` to the store's `shallow` file (one name a line), those not there yet.
fn add_shallow(repo: &Path, commits: &[String]) -> Result<(), UploadError> {
    let file = repo.join("shallow");
    let mut known = std::fs::read_to_string(&file).unwrap_or_default();
    let before = known.len();
    for c in commits {
        if !known.lines().any(|l| l == c) {
            known.push_str(c);
            known.push('\n');
        }
    }
    if known.len() != before {
        // Whole or not at all: git reads this file on every command.
        let tmp = repo.join("shallow.hoist-tmp");
        std::fs::write(&tmp, &known).map_err(UploadError::io("recording shallow commits"))?;
        std::fs::rename(&tmp, &file).map_err(UploadError::io("recording shallow commits"))?;
    }
    Ok(())
}

async fn has_commit(git_dir: &str, oid: &str) -> bool {
    git(
        &[git_dir, "cat-file", "-e", &format!("{oid}^{{commit}}")],
        &[],
    )
    .await
    .is_ok()
}

/// The bytes of the files under `dir` (the store's objects: packs and loose objects).
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

async fn git(args: &[&str], env: &[(&str, &str)]) -> Result<String, String> {
    let out = Command::new("git")
        .args(args)
        .envs(env.iter().copied())
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        // A cancelled deploy drops this future; git must not go on writing.
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
mod tests;
