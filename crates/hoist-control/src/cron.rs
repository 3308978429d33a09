//! Cron jobs on the platform: each service's cron secret (sealed under the master key like
//! its env, given to its instances as `HOIST_CRON_SECRET`) and the operations the API calls.
//! Every change is written to the store first and the scheduler then reads that service's
//! jobs again.

use hoist_core::{CronFileJob, CronJobId, CronJobSpec, CronSource, ServiceName};
use hoist_store::{CronJobRecord, CronRunRecord};

use crate::error::ControlError;
use crate::platform::Platform;

/// The context of a service's sealed cron secret: it does not open as another's.
fn context(name: &ServiceName) -> String {
    format!("service-cron-secret:{name}")
}

impl Platform {
    /// The service's cron secret, made (and sealed) on first use.
    pub(crate) fn ensure_cron_secret(&self, name: &ServiceName) -> Result<String, ControlError> {
        if let Some(secret) = self.cron_secrets.get(name) {
            return Ok(secret);
        }
        for _ in 0..2 {
            if let Some(sealed) = self.store.cron_secret(name)? {
                let plain = self.vault.open_secret(&context(name), &sealed)?;
                let secret = String::from_utf8(plain)
                    .map_err(|_| ControlError::CorruptEnv(name.to_string()))?;
                self.logs
                    .masks()
                    .set(name.as_str(), "cron secret", [secret.clone()]);
                self.cron_secrets.set(name, secret.clone());
                return Ok(secret);
            }
            let secret = hex_secret();
            let sealed = self.vault.seal_secret(&context(name), secret.as_bytes())?;
            // Another maker won the race (or the service is gone): read what is stored.
            self.store.set_cron_secret(name, &sealed)?;
        }
        Err(ControlError::ServiceNotFound(name.to_string()))
    }

    /// The service's jobs.
    pub fn cron_jobs(&self, name: &ServiceName) -> Result<Vec<CronJobRecord>, ControlError> {
        self.require_service(name)?;
        Ok(self.store.list_cron_jobs(Some(name))?)
    }

    /// When a job runs next (ms), if scheduled.
    pub fn cron_next_run(&self, name: &ServiceName, job: &CronJobId) -> Option<i64> {
        self.cron.next_run(name, job)
    }

    /// Adds a job (an API one); `Conflict` if the id is taken.
    pub fn cron_add(
        &self,
        name: &ServiceName,
        spec: &CronJobSpec,
    ) -> Result<CronJobRecord, ControlError> {
        self.require_service(name)?;
        self.ensure_cron_secret(name)?;
        if !self.store.insert_cron_job(name, spec, CronSource::Api)? {
            return Err(ControlError::CronJobExists(format!("{name}/{}", spec.id)));
        }
        self.cron.reload(name)?;
        self.cron_job(name, &spec.id)
    }

    pub fn cron_job(
        &self,
        name: &ServiceName,
        job: &CronJobId,
    ) -> Result<CronJobRecord, ControlError> {
        self.require_service(name)?;
        self.store
            .get_cron_job(name, job)?
            .ok_or_else(|| ControlError::CronJobNotFound(format!("{name}/{job}")))
    }

    pub fn cron_remove(&self, name: &ServiceName, job: &CronJobId) -> Result<(), ControlError> {
        self.require_service(name)?;
        if !self.store.delete_cron_job(name, job)? {
            return Err(ControlError::CronJobNotFound(format!("{name}/{job}")));
        }
        self.cron.reload(name)?;
        Ok(())
    }

    pub fn cron_pause(
        &self,
        name: &ServiceName,
        job: &CronJobId,
        paused: bool,
    ) -> Result<CronJobRecord, ControlError> {
        self.require_service(name)?;
        if !self.store.set_cron_paused(name, job, paused)? {
            return Err(ControlError::CronJobNotFound(format!("{name}/{job}")));
        }
        self.cron.reload(name)?;
        self.cron_job(name, job)
    }

    /// Runs a job once now; the execution id, or `None` if it was skipped (`forbid` with a run
    /// in flight, recorded as skipped).
    pub fn cron_run_now(
        &self,
        name: &ServiceName,
        job: &CronJobId,
    ) -> Result<Option<String>, ControlError> {
        self.cron_job(name, job)?;
        self.ensure_cron_secret(name)?;
        Ok(self.cron.run_now(name, job))
    }

    pub fn cron_runs(
        &self,
        name: &ServiceName,
        job: Option<&CronJobId>,
        limit: usize,
    ) -> Result<Vec<CronRunRecord>, ControlError> {
        self.require_service(name)?;
        Ok(self.store.list_cron_runs(name, job, limit)?)
    }

    /// At the switch to a deployment: its hoist.toml jobs replace the previous hoist.toml
    /// jobs; the API's stay. Returns a line for the deployment's log, if anything changed.
    pub(crate) fn apply_file_cron(
        &self,
        name: &ServiceName,
        jobs: &[CronFileJob],
    ) -> Result<Option<String>, ControlError> {
        let before = self
            .store
            .list_cron_jobs(Some(name))?
            .iter()
            .any(|j| j.source == CronSource::HoistToml);
        if jobs.is_empty() && !before {
            return Ok(None);
        }
        self.ensure_cron_secret(name)?;
        let removed = self.store.replace_file_cron_jobs(name, jobs)?;
        self.cron.reload(name)?;
        let mut line = format!("cron: {} job(s) from hoist.toml", jobs.len());
        for j in jobs {
            line.push_str(&format!("\n  {}", CronJobSpec::from(j)));
        }
        if !removed.is_empty() {
            let ids: Vec<&str> = removed.iter().map(|r| r.as_str()).collect();
            line.push_str(&format!("\n  removed: {}", ids.join(", ")));
        }
        Ok(Some(line))
    }

    fn require_service(&self, name: &ServiceName) -> Result<(), ControlError> {
        if self.store.get_service(name)?.is_none() {
            return Err(ControlError::ServiceNotFound(name.to_string()));
        }
        Ok(())
    }

    /// The scheduler's counters, for `/metrics`.
    pub(crate) fn cron_metrics(&self) -> hoist_cron::MetricsSnapshot {
        self.cron.metrics().snapshot()
    }
}

/// 256 random bits as hex.
fn hex_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
