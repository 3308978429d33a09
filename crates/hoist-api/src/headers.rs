//! The headers every answer of the API listener carries (API and dashboard alike), and which
//! paths are the API's.

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;

/// The dashboard loads only its own files: no inline script or style, no other origin, no
/// framing (clickjacking), forms post only here. JSON answers carry it too: it costs nothing
/// and covers an API answer opened in the browser.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; font-src 'self'; connect-src 'self'; manifest-src 'self'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const HEADERS: [(HeaderName, &str); 4] = [
    (header::CONTENT_SECURITY_POLICY, CSP),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "same-origin"),
];

pub(crate) async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    for (name, value) in HEADERS {
        h.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The paths the API answers itself (with JSON, a `404` when unknown); every other GET is the
/// dashboard's.
pub(crate) fn is_api_path(path: &str) -> bool {
    path == "/v1"
        || path.starts_with("/v1/")
        || path.starts_with("/hooks/")
        || ["/openapi.json", "/healthz", "/metrics"].contains(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_stay_the_apis() {
        for p in ["/v1", "/v1/nope", "/openapi.json", "/healthz", "/metrics"] {
            assert!(is_api_path(p), "{p}");
        }
        for p in [
            "/",
            "/login",
            "/services/x/logs",
            "/v1x",
            "/assets/a.js",
            "/metricsx",
        ] {
            assert!(!is_api_path(p), "{p}");
        }
    }
}
