//! An agent's limits on what it may send, checked before anything is signed. Pure: the
//! amount spent in the last 24 hours is passed in, read from the agent's stream, whose
//! expected version makes the check and the spend one atomic step.

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
    /// `chain_id`), given what was spent in the rolling 24 hours before it.
    pub fn check(
        &self,
        chain_name: &str,
        chain_id: u64,
        to: &str,
        value: Wei,
        spent_last_24h: Wei,
    ) -> Result<(), Violation> {
        let chain_allowed = self
            .allowed_chains
            .iter()
            .any(|allowed| allowed == chain_name || *allowed == chain_id.to_string());
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RECIPIENT: &str = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";

    fn eth(text: &str) -> Wei {
        Wei::from_eth_str(text).unwrap()
    }

    #[test]
    fn each_rule_refuses_on_its_own() {
        let rails = Guardrails {
            allowed_chains: vec!["anvil".into()],
            to_allowlist: vec![RECIPIENT.into()],
            max_value: Some(eth("1")),
            daily_limit: Some(eth("2")),
        };
        assert!(rails.check("anvil", 31337, RECIPIENT, eth("1"), eth("1")).is_ok());
        let by_id = Guardrails {
            allowed_chains: vec!["31337".into()],
            ..rails.clone()
        };
        let checksummed = RECIPIENT.to_uppercase().replace("0X", "0x");
        assert!(by_id.check("anvil", 31337, &checksummed, eth("1"), Wei::ZERO).is_ok());
        let rule = |result: Result<(), Violation>| result.unwrap_err().rule;
        assert_eq!(
            rule(rails.check("base", 8453, RECIPIENT, eth("1"), Wei::ZERO)),
            "tx_allowed_chains"
        );
        assert_eq!(
            rule(rails.check(
                "anvil",
                31337,
                "0x0000000000000000000000000000000000000001",
                eth("1"),
                Wei::ZERO
            )),
            "tx_to_allowlist"
        );
        assert_eq!(
            rule(rails.check("anvil", 31337, RECIPIENT, eth("1.000000000000000001"), Wei::ZERO)),
            "tx_max_value_eth"
        );
        assert_eq!(
            rule(rails.check("anvil", 31337, RECIPIENT, eth("0.5"), eth("1.6"))),
            "tx_daily_limit_eth"
        );
    }

    #[test]
    fn no_settings_means_no_limits() {
        assert!(
            Guardrails::default()
                .check("any", 1, RECIPIENT, Wei::CEILING, Wei::CEILING)
                .is_ok()
        );
    }

    proptest! {
        /// Whatever the amounts, an accepted transaction never takes the 24-hour total
        /// over the limit.
        #[test]
        fn accepted_spend_never_passes_the_daily_limit(limit in 0u128..10u128.pow(24), spent in 0u128..10u128.pow(24), value in 0u128..10u128.pow(24)) {
            let rails = Guardrails { daily_limit: Some(Wei::from_wei(limit)), ..Guardrails::default() };
            let accepted = rails.check("anvil", 31337, RECIPIENT, Wei::from_wei(value), Wei::from_wei(spent)).is_ok();
            prop_assert_eq!(accepted, spent + value <= limit);
        }
    }
}
