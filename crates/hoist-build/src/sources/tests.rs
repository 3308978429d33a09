//! The source store with the real git on temporary directories (no root needed).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "hoist-sources-{name}-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A repository with two commits; answers (repo, first, second).
fn repo(base: &Path) -> (PathBuf, String, String) {
    let r = base.join("repo");
    std::fs::create_dir_all(r.join("sub")).unwrap();
    run(&r, &["init", "-q", "-b", "main"]);
    std::fs::write(r.join("app.py"), "print('one')\n").unwrap();
    std::fs::write(r.join("sub/data.txt"), "x".repeat(5000)).unwrap();
    run(&r, &["add", "-A"]);
    run(&r, &["commit", "-qm", "one"]);
    let first = run(&r, &["rev-parse", "HEAD"]);
    std::fs::write(r.join("app.py"), "print('two')\n").unwrap();
    run(&r, &["commit", "-qam", "two"]);
    let second = run(&r, &["rev-parse", "HEAD"]);
    (r, first, second)
}

fn bundle(repo: &Path, out: &Path, revs: &[&str]) {
    let o = out.display().to_string();
    let mut args = vec!["bundle", "create", "-q", o.as_str()];
    args.extend(revs);
    run(repo, &args);
}

#[test]
fn headers_are_read_as_git_writes_them() {
    let oid = "57c7124f4e0873315bc0721cdfc055fe8a6cc31c";
    let v2 = format!("# v2 git bundle\n-{oid} one\n{oid} refs/heads/main\n\nPACK");
    let h = parse_bundle_header(v2.as_bytes()).unwrap();
    assert_eq!(h.prerequisites, [oid]);
    assert_eq!(h.refs, [(oid.to_string(), "refs/heads/main".to_string())]);
    let v3 = format!("# v3 git bundle\n@object-format=sha1\n{oid} HEAD\n\n");
    assert_eq!(parse_bundle_header(v3.as_bytes()).unwrap().refs.len(), 1);
    let sha256 = format!("# v3 git bundle\n@object-format=sha256\n{oid} HEAD\n\n");
    assert!(matches!(
        parse_bundle_header(sha256.as_bytes()),
        Err(UploadError::BadHeader(m)) if m.contains("sha256")
    ));
    for junk in [
        "",
        "PK\u{3}\u{4}zip",
        "{\"json\": 1}",
        "# v9 git bundle\n\n",
    ] {
        assert!(
            matches!(
                parse_bundle_header(junk.as_bytes()),
                Err(UploadError::NotABundle)
            ),
            "{junk:?}"
        );
    }
    let unterminated = format!("# v2 git bundle\n{oid} HEAD\n");
    assert!(matches!(
        parse_bundle_header(unterminated.as_bytes()),
        Err(UploadError::BadHeader(_))
    ));
    let no_ref = "# v2 git bundle\n\nPACK";
    assert!(matches!(
        parse_bundle_header(no_ref.as_bytes()),
        Err(UploadError::BadHeader(m)) if m.contains("no ref")
    ));
    let bad_ref = "# v2 git bundle\nnothex refs/heads/x\n\n";
    assert!(matches!(
        parse_bundle_header(bad_ref.as_bytes()),
        Err(UploadError::BadHeader(m)) if m.contains("bad ref line")
    ));
}

