//! The control loop: turns deploy requests into running instances and keeps them running.
//! It owns the deployment pipeline (fetch, build, start, switch), supervises instances
//! (replacing crashed ones), and publishes the gateway's routing table.

mod access;
mod autodeploy;
mod boost;
mod config_file;
mod cron;
mod cron_parts;
mod deploy;
mod env;
mod error;
mod events;
#[cfg(test)]
mod fakes;
mod handle;
mod images;
mod instance;
mod lifecycle;
mod logs;
mod mask;
mod metrics;
mod observe;
mod pipeline;
mod platform;
mod poll;
mod queue;
mod rollout;
mod runtime_choice;
mod scaler;
mod seams;
mod services;
mod stats;
// Static files taken at deploy and handed to the gateway (issue 15).
mod static_site;
mod static_step;
mod tasks;
#[cfg(test)]
mod tests;
mod transitions;
mod uploads;
mod vault;
mod views;
mod warm;

pub use autodeploy::{AutoDeployView, PushEvent, PushOutcome};
pub use boost::BoostConfig;
pub use deploy::target_service;
pub use error::ControlError;
pub use hoist_api_types::{DeployRequest, EnvApplied, EnvChange, LiveInstanceView, ServiceView};
pub use lifecycle::{CancelReason, Change};
pub use logs::{Event, LogHub};
pub use pipeline::DeployError;
pub use platform::{Platform, PlatformConfig, Retention};
pub use seams::{
    CpuControl, Created, Host, ImageBuilder, InstanceSandbox, OutputPipe, SandboxDriver,
};
pub use static_step::StaticStepError;
pub use uploads::UPLOADS_LISTED;
