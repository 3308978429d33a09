//! API tokens: the secret is shown once, when made, and kept only as its SHA-256; the row
//! holds what the token may do (its role and service) and names it (`tok_…`, a name) so it
//! can be listed and revoked. A revoked token's row stays: using it again is told "revoked".

use hoist_core::{Principal, ServiceName, TokenId, TokenName, TokenRole};
use rusqlite::{Connection, OptionalExtension, Row, params};
use sha2::{Digest, Sha256};

use crate::{Store, StoreError, now_ms};

/// Tokens are stored as SHA-256: they are random 256-bit secrets, so a fast hash is enough and
/// a stolen database does not hand out API access.
pub(crate) fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub(crate) fn generate_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("hoist_{}", hex::encode(bytes))
}

/// 256 random bits as hex: a session id or a CSRF token.
pub(crate) fn random_hex() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// How stale `last_used_at` may get: a use within this of the last recorded one writes
/// nothing, so a busy CI token does not turn every API read into a database write.
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

/// One token as listed: everything but its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: TokenId,
    pub name: TokenName,
    pub role: TokenRole,
    /// The one service a `deploy` or `read` token is for; `None`: every service.
    pub service: Option<ServiceName>,
    /// Milliseconds since the Unix epoch, as every time here.
    pub created_at: i64,
    /// Up to a minute behind the last request made with it; `None` before the first.
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl TokenRecord {
    /// What a request made with this token is allowed.
    pub fn principal(&self) -> Principal {
        Principal {
            token: self.id.clone(),
            role: self.role,
            service: self.service.clone(),
        }
    }
}

/// A token just made: `token` is its secret, which nothing keeps from now on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    pub token: String,
    pub record: TokenRecord,
}

/// What a bearer token turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    Valid(TokenRecord),
    /// It was a token, and was revoked (at `revoked_at`).
    Revoked(TokenRecord),
    Unknown,
}

/// Why a token was not made or revoked; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefused {
    #[error("a live token is already named '{0}': revoke it first, or pick another name")]
    NameTaken(TokenName),
    #[error(
        "'{}' is the name of the server's own admin token (its file is DATA/admin-token): \
         pick another name",
        TokenName::ADMIN
    )]
    ReservedName,
    #[error("no live token has the id '{0}'")]
    NotFound(TokenId),
    #[error(
        "{0} is the last admin token: create another admin token before revoking it, or no \
         one could manage the server"
    )]
    LastAdmin(TokenId),
}

const COLUMNS: &str = "id, name, role, service, created_at, last_used_at, revoked_at";

fn parse<T: std::str::FromStr>(text: String, what: &str) -> Result<T, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("{what} '{text}'")))
}

fn token_from(row: &Row<'_>) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        id: parse(row.get(0)?, "token id")?,
        name: parse(row.get(1)?, "token name")?,
        role: parse(row.get(2)?, "token role")?,
        service: row
            .get::<_, Option<String>>(3)?
            .map(|s| parse(s, "token service"))
            .transpose()?,
        created_at: row.get(4)?,
        last_used_at: row.get(5)?,
        revoked_at: row.get(6)?,
    })
}

/// The token whose secret hashes to `hash`, revoked or not.
pub(crate) fn token_by_hash(
    conn: &Connection,
    hash: &str,
) -> Result<Option<TokenRecord>, StoreError> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM api_tokens WHERE hash = ?1"))?;
    let mut rows = stmt.query(params![hash])?;
    rows.next()?.map(token_from).transpose()
}

/// Records a use of `token` now, unless one was recorded within the granularity.
pub(crate) fn touch(conn: &Connection, token: &mut TokenRecord) -> Result<(), StoreError> {
    let now = now_ms();
    if token
        .last_used_at
        .is_some_and(|at| now.saturating_sub(at) < LAST_USED_GRANULARITY_MS)
    {
        return Ok(());
    }
    conn.execute(
        "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1",
        params![token.id.as_str(), now],
    )?;
    token.last_used_at = Some(now);
    Ok(())
}

fn live_admins(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        "SELECT count(*) FROM api_tokens WHERE role = 'admin' AND revoked_at IS NULL",
        [],
        |r| r.get(0),
    )?)
}

fn insert(
    conn: &Connection,
    name: TokenName,
    role: TokenRole,
    service: Option<ServiceName>,
) -> Result<NewToken, StoreError> {
    let token = generate_token();
    let record = TokenRecord {
        id: TokenId::generate(),
        name,
        role,
        service,
        created_at: now_ms(),
        last_used_at: None,
        revoked_at: None,
    };
    conn.execute(
        "INSERT INTO api_tokens (id, hash, name, role, service, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            record.id.as_str(),
            hash_token(&token),
            record.name.as_str(),
            record.role.as_str(),
            record.service.as_ref().map(ServiceName::as_str),
            record.created_at
        ],
    )?;
    Ok(NewToken { token, record })
}

