//! An agent pays someone off its recipient allowlist (`tx_to_allowlist`) through a
//! contract it may call: the recipient is an argument of the call, in a method keyward
//! would have to read. Found by an attacker on a live keyward against anvil (issue
//! "Security"): ERC-677 and ERC-1363 `transferAndCall`, ERC-1155's transfers, ERC-777's
//! `send`, `operatorSend` and `authorizeOperator`, `approveAndCall` and `permit` naming a
//! stranger were signed and sent. keyward now reads those, and refuses, while a recipient
//! allowlist is set, any calldata it cannot read.

mod common;

use common::TestDb;
use common::chain;
use common::world::{World, audit_trail, change_agent, sign_intent, submit, transactions_listed, world};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// An argument of a call, as the ABI encodes it.
#[derive(Clone, Copy)]
enum Arg {
    /// The party the method pays or empowers.
    Party,
    /// The holder whose tokens move: the agent's own address.
    Holder,
    Number(u128),
    /// An empty `bytes` or `uint256[]`: its offset in the head, a zero length in the tail.
    Empty,
}

use Arg::{Empty, Holder, Number, Party};

/// The calls that paid strangers, with the role the refusal names.
const ATTACKS: [(&str, &str, &[Arg]); 13] = [
    // ERC-677.
    (
        "transferAndCall(address,uint256,bytes)",
        "recipient",
        &[Party, Number(1), Empty],
    ),
    // ERC-1363.
    ("transferAndCall(address,uint256)", "recipient", &[Party, Number(1)]),
    (
        "transferFromAndCall(address,address,uint256)",
        "recipient",
        &[Holder, Party, Number(1)],
    ),
    (
        "transferFromAndCall(address,address,uint256,bytes)",
        "recipient",
        &[Holder, Party, Number(1), Empty],
    ),
    ("approveAndCall(address,uint256)", "spender", &[Party, Number(1)]),
    (
        "approveAndCall(address,uint256,bytes)",
        "spender",
        &[Party, Number(1), Empty],
    ),
    // ERC-1155.
    (
        "safeTransferFrom(address,address,uint256,uint256,bytes)",
        "recipient",
        &[Holder, Party, Number(1), Number(1), Empty],
    ),
    (
        "safeBatchTransferFrom(address,address,uint256[],uint256[],bytes)",
        "recipient",
        &[Holder, Party, Empty, Empty, Empty],
    ),
    // ERC-777.
    ("send(address,uint256,bytes)", "recipient", &[Party, Number(1), Empty]),
    (
        "operatorSend(address,address,uint256,bytes,bytes)",
        "recipient",
        &[Holder, Party, Number(1), Empty, Empty],
    ),
    ("authorizeOperator(address)", "operator", &[Party]),
    // EIP-2612, and DAI's.
    (
        "permit(address,address,uint256,uint256,uint8,bytes32,bytes32)",
        "spender",
        &[
            Holder,
            Party,
            Number(1),
            Number(u128::MAX),
            Number(27),
            Number(1),
            Number(2),
        ],
    ),
    (
        "permit(address,address,uint256,uint256,bool,uint8,bytes32,bytes32)",
        "spender",
        &[
            Holder,
            Party,
            Number(0),
            Number(u128::MAX),
            Number(1),
            Number(27),
            Number(1),
            Number(2),
        ],
    ),
];

/// Every method keyward reads, as its refusals list them.
const READ: &str = "transfer(address,uint256), transferFrom(address,address,uint256), approve(address,uint256), \
                    increaseAllowance(address,uint256), safeTransferFrom(address,address,uint256), \
                    safeTransferFrom(address,address,uint256,bytes), setApprovalForAll(address,bool), \
                    safeTransferFrom(address,address,uint256,uint256,bytes), \
                    safeBatchTransferFrom(address,address,uint256[],uint256[],bytes), \
                    transferAndCall(address,uint256), transferAndCall(address,uint256,bytes), \
                    transferFromAndCall(address,address,uint256), \
                    transferFromAndCall(address,address,uint256,bytes), approveAndCall(address,uint256), \
                    approveAndCall(address,uint256,bytes), send(address,uint256,bytes), \
                    operatorSend(address,address,uint256,bytes,bytes), authorizeOperator(address), \
                    permit(address,address,uint256,uint256,uint8,bytes32,bytes32), \
                    permit(address,address,uint256,uint256,bool,uint8,bytes32,bytes32)";

/// The calldata of `signature` with `arguments`, `party` and `holder` in their places.
fn calldata(signature: &str, arguments: &[Arg], party: &str, holder: &str) -> String {
    let (mut head, mut tail) = (String::new(), String::new());
    let address = |address: &str| format!("{:0>64}", address.trim_start_matches("0x"));
    for argument in arguments {
        match *argument {
            Party => head += &address(party),
            Holder => head += &address(holder),
            Number(n) => head += &format!("{n:064x}"),
            Empty => {
                head += &format!("{:064x}", 32 * arguments.len() + tail.len() / 2);
                tail += &format!("{:064x}", 0);
            }
        }
    }
    let selector = alloy_primitives::keccak256(signature.as_bytes());
    format!("0x{}{head}{tail}", alloy_primitives::hex::encode(&selector[..4]))
}

fn call(to: &str, value: &str, data: &str) -> Value {
    json!({"chain": "anvil", "to": to, "value": value, "data": data})
}

