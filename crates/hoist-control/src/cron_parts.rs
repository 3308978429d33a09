//! The cron scheduler's parts that the platform is built from: the services' cron secrets
//! in plain text (for the runs and the instances' env), failed runs as events, and the
//! scheduler as the named task `cron`. (The operations are `cron.rs`, on the platform.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hoist_core::{EventKind, ServiceName};
use hoist_cron::{Failure, GatewayRunner, Hooks, Scheduler, SchedulerConfig, Secrets, SystemClock};
use hoist_store::{NewEvent, Store, now_ms};

use crate::events::Events;
use crate::tasks::Tasks;

/// The services' cron secrets in plain text, for the runs' `Authorization` header and the
/// instances' env; the database has them sealed only.
#[derive(Default)]
pub(crate) struct CronSecrets {
    plain: Mutex<HashMap<ServiceName, String>>,
}

impl CronSecrets {
    pub(crate) fn get(&self, service: &ServiceName) -> Option<String> {
        self.plain
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(service)
            .cloned()
    }

    pub(crate) fn set(&self, service: &ServiceName, secret: String) {
        self.plain
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(service.clone(), secret);
    }

    pub(crate) fn forget(&self, service: &ServiceName) {
        self.plain
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(service);
    }
}

/// For the runner: the secret a run sends.
pub(crate) struct SecretSource(pub(crate) Arc<CronSecrets>);

impl Secrets for SecretSource {
    fn secret(&self, service: &ServiceName) -> Option<String> {
        self.0.get(service)
    }
}

/// A failed run (after its last retry) becomes a `cron_failed` event.
struct EventHooks(Arc<Events>);

impl Hooks for EventHooks {
    fn run_failed(&self, f: &Failure) {
        self.0.record(NewEvent {
            service: f.service.to_string(),
            ts: now_ms(),
            kind: EventKind::CronFailed,
            instance: f.instance.clone(),
            deployment: None,
            detail: format!(
                "cron job {} failed after {} attempt{} (execution {}): {}",
                f.job,
                f.attempts,
                if f.attempts == 1 { "" } else { "s" },
                f.execution,
                f.detail
            ),
            context: Vec::new(),
        });
    }
}

/// The scheduler for a platform whose gateway listens on `gateway`.
pub(crate) fn scheduler(
    store: Arc<Store>,
    gateway: std::net::SocketAddr,
    domain: String,
    secrets: Arc<CronSecrets>,
    events: Arc<Events>,
) -> Scheduler {
    let runner = GatewayRunner::new(gateway, domain, Arc::new(SecretSource(secrets)));
    Scheduler::new(
        store,
        Arc::new(runner),
        Arc::new(SystemClock),
        Arc::new(EventHooks(events)),
        SchedulerConfig::default(),
    )
}

/// Runs the scheduler as the named task `cron` until the platform stops; the stop waits for
/// its runs in flight to be cancelled and recorded.
pub(crate) fn spawn(tasks: &Tasks, scheduler: Scheduler) {
    let stop = tasks.stopping().clone();
    tasks.spawn("cron", async move {
        let run = scheduler.clone().run();
        tokio::pin!(run);
        tokio::select! {
            _ = &mut run => {}
            _ = stop.cancelled() => {
                scheduler.stop();
                run.await;
            }
        }
    });
}
