//! The web dashboard: `ui/dist` (the Vite build of `ui/`), embedded in the binary at compile
//! time, so the server needs nothing beside itself and no network. What the API listener
//! answers for a GET or HEAD that is not the API's ([`respond`]):
//! - a file of `ui/dist`: that file; Vite's content-hashed `/assets/*` may be cached for good,
//!   the others are revalidated (`ETag`) on each use;
//! - a missing `/assets/...`, or any missing path whose last segment has a `.`: `404` (a stale
//!   page asking for an old bundle, or an icon loader, must not get HTML);
//! - any other path: `index.html`, whose script routes on the client (`/services/x/logs`).
//!
//! Compressible files are sent gzip-compressed when the client takes it, compressed once per
//! file on first use and kept.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../../ui/dist"]
// `cargo build` works before the UI was ever built: the dashboard then says how to build it.
#[allow_missing = true]
struct Dist;

/// Cache lifetime of a content-hashed asset: its name changes with its content.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Everything else is checked with the server on each use (a cheap 304 with the ETag), so a
/// new binary's page is picked up at once.
const REVALIDATE: &str = "no-cache";

const NOT_BUILT: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Hoist: dashboard not built</title></head><body><h1>The dashboard was not built</h1>\
<p>This hoist binary was compiled before <code>ui/dist</code> existed: run \
<code>scripts/setup.sh</code> (it builds the UI), then build hoist again. The API is at \
<code>/v1</code>, described by <a href=\"/openapi.json\">/openapi.json</a>.</p></body></html>\n";

/// Whether the dashboard was embedded (`ui/dist` existed when this binary was built).
pub fn is_built() -> bool {
    Dist::get("index.html").is_some()
}

/// One embedded file, ready to send.
struct Entry {
    data: Bytes,
    /// `Some` when the file is worth compressing and gzip made it smaller.
    gzip: Option<Bytes>,
    mime: String,
    /// From the content's SHA-256 (rust-embed computes it at build time).
    etag: String,
}

fn compressible(mime: &str) -> bool {
    mime.starts_with("text/")
        || mime.contains("javascript")
        || mime.contains("json")
        || mime.contains("svg")
        || mime.contains("xml")
        || mime == "application/wasm"
}

fn gzip(data: &[u8]) -> Option<Bytes> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).ok()?;
    let out = enc.finish().ok()?;
    (out.len() < data.len()).then(|| Bytes::from(out))
}

/// The file at `path` (relative to `ui/dist`), built once and kept.
fn entry(path: &str) -> Option<Arc<Entry>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Entry>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(e) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(path) {
        return Some(e.clone());
    }
    let file = Dist::get(path)?;
    let mime = file.metadata.mimetype();
    // Vite writes UTF-8; without the charset a browser may guess another for text.
    let mime = if mime.starts_with("text/") && !mime.contains("charset") {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    let data = match file.data {
        Cow::Borrowed(b) => Bytes::from_static(b),
        Cow::Owned(v) => Bytes::from(v),
    };
    // Compressed outside the lock: two first requests may both do it, which is harmless.
    let gzip = compressible(&mime).then(|| gzip(&data)).flatten();
    let hash = file.metadata.sha256_hash();
    let entry = Arc::new(Entry {
        etag: format!("\"{}\"", hex::encode(&hash[..16])),
        data,
        gzip,
        mime,
    });
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(path.to_string(), entry.clone());
    Some(entry)
}

/// Whether `Accept-Encoding` takes `coding`: its own entry decides (refused with `q=0`), and
/// without one, `*` does.
fn accepts(headers: &HeaderMap, coding: &str) -> bool {
    let mut wildcard = None;
    for item in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| {
            let p = p.trim();
            p.get(..2).is_some_and(|k| k.eq_ignore_ascii_case("q="))
                && p[2..].trim().parse::<f32>().is_ok_and(|q| q == 0.0)
        });
        if name.eq_ignore_ascii_case(coding) {
            return !refused;
        }
        if name == "*" {
            wildcard = Some(!refused);
        }
    }
    wildcard.unwrap_or(false)
}

/// Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110 asks for a GET).
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

fn send(entry: &Entry, cache_control: &'static str, headers: &HeaderMap) -> Response {
    let gz = entry.gzip.as_ref().filter(|_| accepts(headers, "gzip"));
    // Each representation has its own tag: a cache must not answer a gzip request with a
    // 304 for the plain one.
    let etag = match gz {
        Some(_) => format!("{}-gzip\"", entry.etag.trim_end_matches('"')),
        None => entry.etag.clone(),
    };
    let mut b = Response::builder()
        .header(header::CACHE_CONTROL, cache_control)
        .header(header::ETAG, &etag);
    if entry.gzip.is_some() {
        b = b.header(header::VARY, "Accept-Encoding");
    }
    if not_modified(headers, &etag) {
        return b
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_default();
    }
    b = b.header(header::CONTENT_TYPE, &entry.mime);
    let body = match gz {
        Some(z) => {
            b = b.header(header::CONTENT_ENCODING, "gzip");
            z.clone()
        }
        None => entry.data.clone(),
    };
    b.header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .unwrap_or_default()
}

