//! Sealing and opening secret values through the key hierarchy, and shredding them.

use domain::{AgentId, VaultId};
use zeroize::Zeroizing;

use super::CryptoError;
use super::aead_key::AeadKey;
use super::key_id::KeyId;
use super::key_table::KeyTable;
use super::master_key::MasterKey;
use super::sealed::{SealedValue, value_aad};

/// The master key and the key table: everything needed to seal, open and shred values.
#[derive(Debug)]
pub struct Envelope {
    master: MasterKey,
    keys: KeyTable,
}

impl Envelope {
    pub fn new(master: MasterKey, keys: KeyTable) -> Self {
        Self { master, keys }
    }

    /// Creates the vault's KEK, unless it has one: calling it again changes nothing.
    pub async fn create_vault_key(&self, vault: VaultId) -> Result<(), CryptoError> {
        let id = KeyId::Kek(vault);
        let kek = AeadKey::generate()?;
        let wrapped = self.master.key().wrap(&id.aad(), &kek)?;
        self.keys.insert_if_absent(&id, &wrapped).await?;
        Ok(())
    }

    /// Encrypts version `version` of the secret at `path` under a new DEK, which it stores
    /// wrapped by the vault's KEK. The vault must have a KEK ([`Envelope::create_vault_key`]);
    /// a deleted vault's is gone, and sealing into it fails with `KeyDestroyed`.
    ///
    /// Sealing a version that already has a DEK (a retried write, or two writers racing for
    /// the same version, which the log's expected version settles) reuses that DEK, so
    /// whichever event the log keeps opens.
    pub async fn seal(
        &self,
        vault: VaultId,
        path: &str,
        version: u64,
        plaintext: &[u8],
    ) -> Result<SealedValue, CryptoError> {
        let kek_id = KeyId::Kek(vault);
        let [wrapped_kek] = self.keys.load([&kek_id]).await?;
        let kek = self.unwrap_kek(&kek_id, wrapped_kek)?;

        let dek_id = KeyId::Dek { vault, path, version };
        let fresh = AeadKey::generate()?;
        let dek = if self
            .keys
            .insert_if_absent(&dek_id, &kek.wrap(&dek_id.aad(), &fresh)?)
            .await?
        {
            fresh
        } else {
            let [existing] = self.keys.load([&dek_id]).await?;
            unwrap_with(&kek, &dek_id, existing)?
        };
        let (nonce, ciphertext) = dek.seal(&value_aad(vault, path, version), plaintext)?;
        Ok(SealedValue { nonce, ciphertext })
    }

    /// Decrypts a value [`Envelope::seal`] sealed for the same vault, path and version.
    ///
    /// `KeyDestroyed` if the secret or the vault was deleted; `Tampered` if the value was
    /// altered or belongs elsewhere; `KeyUnwrap` if the master key is not the one the keys
    /// were wrapped with, or the key table was altered.
    pub async fn open(
        &self,
        vault: VaultId,
        path: &str,
        version: u64,
        sealed: &SealedValue,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let kek_id = KeyId::Kek(vault);
        let dek_id = KeyId::Dek { vault, path, version };
        let [wrapped_kek, wrapped_dek] = self.keys.load([&kek_id, &dek_id]).await?;
        if wrapped_dek.is_none() {
            return Err(destroyed(&dek_id));
        }
        let kek = self.unwrap_kek(&kek_id, wrapped_kek)?;
        let dek = unwrap_with(&kek, &dek_id, wrapped_dek)?;
        dek.open(&value_aad(vault, path, version), &sealed.nonce, &sealed.ciphertext)
            .map_err(|_| CryptoError::Tampered)
    }

    /// Seals version `version` of an agent's signing key for `chain`. An agent's signing
    /// keys have a key namespace of their own: the key table's vault column holds the
    /// agent's id (ids are UUIDs: no vault shares it), each version a DEK under the
    /// agent's own KEK, so the same hierarchy, binding and shredding apply.
    pub async fn seal_signing_key(
        &self,
        agent: AgentId,
        chain: &str,
        version: u64,
        plaintext: &[u8],
    ) -> Result<SealedValue, CryptoError> {
        let namespace = signing_keys_of(agent);
        self.create_vault_key(namespace).await?;
        self.seal(namespace, &signing_key_path(chain), version, plaintext).await
    }

    /// Opens what [`Envelope::seal_signing_key`] sealed.
    pub async fn open_signing_key(
        &self,
        agent: AgentId,
        chain: &str,
        version: u64,
        sealed: &SealedValue,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.open(signing_keys_of(agent), &signing_key_path(chain), version, sealed)
            .await
    }

    /// Destroys the DEKs of every version of the secret at `path`: its values, wherever
    /// they are kept, can no longer be opened. Returns how many keys were destroyed.
    pub async fn shred_secret(&self, vault: VaultId, path: &str) -> Result<u64, CryptoError> {
        self.keys.delete_secret(vault, path).await
    }

    /// Destroys the vault's KEK and every DEK in it. Returns how many keys were destroyed.
    pub async fn shred_vault(&self, vault: VaultId) -> Result<u64, CryptoError> {
        self.keys.delete_vault(vault).await
    }

    fn unwrap_kek(&self, id: &KeyId<'_>, wrapped: Option<Vec<u8>>) -> Result<AeadKey, CryptoError> {
        unwrap_with(self.master.key(), id, wrapped)
    }
}

fn signing_keys_of(agent: AgentId) -> VaultId {
    VaultId(agent.0)
}

fn signing_key_path(chain: &str) -> String {
    format!("signing-keys/{chain}")
}

fn unwrap_with(wrapping: &AeadKey, id: &KeyId<'_>, wrapped: Option<Vec<u8>>) -> Result<AeadKey, CryptoError> {
    let wrapped = wrapped.ok_or_else(|| destroyed(id))?;
    wrapping
        .unwrap_key(&id.aad(), &wrapped)
        .map_err(|_| CryptoError::KeyUnwrap { key_id: id.to_string() })
}

fn destroyed(id: &KeyId<'_>) -> CryptoError {
    CryptoError::KeyDestroyed { key_id: id.to_string() }
}
