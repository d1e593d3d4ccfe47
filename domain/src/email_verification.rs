//! Proving an account's email: a token mailed to the address, presented back. Until then
//! the address grants nothing that was meant for whoever reads its mail: platform
//! administration, enrollments naming it (docs/security.md).

use chrono::{DateTime, Duration, Utc};

use crate::change::{Change, DomainError};
use crate::constant_time;
use crate::event::ExpectedVersion;
use crate::events::{EmailVerificationIssued, EmailVerified};
use crate::ids::UserId;
use crate::user::{User, user_stream};

/// How long a mailed verification token counts.
pub const TOKEN_TTL: Duration = Duration::hours(24);

/// How soon after one verification mail the next may be asked for: each is a mail to an
/// address the account may not hold.
pub const RESEND_INTERVAL: Duration = Duration::minutes(1);

/// The event of a verification mailed to `user`: with its sign-up, or asked for again.
pub fn issued(user: UserId, token_hash: String, now: DateTime<Utc>) -> EmailVerificationIssued {
    EmailVerificationIssued {
        user_id: user,
        token_hash,
        expires_at: now + TOKEN_TTL,
    }
}

/// A new verification for an account whose address is not verified yet; the token mailed
/// before it no longer counts.
pub fn issue(user: &User, token_hash: String, now: DateTime<Utc>) -> Result<Change, DomainError> {
    if user.email_verified {
        return Err(DomainError::Conflict("the email is already verified".into()));
    }
    if let Some(pending) = &user.pending_verification {
        let next = pending.issued_at + RESEND_INTERVAL;
        if now < next {
            let seconds = (next - now).num_seconds().max(1);
            return Err(DomainError::TooSoon {
                retry_after_seconds: u64::try_from(seconds).unwrap_or(1),
            });
        }
    }
    Ok(Change::new(
        user_stream(user.id),
        ExpectedVersion::Exact(user.version),
        issued(user.id, token_hash, now),
    ))
}

/// What every refusal of a presented token says, whatever was wrong with it: nothing to
/// tell an account with a token from one without.
pub const INVALID_TOKEN: &str = "the verification token is invalid, used or expired";

/// The account's address is verified by the token mailed to it last, presented before it
/// expired, once.
pub fn verify(user: &User, presented_hash: &str, now: DateTime<Utc>) -> Result<Change, DomainError> {
    let valid = user.pending_verification.as_ref().is_some_and(|pending| {
        now < pending.expires_at && constant_time::eq(pending.token_hash.as_bytes(), presented_hash.as_bytes())
    });
    if !valid {
        return Err(DomainError::Invalid(INVALID_TOKEN.into()));
    }
    Ok(Change::new(
        user_stream(user.id),
        ExpectedVersion::Exact(user.version),
        EmailVerified {
            user_id: user.id,
            email: user.email.clone(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::email::Email;
    use crate::events::{Event, OrgRole, UserSignedUp};
    use crate::ids::OrgId;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-05T10:00:00Z").unwrap().to_utc()
    }

    fn signed_up() -> User {
        let event = UserSignedUp {
            user_id: UserId::new(),
            org_id: OrgId::new(),
            email: Email::parse("ops@example.com").unwrap(),
            display_name: "ops".into(),
            role: OrgRole::Owner,
            password_hash: "$argon2id$".into(),
        };
        let mut user = User::signed_up(&event, now(), 1);
        let issued = issued(user.id, "hash-1".into(), now());
        user.apply(&Event::EmailVerificationIssued(issued), now(), 2);
        user
    }

    fn applied(mut user: User, change: &Change) -> User {
        let version = user.version + 1;
        user.apply(&change.events[0], now(), version);
        user
    }

    #[test]
    fn the_mailed_token_verifies_the_address_once() {
        let user = signed_up();
        assert!(!user.email_verified);
        let verified = applied(user, &verify(&signed_up(), "hash-1", now()).unwrap());
        assert!(verified.email_verified);
        assert_eq!(
            verify(&verified, "hash-1", now()),
            Err(DomainError::Invalid(INVALID_TOKEN.into())),
            "used"
        );
    }

    #[test]
    fn a_wrong_or_expired_token_is_refused_alike() {
        let user = signed_up();
        let refused = Err(DomainError::Invalid(INVALID_TOKEN.into()));
        assert_eq!(verify(&user, "hash-2", now()), refused);
        assert_eq!(verify(&user, "", now()), refused);
        assert_eq!(verify(&user, "hash-1", now() + TOKEN_TTL), refused, "expired");
        assert!(verify(&user, "hash-1", now() + TOKEN_TTL - Duration::seconds(1)).is_ok());
    }

    #[test]
    fn a_new_token_replaces_the_last_after_the_resend_interval() {
        let user = signed_up();
        assert_eq!(
            issue(&user, "hash-2".into(), now() + Duration::seconds(20)),
            Err(DomainError::TooSoon {
                retry_after_seconds: 40
            })
        );
        let reissued = applied(
            user,
            &issue(&signed_up(), "hash-2".into(), now() + RESEND_INTERVAL).unwrap(),
        );
        assert!(
            verify(&reissued, "hash-1", now()).is_err(),
            "the earlier token no longer counts"
        );
        assert!(verify(&reissued, "hash-2", now()).is_ok());
        let verified = applied(reissued.clone(), &verify(&reissued, "hash-2", now()).unwrap());
        assert_eq!(
            issue(&verified, "hash-3".into(), now() + Duration::hours(1)),
            Err(DomainError::Conflict("the email is already verified".into()))
        );
    }

    #[test]
    fn a_configured_admin_address_makes_an_admin_only_once_verified_and_a_grant_whatever_the_address() {
        let admins = vec!["OPS@example.com".to_owned()];
        let user = signed_up();
        assert!(!user.is_platform_admin(&admins), "anyone can sign up with the address");
        let verified = applied(user.clone(), &verify(&user, "hash-1", now()).unwrap());
        assert!(verified.is_platform_admin(&admins));
        assert!(!verified.is_platform_admin(&[]));
        let mut granted = user;
        granted.admin_granted = true;
        assert!(granted.is_platform_admin(&[]));
    }
}
