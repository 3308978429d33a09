//! One run: its attempts, each recorded, retried with capped exponential back-off while it
//! fails (a 5xx, a timeout, no answer) and retries are left.

use std::time::Duration;

use hoist_core::{CronJobSpec, CronRunStatus, format_duration};
use hoist_store::{CronRunEnd, NewCronRun};
use tokio_util::sync::CancellationToken;

use crate::scheduler::{Inner, Key};
use crate::{Answer, Call, Failure, backoff};

/// How an attempt ended.
enum Outcome {
    Ok(Answer),
    Failed {
        answer: Answer,
        detail: String,
    },
    /// Cancelled: replaced by a newer run, or the server stopping. Not retried.
    Cancelled(String),
}

pub(crate) async fn attempts(
    inner: &Inner,
    key: &Key,
    spec: &CronJobSpec,
    scheduled_ms: i64,
    execution: &str,
    cancel: &CancellationToken,
) {
    let attempts = spec.retries.saturating_add(1);
    for attempt in 1..=attempts {
        let started = inner.clock.now_ms();
        if attempt == 1 {
            let lag = u64::try_from(started - scheduled_ms).unwrap_or(0);
            inner.metrics.lag(Duration::from_millis(lag));
        }
        let call = Call {
            service: key.service.clone(),
            job: key.job.clone(),
            method: spec.method,
            path: spec.path.clone(),
            scheduled_ms,
            execution: execution.to_string(),
            attempt,
        };
        // The request goes out first, on a task of its own, and the row is written while it
        // is on its way: the write must not add to the lag.
        let mut request = tokio::spawn(inner.runner.call(call));
        let row = inner.store.insert_cron_run(&NewCronRun {
            service: &key.service,
            job: &key.job,
            execution,
            scheduled_at: scheduled_ms,
            started_at: Some(started),
            finished_at: None,
            status: CronRunStatus::Running,
            attempt,
            detail: None,
        });
        let outcome = tokio::select! {
            answer = tokio::time::timeout(spec.timeout, &mut request) => match answer {
                Ok(Ok(a)) => classify(a),
                Ok(Err(e)) => Outcome::Failed {
                    answer: Answer::default(),
                    detail: format!("the request's task failed: {e}"),
                },
                Err(_) => Outcome::Failed {
                    answer: Answer::default(),
                    detail: format!("no answer within the timeout of {}", format_duration(spec.timeout)),
                },
            },
            _ = cancel.cancelled() => Outcome::Cancelled(if inner.stop.is_cancelled() {
                "cancelled: the server is stopping".into()
            } else {
                "cancelled: replaced by a newer run (concurrency replace)".into()
            }),
        };
        // Timed out or cancelled: the request is dropped, which closes its connection.
        request.abort();
        let last = attempt == attempts;
        let (status, answer, detail) = match outcome {
            Outcome::Ok(a) => (CronRunStatus::Ok, a, None),
            Outcome::Failed { answer, detail } if !last => {
                (CronRunStatus::Retried, answer, Some(detail))
            }
            Outcome::Failed { answer, detail } => (CronRunStatus::Failed, answer, Some(detail)),
            Outcome::Cancelled(detail) => (CronRunStatus::Failed, Answer::default(), Some(detail)),
        };
        let finished = inner.clock.now_ms();
        match row {
            Ok(id) => {
                let end = CronRunEnd {
                    status,
                    http_status: answer.status,
                    instance: answer.instance.as_deref(),
                    finished_at: finished,
                    detail: detail.as_deref(),
                };
                if let Err(e) = inner.store.finish_cron_run(id, &end) {
                    tracing::warn!(service = %key.service, job = %key.job, error = %e, "recording a cron run");
                }
            }
            Err(e) => {
                tracing::warn!(service = %key.service, job = %key.job, error = %e, "recording a cron run")
            }
        }
        inner.metrics.count(&key.service, &key.job, status);
        match status {
            CronRunStatus::Retried => {
                let wait = backoff(attempt, inner.config.backoff_base, inner.config.backoff_cap);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = cancel.cancelled() => return,
                }
            }
            CronRunStatus::Failed => {
                if !cancel.is_cancelled() {
                    tracing::info!(service = %key.service, job = %key.job, %execution, attempt,
                        detail = detail.as_deref().unwrap_or(""), "cron run failed");
                    inner.hooks.run_failed(&Failure {
                        service: key.service.clone(),
                        job: key.job.clone(),
                        execution: execution.to_string(),
                        attempts: attempt,
                        detail: detail.unwrap_or_default(),
                        instance: answer.instance,
                    });
                }
                return;
            }
            _ => return,
        }
    }
}

/// A run fails on a 5xx or no answer; any other status is the app's answer and counts.
fn classify(answer: Answer) -> Outcome {
    match answer.status {
        Some(s) if s < 500 => Outcome::Ok(answer),
        Some(s) => Outcome::Failed {
            detail: format!("answered {s}"),
            answer,
        },
        None => Outcome::Failed {
            detail: format!(
                "no answer: {}",
                answer.error.as_deref().unwrap_or("connection failed")
            ),
            answer,
        },
    }
}