/// The world's agent may send to its recipient, and call `token`, a contract (an account
/// that runs no code: the chain takes any calldata to it).
async fn allowing_one_recipient_and_one_token() -> (World, String) {
    let world = world(TestDb::sqlite(), json!({}), &[]).await;
    let token = chain::fresh_address();
    let settings = json!({"tx_to_allowlist": [world.recipient], "tx_token_allowlist": [token]});
    let (status, shown) = change_agent(&world, settings).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    (world, token)
}

async fn nothing_signed_nor_sent(world: &World) {
    assert_eq!(chain::nonce(&world.signer).await, 0, "nothing was sent");
    let listed = transactions_listed(world, &world.human).await;
    assert_eq!(listed, json!([]), "nothing was signed");
}

#[tokio::test]
async fn token_methods_naming_a_stranger_are_refused_and_nothing_is_signed_while_a_listed_recipient_is_paid() {
    let (world, token) = allowing_one_recipient_and_one_token().await;
    let stranger = chain::fresh_address();
    for (signature, role, arguments) in ATTACKS {
        let data = calldata(signature, arguments, &stranger, &world.signer);
        let (status, problem) = submit(&world, call(&token, "0", &data)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{signature}: {problem}");
        assert_eq!(
            problem["detail"],
            format!(
                "tx_to_allowlist: {signature} names {stranger} as {role}, which is not on the agent's recipient \
                 allowlist"
            ),
        );
    }
    // The unified signing intent signs a transaction under the same guardrails.
    let (signature, role, arguments) = ATTACKS[0];
    let mut intent = call(&token, "0", &calldata(signature, arguments, &stranger, &world.signer));
    intent["intent_type"] = json!("transaction");
    let (status, problem) = sign_intent(&world, intent).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(
        problem["detail"],
        format!(
            "tx_to_allowlist: {signature} names {stranger} as {role}, which is not on the agent's recipient allowlist"
        ),
    );
    nothing_signed_nor_sent(&world).await;
    let refusals = audit_trail(&world, "transaction.reject").await;
    assert_eq!(refusals["count"], ATTACKS.len() + 1, "each refusal is audited");

    // The same methods naming the listed recipient are signed, sent and mined.
    for (signature, _, arguments) in ATTACKS {
        let data = calldata(signature, arguments, &world.recipient, &world.signer);
        let (status, tx) = submit(&world, call(&token, "0", &data)).await;
        assert_eq!(status, StatusCode::CREATED, "{signature}: {tx}");
        assert_eq!(tx["status"], "broadcast", "{signature}");
        assert_eq!(chain::mined_status(tx["tx_hash"].as_str().unwrap()).await, 1);
    }
    assert_eq!(chain::nonce(&world.signer).await, ATTACKS.len() as u64);
}

#[tokio::test]
async fn calldata_keyward_cannot_read_is_refused_with_the_methods_it_reads() {
    let (world, token) = allowing_one_recipient_and_one_token().await;
    let unread = |call: &str| {
        format!(
            "tx_to_allowlist: {call} calls no method keyward reads, so whom it pays cannot be checked; with a \
             recipient allowlist, calldata may only call {READ}"
        )
    };
    let transfer_and_call = calldata(ATTACKS[0].0, ATTACKS[0].2, &world.recipient, &world.signer);
    let recipient_word = format!("{:0>64}", world.recipient.trim_start_matches("0x"));
    let dirty_transfer = format!("0xa9059cbb{}{:064x}", recipient_word.replacen("000000", "ffffff", 1), 1);
    let cases = [
        // WETH's `deposit()` (the calldata names nobody, but keyward cannot know that of
        // a method it does not read), to the token and to the listed recipient.
        (
            &token,
            "0",
            "0xd0e30db0".to_owned(),
            unread("calldata with selector 0xd0e30db0"),
        ),
        (
            &world.recipient,
            "0",
            "0xd0e30db0".to_owned(),
            unread("calldata with selector 0xd0e30db0"),
        ),
        // ERC-1363's `transferAndCall` overload with a fourth argument is another method.
        (
            &token,
            "0",
            calldata(
                "transferAndCall(address,uint256,bytes,bytes)",
                &[Party, Number(1), Empty, Empty],
                &world.recipient,
                &world.signer,
            ),
            unread("calldata with selector 0x257591c5"),
        ),
        (
            &token,
            "0",
            "0x4000ae".to_owned(),
            unread("calldata of fewer than 4 bytes"),
        ),
        (
            &token,
            "0",
            transfer_and_call[..2 + 2 * (4 + 32 + 16)].to_owned(),
            "tx_to_allowlist: transferAndCall(address,uint256,bytes) with arguments that do not decode as its own \
             cannot be checked"
                .to_owned(),
        ),
        (
            &token,
            "0",
            dirty_transfer,
            "tx_to_allowlist: transfer(address,uint256) with arguments that do not decode as its own cannot be \
             checked"
                .to_owned(),
        ),
        // ETH to a contract the agent may call, off the recipient allowlist.
        (
            &token,
            "1",
            calldata(
                "transfer(address,uint256)",
                &[Party, Number(1)],
                &world.recipient,
                &world.signer,
            ),
            format!(
                "tx_to_allowlist: 1 ETH would go to {token}, which is not on the agent's recipient allowlist (a \
                 contract the agent may call is not a recipient of its ETH)"
            ),
        ),
    ];
    for (to, value, data, detail) in cases {
        let (status, problem) = submit(&world, call(to, value, &data)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{data}: {problem}");
        assert_eq!(
            problem,
            json!({"type": "about:blank", "title": "Forbidden", "status": 403, "detail": detail}),
            "{data}"
        );
    }
    nothing_signed_nor_sent(&world).await;
}
