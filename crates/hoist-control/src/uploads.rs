//! Uploaded sources on the platform: storing a bundle a client sent for a service (the API
//! streams it to a file first) and finding an upload again when a deploy names it.

use std::path::{Path, PathBuf};

use hoist_build::UploadError;
use hoist_core::{ServiceName, SpecError, UploadId};
use hoist_store::{UploadRecord, now_ms};

use crate::{ControlError, Platform};

/// How many of a service's uploads `GET /v1/services/{name}/uploads` lists: enough for a
/// client to find a commit the server has among its recent history.
pub const UPLOADS_LISTED: usize = 50;

impl Platform {
    /// Where the API writes an upload while it arrives (the source store's own file system).
    pub fn incoming_uploads(&self) -> Result<PathBuf, ControlError> {
        self.sources.incoming_dir().map_err(upload_error)
    }

    /// Stores the bundle at `bundle` (`bytes_received` long) as an upload of `name`;
    /// `shallow` are the shallow commits of the clone it was made in (see
    /// [`hoist_build::SourceStore::ingest`]). The caller removes the file.
    pub async fn store_upload(
        &self,
        name: &ServiceName,
        bundle: &Path,
        bytes_received: u64,
        shallow: &[String],
    ) -> Result<UploadRecord, ControlError> {
        let id = UploadId::generate();
        let stored = self
            .sources
            .ingest(bundle, id.as_str(), shallow)
            .await
            .map_err(upload_error)?;
        let record = UploadRecord {
            id,
            service: name.clone(),
            commit: stored.commit,
            bytes_received,
            bytes_stored: stored.bytes_stored,
            already_stored: stored.already_stored,
            created_at: now_ms(),
        };
        self.store.insert_upload(&record)?;
        tracing::info!(service = %name, upload = %record.id, commit = %record.commit,
            bytes_received, bytes_stored = record.bytes_stored, "source uploaded");
        Ok(record)
    }

    /// The service's recent uploads, newest first.
    pub fn uploads(&self, name: &ServiceName) -> Result<Vec<UploadRecord>, ControlError> {
        Ok(self.store.list_uploads(name, UPLOADS_LISTED)?)
    }

    /// The upload a deploy names, if it exists and its commit is still stored.
    pub(crate) async fn find_upload(&self, id: &UploadId) -> Result<UploadRecord, ControlError> {
        let unknown =
            |rule: &str| ControlError::Invalid(SpecError::invalid("upload", id.as_str(), rule));
        let record = self.store.get_upload(id)?.ok_or_else(|| {
            unknown("no such upload: send the bundle first (POST /v1/services/NAME/uploads)")
        })?;
        if !self.sources.contains(&record.commit).await {
            return Err(unknown(
                "its commit is no longer in the server's source store: upload it again",
            ));
        }
        Ok(record)
    }

    /// Writes uploaded `commit`'s tree into `dest`, as a fetch leaves a git source; `branch`
    /// is the label the deploy gave (where the commit came from).
    pub(crate) async fn checkout_upload(
        &self,
        commit: &str,
        dest: &Path,
        branch: Option<&str>,
    ) -> Result<hoist_build::Fetched, hoist_build::BuildError> {
        self.sources.checkout(commit, dest).await?;
        Ok(hoist_build::Fetched {
            commit: commit.to_string(),
            branch: branch.unwrap_or("upload").to_string(),
        })
    }

    /// A deleted service's uploads go with it (their objects stay while another upload
    /// reaches them).
    pub(crate) async fn forget_uploads(&self, name: &ServiceName) -> Result<(), ControlError> {
        let ids: Vec<String> = self
            .store
            .delete_uploads(name)?
            .into_iter()
            .map(|id| id.to_string())
            .collect();
        self.sources.forget(&ids).await;
        Ok(())
    }
}

fn upload_error(e: UploadError) -> ControlError {
    ControlError::Upload(e)
}
