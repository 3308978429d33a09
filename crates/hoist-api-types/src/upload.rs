//! Deploy from anywhere: a client that is not on the server's machine sends the commit it
//! deploys as a git bundle (`POST /v1/services/{name}/uploads`), then deploys the upload by its
//! id (`DeployRequest::upload`).

use hoist_core::{ServiceName, UploadId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One upload: a commit the server now has in its source store, for one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Upload {
    /// What a deploy names in `upload`.
    #[schema(value_type = String, example = "u-0123456789")]
    pub id: UploadId,
    #[schema(value_type = String)]
    pub service: ServiceName,
    /// The commit the bundle's ref points at (full hex name).
    pub commit: String,
    /// The bundle's size as received.
    pub bytes_received: u64,
    /// How much the source store grew by: objects it already had cost nothing, so a
    /// re-upload of a known commit stores 0 bytes.
    pub bytes_stored: u64,
    /// Whether the commit was already in the store before this upload.
    pub already_stored: bool,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// The `Content-Type` of an upload's body: a git bundle as `git bundle create` writes it.
pub const BUNDLE_CONTENT_TYPE: &str = "application/x-git-bundle";
