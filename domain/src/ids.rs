//! Identifiers of the things keyward keeps, one type each so they cannot be mixed up.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(text).map(Self)
            }
        }
    )*};
}

uuid_id!(
    /// An organization: the tenant that owns users, agents and vaults.
    OrgId,
    /// A human account.
    UserId,
    /// An AI agent's identity.
    AgentId,
    VaultId,
    /// A secret, across all of its versions.
    SecretId,
    PolicyId,
    ShareId,
    /// An agent's request to join an organization, pending a human's decision.
    EnrollmentId,
    /// One email keyward sends.
    MailId,
    /// A personal API key of a user.
    ApiKeyId,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_serialize_as_bare_uuids_and_parse_back() {
        let id = VaultId(Uuid::from_u128(7));
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"00000000-0000-0000-0000-000000000007\"");
        assert_eq!(serde_json::from_str::<VaultId>(&json).unwrap(), id);
        assert_eq!("00000000-0000-0000-0000-000000000007".parse::<VaultId>().unwrap(), id);
        assert!("not-a-uuid".parse::<VaultId>().is_err());
    }
}
