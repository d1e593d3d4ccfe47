//! The path of a secret inside a vault: `db/prod/password`, validated once, on construction.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The longest secret path accepted, in bytes (every accepted character is one byte).
pub const MAX_SECRET_PATH_LEN: usize = 512;

/// A validated secret path: one or more segments separated by `/`, each segment made of
/// `A-Z a-z 0-9 . _ -` and none of them `.` or `..`; no leading, trailing or doubled `/`;
/// at most [`MAX_SECRET_PATH_LEN`] bytes.
///
/// Serializes as the bare string and deserializes through [`SecretPath::parse`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecretPath(String);

/// Why a string is not a secret path. Validation stops at the first problem, checked in
/// this order: empty, too long, a character outside the alphabet, a leading `/`, a trailing
/// `/`, then segment by segment an empty segment or a `.`/`..` segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretPathError {
    #[error("secret path is empty")]
    Empty,
    #[error("secret path is {len} bytes long; at most {MAX_SECRET_PATH_LEN} are allowed")]
    TooLong { len: usize },
    #[error(
        "secret path contains {character:?} at byte {offset}; only A-Z, a-z, 0-9, '.', '_', '-' and '/' are allowed"
    )]
    InvalidCharacter { character: char, offset: usize },
    #[error("secret path must not start with '/'")]
    LeadingSlash,
    #[error("secret path must not end with '/'")]
    TrailingSlash,
    #[error("secret path has an empty segment (\"//\") at segment {position}")]
    EmptySegment {
        /// 1-based index of the empty segment.
        position: usize,
    },
    #[error("secret path segment {position} is {segment:?}; \".\" and \"..\" are not allowed")]
    DotSegment {
        /// 1-based index of the offending segment.
        position: usize,
        segment: String,
    },
}

/// The characters a path segment may hold.
pub(crate) fn is_segment_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-')
}

impl SecretPath {
    pub fn parse(raw: impl Into<String>) -> Result<Self, SecretPathError> {
        let raw = raw.into();
        if raw.is_empty() {
            return Err(SecretPathError::Empty);
        }
        if raw.len() > MAX_SECRET_PATH_LEN {
            return Err(SecretPathError::TooLong { len: raw.len() });
        }
        if let Some((offset, character)) = raw
            .char_indices()
            .find(|&(_, c)| !(c == '/' || c.is_ascii() && is_segment_byte(c as u8)))
        {
            return Err(SecretPathError::InvalidCharacter { character, offset });
        }
        if raw.starts_with('/') {
            return Err(SecretPathError::LeadingSlash);
        }
        if raw.ends_with('/') {
            return Err(SecretPathError::TrailingSlash);
        }
        for (index, segment) in raw.split('/').enumerate() {
            let position = index + 1;
            match segment {
                "" => return Err(SecretPathError::EmptySegment { position }),
                "." | ".." => {
                    return Err(SecretPathError::DotSegment {
                        position,
                        segment: segment.to_owned(),
                    });
                }
                _ => {}
            }
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments, in order; never empty, none of them empty.
    pub fn segments(&self) -> std::str::Split<'_, char> {
        self.0.split('/')
    }

    /// How many segments the path has (at least one).
    pub fn segment_count(&self) -> usize {
        self.segments().count()
    }

    /// Whether the path begins with `prefix`, as a plain string prefix: the `prefix` filter of
    /// the secret list endpoint. It does not respect segment boundaries: `db` selects
    /// `db/password` and also `dbx/token`; ask for `db/` to get only what lies under `db`.
    /// The empty prefix selects every path.
    pub fn starts_with_prefix(&self, prefix: &str) -> bool {
        self.0.starts_with(prefix)
    }
}

impl FromStr for SecretPath {
    type Err = SecretPathError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::parse(raw)
    }
}

impl TryFrom<String> for SecretPath {
    type Error = SecretPathError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(raw)
    }
}

impl From<SecretPath> for String {
    fn from(path: SecretPath) -> Self {
        path.0
    }
}

