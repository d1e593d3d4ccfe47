//! Transactions: built with alloy's consensus types, signed with k256, encoded as the raw
//! bytes `eth_sendRawTransaction` takes.

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope, TxLegacy};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, Signature, TxKind, U256};

use crate::key::PrivateKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fee {
    Legacy {
        gas_price: u128,
    },
    Eip1559 {
        max_fee_per_gas: u128,
        max_priority_fee_per_gas: u128,
    },
}

impl Fee {
    /// The highest price per gas it allows, base fee and tip together.
    pub fn max_per_gas(self) -> u128 {
        match self {
            Fee::Legacy { gas_price } => gas_price,
            Fee::Eip1559 { max_fee_per_gas, .. } => max_fee_per_gas,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedTx {
    pub chain_id: u64,
    pub nonce: u64,
    pub to: Address,
    pub value: U256,
    pub data: Bytes,
    pub gas_limit: u64,
    pub fee: Fee,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTx {
    pub from: Address,
    pub hash: B256,
    /// The EIP-2718 encoding: RLP for legacy, type byte + RLP for EIP-1559.
    pub raw: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("signing failed")]
pub struct SignError;

impl UnsignedTx {
    pub fn sign(&self, key: &PrivateKey) -> Result<SignedTx, SignError> {
        let envelope = match self.fee {
            Fee::Legacy { gas_price } => {
                let tx = TxLegacy {
                    chain_id: Some(self.chain_id),
                    nonce: self.nonce,
                    gas_price,
                    gas_limit: self.gas_limit,
                    to: TxKind::Call(self.to),
                    value: self.value,
                    input: self.data.clone(),
                };
                let signature = sign_hash(key, tx.signature_hash())?;
                TxEnvelope::from(tx.into_signed(signature))
            }
            Fee::Eip1559 {
                max_fee_per_gas,
                max_priority_fee_per_gas,
            } => {
                let tx = TxEip1559 {
                    chain_id: self.chain_id,
                    nonce: self.nonce,
                    gas_limit: self.gas_limit,
                    max_fee_per_gas,
                    max_priority_fee_per_gas,
                    to: TxKind::Call(self.to),
                    value: self.value,
                    access_list: Default::default(),
                    input: self.data.clone(),
                };
                let signature = sign_hash(key, tx.signature_hash())?;
                TxEnvelope::from(tx.into_signed(signature))
            }
        };
        Ok(SignedTx {
            from: key.address(),
            hash: *envelope.tx_hash(),
            raw: envelope.encoded_2718(),
        })
    }
}

pub(crate) fn sign_hash(key: &PrivateKey, hash: B256) -> Result<Signature, SignError> {
    let (signature, recovery) = key.sign_prehash(&hash.0).map_err(|_| SignError)?;
    Ok(Signature::from_signature_and_parity(signature, recovery.is_y_odd()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::transaction::SignerRecoverable;
    use alloy_eips::eip2718::Decodable2718;

    const ANVIL_0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    fn transfer(fee: Fee) -> UnsignedTx {
        UnsignedTx {
            chain_id: 31337,
            nonce: 7,
            to: "0x70997970c51812dc3a010c7d01b50e0d17dc79c8".parse().unwrap(),
            value: U256::from(500_000_000_000_000_000u128),
            data: Bytes::new(),
            gas_limit: 21_000,
            fee,
        }
    }

    #[test]
    fn signed_transactions_decode_and_recover_to_the_signer() {
        let key = PrivateKey::parse_hex(ANVIL_0).unwrap();
        for fee in [
            Fee::Legacy {
                gas_price: 2_000_000_000,
            },
            Fee::Eip1559 {
                max_fee_per_gas: 3_000_000_000,
                max_priority_fee_per_gas: 1_000_000_000,
            },
        ] {
            let signed = transfer(fee).sign(&key).unwrap();
            let decoded = TxEnvelope::decode_2718(&mut signed.raw.as_slice()).unwrap();
            assert_eq!(decoded.recover_signer().unwrap(), key.address());
            assert_eq!(*decoded.tx_hash(), signed.hash);
            assert_eq!(signed.from, key.address());
        }
    }
}
