use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Mutex;

use hoist_core::{DeploymentId, InstanceId, InstanceState, Scaling, ServiceName, ServiceSpec};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::access::{AccessFiles, AccessLine};
use crate::logs::{LogFilter, LogLine, LogStream, NewLogLine};
use crate::records::{
    DeploymentRecord, InstanceRecord, InstanceUsage, ServiceRecord, StepRecord, UsageDay,
    UsageDelta,
};
use crate::{StoreError, migrations, now_ms};

/// Per-service log cap until retention settings exist; oldest lines go first.
/// Default cap on a service's stored log lines (about 64 bytes of overhead counted per line).
pub const LOG_BYTES_CAP: u64 = 100 * 1024 * 1024;

pub struct Store {
    conn: Mutex<Connection>,
    log_cap: std::sync::atomic::AtomicU64,
    /// Access lines, in segment files beside the database (see `access`).
    access: AccessFiles,
    /// The next log line id, for lines in SQLite and in the access log alike.
    next_log_id: std::sync::atomic::AtomicI64,
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn parse<T: std::str::FromStr>(s: String, what: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>()
        .map_err(|e| corrupt(format!("{what} '{s}': {e}")))
}

/// A counter as SQLite stores it (a signed 64-bit integer).
fn sql_int(value: u64, what: &'static str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { what, value })
}

/// A stored counter, which is never negative unless the database was tampered with.
fn stored_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt(format!("{what} {value}")))
}

