//! The signing proxy of keyward: what an agent may send on chain, and the means to send it.
//!
//! This crate will hold the guardrails (spend limits, allowlists), the chain registry, and
//! transaction building, signing, simulation and broadcast. Everything that can be pure is
//! pure: the guardrails decide on values and state passed in, with no IO and no clock.
//!
//! For now it holds the guardrails' money type, [`Wei`]: an exact amount of wei, parsed
//! from decimal ETH strings with no floating point anywhere near it.

pub mod wei;

pub use wei::{Wei, WeiParseError};
