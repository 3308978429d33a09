//! Deploy on push: the git hosts' webhooks (`POST /hooks/{name}/github|gitlab|gitea`), outside
//! bearer auth and authenticated by their signature instead, and a service's webhook
//! (`/v1/services/{name}/hooks`: its URLs and secret) for the CLI and the dashboard.
//!
//! A delivery is checked in an order that changes nothing until it is known to be the
//! host's: the service must exist (`404`) and have a git source (`409`), the body must fit
//! (`413`) and carry the right signature (`401`), then be JSON (`400`). Only then is the
//! delivery id recorded and a deploy queued, and the answer (`202`) does not wait for it.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use hoist_api_types::{WebhookAnswer, WebhookInfo, WebhookOutcome, WebhookUrls};
use hoist_control::{PushEvent, PushOutcome};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ApiResult};
use crate::routes::service_name;
use crate::state::AppState;

/// The largest delivery taken: GitHub caps payloads at 25 MB and drops bigger ones itself.
pub(crate) const MAX_BODY: usize = 25 * 1024 * 1024;
/// Delivery ids are UUIDs (GitHub, GitLab, Gitea); anything much longer is not one.
const MAX_DELIVERY_LEN: usize = 128;

/// The kind of git host a webhook comes from: each signs and names its headers its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Provider {
    Github,
    Gitlab,
    /// Gitea and Forgejo (which sends Gitea's headers too).
    Gitea,
}

impl Provider {
    fn parse(text: &str) -> Option<Provider> {
        match text {
            "github" => Some(Provider::Github),
            "gitlab" => Some(Provider::Gitlab),
            "gitea" => Some(Provider::Gitea),
            _ => None,
        }
    }

    fn delivery_header(self) -> &'static str {
        match self {
            Provider::Github => "x-github-delivery",
            Provider::Gitlab => "x-gitlab-event-uuid",
            Provider::Gitea => "x-gitea-delivery",
        }
    }

    fn event_header(self) -> &'static str {
        match self {
            Provider::Github => "x-github-event",
            Provider::Gitlab => "x-gitlab-event",
            Provider::Gitea => "x-gitea-event",
        }
    }
}

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, message)
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn hmac_sha256(secret: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length; this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
    mac.update(body);
    mac
}

/// Checks that `body` was sent by the holder of `secret`, the way `provider` proves it;
/// every comparison is in constant time.
pub(crate) fn verify(
    provider: Provider,
    headers: &HeaderMap,
    body: &[u8],
    secret: &str,
) -> Result<(), ApiError> {
    match provider {
        Provider::Github => {
            let Some(sig) = header(headers, "x-hub-signature-256") else {
                return Err(unauthorized(
                    "missing X-Hub-Signature-256: set the webhook's secret to the one `hoist hooks NAME` prints",
                ));
            };
            let hex_sig = sig.strip_prefix("sha256=").ok_or_else(|| {
                unauthorized("X-Hub-Signature-256 must be `sha256=` and 64 hex digits")
            })?;
            check_hex_mac(hex_sig, secret, body, "X-Hub-Signature-256")
        }
        Provider::Gitea => {
            let Some(sig) = header(headers, "x-gitea-signature")
                .or_else(|| header(headers, "x-forgejo-signature"))
            else {
                return Err(unauthorized(
                    "missing X-Gitea-Signature: set the webhook's secret to the one `hoist hooks NAME` prints",
                ));
            };
            check_hex_mac(sig, secret, body, "X-Gitea-Signature")
        }
        Provider::Gitlab => {
            let Some(token) = header(headers, "x-gitlab-token") else {
                return Err(unauthorized(
                    "missing X-Gitlab-Token: set the webhook's secret token to the one `hoist hooks NAME` prints",
                ));
            };
            if bool::from(token.as_bytes().ct_eq(secret.as_bytes())) {
                Ok(())
            } else {
                Err(unauthorized("wrong X-Gitlab-Token"))
            }
        }
    }
}

fn check_hex_mac(hex_sig: &str, secret: &str, body: &[u8], what: &str) -> Result<(), ApiError> {
    let sig =
        hex::decode(hex_sig).map_err(|_| unauthorized(format!("{what} is not hex-encoded")))?;
    hmac_sha256(secret, body).verify_slice(&sig).map_err(|_| {
        unauthorized(format!(
            "wrong {what}: the body was not signed with this service's secret"
        ))
    })
}

