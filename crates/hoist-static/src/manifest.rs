//! What a static folder holds: url path -> stored file.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::StaticError;

/// A SHA-256: the name of a stored object. Kept as bytes (a cache key copied per lookup
/// must not allocate), written as lowercase hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest([u8; 32]);

impl Digest {
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Digest {
        Digest(bytes)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl TryFrom<String> for Digest {
    type Error = StaticError;
    fn try_from(s: String) -> Result<Digest, StaticError> {
        let mut d = [0u8; 32];
        match hex::decode_to_slice(&s, &mut d) {
            Ok(()) => Ok(Digest(d)),
            Err(_) => Err(StaticError::BadDigest(s)),
        }
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.to_hex()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A saved manifest's id: the SHA-256 of its JSON, so saving the same manifest twice is one
/// file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ManifestId(String);

impl ManifestId {
    pub(crate) fn of_json(json: &[u8]) -> ManifestId {
        use sha2::Digest as _;
        ManifestId(hex::encode(sha2::Sha256::digest(json)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ManifestId {
    type Err = StaticError;
    fn from_str(s: &str) -> Result<ManifestId, StaticError> {
        if is_sha256_hex(s) {
            Ok(ManifestId(s.to_owned()))
        } else {
            Err(StaticError::BadManifestId(s.to_owned()))
        }
    }
}

impl TryFrom<String> for ManifestId {
    type Error = StaticError;
    fn try_from(s: String) -> Result<ManifestId, StaticError> {
        s.parse()
    }
}

impl From<ManifestId> for String {
    fn from(id: ManifestId) -> String {
        id.0
    }
}

impl fmt::Display for ManifestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One file of a static folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub hash: Digest,
    pub size: u64,
    /// Seconds since the Unix epoch (the file's mtime in the build output).
    pub modified: u64,
    /// With `; charset=utf-8` for text.
    pub content_type: String,
    /// Sizes of the stored precompressed variants, present only where smaller than `size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gzip: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub br: Option<u64>,
}

/// Why ingest left a file out. Reported to the caller, who logs it in the deploy output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// A symlink whose target is outside the folder (or does not exist): never followed.
    SymlinkOutside,
    /// A symlink to a directory: not followed, so no cycle and no path is walked twice.
    SymlinkToDirectory,
    /// A name that is not UTF-8, or holds a control byte or a backslash: it has no url path
    /// that means the same thing to every client.
    OddName,
    /// A socket, FIFO or device.
    NotAFile,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::SymlinkOutside => "a symlink pointing outside the static folder",
            SkipReason::SymlinkToDirectory => "a symlink to a directory (not followed)",
            SkipReason::OddName => "a name that is not UTF-8 or holds a control byte or '\\'",
            SkipReason::NotAFile => "not a regular file",
        })
    }
}

/// A file ingest left out: `path` is relative to the folder, lossily decoded for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: String,
    pub reason: SkipReason,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: skipped, {}", self.path, self.reason)
    }
}

/// A static folder: url path (`/assets/app.js`, always starting with `/`) -> file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    files: BTreeMap<String, FileEntry>,
    /// What the ingest that made this manifest left out; not saved.
    #[serde(skip)]
    skipped: Vec<Skipped>,
    /// Files the ingest that made this manifest stored anew (the rest were in the store
    /// already, from an earlier deployment or another path with the same bytes); not saved.
    #[serde(skip)]
    new_files: u64,
}

impl Manifest {
    pub(crate) fn new(
        files: BTreeMap<String, FileEntry>,
        skipped: Vec<Skipped>,
        new_files: u64,
    ) -> Manifest {
        Manifest {
            files,
            skipped,
            new_files,
        }
    }

    /// How many of the files the ingest had to store (0 for a loaded manifest), for the
    /// deploy output's "n new to the store".
    pub fn new_files(&self) -> u64 {
        self.new_files
    }

    pub fn files(&self) -> usize {
        self.files.len()
    }

    /// The identity bytes of all files.
    pub fn bytes(&self) -> u64 {
        self.files.values().map(|f| f.size).sum()
    }

    pub fn get(&self, path: &str) -> Option<&FileEntry> {
        self.files.get(path)
    }

    pub fn entries(&self) -> impl Iterator<Item = (&str, &FileEntry)> {
        self.files.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Files the ingest left out, for the deploy output.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Mounts `other` under `prefix` (`/_next/static`): its `/chunks/a.js` becomes
    /// `/_next/static/chunks/a.js`. Where both hold a path, `other`'s file wins (it was named
    /// explicitly for that prefix). Next.js standalone: `.next/static` at `/_next/static`,
    /// `public/` at `/`.
    pub fn merge_at(&mut self, prefix: &str, other: Manifest) {
        let prefix = prefix.trim_end_matches('/');
        let prefix = if prefix.is_empty() || prefix.starts_with('/') {
            prefix.to_owned()
        } else {
            format!("/{prefix}")
        };
        self.new_files += other.new_files;
        for (path, entry) in other.files {
            self.files.insert(format!("{prefix}{path}"), entry);
        }
        for skipped in other.skipped {
            let path = format!("{}/{}", prefix.trim_start_matches('/'), skipped.path);
            self.skipped.push(Skipped {
                path: path.trim_start_matches('/').to_owned(),
                ..skipped
            });
        }
    }
}
