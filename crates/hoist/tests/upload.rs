//! Deploy from anywhere: `hoist deploy DIR --upload` sends the commit as a git bundle (the path
//! a server on another machine takes, forced), the server stores it content-addressed and
//! deploys it. Real server, real git, real sandboxes. One server (with a 1 MB upload limit)
//! is shared by the file's tests.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use common::upload::{Framing, bundle, git_out, incompressible, post_upload, store_objects};
use common::{Server, commit_all, git, git_repo, probe_app, wait_until};

fn server() -> Arc<Server> {
    static SLOT: Mutex<Weak<Server>> = Mutex::new(Weak::new());
    let mut slot = SLOT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = slot.upgrade() {
        return s;
    }
    let s = Arc::new(Server::start("upload", &["--max-upload", "1MB"]));
    *slot = Arc::downgrade(&s);
    s
}

/// Held by a test while it uploads and compares what the store holds, so that another
/// test's upload does not land in between.
fn store_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn set_version(repo: &Path, version: &str) {
    let toml = std::fs::read_to_string(probe_app().join("hoist.toml")).expect("probe hoist.toml");
    std::fs::write(
        repo.join("hoist.toml"),
        format!("{toml}\n[env]\nVERSION = \"{version}\"\n"),
    )
    .expect("write hoist.toml");
}

fn latest_deployment(s: &Server, name: &str) -> serde_json::Value {
    let (status, list) = s.api("GET", &format!("/v1/services/{name}/deployments"), None);
    assert_eq!(status, 200, "{list}");
    list[0].clone()
}

#[test]
fn an_uploaded_commit_is_deployed_recorded_and_a_reupload_stores_nothing() {
    let s = server();
    let repo = git_repo(&probe_app(), "up-cli");
    let repo_s = repo.to_str().unwrap();
    let commit = git_out(&repo, &["rev-parse", "HEAD"]);

    let lock = store_lock();
    let out = s.deploy_ok(&[repo_s, "--upload", "--name", "up-cli"]);
    drop(lock);
    assert!(out.contains("uploading"), "{out}");
    s.wait_for("up-cli", "/", "probe v1", Duration::from_secs(30));
    let d = latest_deployment(&s, "up-cli");
    assert_eq!(d["commit_sha"], commit.as_str(), "{d}");
    assert_eq!(d["source"], format!("upload:{commit}"), "{d}");
    assert_eq!(d["branch"], "main", "{d}");
    assert!(
        d["request"]["upload"]
            .as_str()
            .is_some_and(|u| u.starts_with("u-")),
        "{d}"
    );
    let status = s.status("up-cli");
    assert!(status.contains(&commit[..8]), "{status}");

    // The same commit again: sent thin against what the server has, nothing stored anew.
    let lock = store_lock();
    let objects = store_objects(&s);
    let again = s.deploy_ok(&[repo_s, "--upload", "--name", "up-cli"]);
    assert!(
        again.contains("0 B newly stored (the server had this commit)"),
        "{again}"
    );
    assert_eq!(store_objects(&s), objects, "a re-upload stores nothing");
    drop(lock);

    // A new commit: only what is new is sent, and it is what serves.
    set_version(&repo, "v2");
    commit_all(&repo, "v2");
    let v2 = git_out(&repo, &["rev-parse", "HEAD"]);
    let lock = store_lock();
    let out = s.deploy_ok(&[repo_s, "--upload", "--name", "up-cli"]);
    drop(lock);
    assert!(out.contains("only what the server lacks"), "{out}");
    s.wait_for("up-cli", "/", "probe v2", Duration::from_secs(30));
    assert_eq!(latest_deployment(&s, "up-cli")["commit_sha"], v2.as_str());

    // A rollback to the first upload works from its stored image, as for any source.
    s.hoist_ok(&["rollback", "up-cli"]);
    s.wait_for("up-cli", "/", "probe v1", Duration::from_secs(30));

    // Deleting the service forgets its uploads and their refs in the store.
    let (_, uploads) = s.api("GET", "/v1/services/up-cli/uploads", None);
    let ids: Vec<String> = uploads
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 3, "{uploads}");
    s.hoist_ok(&["delete", "up-cli", "--yes"]);
    assert_eq!(
        s.api("GET", "/v1/services/up-cli/uploads", None).1,
        serde_json::json!([])
    );
    let refs = git_out(
        &s.data.join("sources/store.git"),
        &["for-each-ref", "refs/uploads"],
    );
    for id in &ids {
        assert!(!refs.contains(id.as_str()), "{id} still in {refs}");
    }
}

