//! The scaler's back-off, and `max_instances` as the cap of every switch.

use std::time::Duration;

use hoist_core::ScalingLayer;

use super::{TestPlatform, eventually, svc};
use crate::EnvChange;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_failed_starts_in_a_row_make_the_scaler_back_off() {
    let t = TestPlatform::start().await;
    let mut req = t.request(&[]);
    req.scaling.min_instances = Some(1);
    t.deploy_live(req).await;
    assert_eq!(t.running(), 1);
    // The instance crashes and every start after it fails: a crash loop.
    t.fakes.sandboxes.fail_next_starts(u32::MAX);
    t.fakes.sandboxes.crash_all();
    let failures = eventually("three failed starts", || {
        let f = t.fakes.sandboxes.failed_starts.lock().unwrap().clone();
        (f.len() >= 3).then_some(f)
    })
    .await;
    // The scaler ticks every 100 ms; without a back-off these would be 100 ms apart. With
    // it, the wait doubles after each failure (2 s, then 4 s).
    let first_gap = failures[1] - failures[0];
    let second_gap = failures[2] - failures[1];
    assert!(
        first_gap >= Duration::from_secs(2),
        "second start after {first_gap:?}"
    );
    assert!(
        second_gap >= Duration::from_secs(4),
        "third start after {second_gap:?}"
    );
    assert_eq!(t.running(), 0);
}

/// `hoist scale --min-instances 1 --max-instances 1`.
fn cap_at_one(t: &TestPlatform) {
    t.platform
        .scale(
            &svc(),
            &ScalingLayer {
                min_instances: Some(1),
                max_instances: Some(1),
                ..ScalingLayer::default()
            },
        )
        .expect("scaling down");
}

/// Two instances serving, then `max_instances` lowered to 1 (`hoist scale`).
async fn two_running_then_capped_at_one() -> (TestPlatform, hoist_core::DeploymentId) {
    let t = TestPlatform::start().await;
    let mut req = t.request(&["WHO=one"]);
    req.scaling.min_instances = Some(2);
    req.scaling.max_instances = Some(3);
    let first = t.deploy_live(req).await;
    eventually("two instances", || (t.running() == 2).then_some(())).await;
    cap_at_one(&t);
    (t, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_starts_no_more_than_max_instances() {
    let (t, _) = two_running_then_capped_at_one().await;
    t.deploy_live(t.request(&["WHO=two"])).await;
    assert_eq!(t.running(), 1, "max_instances is 1");
}

// Fails until the env change's switch uses `Scaling::target_instances` (helper D1's part).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_env_change_starts_no_more_than_max_instances() {
    let (t, _) = two_running_then_capped_at_one().await;
    let applied = t
        .platform
        .change_env(
            &svc(),
            EnvChange {
                set: [("WHO".to_string(), "changed".to_string())].into(),
                unset: Vec::new(),
            },
        )
        .await
        .expect("the env change");
    assert!(applied.changed);
    assert_eq!(t.running(), 1, "max_instances is 1");
}

// Fails until the rollback's switch uses `Scaling::target_instances` (helper D1's part).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_starts_no_more_than_max_instances() {
    let t = TestPlatform::start().await;
    let first = t.deploy_live(t.request(&["WHO=one"])).await;
    let mut req = t.request(&["WHO=two"]);
    req.scaling.min_instances = Some(2);
    req.scaling.max_instances = Some(3);
    t.deploy_live(req).await;
    eventually("two instances", || (t.running() == 2).then_some(())).await;
    cap_at_one(&t);
    t.platform
        .rollback(&svc(), Some(first))
        .await
        .expect("the rollback");
    assert_eq!(t.running(), 1, "max_instances is 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_during_a_build_is_kept_by_the_deploy() {
    let t = TestPlatform::start().await;
    let mut req = t.request(&["WHO=one"]);
    req.scaling.min_instances = Some(2);
    req.scaling.max_instances = Some(3);
    t.deploy_live(req).await;
    eventually("two instances", || (t.running() == 2).then_some(())).await;
    t.fakes.builder.hold();
    let second = t.deploy(t.request(&["WHO=two"])).await;
    eventually("the second build to start", || {
        (t.fakes
            .builder
            .started
            .load(std::sync::atomic::Ordering::SeqCst)
            == 2)
            .then_some(())
    })
    .await;
    // Made after the deploy read the service's settings, before it switches.
    cap_at_one(&t);
    t.fakes.builder.release();
    assert_eq!(t.finished(&second).await, hoist_core::DeploymentState::Live);
    let view = t.platform.service_view(&svc()).expect("the service's view");
    assert_eq!(
        (view.scaling.min_instances, view.scaling.max_instances),
        (1, 1),
        "the deploy undid the scale made while it built"
    );
    assert_eq!(t.running(), 1, "max_instances is 1");
}
