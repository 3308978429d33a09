//! Deploy on push: a service's webhook (`GET /v1/services/{name}/hooks`) and what the webhook
//! endpoint (`POST /hooks/{name}/{provider}`) answers the git host.

use hoist_core::{AutoDeploy, ServiceName};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The addresses to give the git host, one per kind of host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookUrls {
    /// GitHub: content type `application/json`, the secret as the webhook's secret.
    pub github: String,
    /// GitLab: the secret as the webhook's secret token.
    pub gitlab: String,
    /// Gitea and Forgejo: content type `application/json`, the secret as the secret.
    pub gitea: String,
}

/// A service's webhook: where the git host sends pushes, and the secret it signs them with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookInfo {
    #[schema(value_type = String)]
    pub service: ServiceName,
    pub urls: WebhookUrls,
    /// The shared secret (64 hex digits).
    pub secret: String,
    /// Whether a push deploys: only with `push`.
    pub auto_deploy: AutoDeploy,
    /// The branch whose pushes deploy; `null` before the service's first deploy resolved one.
    pub branch: Option<String>,
    /// Globs of paths: a push deploys only when a changed file matches one (empty: any).
    pub watch: Vec<String>,
    /// How often `poll` mode asks the remote.
    pub poll_interval_ms: u64,
}

/// What became of a webhook delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookOutcome {
    /// A deploy of `commit` is queued (`202`).
    Queued,
    /// This delivery id was seen before: acknowledged, nothing done.
    Duplicate,
    /// Authenticated but nothing to deploy: another branch, no watched file changed,
    /// auto-deploy not `push`, or an event that is not a push.
    Ignored,
    /// The host's test delivery (GitHub's `ping`).
    Pong,
}

/// The webhook endpoint's answer to the git host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookAnswer {
    pub outcome: WebhookOutcome,
    /// Why, in words (shown in the host's delivery log).
    pub message: String,
    /// The commit queued, for `queued`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}