#[test]
fn uncommitted_changes_are_deployed_and_the_repository_is_left_as_it_was() {
    let s = server();
    let repo = git_repo(&probe_app(), "up-wip");
    set_version(&repo, "wip");
    std::fs::write(repo.join("notes.txt"), "untracked\n").unwrap();
    let seen = |repo: &Path| {
        (
            git_out(repo, &["rev-parse", "HEAD"]),
            git_out(repo, &["status", "--porcelain"]),
            std::fs::read(repo.join(".git/index")).expect("index"),
            git_out(repo, &["count-objects", "-v"]),
            git_out(repo, &["for-each-ref"]),
        )
    };
    let before = seen(&repo);
    assert!(before.1.contains("hoist.toml") && before.1.contains("notes.txt"));

    let lock = store_lock();
    let out = s.deploy_ok(&[
        repo.to_str().unwrap(),
        "--include-uncommitted",
        "--name",
        "up-wip",
    ]);
    drop(lock);
    assert!(out.contains("2 uncommitted change(s) included"), "{out}");
    s.wait_for("up-wip", "/", "probe wip", Duration::from_secs(30));
    let d = latest_deployment(&s, "up-wip");
    let deployed = d["commit_sha"].as_str().unwrap_or_default().to_string();
    assert_ne!(deployed, before.0, "a snapshot commit, not HEAD: {d}");
    assert!(
        out.contains(&format!("snapshot commit {deployed}")),
        "{out}"
    );
    assert_eq!(
        seen(&repo),
        before,
        "index, HEAD, status, objects and refs untouched"
    );
}

