//! Unit tests for [`Store`]. Every test opens its own database in a temp directory of its own,
//! which is removed again when the test ends (also when it fails).

use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hoist_core::{
    DeploymentId, DeploymentState, InstanceId, InstanceState, RootDir, Runtime, Scaling,
    ServiceName, ServiceSpec, SpecError, SpecLayer,
};
use rusqlite::Connection;

use super::Store;
use crate::migrations::MIGRATIONS;
use crate::records::DeploymentRecord;
use crate::token::hash_token;
use crate::{
    InstanceUsage, LogFilter, LogLine, LogStream, NewLogLine, StoreError, UsageDelta, now_ms,
    utc_day,
};

type TestResult = Result<(), Box<dyn Error>>;

/// A directory for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> std::io::Result<TempDir> {
        let path =
            std::env::temp_dir().join(format!("hoist-store-test-{}-{test}", std::process::id()));
        // A leftover of an earlier run whose pid was recycled must not leak into this one.
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }

    fn db(&self) -> PathBuf {
        self.0.join("hoist.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn service(name: &str) -> Result<ServiceName, SpecError> {
    name.parse()
}

fn spec(name: &ServiceName, start: &str) -> Result<ServiceSpec, SpecError> {
    ServiceSpec::resolve(
        name.clone(),
        "https://example.com/app.git".into(),
        Some("main".into()),
        RootDir::root(),
        SpecLayer {
            start_command: Some(start.into()),
            ..SpecLayer::default()
        },
        Some(Runtime::Python),
        Scaling::default(),
    )
}

fn new_deployment(store: &Store, name: &ServiceName) -> Result<DeploymentId, StoreError> {
    let id = DeploymentId::generate();
    store.insert_deployment(
        &id,
        name,
        "https://example.com/app.git",
        Some("main"),
        &serde_json::json!({ "name": name.as_str() }),
    )?;
    Ok(id)
}

/// Runs a deployment through the pipeline steps up to `starting`.
fn advance_to_starting(store: &Store, id: &DeploymentId) -> Result<(), StoreError> {
    for (from, to) in [
        (DeploymentState::Queued, DeploymentState::Fetching),
        (DeploymentState::Fetching, DeploymentState::Building),
        (DeploymentState::Building, DeploymentState::Starting),
    ] {
        store.transition_deployment(id, from, to, None)?;
    }
    Ok(())
}

fn deployment(store: &Store, id: &DeploymentId) -> Result<DeploymentRecord, Box<dyn Error>> {
    Ok(store
        .get_deployment(id)?
        .ok_or_else(|| format!("deployment {id} not found"))?)
}

fn log_line(
    service: &str,
    deployment: Option<&DeploymentId>,
    instance: Option<&InstanceId>,
    stream: LogStream,
    line: &str,
) -> NewLogLine {
    NewLogLine {
        service: service.to_string(),
        deployment: deployment.map(|d| d.to_string()),
        instance: instance.map(|i| i.to_string()),
        stream,
        ts: now_ms(),
        line: line.to_string(),
    }
}

fn texts(lines: &[LogLine]) -> Vec<&str> {
    lines.iter().map(|l| l.line.as_str()).collect()
}

fn count(store: &Store, sql: &str, p: impl rusqlite::Params) -> rusqlite::Result<i64> {
    store.conn().query_row(sql, p, |r| r.get(0))
}

fn log_bytes(store: &Store, name: &str) -> rusqlite::Result<i64> {
    count(
        store,
        "SELECT log_bytes FROM services WHERE name = ?1",
        [name],
    )
}

fn user_version(store: &Store) -> rusqlite::Result<i64> {
    count(store, "PRAGMA user_version", [])
}

/// The database file followed by its write-ahead log (when there is one).
fn db_bytes(db: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = std::fs::read(db)?;
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    match std::fs::read(PathBuf::from(wal)) {
        Ok(more) => bytes.extend(more),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(bytes)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// ---- schema ---------------------------------------------------------------------------

#[test]
fn open_applies_migrations() -> TestResult {
    let dir = TempDir::new("open_applies_migrations")?;
    let store = Store::open(&dir.db())?;
    assert!(user_version(&store)? >= 1);
    for table in [
        "services",
        "deployments",
        "deployment_steps",
        "instances",
        "logs",
        "api_tokens",
        "usage_daily",
    ] {
        let n = count(
            &store,
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
        )?;
        assert_eq!(n, 1, "table {table}");
    }
    assert_eq!(user_version(&store)?, MIGRATIONS.len() as i64);
    let mode: String = store
        .conn()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    assert_eq!(mode, "wal");
    assert_eq!(count(&store, "PRAGMA foreign_keys", [])?, 1);
    Ok(())
}

#[test]
fn reopen_keeps_data() -> TestResult {
    let dir = TempDir::new("reopen_keeps_data")?;
    let web = service("web")?;
    let web_spec = spec(&web, "python app.py")?;
    let instance = InstanceId::generate();

    let store = Store::open(&dir.db())?;
    let version = user_version(&store)?;
    let token = store
        .ensure_admin_token()?
        .ok_or("no admin token created")?;
    store.ensure_service(&web)?;
    store.set_service_spec(&web, &web_spec)?;
    let d = new_deployment(&store, &web)?;
    advance_to_starting(&store, &d)?;
    store.set_deployment_spec(&d, &web_spec)?;
    store.set_deployment_image(&d, "sha256:abc", "3.12.1")?;
    store.set_live(&web, &d, DeploymentState::Starting)?;
    store.insert_instance(&instance, &web, &d, true, 512)?;
    store.set_instance_state(&instance, InstanceState::Ready, None)?;
    let scaling = Scaling {
        min_instances: 1,
        ..Scaling::default()
    };
    store.set_service_scaling(&web, &scaling)?;
    let usage = InstanceUsage {
        active_ms: 1500,
        frozen_ms: 20,
        cpu_ms: 300,
        requests: 4,
    };
    store.set_instance_usage(&instance, &usage)?;
    let delta = UsageDelta {
        active_ms: 1500,
        mb_ms: 1500 * 512,
        requests: 4,
        cold_starts: 1,
        ..UsageDelta::default()
    };
    store.add_usage(&web, "2026-11-25", &delta)?;
    let ids = store.append_all(&[log_line(
        "web",
        Some(&d),
        Some(&instance),
        LogStream::Stdout,
        "hello",
    )])?;
    let before = deployment(&store, &d)?;
    drop(store);

    // Reopening must not re-run the migrations (they would fail on existing tables) and must
    // find everything as it was left.
    let store = Store::open(&dir.db())?;
    assert_eq!(user_version(&store)?, version);
    assert!(store.verify_token(&token)?);
    assert_eq!(store.ensure_admin_token()?, None);

    let svc = store.get_service(&web)?.ok_or("service lost")?;
    assert_eq!(svc.live_deployment.as_ref(), Some(&d));
    assert_eq!(serde_json::from_value::<ServiceSpec>(svc.spec)?, web_spec);

    let after = deployment(&store, &d)?;
    assert_eq!(after.state, DeploymentState::Live);
    assert_eq!(after.spec.as_ref(), Some(&web_spec));
    assert_eq!(after.image.as_deref(), Some("sha256:abc"));
    assert_eq!(after.finished_at, before.finished_at);
    assert_eq!(after.steps.len(), 3);
    assert_eq!(after.steps.len(), before.steps.len());

    let instances = store.list_instances(&web, 10)?;
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].id, instance);
    assert_eq!(instances[0].state, InstanceState::Ready);
    assert!(instances[0].cold);
    assert_eq!(instances[0].memory_mb, 512);
    assert_eq!(instances[0].usage, usage);
    assert_eq!(svc.scaling, Some(scaling));
    let days = store.usage(&web, 7)?;
    assert_eq!(days.len(), 1);
    assert_eq!((days[0].active_ms, days[0].cold_starts), (1500, 1));

    let logs = store.query_logs("web", &LogFilter::default())?;
    assert_eq!(texts(&logs), ["hello"]);
    assert_eq!(logs[0].id, ids[0]);
    // Log ids keep growing across restarts, so `after_id` followers never miss lines.
    let more = store.append_all(&[log_line("web", None, None, LogStream::System, "again")])?;
    assert!(more[0] > ids[0]);
    Ok(())
}

#[test]
fn newer_schema_is_refused() -> TestResult {
    let dir = TempDir::new("newer_schema_is_refused")?;
    let store = Store::open(&dir.db())?;
    let known = user_version(&store)?;
    drop(store);

    let conn = Connection::open(dir.db())?;
    conn.pragma_update(None, "user_version", known + 1)?;
    drop(conn);

    match Store::open(&dir.db()) {
        Err(StoreError::TooNew { found, known: k }) => {
            assert_eq!(found, known + 1);
            assert_eq!(k, known);
        }
        Err(e) => return Err(format!("expected TooNew, got {e}").into()),
        Ok(_) => return Err("a newer schema was accepted".into()),
    }
    Ok(())
}

#[test]
fn first_schema_upgrades_with_defaults() -> TestResult {
    let dir = TempDir::new("first_schema_upgrades_with_defaults")?;
    let web = service("web")?;
    let d = DeploymentId::generate();
    let instance = InstanceId::generate();

    // A database as a binary that knew only the first migration left it.
    let conn = Connection::open(dir.db())?;
    conn.execute_batch(MIGRATIONS[0])?;
    conn.pragma_update(None, "user_version", 1)?;
    conn.execute(
        "INSERT INTO services (name, spec, created_at, updated_at) VALUES (?1, '{}', 1, 2)",
        [web.as_str()],
    )?;
    conn.execute(
        "INSERT INTO instances (id, service, deployment, state, created_at, ready_at, stopped_at, exit_reason)
         VALUES (?1, ?2, ?3, 'stopped', 10, 11, 12, 'replaced')",
        [instance.as_str(), web.as_str(), d.as_str()],
    )?;
    drop(conn);

    let store = Store::open(&dir.db())?;
    assert_eq!(user_version(&store)?, MIGRATIONS.len() as i64);
    let svc = store
        .get_service(&web)?
        .ok_or("service lost in the upgrade")?;
    assert_eq!(svc.scaling, None);
    assert_eq!((svc.created_at, svc.updated_at), (1, 2));
    let rec = store
        .list_instances(&web, 10)?
        .pop()
        .ok_or("instance lost in the upgrade")?;
    assert_eq!(rec.id, instance);
    assert_eq!(rec.state, InstanceState::Stopped);
    assert_eq!(
        (rec.created_at, rec.ready_at, rec.stopped_at),
        (10, Some(11), Some(12))
    );
    assert_eq!(rec.exit_reason.as_deref(), Some("replaced"));
    assert!(!rec.cold);
    assert_eq!(rec.memory_mb, 0);
    assert_eq!(rec.usage, InstanceUsage::default());
    assert!(store.usage(&web, 30)?.is_empty());
    assert_eq!(store.cold_starts_total(&web)?, 0);

    // The new columns and table take writes on the upgraded database.
    store.set_service_scaling(&web, &Scaling::default())?;
    assert_eq!(
        store.get_service(&web)?.ok_or("service lost")?.scaling,
        Some(Scaling::default())
    );
    store.add_usage(
        &web,
        "2026-01-01",
        &UsageDelta {
            cold_starts: 1,
            ..UsageDelta::default()
        },
    )?;
    assert_eq!(store.cold_starts_total(&web)?, 1);
    drop(store);

    // And opening it once more applies nothing twice.
    let store = Store::open(&dir.db())?;
    assert_eq!(user_version(&store)?, MIGRATIONS.len() as i64);
    assert_eq!(store.cold_starts_total(&web)?, 1);
    Ok(())
}

// ---- tokens ---------------------------------------------------------------------------

#[test]
fn admin_token_is_created_once() -> TestResult {
    let dir = TempDir::new("admin_token_is_created_once")?;
    let store = Store::open(&dir.db())?;
    let token = store
        .ensure_admin_token()?
        .ok_or("no admin token created")?;
    assert!(token.starts_with("hoist_"), "{token}");
    assert_eq!(token.len(), "hoist_".len() + 64);
    assert_eq!(store.ensure_admin_token()?, None);
    assert_eq!(count(&store, "SELECT count(*) FROM api_tokens", [])?, 1);

    assert!(store.verify_token(&token)?);
    assert!(!store.verify_token("hoist_not-the-token")?);
    assert!(!store.verify_token("")?);
    assert!(!store.verify_token(&format!("{token}x"))?);
    assert!(!store.verify_token(&token[..token.len() - 1])?);
    assert!(!store.verify_token(&token.to_uppercase())?);
    Ok(())
}

#[test]
fn replace_admin_token_invalidates_old() -> TestResult {
    let dir = TempDir::new("replace_admin_token_invalidates_old")?;
    let store = Store::open(&dir.db())?;
    let old = store
        .ensure_admin_token()?
        .ok_or("no admin token created")?;
    let new = store.replace_admin_token()?;
    assert_ne!(new, old);
    assert!(store.verify_token(&new)?);
    assert!(!store.verify_token(&old)?);
    // The old one is kept as revoked (so using it is told so), the new one is the live admin.
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL",
            []
        )?,
        1
    );
    // A token exists, so startup must not mint another one.
    assert_eq!(store.ensure_admin_token()?, None);

    let newer = store.replace_admin_token()?;
    assert!(store.verify_token(&newer)?);
    assert!(!store.verify_token(&new)?);
    drop(store);

    let store = Store::open(&dir.db())?;
    assert!(store.verify_token(&newer)?);
    assert!(!store.verify_token(&new)?);
    assert!(!store.verify_token(&old)?);
    Ok(())
}

