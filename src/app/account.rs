//! Deleting a human's account: the organization they alone belong to goes with it, and its
//! vaults' keys are shredded first, so that none of their values is recoverable once the
//! log says they are deleted.

use std::collections::HashSet;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use domain::change::{Change, DomainError};
use domain::{Metadata, UserId, VaultId, user};
use projections::ReadModels;

use super::commands::Attempt;
use super::values::shred_vaults;
use super::{AppError, Services};

/// Deletes `user`'s account at `now`, recorded with `metadata`. Decided before any key
/// goes, since shredding cannot be undone: a refusal (the organization has other members)
/// destroys nothing. A vault created while its siblings' keys went has its keys shredded
/// too, and the deletion is decided again.
pub async fn delete_account(
    services: &Services,
    user: UserId,
    now: DateTime<Utc>,
    metadata: &Metadata,
) -> Result<(), AppError> {
    let shredded = Mutex::new(HashSet::new());
    let shredded = &shredded;
    services
        .commands
        .run::<_, _, AppError, _>(
            || async move {
                let (_, vaults) = services.projector.read(|models| account_deletion(models, user, now))?;
                let unshredded: Vec<VaultId> = {
                    let shredded = shredded.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    vaults.into_iter().filter(|id| !shredded.contains(id)).collect()
                };
                shred_vaults(services, unshredded.iter().copied()).await?;
                let mut shredded = shredded.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                shredded.extend(unshredded);
                Ok(shredded.clone())
            },
            |shredded| {
                let (changes, vaults) = services.projector.read(|models| account_deletion(models, user, now))?;
                if vaults.iter().all(|id| shredded.contains(id)) {
                    Ok(Attempt::changes(changes, metadata, ())?)
                } else {
                    Ok(Attempt::Stale(
                        "vaults kept being created while the account was being deleted",
                    ))
                }
            },
        )
        .await?;
    Ok(())
}

/// The decision to delete `user`'s account on `models`, and the vaults it deletes.
fn account_deletion(
    models: &ReadModels,
    user: UserId,
    now: DateTime<Utc>,
) -> Result<(Vec<Change>, Vec<VaultId>), DomainError> {
    let deletion = models.account_deletion(user).ok_or(DomainError::NotFound("user"))?;
    let vault_ids = deletion.vaults.iter().map(|vault| vault.id).collect();
    Ok((user::delete_account(deletion, now)?, vault_ids))
}
