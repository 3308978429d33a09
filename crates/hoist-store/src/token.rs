use sha2::{Digest, Sha256};

/// Tokens are stored as SHA-256: they are random 256-bit secrets, so a fast hash is enough and
/// a stolen database does not hand out API access.
pub(crate) fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub(crate) fn generate_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("hoist_{}", hex::encode(bytes))
}

/// 256 random bits as hex: a session id or a CSRF token.
pub(crate) fn random_hex() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}