#[test]
fn plain_token_is_not_stored() -> TestResult {
    let dir = TempDir::new("plain_token_is_not_stored")?;
    let store = Store::open(&dir.db())?;
    let first = store
        .ensure_admin_token()?
        .ok_or("no admin token created")?;
    let second = store.replace_admin_token()?;

    let check = |bytes: &[u8]| {
        for token in [&first, &second] {
            assert!(!contains(bytes, token.as_bytes()), "plain token on disk");
            let secret = token.trim_start_matches("hoist_");
            assert!(!contains(bytes, secret.as_bytes()), "token secret on disk");
        }
        // The hash is found, so the search does look where the tokens are kept.
        assert!(contains(bytes, hash_token(&second).as_bytes()));
    };
    // While open, recent writes live in the WAL; on close they are checkpointed into the db.
    check(&db_bytes(&dir.db())?);
    drop(store);
    check(&db_bytes(&dir.db())?);
    Ok(())
}

// ---- services -------------------------------------------------------------------------

#[test]
fn ensure_service_is_idempotent() -> TestResult {
    let dir = TempDir::new("ensure_service_is_idempotent")?;
    let store = Store::open(&dir.db())?;
    let web = service("web")?;
    assert!(store.get_service(&web)?.is_none());

    store.ensure_service(&web)?;
    let first = store.get_service(&web)?.ok_or("service not created")?;
    assert_eq!(first.name, web);
    assert_eq!(first.spec, serde_json::json!({}));
    assert_eq!(first.live_deployment, None);
    assert_eq!(first.created_at, first.updated_at);

    let web_spec = spec(&web, "python app.py")?;
    store.set_service_spec(&web, &web_spec)?;
    let d = new_deployment(&store, &web)?;
    advance_to_starting(&store, &d)?;
    store.set_live(&web, &d, DeploymentState::Starting)?;

    // A second ensure leaves the existing service alone.
    store.ensure_service(&web)?;
    let again = store.get_service(&web)?.ok_or("service lost")?;
    assert_eq!(again.created_at, first.created_at);
    assert_eq!(again.live_deployment.as_ref(), Some(&d));
    assert_eq!(serde_json::from_value::<ServiceSpec>(again.spec)?, web_spec);
    assert!(again.updated_at >= first.updated_at);

    store.ensure_service(&service("zeta")?)?;
    store.ensure_service(&service("api")?)?;
    store.ensure_service(&web)?;
    let names: Vec<String> = store
        .list_services()?
        .into_iter()
        .map(|s| s.name.into_string())
        .collect();
    assert_eq!(names, ["api", "web", "zeta"]);
    Ok(())
}

#[test]
fn service_scaling_roundtrip() -> TestResult {
    let dir = TempDir::new("service_scaling_roundtrip")?;
    let store = Store::open(&dir.db())?;
    let web = service("web")?;
    let api = service("api")?;
    store.ensure_service(&web)?;
    store.ensure_service(&api)?;
    let before = store.get_service(&web)?.ok_or("service not created")?;
    assert_eq!(before.scaling, None);

    let scaling = Scaling {
        min_instances: 2,
        max_instances: 5,
        concurrency: 10,
        idle_freeze_ms: 500,
        idle_stop_ms: 60_000,
        startup_boost: false,
    };
    std::thread::sleep(Duration::from_millis(5));
    store.set_service_scaling(&web, &scaling)?;
    let after = store.get_service(&web)?.ok_or("service lost")?;
    assert_eq!(after.scaling, Some(scaling));
    assert!(after.updated_at > before.updated_at, "updated_at bumped");
    assert_eq!(after.created_at, before.created_at);

    // Setting again replaces; other services are untouched; list_services carries it too.
    store.set_service_scaling(&web, &Scaling::default())?;
    let listed = store.list_services()?;
    let by_name = |n: &ServiceName| listed.iter().find(|s| &s.name == n).map(|s| s.scaling);
    assert_eq!(by_name(&web), Some(Some(Scaling::default())));
    assert_eq!(by_name(&api), Some(None));

    // Unknown services are not created by it.
    store.set_service_scaling(&service("ghost")?, &scaling)?;
    assert!(store.get_service(&service("ghost")?)?.is_none());

    // Settings written by a binary that knew fewer fields load with the rest defaulted.
    store.conn().execute(
        "UPDATE services SET scaling = '{\"min_instances\":1}' WHERE name = 'api'",
        [],
    )?;
    let api_scaling = store.get_service(&api)?.ok_or("service lost")?.scaling;
    assert_eq!(
        api_scaling,
        Some(Scaling {
            min_instances: 1,
            ..Scaling::default()
        })
    );
    store.conn().execute(
        "UPDATE services SET scaling = 'not json' WHERE name = 'api'",
        [],
    )?;
    assert!(matches!(
        store.get_service(&api),
        Err(StoreError::Corrupt(_))
    ));
    Ok(())
}

// ---- deployments ----------------------------------------------------------------------

