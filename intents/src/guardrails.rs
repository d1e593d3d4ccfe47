//! An agent's limits on what it may send, checked before anything is signed. Pure: what
//! the agent spent and signed so far is passed in, read from the agent's stream, whose
//! expected version makes the check and the spend one atomic step.

use std::collections::BTreeMap;

use domain::wei::Wei;

use crate::rpc::hex_of;
use crate::token_call::{METHODS, TokenCall, token_call};

/// The limits an agent's human set; `None` or empty means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guardrails {
    /// Chain names or decimal chain ids the agent may use.
    pub allowed_chains: Vec<String>,
    /// Lower-cased 0x addresses the agent may send to, or name in a token call.
    pub to_allowlist: Vec<String>,
    /// Lower-cased 0x addresses of the contracts the agent may call.
    pub token_allowlist: Vec<String>,
    pub max_value: Option<Wei>,
    pub daily_limit: Option<Wei>,
    /// Per chain name or decimal id: the most the agent's transactions there may pay in
    /// fees in 24 hours, in the chain's native units.
    pub overhead_budget: BTreeMap<String, Wei>,
    /// The most transactions the agent may sign in one UTC calendar day.
    pub max_per_day: Option<u32>,
}

/// A transaction as the guardrails judge it.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub chain_name: &'a str,
    pub chain_id: u64,
    /// Lower-cased 0x address.
    pub to: &'a str,
    pub value: Wei,
    /// Its calldata: empty for a plain transfer.
    pub data: &'a [u8],
}

/// What the agent did before the transaction being checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SoFar {
    /// The value of its transactions signed in the rolling 24 hours, failures aside.
    pub spent_last_24h: Wei,
    /// How many transactions it signed since midnight UTC, failures aside.
    pub signed_today: u64,
}

/// The rule a transaction breaks; `rule` is the setting's wire name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rule}: {detail}")]
pub struct Violation {
    pub rule: &'static str,
    pub detail: String,
}

fn violation(rule: &'static str, detail: String) -> Result<(), Violation> {
    Err(Violation { rule, detail })
}

impl Guardrails {
    /// Checks one transaction, given what the agent did before it.
    pub fn check(&self, outgoing: Outgoing<'_>, so_far: SoFar) -> Result<(), Violation> {
        let Outgoing {
            chain_name,
            chain_id,
            to,
            value,
            data,
        } = outgoing;
        let SoFar {
            spent_last_24h,
            signed_today,
        } = so_far;
        let chain_allowed = self
            .allowed_chains
            .iter()
            .any(|allowed| names(allowed, chain_name, chain_id));
        if !self.allowed_chains.is_empty() && !chain_allowed {
            return violation(
                "tx_allowed_chains",
                format!("chain {chain_name:?} is not among the agent's allowed chains"),
            );
        }
        let is_call = !data.is_empty();
        let callable = is_call && listed(&self.token_allowlist, to);
        if !self.to_allowlist.is_empty() {
            self.check_recipients(to, value, data, callable)?;
        }
        if is_call && !self.token_allowlist.is_empty() && !callable {
            return violation(
                "tx_token_allowlist",
                format!("{to} is not on the agent's allowlist of contracts it may call"),
            );
        }
        if let Some(max) = self.max_value
            && value > max
        {
            return violation(
                "tx_max_value_eth",
                format!(
                    "{} ETH is over the per-transaction cap of {} ETH",
                    value.to_eth_string(),
                    max.to_eth_string()
                ),
            );
        }
        if let Some(limit) = self.daily_limit {
            let total = spent_last_24h.checked_add(value);
            if total.is_none_or(|total| total > limit) {
                return violation(
                    "tx_daily_limit_eth",
                    format!(
                        "{} ETH more would pass the 24-hour limit of {} ETH ({} ETH spent)",
                        value.to_eth_string(),
                        limit.to_eth_string(),
                        spent_last_24h.to_eth_string()
                    ),
                );
            }
        }
        if let Some(max) = self.max_per_day
            && signed_today >= u64::from(max)
        {
            return violation(
                "tx_max_per_day",
                format!("the agent signed {signed_today} transactions today (UTC), its limit is {max}"),
            );
        }
        Ok(())
    }

