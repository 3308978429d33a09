//! `POST /v1/services/{name}/uploads`: a git bundle, streamed to a file in the source store's
//! incoming directory (never whole in memory), bounded in size, then stored; and the list of
//! a service's uploads, from which a client learns which commits the server already has.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use futures_util::StreamExt;
use hoist_api_types::{BUNDLE_CONTENT_TYPE, Upload, UploadQuery};
use hoist_core::size_text;
use tokio::io::AsyncWriteExt;

use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::routes::service_name;
use crate::state::AppState;

type St = State<Arc<AppState>>;

/// The default of `hoist server --max-upload`: 200 MB.
pub const DEFAULT_MAX_UPLOAD: u64 = 200 << 20;

fn too_large(size: u64, exact: bool, limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the upload is {}{} ({size} bytes); this server takes at most {} ({limit} bytes, `hoist server --max-upload`)",
            if exact { "" } else { "over " },
            size_text(size),
            size_text(limit),
        ),
    )
}

/// The body's declared length, if any; a malformed one is the client's error.
fn content_length(headers: &HeaderMap) -> ApiResult<Option<u64>> {
    match headers.get(header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| ApiError::bad_request("invalid Content-Length")),
    }
}

/// A bundle is binary: a JSON or form body is a client that sent the wrong thing.
fn check_content_type(headers: &HeaderMap) -> ApiResult<()> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = ct.to_str().unwrap_or_default();
    let base = ct.split(';').next().unwrap_or_default().trim();
    if base.eq_ignore_ascii_case(BUNDLE_CONTENT_TYPE)
        || base.eq_ignore_ascii_case("application/octet-stream")
    {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "an upload's body is a git bundle, sent with `Content-Type: {BUNDLE_CONTENT_TYPE}`"
            ),
        ))
    }
}

/// A file being received: removed when dropped, whatever happened (refused, cut off,
/// stored), so nothing of a refused upload is left behind.
struct Incoming(PathBuf);

impl Drop for Incoming {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes `body` to `path`, at most `limit` bytes; answers how many were written.
async fn receive(body: Body, path: &FsPath, limit: u64) -> ApiResult<u64> {
    let mut file = tokio::fs::File::create(path).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("storing the upload: {e}"),
        )
    })?;
    let mut stream = body.into_data_stream();
    let mut received: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(format!(
                "the upload's body was cut off after {received} bytes: {e}"
            ))
        })?;
        received = received.saturating_add(chunk.len() as u64);
        if received > limit {
            return Err(too_large(received, false, limit));
        }
        file.write_all(&chunk).await.map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("storing the upload: {e}"),
            )
        })?;
    }
    file.flush().await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("storing the upload: {e}"),
        )
    })?;
    Ok(received)
}

/// Stores a git bundle of one commit for the service (which need not exist yet), for a
/// deploy to name by the answer's `id` (`DeployRequest.upload`). The bundle has one ref, the
/// commit deployed; it may be thin against commits the server has (see
/// `GET /v1/services/{name}/uploads`). Objects the server already has are not stored again.
#[utoipa::path(post, path = "/services/{name}/uploads", operation_id = "uploadSource",
    tag = "deployments",
    params(("name" = String, Path, description = "The service name; it need not exist yet"), UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/x-git-bundle",
        description = "A git bundle (`git bundle create - REF`), at most `max_upload_bytes` of `GET /v1/server`"),
    responses(
        (status = 201, description = "Stored", body = Upload),
        (status = 400, description = "Not a git bundle, or one whose prerequisite commits the server lacks", body = hoist_api_types::ApiErrorBody),
        (status = 413, description = "Over the server's upload limit: nothing was stored", body = hoist_api_types::ApiErrorBody)))]
pub(crate) async fn upload_source(
    State(s): St,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<UploadQuery>,
    req: Request,
) -> ApiResult<(StatusCode, Json<Upload>)> {
    let name = service_name(&name)?;
    let shallow = q.shallow_commits().map_err(|rule| {
        ApiError::bad_request(format!("invalid query parameter `shallow`: {rule}"))
            .with_field("shallow")
    })?;
    let limit = s.max_upload;
    check_content_type(req.headers())?;
    // Refused from the declared length before a byte of the body is read.
    if let Some(len) = content_length(req.headers())?
        && len > limit
    {
        return Err(too_large(len, true, limit));
    }
    let dir = s.platform.incoming_uploads()?;
    let file = Incoming(dir.join(format!("{}.bundle", hoist_core::UploadId::generate())));
    let received = receive(req.into_body(), &file.0, limit).await?;
    if received == 0 {
        return Err(ApiError::bad_request(
            "the upload is empty: send a git bundle (`git bundle create - REF`)",
        ));
    }
    let record = s
        .platform
        .store_upload(&name, &file.0, received, &shallow)
        .await?;
    Ok((StatusCode::CREATED, Json(record.into())))
}

/// The service's recent uploads, newest first: the commits the server has for it.
#[utoipa::path(get, path = "/services/{name}/uploads", operation_id = "listUploads",
    tag = "deployments",
    params(("name" = String, Path, description = "The service name")),
    responses((status = 200, description = "Newest first (at most 50)", body = Vec<Upload>)))]
pub(crate) async fn list_uploads(
    State(s): St,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<Upload>>> {
    let name = service_name(&name)?;
    let list = s.platform.uploads(&name)?;
    Ok(Json(list.into_iter().map(Upload::from).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_over_the_limit_says_its_size_and_the_limit() {
        let e = too_large(300 << 20, true, DEFAULT_MAX_UPLOAD);
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(
            e.error.contains("300.0 MB") && e.error.contains("200.0 MB"),
            "{}",
            e.error
        );
        let e = too_large((2 << 20) + 1, false, 2 << 20);
        assert!(e.error.contains("over 2.0 MB"), "{}", e.error);
    }

    #[test]
    fn only_a_bundle_is_taken() {
        let mut h = HeaderMap::new();
        assert!(check_content_type(&h).is_ok());
        h.insert(header::CONTENT_TYPE, BUNDLE_CONTENT_TYPE.parse().unwrap());
        assert!(check_content_type(&h).is_ok());
        h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert_eq!(
            check_content_type(&h).unwrap_err().status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        h.insert(header::CONTENT_LENGTH, "12x".parse().unwrap());
        assert!(content_length(&h).is_err());
        h.insert(header::CONTENT_LENGTH, "12".parse().unwrap());
        assert_eq!(content_length(&h).unwrap(), Some(12));
    }
}
