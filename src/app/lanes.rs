//! Work queued per key and done in batches, in the order it was queued, by one task per
//! busy key: an agent's reservations, a sender's broadcasts. Whoever queues on an idle
//! lane is told to start the task that drains it; everyone else only queues.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

pub struct Lanes<K, T> {
    lanes: Mutex<HashMap<K, Arc<Mutex<Lane<T>>>>>,
}

struct Lane<T> {
    waiting: Vec<T>,
    /// A task is draining this lane.
    draining: bool,
}

impl<K, T> Default for Lanes<K, T> {
    fn default() -> Self {
        Self {
            lanes: Mutex::new(HashMap::new()),
        }
    }
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<K: Hash + Eq, T> Lanes<K, T> {
    /// Queues `work` on `key`'s lane, after what is queued there. When no task drains
    /// the lane, the caller must start one with the [`Drain`] returned.
    #[must_use = "an idle lane's work is done only by draining it"]
    pub fn queue(&self, key: K, work: impl IntoIterator<Item = T>) -> Option<Drain<T>> {
        let lane = locked(&self.lanes)
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Mutex::new(Lane {
                    waiting: Vec::new(),
                    draining: false,
                }))
            })
            .clone();
        let start = {
            let mut queued = locked(&lane);
            queued.waiting.extend(work);
            !std::mem::replace(&mut queued.draining, true)
        };
        // Built only when handed out: a dropped Drain frees its lane.
        if start { Some(Drain { lane, idle: false }) } else { None }
    }
}

/// The right to drain one lane: only one exists per lane at a time.
pub struct Drain<T> {
    lane: Arc<Mutex<Lane<T>>>,
    /// The lane was found empty and handed back.
    idle: bool,
}

impl<T> Drain<T> {
    /// Everything queued since the last batch, oldest first; `None` once nothing is, and
    /// the lane is idle again (the next to queue starts a new drain).
    pub fn next_batch(&mut self) -> Option<Vec<T>> {
        let mut lane = locked(&self.lane);
        if lane.waiting.is_empty() {
            lane.draining = false;
            self.idle = true;
            return None;
        }
        Some(std::mem::take(&mut lane.waiting))
    }

    /// Everything queued since the last batch, perhaps nothing; the lane stays this
    /// drain's, for one that still has work of its own to finish.
    pub fn take_waiting(&mut self) -> Vec<T> {
        std::mem::take(&mut locked(&self.lane).waiting)
    }
}

impl<T> Drop for Drain<T> {
    /// A drain that ends early (a panic, the runtime shutting down) frees its lane, so the
    /// work queued next is not stuck behind it.
    fn drop(&mut self) {
        if !self.idle {
            locked(&self.lane).draining = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_to_queue_drains_in_order_and_an_empty_lane_is_handed_back() {
        let lanes = Lanes::default();
        let mut drain = lanes.queue("a", [1, 2]).expect("an idle lane");
        assert!(lanes.queue("a", [3]).is_none(), "one drain per lane");
        let mut other = lanes.queue("b", [9]).expect("lanes are independent");
        assert_eq!(drain.next_batch(), Some(vec![1, 2, 3]));
        assert!(lanes.queue("a", [4]).is_none());
        assert_eq!(drain.next_batch(), Some(vec![4]));
        assert_eq!(drain.next_batch(), None);
        let mut again = lanes.queue("a", [5]).expect("idle again");
        drop(drain);
        assert!(
            lanes.queue("a", [6]).is_none(),
            "a finished drain does not free a lane it no longer holds"
        );
        assert_eq!(again.next_batch(), Some(vec![5, 6]));
        assert_eq!(other.next_batch(), Some(vec![9]));
    }

    #[test]
    fn a_drain_dropped_before_it_is_done_frees_its_lane() {
        let lanes = Lanes::default();
        let drain = lanes.queue(1, ["x"]).unwrap();
        drop(drain);
        let mut next = lanes.queue(1, ["y"]).expect("freed");
        assert_eq!(next.next_batch(), Some(vec!["x", "y"]));
    }

    #[test]
    fn taking_what_waits_keeps_the_lane_even_when_nothing_does() {
        let lanes = Lanes::default();
        let mut drain = lanes.queue('k', [1]).unwrap();
        assert_eq!(drain.take_waiting(), vec![1]);
        assert_eq!(drain.take_waiting(), Vec::<i32>::new());
        assert!(lanes.queue('k', [2]).is_none(), "still drained");
        assert_eq!(drain.take_waiting(), vec![2]);
        assert_eq!(drain.next_batch(), None);
        assert!(lanes.queue('k', [3]).is_some(), "handed back by next_batch only");
    }
}