    /// With a recipient allowlist: `to` is on it, or is a contract the agent may call and
    /// gets no ETH; and calldata calls a method keyward reads ([`crate::token_call`]) whose
    /// party is on it. A call keyward cannot read is refused: it might pay anyone.
    fn check_recipients(&self, to: &str, value: Wei, data: &[u8], callable: bool) -> Result<(), Violation> {
        let to_listed = listed(&self.to_allowlist, to);
        if !to_listed && !callable {
            return violation(
                "tx_to_allowlist",
                format!("{to} is not on the agent's recipient allowlist"),
            );
        }
        if !to_listed && !value.is_zero() {
            return violation(
                "tx_to_allowlist",
                format!(
                    "{} ETH would go to {to}, which is not on the agent's recipient allowlist \
                     (a contract the agent may call is not a recipient of its ETH)",
                    value.to_eth_string()
                ),
            );
        }
        match token_call(data) {
            None => Ok(()),
            Some(TokenCall::Names { method, role, party }) => {
                let party = format!("0x{}", hex_of(party.as_slice()));
                if listed(&self.to_allowlist, &party) {
                    Ok(())
                } else {
                    violation(
                        "tx_to_allowlist",
                        format!(
                            "{method} names {party} as {}, which is not on the agent's recipient allowlist",
                            role.as_str()
                        ),
                    )
                }
            }
            Some(TokenCall::Malformed { method }) => violation(
                "tx_to_allowlist",
                format!("{method} with arguments that do not decode as its own cannot be checked"),
            ),
            Some(TokenCall::Unread { selector }) => {
                let call = match selector {
                    Some(selector) => format!("calldata with selector 0x{}", hex_of(&selector)),
                    None => "calldata of fewer than 4 bytes".to_owned(),
                };
                violation(
                    "tx_to_allowlist",
                    format!(
                        "{call} calls no method keyward reads, so whom it pays cannot be checked; with a \
                         recipient allowlist, calldata may only call {}",
                        read_methods()
                    ),
                )
            }
        }
    }

    /// Checks what one transaction on the chain named `chain_name` (id `chain_id`) may pay
    /// the network, `max_fee`, given what the agent's transactions there may have paid in
    /// the rolling 24 hours before it. A budget under both the chain's name and its id is
    /// held to the smaller.
    pub fn check_fees(
        &self,
        chain_name: &str,
        chain_id: u64,
        max_fee: Wei,
        fees_last_24h: Wei,
    ) -> Result<(), Violation> {
        let budget = self
            .overhead_budget
            .iter()
            .filter(|(chain, _)| names(chain, chain_name, chain_id))
            .map(|(_, budget)| *budget)
            .min();
        if let Some(budget) = budget {
            let total = fees_last_24h.checked_add(max_fee);
            if total.is_none_or(|total| total > budget) {
                return violation(
                    "tx_overhead_budget",
                    format!(
                        "fees of up to {} (gas limit times the highest price per gas) would pass the 24-hour fee \
                         budget of {} on {chain_name} ({} held by earlier transactions)",
                        max_fee.to_eth_string(),
                        budget.to_eth_string(),
                        fees_last_24h.to_eth_string()
                    ),
                );
            }
        }
        Ok(())
    }
}

/// The signatures of the methods keyward reads, comma-separated.
fn read_methods() -> String {
    let signatures: Vec<&str> = METHODS.iter().map(|method| method.signature).collect();
    signatures.join(", ")
}

/// Whether `address` is on `list` (lower-cased addresses).
fn listed(list: &[String], address: &str) -> bool {
    list.iter().any(|listed| listed.eq_ignore_ascii_case(address))
}

/// Whether a guardrail's `reference` (a chain name or decimal id) names this chain, as
/// the chain registry resolves them.
fn names(reference: &str, chain_name: &str, chain_id: u64) -> bool {
    reference == chain_name || reference == chain_id.to_string()
}

#[cfg(test)]
mod tests {
    use alloy_primitives::Address;
    use proptest::prelude::*;

