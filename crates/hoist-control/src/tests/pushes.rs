//! Deploy on push through the platform: the queue (one waiting push per service, started after
//! the deploy in progress), redeliveries, branches, watch paths and the pinned commit.

use std::process::Command;

use hoist_core::{DeploymentState, DeploymentTrigger};

use super::{TestPlatform, eventually, git, svc};
use crate::{PushEvent, PushOutcome};

/// Commits a change to the test repository; its id.
fn commit(t: &TestPlatform, file: &str, text: &str) -> String {
    std::fs::write(t.repo.join(file), text).expect("writing");
    git(&t.repo, &["add", "-A"]);
    git(&t.repo, &["commit", "-qm", file]);
    out(t, &["rev-parse", "HEAD"])
}

fn out(t: &TestPlatform, args: &[&str]) -> String {
    let o = Command::new("git")
        .arg("-C")
        .arg(&t.repo)
        .args(args)
        .output()
        .expect("git");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn push(t: &TestPlatform, delivery: &str, after: &str, files: &[&str]) -> PushOutcome {
    let branch = out(t, &["rev-parse", "--abbrev-ref", "HEAD"]);
    push_to(t, &branch, delivery, after, files)
}

fn push_to(
    t: &TestPlatform,
    branch: &str,
    delivery: &str,
    after: &str,
    files: &[&str],
) -> PushOutcome {
    t.platform
        .push(
            &svc(),
            PushEvent {
                delivery: delivery.into(),
                git_ref: format!("refs/heads/{branch}"),
                after: after.into(),
                files: Some(files.iter().map(|f| f.to_string()).collect()),
            },
        )
        .expect("the push is taken")
}

/// The service's deployment triggered by `delivery`, once it exists.
async fn by_delivery(t: &TestPlatform, delivery: &str) -> hoist_store::DeploymentRecord {
    let wanted = DeploymentTrigger::Push {
        delivery: delivery.into(),
    };
    eventually(&format!("the deployment of {delivery}"), || {
        t.platform
            .store()
            .list_deployments(&svc())
            .expect("listing")
            .into_iter()
            .find(|d| d.trigger == wanted)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_waits_for_the_deploy_in_progress_and_a_newer_one_supersedes_a_waiting_one() {
    let t = TestPlatform::start().await;
    t.deploy_live(t.request(&[])).await;
    let c2 = commit(&t, "two", "2");
    let c3 = commit(&t, "three", "3");
    t.fakes.builder.hold();
    let running = t.deploy(t.request(&[])).await;
    assert_eq!(
        push(&t, "a", &c2, &["two"]),
        PushOutcome::Queued { commit: c2.clone() }
    );
    assert_eq!(
        push(&t, "b", &c3, &["three"]),
        PushOutcome::Queued { commit: c3.clone() }
    );
    assert_eq!(push(&t, "b", &c3, &["three"]), PushOutcome::Duplicate);
    assert!(matches!(
        push_to(&t, "elsewhere", "c", &c3, &["three"]),
        PushOutcome::Ignored(why) if why.contains("refs/heads/elsewhere")
    ));
    // Nothing started over the deploy in progress.
    assert_eq!(
        t.platform.store().list_deployments(&svc()).unwrap().len(),
        2
    );
    t.fakes.builder.release();
    assert_eq!(t.finished(&running).await, DeploymentState::Live);
    let d = by_delivery(&t, "b").await;
    assert_eq!(t.finished(&d.id).await, DeploymentState::Live);
    let d = t.platform.store().get_deployment(&d.id).unwrap().unwrap();
    assert_eq!(d.commit_sha.as_deref(), Some(c3.as_str()));
    // The superseded push never became a deployment.
    let all = t.platform.store().list_deployments(&svc()).unwrap();
    assert_eq!(
        all.len(),
        3,
        "{:?}",
        all.iter().map(|d| &d.trigger).collect::<Vec<_>>()
    );
    assert_eq!(all[1].trigger, DeploymentTrigger::Api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_deploys_its_own_commit_and_watch_paths_filter_it() {
    let t = TestPlatform::start().await;
    let mut req = t.request(&[]);
    req.watch = Some(vec!["api/**".into()]);
    t.deploy_live(req).await;
    let c2 = commit(&t, "docs.md", "docs");
    assert!(matches!(
        push(&t, "docs", &c2, &["docs.md"]),
        PushOutcome::Ignored(why) if why.contains("watch paths")
    ));
    std::fs::create_dir_all(t.repo.join("api")).unwrap();
    let c3 = commit(&t, "api/x.py", "x");
    // The branch moves on before the deploy fetches: the push's own commit is deployed.
    let _c4 = commit(&t, "later", "4");
    assert_eq!(
        push(&t, "api", &c3, &["api/x.py"]),
        PushOutcome::Queued { commit: c3.clone() }
    );
    let d = by_delivery(&t, "api").await;
    assert_eq!(t.finished(&d.id).await, DeploymentState::Live);
    let d = t.platform.store().get_deployment(&d.id).unwrap().unwrap();
    assert_eq!(d.commit_sha.as_deref(), Some(c3.as_str()));
    // The push repeated the last request, watch paths included.
    assert_eq!(
        d.spec.unwrap().auto_deploy.watch,
        vec!["api/**".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_secrets_are_made_once_sealed_and_rotated() {
    let t = TestPlatform::start().await;
    t.deploy_live(t.request(&[])).await;
    let first = t
        .platform
        .webhook_secret(&svc())
        .unwrap()
        .expect("made at the first deploy");
    assert_eq!(t.platform.ensure_webhook_secret(&svc()).unwrap(), first);
    let sealed = t.platform.store().webhook_secret(&svc()).unwrap().unwrap();
    assert!(
        !sealed.windows(first.len()).any(|w| w == first.as_bytes()),
        "stored in plain text"
    );
    let rotated = t.platform.rotate_webhook_secret(&svc()).unwrap();
    assert_ne!(rotated, first);
    assert_eq!(t.platform.webhook_secret(&svc()).unwrap(), Some(rotated));
}
