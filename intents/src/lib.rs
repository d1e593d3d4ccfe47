//! The signing proxy of keyward: what an agent may send on chain, and the means to send it.
//!
//! - [`guardrails`]: pure checks of a transaction against an agent's limits.
//! - [`key`]: a private key held only for one signature, zeroized on drop.
//! - [`known_addresses`]: the address each stored key signs for, derived once.
//! - [`message`]: EIP-191 messages, EIP-712 typed data and digests, judged and signed.
//! - [`token_call`]: whom a call to a token contract pays or empowers.
//! - [`tx`]: building legacy and EIP-1559 transfers and signing them (alloy types, k256).
//! - [`pending_nonces`]: the node's nonce count, asked for once a second, not per transaction.
//! - [`rpc`]: the JSON-RPC calls to the chain's node.
//! - [`simulation`]: calls run in sequence on the chain's state, nothing signed or sent.
//!
//! Its money type, [`Wei`], lives in the domain crate, because an agent's limits are part
//! of the agent's state.

pub mod guardrails;
pub mod key;
pub mod known_addresses;
pub mod message;
pub mod pending_nonces;
pub mod rpc;
pub mod simulation;
pub mod submission;
pub mod token_call;
pub mod tx;

pub use alloy_primitives::{Address, B256, Bytes, U256, hex};
pub use domain::wei::{Wei, WeiParseError};
pub use guardrails::{Guardrails, Outgoing, Violation};
pub use key::{KeyError, PrivateKey};
pub use known_addresses::KnownAddresses;
pub use pending_nonces::PendingNonces;
pub use rpc::{Rpc, RpcError, RpcPool};
pub use simulation::{Call, Simulated};
pub use submission::{Decided, Refusal, Submission};
pub use tx::{Fee, SignedTx, UnsignedTx};
