//! keyward: a self-hosted secrets vault and signing proxy for AI agents.

pub mod store;
