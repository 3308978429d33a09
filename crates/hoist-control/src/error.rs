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
}
