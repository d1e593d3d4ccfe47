//! Which address a stored key signs for, remembered by the stored value's identity (a
//! secret's id and version: a version's value never changes), so a signature with the
//! same key does not derive its public key again. Addresses are public: no key material
//! is kept here.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use alloy_primitives::Address;

use crate::key::PrivateKey;

/// Enough for every key one replica signs with; past it the memory starts over.
const CAPACITY: usize = 4096;

pub struct KnownAddresses<Id> {
    known: Mutex<HashMap<Id, Address>>,
}

impl<Id: Hash + Eq> Default for KnownAddresses<Id> {
    fn default() -> Self {
        Self {
            known: Mutex::new(HashMap::new()),
        }
    }
}

impl<Id: Hash + Eq> KnownAddresses<Id> {
    /// `key`, the value stored as `id`, paired with its address: the one remembered, or
    /// the one derived now and remembered.
    pub fn pair(&self, id: Id, key: PrivateKey) -> PrivateKey {
        let remembered = self.locked().get(&id).copied();
        if let Some(address) = remembered {
            return key.known_to_sign_for(address);
        }
        let address = key.address();
        let mut known = self.locked();
        if known.len() >= CAPACITY {
            known.clear();
        }
        known.insert(id, address);
        key
    }

    fn locked(&self) -> std::sync::MutexGuard<'_, HashMap<Id, Address>> {
        self.known.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_address_is_the_derived_one_and_ids_keep_keys_apart() {
        let known = KnownAddresses::default();
        let (first, second) = (PrivateKey::generate().unwrap(), PrivateKey::generate().unwrap());
        let (first_bytes, second_bytes) = (first.secret_bytes(), second.secret_bytes());
        let first_address = known.pair(1, first).address();
        let second_address = known.pair(2, second).address();
        assert_ne!(first_address, second_address);
        let again = known.pair(1, PrivateKey::from_bytes(&first_bytes).unwrap());
        assert_eq!(again.address(), first_address);
        let again = known.pair(2, PrivateKey::from_bytes(&second_bytes).unwrap());
        assert_eq!(again.address(), second_address);
    }
}
