//! Deploy from anywhere: a client that is not on the server's machine sends the commit it
//! deploys as a git bundle (`POST /v1/services/{name}/uploads`), then deploys the upload by its
//! id (`DeployRequest::upload`).

use hoist_core::{ServiceName, UploadId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

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

/// `POST /v1/services/{name}/uploads` parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// For a bundle made in a shallow clone (CI's `fetch-depth: 1`): its shallow commits
    /// (the repository's `.git/shallow`), comma-separated. The server records them as the
    /// edge of the history it has, so the commit is stored without the parents the clone
    /// never had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shallow: Option<String>,
}

impl UploadQuery {
    /// The shallow commits named, each a full hex object name; the error names the first
    /// that is not.
    pub fn shallow_commits(&self) -> Result<Vec<String>, String> {
        let Some(list) = &self.shallow else {
            return Ok(Vec::new());
        };
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                if s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    Ok(s.to_ascii_lowercase())
                } else {
                    Err(format!(
                        "'{}' is not a commit's full name (40 hex digits)",
                        hoist_core::echo(s)
                    ))
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::UploadQuery;

    #[test]
    fn shallow_commits_are_full_names() {
        let q = |s: &str| UploadQuery {
            shallow: Some(s.into()),
        };
        let a = "57c7124f4e0873315bc0721cdfc055fe8a6cc31c";
        assert_eq!(q(&format!("{a},{a}")).shallow_commits().unwrap().len(), 2);
        assert_eq!(UploadQuery::default().shallow_commits().unwrap().len(), 0);
        assert!(
            q("57c7124")
                .shallow_commits()
                .unwrap_err()
                .contains("57c7124")
        );
    }
}
