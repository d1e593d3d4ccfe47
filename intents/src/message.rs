//! Signing what is not a transaction: an EIP-191 message, EIP-712 typed data, or a digest
//! the agent computed. Each comes to a 32-byte digest, judged against the agent's settings
//! and signed as the 65 bytes (r, s, v = 27 + y-parity) that `ecrecover` and wallets take.
//! Pure: the key comes in as an argument.

use alloy_dyn_abi::eip712::TypedData;
use alloy_primitives::{B256, eip191_hash_message};
use domain::agent::AgentSettings;
use domain::message_signing::{SigningDomain, domain_allowed};

use crate::guardrails::Violation;
use crate::key::PrivateKey;
use crate::rpc::hex_of;
use crate::tx::{SignError, sign_hash};

/// What an agent asks to have signed, parsed.
#[derive(Debug, Clone)]
pub enum Message {
    /// EIP-191 `personal_sign` of these bytes.
    Personal(Vec<u8>),
    Typed(Box<TypedData>),
    /// A digest signed as it is: nobody can tell what it commits to.
    Digest(B256),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("message must be hex-encoded bytes")]
    NotHex,
    #[error("hash must be a 0x-prefixed 32-byte hex digest")]
    NotADigest,
    #[error("typed_data is not EIP-712 typed data: {0}")]
    NotTypedData(String),
    #[error("typed_data cannot be hashed: {0}")]
    Unhashable(String),
}

impl Message {
    pub fn personal(hex_message: &str) -> Result<Self, MessageError> {
        crate::hex::decode(hex_message)
            .map(Message::Personal)
            .map_err(|_| MessageError::NotHex)
    }

    pub fn typed(json: serde_json::Value) -> Result<Self, MessageError> {
        serde_json::from_value(json)
            .map(|typed| Message::Typed(Box::new(typed)))
            .map_err(|e| MessageError::NotTypedData(e.to_string()))
    }

    pub fn digest(hex_digest: &str) -> Result<Self, MessageError> {
        let bytes = hex_digest
            .strip_prefix("0x")
            .and_then(|hex| crate::hex::decode(hex).ok())
            .ok_or(MessageError::NotADigest)?;
        <[u8; 32]>::try_from(bytes.as_slice())
            .map(|digest| Message::Digest(B256::from(digest)))
            .map_err(|_| MessageError::NotADigest)
    }

    /// The intent type it came as, on the wire and in the log.
    pub fn intent_type(&self) -> &'static str {
        match self {
            Message::Personal(_) => "personal_sign",
            Message::Typed(_) => "typed_data",
            Message::Digest(_) => "eip712_digest",
        }
    }

    /// The digest its signature commits to.
    pub fn hash(&self) -> Result<B256, MessageError> {
        match self {
            Message::Personal(bytes) => Ok(eip191_hash_message(bytes)),
            Message::Typed(typed) => typed
                .eip712_signing_hash()
                .map_err(|e| MessageError::Unhashable(e.to_string())),
            Message::Digest(digest) => Ok(*digest),
        }
    }

    /// Whether the agent may have it signed on the chain `chain_id`: each kind is off until
    /// a human turns it on, typed data per signing domain, and typed data bound to another
    /// chain is never signed here (a signature is good wherever its domain says).
    pub fn check(&self, settings: &AgentSettings, chain_id: u64) -> Result<(), Violation> {
        let refuse = |rule: &'static str, detail: String| Err(Violation { rule, detail });
        match self {
            Message::Personal(_) if !settings.message_signing_enabled => refuse(
                "message_signing_enabled",
                "personal_sign is not enabled for this agent".into(),
            ),
            Message::Digest(_) if !settings.raw_signing_enabled => refuse(
                "raw_signing_enabled",
                "signing a precomputed digest (blind signing) is not enabled for this agent".into(),
            ),
            Message::Typed(typed) => {
                let declared = &typed.domain;
                let domain_chain = declared.chain_id.map(|id| u64::try_from(id).ok());
                if domain_chain.is_some_and(|id| id != Some(chain_id)) {
                    return refuse(
                        "eip712_domain_allowlist",
                        format!("the typed data's domain is for another chain than {chain_id}"),
                    );
                }
                let contract = declared
                    .verifying_contract
                    .map(|address| format!("0x{}", hex_of(address.as_slice())));
                let domain = SigningDomain {
                    name: declared.name.as_deref(),
                    version: declared.version.as_deref(),
                    chain_id: domain_chain.flatten(),
                    verifying_contract: contract.as_deref(),
                };
                if domain_allowed(
                    settings.eip712_default_policy,
                    &settings.eip712_domain_allowlist,
                    domain,
                ) {
                    Ok(())
                } else {
                    refuse(
                        "eip712_domain_allowlist",
                        format!(
                            "typed data of domain {:?} (verifying contract {}) is not on the agent's EIP-712 allowlist",
                            domain.name.unwrap_or_default(),
                            domain.verifying_contract.unwrap_or("none")
                        ),
                    )
                }
            }
            Message::Personal(_) | Message::Digest(_) => Ok(()),
        }
    }
}

