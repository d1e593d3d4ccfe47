//! The names of wrapped keys, and what their wrapping is bound to.

use std::fmt;

use domain::VaultId;

/// Associated data of a wrapped key: this prefix, then the key id.
const WRAPPED_KEY_AAD: &[u8] = b"keyward/wrapped-key/v1\0";

/// Which key a row of the key table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyId<'a> {
    /// A vault's key-encryption key, wrapped by the master key.
    Kek(VaultId),
    /// The data key of one version of a secret, wrapped by its vault's KEK.
    Dek {
        vault: VaultId,
        path: &'a str,
        version: u64,
    },
}

impl KeyId<'_> {
    pub(crate) fn vault(&self) -> VaultId {
        match *self {
            KeyId::Kek(vault) | KeyId::Dek { vault, .. } => vault,
        }
    }

    /// The secret a DEK belongs to; none for a KEK.
    pub(crate) fn secret_path(&self) -> Option<&str> {
        match *self {
            KeyId::Kek(_) => None,
            KeyId::Dek { path, .. } => Some(path),
        }
    }

    /// What the wrapping of this key is bound to, so a wrapped key copied to another row
    /// does not unwrap. Unambiguous: the vault id has a fixed length and the version, last,
    /// is digits only, so a `:` inside a path cannot make two ids alike.
    pub(crate) fn aad(&self) -> Vec<u8> {
        let id = self.to_string();
        let mut aad = Vec::with_capacity(WRAPPED_KEY_AAD.len() + id.len());
        aad.extend_from_slice(WRAPPED_KEY_AAD);
        aad.extend_from_slice(id.as_bytes());
        aad
    }
}

impl fmt::Display for KeyId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyId::Kek(vault) => write!(f, "kek:{vault}"),
            KeyId::Dek { vault, path, version } => write!(f, "dek:{vault}:{path}:{version}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn key_ids_name_the_vault_the_path_and_the_version() {
        let vault = VaultId(Uuid::from_u128(7));
        assert_eq!(
            KeyId::Kek(vault).to_string(),
            "kek:00000000-0000-0000-0000-000000000007"
        );
        let dek = KeyId::Dek {
            vault,
            path: "db/prod/password",
            version: 12,
        };
        assert_eq!(
            dek.to_string(),
            "dek:00000000-0000-0000-0000-000000000007:db/prod/password:12"
        );
        assert_eq!(
            dek.aad(),
            b"keyward/wrapped-key/v1\0dek:00000000-0000-0000-0000-000000000007:db/prod/password:12"
        );
        assert_eq!(dek.secret_path(), Some("db/prod/password"));
        assert_eq!(KeyId::Kek(vault).secret_path(), None);
    }
}