impl AsRef<str> for SecretPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SecretPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretPath({:?})", self.0)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    /// One valid segment: never `.` or `..`.
    pub(crate) fn segment() -> impl Strategy<Value = String> {
        "[A-Za-z0-9._-]{1,12}".prop_filter("dot segments are invalid", |s| s != "." && s != "..")
    }

    /// A valid path of 1 to 6 segments.
    pub(crate) fn secret_path() -> impl Strategy<Value = String> {
        prop::collection::vec(segment(), 1..=6).prop_map(|segments| segments.join("/"))
    }

    fn parse(raw: &str) -> Result<SecretPath, SecretPathError> {
        SecretPath::parse(raw)
    }

    #[test]
    fn single_segment_path_is_accepted() {
        let path = parse("password").unwrap();
        assert_eq!(path.as_str(), "password");
        assert_eq!(path.segments().collect::<Vec<_>>(), vec!["password"]);
        assert_eq!(path.segment_count(), 1);
    }

    #[test]
    fn nested_path_keeps_its_segments_in_order() {
        let path = parse("db/prod-eu_1/api.key").unwrap();
        assert_eq!(path.segments().collect::<Vec<_>>(), vec!["db", "prod-eu_1", "api.key"]);
        assert_eq!(path.segment_count(), 3);
        assert_eq!(path.to_string(), "db/prod-eu_1/api.key");
    }

    #[test]
    fn dots_inside_a_segment_are_allowed() {
        assert_eq!(parse(".env").unwrap().as_str(), ".env");
        assert_eq!(parse("a/.../b").unwrap().as_str(), "a/.../b");
        assert_eq!(parse("..hidden/x.").unwrap().as_str(), "..hidden/x.");
    }

    #[test]
    fn empty_path_is_rejected() {
        assert_eq!(parse(""), Err(SecretPathError::Empty));
    }

    #[test]
    fn doubled_slash_is_an_empty_segment() {
        assert_eq!(parse("a//b"), Err(SecretPathError::EmptySegment { position: 2 }));
    }

    #[test]
    fn leading_slash_is_rejected() {
        assert_eq!(parse("/a"), Err(SecretPathError::LeadingSlash));
        assert_eq!(parse("/"), Err(SecretPathError::LeadingSlash));
    }

    #[test]
    fn trailing_slash_is_rejected() {
        assert_eq!(parse("a/"), Err(SecretPathError::TrailingSlash));
    }

    #[test]
    fn dot_dot_segment_is_rejected() {
        assert_eq!(
            parse("a/../b"),
            Err(SecretPathError::DotSegment {
                position: 2,
                segment: "..".into()
            })
        );
        assert_eq!(
            parse(".."),
            Err(SecretPathError::DotSegment {
                position: 1,
                segment: "..".into()
            })
        );
    }

    #[test]
    fn dot_segment_is_rejected() {
        assert_eq!(
            parse("a/b/."),
            Err(SecretPathError::DotSegment {
                position: 3,
                segment: ".".into()
            })
        );
        assert_eq!(
            parse("./a"),
            Err(SecretPathError::DotSegment {
                position: 1,
                segment: ".".into()
            })
        );
    }

    #[test]
    fn characters_outside_the_alphabet_are_rejected_with_their_offset() {
        let cases = [
            ("a b", ' ', 1),
            ("a%2Fb", '%', 1),
            ("a\\b", '\\', 1),
            ("db/pässword", 'ä', 4),
            ("x*", '*', 1),
            ("tab\t", '\t', 3),
            ("nul\0", '\0', 3),
            ("a?b", '?', 1),
            ("a:b", ':', 1),
        ];
        for (raw, character, offset) in cases {
            assert_eq!(
                parse(raw),
                Err(SecretPathError::InvalidCharacter { character, offset }),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn path_of_exactly_512_bytes_is_accepted_and_513_is_rejected() {
        let longest = format!("{}/{}", "a".repeat(255), "b".repeat(256));
        assert_eq!(longest.len(), 512);
        assert_eq!(parse(&longest).unwrap().as_str(), longest);
        let too_long = format!("{longest}c");
        assert_eq!(parse(&too_long), Err(SecretPathError::TooLong { len: 513 }));
    }

    #[test]
    fn error_messages_name_the_problem() {
        assert_eq!(SecretPathError::Empty.to_string(), "secret path is empty");
        assert_eq!(
            SecretPathError::TooLong { len: 600 }.to_string(),
            "secret path is 600 bytes long; at most 512 are allowed"
        );
        assert_eq!(
            parse("a b").unwrap_err().to_string(),
            "secret path contains ' ' at byte 1; only A-Z, a-z, 0-9, '.', '_', '-' and '/' are allowed"
        );
        assert_eq!(
            parse("/a").unwrap_err().to_string(),
            "secret path must not start with '/'"
        );
        assert_eq!(
            parse("a/").unwrap_err().to_string(),
            "secret path must not end with '/'"
        );
        assert_eq!(
            parse("a//b").unwrap_err().to_string(),
            "secret path has an empty segment (\"//\") at segment 2"
        );
        assert_eq!(
            parse("a/../b").unwrap_err().to_string(),
            "secret path segment 2 is \"..\"; \".\" and \"..\" are not allowed"
        );
    }

    #[test]
    fn serde_uses_the_bare_string_and_validates() {
        let path = parse("db/password").unwrap();
        assert_eq!(serde_json::to_string(&path).unwrap(), "\"db/password\"");
        assert_eq!(serde_json::from_str::<SecretPath>("\"db/password\"").unwrap(), path);
        let err = serde_json::from_str::<SecretPath>("\"db/../etc\"").unwrap_err();
        assert_eq!(
            err.to_string(),
            "secret path segment 2 is \"..\"; \".\" and \"..\" are not allowed"
        );
    }

    #[test]
    fn from_str_parses() {
        assert_eq!("a/b".parse::<SecretPath>().unwrap().as_str(), "a/b");
        assert_eq!("a/".parse::<SecretPath>(), Err(SecretPathError::TrailingSlash));
    }

    #[test]
    fn prefix_filter_is_a_plain_string_prefix() {
        let path = parse("dbx/token").unwrap();
        assert!(path.starts_with_prefix(""));
        assert!(path.starts_with_prefix("db"));
        assert!(path.starts_with_prefix("dbx/"));
        assert!(path.starts_with_prefix("dbx/token"));
        assert!(!path.starts_with_prefix("db/"));
        assert!(!path.starts_with_prefix("dbx/token/"));
    }

    proptest! {
        #[test]
        fn valid_segments_joined_by_slash_are_accepted_and_round_trip(raw in secret_path()) {
            let path = SecretPath::parse(raw.clone()).unwrap();
            prop_assert_eq!(path.as_str(), raw.as_str());
            prop_assert_eq!(path.segments().collect::<Vec<_>>().join("/"), raw.clone());
            let json = serde_json::to_string(&path).unwrap();
            prop_assert_eq!(serde_json::from_str::<SecretPath>(&json).unwrap(), path.clone());
            prop_assert_eq!(path.to_string().parse::<SecretPath>().unwrap(), path);
        }

        #[test]
        fn any_path_with_a_dot_or_dot_dot_segment_is_rejected(
            before in prop::collection::vec(segment(), 0..4),
            dots in prop_oneof![Just("."), Just("..")],
            after in prop::collection::vec(segment(), 0..4),
        ) {
            let position = before.len() + 1;
            let mut segments = before;
            segments.push(dots.to_owned());
            segments.extend(after);
            let raw = segments.join("/");
            prop_assert_eq!(
                SecretPath::parse(raw),
                Err(SecretPathError::DotSegment { position, segment: dots.to_owned() })
            );
        }

        #[test]
        fn parsing_arbitrary_input_never_panics_and_accepted_paths_are_valid(raw in any::<String>()) {
            if let Ok(path) = SecretPath::parse(raw.clone()) {
                prop_assert!(!path.as_str().is_empty() && path.as_str().len() <= MAX_SECRET_PATH_LEN);
                for segment in path.segments() {
                    prop_assert!(!segment.is_empty() && segment != "." && segment != "..");
                    prop_assert!(segment.bytes().all(is_segment_byte));
                }
            }
        }

        #[test]
        fn parsing_path_like_noise_never_panics(raw in "[a./ %\\\\é-]{0,20}") {
            let _ = SecretPath::parse(raw);
        }
    }
}
