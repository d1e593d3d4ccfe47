//! Wrapped keys read from the key table before, kept in memory so that opening a secret
//! (every signature the proxy makes) costs no query. Only wrapped keys are kept: opening
//! one still takes the master key, so memory holds nothing the table does not.
//!
//! Kept only where this process is the table's only shredder (SQLite, whose file it owns):
//! a shred forgets everything remembered, and a load that read the table before a shred
//! remembers nothing of what it read.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// Beyond this many keys, everything is forgotten and remembered anew: a bound on memory
/// that costs one query per key after it is reached.
const CAPACITY: usize = 100_000;

#[derive(Default)]
pub(super) struct RememberedKeys {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    wrapped: HashMap<String, Vec<u8>>,
    /// Counts shreds: what a load read under an older count may be gone.
    shreds: u64,
}

/// What a load saw before it asked the table.
pub(super) struct Lookup<const N: usize> {
    pub found: [Option<Vec<u8>>; N],
    shreds: u64,
}

impl RememberedKeys {
    /// The keys remembered under `names`, and the mark [`RememberedKeys::remember`] needs.
    pub(super) fn lookup<const N: usize>(&self, names: &[String; N]) -> Lookup<N> {
        let inner = self.locked();
        Lookup {
            found: names.each_ref().map(|name| inner.wrapped.get(name).cloned()),
            shreds: inner.shreds,
        }
    }

    /// Remembers keys read from the table, unless a shred happened since `lookup`.
    pub(super) fn remember<const N: usize>(
        &self,
        lookup: &Lookup<N>,
        names: &[String; N],
        found: &[Option<Vec<u8>>; N],
    ) {
        let mut inner = self.locked();
        if inner.shreds != lookup.shreds {
            return;
        }
        if inner.wrapped.len() + N > CAPACITY {
            inner.wrapped.clear();
        }
        for (name, wrapped) in names.iter().zip(found) {
            if let Some(wrapped) = wrapped {
                inner.wrapped.insert(name.clone(), wrapped.clone());
            }
        }
    }

    /// After keys were deleted from the table: nothing remembered survives.
    pub(super) fn forget_all(&self) {
        let mut inner = self.locked();
        inner.wrapped.clear();
        inner.shreds += 1;
    }

    fn locked(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> [String; 2] {
        ["kek:v".to_owned(), "dek:v:p:1".to_owned()]
    }

    #[test]
    fn keys_read_are_remembered_and_a_missing_one_is_not() {
        let keys = RememberedKeys::default();
        let lookup = keys.lookup(&names());
        assert_eq!(lookup.found, [None, None]);
        keys.remember(&lookup, &names(), &[Some(vec![1]), None]);
        assert_eq!(keys.lookup(&names()).found, [Some(vec![1]), None]);
    }

    #[test]
    fn a_shred_forgets_what_was_remembered() {
        let keys = RememberedKeys::default();
        let lookup = keys.lookup(&names());
        keys.remember(&lookup, &names(), &[Some(vec![1]), Some(vec![2])]);
        keys.forget_all();
        assert_eq!(keys.lookup(&names()).found, [None, None]);
    }

    #[test]
    fn a_load_that_read_the_table_before_a_shred_remembers_nothing() {
        let keys = RememberedKeys::default();
        let lookup = keys.lookup(&names());
        // The table is read here, then the keys are shredded before the load remembers.
        keys.forget_all();
        keys.remember(&lookup, &names(), &[Some(vec![1]), Some(vec![2])]);
        assert_eq!(keys.lookup(&names()).found, [None, None]);
    }
}