#[test]
fn deployment_fields_roundtrip() -> TestResult {
    let dir = TempDir::new("deployment_fields_roundtrip")?;
    let store = Store::open(&dir.db())?;
    let web = service("web")?;
    let api = service("api")?;
    store.ensure_service(&web)?;
    store.ensure_service(&api)?;

    let d1 = DeploymentId::generate();
    let request = serde_json::json!({ "source": "./app", "memory": 512 });
    store.insert_deployment(&d1, &web, "./app", None, &request)?;
    let rec = deployment(&store, &d1)?;
    assert_eq!(rec.id, d1);
    assert_eq!(rec.service, web);
    assert_eq!(rec.state, DeploymentState::Queued);
    assert_eq!(rec.source, "./app");
    assert_eq!(rec.branch, None);
    assert_eq!(rec.commit_sha, None);
    assert_eq!(rec.request, request);
    assert!(rec.spec.is_none());
    assert!(rec.image.is_none());
    assert!(rec.runtime_version.is_none());
    assert!(rec.failure_reason.is_none());
    assert!(rec.finished_at.is_none());
    assert!(rec.steps.is_empty());

    let commit = "0123456789abcdef0123456789abcdef01234567";
    store.set_deployment_source(&d1, commit, "main")?;
    let web_spec = spec(&web, "gunicorn app:app")?;
    store.set_deployment_spec(&d1, &web_spec)?;
    assert!(!store.image_in_use("sha256:one")?);
    store.set_deployment_image(&d1, "sha256:one", "3.12.1")?;
    let rec = deployment(&store, &d1)?;
    assert_eq!(rec.commit_sha.as_deref(), Some(commit));
    assert_eq!(rec.branch.as_deref(), Some("main"));
    assert_eq!(rec.spec.as_ref(), Some(&web_spec));
    assert_eq!(rec.image.as_deref(), Some("sha256:one"));
    assert_eq!(rec.runtime_version.as_deref(), Some("3.12.1"));
    assert!(rec.updated_at >= rec.created_at);
    assert!(store.image_in_use("sha256:one")?);
    assert!(!store.image_in_use("sha256:two")?);

    // Newest first, only the asked-for service.
    let d2 = new_deployment(&store, &web)?;
    let d3 = new_deployment(&store, &web)?;
    let a1 = new_deployment(&store, &api)?;
    let listed: Vec<DeploymentId> = store
        .list_deployments(&web)?
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(listed, [d3, d2, d1.clone()]);
    let listed: Vec<DeploymentId> = store
        .list_deployments(&api)?
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(listed, [a1]);

    assert!(store.get_deployment(&DeploymentId::generate())?.is_none());
    // Deployment ids are unique, and a deployment needs an existing service.
    assert!(
        store
            .insert_deployment(&d1, &web, "./app", None, &request)
            .is_err()
    );
    let ghost = service("ghost")?;
    assert!(
        store
            .insert_deployment(&DeploymentId::generate(), &ghost, "./app", None, &request)
            .is_err()
    );
    assert!(store.list_deployments(&ghost)?.is_empty());
    Ok(())
}

#[test]
fn set_live_supersedes_previous() -> TestResult {
    let dir = TempDir::new("set_live_supersedes_previous")?;
    let store = Store::open(&dir.db())?;
    let web = service("web")?;
    let api = service("api")?;
    store.ensure_service(&web)?;
    store.ensure_service(&api)?;

    let a1 = new_deployment(&store, &api)?;
    advance_to_starting(&store, &a1)?;
    let only = store.set_live(&api, &a1, DeploymentState::Starting)?;
    assert_eq!(
        only.iter()
            .map(|c| (&c.id, c.from, c.to))
            .collect::<Vec<_>>(),
        [(&a1, DeploymentState::Starting, DeploymentState::Live)]
    );

    let d1 = new_deployment(&store, &web)?;
    advance_to_starting(&store, &d1)?;
    assert_eq!(
        store.set_live(&web, &d1, DeploymentState::Starting)?.len(),
        1
    );
    let rec = deployment(&store, &d1)?;
    assert_eq!(rec.state, DeploymentState::Live);
    assert!(rec.finished_at.is_some());
    // Going live ends the last step: nothing is left running.
    assert!(
        rec.steps
            .iter()
            .all(|s| s.state == "done" && s.finished_at.is_some()),
        "{:?}",
        rec.steps
    );
    let svc = store.get_service(&web)?.ok_or("service lost")?;
    assert_eq!(svc.live_deployment.as_ref(), Some(&d1));

    let d2 = new_deployment(&store, &web)?;
    advance_to_starting(&store, &d2)?;
    let changes = store.set_live(&web, &d2, DeploymentState::Starting)?;
    assert_eq!(
        changes
            .iter()
            .map(|c| (&c.id, c.from, c.to))
            .collect::<Vec<_>>(),
        [
            (&d1, DeploymentState::Live, DeploymentState::Superseded),
            (&d2, DeploymentState::Starting, DeploymentState::Live)
        ]
    );
    assert_eq!(deployment(&store, &d1)?.state, DeploymentState::Superseded);
    assert_eq!(deployment(&store, &d2)?.state, DeploymentState::Live);
    let svc = store.get_service(&web)?.ok_or("service lost")?;
    assert_eq!(svc.live_deployment.as_ref(), Some(&d2));
    let live: Vec<DeploymentId> = store
        .list_deployments(&web)?
        .into_iter()
        .filter(|d| d.state == DeploymentState::Live)
        .map(|d| d.id)
        .collect();
    assert_eq!(live, std::slice::from_ref(&d2));

    // Making the live deployment live again is refused and changes nothing.
    assert!(matches!(
        store.set_live(&web, &d2, DeploymentState::Live),
        Err(StoreError::RefusedTransition { .. })
    ));
    assert_eq!(deployment(&store, &d2)?.state, DeploymentState::Live);
    assert_eq!(deployment(&store, &d1)?.state, DeploymentState::Superseded);

    // A rollback (superseded to live) is recorded on the deployment it made live; a deploy
    // going live is not one.
    assert_eq!(deployment(&store, &d2)?.rolled_back_at, None);
    store.set_live(&web, &d1, DeploymentState::Superseded)?;
    let back = deployment(&store, &d1)?;
    assert_eq!(back.state, DeploymentState::Live);
    assert!(back.rolled_back_at.is_some());
    assert_eq!(deployment(&store, &d2)?.rolled_back_at, None);

    // Other services are untouched.
    assert_eq!(deployment(&store, &a1)?.state, DeploymentState::Live);
    assert_eq!(deployment(&store, &a1)?.rolled_back_at, None);
    let svc = store.get_service(&api)?.ok_or("service lost")?;
    assert_eq!(svc.live_deployment.as_ref(), Some(&a1));
    Ok(())
}

#[test]
fn deployment_steps_record_timings_and_failure() -> TestResult {
    let dir = TempDir::new("deployment_steps_record_timings_and_failure")?;
    let store = Store::open(&dir.db())?;
    let web = service("web")?;
    store.ensure_service(&web)?;
    let d = new_deployment(&store, &web)?;

    let before = now_ms();
    store.transition_deployment(&d, DeploymentState::Queued, DeploymentState::Fetching, None)?;
    store.transition_deployment(
        &d,
        DeploymentState::Fetching,
        DeploymentState::Building,
        None,
    )?;
    let rec = deployment(&store, &d)?;
    assert_eq!(rec.state, DeploymentState::Building);
    assert!(rec.finished_at.is_none());
    let steps: Vec<(&str, &str)> = rec
        .steps
        .iter()
        .map(|s| (s.step.as_str(), s.state.as_str()))
        .collect();
    assert_eq!(steps, [("fetching", "done"), ("building", "running")]);
    let (fetching, building) = (&rec.steps[0], &rec.steps[1]);
    assert!(fetching.started_at >= before);
    // One step ends exactly when the next begins.
    assert_eq!(fetching.finished_at, Some(building.started_at));
    assert!(building.started_at >= fetching.started_at);
    assert_eq!(building.finished_at, None);

    store.transition_deployment(
        &d,
        DeploymentState::Building,
        DeploymentState::Failed,
        Some("build: exit status 2"),
    )?;
    let after = now_ms();
    let rec = deployment(&store, &d)?;
    assert_eq!(rec.state, DeploymentState::Failed);
    assert_eq!(rec.failure_reason.as_deref(), Some("build: exit status 2"));
    let finished = rec.finished_at.ok_or("no finish time")?;
    assert!(finished >= rec.steps[1].started_at && finished <= after);
    let steps: Vec<(&str, &str)> = rec
        .steps
        .iter()
        .map(|s| (s.step.as_str(), s.state.as_str()))
        .collect();
    // Only the step that was running fails; the one finished before stays done, even when
    // both ended within the same millisecond.
    assert_eq!(steps, [("fetching", "done"), ("building", "failed")]);
    assert_eq!(rec.steps[0].finished_at, fetching.finished_at);
    assert_eq!(rec.steps[1].started_at, building.started_at);
    assert_eq!(rec.steps[1].finished_at, Some(finished));

    // Cancelled deployments mark their running step cancelled.
    let c = new_deployment(&store, &web)?;
    store.transition_deployment(&c, DeploymentState::Queued, DeploymentState::Fetching, None)?;
    store.transition_deployment(
        &c,
        DeploymentState::Fetching,
        DeploymentState::Cancelled,
        Some("a newer deployment"),
    )?;
    let rec = deployment(&store, &c)?;
    assert_eq!(rec.state, DeploymentState::Cancelled);
    assert_eq!(rec.failure_reason.as_deref(), Some("a newer deployment"));
    assert_eq!(rec.steps.len(), 1);
    assert_eq!(rec.steps[0].state, "cancelled");
    assert_eq!(rec.steps[0].finished_at, rec.finished_at);

    // Going live through the state machine closes the last step as done, without a reason.
    let l = new_deployment(&store, &web)?;
    advance_to_starting(&store, &l)?;
    store.transition_deployment(&l, DeploymentState::Starting, DeploymentState::Live, None)?;
    let rec = deployment(&store, &l)?;
    assert_eq!(rec.state, DeploymentState::Live);
    assert_eq!(rec.failure_reason, None);
    let names: Vec<&str> = rec.steps.iter().map(|s| s.step.as_str()).collect();
    assert_eq!(names, ["fetching", "building", "starting"]);
    assert!(rec.steps.iter().all(|s| s.state == "done"));
    assert_eq!(rec.steps[2].finished_at, rec.finished_at);
    for pair in rec.steps.windows(2) {
        assert_eq!(pair[0].finished_at, Some(pair[1].started_at));
    }
    Ok(())
}

