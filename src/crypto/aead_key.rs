//! One AES-256-GCM key: the primitive under every layer (master key, KEK, DEK).

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit, Nonce};
use zeroize::Zeroizing;

use super::CryptoError;

pub(crate) const KEY_LEN: usize = 32;
pub(crate) const NONCE_LEN: usize = 12;
pub(crate) const TAG_LEN: usize = 16;
/// A wrapped key as stored: nonce, then the encrypted key and its tag.
pub(crate) const WRAPPED_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;

/// Authentication failed: wrong key, wrong associated data, or altered bytes. Callers
/// decide what that means where they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AuthFailed;

/// Key material, zeroized on drop; deliberately neither `Clone` nor `Debug`.
pub(crate) struct AeadKey(Zeroizing<[u8; KEY_LEN]>);

impl AeadKey {
    /// A fresh key from the operating system's random number generator.
    pub(crate) fn generate() -> Result<Self, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(bytes.as_mut_slice()).map_err(|_| CryptoError::Random)?;
        Ok(Self(bytes))
    }

    pub(crate) fn from_bytes(bytes: Zeroizing<[u8; KEY_LEN]>) -> Self {
        Self(bytes)
    }

    /// The raw key, for encoding it into the master key file.
    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&*self.0).into())
    }

    /// Encrypts `plaintext` under a fresh random nonce; returns the nonce and the
    /// ciphertext with its tag appended.
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<([u8; NONCE_LEN], Vec<u8>), CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| CryptoError::Random)?;
        // Sized for the tag up front: no reallocation leaves a copy of the plaintext behind,
        // and a failure drops the buffer zeroized.
        let mut buffer = Zeroizing::new(Vec::with_capacity(plaintext.len() + TAG_LEN));
        buffer.extend_from_slice(plaintext);
        self.cipher()
            .encrypt_in_place(&Nonce::<Aes256Gcm>::from(nonce), aad, &mut *buffer)
            .map_err(|_| CryptoError::TooLarge)?;
        Ok((nonce, std::mem::take(&mut *buffer)))
    }

    /// Decrypts and authenticates what [`AeadKey::seal`] produced.
    pub(crate) fn open(
        &self,
        aad: &[u8],
        nonce: &[u8; NONCE_LEN],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, AuthFailed> {
        if ciphertext.len() < TAG_LEN {
            return Err(AuthFailed);
        }
        let mut buffer = Zeroizing::new(ciphertext.to_vec());
        // The tag is checked before anything is decrypted, so a failure leaves no plaintext.
        self.cipher()
            .decrypt_in_place(&Nonce::<Aes256Gcm>::from(*nonce), aad, &mut *buffer)
            .map_err(|_| AuthFailed)?;
        Ok(buffer)
    }

    /// Encrypts `key` under this key: `nonce || ciphertext+tag`, [`WRAPPED_LEN`] bytes.
    pub(crate) fn wrap(&self, aad: &[u8], key: &AeadKey) -> Result<Vec<u8>, CryptoError> {
        let (nonce, ciphertext) = self.seal(aad, key.0.as_slice())?;
        let mut wrapped = Vec::with_capacity(WRAPPED_LEN);
        wrapped.extend_from_slice(&nonce);
        wrapped.extend_from_slice(&ciphertext);
        Ok(wrapped)
    }

    /// The key [`AeadKey::wrap`] wrapped, if `wrapped` authenticates under this key and `aad`.
    pub(crate) fn unwrap_key(&self, aad: &[u8], wrapped: &[u8]) -> Result<AeadKey, AuthFailed> {
        if wrapped.len() != WRAPPED_LEN {
            return Err(AuthFailed);
        }
        let (nonce, ciphertext) = wrapped.split_at(NONCE_LEN);
        let nonce: &[u8; NONCE_LEN] = nonce.try_into().map_err(|_| AuthFailed)?;
        let plaintext = self.open(aad, nonce, ciphertext)?;
        if plaintext.len() != KEY_LEN {
            return Err(AuthFailed);
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        bytes.copy_from_slice(&plaintext);
        Ok(AeadKey(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AeadKey {
        AeadKey::generate().unwrap()
    }

    #[test]
    fn sealed_bytes_open_only_under_the_same_key_and_associated_data() {
        let key = key();
        let (nonce, ciphertext) = key.seal(b"aad one", b"attack at dawn").unwrap();
        assert_eq!(ciphertext.len(), b"attack at dawn".len() + TAG_LEN);
        assert_eq!(
            key.open(b"aad one", &nonce, &ciphertext).unwrap().as_slice(),
            b"attack at dawn"
        );
        assert_eq!(key.open(b"aad two", &nonce, &ciphertext).unwrap_err(), AuthFailed);
        assert_eq!(
            self::key().open(b"aad one", &nonce, &ciphertext).unwrap_err(),
            AuthFailed
        );
        let mut other_nonce = nonce;
        other_nonce[0] ^= 1;
        assert_eq!(key.open(b"aad one", &other_nonce, &ciphertext).unwrap_err(), AuthFailed);
        assert_eq!(
            key.open(b"aad one", &nonce, &ciphertext[..TAG_LEN - 1]).unwrap_err(),
            AuthFailed
        );
    }

    #[test]
    fn every_seal_draws_a_fresh_nonce() {
        let key = key();
        let (first, first_ciphertext) = key.seal(b"", b"same").unwrap();
        let (second, second_ciphertext) = key.seal(b"", b"same").unwrap();
        assert_ne!(first, second);
        assert_ne!(first_ciphertext, second_ciphertext);
    }

    #[test]
    fn a_wrapped_key_unwraps_only_with_its_associated_data() {
        let (kek, dek) = (key(), key());
        let wrapped = kek.wrap(b"dek:one", &dek).unwrap();
        assert_eq!(wrapped.len(), WRAPPED_LEN);
        assert!(!wrapped.windows(KEY_LEN).any(|window| window == dek.bytes()));
        assert_eq!(kek.unwrap_key(b"dek:one", &wrapped).unwrap().bytes(), dek.bytes());
        assert!(kek.unwrap_key(b"dek:two", &wrapped).is_err());
        assert!(kek.unwrap_key(b"dek:one", &wrapped[1..]).is_err());
    }
}
