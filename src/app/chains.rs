//! The chains in force: the configuration file's, with administrators' changes on top.

use domain::evm_chain::{ChainSettings, EvmChain};

use super::Services;

/// The chains of the configuration file, the registry's base.
pub fn configured(services: &Services) -> Vec<ChainSettings> {
    services.config.chains.iter().map(|chain| chain.settings()).collect()
}

/// The chains in force: the configured ones with administrators' changes on top.
pub fn registry(services: &Services) -> Vec<EvmChain> {
    let configured = configured(services);
    services.projector.read(|models| models.chains.effective(&configured))
}

/// The chains agents may use: the registry's enabled ones.
pub fn enabled_chains(services: &Services) -> Vec<EvmChain> {
    registry(services)
        .into_iter()
        .filter(|chain| chain.settings.is_enabled)
        .collect()
}

/// The enabled chain `identifier` names (its name or decimal chain id), if any.
pub fn enabled_chain(services: &Services, identifier: &str) -> Option<EvmChain> {
    enabled_chains(services)
        .into_iter()
        .find(|chain| chain.is_named(identifier))
}
