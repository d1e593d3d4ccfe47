//! The members of an organization: their roles, and removing one. Every change goes
//! through the org's stream at the version the decision saw, so two decided at once cannot
//! both take the organization's last owner.

use crate::change::{Change, DomainError};
use crate::event::ExpectedVersion;
use crate::events::{MemberRemoved, MemberRoleChanged, OrgRole};
use crate::user::{self, User, org_stream};

/// A change of membership as the decision finds it.
pub struct Membership<'a> {
    /// The human asking, a member of the organization.
    pub actor: &'a User,
    /// The member it is about; one of another organization is as good as absent.
    pub target: &'a User,
    /// How many owners the organization has, the target among them if it is one.
    pub owners: usize,
    /// The version of the organization's stream.
    pub org_version: u64,
}

impl Membership<'_> {
    /// Refuses a target outside the actor's organization (404, never telling whether it
    /// exists elsewhere) and an actor who may not manage members, or not this change.
    fn authorize(&self, touches_owner: bool) -> Result<(), DomainError> {
        if self.target.org_id != self.actor.org_id {
            return Err(DomainError::NotFound("member"));
        }
        match self.actor.role {
            OrgRole::Owner => Ok(()),
            OrgRole::Admin if !touches_owner => Ok(()),
            OrgRole::Admin => Err(DomainError::Forbidden(
                "only an owner may make a member an owner, or change or remove an owner".into(),
            )),
            OrgRole::Member => Err(DomainError::Forbidden(
                "only an owner or admin of the organization may change roles or remove members".into(),
            )),
        }
    }

    fn is_last_owner(&self) -> bool {
        self.target.role == OrgRole::Owner && self.owners <= 1
    }
}

/// Gives the target `role`. `None`: it has that role already, and nothing is appended.
pub fn change_role(membership: Membership<'_>, role: OrgRole) -> Result<Option<Change>, DomainError> {
    let target = membership.target;
    membership.authorize(target.role == OrgRole::Owner || role == OrgRole::Owner)?;
    if target.role == role {
        return Ok(None);
    }
    if membership.is_last_owner() {
        return Err(DomainError::Conflict(
            "the organization must keep at least one owner: make another member an owner first".into(),
        ));
    }
    Ok(Some(Change::new(
        org_stream(target.org_id),
        ExpectedVersion::Exact(membership.org_version),
        MemberRoleChanged {
            org_id: target.org_id,
            user_id: target.id,
            role,
            by: membership.actor.id,
        },
    )))
}

