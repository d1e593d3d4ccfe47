//! Shares: who shared what with whom, how often it was opened, and where it stands.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use domain::authz::Principal;
use domain::events::Event;
use domain::share::{Accessor, Share, visible_to};
use domain::{RecordedEvent, ShareId};

use crate::DomainModel;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shares {
    shares: HashMap<ShareId, Share>,
}

impl Shares {
    pub fn get(&self, id: ShareId) -> Option<&Share> {
        self.shares.get(&id)
    }

    /// What `by` shared and has not revoked, newest first; locked ones too, so the sharer
    /// sees them locked.
    pub fn outbound(&self, by: Principal) -> Vec<&Share> {
        newest_first(self.shares.values().filter(|s| s.created_by == by && !s.revoked))
    }

    /// What was shared with `accessor` by name (link shares are nobody's inbox), newest
    /// first. An address's shares are its account's once it claimed them with the emailed token
    /// (those made before claims existed: from the moment it signs up).
    pub fn inbound(&self, accessor: &Accessor) -> Vec<&Share> {
        newest_first(
            self.shares.values().filter(|share| {
                share.recipient != domain::share::Recipient::AnyoneWithLink && visible_to(share, accessor)
            }),
        )
    }
}

fn newest_first<'a>(shares: impl Iterator<Item = &'a Share>) -> Vec<&'a Share> {
    let mut found: Vec<&Share> = shares.collect();
    found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    found
}

impl DomainModel for Shares {
    fn apply(&mut self, recorded: &RecordedEvent, event: &Event) {
        let version = recorded.stream_version;
        let share_id = match event {
            Event::ShareCreated(created) => {
                self.shares
                    .insert(created.share_id, Share::created(created, recorded.recorded_at, version));
                return;
            }
            Event::ShareAccessed(e) => e.share_id,
            Event::ShareAccessDenied(e) => e.share_id,
            Event::ShareRevoked(e) => e.share_id,
            Event::ShareAccepted(e) => e.share_id,
            Event::ShareDeclined(e) => e.share_id,
            Event::ShareClaimed(e) => e.share_id,
            Event::ShareLocked(e) => e.share_id,
            _ => return,
        };
        let Some(share) = self.shares.get_mut(&share_id) else {
            return;
        };
        share.stream_version = version;
        match event {
            Event::ShareAccessed(_) => share.access_count += 1,
            Event::ShareRevoked(_) => share.revoked = true,
            Event::ShareAccepted(_) => share.accepted = true,
            Event::ShareDeclined(_) => share.declined = true,
            Event::ShareClaimed(e) => share.claimed_by = Some(e.user_id),
            Event::ShareAccessDenied(e) if e.wrong_passphrase => {
                share.wrong_passphrases = share.wrong_passphrases.saturating_add(1);
            }
            Event::ShareLocked(_) => share.locked = true,
            _ => {}
        }
    }
}
