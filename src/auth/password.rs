//! User passwords: argon2id hashes in PHC string form, and the policy for new passwords.
//!
//! Hashing uses the `argon2` crate's defaults, which are OWASP's recommended minimum for
//! argon2id: version 0x13 (19), m = 19 MiB (19456 KiB), t = 2 iterations, p = 1 lane,
//! a 16-byte random salt and a 32-byte output, e.g.
//! `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`. Verification takes the parameters from
//! the stored string, so hashes made with other parameters keep verifying if the defaults
//! change; the comparison of outputs is constant-time inside the crate.
//!
//! A login with an unknown email must take as long as one with a wrong password, or the
//! response time tells which emails have accounts: that branch calls [`dummy_verify`].

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use super::{AuthError, PasswordRejected};

/// The least a new password may have, in characters (Unicode scalar values). The 1claw
/// spec's `SignupRequest` states no minimum; 8 is NIST SP 800-63B's.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The most a password may have, in bytes: bounds the work one login attempt can cause.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A real argon2id hash, with the default parameters, of a random password nobody knows.
/// A test pins that its parameters stay equal to the crate's defaults.
const DUMMY_PHC: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$AZ5v9+XxAilzSVIM7HXmxg$RU3UXhvMO/9jYkwhRT2h35rlOFvp7WkF6wvi+G3hJoQ";

/// What a new password must satisfy (at sign-up and on change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub min_chars: usize,
    pub max_bytes: usize,
}

impl PasswordPolicy {
    pub const DEFAULT: Self = Self {
        min_chars: MIN_PASSWORD_CHARS,
        max_bytes: MAX_PASSWORD_BYTES,
    };

    pub fn check(&self, password: &str) -> Result<(), PasswordRejected> {
        if password.len() > self.max_bytes {
            return Err(PasswordRejected::TooLong {
                max_bytes: self.max_bytes,
            });
        }
        if password.chars().count() < self.min_chars {
            return Err(PasswordRejected::TooShort {
                min_chars: self.min_chars,
            });
        }
        Ok(())
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Checks a new password against [`PasswordPolicy::DEFAULT`].
pub fn check_password_policy(password: &str) -> Result<(), PasswordRejected> {
    PasswordPolicy::DEFAULT.check(password)
}

/// Hashes a new password, which must meet [`PasswordPolicy::DEFAULT`], to a PHC string.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    hash_under(&PasswordPolicy::DEFAULT, password)
}

/// What a share's passphrase must be: at least [`MIN_PASSPHRASE_CHARS`] characters,
/// bounded like a password. A link share's passphrase is all that stands between whoever
/// holds the link and the value, and it can be guessed (ten times, before the share locks:
/// docs/security.md, "Guessing a share's passphrase").
pub const PASSPHRASE_POLICY: PasswordPolicy = PasswordPolicy {
    min_chars: MIN_PASSPHRASE_CHARS,
    max_bytes: MAX_PASSWORD_BYTES,
};

/// The least a share's passphrase may have, in characters: a password's minimum. The 1claw
/// spec's `CreateShareRequest.passphrase` states none.
pub const MIN_PASSPHRASE_CHARS: usize = MIN_PASSWORD_CHARS;

/// Hashes a share passphrase ([`PASSPHRASE_POLICY`]); verified like a password.
pub fn hash_passphrase(passphrase: &str) -> Result<String, AuthError> {
    hash_under(&PASSPHRASE_POLICY, passphrase)
}

fn hash_under(policy: &PasswordPolicy, password: &str) -> Result<String, AuthError> {
    policy.check(password)?;
    let hash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|_| AuthError::PasswordHashing)?;
    Ok(hash.to_string())
}

/// Whether `password` matches the stored PHC string.
///
/// Every call does one argon2 computation, whatever the input: a password longer than
/// [`MAX_PASSWORD_BYTES`] is not hashed itself (it never matches; an empty stand-in is
/// hashed instead, so the bound caps the work without making the refusal faster), and a
/// stored string that is not a PHC hash costs a verification against the dummy hash.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        dummy_verify();
        return false;
    };
    if password.len() > MAX_PASSWORD_BYTES {
        argon2_verify(b"", &hash);
        return false;
    }
    argon2_verify(password.as_bytes(), &hash)
}

/// Spends what [`verify_password`] spends, for the unknown-email branch of a login.
pub fn dummy_verify() {
    if let Ok(hash) = PasswordHash::new(DUMMY_PHC) {
        argon2_verify(b"", &hash);
    }
}

