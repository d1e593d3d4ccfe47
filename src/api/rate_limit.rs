//! Token buckets per key (a client address, a network, an organization, a share): a burst,
//! then a steady rate. Kept in memory, per replica: they damp floods, while the limits that
//! must hold exactly (one enrollment per email per network per ten minutes, the caps on
//! pending enrollments, a share's lock after ten wrong passphrases) are decided on the log.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use domain::network::NetworkPrefix;
use domain::{OrgId, ShareId};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::problem::ApiError;

/// Buckets are forgotten once full again; past this many keys, full ones are dropped.
const PRUNE_AT: usize = 10_000;

#[derive(Debug)]
pub struct RateLimiter<K> {
    burst: f64,
    per_second: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl<K: Eq + Hash> RateLimiter<K> {
    /// `burst` requests at once, then `per_second` a second.
    pub fn new(burst: u32, per_second: f64) -> Self {
        Self {
            burst: f64::from(burst),
            per_second,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`, or says how long until one is available (a 429).
    pub fn check(&self, key: K, now: Instant) -> Result<(), ApiError> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= PRUNE_AT {
            buckets.retain(|_, bucket| self.refilled(*bucket, now) < self.burst);
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let tokens = self.refilled(*bucket, now);
        self.available(tokens)?;
        *bucket = Bucket {
            tokens: tokens - 1.0,
            updated: now,
        };
        Ok(())
    }

    /// Returns a token taken for `key` by a request that turned out not to count (a right
    /// passphrase); never past the burst.
    pub fn give_back(&self, key: &K, now: Instant) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(bucket) = buckets.get_mut(key) {
            *bucket = Bucket {
                tokens: (self.refilled(*bucket, now) + 1.0).min(self.burst),
                updated: now,
            };
        }
    }

    /// Whether `key` has a token left, without taking it; else how long until it has.
    pub fn peek(&self, key: &K, now: Instant) -> Result<(), ApiError> {
        let buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match buckets.get(key) {
            Some(bucket) => self.available(self.refilled(*bucket, now)),
            None => Ok(()),
        }
    }

    fn available(&self, tokens: f64) -> Result<(), ApiError> {
        if tokens >= 1.0 {
            return Ok(());
        }
        let wait = Duration::from_secs_f64((1.0 - tokens) / self.per_second);
        Err(ApiError::TooManyRequests {
            retry_after_seconds: wait.as_secs_f64().ceil().max(1.0) as u64,
        })
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        (bucket.tokens + elapsed * self.per_second).min(self.burst)
    }
}

/// The limits of keyward's public and costly endpoints.
#[derive(Debug)]
pub struct RateLimits {
    /// Enrollment requests: bursts of 5 per network (an IPv4 /24, an IPv6 /64: another
    /// address within it is no other requester), then one a second.
    enroll_by_network: RateLimiter<NetworkPrefix>,
    /// New shares: bursts of 30 per organization, then one every two seconds.
    share_by_org: RateLimiter<OrgId>,
    /// Refused credentials: bursts of 20 per client address, then one every 5 seconds.
    /// Each is audited, so without it anyone could grow the log at will; and a client
    /// out of them is not heard at all, which slows guessing.
    failure_by_ip: RateLimiter<IpAddr>,
    /// Attempts at a share's passphrase that were not right: bursts of 5 per client address,
    /// then one every 12 seconds. Taken before the passphrase is checked, so concurrent
    /// guesses cannot all be checked; given back when it was right.
    guess_by_ip: RateLimiter<IpAddr>,
    /// The same, per share, whoever sends them: bursts of 10 (the lock's count, see
    /// `MAX_WRONG_PASSPHRASES` in domain/src/share.rs), then one every 10 seconds.
    guess_by_share: RateLimiter<ShareId>,
    /// Passphrase checks running at once: each is an argon2 computation of 19 MiB and tens
    /// of milliseconds of a core; more wait their turn.
    passphrase_checks: Semaphore,
}

/// The passphrase checks (argon2) that may run at once, on all shares together.
const CONCURRENT_PASSPHRASE_CHECKS: usize = 4;

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            enroll_by_network: RateLimiter::new(5, 1.0),
            share_by_org: RateLimiter::new(30, 0.5),
            failure_by_ip: RateLimiter::new(20, 0.2),
            guess_by_ip: RateLimiter::new(5, 1.0 / 12.0),
            guess_by_share: RateLimiter::new(10, 0.1),
            passphrase_checks: Semaphore::new(CONCURRENT_PASSPHRASE_CHECKS),
        }
    }
}

impl RateLimits {
    pub fn enroll_per_network(&self, network: NetworkPrefix) -> Result<(), ApiError> {
        self.enroll_by_network.check(network, Instant::now())
    }

    pub fn share_per_org(&self, org: OrgId) -> Result<(), ApiError> {
        self.share_by_org.check(org, Instant::now())
    }

    /// Whether a client may present credentials: 429 once its refusals ran out.
    pub fn credentials_heard_from(&self, client: IpAddr) -> Result<(), ApiError> {
        self.failure_by_ip.peek(&client, Instant::now())
    }

    /// Counts a client's refused credentials; 429 once they run out.
    pub fn refused_credentials_of(&self, client: IpAddr) -> Result<(), ApiError> {
        self.failure_by_ip.check(client, Instant::now())
    }

    /// Takes one attempt at `share`'s passphrase from `client`'s allowance and the share's,
    /// before anything is checked; 429 if either ran out (and then neither is taken).
    pub fn share_guess(&self, client: IpAddr, share: ShareId) -> Result<(), ApiError> {
        let now = Instant::now();
        self.guess_by_ip.check(client, now)?;
        self.guess_by_share.check(share, now).inspect_err(|_| {
            self.guess_by_ip.give_back(&client, now);
        })
    }

    /// The attempt taken by [`RateLimits::share_guess`] was the right passphrase: it counts
    /// against neither allowance.
    pub fn share_guess_was_right(&self, client: IpAddr, share: ShareId) {
        let now = Instant::now();
        self.guess_by_ip.give_back(&client, now);
        self.guess_by_share.give_back(&share, now);
    }

    /// A turn to check a passphrase, waited for while [`CONCURRENT_PASSPHRASE_CHECKS`]
    /// others run.
    pub async fn passphrase_check(&self) -> Result<SemaphorePermit<'_>, ApiError> {
        self.passphrase_checks.acquire().await.map_err(ApiError::internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_one_per_interval() {
        let limiter = RateLimiter::new(5, 1.0);
        let start = Instant::now();
        for _ in 0..5 {
            assert!(limiter.check("203.0.113.7", start).is_ok());
        }
        assert!(matches!(
            limiter.check("203.0.113.7", start),
            Err(ApiError::TooManyRequests { retry_after_seconds: 1 })
        ));
        assert!(
            limiter.check("198.51.100.1", start).is_ok(),
            "other keys have their own bucket"
        );
        let later = start + Duration::from_millis(1000);
        assert!(limiter.check("203.0.113.7", later).is_ok());
        assert!(limiter.check("203.0.113.7", later).is_err());
    }

    #[test]
    fn a_peek_takes_nothing() {
        let limiter = RateLimiter::new(1, 1.0);
        let start = Instant::now();
        assert!(limiter.peek(&7, start).is_ok(), "an unseen key has its burst");
        assert!(limiter.peek(&7, start).is_ok());
        assert!(limiter.check(7, start).is_ok());
        assert!(limiter.peek(&7, start).is_err());
        assert!(limiter.peek(&7, start + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn a_token_given_back_is_there_again_but_never_past_the_burst() {
        let limiter = RateLimiter::new(2, 0.001);
        let start = Instant::now();
        limiter.give_back(&1, start);
        assert!(limiter.check(1, start).is_ok());
        assert!(limiter.check(1, start).is_ok());
        assert!(limiter.check(1, start).is_err());
        limiter.give_back(&1, start);
        assert!(limiter.check(1, start).is_ok());
        limiter.give_back(&1, start);
        limiter.give_back(&1, start);
        limiter.give_back(&1, start);
        assert!(limiter.check(1, start).is_ok());
        assert!(limiter.check(1, start).is_ok());
        assert!(limiter.check(1, start).is_err(), "no more than the burst");
    }

    #[test]
    fn a_share_guess_refused_for_the_share_takes_nothing_from_the_client() {
        let limits = RateLimits::default();
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        let share = ShareId::new();
        for _ in 0..5 {
            assert!(limits.share_guess(client, share).is_ok());
        }
        assert!(limits.share_guess(client, share).is_err(), "the client's five are gone");
        for _ in 0..5 {
            assert!(limits.share_guess(other, share).is_ok());
        }
        let third: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(limits.share_guess(third, share).is_err(), "the share's ten are gone");
        // The third client still has all five for another share.
        for _ in 0..5 {
            assert!(limits.share_guess(third, ShareId::new()).is_ok());
        }
        limits.share_guess_was_right(client, share);
        assert!(limits.share_guess(client, share).is_ok());
    }

    #[test]
    fn an_idle_bucket_refills_to_the_burst_and_no_further() {
        let limiter = RateLimiter::new(2, 1.0);
        let start = Instant::now();
        assert!(limiter.check(1, start).is_ok());
        let much_later = start + Duration::from_secs(3600);
        assert!(limiter.check(1, much_later).is_ok());
        assert!(limiter.check(1, much_later).is_ok());
        assert!(limiter.check(1, much_later).is_err());
    }
}
