//! Uploaded sources: which commit each upload carried, for which service (the objects are in
//! the source store, `hoist_build::SourceStore`).

use hoist_core::{ServiceName, UploadId};
use rusqlite::{OptionalExtension, params};

use crate::{Store, StoreError};

/// One upload as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    pub id: UploadId,
    pub service: ServiceName,
    pub commit: String,
    pub bytes_received: u64,
    pub bytes_stored: u64,
    pub already_stored: bool,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

fn from_row(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<(String, String, String, i64, i64, bool, i64)> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

fn record(
    (id, service, commit, received, stored, already, created_at): (
        String,
        String,
        String,
        i64,
        i64,
        bool,
        i64,
    ),
) -> Result<UploadRecord, StoreError> {
    Ok(UploadRecord {
        id: id
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("upload id: {e}")))?,
        service: service
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("upload service: {e}")))?,
        commit,
        bytes_received: u64::try_from(received).unwrap_or(0),
        bytes_stored: u64::try_from(stored).unwrap_or(0),
        already_stored: already,
        created_at,
    })
}

const COLUMNS: &str =
    "id, service, commit_sha, bytes_received, bytes_stored, already_stored, created_at";

impl Store {
    pub fn insert_upload(&self, u: &UploadRecord) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO uploads (id, service, commit_sha, bytes_received, bytes_stored, already_stored, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                u.id.as_str(),
                u.service.as_str(),
                u.commit,
                i64::try_from(u.bytes_received).unwrap_or(i64::MAX),
                i64::try_from(u.bytes_stored).unwrap_or(i64::MAX),
                u.already_stored,
                u.created_at
            ],
        )?;
        Ok(())
    }

    pub fn get_upload(&self, id: &UploadId) -> Result<Option<UploadRecord>, StoreError> {
        let row = self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM uploads WHERE id = ?1"),
                params![id.as_str()],
                from_row,
            )
            .optional()?;
        row.map(record).transpose()
    }

    /// The service's uploads, newest first, at most `limit`.
    pub fn list_uploads(
        &self,
        service: &ServiceName,
        limit: usize,
    ) -> Result<Vec<UploadRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM uploads WHERE service = ?1 ORDER BY created_at DESC, rowid DESC LIMIT ?2"
        ))?;
        let rows = stmt
            .query_map(
                params![service.as_str(), i64::try_from(limit).unwrap_or(i64::MAX)],
                from_row,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(record).collect()
    }

    /// Forgets the service's uploads (it is being deleted); answers their ids, whose refs in
    /// the source store the caller removes.
    pub fn delete_uploads(&self, service: &ServiceName) -> Result<Vec<UploadId>, StoreError> {
        let ids: Vec<UploadId> = self
            .list_uploads(service, usize::MAX)?
            .into_iter()
            .map(|u| u.id)
            .collect();
        self.conn().execute(
            "DELETE FROM uploads WHERE service = ?1",
            params![service.as_str()],
        )?;
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_kept_per_service_newest_first_and_forgotten_with_it() {
        let dir = std::env::temp_dir().join(format!("hoist-store-uploads-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("hoist.db")).unwrap();
        let shop: ServiceName = "shop".parse().unwrap();
        let other: ServiceName = "other".parse().unwrap();
        let up = |service: &ServiceName, at: i64, stored: u64| UploadRecord {
            id: UploadId::generate(),
            service: service.clone(),
            commit: "57c7124f4e0873315bc0721cdfc055fe8a6cc31c".into(),
            bytes_received: 1000,
            bytes_stored: stored,
            already_stored: stored == 0,
            created_at: at,
        };
        let (a, b, c) = (up(&shop, 1, 900), up(&shop, 2, 0), up(&other, 3, 10));
        for u in [&a, &b, &c] {
            store.insert_upload(u).unwrap();
        }
        assert_eq!(store.get_upload(&b.id).unwrap().as_ref(), Some(&b));
        assert_eq!(
            store.list_uploads(&shop, 10).unwrap(),
            [b.clone(), a.clone()]
        );
        assert_eq!(
            store.list_uploads(&shop, 1).unwrap(),
            std::slice::from_ref(&b)
        );
        let mut gone = store.delete_uploads(&shop).unwrap();
        gone.sort();
        let mut want = vec![a.id.clone(), b.id.clone()];
        want.sort();
        assert_eq!(gone, want);
        assert_eq!(store.get_upload(&a.id).unwrap(), None);
        assert_eq!(store.list_uploads(&other, 10).unwrap(), [c]);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
