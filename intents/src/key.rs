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
