//! Path patterns: a policy's `secret_path_pattern` and a token's `scopes` entries.
//!
//! The language is deliberately small: literal characters of a secret path, `*` and `**`.
//!
//! - `*` matches within one segment and never crosses a `/`: `db/*` matches `db/password`
//!   but not `db/prod/password`; `api-*` matches `api-key` and `api-` … as a whole segment.
//! - `**`, which must be a whole segment, matches any number of segments:
//!   - a bare `**` matches every path;
//!   - a trailing `db/**` matches everything *under* `db` (`db/a`, `db/a/b`) but not `db`
//!     itself;
//!   - a leading `**/key` matches `key` and `x/key`, `x/y/key`;
//!   - an inner `a/**/b` matches `a/b`, `a/x/b`, `a/x/y/b`.
//! - Everything else is literal and must use the secret path alphabet (`A-Z a-z 0-9 . _ -`).
//!   `?`, `[…]`, `{…}`, `!` and `\` are rejected, so no further globset syntax leaks through.
//!
//! Matching is done by `globset` with `literal_separator(true)`.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};

use crate::secret_path::{MAX_SECRET_PATH_LEN, SecretPath, is_segment_byte};

/// The longest pattern accepted, in bytes: the same bound as a secret path.
pub const MAX_PATH_PATTERN_LEN: usize = MAX_SECRET_PATH_LEN;

/// A validated, compiled path pattern. Equality, ordering and hashing follow the pattern's text.
/// Serializes as the bare string and deserializes through [`PathPattern::parse`].
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PathPattern {
    raw: String,
    matcher: GlobMatcher,
}

/// Why a string is not a path pattern. Checked in this order: empty, too long, a character
/// outside the alphabet, a leading `/`, a trailing `/`, then segment by segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathPatternError {
    #[error("path pattern is empty")]
    Empty,
    #[error("path pattern is {len} bytes long; at most {MAX_PATH_PATTERN_LEN} are allowed")]
    TooLong { len: usize },
    #[error(
        "path pattern contains {character:?} at byte {offset}; only A-Z, a-z, 0-9, '.', '_', '-', '*' and '/' are allowed"
    )]
    InvalidCharacter { character: char, offset: usize },
    #[error("path pattern must not start with '/'")]
    LeadingSlash,
    #[error("path pattern must not end with '/'")]
    TrailingSlash,
    #[error("path pattern has an empty segment (\"//\") at segment {position}")]
    EmptySegment {
        /// 1-based index of the empty segment.
        position: usize,
    },
    #[error("path pattern segment {position} is {segment:?}; \".\" and \"..\" are not allowed")]
    DotSegment { position: usize, segment: String },
    #[error("path pattern segment {position} is {segment:?}; \"**\" must be a whole segment")]
    MisplacedDoubleStar { position: usize, segment: String },
    /// globset refused a pattern that passed the checks above; not expected to happen.
    #[error("path pattern is not a valid glob: {0}")]
    Glob(String),
}

