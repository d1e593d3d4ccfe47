//! Vaults: named containers of secrets, owned by their creator within an organization.

use chrono::{DateTime, Utc};

use crate::authz::Principal;
use crate::change::{Change, DomainError, stream};
use crate::event::ExpectedVersion;
use crate::events::{VaultCreated, VaultDeleted};
use crate::ids::{OrgId, VaultId};
use crate::stream::StreamId;

const MAX_NAME: usize = 100;
const MAX_DESCRIPTION: usize = 1000;

pub fn vault_stream(vault: VaultId) -> StreamId {
    stream("vault", vault)
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Vault {
    pub id: VaultId,
    pub org_id: OrgId,
    pub name: String,
    pub description: Option<String>,
    /// The owner: passes the policy layer of authorization for this vault.
    pub created_by: Principal,
    pub created_at: DateTime<Utc>,
    pub version: u64,
}

impl Vault {
    pub fn created(event: &VaultCreated, at: DateTime<Utc>, version: u64) -> Self {
        Self {
            id: event.vault_id,
            org_id: event.org_id,
            name: event.name.clone(),
            description: event.description.clone(),
            created_by: event.created_by,
            created_at: at,
            version,
        }
    }
}

pub struct CreateVault {
    pub vault_id: VaultId,
    pub org_id: OrgId,
    pub name: String,
    pub description: Option<String>,
    pub created_by: Principal,
}

pub fn create_vault(command: CreateVault) -> Result<Change, DomainError> {
    let name = command.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(DomainError::Invalid(format!(
            "name must be 1 to {MAX_NAME} characters without control characters"
        )));
    }
    let description = command
        .description
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty());
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
    {
        return Err(DomainError::Invalid(format!(
            "description must be at most {MAX_DESCRIPTION} characters"
        )));
    }
    Ok(Change::new(
        vault_stream(command.vault_id),
        ExpectedVersion::NoStream,
        VaultCreated {
            vault_id: command.vault_id,
            org_id: command.org_id,
            name: name.to_owned(),
            description,
            created_by: command.created_by,
        },
    ))
}

pub fn delete_vault(vault: &Vault) -> Change {
    Change::new(
        vault_stream(vault.id),
        ExpectedVersion::Exact(vault.version),
        VaultDeleted { vault_id: vault.id },
    )
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::authz::PrincipalType;
    use crate::events::Event;

    fn command(name: &str, description: Option<&str>) -> CreateVault {
        CreateVault {
            vault_id: VaultId(Uuid::from_u128(1)),
            org_id: OrgId(Uuid::from_u128(2)),
            name: name.into(),
            description: description.map(str::to_owned),
            created_by: Principal {
                kind: PrincipalType::User,
                id: Uuid::from_u128(3),
            },
        }
    }

    #[test]
    fn a_vault_is_created_once_with_a_trimmed_name() {
        let change = create_vault(command("  prod  ", Some("  "))).unwrap();
        assert_eq!(change.expected, ExpectedVersion::NoStream);
        match &change.events[0] {
            Event::VaultCreated(created) => {
                assert_eq!(created.name, "prod");
                assert_eq!(created.description, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_names_and_descriptions_are_refused() {
        assert!(create_vault(command("", None)).is_err());
        assert!(create_vault(command(&"v".repeat(101), None)).is_err());
        assert!(create_vault(command("a\nb", None)).is_err());
        assert!(create_vault(command("ok", Some(&"d".repeat(1001)))).is_err());
    }
}
