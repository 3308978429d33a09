//! The control loop: turns deploy requests into running instances and keeps them running.
//! It owns the deployment pipeline (fetch, build, start, switch), supervises instances
//! (replacing crashed ones), and publishes the gateway's routing table.

mod config_file;
mod deploy;
mod env;
mod error;
mod instance;
mod lifecycle;
mod logs;
mod mask;
mod metrics;
mod observe;
mod pipeline;
mod platform;
mod rollout;
mod scaler;
mod transitions;
mod warm;

pub use deploy::{DeployRequest, ScalingRequest};
pub use env::{EnvApplied, EnvChange};
pub use error::ControlError;
pub use lifecycle::{CancelReason, Change};
pub use logs::{Event, LogHub};
pub use observe::Retention;
pub use pipeline::DeployError;
pub use platform::{LiveInstanceView, Platform, PlatformConfig, ServiceView};