impl PathPattern {
    pub fn parse(raw: impl Into<String>) -> Result<Self, PathPatternError> {
        let raw = raw.into();
        if raw.is_empty() {
            return Err(PathPatternError::Empty);
        }
        if raw.len() > MAX_PATH_PATTERN_LEN {
            return Err(PathPatternError::TooLong { len: raw.len() });
        }
        let allowed = |c: char| c == '/' || c == '*' || c.is_ascii() && is_segment_byte(c as u8);
        if let Some((offset, character)) = raw.char_indices().find(|&(_, c)| !allowed(c)) {
            return Err(PathPatternError::InvalidCharacter { character, offset });
        }
        if raw.starts_with('/') {
            return Err(PathPatternError::LeadingSlash);
        }
        if raw.ends_with('/') {
            return Err(PathPatternError::TrailingSlash);
        }
        for (index, segment) in raw.split('/').enumerate() {
            let position = index + 1;
            match segment {
                "" => return Err(PathPatternError::EmptySegment { position }),
                "." | ".." => {
                    return Err(PathPatternError::DotSegment {
                        position,
                        segment: segment.to_owned(),
                    });
                }
                "**" => {}
                _ if segment.contains("**") => {
                    return Err(PathPatternError::MisplacedDoubleStar {
                        position,
                        segment: segment.to_owned(),
                    });
                }
                _ => {}
            }
        }
        let glob = GlobBuilder::new(&raw)
            .literal_separator(true)
            .backslash_escape(false)
            .build()
            .map_err(|error| PathPatternError::Glob(error.kind().to_string()))?;
        Ok(Self {
            matcher: glob.compile_matcher(),
            raw,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether the path matches the pattern (see the module documentation).
    pub fn matches(&self, path: &SecretPath) -> bool {
        self.matcher.is_match(path.as_str())
    }
}

impl PartialEq for PathPattern {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for PathPattern {}

impl Hash for PathPattern {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.raw.hash(state);
    }
}

impl PartialOrd for PathPattern {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PathPattern {
    fn cmp(&self, other: &Self) -> Ordering {
        self.raw.cmp(&other.raw)
    }
}

impl FromStr for PathPattern {
    type Err = PathPatternError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::parse(raw)
    }
}

impl TryFrom<String> for PathPattern {
    type Error = PathPatternError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(raw)
    }
}

impl From<PathPattern> for String {
    fn from(pattern: PathPattern) -> Self {
        pattern.raw
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl fmt::Debug for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PathPattern({:?})", self.raw)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::secret_path::tests::{secret_path, segment};

    fn pattern(raw: &str) -> PathPattern {
        PathPattern::parse(raw).unwrap()
    }

    fn path(raw: &str) -> SecretPath {
        SecretPath::parse(raw).unwrap()
    }

    fn matches(pattern_raw: &str, path_raw: &str) -> bool {
        pattern(pattern_raw).matches(&path(path_raw))
    }

    #[test]
    fn literal_pattern_matches_only_that_path() {
        assert!(matches("db/password", "db/password"));
        assert!(!matches("db/password", "db/password2"));
        assert!(!matches("db/password", "db"));
        assert!(!matches("db/password", "x/db/password"));
        assert!(!matches("db/password", "db/password/old"));
    }

    #[test]
    fn literal_dot_is_not_a_wildcard() {
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "axb"));
    }

    #[test]
    fn single_star_matches_exactly_one_segment() {
        assert!(matches("db/*", "db/password"));
        assert!(matches("db/*", "db/.env"));
        assert!(!matches("db/*", "db/prod/password"));
        assert!(!matches("db/*", "db"));
        assert!(matches("*", "password"));
        assert!(!matches("*", "db/password"));
        assert!(matches("*/password", "db/password"));
        assert!(!matches("*/password", "a/db/password"));
    }

    #[test]
    fn star_inside_a_segment_stays_inside_it() {
        assert!(matches("api-*", "api-key"));
        assert!(matches("api-*", "api-"));
        assert!(!matches("api-*", "api-key/old"));
        assert!(matches("*.json", "config.json"));
        assert!(!matches("*.json", "a/config.json"));
        assert!(matches("a*c/x", "abbc/x"));
        assert!(!matches("a*c/x", "ab/c/x"));
    }

    #[test]
    fn double_star_matches_any_depth() {
        assert!(matches("db/**", "db/password"));
        assert!(matches("db/**", "db/prod/password"));
        assert!(matches("db/**", "db/a/b/c/d/e"));
        assert!(!matches("db/**", "dbx/password"));
        assert!(!matches("db/**", "other/db/password"));
    }

    #[test]
    fn trailing_double_star_does_not_match_the_prefix_itself() {
        assert!(!matches("db/**", "db"));
    }

    #[test]
    fn bare_double_star_matches_every_path() {
        for raw in ["a", "db/password", "a/b/c/d", ".env", "..x/y"] {
            assert!(matches("**", raw), "{raw}");
        }
    }

    #[test]
    fn leading_double_star_matches_zero_or_more_leading_segments() {
        assert!(matches("**/key", "key"));
        assert!(matches("**/key", "a/key"));
        assert!(matches("**/key", "a/b/key"));
        assert!(!matches("**/key", "a/key/b"));
        assert!(!matches("**/key", "a/monkey"));
    }

    #[test]
    fn inner_double_star_matches_zero_or_more_middle_segments() {
        assert!(matches("a/**/b", "a/b"));
        assert!(matches("a/**/b", "a/x/b"));
        assert!(matches("a/**/b", "a/x/y/b"));
        assert!(!matches("a/**/b", "a/x/y"));
        assert!(!matches("a/**/b", "x/a/b"));
    }

    #[test]
    fn malformed_patterns_are_rejected_with_typed_errors() {
        let parse = PathPattern::parse;
        assert_eq!(parse(""), Err(PathPatternError::Empty));
        assert_eq!(parse("/db/*"), Err(PathPatternError::LeadingSlash));
        assert_eq!(parse("db/*/"), Err(PathPatternError::TrailingSlash));
        assert_eq!(parse("db//*"), Err(PathPatternError::EmptySegment { position: 2 }));
        assert_eq!(
            parse("db/../*"),
            Err(PathPatternError::DotSegment {
                position: 2,
                segment: "..".into()
            })
        );
        assert_eq!(
            parse("./*"),
            Err(PathPatternError::DotSegment {
                position: 1,
                segment: ".".into()
            })
        );
        assert_eq!(
            parse("***"),
            Err(PathPatternError::MisplacedDoubleStar {
                position: 1,
                segment: "***".into()
            })
        );
        assert_eq!(
            parse("db/a**"),
            Err(PathPatternError::MisplacedDoubleStar {
                position: 2,
                segment: "a**".into()
            })
        );
        assert_eq!(
            parse("db/**x/y"),
            Err(PathPatternError::MisplacedDoubleStar {
                position: 2,
                segment: "**x".into()
            })
        );
        let too_long = "a".repeat(513);
        assert_eq!(parse(&too_long), Err(PathPatternError::TooLong { len: 513 }));
    }

    #[test]
    fn globset_syntax_beyond_stars_is_rejected() {
        for (raw, character, offset) in [
            ("db/[ab]", '[', 3),
            ("db/{a,b}", '{', 3),
            ("db/?", '?', 3),
            ("!db", '!', 0),
            ("db\\*", '\\', 2),
            ("db/a b", ' ', 4),
            ("db/%2F", '%', 3),
            ("db/é", 'é', 3),
        ] {
            assert_eq!(
                PathPattern::parse(raw),
                Err(PathPatternError::InvalidCharacter { character, offset }),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn error_messages_name_the_problem() {
        assert_eq!(
            PathPattern::parse("db/[ab]").unwrap_err().to_string(),
            "path pattern contains '[' at byte 3; only A-Z, a-z, 0-9, '.', '_', '-', '*' and '/' are allowed"
        );
        assert_eq!(
            PathPattern::parse("***").unwrap_err().to_string(),
            "path pattern segment 1 is \"***\"; \"**\" must be a whole segment"
        );
        assert_eq!(PathPattern::parse("").unwrap_err().to_string(), "path pattern is empty");
    }

    #[test]
    fn serde_uses_the_bare_string_and_validates() {
        let p = pattern("db/**");
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"db/**\"");
        assert_eq!(serde_json::from_str::<PathPattern>("\"db/**\"").unwrap(), p);
        assert_eq!(
            serde_json::from_str::<PathPattern>("\"db/{a,b}\"")
                .unwrap_err()
                .to_string(),
            "path pattern contains '{' at byte 3; only A-Z, a-z, 0-9, '.', '_', '-', '*' and '/' are allowed"
        );
    }

    #[test]
    fn patterns_compare_by_their_text() {
        assert_eq!(pattern("a/*"), pattern("a/*"));
        assert_ne!(pattern("a/*"), pattern("a/**"));
        assert!(pattern("a/*") < pattern("b"));
        assert_eq!(pattern("a/*").as_str(), "a/*");
        assert_eq!(format!("{:?}", pattern("a/*")), "PathPattern(\"a/*\")");
    }

    /// A pattern segment that is never `**`: a literal, `*`, or a literal with a `*` in it.
    fn single_segment_pattern() -> impl Strategy<Value = String> {
        prop_oneof![
            segment(),
            Just("*".to_owned()),
            (segment(), segment()).prop_map(|(a, b)| format!("{a}*{b}")),
        ]
    }

    proptest! {
        #[test]
        fn single_star_never_matches_a_path_with_more_segments_than_the_pattern(
            pattern_segments in prop::collection::vec(single_segment_pattern(), 1..5),
            extra in prop::collection::vec(segment(), 1..4),
            base in prop::collection::vec(segment(), 1..5),
        ) {
            let pattern = PathPattern::parse(pattern_segments.join("/")).unwrap();
            let mut path_segments = base;
            path_segments.resize(pattern_segments.len(), "x".to_owned());
            path_segments.extend(extra);
            let path = SecretPath::parse(path_segments.join("/")).unwrap();
            prop_assert!(path.segment_count() > pattern_segments.len());
            prop_assert!(!pattern.matches(&path));
        }

        #[test]
        fn patterns_without_double_star_only_match_paths_of_equal_depth(
            pattern_segments in prop::collection::vec(single_segment_pattern(), 1..4),
            raw_path in secret_path(),
        ) {
            let pattern = PathPattern::parse(pattern_segments.join("/")).unwrap();
            let path = SecretPath::parse(raw_path).unwrap();
            if pattern.matches(&path) {
                prop_assert_eq!(path.segment_count(), pattern_segments.len());
            }
        }

        #[test]
        fn all_stars_pattern_matches_every_path_of_its_depth(raw_path in secret_path()) {
            let path = SecretPath::parse(raw_path).unwrap();
            let pattern = PathPattern::parse(vec!["*"; path.segment_count()].join("/")).unwrap();
            prop_assert!(pattern.matches(&path));
        }

        #[test]
        fn double_star_matches_every_valid_path(raw_path in secret_path()) {
            let path = SecretPath::parse(raw_path).unwrap();
            prop_assert!(PathPattern::parse("**").unwrap().matches(&path));
        }

        #[test]
        fn trailing_double_star_matches_exactly_the_paths_strictly_under_its_prefix(
            prefix in secret_path(),
            raw_path in secret_path(),
        ) {
            let pattern = PathPattern::parse(format!("{prefix}/**")).unwrap();
            let path = SecretPath::parse(raw_path).unwrap();
            let under = path.as_str().starts_with(&format!("{prefix}/"));
            prop_assert_eq!(pattern.matches(&path), under);
            let nested = SecretPath::parse(format!("{prefix}/{}", path.as_str())).unwrap();
            prop_assert!(pattern.matches(&nested));
            prop_assert!(!pattern.matches(&SecretPath::parse(prefix).unwrap()));
        }

        #[test]
        fn literal_pattern_matches_exactly_that_path(a in secret_path(), b in secret_path()) {
            let pattern = PathPattern::parse(a.clone()).unwrap();
            prop_assert!(pattern.matches(&SecretPath::parse(a.clone()).unwrap()));
            prop_assert_eq!(pattern.matches(&SecretPath::parse(b.clone()).unwrap()), a == b);
        }

        #[test]
        fn parsing_arbitrary_input_never_panics(raw in any::<String>()) {
            let _ = PathPattern::parse(raw);
        }

        #[test]
        fn parsing_star_heavy_noise_never_panics(raw in "[a*/.]{0,16}") {
            if let Ok(pattern) = PathPattern::parse(raw.clone()) {
                prop_assert_eq!(pattern.as_str(), raw.as_str());
            }
        }
    }
}
