//! The control loop: turns deploy requests into running instances and keeps them running.
//! It owns the deployment pipeline (fetch, build, start, switch), supervises instances
//! (replacing crashed ones), and publishes the gateway's routing table.

mod config_file;
mod deploy;
mod env;
mod error;
mod instance;
mod logs;
mod mask;
mod metrics;
mod observe;
mod platform;
mod rollout;
mod scaler;
mod warm;

pub use error::ControlError;
pub use hoist_api_types::{DeployRequest, EnvApplied, EnvChange, LiveInstanceView, ServiceView};
pub use logs::{Event, LogHub};
pub use observe::Retention;
pub use platform::{Platform, PlatformConfig};