#[test]
fn in_progress_deployments_survive_restart() -> TestResult {
    let dir = TempDir::new("in_progress_deployments_survive_restart")?;
    let store = Store::open(&dir.db())?;
    let web = service("web")?;
    let api = service("api")?;
    store.ensure_service(&web)?;
    store.ensure_service(&api)?;
    // Distinct creation times, so the order by creation time is well defined.
    let tick = || std::thread::sleep(Duration::from_millis(3));

    let queued = new_deployment(&store, &web)?;
    tick();
    let fetching = new_deployment(&store, &api)?;
    store.transition_deployment(
        &fetching,
        DeploymentState::Queued,
        DeploymentState::Fetching,
        None,
    )?;
    tick();
    let superseded = new_deployment(&store, &web)?;
    advance_to_starting(&store, &superseded)?;
    store.set_live(&web, &superseded, DeploymentState::Starting)?;
    tick();
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
    tick();
    let failed = new_deployment(&store, &web)?;
    store.transition_deployment(
        &failed,
        DeploymentState::Queued,
        DeploymentState::Fetching,
        None,
    )?;
    store.transition_deployment(
        &failed,
        DeploymentState::Fetching,
        DeploymentState::Failed,
        Some("no such branch"),
    )?;
    tick();
    let cancelled = new_deployment(&store, &web)?;
    store.transition_deployment(
        &cancelled,
        DeploymentState::Queued,
        DeploymentState::Cancelled,
        Some("newer"),
    )?;
    tick();
    let starting = new_deployment(&store, &web)?;
    advance_to_starting(&store, &starting)?;
    tick();
    let live = new_deployment(&store, &web)?;
    advance_to_starting(&store, &live)?;
    let changes = store.set_live(&web, &live, DeploymentState::Starting)?;
    assert_eq!(changes[0].id, superseded);

    let expected = [queued, fetching, building, starting];
    let ids = |store: &Store| -> Result<Vec<DeploymentId>, StoreError> {
        Ok(store
            .in_progress_deployments()?
            .into_iter()
            .map(|d| d.id)
            .collect())
    };
    assert_eq!(ids(&store)?, expected);
    drop(store);

    // After a restart the interrupted deployments are still known, and failing them (what the
    // server does on start) leaves none in progress.
    let store = Store::open(&dir.db())?;
    assert_eq!(ids(&store)?, expected);
    let states: Vec<(DeploymentId, DeploymentState)> = store
        .in_progress_deployments()?
        .into_iter()
        .map(|d| (d.id, d.state))
        .collect();
    let failed_now = store.fail_interrupted("interrupted by server restart")?;
    assert_eq!(
        failed_now
            .iter()
            .map(|c| (c.id.clone(), c.from))
            .collect::<Vec<_>>(),
        states
    );
    assert!(failed_now.iter().all(|c| c.to == DeploymentState::Failed));
    assert!(store.in_progress_deployments()?.is_empty());
    for id in &expected {
        let rec = deployment(&store, id)?;
        assert_eq!(rec.state, DeploymentState::Failed);
        assert_eq!(
            rec.failure_reason.as_deref(),
            Some("interrupted by server restart")
        );
        assert!(rec.finished_at.is_some());
        assert!(rec.steps.iter().all(|s| s.finished_at.is_some()));
    }
    assert_eq!(
        deployment(&store, &failed)?.failure_reason.as_deref(),
        Some("no such branch")
    );
    assert_eq!(deployment(&store, &live)?.state, DeploymentState::Live);
    assert_eq!(
        deployment(&store, &superseded)?.state,
        DeploymentState::Superseded
    );
    assert_eq!(
        deployment(&store, &cancelled)?.state,
        DeploymentState::Cancelled
    );
    Ok(())
}

// ---- instances ------------------------------------------------------------------------

#[test]
fn instances_lifecycle() -> TestResult {
    let dir = TempDir::new("instances_lifecycle")?;
    let store = Store::open(&dir.db())?;
    let web = service("web")?;
    let api = service("api")?;
    store.ensure_service(&web)?;
    store.ensure_service(&api)?;
    let d = new_deployment(&store, &web)?;
    let a = new_deployment(&store, &api)?;

    let (i1, i2, i3, i4) = (
        InstanceId::generate(),
        InstanceId::generate(),
        InstanceId::generate(),
        InstanceId::generate(),
    );
    store.insert_instance(&i1, &web, &d, false, 256)?;
    store.insert_instance(&i2, &web, &d, false, 256)?;
    store.insert_instance(&i3, &web, &d, false, 256)?;
    store.insert_instance(&i4, &api, &a, false, 256)?;

    let listed = store.list_instances(&web, 10)?;
    let ids: Vec<&InstanceId> = listed.iter().map(|i| &i.id).collect();
    assert_eq!(ids, [&i3, &i2, &i1], "newest first");
    for i in &listed {
        assert_eq!(i.service, web);
        assert_eq!(i.deployment, d);
        assert_eq!(i.state, InstanceState::Starting);
        assert_eq!(
            (i.ready_at, i.stopped_at, i.exit_reason.as_deref()),
            (None, None, None)
        );
    }
    let ids: Vec<InstanceId> = store
        .list_instances(&web, 2)?
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(ids, [i3.clone(), i2.clone()]);
    assert!(store.list_instances(&web, 0)?.is_empty());
    assert_eq!(store.list_instances(&api, 10)?.len(), 1);

    let get = |id: &InstanceId| -> Result<crate::InstanceRecord, Box<dyn Error>> {
        Ok(store
            .list_instances(&web, 10)?
            .into_iter()
            .find(|i| &i.id == id)
            .ok_or("instance not listed")?)
    };

    store.set_instance_state(&i1, InstanceState::Ready, None)?;
    let rec = get(&i1)?;
    assert_eq!(rec.state, InstanceState::Ready);
    let ready_at = rec.ready_at.ok_or("no ready time")?;
    assert!(ready_at >= rec.created_at);
    assert_eq!(rec.stopped_at, None);

    store.set_instance_state(&i1, InstanceState::Stopping, None)?;
    let rec = get(&i1)?;
    assert_eq!(rec.state, InstanceState::Stopping);
    assert_eq!(rec.ready_at, Some(ready_at));
    assert_eq!(rec.stopped_at, None);

    store.set_instance_state(&i1, InstanceState::Stopped, Some("replaced"))?;
    let rec = get(&i1)?;
    assert_eq!(rec.state, InstanceState::Stopped);
    assert!(rec.stopped_at.is_some_and(|t| t >= ready_at));
    assert_eq!(rec.exit_reason.as_deref(), Some("replaced"));
    assert_eq!(rec.ready_at, Some(ready_at));

    store.set_instance_state(&i2, InstanceState::Failed, Some("exited with status 1"))?;
    let rec = get(&i2)?;
    assert_eq!(rec.state, InstanceState::Failed);
    assert!(rec.stopped_at.is_some());
    assert_eq!(rec.exit_reason.as_deref(), Some("exited with status 1"));
    assert_eq!(rec.ready_at, None);

    // On server start every instance not already stopped is stopped (i3 and api's i4).
    store.set_instance_state(&i3, InstanceState::Ready, None)?;
    assert_eq!(store.stop_all_instances("server restarted")?, 2);
    let rec = get(&i3)?;
    assert_eq!(rec.state, InstanceState::Stopped);
    assert!(rec.stopped_at.is_some());
    assert_eq!(rec.exit_reason.as_deref(), Some("server restarted"));
    let rec = &store.list_instances(&api, 10)?[0];
    assert_eq!(rec.state, InstanceState::Stopped);
    assert_eq!(rec.exit_reason.as_deref(), Some("server restarted"));
    // Instances that had already ended keep their own outcome.
    assert_eq!(get(&i1)?.exit_reason.as_deref(), Some("replaced"));
    assert_eq!(get(&i2)?.state, InstanceState::Failed);
    assert_eq!(
        get(&i2)?.exit_reason.as_deref(),
        Some("exited with status 1")
    );
    assert_eq!(store.stop_all_instances("server restarted")?, 0);

    // Instance ids are unique, and an instance needs an existing service.
    assert!(store.insert_instance(&i1, &web, &d, false, 256).is_err());
    assert!(
        store
            .insert_instance(&InstanceId::generate(), &service("ghost")?, &d, false, 256)
            .is_err()
    );
    Ok(())
}

#[test]
fn instance_cold_memory_and_usage_roundtrip() -> TestResult {
    let dir = TempDir::new("instance_cold_memory_and_usage_roundtrip")?;
    let store = Store::open(&dir.db())?;
    let web = service("web")?;
    store.ensure_service(&web)?;
    let d = new_deployment(&store, &web)?;
    let (cold, warm) = (InstanceId::generate(), InstanceId::generate());
    store.insert_instance(&cold, &web, &d, true, 512)?;
    store.insert_instance(&warm, &web, &d, false, 1024)?;

    let get = |id: &InstanceId| -> Result<crate::InstanceRecord, Box<dyn Error>> {
        Ok(store
            .list_instances(&web, 10)?
            .into_iter()
            .find(|i| &i.id == id)
            .ok_or("instance not listed")?)
    };
    let rec = get(&cold)?;
    assert!(rec.cold);
    assert_eq!(rec.memory_mb, 512);
    assert_eq!(rec.usage, InstanceUsage::default());
    let rec = get(&warm)?;
    assert!(!rec.cold);
    assert_eq!(rec.memory_mb, 1024);

    // Usage is stored as absolute totals: a later call replaces, it does not add.
    let first = InstanceUsage {
        active_ms: 1000,
        frozen_ms: 200,
        cpu_ms: 150,
        requests: 3,
    };
    store.set_instance_usage(&cold, &first)?;
    assert_eq!(get(&cold)?.usage, first);
    let later = InstanceUsage {
        active_ms: 2500,
        frozen_ms: 200,
        cpu_ms: 400,
        requests: 7,
    };
    store.set_instance_usage(&cold, &later)?;
    assert_eq!(get(&cold)?.usage, later);
    assert_eq!(get(&warm)?.usage, InstanceUsage::default());

    // State changes keep usage; the record serializes usage as a nested object.
    store.set_instance_state(&cold, InstanceState::Frozen, None)?;
    let rec = get(&cold)?;
    assert_eq!(rec.state, InstanceState::Frozen);
    assert_eq!(rec.usage, later);
    let json = serde_json::to_value(&rec)?;
    assert_eq!(json["cold"], serde_json::json!(true));
    assert_eq!(json["memory_mb"], serde_json::json!(512));
    assert_eq!(
        json["usage"],
        serde_json::json!({ "active_ms": 2500, "frozen_ms": 200, "cpu_ms": 400, "requests": 7 })
    );

    // Values SQLite cannot hold are refused, not wrapped.
    let huge = InstanceUsage {
        cpu_ms: u64::MAX,
        ..later
    };
    assert!(matches!(
        store.set_instance_usage(&cold, &huge),
        Err(StoreError::OutOfRange { what: "cpu_ms", .. })
    ));
    assert_eq!(get(&cold)?.usage, later);
    Ok(())
}

