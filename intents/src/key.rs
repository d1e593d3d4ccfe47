//! A secp256k1 private key, held only as long as one signature takes: the scalar is
//! zeroized when it drops, and nothing prints it.
//!
//! The key is a bare scalar: its public key (a variable-base point multiplication, the
//! costliest step of a proxied transfer after the signature) is derived only when asked
//! for, through the generator's precomputed table, and not at all when the address is
//! already known (see [`PrivateKey::known_to_sign_for`]).

use std::sync::OnceLock;

use alloy_primitives::Address;
use k256::ecdsa::hazmat::SignPrimitive;
use k256::ecdsa::{RecoveryId, Signature};
use k256::elliptic_curve::PrimeField;
use k256::elliptic_curve::ops::MulByGenerator;
use k256::elliptic_curve::sec1::ToEncodedPoint;
use k256::{FieldBytes, NonZeroScalar, ProjectivePoint};
use zeroize::{Zeroize, Zeroizing};

pub struct PrivateKey {
    scalar: NonZeroScalar,
    address: OnceLock<Address>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Says nothing of the value: it is key material.
    #[error("the signing key is not a 32-byte hex secp256k1 private key")]
    Malformed,
    #[error("the system's random source failed")]
    Random,
}

impl PrivateKey {
    /// Parses 64 hex digits, with or without `0x`, surrounding whitespace ignored.
    pub fn parse_hex(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let hex = text.strip_prefix("0x").unwrap_or(text);
        if hex.len() != 64 {
            return Err(KeyError::Malformed);
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
            let digits = std::str::from_utf8(pair).map_err(|_| KeyError::Malformed)?;
            bytes[i] = u8::from_str_radix(digits, 16).map_err(|_| KeyError::Malformed)?;
        }
        Self::from_bytes(bytes.as_slice())
    }

    /// A new random key, for an agent keyward provisions one for.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        // Almost every 32 bytes are a valid scalar; the loop only guards the rare rest.
        loop {
            getrandom::fill(bytes.as_mut_slice()).map_err(|_| KeyError::Random)?;
            if let Ok(key) = Self::from_bytes(bytes.as_slice()) {
                return Ok(key);
            }
        }
    }

    /// The key from its 32 bytes (as [`PrivateKey::secret_bytes`] gives them).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let mut copied: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Malformed)?;
        let mut repr = FieldBytes::from(copied);
        copied.zeroize();
        let scalar = Option::<NonZeroScalar>::from(NonZeroScalar::from_repr(repr)).ok_or(KeyError::Malformed);
        repr.zeroize();
        Ok(Self {
            scalar: scalar?,
            address: OnceLock::new(),
        })
    }

    /// The key, with the address it is already known to sign for: one recorded when it
    /// was provisioned, or derived from the same stored value before. Saves deriving it.
    pub fn known_to_sign_for(self, address: Address) -> Self {
        debug_assert_eq!(
            derive_address(&self.scalar),
            address,
            "a key was paired with another's address"
        );
        // Freshly made or parsed keys have not derived theirs yet; if this one has, it
        // keeps what it derived.
        let _ = self.address.set(address);
        self
    }

    /// The private key's bytes, to be sealed: never printed, zeroized when dropped.
    pub fn secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut repr = self.scalar.to_repr();
        let bytes = Zeroizing::new(repr.to_vec());
        repr.zeroize();
        bytes
    }

    /// The public key, uncompressed SEC1, 0x-prefixed hex.
    pub fn public_key_hex(&self) -> String {
        format!("0x{}", crate::rpc::hex_of(&public_key(&self.scalar)))
    }

    /// The address this key signs for.
    pub fn address(&self) -> Address {
        *self.address.get_or_init(|| derive_address(&self.scalar))
    }

    /// Signs a 32-byte prehash (deterministic nonce, RFC 6979), with low `s` and the
    /// recovery id Ethereum needs.
    pub(crate) fn sign_prehash(&self, prehash: &[u8; 32]) -> Result<(Signature, RecoveryId), k256::ecdsa::Error> {
        let scalar: &k256::Scalar = self.scalar.as_ref();
        let (signature, recovery) =
            scalar.try_sign_prehashed_rfc6979::<k256::sha2::Sha256>(FieldBytes::from_slice(prehash), &[])?;
        Ok((signature, recovery.ok_or_else(k256::ecdsa::Error::new)?))
    }
}

/// The uncompressed SEC1 encoding of the key's public point.
fn public_key(scalar: &NonZeroScalar) -> Vec<u8> {
    let point = ProjectivePoint::mul_by_generator(scalar.as_ref()).to_affine();
    point.to_encoded_point(false).as_bytes().to_vec()
}

fn derive_address(scalar: &NonZeroScalar) -> Address {
    Address::from_raw_public_key(&public_key(scalar)[1..])
}

impl Drop for PrivateKey {
    fn drop(&mut self) {
        self.scalar.zeroize();
    }
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({})", self.address())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// anvil's first dev account: a public test key.
    const ANVIL_0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    #[test]
    fn the_address_is_derived_from_the_key() {
        let key = PrivateKey::parse_hex(ANVIL_0).unwrap();
        assert_eq!(
            key.address().to_string().to_lowercase(),
            "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
        );
        assert!(!format!("{key:?}").contains("ac0974"));
    }

    #[test]
    fn a_generated_key_round_trips_through_its_bytes() {
        let key = PrivateKey::generate().unwrap();
        let again = PrivateKey::from_bytes(&key.secret_bytes()).unwrap();
        assert_eq!(again.address(), key.address());
        assert_eq!(key.public_key_hex().len(), 2 + 130);
        assert_ne!(PrivateKey::generate().unwrap().address(), key.address());
        let anvil = PrivateKey::parse_hex(ANVIL_0).unwrap();
        assert!(
            anvil
                .public_key_hex()
                .starts_with("0x048318535b54105d4a7aae60c08fc45f9687181b4fdfc625bd1a753fa7397fed75")
        );
    }

    #[test]
    fn the_public_key_is_the_one_k256_derives_and_a_signature_recovers_to_the_address() {
        let key = PrivateKey::generate().unwrap();
        let reference = k256::ecdsa::SigningKey::from_slice(&key.secret_bytes()).unwrap();
        let encoded = reference.verifying_key().to_encoded_point(false);
        assert_eq!(
            key.public_key_hex(),
            format!("0x{}", crate::rpc::hex_of(encoded.as_bytes()))
        );
        assert_eq!(key.address(), Address::from_public_key(reference.verifying_key()));
        let prehash = [7u8; 32];
        let (signature, recovery) = key.sign_prehash(&prehash).unwrap();
        assert_eq!(
            (signature, recovery),
            reference.sign_prehash_recoverable(&prehash).unwrap(),
            "the same deterministic signature"
        );
        let recovered = k256::ecdsa::VerifyingKey::recover_from_prehash(&prehash, &signature, recovery).unwrap();
        assert_eq!(Address::from_public_key(&recovered), key.address());
    }

    #[test]
    fn malformed_keys_are_refused_without_echoing_them() {
        for bad in ["", "0x12", "zz", &"0".repeat(64)] {
            let error = PrivateKey::parse_hex(bad).unwrap_err();
            assert_eq!(
                error.to_string(),
                "the signing key is not a 32-byte hex secp256k1 private key"
            );
        }
    }
}