fn plain(status: StatusCode, content_type: &'static str, body: &'static str) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(REVALIDATE));
    r
}

/// The answer to a GET or HEAD of `path` (the URL's path, without the query) that is not
/// one of the API's.
pub fn respond(path: &str, headers: &HeaderMap) -> Response {
    let rel = path.trim_start_matches('/');
    // A name of `ui/dist` (never `..`: rust-embed only knows the files it embedded).
    if !rel.is_empty()
        && let Some(e) = entry(rel)
    {
        let cache = if rel.starts_with("assets/") {
            IMMUTABLE
        } else {
            REVALIDATE
        };
        return send(&e, cache, headers);
    }
    // A missing asset, or a missing file anywhere (`/favicon.ico`, `/robots.txt`): answering
    // index.html would hand a script or an icon loader HTML, refused under `nosniff`.
    let last = rel.rsplit('/').next().unwrap_or("");
    if rel.starts_with("assets/") || last.contains('.') {
        return plain(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "no such asset: the page may be older than the server; reload it\n",
        );
    }
    match entry("index.html") {
        Some(e) => send(&e, REVALIDATE, headers),
        None => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/html; charset=utf-8",
            NOT_BUILT,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn accept_encoding_is_read_with_its_q_values() {
        assert!(accepts(
            &headers(&[("accept-encoding", "gzip, deflate, br")]),
            "gzip"
        ));
        assert!(accepts(
            &headers(&[("accept-encoding", "br;q=1, GZIP;q=0.5")]),
            "gzip"
        ));
        assert!(accepts(&headers(&[("accept-encoding", "*")]), "gzip"));
        assert!(!accepts(
            &headers(&[("accept-encoding", "gzip;q=0, br")]),
            "gzip"
        ));
        assert!(!accepts(
            &headers(&[("accept-encoding", "identity")]),
            "gzip"
        ));
        assert!(!accepts(&HeaderMap::new(), "gzip"));
        // Its own entry wins over `*`, in either order, and `Q=0` refuses as `q=0` does.
        assert!(!accepts(
            &headers(&[("accept-encoding", "gzip;q=0, *")]),
            "gzip"
        ));
        assert!(!accepts(
            &headers(&[("accept-encoding", "*, gzip;Q=0")]),
            "gzip"
        ));
    }

    #[test]
    fn if_none_match_compares_weakly() {
        let tag = "\"abc\"";
        assert!(not_modified(
            &headers(&[("if-none-match", "\"x\", W/\"abc\"")]),
            tag
        ));
        assert!(not_modified(&headers(&[("if-none-match", "*")]), tag));
        assert!(!not_modified(
            &headers(&[("if-none-match", "\"abcd\"")]),
            tag
        ));
    }

    #[test]
    fn gzip_is_kept_only_when_smaller() {
        let text = "let x = 1;\n".repeat(200);
        let z = gzip(text.as_bytes()).unwrap();
        assert!(z.len() < text.len() / 5);
        assert!(gzip(b"ab").is_none());
        assert!(compressible("text/javascript") && compressible("image/svg+xml"));
        assert!(!compressible("image/png") && !compressible("font/woff2"));
    }

    #[test]
    fn a_missing_asset_is_404_and_without_a_build_every_page_says_how_to_build() {
        let r = respond("/assets/index-0000.js", &HeaderMap::new());
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        // Nor does a missing file outside assets/ get the page as HTML.
        for missing in ["/robots.txt", "/favicon.ico", "/services/x/sw.js"] {
            assert_eq!(
                respond(missing, &HeaderMap::new()).status(),
                StatusCode::NOT_FOUND,
                "{missing}"
            );
        }
        if !is_built() {
            let r = respond("/services/x/logs", &HeaderMap::new());
            assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
    }

    #[tokio::test]
    async fn with_a_build_client_routes_get_index_html_and_assets_are_immutable() {
        if !is_built() {
            // The e2e suite checks this against a binary built with the UI.
            return;
        }
        let r = respond("/services/x/logs", &HeaderMap::new());
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
        let etag = r.headers()[header::ETAG].clone();
        let body = http_body_util::BodyExt::collect(r.into_body())
            .await
            .unwrap()
            .to_bytes();
        let html = String::from_utf8_lossy(&body);
        assert!(html.contains("<div id=\"app\">"), "{html}");
        // Revalidation: the same tag is a 304.
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(respond("/", &h).status(), StatusCode::NOT_MODIFIED);
        let asset = Dist::iter().find(|p| p.starts_with("assets/") && p.ends_with(".js"));
        let asset = asset.expect("a built UI has a script in assets/");
        let r = respond(
            &format!("/{asset}"),
            &headers(&[("accept-encoding", "gzip")]),
        );
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CACHE_CONTROL], IMMUTABLE);
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(r.headers()[header::VARY], "Accept-Encoding");
        assert!(
            r.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .contains("javascript")
        );
    }
}
