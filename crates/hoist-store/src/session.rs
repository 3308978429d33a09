//! Dashboard sessions: what the `hoist_session` cookie stands for. A session is as good as the
//! API token it was started with, for at most its lifetime: every lookup checks both, and a
//! session that fails either is removed. It may do what that token may (its [`Principal`]).

use hoist_core::Principal;
use rusqlite::{OptionalExtension, params};

use crate::token::{hash_token, random_hex, token_by_hash, touch};
use crate::{Store, StoreError, now_ms};

/// A session as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Sent back by the page in `X-CSRF-Token` with every state-changing request.
    pub csrf_token: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Milliseconds since the Unix epoch.
    pub expires_at: i64,
    /// The token the session was started with, as it is now.
    pub principal: Principal,
}

/// A session just started: `id` is the cookie's value, known only to the client from now on
/// (the database keeps its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub id: String,
    pub record: SessionRecord,
}

impl Store {
    /// Starts a session for `token` lasting `ttl_ms`, if the token is a valid API token
    /// (`None` otherwise). Expired sessions of anyone are removed on the way.
    pub fn create_session(
        &self,
        token: &str,
        ttl_ms: i64,
    ) -> Result<Option<NewSession>, StoreError> {
        let token_hash = hash_token(token);
        let now = now_ms();
        let conn = self.conn();
        let Some(mut token) = token_by_hash(&conn, &token_hash)? else {
            return Ok(None);
        };
        if token.revoked_at.is_some() {
            return Ok(None);
        }
        touch(&conn, &mut token)?;
        conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", params![now])?;
        let id = random_hex();
        let record = SessionRecord {
            csrf_token: random_hex(),
            created_at: now,
            expires_at: now.saturating_add(ttl_ms),
            principal: token.principal(),
        };
        conn.execute(
            "INSERT INTO sessions (id_hash, csrf_token, token_hash, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                hash_token(&id),
                record.csrf_token,
                token_hash,
                record.created_at,
                record.expires_at
            ],
        )?;
        Ok(Some(NewSession { id, record }))
    }

    /// The session whose cookie value is `id`, if it is unexpired and its API token is still
    /// valid. A session that is neither is removed, so it cannot come back.
    pub fn session(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let id_hash = hash_token(id);
        let conn = self.conn();
        let row = conn
            .query_row(
                "SELECT csrf_token, created_at, expires_at, token_hash FROM sessions
                 WHERE id_hash = ?1",
                params![id_hash],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                },
            )
            .optional()?;
        let Some((csrf_token, created_at, expires_at, token_hash)) = row else {
            return Ok(None);
        };
        let token = token_by_hash(&conn, &token_hash)?.filter(|t| t.revoked_at.is_none());
        match token {
            Some(mut token) if expires_at > now_ms() => {
                touch(&conn, &mut token)?;
                Ok(Some(SessionRecord {
                    csrf_token,
                    created_at,
                    expires_at,
                    principal: token.principal(),
                }))
            }
            _ => {
                conn.execute("DELETE FROM sessions WHERE id_hash = ?1", params![id_hash])?;
                Ok(None)
            }
        }
    }

    /// Ends the session whose cookie value is `id`; whether there was one.
    pub fn delete_session(&self, id: &str) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "DELETE FROM sessions WHERE id_hash = ?1",
            params![hash_token(id)],
        )?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use hoist_core::TokenRole;

    use super::*;

    fn store(test: &str) -> (Store, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("hoist-store-session-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        (Store::open(&dir.join("db")).unwrap(), dir)
    }

    const DAY: i64 = 86_400_000;

    #[test]
    fn a_session_needs_a_valid_token_and_lasts_until_it_ends() {
        let (store, dir) = store("valid");
        let token = store.ensure_admin_token().unwrap().unwrap();
        assert_eq!(store.create_session("hoist_wrong", DAY).unwrap(), None);
        let s = store.create_session(&token, DAY).unwrap().unwrap();
        assert_eq!(s.id.len(), 64, "256 bits, hex");
        assert_ne!(s.id, s.record.csrf_token);
        assert_eq!(s.record.expires_at - s.record.created_at, DAY);
        assert_eq!(store.session(&s.id).unwrap(), Some(s.record.clone()));
        assert_eq!(store.session("not-a-session").unwrap(), None);
        // Only the hash is stored: the cookie's value is nowhere in the database.
        let conn = store.conn();
        let stored: i64 = conn
            .query_row(
                "SELECT count(*) FROM sessions WHERE id_hash = ?1",
                params![s.id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(stored, 0);
        drop(conn);
        // It survives a reopen (a server restart).
        drop(store);
        let store = Store::open(&dir.join("db")).unwrap();
        assert_eq!(store.session(&s.id).unwrap(), Some(s.record));
        assert!(store.delete_session(&s.id).unwrap());
        assert_eq!(store.session(&s.id).unwrap(), None);
        assert!(!store.delete_session(&s.id).unwrap());
    }

    #[test]
    fn an_expired_session_is_refused_and_removed() {
        let (store, _dir) = store("expired");
        let token = store.ensure_admin_token().unwrap().unwrap();
        let s = store.create_session(&token, 0).unwrap().unwrap();
        assert_eq!(store.session(&s.id).unwrap(), None);
        let left: i64 = store
            .conn()
            .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn a_replaced_token_ends_its_sessions() {
        let (store, _dir) = store("revoked");
        let token = store.ensure_admin_token().unwrap().unwrap();
        let s = store.create_session(&token, DAY).unwrap().unwrap();
        let new = store.replace_admin_token().unwrap();
        assert_eq!(store.session(&s.id).unwrap(), None);
        let s2 = store.create_session(&new, DAY).unwrap().unwrap();
        assert!(store.session(&s2.id).unwrap().is_some());
    }

    #[test]
    fn a_session_carries_its_tokens_principal_and_ends_when_the_token_is_revoked() {
        let (store, _dir) = store("principal");
        let admin = store.ensure_admin_token().unwrap().unwrap();
        let web: hoist_core::ServiceName = "web".parse().unwrap();
        let ci = store
            .create_token("ci".parse().unwrap(), TokenRole::Deploy, Some(web.clone()))
            .unwrap()
            .unwrap();
        let s = store.create_session(&ci.token, DAY).unwrap().unwrap();
        let record = store.session(&s.id).unwrap().unwrap();
        assert_eq!(record.principal.role, TokenRole::Deploy);
        assert_eq!(record.principal.service, Some(web));
        assert_eq!(record.principal.token, ci.record.id);
        let a = store.create_session(&admin, DAY).unwrap().unwrap();
        assert_eq!(a.record.principal.role, TokenRole::Admin);

        store.revoke_token(&ci.record.id).unwrap().unwrap();
        assert_eq!(store.session(&s.id).unwrap(), None);
        // Ended in the table too, not only refused; the admin's session is untouched.
        let left: i64 = store
            .conn()
            .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 1);
        assert!(store.session(&a.id).unwrap().is_some());
        // A revoked token starts no session.
        assert_eq!(store.create_session(&ci.token, DAY).unwrap(), None);
    }
}
