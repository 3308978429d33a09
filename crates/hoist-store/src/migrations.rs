//! Schema migrations, applied in order and recorded in `PRAGMA user_version`. A migration is
//! never edited once released; changes are new entries.

use rusqlite::Connection;

use crate::StoreError;

pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: services, deployments, steps, instances, logs, API tokens.
    r#"
    CREATE TABLE services (
        name            TEXT PRIMARY KEY,
        spec            TEXT NOT NULL,
        live_deployment TEXT,
        log_bytes       INTEGER NOT NULL DEFAULT 0,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL
    );
    CREATE TABLE deployments (
        id              TEXT PRIMARY KEY,
        service         TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,
        state           TEXT NOT NULL,
        source          TEXT NOT NULL,
        branch          TEXT,
        commit_sha      TEXT,
        request         TEXT NOT NULL,
        spec            TEXT,
        image           TEXT,
        runtime_version TEXT,
        failure_reason  TEXT,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        finished_at     INTEGER
    );
    CREATE INDEX deployments_service ON deployments(service, created_at);
    CREATE TABLE deployment_steps (
        deployment  TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
        step        TEXT NOT NULL,
        state       TEXT NOT NULL,
        started_at  INTEGER NOT NULL,
        finished_at INTEGER,
        PRIMARY KEY (deployment, step)
    );
    CREATE TABLE instances (
        id          TEXT PRIMARY KEY,
        service     TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,
        deployment  TEXT NOT NULL,
        state       TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        ready_at    INTEGER,
        stopped_at  INTEGER,
        exit_reason TEXT
    );
    CREATE INDEX instances_service ON instances(service, created_at);
    CREATE TABLE logs (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        service    TEXT NOT NULL,
        deployment TEXT,
        instance   TEXT,
        stream     TEXT NOT NULL,
        ts         INTEGER NOT NULL,
        line       TEXT NOT NULL
    );
    CREATE INDEX logs_service ON logs(service, id);
    CREATE INDEX logs_deployment ON logs(deployment, id);
    CREATE TABLE api_tokens (
        hash       TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL
    );
    "#,
    // 2: scaling settings, per-instance usage, per-service daily usage.
    r#"
    ALTER TABLE services ADD COLUMN scaling TEXT;
    ALTER TABLE instances ADD COLUMN cold      INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE instances ADD COLUMN memory_mb INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE instances ADD COLUMN active_ms INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE instances ADD COLUMN frozen_ms INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE instances ADD COLUMN cpu_ms    INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE instances ADD COLUMN requests  INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE usage_daily (
        service     TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,
        day         TEXT NOT NULL, -- YYYY-MM-DD, UTC
        active_ms   INTEGER NOT NULL DEFAULT 0,
        frozen_ms   INTEGER NOT NULL DEFAULT 0,
        cpu_ms      INTEGER NOT NULL DEFAULT 0,
        mb_ms       INTEGER NOT NULL DEFAULT 0, -- active ms x memory MB; GB-s = mb_ms / 1024 / 1000
        requests    INTEGER NOT NULL DEFAULT 0,
        cold_starts INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (service, day)
    );
    "#,
    // 3: environment variables, sealed by the server's master key (never plain text here).
    r#"
    ALTER TABLE services ADD COLUMN env_sealed   BLOB;
    ALTER TABLE services ADD COLUMN env_revision INTEGER NOT NULL DEFAULT 0;
    "#,
    // 4: log retention by age, events (errors a user should see), per-minute metrics.
    r#"
    CREATE INDEX logs_ts ON logs(ts);
    CREATE TABLE events (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        service    TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,
        ts         INTEGER NOT NULL,
        kind       TEXT NOT NULL,
        instance   TEXT,
        deployment TEXT,
        detail     TEXT NOT NULL,
        context    TEXT NOT NULL DEFAULT '[]' -- JSON array of the log lines around it
    );
    CREATE INDEX events_service ON events(service, id);
    CREATE TABLE metrics_minute (
        service    TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,
        minute     INTEGER NOT NULL, -- ms since the epoch, start of the minute (UTC)
        requests   INTEGER NOT NULL,
        errors     INTEGER NOT NULL,
        p50_ms     REAL,
        p95_ms     REAL,
        p99_ms     REAL,
        instances  INTEGER NOT NULL,
        memory_mb  REAL NOT NULL,
        cpu_ms     INTEGER NOT NULL,
        PRIMARY KEY (service, minute)
    );
    "#,
    // 5: a trigram index over log lines, so `--grep` finds substrings without reading every
    // line (a full scan reads about 180 MB/s; 1 GB must answer in under a second). Lines are
    // indexed in the background in batches (`logs_indexed.upto`): a trigger per insert cut
    // the rate lines could be stored at to a few thousand a second.
    r#"
    CREATE VIRTUAL TABLE logs_text USING fts5(
        line, content='logs', content_rowid='id', tokenize='trigram case_sensitive 1'
    );
    CREATE TABLE logs_indexed (upto INTEGER NOT NULL);
    INSERT INTO logs_indexed (upto) VALUES (0);
    CREATE TRIGGER logs_text_delete AFTER DELETE ON logs
    WHEN old.id <= (SELECT upto FROM logs_indexed) BEGIN
        INSERT INTO logs_text(logs_text, rowid, line) VALUES ('delete', old.id, old.line);
    END;
    "#,
    // 6: whether a database from before sealing (schema 1 or 2, whose specs held the service
    // env in plain text) still waits for its values to be sealed and the plain copies removed.
    // The server does that once, with the master key (`migrate` sets the row); later specs'
    // `env` is hoist.toml's `[env]`, part of the repository, and must be left alone.
    r#"
    CREATE TABLE legacy_plain_env (pending INTEGER NOT NULL);
    "#,
    // 7: dashboard sessions. The id (the cookie's value) is stored as its SHA-256 only, like
    // API tokens; `token_hash` is the API token the session was started with, so that
    // revoking the token ends its sessions too.
    r#"
    CREATE TABLE sessions (
        id_hash    TEXT PRIMARY KEY,
        csrf_token TEXT NOT NULL,
        token_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX sessions_expires ON sessions(expires_at);
    "#,
    // 8: token roles. A token gets an id (shown and used to revoke it; the secret is kept as
    // its SHA-256 only, as before), a name unique among live tokens, a role (`admin`,
    // `deploy`, `read`), the one service a `deploy` or `read` token may be scoped to, when it
    // was last used, and when it was revoked: a revoked token's row stays, so that using it
    // gets "revoked" rather than "unknown". The token that existed (the server's admin token)
    // becomes an `admin` token named `admin`.
    r#"
    CREATE TABLE api_tokens_v10 (
        id           TEXT PRIMARY KEY,
        hash         TEXT NOT NULL UNIQUE,
        name         TEXT NOT NULL,
        role         TEXT NOT NULL,
        service      TEXT,
        created_at   INTEGER NOT NULL,
        last_used_at INTEGER,
        revoked_at   INTEGER
    );
    INSERT INTO api_tokens_v10 (id, hash, name, role, created_at)
        SELECT 'tok_' || lower(hex(randomblob(5))), hash,
               CASE WHEN rowid = (SELECT min(rowid) FROM api_tokens) THEN 'admin'
                    ELSE 'admin-' || rowid END,
               'admin', created_at
        FROM api_tokens;
    DROP TABLE api_tokens;
    ALTER TABLE api_tokens_v10 RENAME TO api_tokens;
    CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens(name) WHERE revoked_at IS NULL;
    CREATE INDEX sessions_token ON sessions(token_hash);
    "#,
    // 9: uploaded sources. A bundle a client sent is kept in the source store (a
    // bare git repository under the data dir); each row is one upload of one service, the
    // commit it carried and what it cost. A service need not exist yet: the first deploy from
    // CI uploads before it creates the service.
    r#"
    CREATE TABLE uploads (
        id             TEXT PRIMARY KEY,
        service        TEXT NOT NULL,
        commit_sha     TEXT NOT NULL,
        bytes_received INTEGER NOT NULL,
        bytes_stored   INTEGER NOT NULL,
        already_stored INTEGER NOT NULL,
        created_at     INTEGER NOT NULL
    );
    CREATE INDEX uploads_service ON uploads(service, created_at);
    "#,
    // 10: cron jobs and runs. A job belongs to its service (the API's or hoist.toml's, which a
    // deploy replaces); `last_scheduled` is the latest scheduled time dealt with (run, skipped
    // or recorded missed), so a start after a crash knows which runs it missed. Runs are one
    // row per attempt, kept as long as logs. The cron secret is sealed like the env.
    r#"
    CREATE TABLE cron_jobs (
        service        TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,
        id             TEXT NOT NULL,
        schedule       TEXT NOT NULL,
        path           TEXT NOT NULL,
        method         TEXT NOT NULL,
        timezone       TEXT NOT NULL,
        timeout_ms     INTEGER NOT NULL,
        concurrency    TEXT NOT NULL,
        retries        INTEGER NOT NULL,
        paused         INTEGER NOT NULL DEFAULT 0,
        source         TEXT NOT NULL,
        created_at     INTEGER NOT NULL,
        updated_at     INTEGER NOT NULL,
        last_scheduled INTEGER,
        PRIMARY KEY (service, id)
    );
    CREATE TABLE cron_runs (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        service      TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,
        job          TEXT NOT NULL,
        execution    TEXT NOT NULL,
        scheduled_at INTEGER NOT NULL,
        started_at   INTEGER,
        finished_at  INTEGER,
        status       TEXT NOT NULL,
        http_status  INTEGER,
        instance     TEXT,
        attempt      INTEGER NOT NULL,
        detail       TEXT
    );
    CREATE INDEX cron_runs_service ON cron_runs(service, job, id);
    CREATE INDEX cron_runs_scheduled ON cron_runs(scheduled_at);
    ALTER TABLE services ADD COLUMN cron_secret_sealed BLOB;
    "#,
    // 11: deploy triggers and webhooks. What started each deployment (`cli`, `api`, `push`
    // with its delivery id, `poll`, `rollback`); older rows were all made through the API.
    // A service's webhook secret is sealed under the master key like its env; deliveries
    // seen are kept (a week, like logs) so a redelivery is acknowledged and ignored.
    r#"
    ALTER TABLE deployments ADD COLUMN trigger          TEXT NOT NULL DEFAULT 'api';
    ALTER TABLE deployments ADD COLUMN trigger_delivery TEXT;
    CREATE TABLE webhooks (
        service       TEXT PRIMARY KEY REFERENCES services(name) ON DELETE CASCADE,
        secret_sealed BLOB NOT NULL,
        created_at    INTEGER NOT NULL
    );
    CREATE TABLE webhook_deliveries (
        service     TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,
        delivery    TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        PRIMARY KEY (service, delivery)
    );
    CREATE INDEX webhook_deliveries_received ON webhook_deliveries(received_at);
    "#,
    // 12: when a rollback last made a deployment live again. A rollback starts no deployment
    // of its own (it makes an earlier one live from its stored image), so this is where it
    // is recorded; `trigger` stays what started the deployment.
    r#"
    ALTER TABLE deployments ADD COLUMN rolled_back_at INTEGER;
    "#,
    // 13: static asset manifests (STATICWIRE, issue 15). A deployment's static folder as its
    // deploy stored it (the manifest's id in DATA/static, its files and bytes, and how it is
    // served: JSON with dir, prefix, spa and what was detected). A service keeps when its
    // live deployment last changed and which one it replaced, so the replaced one's hashed
    // files keep answering for the grace time, also across a restart.
    r#"
    ALTER TABLE deployments ADD COLUMN static_manifest TEXT;
    ALTER TABLE deployments ADD COLUMN static_files    INTEGER;
    ALTER TABLE deployments ADD COLUMN static_bytes    INTEGER;
    ALTER TABLE deployments ADD COLUMN static_config   TEXT;
    ALTER TABLE services ADD COLUMN switched_at   INTEGER;
    ALTER TABLE services ADD COLUMN switched_from TEXT;
    "#,
];

/// The first schema whose specs no longer hold the service env in plain text.
const SEALED_ENV_SCHEMA: i64 = 3;

pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew {
            found: version,
            known,
        });
    }
    if version == known {
        return Ok(());
    }
    // All in one transaction: what the upgrade learns about the starting schema (a legacy
    // env to seal) must not be lost to a crash between two migrations.
    let tx = conn.transaction()?;
    for sql in MIGRATIONS.iter().skip(version as usize) {
        tx.execute_batch(sql)?;
    }
    if (1..SEALED_ENV_SCHEMA).contains(&version) {
        tx.execute("INSERT INTO legacy_plain_env (pending) VALUES (1)", [])?;
    }
    tx.pragma_update(None, "user_version", known)?;
    tx.commit()?;
    Ok(())
}
