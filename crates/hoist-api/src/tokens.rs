//! `/v1/tokens`: making, listing and revoking API tokens. The route table gives these to admin
//! tokens only ([`crate::permissions`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hoist_api_types::{ApiErrorBody, CreateTokenRequest, CreatedToken, TokenInfo};
use hoist_core::{TokenId, TokenRole};
use hoist_store::TokenRefused;

use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

type St = State<Arc<AppState>>;

fn refused(e: TokenRefused) -> ApiError {
    match e {
        TokenRefused::NameTaken(_) => {
            ApiError::new(StatusCode::CONFLICT, e.to_string()).with_field("name")
        }
        TokenRefused::ReservedName => ApiError::bad_request(e.to_string()).with_field("name"),
        TokenRefused::NotFound(_) => ApiError::not_found(e.to_string()),
        TokenRefused::LastAdmin(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
    }
}

/// Makes a token. Its secret is in the answer, this once: the server keeps only its hash.
/// A `service` must exist (deploy it first); an `admin` token takes none.
#[utoipa::path(post, path = "/tokens", operation_id = "createToken", tag = "tokens",
    request_body = CreateTokenRequest,
    responses(
        (status = 201, description = "Made; `secret` is shown this once", body = CreatedToken),
        (status = 409, description = "A live token has that name", body = ApiErrorBody)))]
pub(crate) async fn create_token(
    State(s): St,
    ApiJson(req): ApiJson<CreateTokenRequest>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let store = s.platform.store();
    if let Some(service) = &req.service {
        if req.role == TokenRole::Admin {
            return Err(ApiError::bad_request(
                "an admin token is for every service: leave out `service`, or make a deploy \
                 or read token for one",
            )
            .with_field("service"));
        }
        // As Fly's and Render's tokens are for an app that exists: a typo must not make a
        // token for nothing (or for a service someone creates later under that name).
        if store.get_service(service)?.is_none() {
            return Err(ApiError::bad_request(format!(
                "invalid service '{service}': no such service (see `hoist ls`); a token can be \
                 for an existing service only"
            ))
            .with_field("service"));
        }
    }
    let new = store
        .create_token(req.name, req.role, req.service)?
        .map_err(refused)?;
    tracing::info!(token = %new.record.id, name = %new.record.name, role = %new.record.role, "API token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            secret: new.token,
            token: new.record.into(),
        }),
    ))
}

/// The live tokens, oldest first (never their secrets).
#[utoipa::path(get, path = "/tokens", operation_id = "listTokens", tag = "tokens",
    responses((status = 200, description = "Every live token", body = Vec<TokenInfo>)))]
pub(crate) async fn list_tokens(State(s): St) -> ApiResult<Json<Vec<TokenInfo>>> {
    let list = s.platform.store().list_tokens()?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

/// Revokes a token: requests made with it get `401` from now on, and the dashboard sessions
/// it started end. The last admin token cannot be revoked.
#[utoipa::path(delete, path = "/tokens/{id}", operation_id = "revokeToken", tag = "tokens",
    params(("id" = String, Path, description = "The token id, e.g. tok_0123456789")),
    responses(
        (status = 200, description = "Revoked", body = TokenInfo),
        (status = 409, description = "It is the last admin token", body = ApiErrorBody)))]
pub(crate) async fn revoke_token(
    State(s): St,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenInfo>> {
    let id: TokenId = id.parse()?;
    let record = s.platform.store().revoke_token(&id)?.map_err(refused)?;
    tracing::info!(token = %record.id, name = %record.name, "API token revoked");
    Ok(Json(record.into()))
}
