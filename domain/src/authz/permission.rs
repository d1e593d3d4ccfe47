//! What a policy grants on the secrets it matches: `read`, `write`, or both.

use std::fmt;
use std::str::FromStr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One permission, spelled `"read"` / `"write"` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    Read,
    Write,
}

impl Permission {
    pub const ALL: [Permission; 2] = [Permission::Read, Permission::Write];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Write => "write",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Permission::Read => 0b01,
            Permission::Write => 0b10,
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Permission {
    type Err = PermissionsError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "read" => Ok(Permission::Read),
            "write" => Ok(Permission::Write),
            _ => Err(PermissionsError::Unknown(raw.to_owned())),
        }
    }
}

/// A non-empty set of permissions. On the wire, the policy's `permissions` array:
/// serialized as `["read"]`, `["write"]` or `["read","write"]` (always in that order);
/// deserialized from any non-empty array of those names, duplicates allowed.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Permissions(u8);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermissionsError {
    #[error("unknown permission {0:?}; expected \"read\" or \"write\"")]
    Unknown(String),
    #[error("permissions must name at least one of \"read\" and \"write\"")]
    Empty,
}

impl Permissions {
    pub const READ: Permissions = Permissions(0b01);
    pub const WRITE: Permissions = Permissions(0b10);
    pub const READ_WRITE: Permissions = Permissions(0b11);

    /// The set of the given permissions; at least one is required.
    pub fn new(permissions: impl IntoIterator<Item = Permission>) -> Result<Self, PermissionsError> {
        let bits = permissions
            .into_iter()
            .fold(0, |bits, permission| bits | permission.bit());
        if bits == 0 {
            Err(PermissionsError::Empty)
        } else {
            Ok(Self(bits))
        }
    }

    /// Parses wire names (`"read"`, `"write"`); the first unknown name is the error.
    pub fn from_names<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Result<Self, PermissionsError> {
        let permissions = names
            .into_iter()
            .map(|name| name.as_ref().parse::<Permission>())
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(permissions)
    }

    pub fn contains(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    /// This set plus `permission`.
    pub fn with(self, permission: Permission) -> Self {
        Self(self.0 | permission.bit())
    }

    /// The permissions in the set, read before write.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .into_iter()
            .filter(move |permission| self.contains(*permission))
    }
}

impl From<Permission> for Permissions {
    fn from(permission: Permission) -> Self {
        Self(permission.bit())
    }
}

/// `read`, `write` or `read, write`.
impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Permission::as_str).collect();
        f.write_str(&names.join(", "))
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permissions[{self}]")
    }
}

impl Serialize for Permissions {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter().map(Permission::as_str))
    }
}

impl<'de> Deserialize<'de> for Permissions {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(deserializer)?;
        Self::from_names(names).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn permissions_serialize_as_a_json_array_of_names_in_canonical_order() {
        assert_eq!(serde_json::to_string(&Permissions::READ).unwrap(), r#"["read"]"#);
        assert_eq!(serde_json::to_string(&Permissions::WRITE).unwrap(), r#"["write"]"#);
        assert_eq!(
            serde_json::to_string(&Permissions::READ_WRITE).unwrap(),
            r#"["read","write"]"#
        );
    }

    #[test]
    fn permissions_deserialize_in_any_order_and_ignore_duplicates() {
        let parse = |json: &str| serde_json::from_str::<Permissions>(json).unwrap();
        assert_eq!(parse(r#"["write","read"]"#), Permissions::READ_WRITE);
        assert_eq!(parse(r#"["read","read"]"#), Permissions::READ);
        assert_eq!(parse(r#"["write"]"#), Permissions::WRITE);
    }

    #[test]
    fn unknown_permission_name_is_rejected() {
        let err = serde_json::from_str::<Permissions>(r#"["read","delete"]"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown permission \"delete\"; expected \"read\" or \"write\""
        );
        assert_eq!(
            Permissions::from_names(["Read"]),
            Err(PermissionsError::Unknown("Read".into()))
        );
    }

    #[test]
    fn empty_permissions_are_rejected() {
        let err = serde_json::from_str::<Permissions>("[]").unwrap_err();
        assert_eq!(
            err.to_string(),
            "permissions must name at least one of \"read\" and \"write\""
        );
        assert_eq!(Permissions::new([]), Err(PermissionsError::Empty));
    }

    #[test]
    fn permissions_contain_what_they_were_built_from() {
        assert!(Permissions::READ.contains(Permission::Read));
        assert!(!Permissions::READ.contains(Permission::Write));
        assert!(Permissions::WRITE.contains(Permission::Write));
        assert!(!Permissions::WRITE.contains(Permission::Read));
        assert_eq!(Permissions::READ.with(Permission::Write), Permissions::READ_WRITE);
        assert_eq!(Permissions::from(Permission::Write), Permissions::WRITE);
        assert_eq!(
            Permissions::READ_WRITE.iter().collect::<Vec<_>>(),
            vec![Permission::Read, Permission::Write]
        );
    }

    #[test]
    fn permissions_display_as_comma_separated_names() {
        assert_eq!(Permissions::READ.to_string(), "read");
        assert_eq!(Permissions::READ_WRITE.to_string(), "read, write");
        assert_eq!(format!("{:?}", Permissions::WRITE), "Permissions[write]");
    }

    #[test]
    fn single_permission_serializes_as_snake_case() {
        assert_eq!(serde_json::to_string(&Permission::Write).unwrap(), "\"write\"");
        assert_eq!(
            serde_json::from_str::<Permission>("\"read\"").unwrap(),
            Permission::Read
        );
        assert_eq!("write".parse::<Permission>(), Ok(Permission::Write));
    }

    proptest! {
        #[test]
        fn non_empty_permission_lists_round_trip_as_sets(list in prop::collection::vec(prop::sample::select(Permission::ALL.to_vec()), 1..6)) {
            let permissions = Permissions::new(list.clone()).unwrap();
            for permission in Permission::ALL {
                prop_assert_eq!(permissions.contains(permission), list.contains(&permission));
            }
            let json = serde_json::to_string(&permissions).unwrap();
            prop_assert_eq!(serde_json::from_str::<Permissions>(&json).unwrap(), permissions);
        }
    }
}
