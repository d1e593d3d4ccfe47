//! Whom a call to a token contract pays or empowers. A transaction's `to` is the token
//! contract; the party that gets the tokens, or the right to move them, is an argument of
//! the call. The recipient allowlist must hold for that party too, or an allowlisted token
//! contract would carry the agent's tokens anywhere. Pure.

use alloy_primitives::Address;

/// The ERC-20 and ERC-721 methods that move tokens or grant the right to, by selector,
/// with the argument that names the party.
const PARTY_OF: [([u8; 4], &str, usize); 7] = [
    ([0xa9, 0x05, 0x9c, 0xbb], "transfer(address,uint256)", 0),
    ([0x23, 0xb8, 0x72, 0xdd], "transferFrom(address,address,uint256)", 1),
    ([0x09, 0x5e, 0xa7, 0xb3], "approve(address,uint256)", 0),
    ([0x39, 0x50, 0x93, 0x51], "increaseAllowance(address,uint256)", 0),
    ([0x42, 0x84, 0x2e, 0x0e], "safeTransferFrom(address,address,uint256)", 1),
    (
        [0xb8, 0x8d, 0x4f, 0xde],
        "safeTransferFrom(address,address,uint256,bytes)",
        1,
    ),
    ([0xa2, 0x2c, 0xb4, 0x65], "setApprovalForAll(address,bool)", 0),
];

/// What a token call names, if `data` calls one of the methods above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCall {
    /// The method's signature and the party its arguments name.
    Names { method: &'static str, party: Address },
    /// The method's arguments are cut short, or the party is no address (bits set above
    /// its 20 bytes): a contract that reads it anyway reads something else than it says.
    Malformed { method: &'static str },
}

/// The token call `data` makes, if any.
pub fn token_call(data: &[u8]) -> Option<TokenCall> {
    let selector: [u8; 4] = data.get(..4)?.try_into().ok()?;
    let (_, method, argument) = PARTY_OF.iter().find(|(known, _, _)| *known == selector)?;
    let word = data.get(4 + 32 * argument..4 + 32 * (argument + 1));
    let party = word.filter(|word| word[..12].iter().all(|byte| *byte == 0));
    Some(match party {
        Some(word) => TokenCall::Names {
            method,
            party: Address::from_slice(&word[12..]),
        },
        None => TokenCall::Malformed { method },
    })
}

#[cfg(test)]
mod tests {
    use alloy_primitives::keccak256;

    use super::*;

    fn call(signature: &str, words: &[[u8; 32]]) -> Vec<u8> {
        let mut data = keccak256(signature.as_bytes())[..4].to_vec();
        for word in words {
            data.extend_from_slice(word);
        }
        data
    }

    fn address_word(address: Address) -> [u8; 32] {
        let mut word = [0u8; 32];
        word[12..].copy_from_slice(address.as_slice());
        word
    }

    #[test]
    fn the_selectors_are_those_of_the_signatures() {
        for (selector, signature, _) in PARTY_OF {
            assert_eq!(selector, keccak256(signature.as_bytes())[..4], "{signature}");
        }
    }

    #[test]
    fn each_method_names_the_party_that_gets_the_tokens_or_the_right_to_move_them() {
        let (owner, party) = (Address::repeat_byte(0x11), Address::repeat_byte(0x22));
        let amount = [0x01; 32];
        for (_, signature, argument) in PARTY_OF {
            let mut words = vec![address_word(owner), amount, amount];
            words[argument] = address_word(party);
            assert_eq!(
                token_call(&call(signature, &words)),
                Some(TokenCall::Names {
                    method: signature,
                    party
                }),
                "{signature}"
            );
        }
    }

    #[test]
    fn other_calls_name_nothing_and_broken_arguments_are_malformed() {
        assert_eq!(token_call(&[]), None, "a plain transfer of ETH");
        assert_eq!(token_call(&[0xa9, 0x05, 0x9c]), None);
        let deposit = call("deposit()", &[]);
        assert_eq!(token_call(&deposit), None);
        let method = "transfer(address,uint256)";
        let cut_short = &call(method, &[address_word(Address::repeat_byte(0x22))])[..20];
        assert_eq!(token_call(cut_short), Some(TokenCall::Malformed { method }));
        let dirty = call(method, &[[0xff; 32], [0x01; 32]]);
        assert_eq!(token_call(&dirty), Some(TokenCall::Malformed { method }));
    }
}