/// A push payload: the fields all three hosts share (GitHub's shape, which Gitea and GitLab
/// follow). Every other field of the payload is ignored.
#[derive(Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    #[serde(default)]
    commits: Vec<Commit>,
}

#[derive(Deserialize)]
struct Commit {
    #[serde(default)]
    added: Vec<String>,
    #[serde(default)]
    modified: Vec<String>,
    #[serde(default)]
    removed: Vec<String>,
}

/// What a delivery is, once authenticated.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Delivery {
    Ping,
    /// An event other than a push (a pull request, an issue…): acknowledged, nothing done.
    Other(String),
    Push(PushEvent),
}

/// Reads an authenticated delivery.
pub(crate) fn parse(
    provider: Provider,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Delivery, ApiError> {
    let event = header(headers, provider.event_header()).unwrap_or("");
    let is_push = match provider {
        Provider::Github => match event {
            "ping" => return Ok(Delivery::Ping),
            e => e == "push",
        },
        Provider::Gitlab => event.eq_ignore_ascii_case("Push Hook"),
        Provider::Gitea => {
            let event = if event.is_empty() {
                header(headers, "x-forgejo-event").unwrap_or("")
            } else {
                event
            };
            event == "push"
        }
    };
    if !is_push {
        return Ok(Delivery::Other(event.to_string()));
    }
    let delivery = header(headers, provider.delivery_header())
        .or_else(|| {
            (provider == Provider::Gitlab)
                .then(|| header(headers, "x-gitlab-webhook-uuid"))
                .flatten()
        })
        .unwrap_or("")
        .to_string();
    if delivery.len() > MAX_DELIVERY_LEN || delivery.chars().any(|c| c.is_control()) {
        return Err(ApiError::bad_request(format!(
            "invalid {}: at most {MAX_DELIVERY_LEN} printable characters",
            provider.delivery_header()
        ))
        .with_field(provider.delivery_header()));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    let payload: PushPayload = serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() {
            let error = ApiError::bad_request(format!("not a push payload: {inner}"));
            match field.split(['.', '[']).next() {
                Some(top) if !top.is_empty() && top != "?" => error.with_field(top),
                _ => error,
            }
        } else {
            ApiError::bad_request(format!("the body is not JSON: {inner}"))
        }
    })?;
    let after = payload.after.trim().to_ascii_lowercase();
    if !(after.len() == 40 || after.len() == 64) || !after.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(format!(
            "invalid field `after`: '{}' is not a commit id (40 or 64 hex digits)",
            hoist_core::echo(&payload.after)
        ))
        .with_field("after"));
    }
    let files = (!payload.commits.is_empty()).then(|| {
        let mut files: Vec<String> = payload
            .commits
            .into_iter()
            .flat_map(|c| c.added.into_iter().chain(c.modified).chain(c.removed))
            .collect();
        files.sort();
        files.dedup();
        files
    });
    Ok(Delivery::Push(PushEvent {
        delivery,
        git_ref: payload.git_ref,
        after,
        files,
    }))
}

fn answer(
    status: StatusCode,
    outcome: WebhookOutcome,
    message: String,
    commit: Option<String>,
) -> Response {
    (
        status,
        Json(WebhookAnswer {
            outcome,
            message,
            commit,
        }),
    )
        .into_response()
}

/// Receives a git host's webhook delivery for a service.
#[utoipa::path(post, path = "/hooks/{name}/{provider}", operation_id = "receiveWebhook",
    tag = "hooks", security(()),
    description = "A git host's webhook: GitHub (`X-Hub-Signature-256`), GitLab \
        (`X-Gitlab-Token`) or Gitea/Forgejo (`X-Gitea-Signature`), signed with the service's \
        secret (`GET /v1/services/{name}/hooks`). A push to the service's branch that touches \
        a watched path queues a deploy of its `after` commit and is answered `202` at once; a \
        delivery id seen before is answered `200` `duplicate`. Bodies up to 25 MB.",
    params(
        ("name" = String, Path, description = "The service name"),
        ("provider" = String, Path, description = "`github`, `gitlab` or `gitea`"),
    ),
    request_body(content = Object, description = "The host's push payload, as it sent it"),
    responses(
        (status = 202, description = "A deploy is queued", body = WebhookAnswer),
        (status = 200, description = "Acknowledged: a ping, a redelivery, or nothing to deploy", body = WebhookAnswer),
        (status = 401, description = "Missing or wrong signature", body = hoist_api_types::ApiErrorBody),
        (status = 409, description = "The service has no git source", body = hoist_api_types::ApiErrorBody),
        (status = 413, description = "Body over 25 MB", body = hoist_api_types::ApiErrorBody),
    ))]
