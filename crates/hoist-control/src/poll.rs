//! The poller (`--auto-deploy poll`): for remotes that cannot call in, one named task asks
//! each polled service's remote for its branch's commit (`git ls-remote`, nothing fetched)
//! every `poll_interval`, and queues a deploy when it moved. Which services are polled is
//! read from the store at start and again for a service whenever one of its pipelines ends
//! (a deploy may have turned polling on or off), so an idle server does no queries.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hoist_core::{AutoDeploy, DeploymentTrigger, ServiceName};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::Platform;
use crate::lifecycle::Change;
use crate::queue::Job;

/// How long one `git ls-remote` may take before it is given up until the next interval.
const LS_REMOTE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the poller looks for a service that is due; the interval's floor is a second.
const TICK: Duration = Duration::from_millis(250);

/// A service being polled.
struct Polled {
    source: String,
    branch: String,
    interval: Duration,
    next: Instant,
    /// The last commit deployed or seen: a poll that finds it again deploys nothing, so a
    /// commit that fails to deploy is not retried every interval.
    seen: Option<String>,
}

impl Platform {
    pub(crate) async fn run_poller(self: Arc<Self>) {
        let mut changes = self.lifecycle.subscribe();
        let mut polled: HashMap<ServiceName, Polled> = HashMap::new();
        self.reload_all(&mut polled);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                change = changes.recv() => match change {
                    Ok(Change::PipelineOver { service, .. }) => self.reload(&mut polled, &service),
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => self.reload_all(&mut polled),
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => self.poll_due(&mut polled).await,
            }
        }
    }

    fn reload_all(&self, polled: &mut HashMap<ServiceName, Polled>) {
        match self.store.list_services() {
            Ok(services) => {
                polled.clear();
                for s in services {
                    self.reload(polled, &s.name);
                }
            }
            Err(e) => tracing::warn!(error = %e, "poller: listing services"),
        }
    }

    /// Reads whether `name` is polled, and what, from its newest deployment with a spec.
    fn reload(&self, polled: &mut HashMap<ServiceName, Polled>, name: &ServiceName) {
        let Ok((_, spec)) = self.deploy_basis(name) else {
            polled.remove(name);
            return;
        };
        if spec.auto_deploy.mode != AutoDeploy::Poll {
            polled.remove(name);
            return;
        }
        let newest = self
            .store
            .list_deployments(name)
            .ok()
            .and_then(|d| d.into_iter().find_map(|d| d.commit_sha));
        let interval = spec.auto_deploy.poll_interval();
        let entry = polled.entry(name.clone()).or_insert_with(|| Polled {
            source: spec.source.clone(),
            branch: String::new(),
            interval,
            next: Instant::now() + interval,
            seen: None,
        });
        entry.source = spec.source;
        entry.branch = spec.branch.unwrap_or_else(|| "HEAD".into());
        if entry.interval != interval {
            entry.interval = interval;
            entry.next = Instant::now() + interval;
        }
        if newest.is_some() {
            entry.seen = newest;
        }
    }

    async fn poll_due(self: &Arc<Self>, polled: &mut HashMap<ServiceName, Polled>) {
        let now = Instant::now();
        for (name, p) in polled.iter_mut().filter(|(_, p)| p.next <= now) {
            p.next = now + p.interval;
            let head = tokio::select! {
                head = tokio::time::timeout(
                    LS_REMOTE_TIMEOUT,
                    hoist_build::remote_head(&p.source, &p.branch),
                ) => head,
                _ = self.shutdown.cancelled() => return,
            };
            let commit = match head {
                Ok(Ok(Some(commit))) => commit,
                Ok(Ok(None)) => {
                    tracing::debug!(service = %name, branch = %p.branch, "poller: no such branch");
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::warn!(service = %name, error = %e, "poller: git ls-remote");
                    continue;
                }
                Err(_) => {
                    tracing::warn!(service = %name, "poller: git ls-remote timed out");
                    continue;
                }
            };
            if p.seen.as_deref() == Some(commit.as_str()) {
                continue;
            }
            self.system_line(
                name,
                format!("poll: {} moved to {commit}: deploying it", p.branch),
            );
            p.seen = Some(commit.clone());
            self.enqueue(
                name,
                Job {
                    commit,
                    trigger: DeploymentTrigger::Poll,
                },
            );
        }
    }
}
