//! Secret values under envelope encryption: opened only once their read is in the log,
//! carried by events in the form the domain keeps, and shredded with their vaults.

use domain::VaultId;
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

/// Destroys the keys of `vaults`, which must happen before the log says they are deleted:
/// from then on none of their values may be recoverable, whatever happens after. Their
/// ciphertexts stay in the log for good. Shredding cannot be undone, so whoever calls this
/// has decided the deletion first, and decides it again to append it.
pub async fn shred_vaults(services: &Services, vaults: impl IntoIterator<Item = VaultId>) -> Result<(), AppError> {
    for vault_id in vaults {
        services
            .envelope
            .shred_vault(vault_id)
            .await
            .map_err(AppError::internal)?;
    }
    Ok(())
}
