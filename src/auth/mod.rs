//! Authentication building blocks: who a request is from, proven three ways.
//!
//! - [`jwt`]: the Ed25519 key that signs access tokens, issuing and verifying them, and the
//!   public documents (`/.well-known/jwks.json`, `/v1/auth/jwt-public-key`) that let others
//!   verify them too.
//! - [`password`]: argon2id hashing of user passwords and the policy a new password must meet.
//! - [`api_key`]: the long-lived `ocv_` (agent) and `1ck_` (user) keys that are exchanged for
//!   tokens, stored only as SHA-256 hashes.
//! - [`verification_token`]: the token mailed to prove an account's email address.
//!
//! Nothing here does IO except reading or creating the signing key file, and nothing reads
//! the clock: the time a token is issued or checked at comes in as an argument. Whether a
//! principal still exists, is active, or rotated its key after a token was issued is the
//! caller's question, answered live against the projections (invariant 5).
//!
//! No error, `Debug` or `Display` output here contains secret material: not a key, a
//! password, an API key or a presented token.

pub mod api_key;
pub mod jwt;
pub mod password;
pub mod verification_token;

use std::path::PathBuf;

pub use api_key::{ApiKey, ApiKeyHash, ApiKeyKind};
pub use jwt::{Claims, JwtPublicKey, PrincipalType, SigningKeys, TOKEN_AUDIENCE, TokenIssuer, TokenRequest, TokenUse};
pub use password::{
    PasswordPolicy, check_password_policy, dummy_verify, hash_passphrase, hash_password, verify_password,
};
pub use verification_token::VerificationToken;

/// Failures of the server's own auth machinery: a 500 to a client, except for
/// [`AuthError::PasswordRejected`], which is the caller's bad input (a 400).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The signing key file could not be read or created.
    #[error("the JWT signing key file {path} could not be {action}: {source}")]
    KeyFile {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The configured or stored key is not an unencrypted PKCS#8 Ed25519 private key.
    #[error("the JWT signing key is not an unencrypted PKCS#8 Ed25519 private key in PEM form")]
    InvalidSigningKey,
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Randomness,
    /// A token's lifetime must be from one second to [`jwt::MAX_TOKEN_TTL_SECS`].
    #[error("a token lifetime must be from 1 s to 366 days, got {seconds} s")]
    InvalidTtl { seconds: i64 },
    /// Signing a token failed (never expected with a key that loaded).
    #[error("signing the token failed")]
    Signing,
    /// A new password does not meet the [`PasswordPolicy`].
    #[error(transparent)]
    PasswordRejected(#[from] PasswordRejected),
    /// argon2 failed to hash a password (never expected with the default parameters).
    #[error("hashing the password failed")]
    PasswordHashing,
}

/// Why a new password was refused. Carries the limits, never the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRejected {
    #[error("password must be at least {min_chars} characters")]
    TooShort { min_chars: usize },
    #[error("password must be at most {max_bytes} bytes")]
    TooLong { max_bytes: usize },
}

/// Why a presented token was refused. Every variant means 401; they differ for tests and
/// logs. None carries any part of the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url segments of JSON, or too long to be one of ours.
    #[error("the token is malformed")]
    Malformed,
    /// The header names an algorithm other than EdDSA (`none`, `HS256`, ...).
    #[error("the token's algorithm is not EdDSA")]
    UnsupportedAlgorithm,
    /// The header has no `kid`, or one that is not our signing key's.
    #[error("the token was not signed by a known key")]
    UnknownKey,
    /// The signature does not verify with our public key.
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token is meant for another audience")]
    WrongAudience,
    /// `exp <= now`.
    #[error("the token has expired")]
    Expired,
    /// `iat` lies further in the future than the allowed clock skew.
    #[error("the token was issued in the future")]
    IssuedInFuture,
    /// Validly signed, but claims are missing or inconsistent (e.g. `sub` vs `principal_type`).
    #[error("the token's claims are invalid")]
    InvalidClaims,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_name_the_failure_and_carry_no_secret() {
        assert_eq!(TokenError::Expired.to_string(), "the token has expired");
        assert_eq!(
            TokenError::UnsupportedAlgorithm.to_string(),
            "the token's algorithm is not EdDSA"
        );
        assert_eq!(
            AuthError::InvalidTtl { seconds: 0 }.to_string(),
            "a token lifetime must be from 1 s to 366 days, got 0 s"
        );
        let key_file = AuthError::KeyFile {
            path: PathBuf::from("/srv/keyward/jwt-signing-key.pem"),
            action: "read",
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(
            key_file.to_string(),
            "the JWT signing key file /srv/keyward/jwt-signing-key.pem could not be read: permission denied"
        );
        assert_eq!(
            AuthError::from(PasswordRejected::TooShort { min_chars: 8 }).to_string(),
            "password must be at least 8 characters"
        );
    }
}
