//! Deployment states change only along the lifecycle, and only from the state the writer saw.

use std::sync::{Arc, Barrier};

use super::*;
use crate::StateChange;

/// What a state change could have touched: the row and its steps.
fn snapshot(store: &Store, id: &DeploymentId) -> Result<String, Box<dyn Error>> {
    Ok(serde_json::to_string(&deployment(store, id)?)?)
}

#[test]
fn a_refused_transition_writes_nothing() -> TestResult {
    let dir = TempDir::new("a_refused_transition_writes_nothing")?;
    let store = Store::open(&dir.db())?;
    let web = service("web")?;
    store.ensure_service(&web)?;

    // Skipping the pipeline, and failing a deployment that served: both refused.
    let queued = new_deployment(&store, &web)?;
    let before = snapshot(&store, &queued)?;
    let err = store
        .transition_deployment(
            &queued,
            DeploymentState::Queued,
            DeploymentState::Live,
            None,
        )
        .unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::RefusedTransition { id, from: DeploymentState::Queued, to: DeploymentState::Live }
                if id == &queued
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("deployment {queued} cannot go from queued to live")
    );
    assert_eq!(snapshot(&store, &queued)?, before);

    let live = new_deployment(&store, &web)?;
    advance_to_starting(&store, &live)?;
    store.set_live(&web, &live, DeploymentState::Starting)?;
    let before = snapshot(&store, &live)?;
    let err = store
        .transition_deployment(
            &live,
            DeploymentState::Live,
            DeploymentState::Failed,
            Some("crashed"),
        )
        .unwrap_err();
    assert!(
        matches!(err, StoreError::RefusedTransition { .. }),
        "{err:?}"
    );
    assert_eq!(snapshot(&store, &live)?, before);

    // A refused switch undoes the half it had done: the live one is not superseded.
    let building = new_deployment(&store, &web)?;
    store.transition_deployment(
        &building,
        DeploymentState::Queued,
        DeploymentState::Fetching,
        None,
    )?;
    store.transition_deployment(
        &building,
        DeploymentState::Fetching,
        DeploymentState::Building,
        None,
    )?;
    let building_before = snapshot(&store, &building)?;
    let err = store
        .set_live(&web, &building, DeploymentState::Building)
        .unwrap_err();
    assert!(
        matches!(err, StoreError::RefusedTransition { .. }),
        "{err:?}"
    );
    assert_eq!(snapshot(&store, &live)?, before);
    assert_eq!(snapshot(&store, &building)?, building_before);
    let svc = store.get_service(&web)?.ok_or("service lost")?;
    assert_eq!(svc.live_deployment.as_ref(), Some(&live));
    Ok(())
}

