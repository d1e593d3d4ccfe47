//! API keys as 1claw issues them: `ocv_…` for agents, `1ck_…` for users' personal keys.
//!
//! A key is its kind's prefix and 43 base62 characters (`0-9A-Za-z`) encoding 32 bytes from
//! the operating system's random number generator: 256 bits, and nothing a double-click
//! would split. Keys are shown once, at creation, and stored only as [`ApiKeyHash`]es.
//! SHA-256 is enough there: a slow password hash guards guessable secrets, and these are
//! 256-bit random, so a fast hash costs an attacker with the table nothing they could use,
//! and lets a presented key be found by its hash.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::AuthError;

/// Characters after the kind prefix.
pub const KEY_BODY_CHARS: usize = 43;
/// Characters after the kind prefix that [`ApiKey::prefix`] shows.
pub const DISPLAY_PREFIX_CHARS: usize = 8;
const PREFIX_CHARS: usize = 4;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Whose key it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyKind {
    /// `ocv_`: an agent's key, exchanged at `POST /v1/auth/agent-token`.
    Agent,
    /// `1ck_`: a user's personal key, exchanged at `POST /v1/auth/api-key-token`.
    User,
}

impl ApiKeyKind {
    pub const fn prefix(self) -> &'static str {
        match self {
            ApiKeyKind::Agent => "ocv_",
            ApiKeyKind::User => "1ck_",
        }
    }

    /// The kind of a presented key, if it has our shape: a known prefix (case-sensitive)
    /// and exactly [`KEY_BODY_CHARS`] base62 characters. Anything else is not a key of
    /// ours and need not be looked up.
    pub fn of(presented: &str) -> Option<Self> {
        [ApiKeyKind::Agent, ApiKeyKind::User].into_iter().find(|kind| {
            presented.strip_prefix(kind.prefix()).is_some_and(|body| {
                body.len() == KEY_BODY_CHARS && body.bytes().all(|byte| byte.is_ascii_alphanumeric())
            })
        })
    }
}

/// A well-formed API key, generated or presented. The text is zeroized on drop and
/// `Debug` shows only the kind and the display prefix.
pub struct ApiKey {
    kind: ApiKeyKind,
    text: Zeroizing<String>,
}

impl ApiKey {
    /// A new random key of `kind`.
    pub fn generate(kind: ApiKeyKind) -> Result<Self, AuthError> {
        let mut random = Zeroizing::new([0u8; 32]);
        getrandom::fill(random.as_mut_slice()).map_err(|_| AuthError::Randomness)?;
        let mut digits = Zeroizing::new([0u8; KEY_BODY_CHARS]);
        base62_digits(&mut random, &mut digits);
        let mut text = Zeroizing::new(String::with_capacity(PREFIX_CHARS + KEY_BODY_CHARS));
        text.push_str(kind.prefix());
        text.extend(digits.iter().map(|&digit| char::from(BASE62[usize::from(digit)])));
        Ok(Self { kind, text })
    }

    /// A presented key, if it has our shape (see [`ApiKeyKind::of`]).
    pub fn parse(presented: &str) -> Option<Self> {
        let kind = ApiKeyKind::of(presented)?;
        Some(Self {
            kind,
            text: Zeroizing::new(presented.to_owned()),
        })
    }

    pub fn kind(&self) -> ApiKeyKind {
        self.kind
    }

    /// What is stored, and looked up, in place of the key.
    pub fn hash(&self) -> ApiKeyHash {
        ApiKeyHash::of(&self.text)
    }

    /// The `key_prefix` shown in key lists: the kind prefix and the next
    /// [`DISPLAY_PREFIX_CHARS`] characters, e.g. `1ck_3fK9xQ2b` (48 of the 256 bits).
    pub fn prefix(&self) -> &str {
        // Every byte of a well-formed key is ASCII, so any index is a char boundary.
        self.text.get(..PREFIX_CHARS + DISPLAY_PREFIX_CHARS).unwrap_or_default()
    }

    /// The whole key, for the one response that shows it.
    pub fn expose_secret(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("kind", &self.kind)
            .field("prefix", &self.prefix())
            .finish_non_exhaustive()
    }
}

