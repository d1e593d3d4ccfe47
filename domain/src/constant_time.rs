//! Comparing secrets (token and code hashes) in time that does not depend on where they
//! first differ, so a caller cannot find a stored value byte by byte by timing refusals.

/// Whether `a` and `b` are equal; the time taken depends on their lengths only.
pub fn eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn equal_only_when_every_byte_and_the_length_match() {
        assert!(super::eq(b"abc", b"abc"));
        assert!(!super::eq(b"abc", b"abd"));
        assert!(!super::eq(b"abc", b"ab"));
        assert!(super::eq(b"", b""));
    }
}
