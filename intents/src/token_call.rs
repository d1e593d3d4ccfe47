//! Whom a call to a token contract pays or empowers. A transaction's `to` is the token
//! contract; the party that gets the tokens, or the right to move them, is an argument of
//! the call. The recipient allowlist must hold for that party too, or an allowlisted token
//! contract would carry the agent's tokens anywhere.
//!
//! keyward reads the methods of [`METHODS`] and no other. A method it does not read may
//! pay anyone: ERC-677's `transferAndCall`, ERC-1155's transfers, ERC-777's `send` and
//! `permit` once paid strangers through an allowlisted contract, each unread. So a call
//! keyward cannot read is not waved through as "naming nobody": the guardrails refuse it
//! while a recipient allowlist is set (intents/src/guardrails.rs). Pure.

use Role::{Operator, Recipient, Spender};
use alloy_dyn_abi::DynSolType;
use alloy_primitives::Address;

/// What the party a method names becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It gets the tokens.
    Recipient,
    /// It may move the holder's tokens up to an allowance, or one token.
    Spender,
    /// It may move every token of the holder.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Recipient => "recipient",
            Role::Spender => "spender",
            Role::Operator => "operator",
        }
    }
}

/// A token method keyward reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Method {
    /// The first four bytes of the keccak-256 of `signature` (a test computes them).
    pub selector: [u8; 4],
    pub signature: &'static str,
    /// The argument, counted from 0, that names the party.
    pub party: usize,
    pub role: Role,
}

const fn method(selector: u32, signature: &'static str, party: usize, role: Role) -> Method {
    Method {
        selector: selector.to_be_bytes(),
        signature,
        party,
        role,
    }
}

/// Every method keyward reads, overloads apart: a selector is one signature, and the same
/// name with other arguments is another method, read only if it is listed here. Methods
/// several standards share (ERC-20's and ERC-721's `transferFrom`, `approve`;
/// ERC-721's and ERC-1155's `setApprovalForAll`) are one entry: the party is the same
/// argument in each.
pub const METHODS: [Method; 20] = [
    // ERC-20, and ERC-721 for `transferFrom` and `approve`.
    method(0xa905_9cbb, "transfer(address,uint256)", 0, Recipient),
    method(0x23b8_72dd, "transferFrom(address,address,uint256)", 1, Recipient),
    method(0x095e_a7b3, "approve(address,uint256)", 0, Spender),
    method(0x3950_9351, "increaseAllowance(address,uint256)", 0, Spender),
    // ERC-721, and ERC-1155 for `setApprovalForAll`.
    method(0x4284_2e0e, "safeTransferFrom(address,address,uint256)", 1, Recipient),
    method(
        0xb88d_4fde,
        "safeTransferFrom(address,address,uint256,bytes)",
        1,
        Recipient,
    ),
    method(0xa22c_b465, "setApprovalForAll(address,bool)", 0, Operator),
    // ERC-1155.
    method(
        0xf242_432a,
        "safeTransferFrom(address,address,uint256,uint256,bytes)",
        1,
        Recipient,
    ),
    method(
        0x2eb2_c2d6,
        "safeBatchTransferFrom(address,address,uint256[],uint256[],bytes)",
        1,
        Recipient,
    ),
    // ERC-677 (the three-argument `transferAndCall`) and ERC-1363.
    method(0x1296_ee62, "transferAndCall(address,uint256)", 0, Recipient),
    method(0x4000_aea0, "transferAndCall(address,uint256,bytes)", 0, Recipient),
    method(
        0xd8fb_e994,
        "transferFromAndCall(address,address,uint256)",
        1,
        Recipient,
    ),
    method(
        0xc1d3_4b89,
        "transferFromAndCall(address,address,uint256,bytes)",
        1,
        Recipient,
    ),
    method(0x3177_029f, "approveAndCall(address,uint256)", 0, Spender),
    method(0xcae9_ca51, "approveAndCall(address,uint256,bytes)", 0, Spender),
    // ERC-777.
    method(0x9bd9_bbc6, "send(address,uint256,bytes)", 0, Recipient),
    method(
        0x62ad_1b83,
        "operatorSend(address,address,uint256,bytes,bytes)",
        1,
        Recipient,
    ),
    method(0x959b_8c3f, "authorizeOperator(address)", 0, Operator),
    // EIP-2612 `permit(owner, spender, value, deadline, v, r, s)`, and DAI's
    // `permit(holder, spender, nonce, expiry, allowed, v, r, s)`: whoever sends a permit
    // signed by a holder makes the spender able to move the holder's tokens.
    method(
        0xd505_accf,
        "permit(address,address,uint256,uint256,uint8,bytes32,bytes32)",
        1,
        Spender,
    ),
    method(
        0x8fcb_af0c,
        "permit(address,address,uint256,uint256,bool,uint8,bytes32,bytes32)",
        1,
        Spender,
    ),
];

