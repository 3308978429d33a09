//! A clean stop: every background loop ends, and the stop waits for it.

use super::{DEADLINE, TestPlatform, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_ends_every_background_task_and_waits_for_it() {
    let t = TestPlatform::start().await;
    let mut req = t.request(&[]);
    req.scaling.min_instances = Some(1);
    t.deploy_live(req).await;
    let loops = t.platform.tasks.running();
    for name in [
        "scaler",
        "metrics sampler",
        "retention",
        "disk gauge",
        "log index",
        "cron",
        "autodeploy-poll",
    ] {
        assert!(loops.contains(&name), "{name} is not running: {loops:?}");
    }
    let writers = t.platform.writers.running();
    assert_eq!(writers, vec!["access writer", "log writer"]);

    // One more loop that, told to stop, still has a last write to finish when the test lets
    // it: the stop must wait for it.
    let (finish, finished) = tokio::sync::oneshot::channel::<()>();
    let stop = t.platform.tasks.stopping().clone();
    t.platform.tasks.spawn("slow writer", async move {
        stop.cancelled().await;
        let _ = finished.await;
    });
    let platform = t.platform.clone();
    let stopping = tokio::spawn(async move { platform.shutdown().await });
    eventually("the other loops to end", || {
        (t.platform.tasks.running() == vec!["slow writer"]).then_some(())
    })
    .await;
    assert!(!stopping.is_finished(), "the stop did not wait for a task");
    let _ = finish.send(());
    tokio::time::timeout(DEADLINE, stopping)
        .await
        .expect("the stop to finish")
        .expect("the stop not to panic");
    assert_eq!(t.platform.tasks.running(), Vec::<&str>::new());
    assert!(
        t.fakes.sandboxes.running().is_empty(),
        "an instance still runs"
    );
    // The writers outlive the instances (their last lines are stored), then end too.
    assert_eq!(t.platform.writers.running().len(), 2);
    tokio::time::timeout(DEADLINE, t.platform.flush_logs())
        .await
        .expect("the last flush to finish");
    assert_eq!(t.platform.writers.running(), Vec::<&str>::new());
}