/// Removes the target from the organization: from then on every credential of theirs is
/// refused, as a deleted account's, and their email can found a new account.
pub fn remove_member(membership: Membership<'_>) -> Result<Vec<Change>, DomainError> {
    let (actor, target) = (membership.actor, membership.target);
    membership.authorize(target.role == OrgRole::Owner)?;
    if membership.is_last_owner() {
        let detail = if target.id == actor.id {
            "you are the organization's last owner: it must keep one. To leave it for good, delete the \
             account with DELETE /v1/auth/me"
        } else {
            "the organization must keep at least one owner: make another member an owner first"
        };
        return Err(DomainError::Conflict(detail.into()));
    }
    Ok(vec![
        Change::new(
            org_stream(target.org_id),
            ExpectedVersion::Exact(membership.org_version),
            MemberRemoved {
                org_id: target.org_id,
                user_id: target.id,
                by: actor.id,
            },
        ),
        user::release_email(target),
    ])
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use uuid::Uuid;

    use super::*;
    use crate::email::Email;
    use crate::events::{EmailReleased, UserSignedUp};
    use crate::ids::{OrgId, UserId};
    use crate::user::email_stream;

    const ORG: OrgId = OrgId(Uuid::from_u128(100));

    fn member(id: u128, role: OrgRole) -> User {
        User::signed_up(
            &UserSignedUp {
                user_id: UserId(Uuid::from_u128(id)),
                org_id: ORG,
                email: Email::parse(&format!("user{id}@example.com")).unwrap(),
                display_name: format!("user {id}"),
                role,
                password_hash: "hash".into(),
            },
            DateTime::UNIX_EPOCH,
            1,
        )
    }

    fn membership<'a>(actor: &'a User, target: &'a User, owners: usize) -> Membership<'a> {
        Membership {
            actor,
            target,
            owners,
            org_version: 4,
        }
    }

    #[test]
    fn an_owner_changes_a_role_on_the_orgs_stream_at_the_version_it_saw() {
        let (owner, admin) = (member(1, OrgRole::Owner), member(2, OrgRole::Admin));
        let change = change_role(membership(&owner, &admin, 1), OrgRole::Member).unwrap();
        assert_eq!(
            change,
            Some(Change::new(
                org_stream(ORG),
                ExpectedVersion::Exact(4),
                MemberRoleChanged {
                    org_id: ORG,
                    user_id: admin.id,
                    role: OrgRole::Member,
                    by: owner.id
                }
            ))
        );
    }

    #[test]
    fn the_role_a_member_has_already_changes_nothing() {
        let owner = member(1, OrgRole::Owner);
        assert_eq!(change_role(membership(&owner, &owner, 1), OrgRole::Owner), Ok(None));
        let (admin, other) = (member(2, OrgRole::Admin), member(3, OrgRole::Member));
        assert_eq!(change_role(membership(&admin, &other, 1), OrgRole::Member), Ok(None));
    }

    #[test]
    fn the_last_owner_can_be_neither_demoted_nor_removed() {
        let owner = member(1, OrgRole::Owner);
        for role in [OrgRole::Admin, OrgRole::Member] {
            let refused = change_role(membership(&owner, &owner, 1), role);
            assert!(
                matches!(&refused, Err(DomainError::Conflict(detail)) if detail.contains("at least one owner")),
                "{refused:?}"
            );
        }
        let refused = remove_member(membership(&owner, &owner, 1));
        assert!(
            matches!(&refused, Err(DomainError::Conflict(detail)) if detail.contains("DELETE /v1/auth/me")),
            "{refused:?}"
        );
        // With a second owner, either may step down or leave.
        assert!(
            change_role(membership(&owner, &owner, 2), OrgRole::Admin)
                .unwrap()
                .is_some()
        );
        assert_eq!(remove_member(membership(&owner, &owner, 2)).map(|c| c.len()), Ok(2));
    }

    #[test]
    fn only_an_owner_makes_or_unmakes_an_owner() {
        let (owner, admin, other) = (
            member(1, OrgRole::Owner),
            member(2, OrgRole::Admin),
            member(3, OrgRole::Member),
        );
        let refused = change_role(membership(&admin, &other, 1), OrgRole::Owner);
        assert!(matches!(refused, Err(DomainError::Forbidden(_))), "{refused:?}");
        let refused = change_role(membership(&admin, &owner, 2), OrgRole::Admin);
        assert!(matches!(refused, Err(DomainError::Forbidden(_))), "{refused:?}");
        let refused = remove_member(membership(&admin, &owner, 2));
        assert!(matches!(refused, Err(DomainError::Forbidden(_))), "{refused:?}");
        // Below owner, an admin manages.
        assert!(
            change_role(membership(&admin, &other, 1), OrgRole::Admin)
                .unwrap()
                .is_some()
        );
        assert!(remove_member(membership(&admin, &other, 1)).is_ok());
        // An owner makes another owner.
        assert!(
            change_role(membership(&owner, &other, 1), OrgRole::Owner)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn a_member_manages_no_one_not_even_themselves() {
        let (owner, plain) = (member(1, OrgRole::Owner), member(3, OrgRole::Member));
        for target in [&owner, &plain] {
            let refused = change_role(membership(&plain, target, 1), OrgRole::Admin);
            assert!(matches!(refused, Err(DomainError::Forbidden(_))), "{refused:?}");
            let refused = remove_member(membership(&plain, target, 1));
            assert!(matches!(refused, Err(DomainError::Forbidden(_))), "{refused:?}");
        }
    }

    #[test]
    fn a_user_of_another_organization_is_not_found() {
        let owner = member(1, OrgRole::Owner);
        let mut stranger = member(9, OrgRole::Member);
        stranger.org_id = OrgId(Uuid::from_u128(200));
        assert_eq!(
            change_role(membership(&owner, &stranger, 1), OrgRole::Admin),
            Err(DomainError::NotFound("member"))
        );
        assert_eq!(
            remove_member(membership(&owner, &stranger, 1)),
            Err(DomainError::NotFound("member"))
        );
    }

    #[test]
    fn removing_a_member_releases_their_email_in_the_same_decision() {
        let (owner, plain) = (member(1, OrgRole::Owner), member(3, OrgRole::Member));
        let changes = remove_member(membership(&owner, &plain, 1)).unwrap();
        assert_eq!(
            changes,
            vec![
                Change::new(
                    org_stream(ORG),
                    ExpectedVersion::Exact(4),
                    MemberRemoved {
                        org_id: ORG,
                        user_id: plain.id,
                        by: owner.id
                    }
                ),
                Change::new(
                    email_stream(&plain.email),
                    ExpectedVersion::Any,
                    EmailReleased { user_id: plain.id }
                ),
            ]
        );
    }
}