pub(crate) async fn receive_webhook(
    State(s): State<Arc<AppState>>,
    Path((name, provider)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let provider = Provider::parse(&provider).ok_or_else(|| {
        ApiError::not_found(format!(
            "no webhook `{}`: use /hooks/NAME/github, /hooks/NAME/gitlab or /hooks/NAME/gitea",
            hoist_core::echo(&provider)
        ))
    })?;
    let name = service_name(&name)?;
    let platform = s.platform.clone();
    // 404 and 409 before the body is read: nothing about the body can change them.
    platform.check_git_source(&name)?;
    let body = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the webhook body is over 25 MB",
        )
    })?;
    let Some(secret) = platform.webhook_secret(&name)? else {
        return Err(unauthorized(format!(
            "service '{name}' has no webhook secret yet: run `hoist hooks {name}` and give the host the secret it prints"
        )));
    };
    verify(provider, &headers, &body, &secret)?;
    let push = match parse(provider, &headers, &body)? {
        Delivery::Ping => {
            return Ok(answer(
                StatusCode::OK,
                WebhookOutcome::Pong,
                format!("webhook of service '{name}' is set up"),
                None,
            ));
        }
        Delivery::Other(event) => {
            return Ok(answer(
                StatusCode::OK,
                WebhookOutcome::Ignored,
                format!(
                    "event `{}` is not a push: nothing to deploy",
                    hoist_core::echo(&event)
                ),
                None,
            ));
        }
        Delivery::Push(push) => push,
    };
    let delivery = push.delivery.clone();
    Ok(match platform.push(&name, push)? {
        PushOutcome::Queued { commit } => answer(
            StatusCode::ACCEPTED,
            WebhookOutcome::Queued,
            format!("deploying {commit} to service '{name}'"),
            Some(commit),
        ),
        PushOutcome::Duplicate => answer(
            StatusCode::OK,
            WebhookOutcome::Duplicate,
            format!("delivery {delivery} was received before: ignored"),
            None,
        ),
        PushOutcome::Ignored(why) => answer(StatusCode::OK, WebhookOutcome::Ignored, why, None),
    })
}

fn info(s: &AppState, name: hoist_core::ServiceName, secret: String) -> ApiResult<WebhookInfo> {
    let view = s.platform.auto_deploy_view(&name)?;
    let base = s.public_url.trim_end_matches('/');
    let url = |p: &str| format!("{base}/hooks/{name}/{p}");
    Ok(WebhookInfo {
        urls: WebhookUrls {
            github: url("github"),
            gitlab: url("gitlab"),
            gitea: url("gitea"),
        },
        service: name,
        secret,
        auto_deploy: view.settings.mode,
        branch: view.branch,
        watch: view.settings.watch,
        poll_interval_ms: view.settings.poll_interval_ms,
    })
}

/// The service's webhook: the URLs to give the git host and the secret to sign with (made
/// now if the service has none).
#[utoipa::path(get, path = "/services/{name}/hooks", operation_id = "getServiceHooks", tag = "hooks",
    params(("name" = String, Path, description = "The service name")),
    responses((status = 200, description = "The webhook", body = WebhookInfo)))]
pub(crate) async fn service_hooks(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<WebhookInfo>> {
    let name = service_name(&name)?;
    let secret = s.platform.ensure_webhook_secret(&name)?;
    Ok(Json(info(&s, name, secret)?))
}

/// Replaces the service's webhook secret; deliveries signed with the old one get `401`.
#[utoipa::path(post, path = "/services/{name}/hooks/rotate", operation_id = "rotateServiceHooks",
    tag = "hooks",
    params(("name" = String, Path, description = "The service name")),
    responses((status = 200, description = "The webhook with its new secret", body = WebhookInfo)))]
pub(crate) async fn rotate_service_hooks(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<WebhookInfo>> {
    let name = service_name(&name)?;
    let secret = s.platform.rotate_webhook_secret(&name)?;
    Ok(Json(info(&s, name, secret)?))
}

#[cfg(test)]
mod tests;
