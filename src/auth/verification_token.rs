//! The token that proves an account's email address (docs/security.md): mailed to the
//! address at sign-up or on request, and taken back by `POST /v1/auth/verify-email`. It
//! names its account, so that it is checked against that account's last token only, and
//! carries 32 random bytes. Only its hash is kept.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::UserId;
use url::Url;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{ApiKeyHash, AuthError};

const PREFIX: &str = "ev_";

pub struct VerificationToken {
    pub token: Zeroizing<String>,
    pub hash: String,
}

impl VerificationToken {
    pub fn new(user: UserId) -> Result<Self, AuthError> {
        let mut random = Zeroizing::new([0u8; 32]);
        getrandom::fill(random.as_mut_slice()).map_err(|_| AuthError::Randomness)?;
        let token = Zeroizing::new(format!(
            "{PREFIX}{}.{}",
            user.0,
            URL_SAFE_NO_PAD.encode(random.as_slice())
        ));
        let hash = hash(&token);
        Ok(Self { token, hash })
    }

    /// The page under `public_url` that takes the token back from its mail.
    pub fn page(&self, public_url: &Url) -> String {
        public_url
            .join("verify-email")
            .map(|mut url| {
                url.query_pairs_mut().append_pair("token", &self.token);
                url.to_string()
            })
            .unwrap_or_default()
    }
}

/// What is kept of a token, and compared with what is presented.
pub fn hash(token: &str) -> String {
    ApiKeyHash::of(token).as_str().to_owned()
}

/// The account a presented token names, if it names one at all.
pub fn named_user(token: &str) -> Option<UserId> {
    let (user, _) = token.strip_prefix(PREFIX)?.split_once('.')?;
    Uuid::parse_str(user).ok().map(UserId)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_account_and_nothing_else_does() {
        let user = UserId::new();
        let token = VerificationToken::new(user).unwrap();
        assert_eq!(named_user(&token.token), Some(user));
        assert_eq!(token.hash, hash(&token.token));
        assert_ne!(VerificationToken::new(user).unwrap().hash, token.hash, "random");
        for garbage in ["", "ev_", "ev_x.y", "sc_abc", &format!("ev_{}", user.0)] {
            assert_eq!(named_user(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn its_page_carries_it_under_the_public_url() {
        let token = VerificationToken::new(UserId::new()).unwrap();
        let page = token.page(&Url::parse("https://vault.example.com/keyward/").unwrap());
        let expected = format!(
            "https://vault.example.com/keyward/verify-email?token={}",
            token.token.as_str()
        );
        assert_eq!(page, expected);
    }
}
