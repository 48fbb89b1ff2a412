//! Crypto-shredding of backups: each user's personal columns in a backup
//! archive are sealed with that user's data key, kept (wrapped by the master
//! key) only in the live database; erasing the key makes the user's rows in
//! every older archive unreadable while everyone else's restore.
//!
//! AES-256-GCM-SIV, deterministic: the nonce is derived from what the
//! sealed value is about (table, row key, user), so sealing the same row
//! again gives the same bytes, and a restored database, sealed again,
//! reproduces the archive's checksums exactly (`backup verify`). GCM-SIV is
//! misuse-resistant: a repeated nonce reveals only that two sealed values
//! are equal, never the plaintext or the key. Keys are wrapped with a random
//! nonce.

use std::path::Path;

use aes_gcm_siv::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

/// Why sealing or opening failed.
#[derive(Debug, thiserror::Error)]
pub enum SealingError {
    #[error("the master key is malformed: {0}")]
    BadMasterKey(String),
    #[error("a wrapped data key does not open with this master key (another deployment's, or damaged)")]
    WrongMasterKey,
    #[error("a sealed value does not open (damaged, or sealed with another key)")]
    Damaged,
    #[error("the master key file {0}: {1}")]
    KeyFile(String, String),
}

const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;

fn nonce_of(bytes: &[u8]) -> Result<Nonce, SealingError> {
    let bytes: [u8; NONCE_BYTES] = bytes.try_into().map_err(|_| SealingError::Damaged)?;
    Ok(Nonce::from(bytes))
}

/// The deployment's key-wrapping key (`gdpr.master_key`, or the embedded
/// profile's key file).
#[derive(Clone)]
pub struct MasterKey(Aes256GcmSiv);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// From its base64 text (32 bytes).
    pub fn from_base64(text: &str) -> Result<Self, SealingError> {
        let bytes = B64.decode(text.trim()).map_err(|e| SealingError::BadMasterKey(e.to_string()))?;
        if bytes.len() != KEY_BYTES {
            return Err(SealingError::BadMasterKey(format!("{} bytes, expected {KEY_BYTES}", bytes.len())));
        }
        Aes256GcmSiv::new_from_slice(&bytes).map(Self).map_err(|e| SealingError::BadMasterKey(e.to_string()))
    }

    /// A new random key, as base64.
    pub fn generate_base64() -> String {
        B64.encode(Aes256GcmSiv::generate_key(&mut OsRng))
    }

    /// Reads the key file at `path`, creating it (mode 0600) with a new key
    /// when missing: the embedded profile's default.
    pub fn load_or_create(path: &Path) -> Result<Self, SealingError> {
        let fail = |e: std::io::Error| SealingError::KeyFile(path.display().to_string(), e.to_string());
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(fail)?;
                }
                let text = Self::generate_base64();
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path).map_err(fail)?;
                std::io::Write::write_all(&mut file, text.as_bytes()).map_err(fail)?;
                file.sync_all().map_err(fail)?;
                Self::from_base64(&text)
            }
            Err(e) => Err(fail(e)),
        }
    }

    /// A new data key, wrapped: base64(nonce || ciphertext), bound to
    /// `context` (the org and user it belongs to).
    pub fn new_wrapped_key(&self, context: &str) -> Result<String, SealingError> {
        let key = Aes256GcmSiv::generate_key(&mut OsRng);
        let nonce = Aes256GcmSiv::generate_nonce(&mut OsRng);
        let sealed = self
            .0
            .encrypt(&nonce, Payload { msg: &key[..], aad: context.as_bytes() })
            .map_err(|_| SealingError::Damaged)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(B64.encode(out))
    }

    /// Opens a wrapped data key made by [`MasterKey::new_wrapped_key`] for
    /// the same `context`.
    pub fn unwrap_key(&self, wrapped: &str, context: &str) -> Result<DataKey, SealingError> {
        let bytes = B64.decode(wrapped).map_err(|_| SealingError::WrongMasterKey)?;
        if bytes.len() <= NONCE_BYTES {
            return Err(SealingError::WrongMasterKey);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let key = self
            .0
            .decrypt(&nonce_of(nonce)?, Payload { msg: sealed, aad: context.as_bytes() })
            .map_err(|_| SealingError::WrongMasterKey)?;
        Aes256GcmSiv::new_from_slice(&key).map(DataKey).map_err(|_| SealingError::WrongMasterKey)
    }
}

/// One user's data key.
#[derive(Clone)]
pub struct DataKey(Aes256GcmSiv);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    /// Seals `plaintext` about `context` (what it is: table, row key,
    /// user), deterministically: base64(nonce || ciphertext).
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<String, SealingError> {
        let digest = Sha256::digest(context.as_bytes());
        let nonce = &nonce_of(&digest[..NONCE_BYTES])?;
        let sealed = self
            .0
            .encrypt(nonce, Payload { msg: plaintext, aad: context.as_bytes() })
            .map_err(|_| SealingError::Damaged)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(B64.encode(out))
    }

    /// Opens what [`DataKey::seal`] sealed about the same `context`.
    pub fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>, SealingError> {
        let bytes = B64.decode(sealed).map_err(|_| SealingError::Damaged)?;
        if bytes.len() <= NONCE_BYTES {
            return Err(SealingError::Damaged);
        }
        let (nonce, body) = bytes.split_at(NONCE_BYTES);
        self.0
            .decrypt(&nonce_of(nonce)?, Payload { msg: body, aad: context.as_bytes() })
            .map_err(|_| SealingError::Damaged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealing_is_deterministic_bound_to_its_context_and_key() {
        let master = MasterKey::from_base64(&MasterKey::generate_base64()).unwrap();
        let wrapped = master.new_wrapped_key("acme/u1").unwrap();
        let key = master.unwrap_key(&wrapped, "acme/u1").unwrap();
        assert!(master.unwrap_key(&wrapped, "acme/u2").is_err(), "a key is bound to its user");
        let other = MasterKey::from_base64(&MasterKey::generate_base64()).unwrap();
        assert!(matches!(other.unwrap_key(&wrapped, "acme/u1"), Err(SealingError::WrongMasterKey)));

        let a = key.seal("memories/m1", b"alice lives in Lisbon").unwrap();
        assert_eq!(a, key.seal("memories/m1", b"alice lives in Lisbon").unwrap(), "deterministic");
        assert_ne!(a, key.seal("memories/m2", b"alice lives in Lisbon").unwrap(), "the nonce follows the row");
        assert!(!String::from_utf8_lossy(&B64.decode(&a).unwrap()).contains("Lisbon"));
        assert_eq!(key.open("memories/m1", &a).unwrap(), b"alice lives in Lisbon");
        assert!(key.open("memories/m2", &a).is_err(), "bound to its context");
        let stranger = master.unwrap_key(&master.new_wrapped_key("acme/u1").unwrap(), "acme/u1").unwrap();
        assert!(stranger.open("memories/m1", &a).is_err(), "another key opens nothing");
    }

    #[test]
    fn master_keys_are_32_bytes_of_base64_and_files_are_created_once() {
        assert!(MasterKey::from_base64("not base64!").is_err());
        assert!(MasterKey::from_base64(&B64.encode([0u8; 16])).is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/backup-master.key");
        let first = MasterKey::load_or_create(&path).unwrap();
        let wrapped = first.new_wrapped_key("x").unwrap();
        let again = MasterKey::load_or_create(&path).unwrap();
        assert!(again.unwrap_key(&wrapped, "x").is_ok(), "the same key is read back");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
