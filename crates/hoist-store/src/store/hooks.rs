//! Deploys that start without a `hoist deploy`: a deployment recorded with its trigger, each
//! service's webhook secret (sealed by the caller: the key never reaches this crate) and the
//! webhook deliveries already seen.

use hoist_core::{DeploymentId, DeploymentState, DeploymentTrigger, ServiceName};
use rusqlite::{OptionalExtension, params};

use super::Store;
use crate::{StoreError, now_ms};

/// How long a delivery id is remembered: git hosts redeliver within hours (GitHub's
/// "Redeliver" button, a retry after a timeout), never after a week.
pub const DELIVERY_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

impl Store {
    /// [`Store::insert_deployment`] with what started it.
    pub fn insert_triggered_deployment(
        &self,
        id: &DeploymentId,
        service: &ServiceName,
        source: &str,
        branch: Option<&str>,
        request: &serde_json::Value,
        trigger: &DeploymentTrigger,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        self.conn().execute(
            "INSERT INTO deployments (id, service, state, source, branch, request, created_at, updated_at, trigger, trigger_delivery)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9)",
            params![
                id.as_str(),
                service.as_str(),
                DeploymentState::Queued.as_str(),
                source,
                branch,
                request.to_string(),
                now,
                trigger.kind(),
                trigger.delivery(),
            ],
        )?;
        Ok(())
    }

    /// The service's sealed webhook secret, if it has one.
    pub fn webhook_secret(&self, service: &ServiceName) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT secret_sealed FROM webhooks WHERE service = ?1",
                params![service.as_str()],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Stores `sealed` as the service's secret when it has none (`replace`: in any case).
    /// Returns whether it was stored; of two first deploys at once, one secret wins.
    pub fn put_webhook_secret(
        &self,
        service: &ServiceName,
        sealed: &[u8],
        replace: bool,
    ) -> Result<bool, StoreError> {
        let sql = if replace {
            "INSERT INTO webhooks (service, secret_sealed, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(service) DO UPDATE SET secret_sealed = excluded.secret_sealed, created_at = excluded.created_at"
        } else {
            "INSERT INTO webhooks (service, secret_sealed, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(service) DO NOTHING"
        };
        let n = self
            .conn()
            .execute(sql, params![service.as_str(), sealed, now_ms()])?;
        Ok(n > 0)
    }

    /// Records a webhook delivery; `false` when it was seen before (a redelivery).
    pub fn record_delivery(
        &self,
        service: &ServiceName,
        delivery: &str,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let conn = self.conn();
        conn.execute(
            "DELETE FROM webhook_deliveries WHERE received_at < ?1",
            params![now - DELIVERY_RETENTION_MS],
        )?;
        let n = conn.execute(
            "INSERT INTO webhook_deliveries (service, delivery, received_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(service, delivery) DO NOTHING",
            params![service.as_str(), delivery, now],
        )?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory for one test, removed when dropped.
    struct Dir(std::path::PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn store(test: &str) -> (Dir, Store, ServiceName) {
        let dir =
            std::env::temp_dir().join(format!("hoist-store-hooks-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("hoist.db")).unwrap();
        let name: ServiceName = "web".parse().unwrap();
        store.ensure_service(&name).unwrap();
        (Dir(dir), store, name)
    }

    #[test]
    fn a_deployment_keeps_its_trigger() {
        let (_dir, store, name) = store("trigger");
        let push = DeploymentTrigger::Push {
            delivery: "72d3162e".into(),
        };
        let a = DeploymentId::generate();
        store
            .insert_triggered_deployment(&a, &name, "/srv/app", None, &serde_json::json!({}), &push)
            .unwrap();
        let b = DeploymentId::generate();
        store
            .insert_deployment(&b, &name, "/srv/app", None, &serde_json::json!({}))
            .unwrap();
        assert_eq!(store.get_deployment(&a).unwrap().unwrap().trigger, push);
        assert_eq!(
            store.get_deployment(&b).unwrap().unwrap().trigger,
            DeploymentTrigger::Api
        );
    }

    #[test]
    fn the_first_secret_stays_until_replaced() {
        let (_dir, store, name) = store("secret");
        assert_eq!(store.webhook_secret(&name).unwrap(), None);
        assert!(store.put_webhook_secret(&name, b"one", false).unwrap());
        assert!(!store.put_webhook_secret(&name, b"two", false).unwrap());
        assert_eq!(store.webhook_secret(&name).unwrap().unwrap(), b"one");
        assert!(store.put_webhook_secret(&name, b"three", true).unwrap());
        assert_eq!(store.webhook_secret(&name).unwrap().unwrap(), b"three");
        store.delete_service(&name).unwrap();
        assert_eq!(store.webhook_secret(&name).unwrap(), None);
    }

    #[test]
    fn a_delivery_is_new_once() {
        let (_dir, store, name) = store("delivery");
        assert!(store.record_delivery(&name, "d1").unwrap());
        assert!(!store.record_delivery(&name, "d1").unwrap());
        assert!(store.record_delivery(&name, "d2").unwrap());
        // Per service: another service's delivery of the same id is its own.
        let other: ServiceName = "api".parse().unwrap();
        store.ensure_service(&other).unwrap();
        assert!(store.record_delivery(&other, "d1").unwrap());
    }
}
