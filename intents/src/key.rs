//! A secp256k1 private key, held only as long as one signature takes: the bytes are
//! zeroized when it drops, and nothing prints it.

use alloy_primitives::Address;
use k256::ecdsa::SigningKey;
use zeroize::Zeroizing;

pub struct PrivateKey {
    key: SigningKey,
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
        let key = SigningKey::from_slice(bytes.as_slice()).map_err(|_| KeyError::Malformed)?;
        Ok(Self { key })
    }

    /// A new random key, for an agent keyward provisions one for.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        // Almost every 32 bytes are a valid scalar; the loop only guards the rare rest.
        loop {
            getrandom::fill(bytes.as_mut_slice()).map_err(|_| KeyError::Random)?;
            if let Ok(key) = SigningKey::from_slice(bytes.as_slice()) {
                return Ok(Self { key });
            }
        }
    }

    /// The key from its 32 bytes (as [`PrivateKey::secret_bytes`] gives them).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let key = SigningKey::from_slice(bytes).map_err(|_| KeyError::Malformed)?;
        Ok(Self { key })
    }

    /// The private key's bytes, to be sealed: never printed, zeroized when dropped.
    pub fn secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.key.to_bytes().to_vec())
    }

    /// The public key, uncompressed SEC1, 0x-prefixed hex.
    pub fn public_key_hex(&self) -> String {
        let point = self.key.verifying_key().to_encoded_point(false);
        format!("0x{}", crate::rpc::hex_of(point.as_bytes()))
    }

    /// The address this key signs for.
    pub fn address(&self) -> Address {
        Address::from_public_key(self.key.verifying_key())
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.key
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