#[tokio::test]
async fn an_upload_is_stored_once_and_checked_out_as_its_tree() {
    let s = Scratch::new("once");
    let (r, _first, second) = repo(&s.0);
    let store = SourceStore::new(&s.0.join("data"));
    let full = s.0.join("full.bundle");
    bundle(&r, &full, &["main"]);

    let a = store.ingest(&full, "u-0000000001", &[]).await.unwrap();
    assert_eq!(a.commit, second);
    assert!(!a.already_stored);
    assert!(a.bytes_stored > 0, "{a:?}");
    assert!(store.contains(&second).await);

    // The same commit again: known, connected, nothing new stored.
    let b = store.ingest(&full, "u-0000000002", &[]).await.unwrap();
    assert_eq!((b.already_stored, b.bytes_stored), (true, 0), "{b:?}");

    let dest = s.0.join("checkout");
    store.checkout(&second, &dest).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(dest.join("app.py")).unwrap(),
        "print('two')\n"
    );
    assert_eq!(
        std::fs::read(dest.join("sub/data.txt")).unwrap().len(),
        5000
    );
    assert!(!dest.join(".git").exists());
    assert!(
        !dest.with_extension("index").exists(),
        "the index is removed"
    );

    let missing = "0123456789012345678901234567890123456789";
    assert!(store.checkout(missing, &s.0.join("other")).await.is_err());
}

#[tokio::test]
async fn a_thin_bundle_needs_its_prerequisites_and_then_sends_only_what_is_new() {
    let s = Scratch::new("thin");
    let (r, first, second) = repo(&s.0);
    let store = SourceStore::new(&s.0.join("data"));
    let thin = s.0.join("thin.bundle");
    bundle(&r, &thin, &["main", &format!("^{first}")]);

    let e = store.ingest(&thin, "u-0000000003", &[]).await.unwrap_err();
    match &e {
        UploadError::MissingPrerequisites(list) => assert_eq!(list, std::slice::from_ref(&first)),
        other => panic!("{other:?}"),
    }
    assert!(e.is_bad_bundle());
    assert!(e.to_string().contains(&first), "{e}");
    assert!(!store.contains(&second).await);

    let base = s.0.join("base.bundle");
    // `git bundle create FILE <sha>` writes no ref (git refuses it as empty): the base goes
    // through a branch, as the CLI's bundles go through one.
    run(&r, &["branch", "base", &first]);
    bundle(&r, &base, &["base"]);
    store.ingest(&base, "u-0000000004", &[]).await.unwrap();
    let t = store.ingest(&thin, "u-0000000005", &[]).await.unwrap();
    assert_eq!(t.commit, second);
    assert!(store.contains(&second).await);
}

#[tokio::test]
async fn a_body_that_is_not_a_bundle_is_refused_before_git_runs() {
    let s = Scratch::new("junk");
    let store = SourceStore::new(&s.0.join("data"));
    let junk = s.0.join("junk");
    std::fs::write(&junk, b"hello, not a bundle").unwrap();
    let e = store.ingest(&junk, "u-0000000006", &[]).await.unwrap_err();
    assert!(matches!(e, UploadError::NotABundle), "{e:?}");
    assert!(!store.repo().exists(), "nothing was set up for it");
}

#[tokio::test]
async fn a_commit_of_a_shallow_clone_is_stored_with_its_shallow_edge() {
    let s = Scratch::new("shallow");
    let (r, _first, second) = repo(&s.0);
    let clone = s.0.join("clone");
    let url = format!("file://{}", r.display());
    run(
        &s.0,
        &["clone", "-q", "--depth", "1", &url, clone.to_str().unwrap()],
    );
    let b = s.0.join("shallow.bundle");
    bundle(&clone, &b, &["HEAD"]);
    let store = SourceStore::new(&s.0.join("data"));
    // Without the edge, git refuses it: the parents are missing.
    let e = store.ingest(&b, "u-0000000007", &[]).await.unwrap_err();
    assert!(matches!(e, UploadError::Unpack(_)), "{e:?}");
    let edge = std::fs::read_to_string(clone.join(".git/shallow")).unwrap();
    let edge: Vec<String> = edge.lines().map(str::to_string).collect();
    assert_eq!(edge, std::slice::from_ref(&second));
    let ok = store.ingest(&b, "u-0000000008", &edge).await.unwrap();
    assert_eq!(ok.commit, second);
    let dest = s.0.join("checkout");
    store.checkout(&second, &dest).await.unwrap();
    assert!(dest.join("app.py").exists());
}
