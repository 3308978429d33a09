//! Static assets of a deployment, served by the gateway without waking the app.
//!
//! At deploy, [`Store::ingest`] walks the build's static folder (never following a symlink out
//! of it), stores every file once by its SHA-256 with gzip and brotli variants kept where they
//! are smaller, and returns a [`Manifest`]: url path -> file. The gateway asks a [`Site`] (a
//! manifest, its settings, and the previous deployment's manifest for a grace time) to answer
//! each request, before any instance is involved.
//!
//! Path safety is by construction: a request is only ever looked up in the manifest, whose
//! keys were made from file names found inside the folder; objects are named by their hash.
//! No file system path is ever built from a request.

mod cache;
mod compress;
mod detect;
mod error;
mod hashed;
mod manifest;
mod mapped;
mod path;
mod rules;
mod site;
mod store;
mod walk;

pub use detect::{Detected, Layout, Mount, detect};
pub use error::StaticError;
pub use manifest::{Digest, FileEntry, Manifest, ManifestId, SkipReason, Skipped};
pub use mapped::mapped_file;
pub use site::{STATIC_HEADER, Site, SiteConfig};
pub use store::Store;

/// How much one static folder may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_files: u64,
}

impl Limits {
    pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;
    pub const DEFAULT_MAX_FILES: u64 = 100_000;
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_bytes: Limits::DEFAULT_MAX_BYTES,
            max_files: Limits::DEFAULT_MAX_FILES,
        }
    }
}

#[cfg(test)]
mod tests;
