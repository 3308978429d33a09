use hoist_core::SpecError;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Invalid(#[from] SpecError),
    #[error("service '{0}' not found")]
    ServiceNotFound(String),
    #[error("deployment '{0}' not found")]
    DeploymentNotFound(String),
    #[error(transparent)]
    Store(#[from] hoist_store::StoreError),
    #[error(transparent)]
    Sandbox(#[from] hoist_sandbox::SandboxError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Secrets(#[from] hoist_secrets::SecretsError),
    /// The static files' store could not be opened.
    #[error(transparent)]
    Static(#[from] hoist_static::StaticError),
    #[error("the stored environment of service '{0}' is unreadable")]
    CorruptEnv(String),
    /// The change is stored, but the instances that would carry it did not start; the
    /// previous ones keep serving.
    #[error("stored, but not applied: {0}; the running instances keep the previous environment")]
    NotApplied(String),
    #[error("{0}")]
    Rollback(String),
    /// An uploaded source was refused (the bundle's fault: see
    /// [`hoist_build::UploadError::is_bad_bundle`]) or could not be stored.
    #[error(transparent)]
    Upload(hoist_build::UploadError),
    /// `SERVICE/JOB`.
    #[error("cron job '{0}' not found")]
    CronJobNotFound(String),
    /// `SERVICE/JOB`.
    #[error(
        "cron job '{0}' exists already; remove it first or give the new one another id (--job)"
    )]
    CronJobExists(String),
    /// A webhook or poll for a service that has no git source to deploy from.
    #[error("{0}")]
    NoGitSource(String),
}
