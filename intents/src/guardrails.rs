//! An agent's limits on what it may send, checked before anything is signed. Pure: what
//! the agent spent and signed so far is passed in, read from the agent's stream, whose
//! expected version makes the check and the spend one atomic step.

use std::collections::BTreeMap;

use domain::wei::Wei;

use crate::rpc::hex_of;
use crate::token_call::{TokenCall, token_call};

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
        if !self.to_allowlist.is_empty() && !listed(&self.to_allowlist, to) && !callable {
            return violation(
                "tx_to_allowlist",
                format!("{to} is not on the agent's recipient allowlist"),
            );
        }
        if !self.to_allowlist.is_empty() {
            match token_call(data) {
                Some(TokenCall::Names { method, party }) => {
                    let party = format!("0x{}", hex_of(party.as_slice()));
                    if !listed(&self.to_allowlist, &party) {
                        return violation(
                            "tx_to_allowlist",
                            format!("{method} names {party}, which is not on the agent's recipient allowlist"),
                        );
                    }
                }
                Some(TokenCall::Malformed { method }) => {
                    return violation(
                        "tx_to_allowlist",
                        format!("{method} with arguments that name no address cannot be checked"),
                    );
                }
                None => {}
            }
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
    use super::*;
    use proptest::prelude::*;

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

    /// ERC-20 `transfer(party, 1)`.
    fn token_transfer(party: &str) -> Vec<u8> {
        let mut data = vec![0xa9, 0x05, 0x9c, 0xbb];
        data.extend_from_slice(&[0; 12]);
        data.extend_from_slice(&crate::hex::decode(party).unwrap());
        data.extend_from_slice(&[1; 32]);
        data
    }

    #[test]
    fn a_token_call_pays_only_a_listed_recipient_on_a_listed_contract() {
        const TOKEN: &str = "0x5fbdb2315678afecb367f032d93f642f64180aa3";
        let stranger = "0x0000000000000000000000000000000000000001";
        let rails = Guardrails {
            to_allowlist: vec![RECIPIENT.into()],
            token_allowlist: vec![TOKEN.into()],
            ..Guardrails::default()
        };
        let call = |to, data: &[u8]| {
            let outgoing = Outgoing {
                data,
                ..transfer(to, Wei::ZERO)
            };
            rails.check(outgoing, SoFar::default()).err().map(|v| v.rule)
        };
        assert_eq!(
            call(TOKEN, &token_transfer(RECIPIENT)),
            None,
            "the contract is callable"
        );
        assert_eq!(
            call(TOKEN, &token_transfer(stranger)),
            Some("tx_to_allowlist"),
            "the tokens would go to a stranger"
        );
        let mut dirty = token_transfer(RECIPIENT);
        dirty[4] = 0xff;
        assert_eq!(call(TOKEN, &dirty), Some("tx_to_allowlist"), "no address, no check");
        assert_eq!(call(TOKEN, &[0xd0, 0xe3, 0x0d, 0xb0]), None, "a call naming no party");
        assert_eq!(call(stranger, &[0xd0, 0xe3, 0x0d, 0xb0]), Some("tx_to_allowlist"));
        assert_eq!(
            call(RECIPIENT, &[0xd0, 0xe3, 0x0d, 0xb0]),
            Some("tx_token_allowlist"),
            "a listed recipient is no listed contract"
        );
        assert_eq!(call(RECIPIENT, &[]), None, "a plain transfer calls nothing");
        let tokens_only = Guardrails {
            token_allowlist: vec![TOKEN.into()],
            ..Guardrails::default()
        };
        let outgoing = Outgoing {
            data: &token_transfer(stranger),
            ..transfer(TOKEN, Wei::ZERO)
        };
        assert!(
            tokens_only.check(outgoing, SoFar::default()).is_ok(),
            "without a recipient allowlist, any recipient"
        );
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