impl Method {
    /// The party `arguments` (the calldata after the selector) name, if they decode as
    /// this method's arguments and every address among them is one: no bits set above its
    /// 20 bytes, which a contract reading it anyway would read otherwise than keyward.
    fn party_in(&self, arguments: &[u8]) -> Option<Address> {
        let types: DynSolType = self.signature.get(self.signature.find('(')?..)?.parse().ok()?;
        let DynSolType::Tuple(parameters) = &types else {
            return None;
        };
        types.abi_decode_params(arguments).ok()?;
        // Each argument of these methods has one word in the head: its value, or the
        // offset of its contents.
        let word = |index: usize| arguments.get(32 * index..32 * (index + 1));
        let addresses = parameters
            .iter()
            .enumerate()
            .filter(|(_, t)| **t == DynSolType::Address);
        for (index, _) in addresses {
            if word(index)?.iter().take(12).any(|byte| *byte != 0) {
                return None;
            }
        }
        word(self.party).map(|word| Address::from_slice(&word[12..]))
    }
}

/// What a transaction's calldata does, as far as keyward reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCall {
    /// One of [`METHODS`], and the party its arguments name.
    Names {
        method: &'static str,
        role: Role,
        party: Address,
    },
    /// One of [`METHODS`] with arguments that do not decode as its own (cut short, an
    /// offset out of bounds, an address with bits set above its 20 bytes).
    Malformed { method: &'static str },
    /// No method keyward reads; `selector` is none when there are fewer than 4 bytes.
    Unread { selector: Option<[u8; 4]> },
}

