//! Answering requests from a manifest.
//!
//! Everything a response needs that does not depend on the request (header values, ETags,
//! lengths) is made once in [`Site::new`]; a request costs a path decode, one map lookup, a
//! few header comparisons and a `Bytes` clone of a cached body.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};

use crate::compress::Encoding;
use crate::hashed::is_hashed;
use crate::manifest::{Digest, FileEntry, Manifest};
use crate::rules::{self, Range};
use crate::{StaticError, Store, path};

/// Marks every answer the gateway gave from static files.
pub const STATIC_HEADER: HeaderName = HeaderName::from_static("x-hoist-static");
const HIT: HeaderValue = HeaderValue::from_static("hit");
const IMMUTABLE: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");
const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");
const VARY: HeaderValue = HeaderValue::from_static("Accept-Encoding");
const BYTES: HeaderValue = HeaderValue::from_static("bytes");

/// How a service's static files are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteConfig {
    /// The url prefix the folder is served under (`/`).
    pub prefix: String,
    /// A path matching no file and not looking like one serves the root `index.html`.
    pub spa: bool,
    /// `false`: a static-only site; a miss is a 404 and no instance ever runs.
    pub has_app: bool,
}

impl Default for SiteConfig {
    fn default() -> SiteConfig {
        SiteConfig {
            prefix: "/".into(),
            spa: false,
            has_app: true,
        }
    }
}

/// One stored representation, with its headers made.
struct Variant {
    encoding: Encoding,
    len: u64,
    etag: HeaderValue,
    content_length: HeaderValue,
}

/// A file as served.
struct Served {
    hash: Digest,
    size: u64,
    modified: u64,
    content_type: HeaderValue,
    last_modified: HeaderValue,
    cache_control: HeaderValue,
    identity: Variant,
    gzip: Option<Variant>,
    br: Option<Variant>,
}

impl Served {
    fn new(path: &str, entry: &FileEntry) -> Served {
        // 16 hex digits of the SHA-256 identify the bytes; the suffix tells the encodings
        // apart, since a cache must not take a gzip body for the brotli one.
        let hex = entry.hash.to_hex();
        let short = &hex[..16];
        let variant = |encoding: Encoding, len: u64| {
            let etag = match encoding.token() {
                None => format!("\"{short}\""),
                Some(token) => format!("\"{short}-{token}\""),
            };
            Variant {
                encoding,
                len,
                etag: HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\"")),
                content_length: HeaderValue::from(len),
            }
        };
        let modified = UNIX_EPOCH + Duration::from_secs(entry.modified);
        Served {
            hash: entry.hash,
            size: entry.size,
            modified: entry.modified,
            content_type: HeaderValue::from_str(&entry.content_type)
                .unwrap_or(HeaderValue::from_static("application/octet-stream")),
            last_modified: HeaderValue::from_str(&httpdate::fmt_http_date(modified))
                .unwrap_or(HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT")),
            cache_control: if is_hashed(path) { IMMUTABLE } else { NO_CACHE },
            identity: variant(Encoding::Identity, entry.size),
            gzip: entry.gzip.map(|n| variant(Encoding::Gzip, n)),
            br: entry.br.map(|n| variant(Encoding::Brotli, n)),
        }
    }

    fn has_variants(&self) -> bool {
        self.gzip.is_some() || self.br.is_some()
    }
}

/// A manifest's files by url path (prefix included).
type Files = HashMap<Box<str>, Arc<Served>>;

fn served(manifest: &Manifest, prefix: &str, only_hashed: bool) -> Files {
    manifest
        .entries()
        .filter(|(path, _)| !only_hashed || is_hashed(path))
        .map(|(path, entry)| {
            (
                format!("{prefix}{path}").into_boxed_str(),
                Arc::new(Served::new(path, entry)),
            )
        })
        .collect()
}

/// What the gateway asks: answer the request from the static files, or go to the app.
pub struct Site {
    store: Arc<Store>,
    config: SiteConfig,
    /// The prefix without its trailing `/` (`""` for the root).
    prefix: String,
    files: Files,
    /// Paths (`/docs`) of folders with an `index.html`, which redirect to `/docs/`.
    dirs: HashSet<Box<str>>,
    /// The root `index.html`, for the SPA fallback.
    root_index: Option<Arc<Served>>,
    /// The previous deployments' hashed files and when each stops answering.
    earlier: Vec<(Files, SystemTime)>,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("config", &self.config)
            .field("files", &self.files.len())
            .field("earlier", &self.earlier.len())
            .finish()
    }
}