/// The one place a password is checked against a hash: every branch above costs exactly
/// one call, which the tests count instead of timing.
fn argon2_verify(password: &[u8], hash: &PasswordHash) -> bool {
    #[cfg(test)]
    tests::ARGON2_VERIFICATIONS.with(|count| count.set(count.get() + 1));
    Argon2::default().verify_password(password, hash).is_ok()
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    thread_local! {
        /// Argon2 verifications run on this test's thread.
        pub(super) static ARGON2_VERIFICATIONS: Cell<u64> = const { Cell::new(0) };
    }

    use argon2::Params;

    use super::*;

    const GOOD: &str = "correct horse battery staple";

    #[test]
    fn a_hash_is_an_argon2id_phc_string_with_the_default_parameters() {
        let phc = hash_password(GOOD).unwrap();
        let fields: Vec<&str> = phc.split('$').collect();
        assert_eq!(fields[..4], ["", "argon2id", "v=19", "m=19456,t=2,p=1"], "{phc}");
        assert_eq!(fields[4].len(), 22, "a 16-byte salt");
        assert_eq!(fields[5].len(), 43, "a 32-byte output");
        assert_eq!(fields.len(), 6);
    }

    #[test]
    fn the_same_password_hashes_differently_each_time() {
        assert_ne!(hash_password(GOOD).unwrap(), hash_password(GOOD).unwrap());
    }

    #[test]
    fn the_right_password_verifies_and_no_other_does() {
        let phc = hash_password(GOOD).unwrap();
        assert!(verify_password(GOOD, &phc));
        for wrong in [
            "",
            "correct horse battery stapl",
            "Correct horse battery staple",
            "correct horse battery staple ",
        ] {
            assert!(!verify_password(wrong, &phc), "{wrong:?}");
        }
    }

    #[test]
    fn a_stored_string_that_is_not_a_phc_hash_never_verifies() {
        let truncated = &hash_password(GOOD).unwrap()[..40];
        for stored in ["", GOOD, "$argon2id$", "$2b$12$abcdefghijklmnopqrstuv", truncated] {
            assert!(!verify_password(GOOD, stored), "{stored:?}");
        }
    }

    #[test]
    fn a_password_over_1024_bytes_never_verifies_even_against_its_own_hash() {
        let long = "a".repeat(MAX_PASSWORD_BYTES + 1);
        let own_hash = Argon2::default().hash_password(long.as_bytes()).unwrap().to_string();
        assert!(!verify_password(&long, &own_hash));
        let longest = "a".repeat(MAX_PASSWORD_BYTES);
        assert!(verify_password(&longest, &hash_password(&longest).unwrap()));
    }

    #[test]
    fn the_policy_counts_characters_for_the_minimum_and_bytes_for_the_maximum() {
        let policy = PasswordPolicy::default();
        assert_eq!(
            policy,
            PasswordPolicy {
                min_chars: 8,
                max_bytes: 1024
            }
        );
        assert_eq!(
            policy.check("1234567"),
            Err(PasswordRejected::TooShort { min_chars: 8 })
        );
        assert_eq!(policy.check("12345678"), Ok(()));
        assert_eq!(
            policy.check("ééééééé"),
            Err(PasswordRejected::TooShort { min_chars: 8 })
        );
        assert_eq!(policy.check("éééééééé"), Ok(()));
        assert_eq!(policy.check(&"a".repeat(1024)), Ok(()));
        assert_eq!(
            policy.check(&"a".repeat(1025)),
            Err(PasswordRejected::TooLong { max_bytes: 1024 })
        );
        assert_eq!(
            policy.check(&"é".repeat(513)),
            Err(PasswordRejected::TooLong { max_bytes: 1024 })
        );
        assert_eq!(
            check_password_policy(""),
            Err(PasswordRejected::TooShort { min_chars: 8 })
        );
    }

    #[test]
    fn hashing_refuses_what_the_policy_refuses() {
        assert!(matches!(
            hash_password("short"),
            Err(AuthError::PasswordRejected(PasswordRejected::TooShort { min_chars: 8 }))
        ));
        assert!(matches!(
            hash_password(&"a".repeat(1025)),
            Err(AuthError::PasswordRejected(PasswordRejected::TooLong {
                max_bytes: 1024
            }))
        ));
    }

    #[test]
    fn rejections_state_the_limit_and_never_the_password() {
        assert_eq!(
            PasswordRejected::TooShort { min_chars: 8 }.to_string(),
            "password must be at least 8 characters"
        );
        assert_eq!(
            PasswordRejected::TooLong { max_bytes: 1024 }.to_string(),
            "password must be at most 1024 bytes"
        );
        let error = hash_password("hunter2").unwrap_err();
        assert_eq!(error.to_string(), "password must be at least 8 characters");
        assert!(!format!("{error:?}").contains("hunter2"));
    }

    #[test]
    fn the_dummy_hash_has_the_parameters_real_hashes_get() {
        let dummy = PasswordHash::new(DUMMY_PHC).unwrap();
        let real_phc = hash_password(GOOD).unwrap();
        let real = PasswordHash::new(&real_phc).unwrap();
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        let (dummy_params, default_params) = (Params::try_from(&dummy).unwrap(), Params::default());
        assert_eq!(
            (dummy_params.m_cost(), dummy_params.t_cost(), dummy_params.p_cost()),
            (
                default_params.m_cost(),
                default_params.t_cost(),
                default_params.p_cost()
            )
        );
        assert_eq!(dummy.hash.map(|output| output.len()), Some(32));
    }

    #[test]
    fn every_login_branch_costs_one_argon2_verification() {
        let phc = hash_password(GOOD).unwrap();
        let long = "a".repeat(5000);
        let branches: [(&str, &dyn Fn()); 5] = [
            ("right password", &|| assert!(verify_password(GOOD, &phc))),
            ("wrong password", &|| assert!(!verify_password("wrong password", &phc))),
            ("unknown email", &dummy_verify),
            ("over-long password", &|| assert!(!verify_password(&long, &phc))),
            ("corrupt stored hash", &|| assert!(!verify_password(GOOD, "not a hash"))),
        ];
        for (branch, run) in branches {
            let before = ARGON2_VERIFICATIONS.with(Cell::get);
            run();
            assert_eq!(ARGON2_VERIFICATIONS.with(Cell::get) - before, 1, "{branch}");
        }
    }
}