// ---- usage ----------------------------------------------------------------------------

#[test]
fn utc_day_known_dates() {
    const DAY: i64 = 86_400_000;
    let cases = [
        (0, "1970-01-01"),
        (DAY - 1, "1970-01-01"),
        (DAY, "1970-01-02"),
        (-1, "1969-12-31"),
        (-DAY, "1969-12-31"),
        (-DAY - 1, "1969-12-30"),
        (951_782_400_000, "2000-02-29"),
        (951_782_400_000 + DAY, "2000-03-01"),
        (951_782_400_000 - 1, "2000-02-28"),
        (1_795_564_800_000, "2026-11-25"),
        (1_795_564_800_000 + 13 * 3_600_000, "2026-11-25"),
        // 2024 is a leap year: its last day is day 366, and the next one is New Year.
        (1_735_603_200_000, "2024-12-31"),
        (1_735_689_600_000 - 1, "2024-12-31"),
        (1_735_689_600_000, "2025-01-01"),
        // 2100 is not a leap year (divisible by 100), 1600 is (divisible by 400).
        (4_107_542_400_000 - DAY, "2100-02-28"),
        (4_107_542_400_000, "2100-03-01"),
        (-11_670_998_400_000, "1600-02-29"),
    ];
    for (ms, day) in cases {
        assert_eq!(utc_day(ms), day, "utc_day({ms})");
    }
    // Every day of a few centuries comes out one after the other and valid.
    let mut previous = utc_day(-DAY);
    for n in 0..(400 * 366) {
        let day = utc_day(n * DAY + 12 * 3_600_000);
        assert!(day > previous, "{day} after {previous}");
        assert!(super::check_day(&day).is_ok(), "{day}");
        previous = day;
    }
}

#[test]
fn utc_day_of_any_clock_reading_is_a_valid_usage_key() {
    // A clock off by millennia still gives a key of the one form the store takes (and that
    // sorts as text), at the edge of the calendar, rather than a refused 5-digit year.
    for (ms, day) in [
        // The last day a timestamp holds (jiff keeps a day's margin for time zone offsets).
        (i64::MAX, "9999-12-30"),
        (253_402_128_000_000, "9999-12-30"),
        (-62_167_219_200_001, "0000-01-01"),
        (i64::MIN, "0000-01-01"),
    ] {
        assert_eq!(utc_day(ms), day, "utc_day({ms})");
    }
    assert!(super::check_day(&utc_day(i64::MAX)).is_ok());
    assert!(super::check_day(&utc_day(i64::MIN)).is_ok());
    assert!(super::check_day(&utc_day(1_795_564_800_000)).is_ok());
}

#[test]
fn usage_delta_is_zero() {
    assert!(UsageDelta::default().is_zero());
    assert!(
        !UsageDelta {
            cold_starts: 1,
            ..UsageDelta::default()
        }
        .is_zero()
    );
    assert!(
        !UsageDelta {
            mb_ms: 1,
            ..UsageDelta::default()
        }
        .is_zero()
    );
}

#[test]
fn add_usage_accumulates_per_day() -> TestResult {
    let dir = TempDir::new("add_usage_accumulates_per_day")?;
    let store = Store::open(&dir.db())?;
    let web = service("web")?;
    let api = service("api")?;
    store.ensure_service(&web)?;
    store.ensure_service(&api)?;
    assert!(store.usage(&web, 30)?.is_empty());

    let delta = UsageDelta {
        active_ms: 1000,
        frozen_ms: 500,
        cpu_ms: 250,
        mb_ms: 1000 * 512,
        requests: 10,
        cold_starts: 1,
    };
    store.add_usage(&web, "2026-11-24", &delta)?;
    store.add_usage(&web, "2026-11-24", &delta)?;
    let second = UsageDelta {
        active_ms: 2000,
        frozen_ms: 0,
        cpu_ms: 100,
        mb_ms: 2000 * 1024,
        requests: 3,
        cold_starts: 0,
    };
    store.add_usage(&web, "2026-11-25", &second)?;
    store.add_usage(&web, "2026-11-25", &UsageDelta::default())?;
    store.add_usage(&web, "2025-12-31", &delta)?;
    store.add_usage(&api, "2026-11-25", &delta)?;

    // Newest first, limited to the last `days` days that have rows.
    let days = store.usage(&web, 30)?;
    let names: Vec<&str> = days.iter().map(|d| d.day.as_str()).collect();
    assert_eq!(names, ["2026-11-25", "2026-11-24", "2025-12-31"]);

    let today = &days[0];
    assert_eq!(
        (
            today.active_ms,
            today.frozen_ms,
            today.cpu_ms,
            today.mb_ms,
            today.requests,
            today.cold_starts
        ),
        (2000, 0, 100, 2_048_000, 3, 0)
    );
    assert_eq!(today.gb_seconds, 2.0);

    let yesterday = &days[1];
    assert_eq!(
        (
            yesterday.active_ms,
            yesterday.frozen_ms,
            yesterday.cpu_ms,
            yesterday.mb_ms,
            yesterday.requests,
            yesterday.cold_starts
        ),
        (2000, 1000, 500, 1_024_000, 20, 2)
    );
    assert_eq!(yesterday.gb_seconds, 1.0);
    // 1 GB-second is 1024 MB for one second.
    assert_eq!(days[2].gb_seconds, 0.5);

    let last_two: Vec<String> = store.usage(&web, 2)?.into_iter().map(|d| d.day).collect();
    assert_eq!(last_two, ["2026-11-25", "2026-11-24"]);
    assert!(store.usage(&web, 0)?.is_empty());

    assert_eq!(store.cold_starts_total(&web)?, 3);
    assert_eq!(store.cold_starts_total(&api)?, 1);
    assert_eq!(store.cold_starts_total(&service("ghost")?)?, 0);
    assert_eq!(store.usage(&api, 30)?.len(), 1);

    let json = serde_json::to_value(&days[0])?;
    assert_eq!(json["day"], serde_json::json!("2026-11-25"));
    assert_eq!(json["gb_seconds"], serde_json::json!(2.0));
    assert_eq!(json["cold_starts"], serde_json::json!(0));
    Ok(())
}

#[test]
fn add_usage_checks_its_input() -> TestResult {
    let dir = TempDir::new("add_usage_checks_its_input")?;
    let store = Store::open(&dir.db())?;
    let web = service("web")?;
    store.ensure_service(&web)?;
    let delta = UsageDelta {
        requests: 1,
        ..UsageDelta::default()
    };
    for bad in [
        "",
        "2026-11-2",
        "2026-11-250",
        "2026/11/25",
        "2026-1-125",
        "26-11-2025",
        "2026-13-01",
        "2026-00-10",
        "2026-11-00",
        "2026-11-31",
        "2025-02-29",
        "1900-02-29",
        "2026-11-2x",
        "+026-11-25",
        "２026-11-2",
        "2026-11-25T00:00:00Z",
    ] {
        match store.add_usage(&web, bad, &delta) {
            Err(StoreError::InvalidDay(day)) => assert_eq!(day, bad),
            other => return Err(format!("{bad:?}: expected InvalidDay, got {other:?}").into()),
        }
    }
    for good in ["2024-02-29", "2000-02-29", "2026-12-31", "1970-01-01"] {
        store.add_usage(&web, good, &delta)?;
    }
    assert_eq!(store.usage(&web, 30)?.len(), 4);

    let huge = UsageDelta {
        mb_ms: u64::MAX,
        ..UsageDelta::default()
    };
    assert!(matches!(
        store.add_usage(&web, "2026-11-25", &huge),
        Err(StoreError::OutOfRange { what: "mb_ms", .. })
    ));
    // Usage belongs to a service that exists.
    assert!(
        store
            .add_usage(&service("ghost")?, "2026-11-25", &delta)
            .is_err()
    );
    assert!(store.usage(&service("ghost")?, 30)?.is_empty());
    Ok(())
}

// ---- logs -----------------------------------------------------------------------------

