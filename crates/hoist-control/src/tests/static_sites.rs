//! Static folders on the fakes: a static site starts no instance (not at the deploy, not for
//! the minimum), a deploy whose folder is missing fails and leaves the live one, and the
//! pool gets the live deployment's site (and loses it with a deploy that has none).

use std::sync::atomic::Ordering;

use hoist_core::DeploymentState;

use super::{TestPlatform, git, svc};
use crate::DeployRequest;

fn with_site(t: &TestPlatform) {
    std::fs::create_dir_all(t.repo.join("public/assets")).expect("mkdir");
    std::fs::write(t.repo.join("public/index.html"), "<h1>site</h1>\n").expect("write");
    std::fs::write(t.repo.join("public/assets/app.3f9c1a2b.js"), "1;\n").expect("write");
    git(&t.repo, &["add", "."]);
    git(&t.repo, &["commit", "-qm", "site"]);
}

fn static_request(t: &TestPlatform, dir: &str) -> DeployRequest {
    DeployRequest {
        start: None,
        static_dir: Some(dir.into()),
        ..t.request(&[])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_site_never_starts_an_instance() {
    let t = TestPlatform::start().await;
    with_site(&t);
    let mut req = static_request(&t, "public");
    req.scaling.min_instances = Some(2);
    let id = t.deploy_live(req).await;
    let d = t
        .platform
        .store()
        .get_deployment(&id)
        .expect("reading")
        .expect("the deployment");
    let folder = d.static_folder.expect("the static folder on record");
    assert_eq!((folder.files, folder.dir.as_str()), (2, "public"));
    let table = t.gateway.table();
    let pool = table.route("app").expect("a route");
    let site = pool.static_site().expect("the pool serves the site");
    assert!(!site.config().has_app, "a static site has no app");
    // The scaler does not keep its minimum warm: there is nothing to run.
    t.platform.scale_once();
    assert_eq!(pool.starting(), 0);
    assert_eq!(t.fakes.sandboxes.start_attempts.load(Ordering::SeqCst), 0);
    assert!(t.fakes.sandboxes.running().is_empty());
    assert_eq!(t.running(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_folder_fails_the_deploy_and_a_deploy_without_one_clears_the_site() {
    let t = TestPlatform::start().await;
    with_site(&t);
    let first = t
        .deploy_live(DeployRequest {
            static_dir: Some("public".into()),
            ..t.request(&[])
        })
        .await;
    let table = t.gateway.table();
    let pool = table.route("app").expect("a route");
    assert!(pool.static_site().is_some_and(|s| s.config().has_app));

    let failed = t.deploy(static_request(&t, "dist")).await;
    assert_eq!(t.finished(&failed).await, DeploymentState::Failed);
    let reason = t
        .platform
        .store()
        .get_deployment(&failed)
        .expect("reading")
        .and_then(|d| d.failure_reason)
        .unwrap_or_default();
    assert!(
        reason.starts_with("--static dist: no such folder after the build; the app's root directory holds README, public/"),
        "{reason}"
    );
    assert_eq!(t.live(), Some(first));
    assert!(pool.static_site().is_some(), "the live site keeps serving");

    // No folder named and none detected (public/ holds an index.html, but there is a start
    // command, so it is not a static site): the site goes with the switch.
    t.deploy_live(t.request(&[])).await;
    assert!(pool.static_site().is_none());
    assert_eq!(svc().as_str(), "app");
}