/// Checks that `day` is a real calendar date written as `YYYY-MM-DD`, the form [`crate::utc_day`]
/// gives and the one that sorts by date as text.
fn check_day(day: &str) -> Result<(), StoreError> {
    match crate::parse_day(day) {
        Some(_) => Ok(()),
        None => Err(StoreError::InvalidDay(day.to_string())),
    }
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut conn = Connection::open(path)?;
        // WAL: readers never block the writer; NORMAL sync is durable across process crashes
        // (kill -9), which is the failure the server must survive.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Deleted and overwritten content is zeroed, not left in free pages of the file.
        conn.pragma_update(None, "secure_delete", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrations::migrate(&mut conn)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let (access, access_max) = AccessFiles::open(dir.join("access-log"))?;
        // sqlite_sequence remembers ids of lines deleted since, so no id is handed out twice.
        let sql_max: i64 = conn.query_row(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'logs'), 0),
                        coalesce((SELECT max(id) FROM logs), 0))",
            [],
            |r| r.get(0),
        )?;
        Ok(Store {
            conn: Mutex::new(conn),
            log_cap: std::sync::atomic::AtomicU64::new(LOG_BYTES_CAP),
            access,
            next_log_id: std::sync::atomic::AtomicI64::new(sql_max.max(access_max) + 1),
        })
    }

    /// The most log bytes kept per service. When a service exceeds it, its oldest access-log
    /// segments go first (the app's own output is what explains a failure), then the oldest
    /// fifth of its other lines.
    pub fn set_log_cap(&self, bytes: u64) {
        self.log_cap
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    fn log_cap(&self) -> i64 {
        i64::try_from(self.log_cap.load(std::sync::atomic::Ordering::Relaxed)).unwrap_or(i64::MAX)
    }

    /// Adds up to `max` of the lines not indexed yet to the trigram index; returns how many.
    pub fn index_logs(&self, max: usize) -> Result<usize, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let upto: i64 = tx.query_row("SELECT upto FROM logs_indexed", [], |r| r.get(0))?;
        let n = tx.execute(
            "INSERT INTO logs_text(rowid, line) SELECT id, line FROM logs WHERE id > ?1 ORDER BY id LIMIT ?2",
            params![upto, max as i64],
        )?;
        if n > 0 {
            tx.execute(
                "UPDATE logs_indexed SET upto = (SELECT max(id) FROM
                   (SELECT id FROM logs WHERE id > ?1 ORDER BY id LIMIT ?2))",
                params![upto, max as i64],
            )?;
        }
        tx.commit()?;
        Ok(n)
    }

    /// Lines stored but not in the trigram index yet.
    pub fn log_index_lag(&self) -> Result<u64, StoreError> {
        let n: i64 = self.conn().query_row(
            "SELECT count(*) FROM logs WHERE id > (SELECT upto FROM logs_indexed)",
            [],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    /// Deletes log lines older than `cutoff_ms`, keeping the per-service byte counts right;
    /// returns how many went.
    pub fn prune_logs_before(&self, cutoff_ms: i64) -> Result<usize, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE services SET log_bytes = max(0, log_bytes - coalesce(
                (SELECT sum(length(line) + 64) FROM logs WHERE logs.service = services.name AND ts < ?1), 0))",
            params![cutoff_ms],
        )?;
        let n = tx.execute("DELETE FROM logs WHERE ts < ?1", params![cutoff_ms])?;
        self.keep_log_high_water(&tx)?;
        tx.commit()?;
        drop(conn);
        let segments = self.access.prune_before(cutoff_ms);
        if segments > 0 {
            tracing::debug!(segments, "access log segments past retention removed");
        }
        Ok(n)
    }

    /// Records the highest log id handed out where it outlives the lines: before access
    /// segments (the only other record of it) are deleted, so ids are never handed out twice
    /// after a restart.
    fn keep_log_high_water(&self, tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
        let high = self.next_log_id.load(std::sync::atomic::Ordering::Relaxed) - 1;
        let updated = tx.execute(
            "UPDATE sqlite_sequence SET seq = max(seq, ?1) WHERE name = 'logs'",
            params![high],
        )?;
        if updated == 0 {
            tx.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES ('logs', ?1)",
                params![high],
            )?;
        }
        Ok(())
    }

    pub(crate) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll
        // back), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- services ---------------------------------------------------------------------

    /// Creates the service if it does not exist yet; an existing one is left as it is.
    pub fn ensure_service(&self, name: &ServiceName) -> Result<(), StoreError> {
        let now = now_ms();
        self.conn().execute(
            "INSERT INTO services (name, spec, created_at, updated_at) VALUES (?1, '{}', ?2, ?2)
             ON CONFLICT(name) DO NOTHING",
            params![name.as_str(), now],
        )?;
        Ok(())
    }

    pub fn set_service_spec(
        &self,
        name: &ServiceName,
        spec: &ServiceSpec,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(spec).map_err(corrupt)?;
        self.conn().execute(
            "UPDATE services SET spec = ?2, updated_at = ?3 WHERE name = ?1",
            params![name.as_str(), json, now_ms()],
        )?;
        Ok(())
    }

    /// The service's sealed environment and its revision (0 and `None` before any was set).
    pub fn service_env(&self, name: &ServiceName) -> Result<(Option<Vec<u8>>, u64), StoreError> {
        let row = self
            .conn()
            .query_row(
                "SELECT env_sealed, env_revision FROM services WHERE name = ?1",
                params![name.as_str()],
                |r| Ok((r.get::<_, Option<Vec<u8>>>(0)?, r.get::<_, i64>(1)?)),
            )
            .optional()?;
        Ok(row.map_or((None, 0), |(sealed, rev)| (sealed, rev.max(0) as u64)))
    }

    /// Replaces the service's sealed environment if its revision is still `expected` (another
    /// change in between makes this one retry on top of it); returns the new revision, or
    /// `None` if the revision moved or the service is gone.
    pub fn set_service_env(
        &self,
        name: &ServiceName,
        sealed: &[u8],
        expected: u64,
    ) -> Result<Option<u64>, StoreError> {
        let next = expected + 1;
        let changed = self.conn().execute(
            "UPDATE services SET env_sealed = ?2, env_revision = ?3, updated_at = ?4
             WHERE name = ?1 AND env_revision = ?5",
            params![
                name.as_str(),
                sealed,
                next as i64,
                now_ms(),
                expected as i64
            ],
        )?;
        Ok((changed == 1).then_some(next))
    }

    /// Whether this database was made by a version before sealing and its plain-text env
    /// values still wait to be sealed and scrubbed ([`Store::scrub_plain_env`]).
    pub fn legacy_plain_env_pending(&self) -> Result<bool, StoreError> {
        let n: i64 = self
            .conn()
            .query_row("SELECT count(*) FROM legacy_plain_env", [], |r| r.get(0))?;
        Ok(n > 0)
    }

    /// Removes environment values that versions before sealing kept in plain text inside
    /// specs and deploy requests, then rewrites the file so no copy of them is left in free
    /// pages or the WAL. Returns how many rows held some.
    ///
    /// Only for a database from before sealing ([`Store::legacy_plain_env_pending`]), once:
    /// in a later one a spec's `env` is hoist.toml's `[env]`, which the deployment needs (run
    /// on every start, this emptied it, and a deployment's `spec.env` read `{}` after a
    /// restart). Clears the pending mark.
    pub fn scrub_plain_env(&self) -> Result<usize, StoreError> {
        let conn = self.conn();
        if conn.query_row("SELECT count(*) FROM legacy_plain_env", [], |r| {
            r.get::<_, i64>(0)
        })? == 0
        {
            return Ok(0);
        }
        let mut n = conn.execute(
            "UPDATE services SET spec = json_remove(spec, '$.env')
             WHERE json_type(spec, '$.env') IS NOT NULL",
            [],
        )?;
        n += conn.execute(
            "UPDATE deployments SET spec = json_remove(spec, '$.env')
             WHERE spec IS NOT NULL AND json_type(spec, '$.env') IS NOT NULL",
            [],
        )?;
        n += conn.execute(
            "UPDATE deployments SET request = json_remove(request, '$.env')
             WHERE json_array_length(request, '$.env') > 0",
            [],
        )?;
        conn.execute("DELETE FROM legacy_plain_env", [])?;
        if n > 0 {
            conn.execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")?;
        }
        Ok(n)
    }

    /// Stores the service's scaling settings (checked by the caller) in place of any earlier.
    pub fn set_service_scaling(
        &self,
        name: &ServiceName,
        scaling: &Scaling,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(scaling).map_err(corrupt)?;
        self.conn().execute(
            "UPDATE services SET scaling = ?2, updated_at = ?3 WHERE name = ?1",
            params![name.as_str(), json, now_ms()],
        )?;
        Ok(())
    }

    const SERVICE_COLUMNS: &'static str =
        "name, spec, live_deployment, scaling, created_at, updated_at";

    fn service_from(row: &Row<'_>) -> Result<ServiceRecord, StoreError> {
        let spec: String = row.get(1)?;
        let live: Option<String> = row.get(2)?;
        let scaling: Option<String> = row.get(3)?;
        Ok(ServiceRecord {
            name: parse(row.get(0)?, "service name")?,
            spec: serde_json::from_str(&spec).map_err(corrupt)?,
            live_deployment: live.map(|l| parse(l, "deployment id")).transpose()?,
            scaling: scaling
                .map(|s| serde_json::from_str(&s))
                .transpose()
                .map_err(|e| corrupt(format!("scaling settings: {e}")))?,
            created_at: row.get(4)?,
            updated_at: row.get(5)?,
        })
    }

    fn query_services(
        &self,
        sql: &str,
        p: impl rusqlite::Params,
    ) -> Result<Vec<ServiceRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(sql)?;
        let mut rows = stmt.query(p)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(Self::service_from(row)?);
        }
        Ok(out)
    }

    pub fn get_service(&self, name: &ServiceName) -> Result<Option<ServiceRecord>, StoreError> {
        let found = self.query_services(
            &format!(
                "SELECT {} FROM services WHERE name = ?1",
                Self::SERVICE_COLUMNS
            ),
            params![name.as_str()],
        )?;
        Ok(found.into_iter().next())
    }

    pub fn list_services(&self) -> Result<Vec<ServiceRecord>, StoreError> {
        self.query_services(
            &format!(
                "SELECT {} FROM services ORDER BY name",
                Self::SERVICE_COLUMNS
            ),
            [],
        )
    }

    /// Deletes the service with its deployments, instances, logs and usage.
    pub fn delete_service(&self, name: &ServiceName) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM usage_daily WHERE service = ?1",
            params![name.as_str()],
        )?;
        tx.execute(
            "DELETE FROM logs WHERE service = ?1",
            params![name.as_str()],
        )?;
        tx.execute(
            "DELETE FROM deployment_steps WHERE deployment IN (SELECT id FROM deployments WHERE service = ?1)",
            params![name.as_str()],
        )?;
        tx.execute(
            "DELETE FROM instances WHERE service = ?1",
            params![name.as_str()],
        )?;
        tx.execute(
            "DELETE FROM deployments WHERE service = ?1",
            params![name.as_str()],
        )?;
        let n = tx.execute(
            "DELETE FROM services WHERE name = ?1",
            params![name.as_str()],
        )?;
        crate::token::revoke_for_service(&tx, name)?;
        self.keep_log_high_water(&tx)?;
        tx.commit()?;
        drop(conn);
        self.access.remove_service(name.as_str());
        Ok(n > 0)
    }

    // ---- deployments (their states: see `lifecycle`) ---------------------------------

    pub fn set_deployment_source(
        &self,
        id: &DeploymentId,
        commit: &str,
        branch: &str,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE deployments SET commit_sha = ?2, branch = ?3, updated_at = ?4 WHERE id = ?1",
            params![id.as_str(), commit, branch, now_ms()],
        )?;
        Ok(())
    }

    pub fn set_deployment_spec(
        &self,
        id: &DeploymentId,
        spec: &ServiceSpec,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(spec).map_err(corrupt)?;
        self.conn().execute(
            "UPDATE deployments SET spec = ?2, updated_at = ?3 WHERE id = ?1",
            params![id.as_str(), json, now_ms()],
        )?;
        Ok(())
    }

    pub fn set_deployment_image(
        &self,
        id: &DeploymentId,
        image: &str,
        runtime_version: &str,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE deployments SET image = ?2, runtime_version = ?3, updated_at = ?4 WHERE id = ?1",
            params![id.as_str(), image, runtime_version, now_ms()],
        )?;
        Ok(())
    }

    const DEPLOYMENT_COLUMNS: &'static str = "id, service, state, source, branch, commit_sha, request, spec, image, runtime_version, failure_reason, created_at, updated_at, finished_at, trigger, trigger_delivery, rolled_back_at, static_manifest, static_files, static_bytes, static_config";

    fn deployment_from(conn: &Connection, row: &Row<'_>) -> Result<DeploymentRecord, StoreError> {
        let id: String = row.get(0)?;
        let spec: Option<String> = row.get(7)?;
        let request: String = row.get(6)?;
        let mut stmt = conn.prepare_cached(
            "SELECT step, state, started_at, finished_at FROM deployment_steps WHERE deployment = ?1 ORDER BY started_at, rowid",
        )?;
        let steps = stmt
            .query_map(params![id], |r| {
                Ok(StepRecord {
                    step: r.get(0)?,
                    state: r.get(1)?,
                    started_at: r.get(2)?,
                    finished_at: r.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DeploymentRecord {
            id: parse(id, "deployment id")?,
            service: parse(row.get(1)?, "service name")?,
            state: parse(row.get(2)?, "deployment state")?,
            source: row.get(3)?,
            branch: row.get(4)?,
            commit_sha: row.get(5)?,
            request: serde_json::from_str(&request).map_err(corrupt)?,
            spec: spec
                .map(|s| serde_json::from_str(&s))
                .transpose()
                .map_err(corrupt)?,
            image: row.get(8)?,
            runtime_version: row.get(9)?,
            failure_reason: row.get(10)?,
            created_at: row.get(11)?,
            updated_at: row.get(12)?,
            finished_at: row.get(13)?,
            steps,
            trigger: {
                let kind: String = row.get(14)?;
                hoist_core::DeploymentTrigger::from_parts(&kind, row.get(15)?)
                    .ok_or_else(|| corrupt(format!("deployment trigger '{kind}'")))?
            },
            rolled_back_at: row.get(16)?,
            static_folder: static_assets::folder_from(row, 17)?,
        })
    }

    pub fn get_deployment(
        &self,
        id: &DeploymentId,
    ) -> Result<Option<DeploymentRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {} FROM deployments WHERE id = ?1",
            Self::DEPLOYMENT_COLUMNS
        ))?;
        let mut rows = stmt.query(params![id.as_str()])?;
        match rows.next()? {
            Some(row) => Ok(Some(Self::deployment_from(&conn, row)?)),
            None => Ok(None),
        }
    }

    /// Newest first.
    pub fn list_deployments(
        &self,
        service: &ServiceName,
    ) -> Result<Vec<DeploymentRecord>, StoreError> {
        self.query_deployments(
            &format!(
                "SELECT {} FROM deployments WHERE service = ?1 ORDER BY created_at DESC, rowid DESC",
                Self::DEPLOYMENT_COLUMNS
            ),
            params![service.as_str()],
        )
    }

    /// Deployments that were between queued and starting: what a restart interrupted.
    pub fn in_progress_deployments(&self) -> Result<Vec<DeploymentRecord>, StoreError> {
        self.query_deployments(
            &format!(
                "SELECT {} FROM deployments WHERE state IN ('queued','fetching','building','starting') ORDER BY created_at",
                Self::DEPLOYMENT_COLUMNS
            ),
            [],
        )
    }

    fn query_deployments(
        &self,
        sql: &str,
        p: impl rusqlite::Params,
    ) -> Result<Vec<DeploymentRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(sql)?;
        let mut rows = stmt.query(p)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(Self::deployment_from(&conn, row)?);
        }
        Ok(out)
    }

    /// Records that a deployment's image was garbage-collected: it can no longer run.
    pub fn forget_image(&self, id: &DeploymentId) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE deployments SET image = NULL, updated_at = ?2 WHERE id = ?1",
            params![id.as_str(), now_ms()],
        )?;
        Ok(())
    }

    /// Whether any deployment (of any service) still uses the image `digest`.
    pub fn image_in_use(&self, digest: &str) -> Result<bool, StoreError> {
        let n: i64 = self.conn().query_row(
            "SELECT count(*) FROM deployments WHERE image = ?1",
            params![digest],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    // ---- instances --------------------------------------------------------------------

    /// Records a new instance as starting. `cold`: it was started for a request that found no
    /// instance to take it.
    pub fn insert_instance(
        &self,
        id: &InstanceId,
        service: &ServiceName,
        deployment: &DeploymentId,
        cold: bool,
        memory_mb: u32,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO instances (id, service, deployment, state, created_at, cold, memory_mb)
             VALUES (?1, ?2, ?3, 'starting', ?4, ?5, ?6)",
            params![
                id.as_str(),
                service.as_str(),
                deployment.as_str(),
                now_ms(),
                cold,
                memory_mb
            ],
        )?;
        Ok(())
    }

    /// Stores the instance's usage totals so far (absolute values, replacing the previous ones).
    pub fn set_instance_usage(
        &self,
        id: &InstanceId,
        usage: &InstanceUsage,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE instances SET active_ms = ?2, frozen_ms = ?3, cpu_ms = ?4, requests = ?5 WHERE id = ?1",
            params![
                id.as_str(),
                sql_int(usage.active_ms, "active_ms")?,
                sql_int(usage.frozen_ms, "frozen_ms")?,
                sql_int(usage.cpu_ms, "cpu_ms")?,
                sql_int(usage.requests, "requests")?,
            ],
        )?;
        Ok(())
    }

    pub fn set_instance_state(
        &self,
        id: &InstanceId,
        state: InstanceState,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let conn = self.conn();
        // Each statement gets exactly its own parameters: SQLite refuses surplus ones.
        match state {
            InstanceState::Ready => conn.execute(
                "UPDATE instances SET state = ?2, ready_at = ?3 WHERE id = ?1",
                params![id.as_str(), state.as_str(), now],
            )?,
            InstanceState::Stopped | InstanceState::Failed => conn.execute(
                "UPDATE instances SET state = ?2, stopped_at = ?3, exit_reason = coalesce(?4, exit_reason) WHERE id = ?1",
                params![id.as_str(), state.as_str(), now, reason],
            )?,
            _ => conn.execute(
                "UPDATE instances SET state = ?2 WHERE id = ?1",
                params![id.as_str(), state.as_str()],
            )?,
        };
        Ok(())
    }

    /// Marks every instance not yet stopped as stopped: on server start, none of them is ours.
    pub fn stop_all_instances(&self, reason: &str) -> Result<usize, StoreError> {
        Ok(self.conn().execute(
            "UPDATE instances SET state = 'stopped', stopped_at = ?1, exit_reason = ?2 WHERE state NOT IN ('stopped','failed')",
            params![now_ms(), reason],
        )?)
    }

    /// Newest first, at most `limit`.
    pub fn list_instances(
        &self,
        service: &ServiceName,
        limit: usize,
    ) -> Result<Vec<InstanceRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, service, deployment, state, created_at, ready_at, stopped_at, exit_reason,
                    cold, memory_mb, active_ms, frozen_ms, cpu_ms, requests
             FROM instances WHERE service = ?1 ORDER BY created_at DESC, rowid DESC LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![service.as_str(), limit as i64])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(InstanceRecord {
                id: parse(r.get(0)?, "instance id")?,
                service: parse(r.get(1)?, "service name")?,
                deployment: parse(r.get(2)?, "deployment id")?,
                state: parse(r.get(3)?, "instance state")?,
                created_at: r.get(4)?,
                ready_at: r.get(5)?,
                stopped_at: r.get(6)?,
                exit_reason: r.get(7)?,
                cold: r.get(8)?,
                memory_mb: r.get(9)?,
                usage: InstanceUsage {
                    active_ms: stored_u64(r.get(10)?, "instance active_ms")?,
                    frozen_ms: stored_u64(r.get(11)?, "instance frozen_ms")?,
                    cpu_ms: stored_u64(r.get(12)?, "instance cpu_ms")?,
                    requests: stored_u64(r.get(13)?, "instance requests")?,
                },
            });
        }
        Ok(out)
    }

    // ---- usage ------------------------------------------------------------------------

    /// Adds `delta` to the service's usage on `day` (`YYYY-MM-DD`, UTC; see
    /// [`crate::utc_day`]). The service must exist.
    pub fn add_usage(
        &self,
        service: &ServiceName,
        day: &str,
        delta: &UsageDelta,
    ) -> Result<(), StoreError> {
        check_day(day)?;
        self.conn().execute(
            "INSERT INTO usage_daily (service, day, active_ms, frozen_ms, cpu_ms, mb_ms, requests, cold_starts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(service, day) DO UPDATE SET
                active_ms = active_ms + excluded.active_ms,
                frozen_ms = frozen_ms + excluded.frozen_ms,
                cpu_ms = cpu_ms + excluded.cpu_ms,
                mb_ms = mb_ms + excluded.mb_ms,
                requests = requests + excluded.requests,
                cold_starts = cold_starts + excluded.cold_starts",
            params![
                service.as_str(),
                day,
                sql_int(delta.active_ms, "active_ms")?,
                sql_int(delta.frozen_ms, "frozen_ms")?,
                sql_int(delta.cpu_ms, "cpu_ms")?,
                sql_int(delta.mb_ms, "mb_ms")?,
                sql_int(delta.requests, "requests")?,
                sql_int(delta.cold_starts, "cold_starts")?,
            ],
        )?;
        Ok(())
    }

    /// The service's usage on the last `days` days that have any, newest first.
    pub fn usage(&self, service: &ServiceName, days: u32) -> Result<Vec<UsageDay>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT day, active_ms, frozen_ms, cpu_ms, mb_ms, requests, cold_starts
             FROM usage_daily WHERE service = ?1 ORDER BY day DESC LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![service.as_str(), days])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mb_ms = stored_u64(r.get(4)?, "usage mb_ms")?;
            out.push(UsageDay {
                day: r.get(0)?,
                active_ms: stored_u64(r.get(1)?, "usage active_ms")?,
                frozen_ms: stored_u64(r.get(2)?, "usage frozen_ms")?,
                cpu_ms: stored_u64(r.get(3)?, "usage cpu_ms")?,
                mb_ms,
                gb_seconds: mb_ms as f64 / 1024.0 / 1000.0,
                requests: stored_u64(r.get(5)?, "usage requests")?,
                cold_starts: stored_u64(r.get(6)?, "usage cold_starts")?,
            });
        }
        Ok(out)
    }

    /// Cold starts of the service over all recorded days.
    pub fn cold_starts_total(&self, service: &ServiceName) -> Result<u64, StoreError> {
        let total: i64 = self.conn().query_row(
            "SELECT coalesce(sum(cold_starts), 0) FROM usage_daily WHERE service = ?1",
            params![service.as_str()],
            |r| r.get(0),
        )?;
        stored_u64(total, "cold start total")
    }

    // ---- logs -------------------------------------------------------------------------

    /// Appends lines: access lines to the service's access log files, the others to SQLite in
    /// one transaction; enforces the per-service size cap. Ids follow the order of `lines`;
    /// a line that is not stored gets `None`.
    ///
    /// A service's log holds the lines of its own lifetime. Lines are written a little after
    /// they happen (the gateway hands access records over in batches, the log hub in turn),
    /// so a line can arrive after its service was deleted, or after a service of the same
    /// name was created again. It is dropped if its service is not on record, if it predates
    /// the service's creation, or if it names a deployment that is not the service's.
    pub fn append_logs(&self, lines: &[NewLogLine]) -> Result<Vec<Option<i64>>, StoreError> {
        // Ids are handed out and every line written under the one lock, so each file holds
        // its lines in id order whoever calls.
        let mut conn = self.conn();
        let first = self
            .next_log_id
            .fetch_add(lines.len() as i64, std::sync::atomic::Ordering::Relaxed);
        let mut ids: Vec<Option<i64>> = Vec::with_capacity(lines.len());
        // Per service: when it was created, `None` if it is not on record. Per deployment:
        // whether it is that service's.
        let mut services: HashMap<&str, Option<i64>> = HashMap::new();
        let mut deployments: HashMap<(&str, &str), bool> = HashMap::new();
        let mut access: BTreeMap<&str, Vec<AccessLine<'_>>> = BTreeMap::new();
        let mut other = Vec::new();
        for (l, id) in lines.iter().zip(first..) {
            let service = match services.get(l.service.as_str()) {
                Some(known) => *known,
                None => {
                    let known = conn
                        .prepare_cached("SELECT created_at FROM services WHERE name = ?1")?
                        .query_row(params![l.service], |r| r.get(0))
                        .optional()?;
                    services.insert(&l.service, known);
                    known
                }
            };
            let mut kept = service.is_some_and(|created| l.ts >= created);
            if kept && let Some(d) = l.deployment.as_deref() {
                let key = (l.service.as_str(), d);
                kept = match deployments.get(&key) {
                    Some(ours) => *ours,
                    None => {
                        let ours = conn
                            .prepare_cached(
                                "SELECT 1 FROM deployments WHERE id = ?1 AND service = ?2",
                            )?
                            .query_row(params![d, l.service], |_| Ok(()))
                            .optional()?
                            .is_some();
                        deployments.insert(key, ours);
                        ours
                    }
                };
            }
            if !kept {
                ids.push(None);
                continue;
            }
            ids.push(Some(id));
            if l.stream == LogStream::Access {
                access
                    .entry(l.service.as_str())
                    .or_default()
                    .push(AccessLine {
                        id,
                        ts: l.ts,
                        instance: l.instance.as_deref(),
                        text: &l.line,
                    });
            } else {
                other.push((l, id));
            }
        }
        if !other.is_empty() {
            Self::insert_sql_logs(&mut conn, &other, self.log_cap())?;
        }
        // The access log gets what the service's other lines leave of the cap, whichever of
        // the two grew: its oldest access lines go before any of its own output.
        let grown: BTreeSet<&str> = access
            .keys()
            .copied()
            .chain(other.iter().map(|(l, _)| l.service.as_str()))
            .collect();
        for service in grown {
            let used: Option<i64> = conn
                .prepare_cached("SELECT log_bytes FROM services WHERE name = ?1")?
                .query_row(params![service], |r| r.get(0))
                .optional()?;
            let Some(used) = used else { continue };
            let room = (self.log_cap() - used.max(0)).max(0) as u64;
            match access.get(service) {
                // The lines already committed to SQLite must still reach followers, and the
                // other services' access lines their files.
                Some(lines) => {
                    if let Err(e) = self.access.append(service, lines, room) {
                        tracing::error!(service, lines = lines.len(), error = %e, "access lines lost");
                    }
                }
                None => self.access.trim(service, room),
            }
        }
        drop(conn);
        Ok(ids)
    }

    /// Inserts lines in one transaction and trims services over `cap`.
    fn insert_sql_logs(
        conn: &mut Connection,
        lines: &[(&NewLogLine, i64)],
        cap: i64,
    ) -> Result<(), StoreError> {
        let tx = conn.transaction()?;
        let mut grown: HashMap<&str, i64> = HashMap::new();
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO logs (id, service, deployment, instance, stream, ts, line) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (l, id) in lines {
                insert.execute(params![
                    id,
                    l.service,
                    l.deployment,
                    l.instance,
                    l.stream.as_str(),
                    l.ts,
                    l.line
                ])?;
                *grown.entry(l.service.as_str()).or_default() += l.line.len() as i64 + 64;
            }
        }
        for (service, bytes) in grown {
            tx.execute(
                "UPDATE services SET log_bytes = log_bytes + ?2 WHERE name = ?1",
                params![service, bytes],
            )?;
            let total: Option<i64> = tx
                .query_row(
                    "SELECT log_bytes FROM services WHERE name = ?1",
                    params![service],
                    |r| r.get(0),
                )
                .optional()?;
            if total.unwrap_or(0) > cap {
                // Drop the oldest fifth in one go so trimming is rare, not per line.
                let freed: i64 = tx.query_row(
                    "SELECT coalesce(sum(length(line) + 64), 0) FROM logs WHERE service = ?1 AND id IN
                     (SELECT id FROM logs WHERE service = ?1 ORDER BY id LIMIT (SELECT count(*) / 5 FROM logs WHERE service = ?1))",
                    params![service],
                    |r| r.get(0),
                )?;
                tx.execute(
                    "DELETE FROM logs WHERE service = ?1 AND id IN
                     (SELECT id FROM logs WHERE service = ?1 ORDER BY id LIMIT (SELECT count(*) / 5 FROM logs WHERE service = ?1))",
                    params![service],
                )?;
                tx.execute(
                    "UPDATE services SET log_bytes = max(0, log_bytes - ?2) WHERE name = ?1",
                    params![service, freed],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Bytes of access log kept for a service.
    pub fn access_log_bytes(&self, service: &ServiceName) -> u64 {
        self.access.bytes(service.as_str())
    }

    /// A service's log lines that pass `filter`, from SQLite and the access log, in id order.
    pub fn query_logs(
        &self,
        service: &str,
        filter: &LogFilter,
    ) -> Result<Vec<LogLine>, StoreError> {
        // Every id up to this one is fully written to both places (ids are handed out and
        // written under the connection lock): reading only up to it, the two reads agree even
        // when lines are appended between them, so a follower never skips a line.
        let upto = {
            let _written = self.conn();
            self.next_log_id.load(std::sync::atomic::Ordering::Relaxed) - 1
        };
        let access = self.access.query(service, filter, upto);
        let only_access = filter.streams == [LogStream::Access];
        let mut lines = if only_access {
            Vec::new()
        } else {
            self.query_sql_logs(service, filter, upto)?
        };
        if access.is_empty() {
            return Ok(lines);
        }
        if lines.is_empty() {
            return Ok(access);
        }
        lines.extend(access);
        lines.sort_unstable_by_key(|l| l.id);
        if let Some(tail) = filter.tail
            && lines.len() > tail
        {
            lines.drain(..lines.len() - tail);
        }
        Ok(lines)
    }

    fn query_sql_logs(
        &self,
        service: &str,
        filter: &LogFilter,
        upto: i64,
    ) -> Result<Vec<LogLine>, StoreError> {
        let mut sql = String::from(
            "SELECT id, service, deployment, instance, stream, ts, line FROM logs WHERE service = ?1 AND id <= ?2",
        );
        let mut args: Vec<rusqlite::types::Value> = vec![service.to_string().into(), upto.into()];
        if let Some(d) = &filter.deployment {
            args.push(d.clone().into());
            sql.push_str(&format!(" AND deployment = ?{}", args.len()));
        }
        if filter.build_only {
            sql.push_str(" AND stream = 'build'");
        }
        if let Some(after) = filter.after_id {
            args.push(after.into());
            sql.push_str(&format!(" AND id > ?{}", args.len()));
        }
        if let Some(since) = filter.since_ms {
            args.push(since.into());
            sql.push_str(&format!(" AND ts >= ?{}", args.len()));
        }
        if let Some(i) = &filter.instance {
            args.push(i.clone().into());
            sql.push_str(&format!(" AND instance = ?{}", args.len()));
        }
        if !filter.streams.is_empty() {
            let names: Vec<String> = filter
                .streams
                .iter()
                .map(|s| format!("'{}'", s.as_str()))
                .collect();
            sql.push_str(&format!(" AND stream IN ({})", names.join(",")));
        }
        if let Some(text) = &filter.grep {
            args.push(text.clone().into());
            sql.push_str(&format!(" AND instr(line, ?{}) > 0", args.len()));
            // The trigram index answers for three characters or more, over the lines indexed
            // so far; the newest lines, not indexed yet, are read. The exact test stays on
            // both: the index finds candidates by trigrams.
            if text.chars().count() >= 3 {
                args.push(format!("\"{}\"", text.replace('"', "\"\"")).into());
                sql = format!(
                    "{sql} AND id IN (SELECT rowid FROM logs_text WHERE logs_text MATCH ?{n})
                     UNION ALL {sql} AND id > (SELECT upto FROM logs_indexed)",
                    n = args.len()
                );
            }
        }
        // As a subquery, so a UNION (the grep above) is ordered and limited as a whole.
        if let Some(tail) = filter.tail {
            args.push(i64::try_from(tail).unwrap_or(i64::MAX).into());
            sql = format!(
                "SELECT * FROM (SELECT * FROM ({sql}) ORDER BY id DESC LIMIT ?{}) ORDER BY id",
                args.len()
            );
        } else {
            sql = format!("SELECT * FROM ({sql}) ORDER BY id");
        }
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(id, service, deployment, instance, stream, ts, line)| {
                Ok(LogLine {
                    id,
                    service,
                    deployment,
                    instance,
                    stream: LogStream::parse(&stream)
                        .ok_or_else(|| corrupt(format!("log stream '{stream}'")))?,
                    ts,
                    line,
                })
            })
            .collect()
    }

    /// The last `n` lines of one instance or deployment, for failure reasons.
    pub fn last_lines(
        &self,
        deployment: &DeploymentId,
        n: usize,
    ) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT line FROM (SELECT id, line FROM logs WHERE deployment = ?1 AND stream IN ('stdout','stderr','build')
             ORDER BY id DESC LIMIT ?2) ORDER BY id",
        )?;
        let rows = stmt
            .query_map(params![deployment.as_str(), n as i64], |r| {
                r.get::<_, String>(0)
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

mod hooks;
mod lifecycle;
// Static folders of deployments and the switch they are served across (issue 15).
mod static_assets;
pub use lifecycle::StateChange;
pub use static_assets::LastSwitch;
#[cfg(test)]
mod tests;