    use super::*;
    use crate::token_call::Method;

    const RECIPIENT: &str = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";

    fn eth(text: &str) -> Wei {
        Wei::from_eth_str(text).unwrap()
    }

    /// A plain transfer of `value` to `to` on anvil.
    fn transfer(to: &str, value: Wei) -> Outgoing<'_> {
        Outgoing {
            chain_name: "anvil",
            chain_id: 31337,
            to,
            value,
            data: &[],
        }
    }

    fn spent(eth_text: &str) -> SoFar {
        SoFar {
            spent_last_24h: eth(eth_text),
            signed_today: 0,
        }
    }

    #[test]
    fn each_rule_refuses_on_its_own() {
        let rails = Guardrails {
            allowed_chains: vec!["anvil".into()],
            to_allowlist: vec![RECIPIENT.into()],
            max_value: Some(eth("1")),
            daily_limit: Some(eth("2")),
            overhead_budget: BTreeMap::from([("anvil".into(), eth("0.01"))]),
            max_per_day: Some(3),
            ..Guardrails::default()
        };
        let nearly_all = SoFar {
            spent_last_24h: eth("1"),
            signed_today: 2,
        };
        assert!(rails.check(transfer(RECIPIENT, eth("1")), nearly_all).is_ok());
        assert!(rails.check_fees("anvil", 31337, eth("0.004"), eth("0.006")).is_ok());
        let by_id = Guardrails {
            allowed_chains: vec!["31337".into()],
            ..rails.clone()
        };
        let checksummed = RECIPIENT.to_uppercase().replace("0X", "0x");
        assert!(by_id.check(transfer(&checksummed, eth("1")), SoFar::default()).is_ok());
        let rule = |result: Result<(), Violation>| result.unwrap_err().rule;
        assert_eq!(
            rule(rails.check(
                Outgoing {
                    chain_name: "base",
                    chain_id: 8453,
                    ..transfer(RECIPIENT, eth("1"))
                },
                SoFar::default()
            )),
            "tx_allowed_chains"
        );
        let stranger = "0x0000000000000000000000000000000000000001";
        assert_eq!(
            rule(rails.check(transfer(stranger, eth("1")), SoFar::default())),
            "tx_to_allowlist"
        );
        assert_eq!(
            rule(rails.check(transfer(RECIPIENT, eth("1.000000000000000001")), SoFar::default())),
            "tx_max_value_eth"
        );
        assert_eq!(
            rule(rails.check(transfer(RECIPIENT, eth("0.5")), spent("1.6"))),
            "tx_daily_limit_eth"
        );
        let all_of_today = SoFar {
            signed_today: 3,
            ..SoFar::default()
        };
        assert_eq!(
            rule(rails.check(transfer(RECIPIENT, Wei::ZERO), all_of_today)),
            "tx_max_per_day"
        );
        assert_eq!(
            rule(rails.check_fees("anvil", 31337, eth("0.004"), eth("0.006000000000000001"))),
            "tx_overhead_budget"
        );
    }

    const TOKEN: &str = "0x5fbdb2315678afecb367f032d93f642f64180aa3";
    const STRANGER: &str = "0x0000000000000000000000000000000000000001";

    /// `method` naming `party`, every other address a third one's.
    fn naming(method: &Method, party: &str) -> Vec<u8> {
        let party = party.parse().unwrap();
        crate::token_call::tests::calldata(method, party, Address::repeat_byte(0x33), 1)
    }

    /// ERC-20 `transfer(party, 1)`.
    fn token_transfer(party: &str) -> Vec<u8> {
        naming(&METHODS[0], party)
    }

    /// A recipient allowlist and a contract the agent may call.
    fn listed_token() -> Guardrails {
        Guardrails {
            to_allowlist: vec![RECIPIENT.into()],
            token_allowlist: vec![TOKEN.into()],
            ..Guardrails::default()
        }
    }

    /// What `rails` say to a call of `to` with `data` and no value.
    fn call(rails: &Guardrails, to: &str, data: &[u8]) -> Result<(), Violation> {
        let outgoing = Outgoing {
            data,
            ..transfer(to, Wei::ZERO)
        };
        rails.check(outgoing, SoFar::default())
    }

    #[test]
    fn a_token_call_pays_only_a_listed_recipient_on_a_listed_contract() {
        let rails = listed_token();
        let rule = |to, data: &[u8]| call(&rails, to, data).err().map(|v| v.rule);
        for method in METHODS {
            let signature = method.signature;
            assert_eq!(rule(TOKEN, &naming(&method, RECIPIENT)), None, "{signature}");
            assert_eq!(
                call(&rails, TOKEN, &naming(&method, STRANGER)).unwrap_err().to_string(),
                format!(
                    "tx_to_allowlist: {signature} names {STRANGER} as {}, which is not on the agent's recipient \
                     allowlist",
                    method.role.as_str()
                )
            );
        }
        let mut dirty = token_transfer(RECIPIENT);
        dirty[4] = 0xff;
        assert_eq!(rule(TOKEN, &dirty), Some("tx_to_allowlist"), "no address, no check");
        assert_eq!(rule(STRANGER, &token_transfer(RECIPIENT)), Some("tx_to_allowlist"));
        assert_eq!(
            rule(RECIPIENT, &token_transfer(RECIPIENT)),
            Some("tx_token_allowlist"),
            "a listed recipient is no listed contract"
        );
        assert_eq!(rule(RECIPIENT, &[]), None, "a plain transfer calls nothing");
        let paying = Outgoing {
            data: &token_transfer(RECIPIENT),
            ..transfer(TOKEN, Wei::from_wei(1))
        };
        assert_eq!(
            rails.check(paying, SoFar::default()).unwrap_err().to_string(),
            "tx_to_allowlist: 0.000000000000000001 ETH would go to 0x5fbdb2315678afecb367f032d93f642f64180aa3, \
             which is not on the agent's recipient allowlist (a contract the agent may call is not a recipient of \
             its ETH)"
        );
        let tokens_only = Guardrails {
            token_allowlist: vec![TOKEN.into()],
            ..Guardrails::default()
        };
        assert!(
            call(&tokens_only, TOKEN, &token_transfer(STRANGER)).is_ok(),
            "without a recipient allowlist, any recipient"
        );
        assert!(
            call(&tokens_only, TOKEN, &[0xd0, 0xe3, 0x0d, 0xb0]).is_ok(),
            "and any call"
        );
    }

    #[test]
    fn with_a_recipient_allowlist_a_call_keyward_cannot_read_is_refused_naming_what_it_reads() {
        let rails = listed_token();
        // WETH's `deposit()`, to a listed contract and to a listed recipient.
        let deposit = [0xd0, 0xe3, 0x0d, 0xb0];
        for to in [TOKEN, RECIPIENT] {
            let refused = call(&rails, to, &deposit).unwrap_err();
            assert_eq!(refused.rule, "tx_to_allowlist");
            assert!(
                refused.detail.starts_with(
                    "calldata with selector 0xd0e30db0 calls no method keyward reads, so whom it pays cannot be \
                     checked; with a recipient allowlist, calldata may only call transfer(address,uint256), \
                     transferFrom(address,address,uint256), approve(address,uint256), "
                ),
                "{refused}"
            );
            for method in METHODS {
                assert!(refused.detail.contains(method.signature), "{}", method.signature);
            }
        }
        assert!(
            call(&rails, TOKEN, &[0xa9, 0x05, 0x9c])
                .unwrap_err()
                .detail
                .starts_with("calldata of fewer than 4 bytes calls no method keyward reads")
        );
        // The unlisted overloads, e.g. ERC-1363's `transferAndCall` and ERC-777's `send`
        // with other arguments, are not the listed ones.
        for unlisted in ["transferAndCall(address,uint256,bytes,bytes)", "send(address,uint256)"] {
            let selector = &alloy_primitives::keccak256(unlisted)[..4];
            let mut data = selector.to_vec();
            data.extend_from_slice(&token_transfer(RECIPIENT)[4..]);
            assert_eq!(
                call(&rails, TOKEN, &data).unwrap_err().rule,
                "tx_to_allowlist",
                "{unlisted}"
            );
        }
    }

    #[test]
    fn a_fee_budget_holds_on_its_chain_alone_under_its_name_or_id_and_the_smaller_wins() {
        let rails = Guardrails {
            overhead_budget: BTreeMap::from([("anvil".into(), eth("0.01")), ("31337".into(), eth("0.002"))]),
            ..Guardrails::default()
        };
        assert!(rails.check_fees("anvil", 31337, eth("0.002"), Wei::ZERO).is_ok());
        assert!(rails.check_fees("anvil", 31337, eth("0.0021"), Wei::ZERO).is_err());
        assert!(rails.check_fees("base", 8453, eth("5"), eth("5")).is_ok());
        let by_name = Guardrails {
            overhead_budget: BTreeMap::from([("anvil".into(), eth("0.01"))]),
            ..Guardrails::default()
        };
        assert!(by_name.check_fees("anvil", 31337, eth("0.0021"), Wei::ZERO).is_ok());
    }

    #[test]
    fn no_settings_means_no_limits() {
        let everything = SoFar {
            spent_last_24h: Wei::CEILING,
            signed_today: u64::MAX,
        };
        let unlimited = Guardrails::default();
        assert!(unlimited.check(transfer(RECIPIENT, Wei::CEILING), everything).is_ok());
        assert!(unlimited.check_fees("any", 1, Wei::CEILING, Wei::CEILING).is_ok());
    }

    proptest! {
        /// With a recipient allowlist, whatever the calldata to a contract the agent may
        /// call, it is accepted exactly when keyward reads it and it names a listed party.
        #[test]
        fn an_accepted_call_pays_or_empowers_only_a_listed_party(
            method in 0..METHODS.len(),
            listed_party in any::<bool>(),
            flip in proptest::option::of((any::<prop::sample::Index>(), 1u8..=255)),
            cut in proptest::option::of(any::<prop::sample::Index>()),
            noise in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
        ) {
            let mut data = naming(&METHODS[method], if listed_party { RECIPIENT } else { STRANGER });
            if let Some((at, mask)) = flip {
                let at = at.index(data.len());
                data[at] ^= mask;
            }
            if let Some(cut) = cut {
                data.truncate(cut.index(data.len()));
            }
            if let Some(noise) = noise {
                data = noise;
            }
            let recipient: Address = RECIPIENT.parse().unwrap();
            let names_listed = matches!(token_call(&data), Some(TokenCall::Names { party, .. }) if party == recipient);
            prop_assert_eq!(call(&listed_token(), TOKEN, &data).is_ok(), names_listed);
        }

        /// Whatever the amounts, an accepted transaction never takes the 24-hour total
        /// over the limit.
        #[test]
        fn accepted_spend_never_passes_the_daily_limit(limit in 0u128..10u128.pow(24), spent in 0u128..10u128.pow(24), value in 0u128..10u128.pow(24)) {
            let rails = Guardrails { daily_limit: Some(Wei::from_wei(limit)), ..Guardrails::default() };
            let so_far = SoFar { spent_last_24h: Wei::from_wei(spent), signed_today: 0 };
            let accepted = rails.check(transfer(RECIPIENT, Wei::from_wei(value)), so_far).is_ok();
            prop_assert_eq!(accepted, spent + value <= limit);
        }

        /// Whatever the fees, an accepted transaction never takes its chain's 24-hour fee
        /// total over the budget.
        #[test]
        fn accepted_fees_never_pass_the_budget(budget in 0u128..10u128.pow(24), held in 0u128..10u128.pow(24), fee in 0u128..10u128.pow(24)) {
            let rails = Guardrails {
                overhead_budget: BTreeMap::from([("anvil".into(), Wei::from_wei(budget))]),
                ..Guardrails::default()
            };
            let accepted = rails.check_fees("anvil", 31337, Wei::from_wei(fee), Wei::from_wei(held)).is_ok();
            prop_assert_eq!(accepted, held + fee <= budget);
        }
    }
}
