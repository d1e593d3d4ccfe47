//! A secret value as events carry it: encrypted under its version's data key.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use domain::VaultId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::aead_key::NONCE_LEN;

/// Associated data of a sealed value: this prefix, the vault id, the version, the path.
const SECRET_VALUE_AAD: &[u8] = b"keyward/secret-value/v1\0";

/// A sealed secret value. Serializes as `{"nonce": "<base64>", "ciphertext": "<base64>"}`
/// (standard alphabet, padded); the ciphertext ends with the 16-byte GCM tag.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedValue {
    #[serde(serialize_with = "to_base64", deserialize_with = "nonce_from_base64")]
    pub nonce: [u8; NONCE_LEN],
    #[serde(serialize_with = "to_base64", deserialize_with = "bytes_from_base64")]
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for SealedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedValue")
            .field("nonce", &STANDARD.encode(self.nonce))
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// What a sealed value is bound to: a value moved to another vault, path or version no
/// longer opens. The path goes last; everything before it has a fixed length.
pub(crate) fn value_aad(vault: VaultId, path: &str, version: u64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(SECRET_VALUE_AAD.len() + 16 + 8 + path.len());
    aad.extend_from_slice(SECRET_VALUE_AAD);
    aad.extend_from_slice(vault.0.as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad.extend_from_slice(path.as_bytes());
    aad
}

fn to_base64<S: Serializer>(bytes: impl AsRef<[u8]>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&STANDARD.encode(bytes))
}

fn bytes_from_base64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    STANDARD
        .decode(text.as_bytes())
        .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
}

fn nonce_from_base64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; NONCE_LEN], D::Error> {
    let bytes = bytes_from_base64(deserializer)?;
    let len = bytes.len();
    bytes
        .try_into()
        .map_err(|_| serde::de::Error::custom(format!("a nonce is {NONCE_LEN} bytes, not {len}")))
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn a_sealed_value_serializes_as_base64_strings() {
        let sealed = SealedValue {
            nonce: [1; NONCE_LEN],
            ciphertext: vec![0xff, 0x00, 0x10],
        };
        let json = serde_json::to_string(&sealed).unwrap();
        assert_eq!(json, r#"{"nonce":"AQEBAQEBAQEBAQEB","ciphertext":"/wAQ"}"#);
        assert_eq!(serde_json::from_str::<SealedValue>(&json).unwrap(), sealed);
        assert_eq!(
            format!("{sealed:?}"),
            r#"SealedValue { nonce: "AQEBAQEBAQEBAQEB", ciphertext_len: 3 }"#
        );
    }

    #[test]
    fn a_sealed_value_with_a_bad_nonce_or_bad_base64_does_not_deserialize() {
        let short = serde_json::from_str::<SealedValue>(r#"{"nonce":"AQEB","ciphertext":"/wAQ"}"#).unwrap_err();
        assert!(short.to_string().contains("a nonce is 12 bytes, not 3"), "{short}");
        let garbage =
            serde_json::from_str::<SealedValue>(r#"{"nonce":"AQEBAQEBAQEBAQEB","ciphertext":"%%"}"#).unwrap_err();
        assert!(garbage.to_string().contains("invalid base64"), "{garbage}");
    }

    #[test]
    fn the_value_aad_is_prefix_vault_version_path() {
        let aad = value_aad(VaultId(Uuid::from_u128(1)), "a/b", 2);
        let mut expected = b"keyward/secret-value/v1\0".to_vec();
        expected.extend_from_slice(&1u128.to_be_bytes());
        expected.extend_from_slice(&2u64.to_be_bytes());
        expected.extend_from_slice(b"a/b");
        assert_eq!(aad, expected);
    }
}
