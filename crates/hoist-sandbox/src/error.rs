use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("mounting {target}: {source}")]
    Mount {
        target: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("network namespace {name}: {source}")]
    Netns {
        name: String,
        #[source]
        source: nix::Error,
    },
    #[error("writing OCI config: {0}")]
    Spec(#[from] oci_spec::OciSpecError),
    #[error("no free instance network slot (all {0} in use)")]
    NoSlot(usize),
    #[error("host is not ready for sandboxes: {0}")]
    Host(String),
    #[error(
        "neither /run nor /dev/shm is a tmpfs; sandbox state (which holds apps' environment) must not go to disk"
    )]
    NoTmpfs,
    #[error(
        "host port {0} is the server's own gateway or API port; instances and builds never reach those"
    )]
    ReservedHostPort(u16),
    #[error("{0} is a directory from an older version; remove it after stopping every instance")]
    LegacyRunDir(PathBuf),
}

impl SandboxError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
        let context = context.into();
        move |source| SandboxError::Io { context, source }
    }
}
