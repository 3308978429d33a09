use std::sync::Arc;
use std::time::Duration;

use hoist_core::InstanceId;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::fakes::FakeCpu;

const SETTLE: Duration = Duration::from_secs(10);

fn boost(budget: u32) -> Arc<StartupBoost> {
    StartupBoost::new(BoostConfig {
        budget_millicores: budget,
        settle: SETTLE,
    })
}

fn id(n: u32) -> InstanceId {
    format!("i-{n:010}").parse().expect("an instance id")
}

#[test]
fn shares_give_a_whole_core_in_the_order_instances_began() {
    // Two cores: the budget is one core, which the first start takes; the second keeps its
    // normal share until the first is done.
    assert_eq!(shares(1000, &[144]), vec![1000]);
    assert_eq!(shares(1000, &[144, 144]), vec![1000, 144]);
    // Eight cores: four to share, split evenly while each still gets a whole core.
    assert_eq!(shares(4000, &[144]), vec![4000]);
    assert_eq!(shares(4000, &[144, 289, 72]), vec![1333, 1333, 1334]);
    assert_eq!(
        shares(4000, &[144, 144, 144, 144, 144]),
        vec![1000, 1000, 1000, 1000, 144]
    );
    // What is left when less than a core is: better than the normal share.
    assert_eq!(shares(1500, &[144, 144]), vec![1000, 500]);
    // An instance whose memory buys as much keeps its share and takes none of the budget.
    assert_eq!(shares(1000, &[2000, 144]), vec![2000, 1000]);
    assert_eq!(shares(1000, &[1000, 144]), vec![1000, 1000]);
    // Never below the normal share, never over the budget for the boosted ones.
    for normals in [vec![144; 7], vec![72, 2000, 578, 144], vec![1000; 3]] {
        for budget in [1000, 1500, 4000, 16000] {
            let s = shares(budget, &normals);
            let boosted: u32 = s
                .iter()
                .zip(&normals)
                .filter(|(g, n)| g > n)
                .map(|(g, _)| g)
                .sum();
            assert!(boosted <= budget, "{budget} {normals:?}: {s:?}");
            assert!(s.iter().zip(&normals).all(|(g, n)| g >= n), "{s:?}");
        }
    }
}

#[test]
fn the_budget_is_half_the_cores_and_at_least_one() {
    assert_eq!(half_the_cores(1), 1000);
    assert_eq!(half_the_cores(2), 1000);
    assert_eq!(half_the_cores(8), 4000);
    assert_eq!(half_the_cores(usize::MAX), u32::MAX);
}

#[tokio::test(start_paused = true)]
async fn a_boost_ends_after_the_settle_time_and_the_quota_goes_back() {
    let b = boost(1000);
    let stop = CancellationToken::new();
    let timer = tokio::spawn(b.clone().run(stop.clone()));
    let cpu = FakeCpu::new(144);
    let guard = b.begin(id(1), 144, cpu.clone());
    // Raised before the app runs.
    assert_eq!(cpu.now(), 1000);
    let s = b.status(&id(1)).expect("boosting");
    assert!(s.boosted);
    assert_eq!(s.until_ms, None);
    // Booting takes as long as it takes: no end time until the app answers.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(cpu.now(), 1000);
    guard.ready();
    let until = b.status(&id(1)).and_then(|s| s.until_ms).expect("an end");
    assert!(until >= hoist_store::now_ms() + 9_000, "{until}");
    tokio::time::sleep(SETTLE - Duration::from_millis(10)).await;
    assert_eq!(cpu.now(), 1000, "ended before the settle time");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(cpu.now(), 144, "still boosted after the settle time");
    assert_eq!(b.status(&id(1)), None);
    assert_eq!(cpu.history(), vec![1000, 144]);
    // The guard's drop after the timer ended the boost writes nothing more.
    drop(guard);
    assert_eq!(cpu.history(), vec![1000, 144]);
    stop.cancel();
    timer.await.expect("the timer ends on stop");
}

#[tokio::test(start_paused = true)]
async fn a_start_that_finds_the_budget_spent_is_boosted_when_it_frees() {
    let b = boost(1000);
    let stop = CancellationToken::new();
    let timer = tokio::spawn(b.clone().run(stop.clone()));
    let (first, second) = (FakeCpu::new(144), FakeCpu::new(289));
    let g1 = b.begin(id(1), 144, first.clone());
    let g2 = b.begin(id(2), 289, second.clone());
    assert_eq!((first.now(), second.now()), (1000, 289));
    assert!(!b.status(&id(2)).expect("waiting for budget").boosted);
    // The first answers and settles; the second, still booting, gets the core then.
    g1.ready();
    tokio::time::sleep(SETTLE + Duration::from_millis(10)).await;
    assert_eq!((first.now(), second.now()), (144, 1000));
    // The first's quota went down before the second's went up: never two cores at once.
    assert_eq!(first.history(), vec![1000, 144]);
    assert_eq!(second.history(), vec![1000]);
    // A failed start (the guard dropped before ready) ends its boost at once.
    drop(g2);
    assert_eq!(second.now(), 289);
    drop(g1);
    stop.cancel();
    timer.await.expect("the timer ends on stop");
}

#[tokio::test(start_paused = true)]
async fn shares_are_recomputed_as_starts_come_and_go() {
    let b = boost(4000);
    let cpus: Vec<_> = (0..3).map(|_| FakeCpu::new(144)).collect();
    let g0 = b.begin(id(0), 144, cpus[0].clone());
    assert_eq!(cpus[0].now(), 4000);
    let g1 = b.begin(id(1), 144, cpus[1].clone());
    assert_eq!((cpus[0].now(), cpus[1].now()), (2000, 2000));
    let g2 = b.begin(id(2), 144, cpus[2].clone());
    let now: Vec<u32> = cpus.iter().map(|c| c.now()).collect();
    assert_eq!(now, vec![1333, 1333, 1334]);
    drop(g1);
    let now: Vec<u32> = cpus.iter().map(|c| c.now()).collect();
    assert_eq!(now, vec![2000, 144, 2000]);
    drop(g0);
    drop(g2);
    assert!(cpus.iter().all(|c| c.now() == 144));
}

#[tokio::test(start_paused = true)]
async fn an_instance_whose_memory_buys_more_is_left_alone() {
    let b = boost(1000);
    let big = FakeCpu::new(2000);
    let g = b.begin(id(1), 2000, big.clone());
    assert_eq!(big.now(), 2000);
    assert!(big.history().is_empty(), "wrote {:?}", big.history());
    assert!(!b.status(&id(1)).expect("tracked").boosted);
    drop(g);
    assert!(big.history().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_quota_that_cannot_be_written_is_not_counted_as_given() {
    let b = boost(1000);
    let gone = FakeCpu::new(144);
    gone.fail_writes();
    let g = b.begin(id(1), 144, gone.clone());
    let s = b.status(&id(1)).expect("tracked");
    assert_eq!((s.millicores, s.boosted), (144, false));
    drop(g);
}