#[test]
fn a_transition_from_a_state_the_row_has_left_writes_nothing() -> TestResult {
    let dir = TempDir::new("a_transition_from_a_state_the_row_has_left");
    let dir = dir?;
    let store = Store::open(&dir.db())?;
    let web = service("web")?;
    store.ensure_service(&web)?;
    let d = new_deployment(&store, &web)?;
    store.transition_deployment(&d, DeploymentState::Queued, DeploymentState::Fetching, None)?;
    let before = snapshot(&store, &d)?;
    // Allowed by the lifecycle, but the row is no longer queued.
    let err = store
        .transition_deployment(
            &d,
            DeploymentState::Queued,
            DeploymentState::Cancelled,
            Some("newer"),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::StateMoved {
                expected: DeploymentState::Queued,
                found: Some(DeploymentState::Fetching),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(snapshot(&store, &d)?, before);

    let ghost = DeploymentId::generate();
    let err = store
        .transition_deployment(
            &ghost,
            DeploymentState::Queued,
            DeploymentState::Fetching,
            None,
        )
        .unwrap_err();
    assert!(
        matches!(err, StoreError::StateMoved { found: None, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("deployment {ghost} is gone, not queued as expected")
    );
    Ok(())
}

/// Two writers on two connections saw the same state and race: one wins, the other is told
/// what the row became, and the row is exactly as the winner left it.
#[test]
fn of_two_racing_transitions_one_wins_and_the_other_changes_nothing() -> TestResult {
    let dir = TempDir::new("of_two_racing_transitions_one_wins");
    let dir = dir?;
    let first = Arc::new(Store::open(&dir.db())?);
    let second = Arc::new(Store::open(&dir.db())?);
    let web = service("web")?;
    first.ensure_service(&web)?;
    for round in 0..20 {
        let d = new_deployment(&first, &web)?;
        first.transition_deployment(
            &d,
            DeploymentState::Queued,
            DeploymentState::Fetching,
            None,
        )?;
        first.transition_deployment(
            &d,
            DeploymentState::Fetching,
            DeploymentState::Building,
            None,
        )?;
        let start = Arc::new(Barrier::new(2));
        let race = |store: Arc<Store>, to: DeploymentState, reason: Option<&'static str>| {
            let (start, d) = (start.clone(), d.clone());
            std::thread::spawn(move || {
                start.wait();
                store.transition_deployment(&d, DeploymentState::Building, to, reason)
            })
        };
        let starting = race(first.clone(), DeploymentState::Starting, None);
        let cancelled = race(second.clone(), DeploymentState::Cancelled, Some("newer"));
        let results = [
            starting.join().map_err(|_| "writer panicked")?,
            cancelled.join().map_err(|_| "writer panicked")?,
        ];
        let won: Vec<&StateChange> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(won.len(), 1, "round {round}: {results:?}");
        let winner = won[0].to;
        let lost = results
            .iter()
            .find_map(|r| r.as_ref().err())
            .ok_or("no loser")?;
        assert!(
            matches!(
                lost,
                StoreError::StateMoved { expected: DeploymentState::Building, found: Some(f), .. }
                    if *f == winner
            ),
            "round {round}: {lost:?}"
        );
        let rec = deployment(&second, &d)?;
        assert_eq!(rec.state, winner, "round {round}");
        let steps: Vec<(&str, &str)> = rec
            .steps
            .iter()
            .map(|s| (s.step.as_str(), s.state.as_str()))
            .collect();
        if winner == DeploymentState::Starting {
            assert_eq!(rec.failure_reason, None, "round {round}");
            assert_eq!(rec.finished_at, None, "round {round}");
            assert_eq!(
                steps,
                [
                    ("fetching", "done"),
                    ("building", "done"),
                    ("starting", "running")
                ]
            );
        } else {
            assert_eq!(rec.failure_reason.as_deref(), Some("newer"));
            assert_eq!(steps, [("fetching", "done"), ("building", "cancelled")]);
        }
    }
    Ok(())
}

#[test]
fn a_rollback_makes_a_superseded_deployment_live_and_keeps_its_finish_time() -> TestResult {
    let dir = TempDir::new("a_rollback_makes_a_superseded_deployment_live")?;
    let store = Store::open(&dir.db())?;
    let web = service("web")?;
    store.ensure_service(&web)?;
    let old = new_deployment(&store, &web)?;
    advance_to_starting(&store, &old)?;
    store.set_live(&web, &old, DeploymentState::Starting)?;
    let new = new_deployment(&store, &web)?;
    advance_to_starting(&store, &new)?;
    store.set_live(&web, &new, DeploymentState::Starting)?;
    let built = deployment(&store, &old)?.finished_at;

    let changes = store.set_live(&web, &old, DeploymentState::Superseded)?;
    assert_eq!(
        changes
            .iter()
            .map(|c| (&c.id, c.from, c.to))
            .collect::<Vec<_>>(),
        [
            (&new, DeploymentState::Live, DeploymentState::Superseded),
            (&old, DeploymentState::Superseded, DeploymentState::Live)
        ]
    );
    let rec = deployment(&store, &old)?;
    assert_eq!(rec.state, DeploymentState::Live);
    assert_eq!(rec.finished_at, built);
    assert_eq!(deployment(&store, &new)?.state, DeploymentState::Superseded);
    let svc = store.get_service(&web)?.ok_or("service lost")?;
    assert_eq!(svc.live_deployment.as_ref(), Some(&old));
    Ok(())
}
