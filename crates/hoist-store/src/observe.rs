//! Events (what went wrong, with the log lines around it) and per-minute metrics.

use hoist_core::{EventKind, ServiceName};
use rusqlite::params;
use serde::{Deserialize, Serialize};

use crate::{Store, StoreError};

/// Something a user debugging the service wants to see: a 5xx answered, a crash, a failed
/// start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventRecord {
    pub id: i64,
    pub service: String,
    pub ts: i64,
    pub kind: EventKind,
    pub instance: Option<String>,
    pub deployment: Option<String>,
    pub detail: String,
    /// The log lines around it.
    pub context: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub service: String,
    pub ts: i64,
    pub kind: EventKind,
    pub instance: Option<String>,
    pub deployment: Option<String>,
    pub detail: String,
    pub context: Vec<String>,
}

/// One minute of one service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MinuteMetrics {
    /// Start of the minute, ms since the epoch.
    pub minute: i64,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Instances running at the end of the minute.
    pub instances: u64,
    /// Memory of the service's instances at the end of the minute.
    pub memory_mb: f64,
    /// CPU time the instances used during the minute.
    pub cpu_ms: u64,
}

/// An event's kind as stored (its text form); a row with a kind this build does not know is a
/// read error rather than a silently renamed kind.
fn kind_column(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<EventKind> {
    let text: String = row.get(index)?;
    text.parse().map_err(|e: hoist_core::SpecError| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Store {
    pub fn insert_event(&self, e: &NewEvent) -> Result<i64, StoreError> {
        let context = serde_json::to_string(&e.context).unwrap_or_else(|_| "[]".into());
        let conn = self.conn();
        // A service deleted meanwhile has no events to keep.
        let n = conn.execute(
            "INSERT INTO events (service, ts, kind, instance, deployment, detail, context)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE EXISTS (SELECT 1 FROM services WHERE name = ?1)",
            params![
                e.service,
                e.ts,
                e.kind.as_str(),
                e.instance,
                e.deployment,
                e.detail,
                context
            ],
        )?;
        Ok(if n == 1 { conn.last_insert_rowid() } else { 0 })
    }

    /// The service's most recent events, newest first.
    pub fn events(
        &self,
        service: &ServiceName,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, service, ts, kind, instance, deployment, detail, context FROM events
             WHERE service = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![service.as_str(), as_i64(limit as u64)], |r| {
            let context: String = r.get(7)?;
            Ok(EventRecord {
                id: r.get(0)?,
                service: r.get(1)?,
                ts: r.get(2)?,
                kind: kind_column(r, 3)?,
                instance: r.get(4)?,
                deployment: r.get(5)?,
                detail: r.get(6)?,
                context: serde_json::from_str(&context).unwrap_or_default(),
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Events by kind since `since_ms`.
    pub fn event_counts(
        &self,
        service: &ServiceName,
        since_ms: i64,
    ) -> Result<Vec<(EventKind, u64)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT kind, count(*) FROM events WHERE service = ?1 AND ts >= ?2 GROUP BY kind ORDER BY kind",
        )?;
        let rows = stmt.query_map(params![service.as_str(), since_ms], |r| {
            Ok((kind_column(r, 0)?, r.get::<_, i64>(1)?.max(0) as u64))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    pub fn put_minute(&self, service: &str, m: &MinuteMetrics) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO metrics_minute (service, minute, requests, errors, p50_ms, p95_ms, p99_ms, instances, memory_mb, cpu_ms)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 WHERE EXISTS (SELECT 1 FROM services WHERE name = ?1)
             ON CONFLICT(service, minute) DO UPDATE SET requests = excluded.requests, errors = excluded.errors,
               p50_ms = excluded.p50_ms, p95_ms = excluded.p95_ms, p99_ms = excluded.p99_ms,
               instances = excluded.instances, memory_mb = excluded.memory_mb, cpu_ms = excluded.cpu_ms",
            params![
                service,
                m.minute,
                as_i64(m.requests),
                as_i64(m.errors),
                m.p50_ms,
                m.p95_ms,
                m.p99_ms,
                as_i64(m.instances),
                m.memory_mb,
                as_i64(m.cpu_ms)
            ],
        )?;
        Ok(())
    }

    /// Minutes at or after `since_ms`, oldest first.
    pub fn minutes(
        &self,
        service: &ServiceName,
        since_ms: i64,
    ) -> Result<Vec<MinuteMetrics>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT minute, requests, errors, p50_ms, p95_ms, p99_ms, instances, memory_mb, cpu_ms
             FROM metrics_minute WHERE service = ?1 AND minute >= ?2 ORDER BY minute",
        )?;
        let rows = stmt.query_map(params![service.as_str(), since_ms], |r| {
            Ok(MinuteMetrics {
                minute: r.get(0)?,
                requests: r.get::<_, i64>(1)?.max(0) as u64,
                errors: r.get::<_, i64>(2)?.max(0) as u64,
                p50_ms: r.get(3)?,
                p95_ms: r.get(4)?,
                p99_ms: r.get(5)?,
                instances: r.get::<_, i64>(6)?.max(0) as u64,
                memory_mb: r.get(7)?,
                cpu_ms: r.get::<_, i64>(8)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Requests and 5xx answers of every service since `since_ms`, by service name, in one
    /// query (the services list shows them for all services at once).
    pub fn request_counts(
        &self,
        since_ms: i64,
    ) -> Result<std::collections::HashMap<String, (u64, u64)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT service, sum(requests), sum(errors) FROM metrics_minute
             WHERE minute >= ?1 GROUP BY service",
        )?;
        let rows = stmt.query_map(params![since_ms], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (
                    r.get::<_, i64>(1)?.max(0) as u64,
                    r.get::<_, i64>(2)?.max(0) as u64,
                ),
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Drops minutes and events older than `cutoff_ms`.
    pub fn prune_observations(
        &self,
        minutes_before: i64,
        events_before: i64,
    ) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.execute(
            "DELETE FROM metrics_minute WHERE minute < ?1",
            params![minutes_before],
        )?;
        conn.execute("DELETE FROM events WHERE ts < ?1", params![events_before])?;
        Ok(())
    }

    /// Counts for the platform gauges: services, deployments.
    pub fn platform_counts(&self) -> Result<(u64, u64), StoreError> {
        let conn = self.conn();
        let services: i64 = conn.query_row("SELECT count(*) FROM services", [], |r| r.get(0))?;
        let deployments: i64 =
            conn.query_row("SELECT count(*) FROM deployments", [], |r| r.get(0))?;
        Ok((services.max(0) as u64, deployments.max(0) as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (Store, ServiceName) {
        let dir = std::env::temp_dir().join(format!(
            "hoist-store-observe-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("db")).unwrap();
        let name: ServiceName = "web".parse().unwrap();
        store.ensure_service(&name).unwrap();
        (store, name)
    }

    #[test]
    fn events_are_listed_newest_first_and_counted_by_kind() {
        let (store, name) = store();
        let kinds = [EventKind::Crash, EventKind::Http5xx, EventKind::Http5xx];
        for (i, &kind) in kinds.iter().enumerate() {
            store
                .insert_event(&NewEvent {
                    service: "web".into(),
                    ts: 1000 + i as i64,
                    kind,
                    instance: Some("i-1".into()),
                    deployment: None,
                    detail: format!("event {i}"),
                    context: vec!["line a".into(), "line b".into()],
                })
                .unwrap();
        }
        // Unknown services get nothing stored.
        let orphan = NewEvent {
            service: "gone".into(),
            ts: 1,
            kind: EventKind::Crash,
            instance: None,
            deployment: None,
            detail: String::new(),
            context: Vec::new(),
        };
        assert_eq!(store.insert_event(&orphan).unwrap(), 0);
        let events = store.events(&name, 10).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].detail, "event 2");
        assert_eq!(events[0].kind, EventKind::Http5xx);
        assert_eq!(events[2].kind, EventKind::Crash);
        assert_eq!(events[0].context, vec!["line a", "line b"]);
        let counts = store.event_counts(&name, 1001).unwrap();
        assert_eq!(counts, vec![(EventKind::Http5xx, 2)]);
        // Stored as the text it always was, so existing databases read back.
        let stored: Vec<String> = store
            .conn()
            .prepare("SELECT kind FROM events ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(stored, ["crash", "http_5xx", "http_5xx"]);
        let json = serde_json::to_value(&events[0]).unwrap();
        assert_eq!(json["kind"], "http_5xx");
    }

    #[test]
    fn an_unknown_stored_kind_is_a_read_error_naming_it() {
        let (store, name) = store();
        store
            .conn()
            .execute(
                "INSERT INTO events (service, ts, kind, detail, context) VALUES ('web', 1, 'meltdown', '', '[]')",
                [],
            )
            .unwrap();
        let err = store.events(&name, 10).unwrap_err().to_string();
        assert!(err.contains("invalid event kind 'meltdown'"), "{err}");
    }

    #[test]
    fn request_counts_sum_each_service_since_a_time() {
        let (store, name) = store();
        let other: ServiceName = "api".parse().unwrap();
        store.ensure_service(&other).unwrap();
        let minute = |minute, requests, errors| MinuteMetrics {
            minute,
            requests,
            errors,
            p50_ms: None,
            p95_ms: None,
            p99_ms: None,
            instances: 1,
            memory_mb: 0.0,
            cpu_ms: 0,
        };
        store.put_minute("web", &minute(0, 100, 100)).unwrap();
        store.put_minute("web", &minute(60_000, 5, 1)).unwrap();
        store.put_minute("web", &minute(120_000, 7, 0)).unwrap();
        store.put_minute("api", &minute(120_000, 3, 3)).unwrap();
        let counts = store.request_counts(60_000).unwrap();
        assert_eq!(counts[name.as_str()], (12, 1));
        assert_eq!(counts["api"], (3, 3));
        assert_eq!(counts.len(), 2);
        assert!(store.request_counts(180_000).unwrap().is_empty());
    }

    #[test]
    fn minutes_are_upserted_listed_and_pruned() {
        let (store, name) = store();
        let mut m = MinuteMetrics {
            minute: 60_000,
            requests: 10,
            errors: 1,
            p50_ms: Some(2.0),
            ..MinuteMetrics::default()
        };
        store.put_minute("web", &m).unwrap();
        m.requests = 12;
        store.put_minute("web", &m).unwrap();
        store
            .put_minute(
                "web",
                &MinuteMetrics {
                    minute: 120_000,
                    ..MinuteMetrics::default()
                },
            )
            .unwrap();
        let all = store.minutes(&name, 0).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].requests, 12);
        store.prune_observations(100_000, 0).unwrap();
        assert_eq!(store.minutes(&name, 0).unwrap().len(), 1);
    }
}
