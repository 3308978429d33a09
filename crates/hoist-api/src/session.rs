//! `/v1/session`: the dashboard's sign-in. The page trades an API token for an `HttpOnly`
//! cookie once, so the token never sits where the page's scripts (or an injected one) could
//! read it; see [`crate::auth`] for how the cookie is checked.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use hoist_api_types::{ApiErrorBody, SessionInfo, SessionRequest};

use crate::auth::{Auth, COOKIE, SESSION_TTL, session_cookie};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

/// The `Set-Cookie` of the session. Served through a TLS-terminating proxy (which says so
/// in `X-Forwarded-Proto`), the cookie is also `Secure`: the browser then never sends it over
/// plain HTTP. On plain loopback HTTP it cannot be, or the browser would drop it.
fn set_cookie(
    headers: &HeaderMap,
    value: &str,
    max_age_secs: u64,
) -> (header::HeaderName, HeaderValue) {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    let secure = if https { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_secs}{secure}"
    );
    // The value is hex (or empty): always a valid header value.
    let value = HeaderValue::from_str(&cookie).unwrap_or(HeaderValue::from_static(""));
    (header::SET_COOKIE, value)
}

/// Signs in: starts a session for an API token and sets its cookie (`HttpOnly`,
/// `SameSite=Strict`, 7 days). Needs no other credentials.
#[utoipa::path(post, path = "/session", operation_id = "createSession", tag = "session",
    security(()),
    request_body = SessionRequest,
    responses(
        (status = 200, description = "Signed in; the cookie `hoist_session` is set",
            body = SessionInfo,
            headers(("Set-Cookie" = String, description = "hoist_session=...; HttpOnly; SameSite=Strict; Path=/; Max-Age=604800"))),
        (status = 401, description = "The token is not valid", body = ApiErrorBody),
        (status = 403, description = "Sent from another site", body = ApiErrorBody)))]
pub(crate) async fn create_session(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SessionRequest>,
) -> ApiResult<Response> {
    let token = req.token.trim();
    let file = s.admin_token_file.display();
    if token.is_empty() {
        return Err(ApiError::bad_request(format!(
            "`token` is empty: paste the admin token (in {file} on the server) or another API token"
        ))
        .with_field("token"));
    }
    let ttl_ms = SESSION_TTL.as_millis() as i64;
    let Some(session) = s.platform.store().create_session(token, ttl_ms)? else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            format!(
                "this token is not valid: use the admin token (the file {file} on the server) \
                 or another API token"
            ),
        )
        .with_field("token"));
    };
    tracing::info!("dashboard session started");
    Ok((
        [set_cookie(&headers, &session.id, SESSION_TTL.as_secs())],
        Json(SessionInfo {
            csrf_token: session.record.csrf_token,
            expires_at: session.record.expires_at,
            role: session.record.principal.role,
            service: session.record.principal.service,
        }),
    )
        .into_response())
}

/// The session the cookie stands for (`401` without one). Authed by a bearer token instead,
/// the answer has no CSRF token and no end.
#[utoipa::path(get, path = "/session", operation_id = "getSession", tag = "session",
    responses((status = 200, description = "The session", body = SessionInfo)))]
pub(crate) async fn get_session(Extension(auth): Extension<Auth>) -> Json<SessionInfo> {
    let principal = auth.principal().clone();
    let (csrf_token, expires_at) = match auth {
        Auth::Session { record, .. } => (record.csrf_token, record.expires_at),
        Auth::Bearer(_) => (String::new(), 0),
    };
    Json(SessionInfo {
        csrf_token,
        expires_at,
        role: principal.role,
        service: principal.service,
    })
}

/// Signs out: ends the session on the server and clears the cookie.
#[utoipa::path(delete, path = "/session", operation_id = "deleteSession", tag = "session",
    responses((status = 204, description = "Signed out")))]
pub(crate) async fn delete_session(
    State(s): State<Arc<AppState>>,
    Extension(auth): Extension<Auth>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    // Authed by a bearer token, the request may still carry a cookie to end.
    let id = match &auth {
        Auth::Session { id, .. } => Some(id.as_str()),
        Auth::Bearer(_) => session_cookie(&headers),
    };
    if let Some(id) = id {
        s.platform.store().delete_session(id)?;
    }
    Ok((StatusCode::NO_CONTENT, [set_cookie(&headers, "", 0)]).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_secure_behind_a_tls_proxy_only() {
        let plain = set_cookie(&HeaderMap::new(), "ab", 60).1;
        assert_eq!(
            plain,
            "hoist_session=ab; HttpOnly; SameSite=Strict; Path=/; Max-Age=60"
        );
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let tls = set_cookie(&h, "ab", 60).1;
        assert!(tls.to_str().unwrap().ends_with("; Secure"), "{tls:?}");
    }
}
