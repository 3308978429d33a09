//! The token store: roles and services kept, names unique among live tokens, revocation, the
//! upgrade of the one admin token of older databases, and no secret on disk.

use std::path::PathBuf;

use hoist_core::{ServiceName, TokenId, TokenRole};
use rusqlite::{Connection, params};

use super::*;
use crate::migrations::MIGRATIONS;

struct Dir(PathBuf);

impl Dir {
    fn new(test: &str) -> Dir {
        let path =
            std::env::temp_dir().join(format!("hoist-store-token-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Dir(path)
    }

    fn db(&self) -> PathBuf {
        self.0.join("hoist.db")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn name(n: &str) -> TokenName {
    n.parse().unwrap()
}

fn svc(n: &str) -> ServiceName {
    n.parse().unwrap()
}

fn valid(store: &Store, token: &str) -> Option<TokenRecord> {
    match store.check_token(token).unwrap() {
        TokenCheck::Valid(t) => Some(t),
        _ => None,
    }
}

#[test]
fn a_token_keeps_its_role_and_service_and_is_listed_without_its_secret() {
    let dir = Dir::new("roles");
    let store = Store::open(&dir.db()).unwrap();
    let admin = store.ensure_admin_token().unwrap().unwrap();
    let ci = store
        .create_token(name("ci"), TokenRole::Deploy, Some(svc("web")))
        .unwrap()
        .unwrap();
    let reader = store
        .create_token(name("grafana"), TokenRole::Read, None)
        .unwrap()
        .unwrap();
    assert!(ci.token.starts_with("hoist_") && ci.token.len() == 70);
    assert!(ci.record.id.as_str().starts_with("tok_"));
    assert_ne!(ci.token, reader.token);

    let got = valid(&store, &ci.token).unwrap();
    assert_eq!(
        (got.role, got.service.clone(), got.name.as_str()),
        (TokenRole::Deploy, Some(svc("web")), "ci")
    );
    assert_eq!(got.principal().token, ci.record.id);
    assert_eq!(valid(&store, &admin).unwrap().role, TokenRole::Admin);
    assert_eq!(valid(&store, &reader.token).unwrap().service, None);
    assert_eq!(
        store.check_token("hoist_nope").unwrap(),
        TokenCheck::Unknown
    );

    let names: Vec<String> = store
        .list_tokens()
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(names, ["admin", "ci", "grafana"]);
}

#[test]
fn a_name_is_unique_among_live_tokens_and_admin_is_reserved() {
    let dir = Dir::new("names");
    let store = Store::open(&dir.db()).unwrap();
    store.ensure_admin_token().unwrap();
    let first = store
        .create_token(name("ci"), TokenRole::Read, None)
        .unwrap()
        .unwrap();
    let again = store
        .create_token(name("ci"), TokenRole::Deploy, None)
        .unwrap();
    assert_eq!(again, Err(TokenRefused::NameTaken(name("ci"))));
    assert_eq!(
        store
            .create_token(name("admin"), TokenRole::Admin, None)
            .unwrap(),
        Err(TokenRefused::ReservedName)
    );
    // Once the first is revoked, the name is free again.
    store.revoke_token(&first.record.id).unwrap().unwrap();
    let second = store
        .create_token(name("ci"), TokenRole::Deploy, None)
        .unwrap()
        .unwrap();
    assert_ne!(second.record.id, first.record.id);
}

#[test]
fn a_revoked_token_is_told_revoked_and_the_last_admin_stays() {
    let dir = Dir::new("revoke");
    let store = Store::open(&dir.db()).unwrap();
    let admin = store.ensure_admin_token().unwrap().unwrap();
    let admin_id = valid(&store, &admin).unwrap().id;
    let ci = store
        .create_token(name("ci"), TokenRole::Deploy, Some(svc("web")))
        .unwrap()
        .unwrap();
    let revoked = store.revoke_token(&ci.record.id).unwrap().unwrap();
    assert!(revoked.revoked_at.is_some());
    match store.check_token(&ci.token).unwrap() {
        TokenCheck::Revoked(t) => assert_eq!(t.id, ci.record.id),
        other => panic!("{other:?}"),
    }
    assert!(!store.verify_token(&ci.token).unwrap());
    // Twice, or a token that never was: not found.
    assert_eq!(
        store.revoke_token(&ci.record.id).unwrap(),
        Err(TokenRefused::NotFound(ci.record.id.clone()))
    );
    let never = TokenId::generate();
    assert_eq!(
        store.revoke_token(&never).unwrap(),
        Err(TokenRefused::NotFound(never))
    );
    // The only admin token cannot go; with a second one, either can.
    assert_eq!(
        store.revoke_token(&admin_id).unwrap(),
        Err(TokenRefused::LastAdmin(admin_id.clone()))
    );
    let ops = store
        .create_token(name("ops"), TokenRole::Admin, None)
        .unwrap()
        .unwrap();
    store.revoke_token(&admin_id).unwrap().unwrap();
    assert!(!store.verify_token(&admin).unwrap());
    assert!(store.verify_token(&ops.token).unwrap());
    assert_eq!(store.list_tokens().unwrap().len(), 1);
    // A new database would get a new admin token; this one has one, so none is made.
    assert_eq!(store.ensure_admin_token().unwrap(), None);
    // Replacing the server's token makes a new `admin`, leaving `ops` alone.
    let new = store.replace_admin_token().unwrap();
    assert_eq!(valid(&store, &new).unwrap().name.as_str(), "admin");
    assert!(store.verify_token(&ops.token).unwrap());
}

#[test]
fn use_is_recorded_at_most_once_a_minute() {
    let dir = Dir::new("last-used");
    let store = Store::open(&dir.db()).unwrap();
    store.ensure_admin_token().unwrap();
    let ci = store
        .create_token(name("ci"), TokenRole::Read, None)
        .unwrap()
        .unwrap();
    assert_eq!(ci.record.last_used_at, None);
    let first = valid(&store, &ci.token).unwrap().last_used_at.unwrap();
    let stored = |store: &Store| -> Option<i64> {
        store
            .conn()
            .query_row(
                "SELECT last_used_at FROM api_tokens WHERE id = ?1",
                params![ci.record.id.as_str()],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(stored(&store), Some(first));
    // Set it back two minutes: the next use writes again; right after, it does not.
    store
        .conn()
        .execute(
            "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1",
            params![ci.record.id.as_str(), first - 120_000],
        )
        .unwrap();
    let second = valid(&store, &ci.token).unwrap().last_used_at.unwrap();
    assert!(second >= first, "{second} {first}");
    assert_eq!(stored(&store), Some(second));
    store
        .conn()
        .execute(
            "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1",
            params![ci.record.id.as_str(), second - 1_000],
        )
        .unwrap();
    assert_eq!(
        valid(&store, &ci.token).unwrap().last_used_at,
        Some(second - 1_000)
    );
}

#[test]
fn the_admin_token_of_an_older_database_becomes_an_admin_token_named_admin() {
    let dir = Dir::new("upgrade");
    let token = generate_token();
    // A database as the binary before token roles left it, with its one admin token.
    let before = MIGRATIONS
        .iter()
        .position(|m| m.contains("api_tokens_v10"))
        .unwrap();
    let conn = Connection::open(dir.db()).unwrap();
    for m in &MIGRATIONS[..before] {
        conn.execute_batch(m).unwrap();
    }
    conn.pragma_update(None, "user_version", before as i64)
        .unwrap();
    conn.execute(
        "INSERT INTO api_tokens (hash, created_at) VALUES (?1, 42)",
        params![hash_token(&token)],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO sessions (id_hash, csrf_token, token_hash, created_at, expires_at)
         VALUES ('s', 'c', ?1, 1, 9999999999999)",
        params![hash_token(&token)],
    )
    .unwrap();
    drop(conn);

    let store = Store::open(&dir.db()).unwrap();
    let t = valid(&store, &token).unwrap();
    assert_eq!(
        (t.name.as_str(), t.role, t.service),
        ("admin", TokenRole::Admin, None)
    );
    assert_eq!(t.created_at, 42);
    assert!(t.id.as_str().parse::<TokenId>().is_ok(), "{}", t.id);
    assert_eq!(store.ensure_admin_token().unwrap(), None);
    // Its session goes on, now as the admin.
    let conn = store.conn();
    let hash: String = conn
        .query_row("SELECT token_hash FROM sessions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(token_by_hash(&conn, &hash).unwrap().unwrap().id, t.id);
}

#[test]
fn only_the_hash_of_a_token_is_on_disk() {
    let dir = Dir::new("on-disk");
    let store = Store::open(&dir.db()).unwrap();
    store.ensure_admin_token().unwrap();
    let ci = store
        .create_token(name("ci"), TokenRole::Deploy, Some(svc("web")))
        .unwrap()
        .unwrap();
    drop(store);
    let mut bytes = std::fs::read(dir.db()).unwrap();
    bytes.extend(std::fs::read(dir.0.join("hoist.db-wal")).unwrap_or_default());
    let has = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(!has(&ci.token));
    assert!(!has(ci.token.trim_start_matches("hoist_")));
    assert!(has(&hash_token(&ci.token)));
    assert!(has(ci.record.id.as_str()));
}

#[test]
fn deleting_a_service_revokes_the_tokens_for_it() {
    let dir = Dir::new("delete-service");
    let store = Store::open(&dir.db()).unwrap();
    store.ensure_admin_token().unwrap();
    store.ensure_service(&svc("web")).unwrap();
    store.ensure_service(&svc("api")).unwrap();
    let web = store
        .create_token(name("ci-web"), TokenRole::Deploy, Some(svc("web")))
        .unwrap()
        .unwrap();
    let api = store
        .create_token(name("ci-api"), TokenRole::Deploy, Some(svc("api")))
        .unwrap()
        .unwrap();
    let all = store
        .create_token(name("ci"), TokenRole::Deploy, None)
        .unwrap()
        .unwrap();
    let session = store.create_session(&web.token, 60_000).unwrap().unwrap();
    assert!(store.delete_service(&svc("web")).unwrap());
    assert!(matches!(
        store.check_token(&web.token).unwrap(),
        TokenCheck::Revoked(_)
    ));
    assert_eq!(store.session(&session.id).unwrap(), None);
    assert!(store.verify_token(&api.token).unwrap());
    assert!(store.verify_token(&all.token).unwrap());
}