impl Site {
    pub fn new(
        store: Arc<Store>,
        current: Manifest,
        config: SiteConfig,
    ) -> Result<Site, StaticError> {
        let prefix = config.prefix.trim_end_matches('/');
        let bad = |reason| StaticError::BadPrefix {
            prefix: config.prefix.clone(),
            reason,
        };
        if !config.prefix.starts_with('/') {
            return Err(bad("must start with '/'"));
        }
        if path::decode(prefix).is_err() && !prefix.is_empty() || prefix.contains(['%', '?', '#']) {
            return Err(bad(
                "must be a plain path (no '..', '%', '?', '#' or control bytes)",
            ));
        }
        let prefix = prefix.to_owned();
        let files = served(&current, &prefix, false);
        let dirs = files
            .keys()
            .filter_map(|path| path.strip_suffix("/index.html"))
            .filter(|dir| !dir.is_empty())
            .map(Box::from)
            .collect();
        let root_index = files.get(format!("{prefix}/index.html").as_str()).cloned();
        Ok(Site {
            store,
            prefix,
            files,
            dirs,
            root_index,
            config,
            earlier: Vec::new(),
        })
    }

    /// Keeps `earlier`'s hashed files answering until `until` (the 10-minute grace).
    pub fn with_earlier(mut self, earlier: Manifest, until: SystemTime) -> Site {
        self.earlier
            .push((served(&earlier, &self.prefix, true), until));
        self
    }

    pub fn config(&self) -> &SiteConfig {
        &self.config
    }

    /// `Some`: the static answer. `None`: not a static file; the request goes to the app.
    /// A static-only site (`has_app: false`) always answers.
    pub fn respond(&self, req: &Parts) -> Option<Response<Bytes>> {
        let head = req.method == Method::HEAD;
        if req.method != Method::GET && !head {
            return self.miss_with(StatusCode::METHOD_NOT_ALLOWED);
        }
        let Ok(decoded) = path::decode(req.uri.path()) else {
            return self.miss_with(StatusCode::NOT_FOUND);
        };
        let decoded: &str = &decoded;
        if !self.under_prefix(decoded) {
            return self.miss_with(StatusCode::NOT_FOUND);
        }
        if let Some(file) = self.find(decoded) {
            return Some(self.serve(file, req, head));
        }
        // `/docs` with a `/docs/index.html`: to `/docs/`, as nginx and most hosts do, so the
        // page's relative links resolve against the directory.
        if self.dirs.contains(decoded) {
            return Some(redirect(req));
        }
        // With an app behind the site, only a browser's navigation (it asks for HTML) gets the
        // page: `fetch('/api/users')` must still reach the app.
        if self.config.spa
            && !looks_like_a_file(decoded)
            && (!self.config.has_app || wants_html(&req.headers))
            && let Some(file) = &self.root_index
        {
            return Some(self.serve(file, req, head));
        }
        self.miss_with(StatusCode::NOT_FOUND)
    }

