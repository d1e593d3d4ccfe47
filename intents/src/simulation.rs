//! Simulating calls in sequence on a chain's latest state, each seeing what the ones before
//! it changed, with nothing signed or sent: the node's `eth_simulateV1` with native
//! transfers traced, so balance changes include value moved inside contracts. One call is
//! a bundle of one.

use std::collections::BTreeMap;

use alloy_primitives::{Address, Bytes, I256, U256};
use serde_json::{Value, json};

use crate::rpc::{RpcError, hex_of};

/// The address `traceTransfers` logs native transfers under (ERC-7528's ETH address),
/// with the ERC-20 `Transfer(address,address,uint256)` topic.
const NATIVE_TRANSFERS: &str = "0xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
const TRANSFER_TOPIC: &str = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";
/// `Error(string)`, the ABI of `revert("reason")`.
const ERROR_SELECTOR: [u8; 4] = [0x08, 0xc3, 0x79, 0xa0];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub from: Address,
    pub to: Address,
    pub value: U256,
    pub data: Bytes,
    pub gas_limit: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Simulated {
    pub succeeded: bool,
    pub gas_used: u64,
    pub revert_reason: Option<String>,
    /// Net native value per address, gas fees aside; empty when the call reverted.
    pub balance_changes: Vec<(Address, I256)>,
}

/// The `eth_simulateV1` parameters for `calls`, in one block on top of the latest.
pub fn request(calls: &[Call]) -> Value {
    let calls: Vec<Value> = calls
        .iter()
        .map(|call| {
            let mut json = json!({
                "from": call.from.to_string(),
                "to": call.to.to_string(),
                "value": format!("{:#x}", call.value),
                "input": format!("0x{}", hex_of(&call.data)),
            });
            if let Some(gas) = call.gas_limit {
                json["gas"] = json!(format!("{gas:#x}"));
            }
            json
        })
        .collect();
    json!([
        {"blockStateCalls": [{"calls": calls}], "traceTransfers": true, "validation": false},
        "latest"
    ])
}

/// Reads the node's answer: one result per call, in order.
pub fn results(answer: &Value, calls: usize) -> Result<Vec<Simulated>, RpcError> {
    let malformed = |what: &str| RpcError::Unavailable(format!("an eth_simulateV1 answer without {what}"));
    let simulated = answer
        .get(0)
        .and_then(|block| block.get("calls"))
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("a block of calls"))?;
    if simulated.len() != calls {
        return Err(malformed("one result per call"));
    }
    simulated.iter().map(one_result).collect()
}

fn one_result(call: &Value) -> Result<Simulated, RpcError> {
    let field = |name: &str| {
        call.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| RpcError::Unavailable(format!("a simulated call without {name}")))
    };
    let succeeded = field("status")? == "0x1";
    let gas_used = u64::from_str_radix(field("gasUsed")?.trim_start_matches("0x"), 16)
        .map_err(|_| RpcError::Unavailable("a simulated call's gasUsed is not a quantity".into()))?;
    if !succeeded {
        let message = call
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("reverted");
        let reason = call
            .get("returnData")
            .and_then(Value::as_str)
            .and_then(revert_string)
            .unwrap_or_else(|| message.to_owned());
        return Ok(Simulated {
            succeeded,
            gas_used,
            revert_reason: Some(reason),
            balance_changes: Vec::new(),
        });
    }
    let logs = call
        .get("logs")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    Ok(Simulated {
        succeeded,
        gas_used,
        revert_reason: None,
        balance_changes: net_transfers(logs),
    })
}

/// Sums the traced native transfers into each address's net change, addresses in order.
fn net_transfers(logs: &[Value]) -> Vec<(Address, I256)> {
    let mut net: BTreeMap<Address, I256> = BTreeMap::new();
    for log in logs {
        let Some((from, to, value)) = native_transfer(log) else {
            continue;
        };
        let value = I256::try_from(value).unwrap_or(I256::MAX);
        let sent = net.entry(from).or_default();
        *sent = sent.saturating_sub(value);
        let received = net.entry(to).or_default();
        *received = received.saturating_add(value);
    }
    net.into_iter().filter(|(_, change)| !change.is_zero()).collect()
}

