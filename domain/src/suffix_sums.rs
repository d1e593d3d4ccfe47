//! Sums of a growing sequence of amounts over any suffix, in O(log n) per question and per
//! push (a Fenwick tree). The daily limit asks what an agent spent since a moment, and
//! an agent may sign many thousands of transactions a day: summing them one by one on
//! every decision would grow with the day.

/// Amounts in the order they were pushed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SuffixSums {
    /// `tree[i - 1]` sums the amounts at 1-based positions `(i - lowbit(i), i]`. The
    /// arithmetic wraps: the sums are exact modulo 2^128, so exact whenever the true sum
    /// fits, which callers ensure by bounding what they push.
    tree: Vec<u128>,
}

impl SuffixSums {
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Appends `amount` after the others.
    pub fn push(&mut self, amount: u128) {
        let index = self.tree.len() + 1;
        let covered_after = index - lowbit(index);
        let node = amount
            .wrapping_add(self.prefix(index - 1))
            .wrapping_sub(self.prefix(covered_after));
        self.tree.push(node);
    }

    /// The sum of the amounts from 0-based `position` to the end (zero past the end).
    pub fn from(&self, position: usize) -> u128 {
        let total = self.prefix(self.tree.len());
        total.wrapping_sub(self.prefix(position.min(self.tree.len())))
    }

    /// The sum of the first `count` amounts.
    fn prefix(&self, count: usize) -> u128 {
        let mut index = count;
        let mut sum = 0u128;
        while index > 0 {
            sum = sum.wrapping_add(self.tree[index - 1]);
            index -= lowbit(index);
        }
        sum
    }
}

/// The lowest set bit of `index`.
fn lowbit(index: usize) -> usize {
    index & index.wrapping_neg()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn every_suffix_sums_what_was_pushed(
            amounts in proptest::collection::vec(0u128..1_000_000_000_000_000_000_000_000, 0..200),
        ) {
            let mut sums = SuffixSums::default();
            let mut plain = Vec::new();
            for amount in &amounts {
                sums.push(*amount);
                plain.push(*amount);
            }
            prop_assert_eq!(sums.len(), plain.len());
            for position in 0..=plain.len() + 1 {
                let expected: u128 = plain.iter().skip(position).sum();
                prop_assert_eq!(sums.from(position), expected, "from {}", position);
            }
        }
    }
}