#[test]
fn append_and_query_logs() -> TestResult {
    let dir = TempDir::new("append_and_query_logs")?;
    let store = Store::open(&dir.db())?;
    let web = service("web")?;
    store.ensure_service(&web)?;
    store.ensure_service(&service("api")?)?;
    let d1 = new_deployment(&store, &web)?;
    let d2 = new_deployment(&store, &web)?;
    let (i1, i2) = (InstanceId::generate(), InstanceId::generate());

    let lines = [
        log_line("web", Some(&d1), None, LogStream::Build, "build 1"),
        log_line("api", None, None, LogStream::Stdout, "other service"),
        log_line("web", Some(&d1), None, LogStream::Build, "build 2"),
        log_line("web", Some(&d1), Some(&i1), LogStream::System, "started"),
        log_line("web", Some(&d1), Some(&i1), LogStream::Stdout, "hello"),
        log_line("web", Some(&d2), None, LogStream::Build, "build 3"),
        log_line("web", Some(&d2), Some(&i2), LogStream::Stderr, "oops"),
        log_line("web", Some(&d2), Some(&i2), LogStream::Stdout, "world"),
    ];
    let ids = store.append_all(&lines)?;
    assert_eq!(ids.len(), lines.len());
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(store.append_all(&[])?.is_empty());

    let query = |filter: LogFilter| store.query_logs("web", &filter);
    let all = query(LogFilter::default())?;
    assert_eq!(
        texts(&all),
        [
            "build 1", "build 2", "started", "hello", "build 3", "oops", "world"
        ]
    );
    let web_ids: Vec<i64> = all.iter().map(|l| l.id).collect();
    assert_eq!(
        web_ids,
        [ids[0], ids[2], ids[3], ids[4], ids[5], ids[6], ids[7]]
    );
    let hello = &all[3];
    assert_eq!(hello.service, "web");
    assert_eq!(hello.deployment.as_deref(), Some(d1.as_str()));
    assert_eq!(hello.instance.as_deref(), Some(i1.as_str()));
    assert_eq!(hello.stream, LogStream::Stdout);
    assert_eq!(hello.ts, lines[4].ts);

    let d1_filter = || LogFilter {
        deployment: Some(d1.to_string()),
        ..LogFilter::default()
    };
    assert_eq!(
        texts(&query(d1_filter())?),
        ["build 1", "build 2", "started", "hello"]
    );
    let build = || LogFilter {
        build_only: true,
        ..LogFilter::default()
    };
    assert_eq!(texts(&query(build())?), ["build 1", "build 2", "build 3"]);
    assert_eq!(
        texts(&query(LogFilter {
            deployment: Some(d2.to_string()),
            ..build()
        })?),
        ["build 3"]
    );
    let after = |id: i64| LogFilter {
        after_id: Some(id),
        ..LogFilter::default()
    };
    assert_eq!(
        texts(&query(after(ids[3]))?),
        ["hello", "build 3", "oops", "world"]
    );
    assert!(query(after(ids[7]))?.is_empty());

    let tail = |n: usize| LogFilter {
        tail: Some(n),
        ..LogFilter::default()
    };
    // The last lines, still oldest first.
    assert_eq!(texts(&query(tail(2))?), ["oops", "world"]);
    assert_eq!(texts(&query(tail(100))?), texts(&all));
    assert!(query(tail(0))?.is_empty());
    // tail applies after the other filters.
    assert_eq!(
        texts(&query(LogFilter {
            tail: Some(2),
            ..d1_filter()
        })?),
        ["started", "hello"]
    );
    assert_eq!(
        texts(&query(LogFilter {
            tail: Some(2),
            ..build()
        })?),
        ["build 2", "build 3"]
    );
    assert_eq!(
        texts(&query(LogFilter {
            tail: Some(1),
            ..after(ids[4])
        })?),
        ["world"]
    );
    assert_eq!(
        texts(&query(LogFilter {
            tail: Some(10),
            ..after(ids[5])
        })?),
        ["oops", "world"]
    );

    assert_eq!(
        texts(&store.query_logs("api", &LogFilter::default())?),
        ["other service"]
    );
    assert!(store.query_logs("nope", &LogFilter::default())?.is_empty());

    // Following: a later batch is exactly what comes after the last id seen.
    let more = store.append_all(&[log_line(
        "web",
        Some(&d2),
        Some(&i2),
        LogStream::Stdout,
        "later",
    )])?;
    assert!(more[0] > ids[7]);
    assert_eq!(texts(&query(after(ids[7]))?), ["later"]);

    // last_lines: program and build output of one deployment, without Hoist's system lines.
    assert_eq!(store.last_lines(&d1, 10)?, ["build 1", "build 2", "hello"]);
    assert_eq!(store.last_lines(&d2, 2)?, ["world", "later"]);
    assert!(store.last_lines(&DeploymentId::generate(), 10)?.is_empty());

    // Size accounting per service: each line counts its length plus a fixed overhead.
    let expected: i64 = lines
        .iter()
        .filter(|l| l.service == "web")
        .map(|l| l.line.len() as i64 + 64)
        .sum::<i64>()
        + "later".len() as i64
        + 64;
    assert_eq!(log_bytes(&store, "web")?, expected);
    assert_eq!(log_bytes(&store, "api")?, "other service".len() as i64 + 64);
    Ok(())
}

#[test]
fn log_cap_drops_oldest_lines() -> TestResult {
    let dir = TempDir::new("log_cap_drops_oldest_lines")?;
    let store = Store::open(&dir.db())?;
    store.set_log_cap(50 * 1024 * 1024);
    let web = service("web")?;
    store.ensure_service(&web)?;
    store.ensure_service(&service("api")?)?;
    store.append_all(&[log_line("api", None, None, LogStream::Stdout, "kept")])?;

    const LINE: usize = 1024 * 1024;
    let cost = LINE as i64 + 64;
    let batch = |from: usize, to: usize| -> Vec<NewLogLine> {
        (from..to)
            .map(|i| {
                let mut text = format!("{i:03}");
                text.push_str(&"x".repeat(LINE - text.len()));
                log_line("web", None, None, LogStream::Stdout, &text)
            })
            .collect()
    };
    let web_stats = |store: &Store| -> rusqlite::Result<(i64, i64)> {
        store.conn().query_row(
            "SELECT count(*), min(id) FROM logs WHERE service = 'web'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    };

    // 40 MiB: under the 50 MiB cap, nothing goes.
    let first = store.append_all(&batch(0, 40))?;
    assert_eq!(web_stats(&store)?, (40, first[0]));
    assert_eq!(log_bytes(&store, "web")?, 40 * cost);

    // 55 MiB: over the cap, the oldest fifth (11 lines) is dropped.
    store.append_all(&batch(40, 55))?;
    assert_eq!(web_stats(&store)?, (44, first[11]));
    assert_eq!(log_bytes(&store, "web")?, 44 * cost);
    let oldest = store.query_logs(
        "web",
        &LogFilter {
            after_id: Some(first[10]),
            ..LogFilter::default()
        },
    )?;
    assert!(oldest[0].line.starts_with("011"));
    assert_eq!(
        texts(&store.query_logs("api", &LogFilter::default())?),
        ["kept"]
    );
    Ok(())
}

#[test]
fn store_is_usable_from_many_threads() -> TestResult {
    let dir = TempDir::new("store_is_usable_from_many_threads")?;
    let store = Store::open(&dir.db())?;
    store.ensure_service(&service("web")?)?;
    let mut ids: Vec<i64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let store = &store;
                scope.spawn(move || -> Result<Vec<i64>, StoreError> {
                    let mut ids = Vec::new();
                    for n in 0..25 {
                        let line = format!("thread {t} line {n}");
                        ids.extend(store.append_all(&[log_line(
                            "web",
                            None,
                            None,
                            LogStream::Stdout,
                            &line,
                        )])?);
                    }
                    Ok(ids)
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.join().map_err(|_| "thread panicked")??);
        }
        Ok::<_, Box<dyn Error>>(all)
    })?;
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 100);
    assert_eq!(store.query_logs("web", &LogFilter::default())?.len(), 100);
    Ok(())
}

// ---- deleting -------------------------------------------------------------------------

#[test]
fn delete_service_removes_everything() -> TestResult {
    let dir = TempDir::new("delete_service_removes_everything")?;
    let store = Store::open(&dir.db())?;
    let web = service("web")?;
    let api = service("api")?;
    let mut kept = None;
    let mut gone = None;
    for name in [&web, &api] {
        store.ensure_service(name)?;
        store.set_service_spec(name, &spec(name, "python app.py")?)?;
        let d = new_deployment(&store, name)?;
        advance_to_starting(&store, &d)?;
        store.set_deployment_image(&d, &format!("sha256:{name}"), "3.12.1")?;
        store.set_live(name, &d, DeploymentState::Starting)?;
        let i = InstanceId::generate();
        store.insert_instance(&i, name, &d, true, 256)?;
        store.add_usage(
            name,
            "2026-11-25",
            &UsageDelta {
                active_ms: 100,
                cold_starts: 1,
                ..UsageDelta::default()
            },
        )?;
        store.append_all(&[
            log_line(name.as_str(), Some(&d), None, LogStream::Build, "built"),
            log_line(name.as_str(), Some(&d), Some(&i), LogStream::Stdout, "up"),
        ])?;
        if name == &web {
            gone = Some(d);
        } else {
            kept = Some(d);
        }
    }
    let gone = gone.ok_or("no web deployment")?;
    let kept = kept.ok_or("no api deployment")?;

    assert!(store.delete_service(&web)?);
    assert!(store.get_service(&web)?.is_none());
    assert!(store.get_deployment(&gone)?.is_none());
    assert!(store.list_deployments(&web)?.is_empty());
    assert!(store.list_instances(&web, 10)?.is_empty());
    assert!(store.query_logs("web", &LogFilter::default())?.is_empty());
    assert!(store.last_lines(&gone, 10)?.is_empty());
    assert!(!store.image_in_use("sha256:web")?);
    assert!(store.usage(&web, 30)?.is_empty());
    assert_eq!(store.cold_starts_total(&web)?, 0);
    for table in ["deployments", "instances", "logs", "usage_daily"] {
        let sql = format!("SELECT count(*) FROM {table} WHERE service = 'web'");
        assert_eq!(count(&store, &sql, [])?, 0, "{table}");
    }
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM deployment_steps WHERE deployment = ?1",
            [gone.as_str()],
        )?,
        0
    );

    // The other service keeps everything.
    let names: Vec<ServiceName> = store.list_services()?.into_iter().map(|s| s.name).collect();
    assert_eq!(names, std::slice::from_ref(&api));
    let rec = deployment(&store, &kept)?;
    assert_eq!(rec.state, DeploymentState::Live);
    assert_eq!(rec.steps.len(), 3);
    assert_eq!(store.list_instances(&api, 10)?.len(), 1);
    assert_eq!(
        texts(&store.query_logs("api", &LogFilter::default())?),
        ["built", "up"]
    );
    assert!(store.image_in_use("sha256:api")?);
    assert_eq!(store.usage(&api, 30)?.len(), 1);
    assert_eq!(store.cold_starts_total(&api)?, 1);

    // Deleting again finds nothing; creating it again starts from scratch.
    assert!(!store.delete_service(&web)?);
    store.ensure_service(&web)?;
    let svc = store.get_service(&web)?.ok_or("service not recreated")?;
    assert_eq!(svc.live_deployment, None);
    assert_eq!(svc.spec, serde_json::json!({}));
    assert_eq!(log_bytes(&store, "web")?, 0);
    assert!(store.usage(&web, 30)?.is_empty());
    assert_eq!(store.cold_starts_total(&web)?, 0);
    Ok(())
}

