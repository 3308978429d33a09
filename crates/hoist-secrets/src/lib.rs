//! Encryption at rest for service secrets (environment variables).
//!
//! Values are sealed with XChaCha20-Poly1305 under a master key that never enters the
//! database: it lives in `DATA/master.key` (mode 0600) or comes from `HOIST_MASTER_KEY`. Each
//! seal takes a fresh random 24-byte nonce and binds the ciphertext to what it belongs to
//! (the associated data, e.g. the service name), so a sealed value copied to another service
//! does not open.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

/// The environment variable that, when set, holds the master key instead of the key file.
pub const MASTER_KEY_ENV: &str = "HOIST_MASTER_KEY";
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("{action} {path}: {source}")]
    KeyFile {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the master key from {origin} is not usable: {reason} (expected {} hex digits)",
        KEY_LEN * 2
    )]
    BadKey { origin: String, reason: String },
    #[error("{path} is readable by other users (mode {mode:o}); it must be 0600: chmod 600 {path}")]
    KeyFileOpen { path: PathBuf, mode: u32 },
    /// Deliberately says nothing about the content: it may be a secret.
    #[error(
        "a sealed value for {context} does not open with this master key (wrong key, or the data was altered)"
    )]
    Open { context: String },
    #[error("sealing a value for {context} failed")]
    Seal { context: String },
}

/// The key that seals and opens secrets.
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
    origin: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    /// `HOIST_MASTER_KEY` if it is set, else `data_dir/master.key`, made on first use.
    pub fn load(data_dir: &Path) -> Result<MasterKey, SecretsError> {
        match std::env::var(MASTER_KEY_ENV) {
            Ok(text) => Self::from_hex(&text, MASTER_KEY_ENV),
            Err(_) => Self::load_or_create_file(&data_dir.join("master.key")),
        }
    }

    /// Reads the key file, or writes a new random key there (mode 0600) if there is none.
    pub fn load_or_create_file(path: &Path) -> Result<MasterKey, SecretsError> {
        match std::fs::metadata(path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(SecretsError::KeyFileOpen {
                        path: path.to_path_buf(),
                        mode,
                    });
                }
                let text =
                    std::fs::read_to_string(path).map_err(|source| SecretsError::KeyFile {
                        action: "reading",
                        path: path.to_path_buf(),
                        source,
                    })?;
                Self::from_hex(&text, &path.display().to_string())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = XChaCha20Poly1305::generate_key(&mut OsRng);
                let written = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .and_then(|mut f| {
                        writeln!(f, "{}", hex::encode(key.as_slice()))?;
                        f.sync_all()
                    });
                written.map_err(|source| SecretsError::KeyFile {
                    action: "writing",
                    path: path.to_path_buf(),
                    source,
                })?;
                Ok(MasterKey {
                    cipher: XChaCha20Poly1305::new(&key),
                    origin: path.display().to_string(),
                })
            }
            Err(source) => Err(SecretsError::KeyFile {
                action: "reading",
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// A key given as 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str, origin: &str) -> Result<MasterKey, SecretsError> {
        let bad = |reason: String| SecretsError::BadKey {
            origin: origin.to_string(),
            reason,
        };
        let bytes = hex::decode(text.trim()).map_err(|e| bad(e.to_string()))?;
        if bytes.len() != KEY_LEN {
            return Err(bad(format!("it is {} bytes long", bytes.len())));
        }
        Ok(MasterKey {
            cipher: XChaCha20Poly1305::new(Key::from_slice(&bytes)),
            origin: origin.to_string(),
        })
    }

    /// Where the key came from (a path or the variable's name), for messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Encrypts `plaintext` bound to `context` (which must be given again to open it). The
    /// result is nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, SecretsError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretsError::Seal {
                context: context.to_string(),
            })?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(nonce.as_slice());
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Decrypts what [`MasterKey::seal`] made for the same `context`.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, SecretsError> {
        let err = || SecretsError::Open {
            context: context.to_string(),
        };
        if sealed.len() < NONCE_LEN {
            return Err(err());
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hoist-secrets-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_context() {
        let dir = scratch("roundtrip");
        let key = MasterKey::load_or_create_file(&dir.join("master.key")).unwrap();
        let sealed = key.seal("svc-a", b"hunter2").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(key.open("svc-a", &sealed).unwrap(), b"hunter2");
        assert!(matches!(
            key.open("svc-b", &sealed),
            Err(SecretsError::Open { .. })
        ));
        let other = MasterKey::from_hex(&"11".repeat(32), "test").unwrap();
        assert!(other.open("svc-a", &sealed).is_err());
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(key.open("svc-a", &tampered).is_err());
        assert!(key.open("svc-a", &sealed[..10]).is_err());
        // Fresh nonce per seal: the same value never seals to the same bytes.
        assert_ne!(key.seal("svc-a", b"hunter2").unwrap(), sealed);
    }

    #[test]
    fn the_key_file_is_made_once_with_mode_0600_and_read_back() {
        let dir = scratch("file");
        let path = dir.join("master.key");
        let first = MasterKey::load_or_create_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let sealed = first.seal("x", b"v").unwrap();
        let second = MasterKey::load_or_create_file(&path).unwrap();
        assert_eq!(second.open("x", &sealed).unwrap(), b"v");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::load_or_create_file(&path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn a_malformed_key_is_refused_with_its_origin() {
        let err = MasterKey::from_hex("abc", MASTER_KEY_ENV)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(MASTER_KEY_ENV) && err.contains("64 hex digits"),
            "{err}"
        );
        let err = MasterKey::from_hex(&"ab".repeat(16), "k")
            .unwrap_err()
            .to_string();
        assert!(err.contains("16 bytes"), "{err}");
    }
}
