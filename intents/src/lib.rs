//! The signing proxy of keyward: what an agent may send on chain, and the means to send it.
//!
//! This crate will hold the guardrails (spend limits, allowlists), the chain registry, and
//! transaction building, signing, simulation and broadcast. Everything that can be pure is
//! pure: the guardrails decide on values and state passed in, with no IO and no clock.
//!
//! Its money type, [`Wei`], lives in the domain crate, because an agent's limits are part
//! of the agent's state; it is re-exported here for the guardrails.

pub use domain::wei::{Wei, WeiParseError};