/// The 65-byte signature of `hash`: r, s, and v as 27 + y-parity.
pub fn sign_digest(key: &PrivateKey, hash: B256) -> Result<[u8; 65], SignError> {
    sign_hash(key, hash).map(|signature| signature.as_bytes())
}

#[cfg(test)]
mod tests {
    use alloy_primitives::Signature;
    use domain::message_signing::{Eip712DomainEntry, Eip712Policy};
    use serde_json::json;

    use super::*;

    const ANVIL_0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    /// The example of EIP-712 itself.
    fn mail() -> serde_json::Value {
        json!({
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}
                ],
                "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
                "Mail": [
                    {"name": "from", "type": "Person"}, {"name": "to", "type": "Person"},
                    {"name": "contents", "type": "string"}
                ]
            },
            "primaryType": "Mail",
            "domain": {
                "name": "Ether Mail", "version": "1", "chainId": 1,
                "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"
            },
            "message": {
                "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
                "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
                "contents": "Hello, Bob!"
            }
        })
    }

    fn settings(change: impl FnOnce(&mut AgentSettings)) -> AgentSettings {
        let mut settings = AgentSettings::named("signer".into(), None);
        change(&mut settings);
        settings
    }

    #[test]
    fn typed_data_hashes_as_eip_712_says_and_signatures_recover_to_the_key() {
        let typed = Message::typed(mail()).unwrap();
        assert_eq!(
            typed.hash().unwrap().to_string(),
            "0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2",
            "the digest in EIP-712's example"
        );
        let key = PrivateKey::parse_hex(ANVIL_0).unwrap();
        for message in [typed, Message::personal("0x68656c6c6f").unwrap()] {
            let hash = message.hash().unwrap();
            let signature = sign_digest(&key, hash).unwrap();
            assert!(matches!(signature[64], 27 | 28), "v is 27 or 28");
            let recovered = Signature::from_raw(&signature)
                .unwrap()
                .recover_address_from_prehash(&hash)
                .unwrap();
            assert_eq!(recovered, key.address());
        }
        let personal = Message::personal("68656c6c6f").unwrap();
        assert_eq!(
            personal.hash().unwrap(),
            eip191_hash_message(b"hello"),
            "0x is optional"
        );
    }

    #[test]
    fn each_kind_is_refused_until_a_human_turns_it_on() {
        let off = AgentSettings::named("signer".into(), None);
        let rule = |message: &Message, settings: &AgentSettings| message.check(settings, 1).err().map(|v| v.rule);
        let personal = Message::personal("0x00").unwrap();
        let digest = Message::digest(&format!("0x{}", "ab".repeat(32))).unwrap();
        let typed = Message::typed(mail()).unwrap();
        assert_eq!(rule(&personal, &off), Some("message_signing_enabled"));
        assert_eq!(rule(&digest, &off), Some("raw_signing_enabled"));
        assert_eq!(rule(&typed, &off), Some("eip712_domain_allowlist"));
        let on = settings(|s| {
            s.message_signing_enabled = true;
            s.raw_signing_enabled = true;
            s.eip712_domain_allowlist = vec![Eip712DomainEntry {
                verifying_contract: Some("0xcccccccccccccccccccccccccccccccccccccccc".into()),
                ..Eip712DomainEntry::default()
            }];
        });
        for message in [&personal, &digest, &typed] {
            assert_eq!(rule(message, &on), None, "{}", message.intent_type());
        }
        let allow_all = settings(|s| s.eip712_default_policy = Eip712Policy::Allow);
        assert_eq!(rule(&typed, &allow_all), None);
        assert_eq!(
            typed.check(&allow_all, 31337).err().map(|v| v.rule),
            Some("eip712_domain_allowlist"),
            "typed data for another chain is not signed, whatever the policy"
        );
    }

    #[test]
    fn malformed_input_is_told_apart() {
        assert_eq!(Message::personal("0xzz").unwrap_err(), MessageError::NotHex);
        assert_eq!(Message::digest("0x1234").unwrap_err(), MessageError::NotADigest);
        assert_eq!(
            Message::digest(&"ab".repeat(32)).unwrap_err(),
            MessageError::NotADigest,
            "a digest is 0x-prefixed"
        );
        assert!(matches!(
            Message::typed(json!({"types": {}})),
            Err(MessageError::NotTypedData(_))
        ));
        let mut unknown_type = mail();
        unknown_type["primaryType"] = json!("Letter");
        assert!(matches!(
            Message::typed(unknown_type).and_then(|m| m.hash()),
            Err(MessageError::NotTypedData(_) | MessageError::Unhashable(_))
        ));
    }
}
