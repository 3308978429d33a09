use std::time::Duration;

use hoist_core::{
    CronConcurrency, CronFileJob, CronJobId, CronJobSpec, CronMethod, CronRunStatus, CronSource,
    CronTimezone, ServiceName,
};

use super::*;

fn store(test: &str) -> (Store, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("hoist-store-cron-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    (Store::open(&dir.join("hoist.db")).unwrap(), dir)
}

fn job(id: &str, schedule: &str) -> CronJobSpec {
    CronJobSpec {
        id: id.parse().unwrap(),
        schedule: schedule.parse().unwrap(),
        path: "/tick".parse().unwrap(),
        method: CronMethod::Post,
        timezone: "Europe/Berlin".parse::<CronTimezone>().unwrap(),
        timeout: Duration::from_secs(30),
        concurrency: CronConcurrency::Replace,
        retries: 2,
    }
}

#[test]
fn jobs_round_trip_and_a_deploy_replaces_only_the_files_jobs() {
    let (store, dir) = store("jobs");
    let web: ServiceName = "web".parse().unwrap();
    store.ensure_service(&web).unwrap();
    assert!(
        store
            .insert_cron_job(&web, &job("api-job", "* * * * *"), CronSource::Api)
            .unwrap()
    );
    assert!(
        !store
            .insert_cron_job(&web, &job("api-job", "0 * * * *"), CronSource::Api)
            .unwrap()
    );
    let got = store
        .get_cron_job(&web, &"api-job".parse().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(got.spec, job("api-job", "* * * * *"));
    assert_eq!(got.source, CronSource::Api);
    assert!(!got.paused);

    let files = |ids: &[&str]| -> Vec<CronFileJob> {
        ids.iter()
            .map(|id| CronFileJob::from(&job(id, "*/5 * * * *")))
            .collect()
    };
    assert!(
        store
            .replace_file_cron_jobs(&web, &files(&["a", "b"]))
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .set_cron_paused(&web, &"a".parse().unwrap(), true)
            .unwrap()
    );
    let removed = store
        .replace_file_cron_jobs(&web, &files(&["a", "c"]))
        .unwrap();
    assert_eq!(removed, vec!["b".parse::<CronJobId>().unwrap()]);
    let jobs = store.list_cron_jobs(Some(&web)).unwrap();
    let ids: Vec<&str> = jobs.iter().map(|j| j.spec.id.as_str()).collect();
    assert_eq!(ids, ["a", "api-job", "c"]);
    // Paused stays paused across a deploy.
    assert!(jobs[0].paused);
    assert!(store.delete_cron_job(&web, &"c".parse().unwrap()).unwrap());
    assert!(!store.delete_cron_job(&web, &"c".parse().unwrap()).unwrap());
    // Deleting the service takes its jobs.
    store.delete_service(&web).unwrap();
    assert!(store.list_cron_jobs(None).unwrap().is_empty());
    drop(store);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn runs_are_recorded_listed_pruned_and_interrupted_ones_fail() {
    let (store, dir) = store("runs");
    let web: ServiceName = "web".parse().unwrap();
    store.ensure_service(&web).unwrap();
    let tick: CronJobId = "tick".parse().unwrap();
    let id = store
        .insert_cron_run(&NewCronRun {
            service: &web,
            job: &tick,
            execution: "x-1",
            scheduled_at: 1_000,
            started_at: Some(1_001),
            finished_at: None,
            status: CronRunStatus::Running,
            attempt: 1,
            detail: None,
        })
        .unwrap();
    store
        .finish_cron_run(
            id,
            &CronRunEnd {
                status: CronRunStatus::Retried,
                http_status: Some(503),
                instance: Some("i-1"),
                finished_at: 1_005,
                detail: Some("503"),
            },
        )
        .unwrap();
    store
        .insert_cron_run(&NewCronRun {
            service: &web,
            job: &tick,
            execution: "x-1",
            scheduled_at: 1_000,
            started_at: Some(2_000),
            finished_at: None,
            status: CronRunStatus::Running,
            attempt: 2,
            detail: None,
        })
        .unwrap();
    assert_eq!(store.fail_running_cron_runs("interrupted").unwrap(), 1);
    let runs = store.list_cron_runs(&web, Some(&tick), 10).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        (runs[0].attempt, runs[0].status),
        (2, CronRunStatus::Failed)
    );
    assert_eq!(runs[1].http_status, Some(503));
    assert_eq!(runs[1].instance.as_deref(), Some("i-1"));
    assert_eq!(runs[0].execution, runs[1].execution);
    assert_eq!(store.prune_cron_runs_before(1_001).unwrap(), 2);
    assert!(store.list_cron_runs(&web, None, 10).unwrap().is_empty());

    assert_eq!(store.cron_secret(&web).unwrap(), None);
    assert!(store.set_cron_secret(&web, b"sealed-1").unwrap());
    assert!(!store.set_cron_secret(&web, b"sealed-2").unwrap());
    assert_eq!(
        store.cron_secret(&web).unwrap().as_deref(),
        Some(&b"sealed-1"[..])
    );
    drop(store);
    std::fs::remove_dir_all(dir).unwrap();
}
