//! Secret values under envelope encryption: opened only once their read is in the log,
//! and carried by events in the form the domain keeps.

use domain::change::DomainError;
use domain::secret::{Sealed, Secret};
use zeroize::Zeroizing;

use super::{AppError, Services};
use crate::crypto::{CryptoError, SealedValue};

/// The plaintext of `secret`'s `version`, sealed as `sealed`.
pub async fn open(
    services: &Services,
    secret: &Secret,
    version: u64,
    sealed: &Sealed,
) -> Result<Zeroizing<Vec<u8>>, AppError> {
    let sealed = from_event_form(sealed)?;
    match services
        .envelope
        .open(secret.vault_id, secret.path.as_str(), version, &sealed)
        .await
    {
        Ok(plaintext) => Ok(plaintext),
        // Deleted between the read decision and now: its keys are gone with it.
        Err(CryptoError::KeyDestroyed { .. }) => Err(AppError::Domain(DomainError::NotFound("secret"))),
        Err(other) => Err(AppError::internal(other)),
    }
}

/// Events carry the sealed value as base64 text; the crypto module's type and the
/// domain's share that JSON form.
pub fn to_event_form(sealed: &SealedValue) -> Result<Sealed, AppError> {
    serde_json::to_value(sealed)
        .and_then(serde_json::from_value)
        .map_err(AppError::internal)
}

pub fn from_event_form(sealed: &Sealed) -> Result<SealedValue, AppError> {
    serde_json::to_value(sealed)
        .and_then(serde_json::from_value)
        .map_err(AppError::internal)
}
