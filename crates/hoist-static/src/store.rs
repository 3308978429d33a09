//! The content-addressed store: `objects/ab/abcdef...` (the identity bytes) with `.gz` and
//! `.br` beside it where smaller, and `manifests/ID.json`. Every write is a temporary file in
//! `tmp/` renamed into place, so a crash leaves either the whole object or none.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::UNIX_EPOCH;

use sha2::Digest as _;

use crate::cache::BodyCache;
use crate::compress::{self, Encoding};
use crate::manifest::{Digest, FileEntry, Manifest, ManifestId};
use crate::walk::{Found, walk};
use crate::{Limits, StaticError};

/// The bytes of file bodies kept in memory per store (the gateway's hot files).
pub const DEFAULT_CACHE_BYTES: u64 = 256 << 20;

pub struct Store {
    root: PathBuf,
    pub(crate) cache: BodyCache,
    tmp_seq: AtomicU64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl Store {
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StaticError> {
        Store::with_cache(root, DEFAULT_CACHE_BYTES)
    }

    /// A store keeping at most `cache_bytes` of bodies in memory.
    pub fn with_cache(root: impl Into<PathBuf>, cache_bytes: u64) -> Result<Store, StaticError> {
        let root = root.into();
        for sub in ["objects", "manifests", "tmp"] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir).map_err(StaticError::io(&dir))?;
        }
        Ok(Store {
            root,
            cache: BodyCache::new(cache_bytes),
            tmp_seq: AtomicU64::new(0),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn object_path(&self, hash: &Digest, encoding: Encoding) -> PathBuf {
        let h = hash.to_hex();
        self.root
            .join("objects")
            .join(&h[..2])
            .join(format!("{h}{}", encoding.suffix()))
    }

    fn tmp_file(&self) -> Result<(PathBuf, File), StaticError> {
        let n = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let path = self
            .root
            .join("tmp")
            .join(format!("{}-{n}", std::process::id()));
        let file = File::create(&path).map_err(StaticError::io(&path))?;
        Ok((path, file))
    }

    fn rename_into(&self, tmp: &Path, dest: &Path) -> Result<(), StaticError> {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(StaticError::io(parent))?;
        }
        std::fs::rename(tmp, dest).map_err(StaticError::io(dest))
    }

    /// Blocking (call it in `spawn_blocking`). Walks `dir` without following any symlink out
    /// of it, stores each regular file once by SHA-256 (with `.gz`/`.br` kept only where
    /// smaller), and returns the manifest. Refuses a folder over `limits` with the numbers
    /// found, before storing anything.
    pub fn ingest(&self, dir: &Path, limits: &Limits) -> Result<Manifest, StaticError> {
        let found = walk(dir, limits.max_files)?;
        let files = found.count;
        if files > limits.max_files {
            return Err(StaticError::TooManyFiles {
                path: dir.to_owned(),
                found: files,
                limit: limits.max_files,
            });
        }
        if found.bytes > limits.max_bytes {
            return Err(StaticError::TooManyBytes {
                path: dir.to_owned(),
                found: found.bytes,
                limit: limits.max_bytes,
            });
        }
        let new_files = AtomicU64::new(0);
        let entries = self.ingest_all(&found.files, &new_files)?;
        Ok(Manifest::new(
            entries,
            found.skipped,
            new_files.into_inner(),
        ))
    }

    /// Hashes, stores and compresses the files on every core: brotli at its best quality
    /// is the slow part of a deploy with large bundles. The first error stops the others.
    fn ingest_all(
        &self,
        files: &[Found],
        new_files: &AtomicU64,
    ) -> Result<BTreeMap<String, FileEntry>, StaticError> {
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(files.len())
            .max(1);
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let results: Vec<Result<Vec<(String, FileEntry)>, StaticError>> =
            std::thread::scope(|scope| {
                let workers: Vec<_> = (0..threads)
                    .map(|_| {
                        scope.spawn(|| {
                            let mut done = Vec::new();
                            while !failed.load(Ordering::Relaxed) {
                                let Some(file) = files.get(next.fetch_add(1, Ordering::Relaxed))
                                else {
                                    break;
                                };
                                match self.ingest_file(file, new_files) {
                                    Ok(entry) => done.push((file.url_path.clone(), entry)),
                                    Err(e) => {
                                        failed.store(true, Ordering::Relaxed);
                                        return Err(e);
                                    }
                                }
                            }
                            Ok(done)
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .map(|w| {
                        w.join().unwrap_or_else(|_| {
                            Err(StaticError::Io {
                                path: self.root.clone(),
                                source: std::io::Error::other("an ingest thread panicked"),
                            })
                        })
                    })
                    .collect()
            });
        let mut entries = BTreeMap::new();
        for result in results {
            entries.extend(result?);
        }
        Ok(entries)
    }

    fn ingest_file(&self, file: &Found, new_files: &AtomicU64) -> Result<FileEntry, StaticError> {
        // O_NOFOLLOW: the walk saw a regular file here (or resolved a symlink to one inside
        // the folder); if it has been swapped for a symlink since, refuse to open it.
        // O_NONBLOCK: if it was swapped for a FIFO, opening must not wait for a writer.
        let src = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags((nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK).bits())
            .open(&file.source)
            .map_err(StaticError::io(&file.source))?;
        // And it must still be the very file the walk measured (the limits were checked on
        // those sizes): read no more than that, and refuse a file that changed meanwhile.
        let now = src.metadata().map_err(StaticError::io(&file.source))?;
        let changed = || {
            StaticError::io(&file.source)(std::io::Error::other(
                "the file changed while the static folder was taken (is the build still running?)",
            ))
        };
        if !now.is_file() || now.dev() != file.meta.dev() || now.ino() != file.meta.ino() {
            return Err(changed());
        }
        let mut src = src.take(file.meta.len() + 1);
        let (tmp, mut out) = self.tmp_file()?;
        let mut hasher = sha2::Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = src.read(&mut buf).map_err(StaticError::io(&file.source))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(StaticError::io(&tmp))?;
            size += n as u64;
        }
        drop(out);
        if size != file.meta.len() {
            let _ = std::fs::remove_file(&tmp);
            return Err(changed());
        }
        let hash = Digest::from_bytes(hasher.finalize().into());
        let content_type = compress::content_type(&file.url_path);
        let dest = self.object_path(&hash, Encoding::Identity);
        let (gzip, br) = if dest.exists() {
            // Stored by an earlier ingest: its variants were decided then (they are renamed in
            // before the identity object, so its presence means they are complete).
            std::fs::remove_file(&tmp).map_err(StaticError::io(&tmp))?;
            (
                self.variant_size(&hash, Encoding::Gzip),
                self.variant_size(&hash, Encoding::Brotli),
            )
        } else {
            let mut sizes = (None, None);
            if compress::worth_compressing(&content_type) && size > 0 {
                sizes.0 = self.store_variant(&tmp, &hash, size, Encoding::Gzip)?;
                sizes.1 = self.store_variant(&tmp, &hash, size, Encoding::Brotli)?;
            }
            self.rename_into(&tmp, &dest)?;
            new_files.fetch_add(1, Ordering::Relaxed);
            sizes
        };
        let modified = file
            .meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        Ok(FileEntry {
            hash,
            size,
            modified,
            content_type,
            gzip,
            br,
        })
    }

    fn variant_size(&self, hash: &Digest, encoding: Encoding) -> Option<u64> {
        std::fs::metadata(self.object_path(hash, encoding))
            .ok()
            .map(|m| m.len())
    }

    /// Compresses the identity bytes at `src`; keeps the result only if smaller.
    fn store_variant(
        &self,
        src: &Path,
        hash: &Digest,
        size: u64,
        encoding: Encoding,
    ) -> Result<Option<u64>, StaticError> {
        let input = File::open(src).map_err(StaticError::io(src))?;
        let (tmp, out) = self.tmp_file()?;
        let compressed =
            compress::compress(input, out, encoding, size).map_err(StaticError::io(&tmp))?;
        if compressed >= size {
            std::fs::remove_file(&tmp).map_err(StaticError::io(&tmp))?;
            return Ok(None);
        }
        self.rename_into(&tmp, &self.object_path(hash, encoding))?;
        Ok(Some(compressed))
    }

    pub fn save_manifest(&self, m: &Manifest) -> Result<ManifestId, StaticError> {
        let json = serde_json::to_vec(m).map_err(|source| StaticError::BadManifest {
            id: "(new)".into(),
            source,
        })?;
        let id = ManifestId::of_json(&json);
        let dest = self.manifest_path(&id);
        if !dest.exists() {
            let (tmp, mut out) = self.tmp_file()?;
            out.write_all(&json).map_err(StaticError::io(&tmp))?;
            out.sync_all().map_err(StaticError::io(&tmp))?;
            self.rename_into(&tmp, &dest)?;
        }
        Ok(id)
    }

    pub fn load_manifest(&self, id: &ManifestId) -> Result<Manifest, StaticError> {
        let path = self.manifest_path(id);
        let json = std::fs::read(&path).map_err(StaticError::io(&path))?;
        serde_json::from_slice(&json).map_err(|source| StaticError::BadManifest {
            id: id.to_string(),
            source,
        })
    }

    /// A stored representation's bytes, from memory when cached. `len` is the size the
    /// manifest recorded: an object of another size (a crash before its bytes reached the
    /// disk) is an error, never served.
    pub(crate) fn body(
        &self,
        hash: &Digest,
        encoding: Encoding,
        len: u64,
    ) -> Result<bytes::Bytes, StaticError> {
        if let Some(body) = self.cache.get(hash, encoding) {
            return Ok(body);
        }
        let path = self.object_path(hash, encoding);
        let mismatch = |found: u64| StaticError::Io {
            path: path.clone(),
            source: std::io::Error::other(format!("holds {found} bytes, the manifest says {len}")),
        };
        let body = if len >= crate::mapped::MAP_AT {
            let file = File::open(&path).map_err(StaticError::io(&path))?;
            let body = crate::mapped::map(file).map_err(StaticError::io(&path))?;
            if body.len() as u64 != len {
                return Err(mismatch(body.len() as u64));
            }
            body
        } else {
            let bytes = std::fs::read(&path).map_err(StaticError::io(&path))?;
            if bytes.len() as u64 != len {
                return Err(mismatch(bytes.len() as u64));
            }
            bytes::Bytes::from(bytes)
        };
        self.cache.insert(hash, encoding, body.clone());
        Ok(body)
    }

    fn manifest_path(&self, id: &ManifestId) -> PathBuf {
        self.root.join("manifests").join(format!("{id}.json"))
    }
}
