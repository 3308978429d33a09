use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("source {0} does not exist")]
    SourceMissing(String),
    #[error("source {0} is not a git repository")]
    NotARepository(String),
    #[error("branch '{branch}' does not exist in {source_url}")]
    BranchMissing { branch: String, source_url: String },
    #[error("fetching {source_url} failed: {message}")]
    Fetch { source_url: String, message: String },
    /// The root directory is missing, or not a real directory of the checkout (a symlink).
    #[error(transparent)]
    Root(#[from] hoist_core::SpecError),
    #[error("building runtime {runtime} failed: {message}")]
    Runtime { runtime: String, message: String },
    #[error("build command failed with {0}")]
    CommandFailed(String),
    #[error("build exceeded its time limit of {}s", .0.as_secs())]
    TimedOut(Duration),
    #[error("build cancelled")]
    Cancelled,
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Sandbox(#[from] hoist_sandbox::SandboxError),
}

impl BuildError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
        let context = context.into();
        move |source| BuildError::Io { context, source }
    }
}
