//! Who a request is from. Everything behind the middleware needs `Authorization: Bearer
//! <token>` or the dashboard's session cookie. The cookie is sent by the browser on its own,
//! also with requests another site makes it send, so a request authed by the cookie that
//! changes anything (any method but GET and HEAD) must also prove it comes from the page: the
//! session's CSRF token in `X-CSRF-Token`, and an `Origin`, when the browser sends one, of
//! this server.
//!
//! Either way the request is made by a token, whose [`Principal`] (role and service) the
//! layer puts into the request's extensions and checks against the route's line in
//! [`crate::permissions::ROUTES`].

use std::sync::Arc;

use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hoist_core::{Principal, ServiceName};
use hoist_store::{SessionRecord, Store, TokenCheck};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::permissions::{self, Target};
use crate::state::AppState;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "hoist_session";
/// The header a cookie-authed state-changing request carries the CSRF token in.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts.
pub(crate) const SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

/// How a request was authed, for the handlers that care (`/v1/session`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Auth {
    Bearer(Principal),
    Session { id: String, record: SessionRecord },
}

impl Auth {
    /// Whether the credential is still good: its token not revoked, its session not ended.
    /// A stream (opened once, kept for hours) asks this from time to time and ends when not;
    /// a store error counts as no (the client reconnects and is answered afresh).
    pub(crate) fn still_valid(&self, store: &Store) -> bool {
        match self {
            Auth::Bearer(p) => store.token_is_live(&p.token).unwrap_or(false),
            Auth::Session { id, .. } => store.session(id).ok().flatten().is_some(),
        }
    }

    /// The token the request is made by: the bearer token, or the one that started the session.
    pub(crate) fn principal(&self) -> &Principal {
        match self {
            Auth::Bearer(p) => p,
            Auth::Session { record, .. } => &record.principal,
        }
    }
}

/// The bearer token of `headers`, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The values of the session cookies in `headers`, in the order sent.
fn session_cookies(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// The value of the (first) session cookie in `headers`, if any.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    session_cookies(headers).next()
}

/// Most session cookies of one request looked up: a browser sends one, or a few when a
/// sibling site planted others.
const MAX_SESSION_COOKIES: usize = 4;

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, message)
}

/// Whether `Origin` (when sent) names the host the request was sent to. Browsers send
/// `Origin` with every cross-site request that is not a plain GET, and `Host` is the address
/// in the browser's bar; a proxy in front may rewrite `Host` and say the original in
/// `X-Forwarded-Host` (a header no cross-site page can set without the server's consent).
pub(crate) fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    let host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    let matches = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .zip(host)
            .is_some_and(|(h, o)| h.trim().eq_ignore_ascii_case(o))
    };
    if matches(header::HOST.as_str()) || matches("x-forwarded-host") {
        Ok(())
    } else {
        Err(forbidden(format!(
            "cross-site request refused: Origin '{}' is not this server; the dashboard's \
             requests must come from its own pages",
            hoist_core::echo(origin)
        )))
    }
}

/// Decides whether a request with `method` and `headers` may go on, and as whom.
pub(crate) fn authorize(
    store: &Store,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Auth, ApiError> {
    if let Some(token) = bearer(headers) {
        return match store.check_token(token)? {
            TokenCheck::Valid(t) => Ok(Auth::Bearer(t.principal())),
            TokenCheck::Revoked(t) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                format!(
                    "this API token ({}, '{}') was revoked{}: ask an admin for a new one",
                    t.id,
                    t.name,
                    t.revoked_at
                        .and_then(|at| jiff::Timestamp::from_millisecond(at).ok())
                        .map(|at| format!(" at {}", at.round(jiff::Unit::Second).unwrap_or(at)))
                        .unwrap_or_default()
                ),
            )),
            TokenCheck::Unknown => {
                Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid API token"))
            }
        };
    }
    if session_cookie(headers).is_none() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing bearer token (set HOIST_TOKEN or use the server's admin-token file), or \
             no session (sign in at /login)",
        ));
    }
    // An app at NAME.<domain> is the same site as the dashboard on a sibling name, and may set
    // a `hoist_session` cookie of its own (for `Path=/v1`) that the browser sends before the
    // real one: the first cookie naming a live session counts, so a planted one cannot lock
    // the user out.
    let mut live = None;
    for id in session_cookies(headers).take(MAX_SESSION_COOKIES) {
        if let Some(record) = store.session(id)? {
            live = Some((id, record));
            break;
        }
    }
    let Some((id, record)) = live else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the session has ended (signed out, expired, or its token was replaced): sign in \
             again at /login",
        ));
    };
    if !(method == Method::GET || method == Method::HEAD) {
        same_origin(headers)?;
        let sent = headers.get(CSRF_HEADER).map(|v| v.as_bytes());
        match sent {
            None => {
                return Err(forbidden(
                    "missing X-CSRF-Token header: a request made with the session cookie that \
                     changes anything must send the session's csrf_token (from GET /v1/session)",
                ));
            }
            Some(sent) if !bool::from(sent.ct_eq(record.csrf_token.as_bytes())) => {
                return Err(forbidden(
                    "X-CSRF-Token is not this session's csrf_token (GET /v1/session has it)",
                ));
            }
            Some(_) => {}
        }
    }
    Ok(Auth::Session {
        id: id.to_string(),
        record,
    })
}