#[test]
fn grep_finds_lines_before_and_after_they_are_indexed_and_other_filters_apply() -> TestResult {
    let dir = TempDir::new("grep_index")?;
    let store = Store::open(&dir.db())?;
    store.ensure_service(&service("web")?)?;
    store.ensure_service(&service("api")?)?;
    let mut lines = Vec::new();
    for i in 0..50 {
        let text = if i % 10 == 3 {
            format!("request {i} failed: Timeout talking to db")
        } else {
            format!("request {i} ok")
        };
        lines.push(log_line("web", None, None, LogStream::Stdout, &text));
    }
    lines.push(log_line(
        "api",
        None,
        None,
        LogStream::Stdout,
        "Timeout elsewhere",
    ));
    lines.push(log_line(
        "web",
        None,
        None,
        LogStream::Access,
        "GET / 504 Timeout",
    ));
    store.append_all(&lines)?;
    let grep = |text: &str, streams: Vec<LogStream>| -> Result<Vec<String>, StoreError> {
        Ok(store
            .query_logs(
                "web",
                &LogFilter {
                    grep: Some(text.to_string()),
                    streams,
                    tail: Some(100),
                    ..LogFilter::default()
                },
            )?
            .into_iter()
            .map(|l| l.line)
            .collect())
    };
    let before = grep("Timeout", vec![])?;
    assert_eq!(before.len(), 6, "{before:?}");
    // The access line is in the access log's files, not in SQLite's index.
    assert_eq!(store.log_index_lag()?, 51);
    assert_eq!(store.index_logs(30)?, 30);
    assert_eq!(store.log_index_lag()?, 21);
    // Half indexed, half not: the same answer, in order, without duplicates.
    assert_eq!(grep("Timeout", vec![])?, before);
    assert_eq!(store.index_logs(1000)?, 21);
    assert_eq!(grep("Timeout", vec![])?, before);
    // Case-sensitive, other filters still apply, short needles are scanned.
    assert!(grep("timeout", vec![])?.is_empty());
    assert_eq!(
        grep("Timeout", vec![LogStream::Access])?,
        vec!["GET / 504 Timeout"]
    );
    assert_eq!(
        grep("13", vec![])?,
        vec!["request 13 failed: Timeout talking to db"]
    );
    // A needle with quotes does not break the index query.
    assert!(grep("say \"hi\"", vec![])?.is_empty());
    // Retention removes indexed lines from the index too.
    store.prune_logs_before(i64::MAX)?;
    assert!(grep("Timeout", vec![])?.is_empty());
    assert_eq!(store.log_index_lag()?, 0);
    Ok(())
}

fn access(service: &str, instance: Option<&InstanceId>, ts: i64, text: &str) -> NewLogLine {
    NewLogLine {
        ts,
        ..log_line(service, None, instance, LogStream::Access, text)
    }
}

fn access_files(dir: &TempDir, service: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.0.join("access-log").join(service))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    Ok(files)
}

#[test]
fn access_lines_live_in_segment_files_and_read_back_with_the_others_in_order() -> TestResult {
    let dir = TempDir::new("access_segments")?;
    let store = Store::open(&dir.db())?;
    let web = service("web")?;
    store.ensure_service(&web)?;
    store.ensure_service(&service("api")?)?;
    let i1 = InstanceId::generate();
    let t = now_ms();
    let ids = store.append_all(&[
        log_line("web", None, Some(&i1), LogStream::Stdout, "booting"),
        access("web", Some(&i1), t, "GET / 200 1.0ms"),
        access("web", None, t + 1, "GET /slow 503 9.0ms"),
        log_line("web", None, Some(&i1), LogStream::Stderr, "warning: slow"),
        access("api", None, t, "POST /x 201 2.0ms"),
        access("web", Some(&i1), t + 2, "GET /after 200 1.0ms"),
    ])?;
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    // Not rows in SQLite: a file of their own per service.
    assert_eq!(count(&store, "SELECT count(*) FROM logs", [])?, 2);
    assert_eq!(access_files(&dir, "web")?.len(), 1);
    assert!(store.access_log_bytes(&web) > 0);

    let query = |f: LogFilter| -> Result<Vec<String>, StoreError> {
        Ok(store
            .query_logs("web", &f)?
            .into_iter()
            .map(|l| l.line)
            .collect())
    };
    assert_eq!(
        query(LogFilter::default())?,
        [
            "booting",
            "GET / 200 1.0ms",
            "GET /slow 503 9.0ms",
            "warning: slow",
            "GET /after 200 1.0ms"
        ]
    );
    let all = store.query_logs("web", &LogFilter::default())?;
    assert_eq!(all[1].instance.as_deref(), Some(i1.as_str()));
    assert_eq!(all[1].stream, LogStream::Access);
    assert_eq!(all[1].ts, t);
    assert_eq!(all[2].instance, None);
    // Every filter applies to them as to the others.
    let only = |streams: Vec<LogStream>| LogFilter {
        streams,
        ..LogFilter::default()
    };
    assert_eq!(query(only(vec![LogStream::Access]))?.len(), 3);
    assert_eq!(query(only(vec![LogStream::Stdout]))?, ["booting"]);
    assert_eq!(
        query(LogFilter {
            tail: Some(2),
            ..LogFilter::default()
        })?,
        ["warning: slow", "GET /after 200 1.0ms"]
    );
    assert_eq!(
        query(LogFilter {
            after_id: Some(ids[2]),
            ..LogFilter::default()
        })?,
        ["warning: slow", "GET /after 200 1.0ms"]
    );
    assert_eq!(
        query(LogFilter {
            grep: Some("503".into()),
            ..LogFilter::default()
        })?,
        ["GET /slow 503 9.0ms"]
    );
    // The time and id in front of each line are not searched.
    assert!(
        query(LogFilter {
            grep: Some(t.to_string()),
            streams: vec![LogStream::Access],
            ..LogFilter::default()
        })?
        .is_empty()
    );
    assert_eq!(
        query(LogFilter {
            instance: Some(i1.to_string()),
            streams: vec![LogStream::Access],
            ..LogFilter::default()
        })?,
        ["GET / 200 1.0ms", "GET /after 200 1.0ms"]
    );
    assert_eq!(
        query(LogFilter {
            since_ms: Some(t + 1),
            streams: vec![LogStream::Access],
            ..LogFilter::default()
        })?,
        ["GET /slow 503 9.0ms", "GET /after 200 1.0ms"]
    );
    // A deployment's or a build's lines never include requests.
    assert!(
        query(LogFilter {
            build_only: true,
            ..LogFilter::default()
        })?
        .is_empty()
    );

    // A restart: a half-written last line is cut off, and ids go on from the highest.
    drop(store);
    let file = access_files(&dir, "web")?.remove(0);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)?
        .write_all(b"999999\t1\t-\tGET /cut")?;
    let store = Store::open(&dir.db())?;
    let again = store.append_all(&[access("web", None, t + 3, "GET /next 200 1.0ms")])?;
    assert_eq!(again[0], ids[5] + 1);
    assert!(!std::fs::read_to_string(&file)?.contains("/cut"));
    assert_eq!(
        texts(&store.query_logs("web", &only(vec![LogStream::Access]))?),
        [
            "GET / 200 1.0ms",
            "GET /slow 503 9.0ms",
            "GET /after 200 1.0ms",
            "GET /next 200 1.0ms"
        ]
    );
    // A new process writes a segment of its own.
    assert_eq!(access_files(&dir, "web")?.len(), 2);
    // A line is cut at 16 KiB, so the id of a segment's last line is always found again.
    let long = format!("GET /{}", "a".repeat(70_000));
    let long_id = store.append_all(&[access("web", None, t + 4, &long)])?[0];
    drop(store);
    let store = Store::open(&dir.db())?;
    assert_eq!(
        store.append_all(&[access("web", None, t + 5, "GET /later")])?[0],
        long_id + 1
    );
    let tail = store.query_logs(
        "web",
        &LogFilter {
            tail: Some(2),
            ..LogFilter::default()
        },
    )?;
    assert_eq!(tail[0].line.len(), 16 * 1024);
    assert_eq!(tail[1].line, "GET /later");

    // Deleting the service deletes its access log; lines for a service not on record are
    // not kept.
    assert!(store.delete_service(&web)?);
    assert!(!dir.0.join("access-log/web").exists());
    assert_eq!(
        store.append_logs(&[access("web", None, t, "GET / 200")])?,
        [None]
    );
    assert!(!dir.0.join("access-log/web").exists());
    assert_eq!(
        texts(&store.query_logs("api", &LogFilter::default())?),
        ["POST /x 201 2.0ms"]
    );
    Ok(())
}

