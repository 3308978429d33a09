use std::path::PathBuf;

/// What can go wrong taking in or serving a static folder. Every message names the path and,
/// for the limits, the numbers found and allowed.
#[derive(Debug, thiserror::Error)]
pub enum StaticError {
    #[error("static folder {} does not exist", path.display())]
    Missing { path: PathBuf },
    #[error("static folder {} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error(
        "static folder {} holds {found} bytes, over the limit of {limit} bytes",
        path.display()
    )]
    TooManyBytes {
        path: PathBuf,
        found: u64,
        limit: u64,
    },
    #[error(
        "static folder {} holds {found} files, over the limit of {limit} files",
        path.display()
    )]
    TooManyFiles {
        path: PathBuf,
        found: u64,
        limit: u64,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("static manifest {id} is unreadable: {source}")]
    BadManifest {
        id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("static manifest id {0:?} is not a manifest id (64 hex digits)")]
    BadManifestId(String),
    #[error("static manifest names object {0:?}, which is not a SHA-256 (64 hex digits)")]
    BadDigest(String),
    #[error("static prefix {prefix:?} {reason}")]
    BadPrefix {
        prefix: String,
        reason: &'static str,
    },
}

impl StaticError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StaticError {
        let path = path.into();
        move |source| StaticError::Io { path, source }
    }
}