/// What the permission check asks of a request: its path parameters, and the store for the
/// service a deployment belongs to.
struct RequestTarget<'a> {
    store: &'a Store,
    params: Option<&'a RawPathParams>,
}

impl Target for RequestTarget<'_> {
    fn param(&self, key: &str) -> Option<&str> {
        self.params?.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    fn deployment_service(&self, id: &str) -> Result<Option<ServiceName>, ()> {
        // Not an id at all: no such deployment (the handler says what is wrong with it).
        let Ok(id) = id.parse() else { return Ok(None) };
        match self.store.get_deployment(&id) {
            Ok(d) => Ok(d.map(|d| d.service)),
            Err(e) => {
                tracing::warn!(error = %e, "reading a deployment to check a token");
                Err(())
            }
        }
    }
}

/// The middleware in front of every authed route: it authenticates the request, checks its
/// token against the route's line of the permission table, and leaves the [`Auth`] and the
/// [`Principal`] in the request's extensions. `POST /v1/session` is what makes a session: it
/// needs no credentials.
pub(crate) async fn require_auth(
    State(state): State<Arc<AppState>>,
    route: Option<MatchedPath>,
    params: Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
    mut req: Request,
    next: Next,
) -> Response {
    if req.method() == Method::POST && req.uri().path() == "/v1/session" {
        // A sign-in from another site would sign the browser into the attacker's account.
        if let Err(e) = same_origin(req.headers()) {
            return e.into_response();
        }
        return next.run(req).await;
    }
    let store = state.platform.store();
    let auth = match authorize(store, req.method(), req.headers()) {
        Ok(auth) => auth,
        Err(e) => return e.into_response(),
    };
    let rule = permissions::rule(
        req.method().as_str(),
        route.as_ref().map(MatchedPath::as_str),
    );
    let target = RequestTarget {
        store,
        params: params.as_ref().ok(),
    };
    let principal = auth.principal().clone();
    if let Err(denied) = permissions::check(&principal, rule, &target) {
        return forbidden(denied.0).into_response();
    }
    req.extensions_mut().insert(auth);
    req.extensions_mut().insert(principal);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    struct Fixture {
        store: Store,
        token: String,
        dir: std::path::PathBuf,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn fixture(test: &str) -> Fixture {
        let dir =
            std::env::temp_dir().join(format!("hoist-api-auth-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("db")).unwrap();
        let token = store.ensure_admin_token().unwrap().unwrap();
        Fixture { store, token, dir }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn status(r: Result<Auth, ApiError>) -> (u16, String) {
        match r {
            Ok(_) => (200, String::new()),
            Err(e) => (e.status.as_u16(), e.error),
        }
    }

    #[test]
    fn a_bearer_token_is_checked_and_needs_no_csrf() {
        let f = fixture("bearer");
        let ok = headers(&[("authorization", &format!("Bearer {}", f.token))]);
        match authorize(&f.store, &Method::POST, &ok).unwrap() {
            Auth::Bearer(p) => assert_eq!(p.role, hoist_core::TokenRole::Admin),
            other => panic!("{other:?}"),
        }
        let bad = headers(&[("authorization", "Bearer hoist_nope")]);
        assert_eq!(status(authorize(&f.store, &Method::GET, &bad)).0, 401);
        let (code, msg) = status(authorize(&f.store, &Method::GET, &HeaderMap::new()));
        assert_eq!(code, 401);
        assert!(msg.contains("missing bearer token"), "{msg}");
    }

    #[test]
    fn the_cookie_reads_freely_but_changes_only_with_csrf_and_same_origin() {
        let f = fixture("cookie");
        let s = f.store.create_session(&f.token, 60_000).unwrap().unwrap();
        let cookie = format!("theme=dark; {COOKIE}={}", s.id);
        let csrf = s.record.csrf_token.as_str();
        let host = ("host", "127.0.0.1:7070");
        // GET (an EventSource too) with the cookie alone.
        let get = headers(&[("cookie", &cookie), host]);
        assert!(matches!(
            authorize(&f.store, &Method::GET, &get),
            Ok(Auth::Session { .. })
        ));
        // A change without the CSRF token, or with a wrong one.
        let (code, msg) = status(authorize(&f.store, &Method::PATCH, &get));
        assert_eq!(code, 403);
        assert!(msg.contains("missing X-CSRF-Token"), "{msg}");
        let wrong = headers(&[("cookie", &cookie), host, ("x-csrf-token", "0000")]);
        let (code, msg) = status(authorize(&f.store, &Method::DELETE, &wrong));
        assert_eq!(code, 403);
        assert!(msg.contains("not this session's csrf_token"), "{msg}");
        // With it: allowed, with or without a same-origin Origin.
        let ok = headers(&[("cookie", &cookie), host, ("x-csrf-token", csrf)]);
        assert!(authorize(&f.store, &Method::POST, &ok).is_ok());
        let same = headers(&[
            ("cookie", &cookie),
            host,
            ("x-csrf-token", csrf),
            ("origin", "http://127.0.0.1:7070"),
        ]);
        assert!(authorize(&f.store, &Method::POST, &same).is_ok());
        // From another site, even with the token: refused.
        for origin in ["http://evil.example", "null", "http://127.0.0.1:7071"] {
            let cross = headers(&[
                ("cookie", &cookie),
                host,
                ("x-csrf-token", csrf),
                ("origin", origin),
            ]);
            let (code, msg) = status(authorize(&f.store, &Method::POST, &cross));
            assert_eq!(code, 403, "{origin}");
            assert!(msg.contains("cross-site request refused"), "{msg}");
        }
        // Behind a proxy that rewrote Host.
        let proxied = headers(&[
            ("cookie", &cookie),
            ("host", "127.0.0.1:7070"),
            ("x-forwarded-host", "hoist.example.com"),
            ("x-csrf-token", csrf),
            ("origin", "https://hoist.example.com"),
        ]);
        assert!(authorize(&f.store, &Method::POST, &proxied).is_ok());
    }

    #[test]
    fn a_cookie_planted_before_the_real_one_does_not_lock_the_user_out() {
        let f = fixture("planted");
        let s = f.store.create_session(&f.token, 60_000).unwrap().unwrap();
        // What a browser sends when a sibling app set `hoist_session` for Path=/v1: the more
        // specific path first.
        let cookie = format!("{COOKIE}=planted; {COOKIE}={}", s.id);
        let get = headers(&[("cookie", &cookie), ("host", "127.0.0.1:7070")]);
        match authorize(&f.store, &Method::GET, &get) {
            Ok(Auth::Session { id, .. }) => assert_eq!(id, s.id),
            other => panic!("{other:?}"),
        }
        // Only planted ones: no session.
        let only = headers(&[("cookie", &format!("{COOKIE}=a; {COOKIE}=b"))]);
        assert_eq!(status(authorize(&f.store, &Method::GET, &only)).0, 401);
    }

    #[test]
    fn an_ended_expired_or_revoked_session_is_401() {
        let f = fixture("ended");
        let expired = f.store.create_session(&f.token, 0).unwrap().unwrap();
        let h = headers(&[("cookie", &format!("{COOKIE}={}", expired.id))]);
        let (code, msg) = status(authorize(&f.store, &Method::GET, &h));
        assert_eq!(code, 401);
        assert!(msg.contains("the session has ended"), "{msg}");

        let s = f.store.create_session(&f.token, 60_000).unwrap().unwrap();
        let h = headers(&[("cookie", &format!("{COOKIE}={}", s.id))]);
        assert!(authorize(&f.store, &Method::GET, &h).is_ok());
        f.store.replace_admin_token().unwrap();
        assert_eq!(status(authorize(&f.store, &Method::GET, &h)).0, 401);

        let h = headers(&[("cookie", &format!("{COOKIE}=made-up"))]);
        assert_eq!(status(authorize(&f.store, &Method::GET, &h)).0, 401);
    }

    #[test]
    fn a_request_is_made_by_its_tokens_principal_and_a_revoked_token_is_told_so() {
        let f = fixture("principal");
        let ci = f
            .store
            .create_token(
                "ci".parse().unwrap(),
                hoist_core::TokenRole::Deploy,
                Some("web".parse().unwrap()),
            )
            .unwrap()
            .unwrap();
        let bearer = headers(&[("authorization", &format!("Bearer {}", ci.token))]);
        let auth = authorize(&f.store, &Method::GET, &bearer).unwrap();
        assert_eq!(auth.principal(), &ci.record.principal());
        // A session started with the token is the token.
        let s = f.store.create_session(&ci.token, 60_000).unwrap().unwrap();
        let cookie = headers(&[("cookie", &format!("{COOKIE}={}", s.id))]);
        let auth = authorize(&f.store, &Method::GET, &cookie).unwrap();
        assert!(matches!(auth, Auth::Session { .. }));
        assert_eq!(auth.principal(), &ci.record.principal());

        f.store.revoke_token(&ci.record.id).unwrap().unwrap();
        let (code, msg) = status(authorize(&f.store, &Method::GET, &bearer));
        assert_eq!(code, 401);
        assert!(
            msg.starts_with(&format!(
                "this API token ({}, 'ci') was revoked at 20",
                ci.record.id
            )),
            "{msg}"
        );
        assert_eq!(status(authorize(&f.store, &Method::GET, &cookie)).0, 401);
    }
}
