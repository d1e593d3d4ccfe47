//! What an agent may sign besides transactions, through POST /v1/agents/{id}/sign: a
//! message (EIP-191), typed data (EIP-712), or a digest it computed itself. A signature
//! moves no value by itself, but one can authorize a contract to move the key's funds (an
//! EIP-2612 permit, an order), outside every transaction guardrail: each kind is off until
//! a human turns it on, typed data per signing domain.

use serde::{Deserialize, Serialize};

use crate::change::DomainError;

/// Whether typed data from a domain outside the allowlist is signed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Eip712Policy {
    #[default]
    Deny,
    Allow,
}

impl Eip712Policy {
    pub fn is_deny(&self) -> bool {
        *self == Eip712Policy::Deny
    }
}

/// One allowed EIP-712 signing domain: typed data matches when its domain has every field
/// the entry gives (an absent field matches any value). At least one is given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Eip712DomainEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, alias = "chainId", skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<u64>,
    /// Lower-cased 0x address.
    #[serde(default, alias = "verifyingContract", skip_serializing_if = "Option::is_none")]
    pub verifying_contract: Option<String>,
}

/// A signing domain as typed data declares it; the contract lower-cased 0x hex.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SigningDomain<'a> {
    pub name: Option<&'a str>,
    pub version: Option<&'a str>,
    pub chain_id: Option<u64>,
    pub verifying_contract: Option<&'a str>,
}

impl Eip712DomainEntry {
    /// Checks what the types cannot: an entry that names something, and a contract that is
    /// an address (lower-cased).
    pub fn validated(mut self) -> Result<Self, DomainError> {
        if self == Self::default() {
            return Err(DomainError::Invalid(
                "eip712_domain_allowlist entries name at least one of name, version, chain_id, verifying_contract"
                    .into(),
            ));
        }
        if let Some(contract) = &mut self.verifying_contract {
            let is_address = contract.len() == 42
                && contract.starts_with("0x")
                && contract[2..].bytes().all(|b| b.is_ascii_hexdigit());
            if !is_address {
                return Err(DomainError::Invalid(format!(
                    "eip712_domain_allowlist verifying_contract {contract:?} is not a 0x-prefixed 20-byte address"
                )));
            }
            contract.make_ascii_lowercase();
        }
        Ok(self)
    }

    pub fn admits(&self, domain: SigningDomain<'_>) -> bool {
        fn field<T: PartialEq>(wanted: Option<T>, declared: Option<T>) -> bool {
            wanted.is_none_or(|wanted| declared == Some(wanted))
        }
        field(self.name.as_deref(), domain.name)
            && field(self.version.as_deref(), domain.version)
            && field(self.chain_id, domain.chain_id)
            && field(self.verifying_contract.as_deref(), domain.verifying_contract)
    }
}

/// Whether typed data from `domain` may be signed under `policy` and `allowlist`.
pub fn domain_allowed(policy: Eip712Policy, allowlist: &[Eip712DomainEntry], domain: SigningDomain<'_>) -> bool {
    policy == Eip712Policy::Allow || allowlist.iter().any(|entry| entry.admits(domain))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTRACT: &str = "0xcccccccccccccccccccccccccccccccccccccccc";

    fn mail_domain() -> SigningDomain<'static> {
        SigningDomain {
            name: Some("Ether Mail"),
            version: Some("1"),
            chain_id: Some(1),
            verifying_contract: Some(CONTRACT),
        }
    }

    #[test]
    fn an_entry_admits_a_domain_with_every_field_it_names() {
        let by_contract = Eip712DomainEntry {
            verifying_contract: Some(CONTRACT.to_uppercase().replace("0X", "0x")),
            ..Eip712DomainEntry::default()
        }
        .validated()
        .unwrap();
        assert!(by_contract.admits(mail_domain()));
        let on_another_chain = Eip712DomainEntry {
            chain_id: Some(8453),
            ..by_contract.clone()
        };
        assert!(!on_another_chain.admits(mail_domain()));
        let named = Eip712DomainEntry {
            name: Some("Ether Mail".into()),
            ..Eip712DomainEntry::default()
        };
        assert!(named.admits(mail_domain()));
        assert!(
            !named.admits(SigningDomain {
                name: None,
                ..mail_domain()
            }),
            "a domain that does not declare a field the entry names is not admitted"
        );
    }

    #[test]
    fn typed_data_is_refused_unless_allowlisted_or_the_policy_allows_it() {
        let allowlist = [Eip712DomainEntry {
            name: Some("Permit2".into()),
            ..Eip712DomainEntry::default()
        }];
        assert!(!domain_allowed(Eip712Policy::default(), &[], mail_domain()));
        assert!(!domain_allowed(Eip712Policy::Deny, &allowlist, mail_domain()));
        assert!(domain_allowed(Eip712Policy::Allow, &allowlist, mail_domain()));
        let permit2 = SigningDomain {
            name: Some("Permit2"),
            ..mail_domain()
        };
        assert!(domain_allowed(Eip712Policy::Deny, &allowlist, permit2));
    }

    #[test]
    fn an_entry_naming_nothing_or_no_address_is_refused_and_camel_case_is_read() {
        assert!(Eip712DomainEntry::default().validated().is_err());
        let not_an_address = Eip712DomainEntry {
            verifying_contract: Some("0x1234".into()),
            ..Eip712DomainEntry::default()
        };
        assert!(not_an_address.validated().is_err());
        let read: Eip712DomainEntry = serde_json::from_str(
            r#"{"chainId": 1, "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"}"#,
        )
        .unwrap();
        assert_eq!(read.validated().unwrap().verifying_contract.as_deref(), Some(CONTRACT));
    }
}
