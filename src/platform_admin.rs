//! `keyward admin grant|revoke EMAIL`: an operator on the server makes an account a
//! platform administrator, or no longer one, by appending the decision to the log
//! (docs/security.md). Running servers see it within their tail's poll.

use chrono::Utc;
use domain::email::Email;
use domain::events::Event;
use domain::{Metadata, OrgId, UserId, platform_admin, user};

use crate::app::commands::{CommandError, encode};
use crate::store::{EventStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no account holds {0}")]
    NoAccount(Email),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Command(#[from] CommandError),
}

/// Grants (or, with `granted` false, revokes) platform administration to the account that
/// holds `email` now; the account's id.
pub async fn set(store: &dyn EventStore, email: Email, granted: bool) -> Result<UserId, AdminError> {
    let holder = holder_of(store, &email)
        .await?
        .ok_or_else(|| AdminError::NoAccount(email.clone()))?;
    let org = org_of(store, holder).await?;
    let change = if granted {
        platform_admin::grant(holder, email)
    } else {
        platform_admin::revoke(holder, email)
    };
    let mut metadata = Metadata::system(Utc::now());
    metadata.actor_id = Some("keyward admin".to_owned());
    // In the audit trail of the account's organization.
    metadata.org_id = org.map(|org| org.0);
    let append = encode(change, &metadata)?;
    store.append_atomic(vec![append]).await.map_err(CommandError::from)?;
    Ok(holder)
}

/// The organization `user` signed up into: the first event of their stream says.
async fn org_of(store: &dyn EventStore, user: UserId) -> Result<Option<OrgId>, StoreError> {
    let first = store.read_stream(&user::user_stream(user), 0, 1).await?;
    Ok(match first.first().and_then(|event| Event::decode(event)?.ok()) {
        Some(Event::UserSignedUp(signed_up)) => Some(signed_up.org_id),
        _ => None,
    })
}

/// The account whose claim on `email` stands: the address's stream holds claims and the
/// releases of deleted accounts, in turn, so its last event says.
async fn holder_of(store: &dyn EventStore, email: &Email) -> Result<Option<UserId>, StoreError> {
    let stream = user::email_stream(email);
    let mut last = None;
    let mut after = 0;
    loop {
        let events = store.read_stream(&stream, after, 100).await?;
        let Some(tail) = events.last() else {
            break;
        };
        after = tail.stream_version;
        last = Event::decode(tail).and_then(Result::ok);
    }
    Ok(match last {
        Some(Event::EmailClaimed(claimed)) => Some(claimed.user_id),
        _ => None,
    })
}