/// The call `data` makes; none for a plain transfer (no calldata).
pub fn token_call(data: &[u8]) -> Option<TokenCall> {
    if data.is_empty() {
        return None;
    }
    let selector: Option<[u8; 4]> = data.get(..4).and_then(|bytes| bytes.try_into().ok());
    let Some(method) = METHODS.iter().find(|method| Some(method.selector) == selector) else {
        return Some(TokenCall::Unread { selector });
    };
    let arguments = data.get(4..).unwrap_or_default();
    Some(match method.party_in(arguments) {
        Some(party) => TokenCall::Names {
            method: method.signature,
            role: method.role,
            party,
        },
        None => TokenCall::Malformed {
            method: method.signature,
        },
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashSet;

    use alloy_dyn_abi::DynSolValue;
    use alloy_primitives::{B256, U256, keccak256};
    use proptest::prelude::*;

    use super::*;

    /// Arguments of `signature`'s types: every address is `other` but the party's, every
    /// number `n`, every byte string and array of `n` elements.
    fn arguments(method: &Method, party: Address, other: Address, n: u8) -> Vec<DynSolValue> {
        let parameters = &method.signature[method.signature.find('(').unwrap()..];
        let DynSolType::Tuple(types) = parameters.parse::<DynSolType>().unwrap() else {
            unreachable!("a parameter list is a tuple")
        };
        let number = U256::from(n);
        types
            .iter()
            .enumerate()
            .map(|(index, kind)| match kind {
                DynSolType::Address if index == method.party => DynSolValue::Address(party),
                DynSolType::Address => DynSolValue::Address(other),
                DynSolType::Uint(bits) => DynSolValue::Uint(number, *bits),
                DynSolType::Bool => DynSolValue::Bool(n % 2 == 1),
                DynSolType::FixedBytes(32) => DynSolValue::FixedBytes(B256::repeat_byte(n), 32),
                DynSolType::Bytes => DynSolValue::Bytes(vec![n; usize::from(n)]),
                DynSolType::Array(_) => DynSolValue::Array(vec![DynSolValue::Uint(number, 256); usize::from(n % 8)]),
                other => unreachable!("no method here takes {other:?}"),
            })
            .collect()
    }

    /// A call of `method` naming `party`, with [`arguments`].
    pub(crate) fn calldata(method: &Method, party: Address, other: Address, n: u8) -> Vec<u8> {
        let mut data = method.selector.to_vec();
        data.extend(DynSolValue::Tuple(arguments(method, party, other, n)).abi_encode_params());
        data
    }

    fn head_words(method: &Method) -> usize {
        method.signature.matches(',').count() + 1
    }

    #[test]
    fn the_selectors_are_those_of_the_signatures_and_no_two_are_alike() {
        for method in METHODS {
            assert_eq!(
                method.selector,
                keccak256(method.signature.as_bytes())[..4],
                "{}",
                method.signature
            );
        }
        let selectors: HashSet<_> = METHODS.iter().map(|method| method.selector).collect();
        assert_eq!(selectors.len(), METHODS.len());
        let signatures: HashSet<_> = METHODS.iter().map(|method| method.signature).collect();
        assert_eq!(signatures.len(), METHODS.len());
    }

    #[test]
    fn each_method_names_the_party_that_gets_the_tokens_or_the_right_to_move_them() {
        let (party, other) = (Address::repeat_byte(0x22), Address::repeat_byte(0x11));
        for method in METHODS {
            assert_eq!(
                token_call(&calldata(&method, party, other, 3)),
                Some(TokenCall::Names {
                    method: method.signature,
                    role: method.role,
                    party
                }),
                "{}",
                method.signature
            );
        }
        let read = |signature: &str| METHODS.iter().find(|m| m.signature == signature).unwrap();
        assert_eq!(
            read("permit(address,address,uint256,uint256,uint8,bytes32,bytes32)").party,
            1,
            "the spender"
        );
        assert_eq!(
            read("operatorSend(address,address,uint256,bytes,bytes)").party,
            1,
            "to, not from"
        );
        assert_eq!(read("authorizeOperator(address)").role, Role::Operator);
    }

    #[test]
    fn calls_keyward_does_not_read_and_broken_arguments_are_told_apart() {
        assert_eq!(token_call(&[]), None, "a plain transfer of ETH");
        assert_eq!(
            token_call(&[0xa9, 0x05, 0x9c]),
            Some(TokenCall::Unread { selector: None })
        );
        let deposit = keccak256("deposit()")[..4].to_vec();
        assert_eq!(
            token_call(&deposit),
            Some(TokenCall::Unread {
                selector: Some([0xd0, 0xe3, 0x0d, 0xb0])
            })
        );
        // The overload of ERC-1363's `approveAndCall` with a fourth argument is not read.
        let unlisted = keccak256("approveAndCall(address,uint256,bytes,bytes)")[..4].to_vec();
        assert!(matches!(token_call(&unlisted), Some(TokenCall::Unread { .. })));

        let transfer = METHODS[0];
        let method = transfer.signature;
        let whole = calldata(&transfer, Address::repeat_byte(0x22), Address::ZERO, 1);
        assert_eq!(token_call(&whole[..20]), Some(TokenCall::Malformed { method }));
        assert_eq!(token_call(&whole[..4]), Some(TokenCall::Malformed { method }));
        let mut dirty = whole.clone();
        dirty[4] = 0xff;
        assert_eq!(token_call(&dirty), Some(TokenCall::Malformed { method }));

        // ERC-1155's batch: its arrays' offsets must point inside the calldata.
        let batch = METHODS[8];
        let mut stray = calldata(&batch, Address::repeat_byte(0x22), Address::ZERO, 2);
        stray[4 + 32 * 2] = 0x01;
        assert_eq!(
            token_call(&stray),
            Some(TokenCall::Malformed {
                method: batch.signature
            })
        );
        // A `from` that is no address is refused as well, though the party is clean.
        let mut dirty_from = calldata(&METHODS[1], Address::repeat_byte(0x22), Address::ZERO, 1);
        dirty_from[4] = 0x01;
        assert!(matches!(token_call(&dirty_from), Some(TokenCall::Malformed { .. })));
    }

    fn any_method() -> impl Strategy<Value = Method> {
        (0..METHODS.len()).prop_map(|index| METHODS[index])
    }

    fn any_address() -> impl Strategy<Value = Address> {
        any::<[u8; 20]>().prop_map(Address::from)
    }

    proptest! {
        /// Whatever the bytes, reading them answers; and whatever it reads as a party is
        /// the word where the method puts it.
        #[test]
        fn any_calldata_is_read_without_panicking(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Some(TokenCall::Names { method, party, .. }) = token_call(&data) {
                let read = METHODS.iter().find(|m| m.signature == method).unwrap();
                prop_assert_eq!(&data[..4], &read.selector[..]);
                prop_assert_eq!(&data[4 + 32 * read.party + 12..4 + 32 * (read.party + 1)], party.as_slice());
            }
        }

        /// A known selector followed by anything is read, refused as malformed, never
        /// taken for a call that names nobody.
        #[test]
        fn a_known_selector_with_any_arguments_names_a_party_or_is_malformed(
            method in any_method(),
            arguments in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let mut data = method.selector.to_vec();
            data.extend(arguments);
            let read = token_call(&data);
            prop_assert!(
                matches!(read, Some(TokenCall::Names { .. } | TokenCall::Malformed { .. })),
                "{:?}", read
            );
        }

        #[test]
        fn well_formed_calls_name_their_party(method in any_method(), party in any_address(), other in any_address(), n in any::<u8>()) {
            prop_assert_eq!(
                token_call(&calldata(&method, party, other, n)),
                Some(TokenCall::Names { method: method.signature, role: method.role, party })
            );
        }

        /// Calldata cut anywhere inside the arguments' head is refused, never read.
        #[test]
        fn calls_cut_short_are_malformed(method in any_method(), party in any_address(), n in any::<u8>(), cut in any::<prop::sample::Index>()) {
            let whole = calldata(&method, party, Address::ZERO, n);
            let length = 4 + cut.index(32 * head_words(&method));
            prop_assert_eq!(token_call(&whole[..length]), Some(TokenCall::Malformed { method: method.signature }));
        }

        /// A party word with any bit set above its 20 bytes is no address.
        #[test]
        fn a_dirty_party_is_malformed(method in any_method(), party in any_address(), byte in 0usize..12, bit in 0u8..8) {
            let mut data = calldata(&method, party, Address::ZERO, 1);
            data[4 + 32 * method.party + byte] |= 1 << bit;
            prop_assert_eq!(token_call(&data), Some(TokenCall::Malformed { method: method.signature }));
        }

        #[test]
        fn other_selectors_are_unread(selector in any::<[u8; 4]>(), rest in proptest::collection::vec(any::<u8>(), 0..100)) {
            prop_assume!(METHODS.iter().all(|method| method.selector != selector));
            let mut data = selector.to_vec();
            data.extend(rest);
            prop_assert_eq!(token_call(&data), Some(TokenCall::Unread { selector: Some(selector) }));
        }
    }
}