fn native_transfer(log: &Value) -> Option<(Address, Address, U256)> {
    let address = log.get("address")?.as_str()?;
    let topics = log.get("topics")?.as_array()?;
    if !address.eq_ignore_ascii_case(NATIVE_TRANSFERS) || topics.len() != 3 || topics[0].as_str()? != TRANSFER_TOPIC {
        return None;
    }
    let word_address = |topic: &Value| -> Option<Address> {
        let word: U256 = topic.as_str()?.parse().ok()?;
        Some(Address::from_word(word.into()))
    };
    let value: U256 = log.get("data")?.as_str()?.parse().ok()?;
    Some((word_address(&topics[1])?, word_address(&topics[2])?, value))
}

/// The message of a `revert("…")`, from the call's return data.
fn revert_string(return_data: &str) -> Option<String> {
    let bytes = alloy_primitives::hex::decode(return_data).ok()?;
    let payload = bytes.strip_prefix(&ERROR_SELECTOR)?;
    // Error(string): the offset word, the length word, then the bytes.
    let length = usize::try_from(U256::from_be_slice(payload.get(32..64)?)).ok()?;
    let text = payload.get(64..64usize.checked_add(length)?)?;
    String::from_utf8(text.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(address: &str) -> String {
        format!("0x{:0>64}", address.trim_start_matches("0x"))
    }

    fn transfer(from: &str, to: &str, wei: u64) -> Value {
        json!({
            "address": NATIVE_TRANSFERS,
            "topics": [TRANSFER_TOPIC, word(from), word(to)],
            "data": format!("0x{wei:064x}"),
        })
    }

    const A: &str = "0x1111111111111111111111111111111111111111";
    const B: &str = "0x2222222222222222222222222222222222222222";
    const C: &str = "0x3333333333333333333333333333333333333333";

    fn address(text: &str) -> Address {
        text.parse().unwrap()
    }

    #[test]
    fn transfers_net_out_per_address() {
        let answer = json!([{"calls": [{
            "status": "0x1", "gasUsed": "0x5208", "returnData": "0x",
            "logs": [transfer(A, B, 10), transfer(B, C, 4), transfer(C, A, 4)],
        }]}]);
        let [simulated] = results(&answer, 1).unwrap().try_into().unwrap();
        assert_eq!(
            simulated,
            Simulated {
                succeeded: true,
                gas_used: 21_000,
                revert_reason: None,
                balance_changes: vec![
                    (address(A), I256::try_from(-6).unwrap()),
                    (address(B), I256::try_from(6).unwrap()),
                ],
            }
        );
    }

    #[test]
    fn a_reverted_call_moves_nothing_and_says_why() {
        // Error("no") = selector, offset 0x20, length 2, "no" padded.
        let reason = format!("0x08c379a0{:064x}{:064x}{:0<64}", 32, 2, "6e6f");
        let answer = json!([{"calls": [
            {"status": "0x0", "gasUsed": "0x6000", "returnData": reason, "logs": [transfer(A, B, 5)],
             "error": {"code": 3, "message": "execution reverted"}},
            {"status": "0x0", "gasUsed": "0x52a8", "returnData": "0x", "logs": [],
             "error": {"code": -32000, "message": "execution failed"}},
        ]}]);
        let simulated = results(&answer, 2).unwrap();
        assert_eq!(
            simulated
                .iter()
                .map(|s| (s.succeeded, s.revert_reason.as_deref(), s.balance_changes.len()))
                .collect::<Vec<_>>(),
            vec![(false, Some("no"), 0), (false, Some("execution failed"), 0)]
        );
    }

    #[test]
    fn an_answer_with_the_wrong_number_of_results_is_refused() {
        let answer = json!([{"calls": []}]);
        assert!(matches!(results(&answer, 1), Err(RpcError::Unavailable(_))));
        assert!(matches!(results(&json!({}), 1), Err(RpcError::Unavailable(_))));
    }

    #[test]
    fn the_request_names_every_call_in_one_block() {
        let call = Call {
            from: address(A),
            to: address(B),
            value: U256::from(255),
            data: Bytes::from(vec![0x12, 0x34]),
            gas_limit: Some(50_000),
        };
        assert_eq!(
            request(&[call])[0]["blockStateCalls"][0]["calls"][0],
            json!({"from": "0x1111111111111111111111111111111111111111",
                   "to": "0x2222222222222222222222222222222222222222",
                   "value": "0xff", "input": "0x1234", "gas": "0xc350"})
        );
    }
}
