//! The log in memory, for the read models' tests.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use domain::change::Change;
use domain::email::Email;
use domain::user::{self, SignUp};
use domain::{ChainHash, ExpectedVersion, Metadata, OrgId, RecordedEvent, StreamId, UserId};
use uuid::Uuid;

use crate::ReadModels;

/// The log in memory: each change appended only if its stream is where it expects,
/// one event a minute, folded into every read model.
#[derive(Default)]
pub struct Log {
    pub models: ReadModels,
    /// Every event appended, in order.
    pub recorded: Vec<RecordedEvent>,
    /// Every stream's version, as the store keeps it.
    versions: HashMap<StreamId, u64>,
}

impl Log {
    pub fn now(&self) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + Duration::minutes(self.models.position() as i64)
    }

    pub fn append(&mut self, changes: Vec<Change>) {
        for change in changes {
            let version = self.versions.get(&change.stream).copied();
            match change.expected {
                ExpectedVersion::NoStream => assert_eq!(version, None, "{}", change.stream.as_str()),
                ExpectedVersion::Exact(expected) => {
                    assert_eq!(version, Some(expected), "{}", change.stream.as_str())
                }
                _ => {}
            }
            for (offset, event) in (1..).zip(change.events) {
                let position = self.models.position() + 1;
                let new = event.to_new_event(&Metadata::system(self.now())).unwrap();
                let recorded = RecordedEvent {
                    position,
                    event_id: new.event_id,
                    stream_id: change.stream.clone(),
                    stream_version: version.unwrap_or(0) + offset,
                    event_type: new.event_type,
                    schema_version: new.schema_version,
                    payload: new.payload,
                    metadata: new.metadata,
                    recorded_at: DateTime::UNIX_EPOCH + Duration::minutes(position as i64),
                    prev_hash: ChainHash::GENESIS,
                    hash: ChainHash::GENESIS,
                };
                self.versions.insert(change.stream.clone(), recorded.stream_version);
                self.models.apply(&recorded);
                self.recorded.push(recorded);
            }
        }
    }

    /// Signs `email` up as a sign-up request decides it now.
    pub fn sign_up(&mut self, email: &str, id: u128) -> UserId {
        let email = Email::parse(email).unwrap();
        let stream = user::email_stream(&email);
        let changes = user::sign_up(SignUp {
            user_id: UserId(Uuid::from_u128(id)),
            org_id: OrgId(Uuid::from_u128(id + 1)),
            email,
            display_name: None,
            password_hash: "hash".into(),
            email_stream_version: self.models.streams.version(&stream),
            verification_token_hash: "token-hash".into(),
            sign_in_id: Uuid::from_u128(id + 4096),
            sign_in_expires_at: DateTime::UNIX_EPOCH + Duration::days(365),
            now: DateTime::UNIX_EPOCH,
        })
        .unwrap();
        self.append(changes);
        UserId(Uuid::from_u128(id))
    }

    /// Verifies `user`'s address with the token their sign-up mailed.
    pub fn verify_email(&mut self, user: UserId) {
        let account = self.models.directory.user(user).unwrap();
        let change = domain::email_verification::verify(account, "token-hash", self.now()).unwrap();
        self.append(vec![change]);
    }
}