    fn under_prefix(&self, path: &str) -> bool {
        self.prefix.is_empty()
            || path
                .strip_prefix(self.prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    fn find(&self, path: &str) -> Option<&Served> {
        let index;
        let key = if path.ends_with('/') {
            index = format!("{path}index.html");
            index.as_str()
        } else if path == self.prefix {
            return None;
        } else {
            path
        };
        if let Some(file) = self.files.get(key) {
            return Some(file);
        }
        if self.earlier.is_empty() {
            return None;
        }
        let now = SystemTime::now();
        self.earlier
            .iter()
            .filter(|(_, until)| now < *until)
            .find_map(|(files, _)| files.get(key))
            .map(|file| &**file)
    }

    /// `None` to the app, or for a static-only site the answer itself.
    fn miss_with(&self, status: StatusCode) -> Option<Response<Bytes>> {
        if self.config.has_app {
            return None;
        }
        let mut resp = Response::new(Bytes::from_static(match status {
            StatusCode::METHOD_NOT_ALLOWED => b"Method not allowed\n",
            _ => b"Not found\n",
        }));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(header::CACHE_CONTROL, NO_CACHE);
        if status == StatusCode::METHOD_NOT_ALLOWED {
            h.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        h.insert(STATIC_HEADER, HIT);
        Some(resp)
    }

    fn serve(&self, file: &Served, req: &Parts, head: bool) -> Response<Bytes> {
        let range = if head {
            None
        } else {
            req.headers.get(header::RANGE)
        };
        let range = range.filter(|_| if_range_holds(file, &req.headers));
        let variant = match range {
            // Ranges are of the identity bytes: a client resuming a download must get the
            // same offsets whatever it negotiated the first time.
            Some(_) => &file.identity,
            None => {
                let accept = req
                    .headers
                    .get(header::ACCEPT_ENCODING)
                    .map(HeaderValue::as_bytes);
                match rules::choose_encoding(accept, file.br.is_some(), file.gzip.is_some()) {
                    Encoding::Brotli => file.br.as_ref().unwrap_or(&file.identity),
                    Encoding::Gzip => file.gzip.as_ref().unwrap_or(&file.identity),
                    Encoding::Identity => &file.identity,
                }
            }
        };
        let mut resp = Response::new(Bytes::new());
        let h = resp.headers_mut();
        h.reserve(10);
        h.insert(header::ETAG, variant.etag.clone());
        h.insert(header::LAST_MODIFIED, file.last_modified.clone());
        h.insert(header::CACHE_CONTROL, file.cache_control.clone());
        if file.has_variants() {
            h.insert(header::VARY, VARY);
        }
        h.insert(STATIC_HEADER, HIT);
        if not_modified(file, variant, &req.headers) {
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
            return resp;
        }
        h.insert(header::CONTENT_TYPE, file.content_type.clone());
        if let Some(token) = variant.encoding.token() {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(token));
        } else {
            h.insert(header::ACCEPT_RANGES, BYTES);
        }
        let range = range.map(|r| rules::parse_range(r.as_bytes(), file.size));
        let (start, end) = match range {
            None | Some(Range::Ignore) => (0, variant.len),
            Some(Range::Unsatisfiable) => {
                *resp.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                let h = resp.headers_mut();
                h.insert(
                    header::CONTENT_RANGE,
                    header_value(format!("bytes */{}", file.size)),
                );
                return resp;
            }
            Some(Range::Satisfiable { start, end }) => {
                *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
                let h = resp.headers_mut();
                h.insert(
                    header::CONTENT_RANGE,
                    header_value(format!("bytes {start}-{end}/{}", file.size)),
                );
                (start, end + 1)
            }
        };
        let h = resp.headers_mut();
        if (start, end) == (0, variant.len) {
            h.insert(header::CONTENT_LENGTH, variant.content_length.clone());
        } else {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
        }
        if head {
            return resp;
        }
        match self.store.body(&file.hash, variant.encoding, variant.len) {
            Ok(body) => {
                *resp.body_mut() = body.slice(start as usize..end as usize);
                resp
            }
            Err(e) => {
                tracing::warn!(error = %e, "static file unreadable");
                let mut resp = Response::new(Bytes::from_static(b"Static file unreadable\n"));
                *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                resp.headers_mut().insert(STATIC_HEADER, HIT);
                resp
            }
        }
    }
}

fn header_value(s: String) -> HeaderValue {
    HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static(""))
}

/// `If-None-Match` decides when present; otherwise `If-Modified-Since`.
fn not_modified(file: &Served, variant: &Variant, headers: &HeaderMap) -> bool {
    if let Some(inm) = headers.get(header::IF_NONE_MATCH) {
        return rules::none_match(inm.as_bytes(), variant.etag.as_bytes());
    }
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .and_then(|since| since.duration_since(UNIX_EPOCH).ok())
        .is_some_and(|since| file.modified <= since.as_secs())
}

/// `If-Range`: the range applies only to the representation the client has (its strong
/// ETag, or exactly its Last-Modified date); otherwise the whole file is sent.
fn if_range_holds(file: &Served, headers: &HeaderMap) -> bool {
    match headers.get(header::IF_RANGE) {
        None => true,
        Some(v) => v == file.identity.etag || v == file.last_modified,
    }
}

/// A browser navigating sends `Accept: text/html,...`; API clients send `*/*` or JSON.
fn wants_html(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().any(|v| {
        v.as_bytes()
            .windows(9)
            .any(|w| w.eq_ignore_ascii_case(b"text/html"))
    })
}

/// The last segment has an extension (`/app.js`, not `/users/42`).
fn looks_like_a_file(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|last| last.contains('.'))
}

fn redirect(req: &Parts) -> Response<Bytes> {
    let location = match req.uri.query() {
        Some(q) => format!("{}/?{q}", req.uri.path()),
        None => format!("{}/", req.uri.path()),
    };
    let mut resp = Response::new(Bytes::new());
    *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
    let h = resp.headers_mut();
    h.insert(header::LOCATION, header_value(location));
    h.insert(header::CACHE_CONTROL, NO_CACHE);
    h.insert(STATIC_HEADER, HIT);
    resp
}