#[test]
fn a_service_created_again_gets_none_of_the_lines_of_the_one_deleted_before() -> TestResult {
    let dir = TempDir::new("log_lifetime")?;
    let store = Store::open(&dir.db())?;
    let web = service("web")?;
    store.ensure_service(&web)?;
    let old = new_deployment(&store, &web)?;
    let before = now_ms();
    store.append_all(&[access("web", None, before, "GET /old 200")])?;
    assert!(store.delete_service(&web)?);
    // Created again in a later millisecond; its first deployment is a new one.
    std::thread::sleep(Duration::from_millis(2));
    store.ensure_service(&web)?;
    let new = new_deployment(&store, &web)?;
    let late = |deployment: &DeploymentId, text: &str| NewLogLine {
        deployment: Some(deployment.to_string()),
        ..log_line("web", None, None, LogStream::Stdout, text)
    };
    // What the old service's requests and instances left in flight arrives now.
    let ids = store.append_logs(&[
        access("web", None, before + 1, "GET /in-flight 200"),
        late(&old, "old instance shutting down"),
        access("web", None, now_ms(), "GET /new 200"),
        late(&new, "new instance up"),
    ])?;
    assert!(ids[0].is_none() && ids[1].is_none(), "{ids:?}");
    assert!(ids[2].is_some() && ids[3].is_some(), "{ids:?}");
    assert_eq!(
        texts(&store.query_logs("web", &LogFilter::default())?),
        ["GET /new 200", "new instance up"]
    );
    Ok(())
}

#[test]
fn access_log_retention_removes_whole_segments_by_size_and_age() -> TestResult {
    let dir = TempDir::new("access_retention")?;
    let store = Store::open(&dir.db())?;
    let web = service("web")?;
    store.ensure_service(&web)?;
    // A 1 MiB cap: segments of 100 KiB (a tenth).
    store.set_log_cap(1024 * 1024);
    store.append_all(&[log_line("web", None, None, LogStream::Stdout, "kept")])?;
    let text = "x".repeat(1000);
    let t = now_ms();
    for batch in 0..40 {
        let lines: Vec<NewLogLine> = (0..100)
            .map(|i| access("web", None, t, &format!("{batch:02}-{i:03} {text}")))
            .collect();
        store.append_all(&lines)?;
    }
    // 4 MB written, at most the cap kept, in whole segments, the oldest gone first.
    let bytes = store.access_log_bytes(&web);
    assert!(bytes <= 1024 * 1024, "{bytes}");
    assert!(bytes > 700 * 1024, "{bytes}");
    let kept = store.query_logs("web", &LogFilter::default())?;
    assert_eq!(kept[0].line, "kept");
    assert!(kept[1].line.starts_with("3"), "{}", &kept[1].line[..10]);
    assert!(kept.last().is_some_and(|l| l.line.starts_with("39-099")));
    // A segment is closed once past a tenth of the cap (these batches are ~100 KB each).
    let files = access_files(&dir, "web")?.len();
    assert!((4..=11).contains(&files), "{files}");

    // By age: everything but the newest segment was written before `cutoff`; the newest was
    // written to since, so it stays.
    std::thread::sleep(Duration::from_millis(5));
    let cutoff = now_ms();
    store.append_all(&[access("web", None, cutoff, "fresh")])?;
    store.prune_logs_before(cutoff)?;
    let left = store.query_logs("web", &LogFilter::default())?;
    // Only the newest segment (two batches) and the fresh line.
    assert!(left.len() <= 201, "{}", left.len());
    assert_eq!(left.last().map(|l| l.line.as_str()), Some("fresh"));
    // Far in the future, nothing is left at all.
    let last = store.append_all(&[access("web", None, now_ms(), "last")])?[0];
    store.prune_logs_before(i64::MAX)?;
    assert!(store.query_logs("web", &LogFilter::default())?.is_empty());
    assert_eq!(store.access_log_bytes(&web), 0);
    // With every line gone, a restart still goes on from the highest id handed out.
    drop(store);
    let store = Store::open(&dir.db())?;
    store.set_log_cap(1024 * 1024);
    assert!(store.append_all(&[access("web", None, now_ms(), "x")])?[0] > last);
    store.prune_logs_before(i64::MAX)?;
    // And writing goes on after that.
    store.append_all(&[access("web", None, now_ms(), "again")])?;
    assert_eq!(
        texts(&store.query_logs("web", &LogFilter::default())?),
        ["again"]
    );
    Ok(())
}

#[test]
fn a_service_s_own_output_pushes_out_its_oldest_access_lines_first() -> TestResult {
    let dir = TempDir::new("access_gives_way")?;
    let store = Store::open(&dir.db())?;
    let web = service("web")?;
    store.ensure_service(&web)?;
    let cap: u64 = 1024 * 1024;
    store.set_log_cap(cap);
    let text = "x".repeat(1000);
    // 800 KB of requests, in segments of about 100 KB.
    for batch in 0..8 {
        let lines: Vec<NewLogLine> = (0..100)
            .map(|i| access("web", None, now_ms(), &format!("{batch}-{i:03} {text}")))
            .collect();
        store.append_all(&lines)?;
    }
    assert!(store.access_log_bytes(&web) > 700 * 1024);
    // Then 600 KB of the app's own output, and no request: the total stays within the cap
    // (give or take the newest segment, which always stays) and none of the output is lost.
    for batch in 0..6 {
        let lines: Vec<NewLogLine> = (0..100)
            .map(|i| {
                log_line(
                    "web",
                    None,
                    None,
                    LogStream::Stdout,
                    &format!("out {batch}-{i:03} {text}"),
                )
            })
            .collect();
        store.append_all(&lines)?;
    }
    let own = count(
        &store,
        "SELECT count(*) FROM logs WHERE service = 'web'",
        [],
    )?;
    assert_eq!(own, 600);
    let own_bytes = 600 * (1000 + 8 + 64);
    let access = store.access_log_bytes(&web);
    assert!(
        own_bytes + access <= cap + cap / 10,
        "{own_bytes} + {access} over the cap"
    );
    // What is left of the access log is its newest lines.
    let kept = store.query_logs(
        "web",
        &LogFilter {
            streams: vec![LogStream::Access],
            ..LogFilter::default()
        },
    )?;
    assert!(kept.last().is_some_and(|l| l.line.starts_with("7-099")));
    assert!(kept.first().is_some_and(|l| !l.line.starts_with("0-")));
    Ok(())
}

impl Store {
    /// [`Store::append_logs`] for lines that must all be stored.
    fn append_all(&self, lines: &[NewLogLine]) -> Result<Vec<i64>, crate::StoreError> {
        self.append_logs(lines)?
            .into_iter()
            .map(|id| {
                id.ok_or_else(|| {
                    crate::StoreError::Corrupt(format!("a line was not stored: {lines:?}"))
                })
            })
            .collect()
    }
}

// ---- legacy plain-text env --------------------------------------------------------------

/// A spec whose `env` is hoist.toml's `[env]` (schema 3 on) survives every reopen; only a
/// database from before sealing has its specs' plain env scrubbed, and only once.
#[test]
fn only_a_database_from_before_sealing_has_its_spec_env_scrubbed() -> TestResult {
    let with_env = r#"{"env":{"MODE":"from-hoist-toml"}}"#;
    let spec_env = |store: &Store, web: &ServiceName| -> Result<serde_json::Value, String> {
        let svc = store
            .get_service(web)
            .map_err(|e| e.to_string())?
            .ok_or("service lost")?;
        Ok(svc.spec["env"].clone())
    };
    let web = service("web")?;

    // Today's database: the env in specs is the repository's and is kept across opens.
    let dir = TempDir::new("spec_env_kept")?;
    let store = Store::open(&dir.db())?;
    store.ensure_service(&web)?;
    store
        .conn()
        .execute("UPDATE services SET spec = ?1", [with_env])?;
    assert!(!store.legacy_plain_env_pending()?);
    assert_eq!(store.scrub_plain_env()?, 0);
    drop(store);
    let store = Store::open(&dir.db())?;
    assert_eq!(store.scrub_plain_env()?, 0);
    assert_eq!(spec_env(&store, &web)?["MODE"], "from-hoist-toml");
    drop(store);

    // A database as a version before sealing (schema 2) left it: scrubbed once.
    let dir = TempDir::new("spec_env_legacy")?;
    let conn = Connection::open(dir.db())?;
    conn.execute_batch(MIGRATIONS[0])?;
    conn.execute_batch(MIGRATIONS[1])?;
    conn.pragma_update(None, "user_version", 2)?;
    conn.execute(
        "INSERT INTO services (name, spec, created_at, updated_at) VALUES (?1, ?2, 1, 2)",
        [web.as_str(), with_env],
    )?;
    drop(conn);
    let store = Store::open(&dir.db())?;
    assert!(store.legacy_plain_env_pending()?);
    assert_eq!(store.scrub_plain_env()?, 1);
    assert!(!store.legacy_plain_env_pending()?);
    assert_eq!(spec_env(&store, &web)?, serde_json::Value::Null);
    // A later spec with an [env] is not scrubbed by the next start.
    store
        .conn()
        .execute("UPDATE services SET spec = ?1", [with_env])?;
    drop(store);
    let store = Store::open(&dir.db())?;
    assert_eq!(store.scrub_plain_env()?, 0);
    assert_eq!(spec_env(&store, &web)?["MODE"], "from-hoist-toml");
    Ok(())
}

/// The checked deployment state changes.
mod lifecycle;