/// Revokes the live token `id` and ends the dashboard sessions it started; when.
fn revoke(conn: &Connection, id: &TokenId) -> Result<i64, StoreError> {
    let now = now_ms();
    conn.execute(
        "DELETE FROM sessions WHERE token_hash = (SELECT hash FROM api_tokens WHERE id = ?1)",
        params![id.as_str()],
    )?;
    conn.execute(
        "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id.as_str(), now],
    )?;
    Ok(now)
}

/// Revokes the live tokens for service `name`, which is being deleted, and ends their
/// sessions: a service made later under that name is another one, as Fly deletes an app's
/// tokens with the app.
pub(crate) fn revoke_for_service(conn: &Connection, name: &ServiceName) -> Result<(), StoreError> {
    conn.execute(
        "DELETE FROM sessions WHERE token_hash IN
             (SELECT hash FROM api_tokens WHERE service = ?1 AND revoked_at IS NULL)",
        params![name.as_str()],
    )?;
    conn.execute(
        "UPDATE api_tokens SET revoked_at = ?2 WHERE service = ?1 AND revoked_at IS NULL",
        params![name.as_str(), now_ms()],
    )?;
    Ok(())
}

impl Store {
    /// Creates the server's admin token (named `admin`) if there is no live admin token yet
    /// (a new database), and returns it in plain text: the only time it is ever available.
    pub fn ensure_admin_token(&self) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if live_admins(&tx)? > 0 {
            return Ok(None);
        }
        let new = insert(&tx, TokenName::admin(), TokenRole::Admin, None)?;
        tx.commit()?;
        Ok(Some(new.token))
    }

    /// Replaces the server's admin token (the one named `admin`): the old one is revoked and
    /// its sessions end; other tokens are left as they are.
    pub fn replace_admin_token(&self) -> Result<String, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let old: Option<String> = tx
            .query_row(
                "SELECT id FROM api_tokens WHERE name = ?1 AND revoked_at IS NULL",
                params![TokenName::ADMIN],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(old) = old {
            revoke(&tx, &parse(old, "token id")?)?;
        }
        let new = insert(&tx, TokenName::admin(), TokenRole::Admin, None)?;
        tx.commit()?;
        Ok(new.token)
    }

    /// Makes a token; its secret is in the answer and nowhere else.
    pub fn create_token(
        &self,
        name: TokenName,
        role: TokenRole,
        service: Option<ServiceName>,
    ) -> Result<Result<NewToken, TokenRefused>, StoreError> {
        if name.as_str() == TokenName::ADMIN {
            return Ok(Err(TokenRefused::ReservedName));
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let taken: Option<i64> = tx
            .query_row(
                "SELECT 1 FROM api_tokens WHERE name = ?1 AND revoked_at IS NULL",
                params![name.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        if taken.is_some() {
            return Ok(Err(TokenRefused::NameTaken(name)));
        }
        let new = insert(&tx, name, role, service)?;
        tx.commit()?;
        Ok(Ok(new))
    }

    /// Every live token, oldest first.
    pub fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM api_tokens WHERE revoked_at IS NULL ORDER BY created_at, rowid"
        ))?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(token_from(row)?);
        }
        Ok(out)
    }

    /// Revokes the live token `id`: requests made with it get `401` from now on, and the
    /// dashboard sessions it started end. The last live admin token cannot be revoked.
    pub fn revoke_token(
        &self,
        id: &TokenId,
    ) -> Result<Result<TokenRecord, TokenRefused>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let found = {
            let mut stmt = tx.prepare(&format!(
                "SELECT {COLUMNS} FROM api_tokens WHERE id = ?1 AND revoked_at IS NULL"
            ))?;
            let mut rows = stmt.query(params![id.as_str()])?;
            rows.next()?.map(token_from).transpose()?
        };
        let Some(mut record) = found else {
            return Ok(Err(TokenRefused::NotFound(id.clone())));
        };
        if record.role == TokenRole::Admin && live_admins(&tx)? <= 1 {
            return Ok(Err(TokenRefused::LastAdmin(id.clone())));
        }
        record.revoked_at = Some(revoke(&tx, id)?);
        tx.commit()?;
        Ok(Ok(record))
    }

    /// What the bearer token `token` is; a valid one's use is recorded.
    pub fn check_token(&self, token: &str) -> Result<TokenCheck, StoreError> {
        let conn = self.conn();
        Ok(match token_by_hash(&conn, &hash_token(token))? {
            None => TokenCheck::Unknown,
            Some(t) if t.revoked_at.is_some() => TokenCheck::Revoked(t),
            Some(mut t) => {
                touch(&conn, &mut t)?;
                TokenCheck::Valid(t)
            }
        })
    }

    /// Whether the token with this id exists and is not revoked (a stream opened with it asks
    /// again from time to time).
    pub fn token_is_live(&self, id: &TokenId) -> Result<bool, StoreError> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                "SELECT 1 FROM api_tokens WHERE id = ?1 AND revoked_at IS NULL",
                params![id.as_str()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Whether `token` is a live token.
    pub fn verify_token(&self, token: &str) -> Result<bool, StoreError> {
        Ok(matches!(self.check_token(token)?, TokenCheck::Valid(_)))
    }
}

#[cfg(test)]
mod tests;