#[test]
fn the_store_keeps_objects_once_and_refuses_bad_bundles_naming_what_is_wrong() {
    let s = server();
    let repo = git_repo(&probe_app(), "up-api");
    // A commit of this test's own (the probe's first commit may be another test's too).
    set_version(&repo, "api");
    commit_all(&repo, "api");
    let full = bundle(&repo, &["main"]);
    let _lock = store_lock();
    let commit = git_out(&repo, &["rev-parse", "HEAD"]);

    let (status, first) = post_upload(&s, "up-api", &full, Framing::Length(full.len()));
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["commit"], commit.as_str());
    assert_eq!(first["bytes_received"], full.len());
    assert!(
        first["bytes_stored"].as_u64().is_some_and(|b| b > 0),
        "{first}"
    );
    assert_eq!(first["already_stored"], false);
    let objects = store_objects(&s);
    let (status, second) = post_upload(&s, "up-api", &full, Framing::Chunked);
    assert_eq!(status, 201, "{second}");
    assert_eq!(
        (
            second["bytes_stored"].as_u64(),
            second["already_stored"].as_bool()
        ),
        (Some(0), Some(true)),
        "{second}"
    );
    assert_ne!(second["id"], first["id"]);
    assert_eq!(store_objects(&s), objects);
    let (status, list) = s.api("GET", "/v1/services/up-api/uploads", None);
    assert_eq!(status, 200);
    assert_eq!(list[0]["id"], second["id"], "newest first: {list}");

    let junk = b"this is not a git bundle";
    let (status, e) = post_upload(&s, "up-api", junk, Framing::Length(junk.len()));
    assert_eq!(status, 400, "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not a git bundle"),
        "{e}"
    );

    // A thin bundle against a commit the server never got.
    let other = git_repo(&probe_app(), "up-thin");
    set_version(&other, "thin-base");
    commit_all(&other, "thin base");
    let base = git_out(&other, &["rev-parse", "HEAD"]);
    set_version(&other, "thin");
    commit_all(&other, "thin");
    let thin = bundle(&other, &["main", &format!("^{base}")]);
    let (status, e) = post_upload(&s, "up-api", &thin, Framing::Length(thin.len()));
    assert_eq!(status, 400, "{e}");
    assert!(
        e["error"].as_str().unwrap_or_default().contains(&base),
        "{e}"
    );
    assert_eq!(
        store_objects(&s),
        objects,
        "a refused bundle stores nothing"
    );

    // Deploys naming uploads that are not theirs to name.
    let (status, e) = s.api(
        "POST",
        "/v1/deployments",
        Some(r#"{"upload": "u-0000000000"}"#),
    );
    assert_eq!((status, e["field"].as_str()), (400, Some("upload")), "{e}");
    let (status, e) = s.api(
        "POST",
        "/v1/deployments",
        Some(r#"{"upload": "d-0000000000"}"#),
    );
    assert_eq!((status, e["field"].as_str()), (400, Some("upload")), "{e}");
    let body = format!(r#"{{"upload": {}, "name": "someone-else"}}"#, first["id"]);
    let (status, e) = s.api("POST", "/v1/deployments", Some(&body));
    assert_eq!((status, e["field"].as_str()), (400, Some("upload")), "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap_or_default()
            .contains("of service 'up-api'"),
        "{e}"
    );
    let body = format!(r#"{{"upload": {}, "source": "/srv/app"}}"#, first["id"]);
    let (status, e) = s.api("POST", "/v1/deployments", Some(&body));
    assert_eq!((status, e["field"].as_str()), (400, Some("source")), "{e}");
    let (status, e) = s.api("POST", "/v1/deployments", Some(r#"{"name": "x"}"#));
    assert_eq!(status, 400, "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap_or_default()
            .contains("missing field `source`"),
        "{e}"
    );
}

#[test]
fn a_bundle_over_the_limit_is_refused_before_anything_is_stored() {
    let s = server();
    let repo = git_repo(&probe_app(), "up-big");
    incompressible(&repo.join("blob.bin"), 1536 * 1024);
    git(&repo, &["add", "blob.bin"]);
    commit_all(&repo, "big");
    let big = bundle(&repo, &["main"]);
    assert!(big.len() > 1 << 20);
    // Another test's uploads may land meanwhile, but none is near 1 MB: no file of the
    // store may be that large, and the incoming directory must be left empty.
    let no_big_file = || {
        let big_files: Vec<_> = store_objects(&s)
            .into_iter()
            .filter(|(_, size)| *size >= 1 << 20)
            .collect();
        assert!(big_files.is_empty(), "stored: {big_files:?}");
    };
    let uploads = || s.api("GET", "/v1/services/up-big/uploads", None).1;
    let incoming = || {
        std::fs::read_dir(s.data.join("sources/incoming"))
            .map(|d| d.count())
            .unwrap_or(0)
    };

    // Declared too large: refused from the header, the body never read.
    let (status, e) = post_upload(&s, "up-big", &[], Framing::Length(big.len()));
    assert_eq!(status, 413, "{e}");
    let msg = e["error"].as_str().unwrap_or_default().to_string();
    assert!(
        msg.contains(&format!("({} bytes)", big.len())) && msg.contains("at most 1.0 MB"),
        "{msg}"
    );

    // Undeclared: cut off once past the limit.
    let (status, e) = post_upload(&s, "up-big", &big[..(1 << 20) + 1], Framing::ChunkedOpen);
    assert_eq!(status, 413, "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap_or_default()
            .contains("is over 1.0 MB"),
        "{e}"
    );

    // The CLI knows the limit (GET /v1/server) and does not send it at all.
    let err = s.deploy_err(&[repo.to_str().unwrap(), "--upload", "--name", "up-big"]);
    assert!(err.contains("this server takes at most 1.0 MB"), "{err}");

    assert_eq!(uploads(), serde_json::json!([]));
    no_big_file();
    wait_until(
        "the incoming directory to be empty",
        Duration::from_secs(10),
        || (incoming() == 0).then_some(()),
        || format!("{} files", incoming()),
    );
    let (status, list) = s.api("GET", "/v1/services/up-big/deployments", None);
    assert!(
        status == 404 || list == serde_json::json!([]),
        "nothing deployed: {list}"
    );
}

#[test]
fn a_shallow_clone_deploys_as_a_ci_checkout_does() {
    let s = server();
    let repo = git_repo(&probe_app(), "up-shallow-origin");
    set_version(&repo, "shallow");
    commit_all(&repo, "shallow");
    let clone = common::scratch("up-shallow-clone");
    std::fs::remove_dir_all(&clone).unwrap();
    let url = format!("file://{}", repo.display());
    git(
        &repo,
        &["clone", "-q", "--depth", "1", &url, clone.to_str().unwrap()],
    );
    assert_eq!(
        git_out(&clone, &["rev-parse", "--is-shallow-repository"]),
        "true"
    );
    let lock = store_lock();
    s.deploy_ok(&[clone.to_str().unwrap(), "--upload", "--name", "up-shallow"]);
    drop(lock);
    s.wait_for("up-shallow", "/", "probe shallow", Duration::from_secs(30));
    let head = git_out(&clone, &["rev-parse", "HEAD"]);
    assert_eq!(
        latest_deployment(&s, "up-shallow")["commit_sha"],
        head.as_str()
    );
}

#[test]
fn a_directory_inside_the_repository_is_uploaded_as_the_root() {
    let s = server();
    let repo = common::scratch("up-sub-repo");
    let app = repo.join("services/web");
    std::fs::create_dir_all(&app).unwrap();
    for f in ["app.py", "hoist.toml"] {
        std::fs::copy(probe_app().join(f), app.join(f)).unwrap();
    }
    set_version(&app, "sub");
    std::fs::write(repo.join("README"), "the app is in services/web\n").unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    commit_all(&repo, "init");
    let lock = store_lock();
    s.deploy_ok(&[app.to_str().unwrap(), "--upload", "--name", "up-sub"]);
    drop(lock);
    s.wait_for("up-sub", "/", "probe sub", Duration::from_secs(30));
    let d = latest_deployment(&s, "up-sub");
    assert_eq!(d["request"]["root"], "services/web", "{d}");
}
