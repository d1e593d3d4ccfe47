//! What every use case reaches: the services of one process.

use std::sync::Arc;

use anyhow::Context;

use super::broadcasts::Broadcasts;
use super::commands::Commands;
use super::mailer::Mailer;
use super::rate_limit::RateLimits;
use super::reservations::Reservations;
use crate::auth::{SigningKeys, TOKEN_AUDIENCE, TokenIssuer};
use crate::config::Config;
use crate::crypto::{Envelope, KeyTable, MasterKey};
use crate::projector::Projector;
use crate::store::audit_index::AuditIndex;
use crate::store::{EventStore, snapshot};

/// What every use case and handler can reach. Extractors clone it for every request, so it
/// is one shared pointer, not a copy of each service's handle.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }

    /// Starts every service of one process on the log `store`, as `config` says: the read
    /// models (from the newest usable snapshot and the log's tail), the token issuer, the
    /// envelope under the master key, the audit index and the mailer; and sends again the
    /// transactions signed before the last stop. What `keyward serve` runs, and what tests
    /// of a use case start in process.
    pub async fn start(config: Config, store: Arc<dyn EventStore>) -> anyhow::Result<Self> {
        let started = std::time::Instant::now();
        let snapshots = snapshot::open(&config.database_url)
            .await
            .context("cannot open the read-model snapshots")?
            .map(|snapshots| (snapshots, config.snapshots));
        let projector = Projector::start_with(store.clone(), snapshots)
            .await
            .context("cannot rebuild the read models")?;
        tracing::info!(
            log_position = projector.position(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "read models rebuilt"
        );
        let signing_keys =
            SigningKeys::load_or_generate(&config.data_dir).context("cannot load the token signing key")?;
        let tokens = Arc::new(TokenIssuer::new(
            signing_keys,
            config.public_url.to_string(),
            TOKEN_AUDIENCE.to_owned(),
        ));
        // The master key stays out of Config: it is read from the environment or data_dir
        // only here, where the envelope takes it over.
        let configured_master_key = std::env::var("KEYWARD_MASTER_KEY").ok();
        let master_key = MasterKey::load_or_generate(&config.data_dir, configured_master_key.as_deref())
            .context("cannot load the master key")?;
        let key_table = KeyTable::open(&config.database_url)
            .await
            .context("cannot open the key table")?;
        let envelope = Arc::new(Envelope::new(master_key, key_table));
        let audit_index = AuditIndex::open(&config.database_url)
            .await
            .context("cannot open the audit index")?;
        audit_index.start(store.clone());
        let commands = Commands::new(store.clone(), projector.clone());
        let mailer = Mailer::start(&config, commands.clone(), projector.clone()).context("cannot set up mail")?;
        let config = Arc::new(config);
        let state = AppState::new(Services {
            config,
            store,
            projector,
            commands,
            tokens,
            envelope,
            mailer,
            audit_index,
            limits: Arc::new(RateLimits::default()),
            rpc: intents::RpcPool::new().context("cannot set up the RPC client")?,
            pending_nonces: Arc::new(intents::PendingNonces::new(std::time::Duration::from_secs(1))),
            reservations: Arc::new(Reservations::default()),
            broadcasts: Arc::default(),
            known_addresses: Arc::default(),
        });
        let resumed = super::broadcasts::resume_unsettled(&state);
        if resumed > 0 {
            tracing::info!(
                transactions = resumed,
                "sending again the transactions signed before the last stop"
            );
        }
        Ok(state)
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services of one process, shared by every request through [`AppState`].
pub struct Services {
    pub config: Arc<Config>,
    pub store: Arc<dyn EventStore>,
    pub projector: Arc<Projector>,
    pub commands: Commands,
    pub tokens: Arc<TokenIssuer>,
    pub envelope: Arc<Envelope>,
    pub mailer: Mailer,
    /// The audit trail's index, kept current with the log in the background.
    pub audit_index: Arc<AuditIndex>,
    pub limits: Arc<RateLimits>,
    /// Connections to chains' RPC nodes.
    pub rpc: intents::RpcPool,
    /// Each node's pending nonces, asked for at most once a second per signing address.
    pub pending_nonces: Arc<intents::PendingNonces>,
    /// Each agent's transaction reservations, decided in turns within this replica.
    pub reservations: Arc<Reservations>,
    /// Each sender's signed transactions, sent in nonce order within this replica.
    pub broadcasts: Arc<Broadcasts>,
    /// The address each private-key secret version signs for, derived once.
    pub known_addresses: Arc<intents::KnownAddresses<(domain::SecretId, u64)>>,
}
