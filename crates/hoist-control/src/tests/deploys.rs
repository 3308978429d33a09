//! Deploys that overlap: with each other, with an env change, with a rollback.

use std::sync::atomic::Ordering;

use hoist_core::DeploymentState;

use super::{TestPlatform, eventually, svc};
use crate::EnvChange;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deploys_racing_the_later_wins_and_the_earlier_ends_cancelled() {
    let t = TestPlatform::start().await;
    t.fakes.builder.hold();
    let first = t.deploy(t.request(&["WHO=first"])).await;
    eventually("the first build to start", || {
        (t.fakes.builder.started.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    let second = t.deploy(t.request(&["WHO=second"])).await;
    // The earlier deploy gives up while its build is still held, before anything is released.
    assert_eq!(t.finished(&first).await, DeploymentState::Cancelled);
    t.fakes.builder.release();
    assert_eq!(t.finished(&second).await, DeploymentState::Live);
    assert_eq!(t.live(), Some(second.clone()));
    let answer = t.get().await;
    assert_eq!(answer.var("HOIST_DEPLOYMENT"), Some(second.as_str()));
    assert_eq!(answer.var("WHO"), Some("second"));
    // No instance of the cancelled deployment was left running.
    assert!(
        t.fakes
            .sandboxes
            .running()
            .iter()
            .all(|i| i.deployment == second.as_str()),
        "{:?}",
        t.fakes.sandboxes.running()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_env_change_during_a_build_goes_live_with_the_newest_env() {
    let t = TestPlatform::start().await;
    let first = t.deploy_live(t.request(&["WHO=v1"])).await;
    assert_eq!(t.get().await.var("WHO"), Some("v1"));
    t.fakes.builder.hold();
    let second = t.deploy(t.request(&[])).await;
    eventually("the second build to start", || {
        (t.fakes.builder.started.load(Ordering::SeqCst) == 2).then_some(())
    })
    .await;
    // While the second deployment builds (with the environment as it was), the first gets
    // the change at once.
    let applied = t
        .platform
        .change_env(
            &svc(),
            EnvChange {
                set: [("WHO".to_string(), "v2".to_string())].into(),
                unset: Vec::new(),
            },
        )
        .await
        .expect("the env change");
    assert!(applied.changed);
    let answer = t.get().await;
    assert_eq!(answer.var("HOIST_DEPLOYMENT"), Some(first.as_str()));
    assert_eq!(answer.var("WHO"), Some("v2"));
    t.fakes.builder.release();
    assert_eq!(t.finished(&second).await, DeploymentState::Live);
    let answer = t.get().await;
    assert_eq!(answer.var("HOIST_DEPLOYMENT"), Some(second.as_str()));
    assert_eq!(
        answer.var("WHO"),
        Some("v2"),
        "the new deployment runs the env set while it built"
    );
    // Every instance that still serves has the newest env (old ones may still be draining).
    eventually("only instances with the newest env", || {
        let running = t.fakes.sandboxes.running();
        running
            .iter()
            .all(|i| i.env.iter().any(|e| e == "WHO=v2"))
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_racing_a_deploy_wins_and_the_deploy_ends_cancelled() {
    let t = TestPlatform::start().await;
    let first = t.deploy_live(t.request(&["WHO=one"])).await;
    let second = t.deploy_live(t.request(&["WHO=two"])).await;
    assert_eq!(t.get().await.var("HOIST_DEPLOYMENT"), Some(second.as_str()));
    t.fakes.builder.hold();
    let third = t.deploy(t.request(&["WHO=three"])).await;
    eventually("the third build to start", || {
        (t.fakes.builder.started.load(Ordering::SeqCst) == 3).then_some(())
    })
    .await;
    let back = t
        .platform
        .rollback(&svc(), Some(first.clone()))
        .await
        .expect("the rollback");
    assert_eq!(back.id, first);
    assert_eq!(t.finished(&third).await, DeploymentState::Cancelled);
    t.fakes.builder.release();
    assert_eq!(t.live(), Some(first.clone()));
    let answer = t.get().await;
    assert_eq!(answer.var("HOIST_DEPLOYMENT"), Some(first.as_str()));
    assert_eq!(t.state(&second), DeploymentState::Superseded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_deploy_leaves_the_previous_one_live_and_serving() {
    let t = TestPlatform::start().await;
    let first = t.deploy_live(t.request(&["WHO=one"])).await;
    let serving: Vec<String> = t
        .fakes
        .sandboxes
        .running()
        .into_iter()
        .map(|i| i.deployment)
        .collect();
    assert_eq!(serving, vec![first.to_string()]);
    let starts = t.fakes.sandboxes.start_attempts.load(Ordering::SeqCst);
    t.fakes.builder.hold();
    let second = t.deploy(t.request(&["WHO=two"])).await;
    eventually("the second build to start", || {
        (t.fakes.builder.started.load(Ordering::SeqCst) == 2).then_some(())
    })
    .await;
    // A third deploy cancels the second, and its own build then fails: neither goes live.
    t.fakes.builder.fail_next_build();
    let third = t.deploy(t.request(&["WHO=three"])).await;
    assert_eq!(t.finished(&second).await, DeploymentState::Cancelled);
    t.fakes.builder.release();
    assert_eq!(t.finished(&third).await, DeploymentState::Failed);
    assert_eq!(t.live(), Some(first.clone()));
    let answer = t.get().await;
    assert_eq!(answer.var("HOIST_DEPLOYMENT"), Some(first.as_str()));
    assert_eq!(answer.var("WHO"), Some("one"));
    // The instance that served before answered: none was stopped, none had to start.
    assert_eq!(t.running(), 1);
    assert_eq!(
        t.fakes.sandboxes.start_attempts.load(Ordering::SeqCst),
        starts,
        "an instance was started: the one serving before was lost"
    );
}
