//! Properties of `Wei` parsing and formatting, over generated amounts and arbitrary strings.

use keyward_domain::wei::{Wei, WeiParseError};
use proptest::prelude::*;

/// What `digits[.frac]` ETH is in wei, computed with plain `u128` arithmetic, independently
/// of the parser; `None` above the ceiling. `int` has at most 10 digits, `frac` at most 18.
fn oracle_wei(int: &str, frac: &str) -> Option<u128> {
    let int: u128 = int.parse().ok()?;
    let frac_value: u128 = if frac.is_empty() { 0 } else { frac.parse().ok()? };
    let frac_scale = 10u128.pow(18 - u32::try_from(frac.len()).ok()?);
    let wei = int * Wei::WEI_PER_ETH + frac_value * frac_scale;
    (wei <= Wei::CEILING.as_u128()).then_some(wei)
}

proptest! {
    #[test]
    fn any_amount_up_to_the_ceiling_round_trips_through_its_eth_string(
        wei in 0..=Wei::CEILING.as_u128()
    ) {
        let w = Wei::from_wei(wei);
        prop_assert_eq!(Wei::from_eth_str(&w.to_eth_string()), Ok(w));
    }

    #[test]
    fn round_amounts_round_trip_through_their_eth_string(
        whole in 0..=Wei::MAX_ETH,
        frac in 0..Wei::WEI_PER_ETH,
        zeros in 0..=18u32,
    ) {
        let unit = 10u128.pow(zeros);
        let wei = whole * Wei::WEI_PER_ETH + frac / unit * unit;
        prop_assume!(wei <= Wei::CEILING.as_u128());
        let w = Wei::from_wei(wei);
        prop_assert_eq!(Wei::from_eth_str(&w.to_eth_string()), Ok(w));
    }

    #[test]
    fn parsing_agrees_with_integer_arithmetic(
        int in "[0-9]{1,10}",
        frac in "[0-9]{0,18}",
    ) {
        let text = if frac.is_empty() { int.clone() } else { format!("{int}.{frac}") };
        let expected = oracle_wei(&int, &frac)
            .map(Wei::from_wei)
            .ok_or(WeiParseError::AboveCeiling);
        prop_assert_eq!(Wei::from_eth_str(&text), expected);
    }

    #[test]
    fn more_than_eighteen_fractional_digits_are_rejected(
        int in "[0-9]{1,12}",
        first_eighteen in "[0-9]{18}",
        excess in "[0-9]{0,10}[1-9][0-9]{0,10}",
    ) {
        let text = format!("{int}.{first_eighteen}{excess}");
        prop_assert_eq!(
            Wei::from_eth_str(&text),
            Err(WeiParseError::TooPrecise { digits: 18 + excess.len() })
        );
    }

    #[test]
    fn a_minus_sign_on_a_well_formed_amount_is_negative(
        int in "[0-9]{1,30}",
        frac in "(\\.[0-9]{1,25})?",
    ) {
        prop_assert_eq!(
            Wei::from_eth_str(&format!("-{int}{frac}")),
            Err(WeiParseError::Negative)
        );
    }

    #[test]
    fn parsing_never_panics_on_arbitrary_strings(s in "\\PC*") {
        if let Ok(w) = Wei::from_eth_str(&s) {
            prop_assert!(w <= Wei::CEILING);
            prop_assert_eq!(Wei::from_eth_str(&w.to_eth_string()), Ok(w));
        }
        if let Ok(w) = Wei::from_wei_str(&s) {
            prop_assert_eq!(Wei::from_wei_str(&w.as_u128().to_string()), Ok(w));
        }
    }

    #[test]
    fn parsing_never_panics_on_near_miss_amounts(s in "[-+ .0-9eEx_]{0,40}") {
        if let Ok(w) = Wei::from_eth_str(&s) {
            prop_assert!(w <= Wei::CEILING);
            prop_assert_eq!(Wei::from_eth_str(&w.to_eth_string()), Ok(w));
        }
        let _ = Wei::from_wei_str(&s);
    }

    #[test]
    fn eth_string_is_canonical_for_every_u128(wei in any::<u128>()) {
        let text = Wei::from_wei(wei).to_eth_string();
        let (whole, frac) = text.split_once('.').unwrap_or((text.as_str(), ""));
        prop_assert_eq!(whole, (wei / Wei::WEI_PER_ETH).to_string());
        prop_assert!(frac.len() <= 18);
        prop_assert!(!frac.ends_with('0'));
        prop_assert_eq!(text.contains('.'), wei % Wei::WEI_PER_ETH != 0);
    }

    #[test]
    fn every_u128_round_trips_through_json(wei in any::<u128>()) {
        let w = Wei::from_wei(wei);
        let json = serde_json::to_string(&w).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&json, &format!("\"{wei}\""));
        let back: Wei =
            serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, w);
    }

    #[test]
    fn checked_sum_of_amounts_at_the_ceiling_never_overflows(
        amounts in proptest::collection::vec(0..=Wei::CEILING.as_u128(), 0..64)
    ) {
        let expected: u128 = amounts.iter().sum();
        prop_assert_eq!(
            Wei::checked_sum(amounts.into_iter().map(Wei::from_wei)),
            Some(Wei::from_wei(expected))
        );
    }
}
