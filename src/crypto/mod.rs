//! Envelope encryption of secret values, the barrier between plaintext and storage.
//!
//! Three layers of AES-256-GCM keys, each wrapped by the one above it:
//!
//! ```text
//! master key   32 bytes, outside the database (KEYWARD_MASTER_KEY or <data_dir>/master.key)
//!  └ KEK       one per vault, key id `kek:<vault>`, wrapped by the master key
//!     └ DEK    one per secret version, key id `dek:<vault>:<path>:<version>`, wrapped by its vault's KEK
//!        └ value   the secret itself, sealed by its DEK into a [`SealedValue`] that events carry
//! ```
//!
//! Wrapped keys live in the `wrapped_keys` table beside the event log, in the same
//! database but outside the log: the log is immutable, the key table is not. Deleting a
//! secret deletes its DEKs and the values in the log become noise (crypto-shredding).
//!
//! Every encryption uses a fresh random 96-bit nonce, and its associated data binds what
//! the ciphertext belongs to: a value is bound to (vault, path, version), a wrapped key to
//! its key id. Stored formats (pinned by tests/envelope_encryption.rs):
//!
//! - wrapped key: `nonce (12) || ciphertext+tag (48)`, associated data
//!   `"keyward/wrapped-key/v1\0" || key id (UTF-8)`;
//! - sealed value: nonce and ciphertext+tag apart, associated data
//!   `"keyward/secret-value/v1\0" || vault uuid (16) || version (u64 big-endian) || path (UTF-8)`.
//!
//! No error, no `Debug` output and no log line of this module holds key material or plaintext.

mod aead_key;
mod envelope;
mod key_id;
mod key_table;
mod master_key;
mod remembered_keys;
mod sealed;

use std::sync::Arc;

pub use envelope::Envelope;
pub use key_table::KeyTable;
pub use master_key::{MASTER_KEY_FILE, MasterKey, MasterKeyError, MasterKeyParseError};
pub use sealed::SealedValue;

#[derive(Debug, Clone, thiserror::Error)]
pub enum CryptoError {
    /// The key this operation needs is gone: the secret or its vault was deleted (or the
    /// key was never created).
    #[error("key {key_id} has been destroyed")]
    KeyDestroyed { key_id: String },
    /// The sealed value failed authentication: altered, or presented as another secret's,
    /// version's or vault's value.
    #[error("sealed value failed authentication: it was altered, or it belongs to another secret, version or vault")]
    Tampered,
    /// A wrapped key failed authentication: the master key is not the one it was wrapped
    /// with, or the key table was altered.
    #[error(
        "wrapped key {key_id} failed authentication: the master key is not the one it was wrapped with, \
         or the key table was altered"
    )]
    KeyUnwrap { key_id: String },
    #[error("value is too large to encrypt")]
    TooLarge,
    #[error("the operating system's random number generator failed")]
    Random,
    #[error("key table: {0}")]
    Database(Arc<sqlx::Error>),
    /// Not echoed: a database URL may carry a password.
    #[error("unsupported database URL for the key table: expected sqlite://… or postgres://…")]
    UnsupportedUrl,
}

impl From<sqlx::Error> for CryptoError {
    fn from(error: sqlx::Error) -> Self {
        CryptoError::Database(Arc::new(error))
    }
}