/// Writes the 32-byte big-endian `number` as exactly [`KEY_BODY_CHARS`] base62 digit
/// values, most significant first (62^43 > 2^256, so 43 always suffice). Leaves `number`
/// zero.
fn base62_digits(number: &mut [u8; 32], digits: &mut [u8; KEY_BODY_CHARS]) {
    for digit in digits.iter_mut().rev() {
        let mut remainder: u16 = 0;
        for byte in number.iter_mut() {
            let value = (remainder << 8) | u16::from(*byte);
            // value < 62 * 256, so the quotient fits a byte and the remainder is < 62.
            *byte = (value / 62) as u8;
            remainder = value % 62;
        }
        *digit = remainder as u8;
    }
}

/// The SHA-256 of a whole API key (prefix included), as 64 lowercase hex characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ApiKeyHash(String);

impl ApiKeyHash {
    pub fn of(key: &str) -> Self {
        Self(hex::encode(Sha256::digest(key.as_bytes())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stored API key hash that is not 64 lowercase hex characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an API key hash must be 64 lowercase hex characters")]
pub struct InvalidApiKeyHash;

impl TryFrom<String> for ApiKeyHash {
    type Error = InvalidApiKeyHash;

    fn try_from(text: String) -> Result<Self, InvalidApiKeyHash> {
        if text.len() == 64 && text.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(text))
        } else {
            Err(InvalidApiKeyHash)
        }
    }
}

impl FromStr for ApiKeyHash {
    type Err = InvalidApiKeyHash;

    fn from_str(text: &str) -> Result<Self, InvalidApiKeyHash> {
        Self::try_from(text.to_owned())
    }
}

impl From<ApiKeyHash> for String {
    fn from(hash: ApiKeyHash) -> Self {
        hash.0
    }
}

impl fmt::Display for ApiKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ApiKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeyHash({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    const AGENT_KEY: &str = "ocv_yhjskwdA6OZ1AL1YmHWZWm8LLG7HjnuCA2j5rOw8Xp1";

    #[test]
    fn generated_keys_are_the_kind_prefix_and_43_base62_characters() {
        for kind in [ApiKeyKind::Agent, ApiKeyKind::User] {
            let key = ApiKey::generate(kind).unwrap();
            let text = key.expose_secret();
            assert_eq!(text.len(), 47, "{kind:?}");
            assert_eq!(&text[..4], kind.prefix());
            assert!(text[4..].bytes().all(|byte| byte.is_ascii_alphanumeric()), "{kind:?}");
            assert_eq!(key.kind(), kind);
            assert_eq!(ApiKeyKind::of(text), Some(kind));
        }
        assert_eq!(ApiKeyKind::Agent.prefix(), "ocv_");
        assert_eq!(ApiKeyKind::User.prefix(), "1ck_");
    }

    #[test]
    fn a_thousand_generated_keys_and_their_hashes_are_all_distinct() {
        let keys: Vec<ApiKey> = (0..1000).map(|_| ApiKey::generate(ApiKeyKind::User).unwrap()).collect();
        let texts: HashSet<&str> = keys.iter().map(ApiKey::expose_secret).collect();
        let hashes: HashSet<ApiKeyHash> = keys.iter().map(ApiKey::hash).collect();
        let prefixes: HashSet<&str> = keys.iter().map(ApiKey::prefix).collect();
        assert_eq!(texts.len(), 1000);
        assert_eq!(hashes.len(), 1000);
        // 48 random bits each: a collision among 1000 would be a broken generator.
        assert_eq!(prefixes.len(), 1000);
    }

    #[test]
    fn base62_encoding_is_fixed_width_big_endian() {
        let encode = |mut number: [u8; 32]| {
            let mut digits = [0u8; KEY_BODY_CHARS];
            base62_digits(&mut number, &mut digits);
            assert_eq!(number, [0u8; 32], "the number is consumed");
            digits
                .iter()
                .map(|&digit| char::from(BASE62[usize::from(digit)]))
                .collect::<String>()
        };
        assert_eq!(encode([0; 32]), "0".repeat(43));
        let mut one = [0u8; 32];
        one[31] = 1;
        assert_eq!(encode(one), format!("{}1", "0".repeat(42)));
        assert_eq!(encode([0xff; 32]), "yhjskwdA6OZ1AL1YmHWZWm8LLG7HjnuCA2j5rOw8Xp1");
        let counting: [u8; 32] = std::array::from_fn(|i| i as u8);
        assert_eq!(encode(counting), "003aUlTJC7tjlCTQj2uNU3MFagCXG9LRKRcwGkBIDlf");
    }

    #[test]
    fn the_hash_is_sha256_hex_of_the_whole_key() {
        assert_eq!(
            ApiKeyHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let key = ApiKey::parse(AGENT_KEY).unwrap();
        assert_eq!(key.hash(), ApiKeyHash::of(AGENT_KEY));
        assert_ne!(key.hash(), ApiKeyHash::of(&AGENT_KEY[4..]), "the prefix is hashed too");
    }

    #[test]
    fn the_hash_never_equals_or_contains_the_key() {
        for _ in 0..100 {
            let key = ApiKey::generate(ApiKeyKind::Agent).unwrap();
            let hash = key.hash();
            assert_ne!(hash.as_str(), key.expose_secret());
            assert!(!hash.as_str().contains(&key.expose_secret()[4..]));
            assert!(!hash.as_str().contains(&key.prefix()[4..]));
        }
    }

    #[test]
    fn the_display_prefix_is_the_kind_prefix_and_the_next_eight_characters() {
        assert_eq!(ApiKey::parse(AGENT_KEY).unwrap().prefix(), "ocv_yhjskwdA");
        let user = ApiKey::generate(ApiKeyKind::User).unwrap();
        assert_eq!(user.prefix(), &user.expose_secret()[..12]);
        assert!(user.prefix().starts_with("1ck_"));
    }

    #[test]
    fn classification_accepts_only_our_prefixes_with_43_base62_characters() {
        let body = &AGENT_KEY[4..];
        assert_eq!(ApiKeyKind::of(AGENT_KEY), Some(ApiKeyKind::Agent));
        assert_eq!(ApiKeyKind::of(&format!("1ck_{body}")), Some(ApiKeyKind::User));
        let refused = [
            String::new(),
            "ocv_".to_owned(),
            "1ck_".to_owned(),
            body.to_owned(),
            format!("OCV_{body}"),
            format!("1CK_{body}"),
            format!("ocv{body}"),
            format!("sk_{body}"),
            format!("ocv_{}", &body[..42]),
            format!("ocv_{body}0"),
            format!(" ocv_{body}"),
            format!("ocv_{body} "),
            format!("ocv_{}-", &body[..42]),
            format!("ocv_{}_", &body[..42]),
            format!("ocv_{}é", &body[..41]),
            format!("ocv_{}\n", &body[..42]),
            format!("ocv_1ck_{}", &body[..39]),
        ];
        for presented in &refused {
            assert_eq!(ApiKeyKind::of(presented), None, "{presented:?}");
            assert!(ApiKey::parse(presented).is_none(), "{presented:?}");
        }
    }

    #[test]
    fn debug_of_a_key_shows_its_kind_and_prefix_but_not_the_secret() {
        let key = ApiKey::generate(ApiKeyKind::Agent).unwrap();
        let debug = format!("{key:?}");
        assert_eq!(
            debug,
            format!("ApiKey {{ kind: Agent, prefix: {:?}, .. }}", key.prefix())
        );
        assert!(!debug.contains(key.expose_secret()));
        assert!(!debug.contains(&key.expose_secret()[12..]));
    }

    #[test]
    fn hashes_serialize_as_hex_strings_and_refuse_anything_else() {
        let hash = ApiKeyHash::of(AGENT_KEY);
        let json = serde_json::to_value(&hash).unwrap();
        assert_eq!(json, serde_json::Value::String(hash.as_str().to_owned()));
        assert_eq!(serde_json::from_value::<ApiKeyHash>(json).unwrap(), hash);
        assert_eq!(hash.as_str().parse::<ApiKeyHash>(), Ok(hash.clone()));
        assert_eq!(hash.to_string(), hash.as_str());
        for bad in [
            "",
            "abc",
            &hash.as_str().to_uppercase(),
            &format!("{}0", hash.as_str()),
            &"g".repeat(64),
        ] {
            assert_eq!(bad.parse::<ApiKeyHash>(), Err(InvalidApiKeyHash), "{bad:?}");
            assert!(
                serde_json::from_value::<ApiKeyHash>(serde_json::json!(bad)).is_err(),
                "{bad:?}"
            );
        }
        assert_eq!(
            InvalidApiKeyHash.to_string(),
            "an API key hash must be 64 lowercase hex characters"
        );
    }
}
