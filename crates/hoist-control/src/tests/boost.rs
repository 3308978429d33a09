//! The startup boost through the platform: a start's quota is raised before the app runs,
//! shown in the service's view while it lasts, set back after the settle time; off per
//! service, by a deploy or by `hoist scale`.

use hoist_core::ScalingLayer;

use super::{BOOST_SETTLE, TestPlatform, eventually, svc};

/// The live instance's id, quota, whether it is boosted and until when, as the view says.
fn instance(t: &TestPlatform) -> Option<(String, u32, bool, Option<i64>)> {
    let view = t.platform.service_view(&svc()).expect("the service's view");
    view.running.first().map(|i| {
        (
            i.id.to_string(),
            i.cpu_millicores,
            i.boosted,
            i.boosted_until,
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_is_boosted_until_it_settles_then_gets_its_share_back() {
    let t = TestPlatform::start().await;
    let mut req = t.request(&[]);
    req.memory = Some("256".into());
    req.scaling.min_instances = Some(1);
    t.deploy_live(req).await;
    let (id, millicores, boosted, until) = instance(&t).expect("a running instance");
    let cpu = t.fakes.sandboxes.cpu(&id).expect("the instance's quota");
    // Raised to the whole budget (one core here) before the app ran; the view shows it,
    // with the end of the settle time.
    assert_eq!(cpu.history().first(), Some(&1000));
    assert_eq!((millicores, boosted), (1000, true));
    let until = until.expect("an end time once ready");
    let settle = i64::try_from(BOOST_SETTLE.as_millis()).expect("a short settle");
    assert!(until <= hoist_store::now_ms() + settle, "{until}");
    // Then back to 256 MB's share, not before the end it showed, and the view says so.
    eventually("the boost to end", || (cpu.now() == 144).then_some(())).await;
    assert!(hoist_store::now_ms() >= until);
    assert_eq!(cpu.history(), vec![1000, 144]);
    let (_, millicores, boosted, until) = instance(&t).expect("still running");
    assert_eq!((millicores, boosted, until), (144, false, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_boost_off_keeps_the_memory_share_and_scale_turns_it_back_on() {
    let t = TestPlatform::start().await;
    let mut req = t.request(&[]);
    req.memory = Some("256".into());
    req.scaling.min_instances = Some(1);
    req.scaling.startup_boost = Some(false);
    t.deploy_live(req).await;
    let (id, millicores, boosted, _) = instance(&t).expect("a running instance");
    assert_eq!((millicores, boosted), (144, false));
    let cpu = t.fakes.sandboxes.cpu(&id).expect("the instance's quota");
    assert!(cpu.history().is_empty(), "wrote {:?}", cpu.history());
    assert!(
        !t.platform
            .service_view(&svc())
            .expect("view")
            .scaling
            .startup_boost
    );

    // `hoist scale --startup-boost on`, without a redeploy: the next start is boosted.
    let scaling = t
        .platform
        .scale(
            &svc(),
            &ScalingLayer {
                startup_boost: Some(true),
                ..ScalingLayer::default()
            },
        )
        .expect("scaling");
    assert!(scaling.startup_boost);
    t.fakes.sandboxes.crash_all();
    let next = eventually("a new instance", || {
        instance(&t).filter(|(other, ..)| other != &id)
    })
    .await;
    let cpu = t
        .fakes
        .sandboxes
        .cpu(&next.0)
        .expect("the new instance's quota");
    assert_eq!(cpu.history().first(), Some(&1000));
    eventually("the boost to end", || (cpu.now() == 144).then_some(())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_whose_memory_buys_a_core_is_not_touched() {
    let t = TestPlatform::start().await;
    let mut req = t.request(&[]);
    req.memory = Some("2048".into());
    req.scaling.min_instances = Some(1);
    t.deploy_live(req).await;
    let (id, millicores, boosted, _) = instance(&t).expect("a running instance");
    assert_eq!((millicores, boosted), (2000, false));
    let cpu = t.fakes.sandboxes.cpu(&id).expect("the instance's quota");
    assert!(cpu.history().is_empty(), "wrote {:?}", cpu.history());
}
