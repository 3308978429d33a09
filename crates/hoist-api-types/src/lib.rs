//! The Hoist API's wire model: every request body, query, response, error and stream event of
//! `/v1`, in one place, used by the axum handlers (hoist-api) and by the CLI's client. The
//! OpenAPI document at `/openapi.json` is generated from these types (utoipa), so the document,
//! the server and the client cannot disagree.
//!
//! Conventions, the same on every type:
//! - Field names are the JSON names (snake_case).
//! - Every timestamp (`*_at`, `ts`, `minute`) is an integer: milliseconds since the Unix epoch,
//!   UTC. Durations sent by clients are strings with a unit (`30s`, `15m`); durations
//!   returned are integers in milliseconds, named `*_ms`.
//! - Request bodies refuse unknown fields; a body that does not parse is answered `400` with
//!   an [`ApiErrorBody`] naming the field and the rule.

mod body;
mod cron;
mod deploy;
mod env;
mod error;
mod hooks;
mod info;
mod logs;
mod observe;
mod scaling;
#[cfg(feature = "server")]
mod server;
mod service;
mod session;
mod tokens;
mod upload;

pub use body::{BodyError, from_json, from_json_value};
pub use cron::{CronJob, CronJobRequest, CronRun, CronRunStarted, CronRunsQuery};
pub use deploy::{DeployRequest, Deployment, DeploymentStep, RollbackRequest};
pub use env::{EnvApplied, EnvChange, EnvList, EnvQuery};
pub use error::ApiErrorBody;
pub use hooks::{WebhookAnswer, WebhookInfo, WebhookOutcome, WebhookUrls};
pub use info::{MemoryOption, MemoryRange, ServerInfo};
pub use logs::{
    CommaList, DeploymentEventsQuery, DeploymentOutcome, LogFormat, LogLine, LogStream, LogsQuery,
    LogsSkipped, StreamEvent,
};
pub use observe::{EventRecord, EventsQuery, MinuteMetrics, SeriesQuery, UsageDay, UsageQuery};
pub use scaling::ScalingSettings;
pub use service::{
    Instance, InstanceUsage, LiveInstanceView, RuntimeInfo, ServiceRecord, ServiceView, StopResult,
};
pub use session::{SessionInfo, SessionRequest};
pub use tokens::{CreateTokenRequest, CreatedToken, TokenInfo};
pub use upload::{BUNDLE_CONTENT_TYPE, Upload, UploadQuery};

/// Re-exported so that users of the wire types need no direct dependency for the domain
/// types that appear in them.
pub use hoist_core::{
    AutoDeploy, DeploymentId, DeploymentState, DeploymentTrigger, InstanceId, InstanceState,
    Runtime, RuntimeName, Scaling, ServiceName, ServiceSpec, StaticFolder, TokenId, TokenName,
    TokenRole, UploadId,
};

#[cfg(test)]
mod tests;
