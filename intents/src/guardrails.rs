//! An agent's limits on what it may send, checked before anything is signed. Pure: what
//! the agent spent and signed so far is passed in, read from the agent's stream, whose
//! expected version makes the check and the spend one atomic step.

use std::collections::BTreeMap;

use domain::wei::Wei;

/// The limits an agent's human set; `None` or empty means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guardrails {
    /// Chain names or decimal chain ids the agent may use.
    pub allowed_chains: Vec<String>,
    /// Lower-cased 0x addresses the agent may send to.
    pub to_allowlist: Vec<String>,
    pub max_value: Option<Wei>,
    pub daily_limit: Option<Wei>,
    /// Per chain name or decimal id: the most the agent's transactions there may pay in
    /// fees in 24 hours, in the chain's native units.
    pub overhead_budget: BTreeMap<String, Wei>,
    /// The most transactions the agent may sign in one UTC calendar day.
    pub max_per_day: Option<u32>,
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
    /// Checks one transaction of `value` to `to` on the chain named `chain_name` (id
    /// `chain_id`), given what the agent did before it.
    pub fn check(&self, chain_name: &str, chain_id: u64, to: &str, value: Wei, so_far: SoFar) -> Result<(), Violation> {
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
        if !self.to_allowlist.is_empty() && !self.to_allowlist.iter().any(|a| a.eq_ignore_ascii_case(to)) {
            return violation(
                "tx_to_allowlist",
                format!("{to} is not on the agent's recipient allowlist"),
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
        };
        let nearly_all = SoFar {
            spent_last_24h: eth("1"),
            signed_today: 2,
        };
        assert!(rails.check("anvil", 31337, RECIPIENT, eth("1"), nearly_all).is_ok());
        assert!(rails.check_fees("anvil", 31337, eth("0.004"), eth("0.006")).is_ok());
        let by_id = Guardrails {
            allowed_chains: vec!["31337".into()],
            ..rails.clone()
        };
        let checksummed = RECIPIENT.to_uppercase().replace("0X", "0x");
        assert!(
            by_id
                .check("anvil", 31337, &checksummed, eth("1"), SoFar::default())
                .is_ok()
        );
        let rule = |result: Result<(), Violation>| result.unwrap_err().rule;
        assert_eq!(
            rule(rails.check("base", 8453, RECIPIENT, eth("1"), SoFar::default())),
            "tx_allowed_chains"
        );
        let stranger = "0x0000000000000000000000000000000000000001";
        assert_eq!(
            rule(rails.check("anvil", 31337, stranger, eth("1"), SoFar::default())),
            "tx_to_allowlist"
        );
        assert_eq!(
            rule(rails.check("anvil", 31337, RECIPIENT, eth("1.000000000000000001"), SoFar::default())),
            "tx_max_value_eth"
        );
        assert_eq!(
            rule(rails.check("anvil", 31337, RECIPIENT, eth("0.5"), spent("1.6"))),
            "tx_daily_limit_eth"
        );
        let all_of_today = SoFar {
            signed_today: 3,
            ..SoFar::default()
        };
        assert_eq!(
            rule(rails.check("anvil", 31337, RECIPIENT, Wei::ZERO, all_of_today)),
            "tx_max_per_day"
        );
        assert_eq!(
            rule(rails.check_fees("anvil", 31337, eth("0.004"), eth("0.006000000000000001"))),
            "tx_overhead_budget"
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
        assert!(unlimited.check("any", 1, RECIPIENT, Wei::CEILING, everything).is_ok());
        assert!(unlimited.check_fees("any", 1, Wei::CEILING, Wei::CEILING).is_ok());
    }

    proptest! {
        /// Whatever the amounts, an accepted transaction never takes the 24-hour total
        /// over the limit.
        #[test]
        fn accepted_spend_never_passes_the_daily_limit(limit in 0u128..10u128.pow(24), spent in 0u128..10u128.pow(24), value in 0u128..10u128.pow(24)) {
            let rails = Guardrails { daily_limit: Some(Wei::from_wei(limit)), ..Guardrails::default() };
            let so_far = SoFar { spent_last_24h: Wei::from_wei(spent), signed_today: 0 };
            let accepted = rails.check("anvil", 31337, RECIPIENT, Wei::from_wei(value), so_far).is_ok();
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
