//! Token buckets per key (a client, a network, an organization, a share): a burst, then a
//! steady rate. Kept in memory, per replica: they damp floods, while the limits that must
//! hold exactly (one enrollment per email per network per ten minutes, the caps on pending
//! enrollments, a share's lock after ten wrong passphrases) are decided on the log.
//!
//! A client is its IPv4 address, or the /64 network of its IPv6 address: one IPv6 host
//! commonly holds a whole /64, and would otherwise have 2^64 buckets to spread over.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use domain::network::NetworkPrefix;
use domain::{OrgId, ShareId, UserId};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::AppError;

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
    pub fn check(&self, key: K, now: Instant) -> Result<(), AppError> {
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

    /// Returns a token taken for `key` by [`RateLimiter::check`], up to the burst: what
    /// was taken for an attempt that turned out not to count.
    pub fn give_back(&self, key: &K, now: Instant) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(bucket) = buckets.get_mut(key) {
            *bucket = Bucket {
                tokens: (self.refilled(*bucket, now) + 1.0).min(self.burst),
                updated: now,
            };
        }
    }

    fn available(&self, tokens: f64) -> Result<(), AppError> {
        if tokens >= 1.0 {
            return Ok(());
        }
        let wait = Duration::from_secs_f64((1.0 - tokens) / self.per_second);
        Err(AppError::Throttled {
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
    /// Credentials presented and not accepted: bursts of 20 per client, then one every 5
    /// seconds. A password is checked only with one of them in hand, taken before the
    /// check and given back if it was right, so that guesses sent at once are counted
    /// as they start, not as they fail. Other refusals (API keys, refresh tokens) take
    /// theirs once refused: each is audited, and without it anyone could grow the log
    /// at will.
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

    /// Password checks running per client, at most [`PASSWORD_CHECKS_PER_CLIENT`] at
    /// once: an entry lives while its checks run.
    password_checks: Mutex<HashMap<IpAddr, usize>>,
    /// Sign-ups: bursts of 10 per client, then one a minute. Each costs an argon2 hash, a
    /// new organization and an email to the address given.
    signup_by_ip: RateLimiter<IpAddr>,
    /// An organization's verifications of its audit events: bursts of 5, then one a minute.
    audit_verify_by_org: RateLimiter<OrgId>,
    /// A platform administrator's verifications of the whole log: bursts of 2, then one
    /// every 5 minutes.
    chain_walk_by_admin: RateLimiter<UserId>,
    /// An organization's access reviews, each a fold of the events that shaped access:
    /// bursts of 10, then one every 10 seconds.
    access_review_by_org: RateLimiter<OrgId>,
    /// Requests walking the whole log (a verification of the whole chain) at once, on this
    /// replica, whoever asks.
    log_walks: Semaphore,
}

/// The most password checks (argon2) one client has running at once; past it, a 429.
pub const PASSWORD_CHECKS_PER_CLIENT: usize = 2;
/// The most requests walking the whole log at once, per replica; past it, a 503.
const LOG_WALKS: usize = 2;
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
            password_checks: Mutex::new(HashMap::new()),
            signup_by_ip: RateLimiter::new(10, 1.0 / 60.0),
            audit_verify_by_org: RateLimiter::new(5, 1.0 / 60.0),
            chain_walk_by_admin: RateLimiter::new(2, 1.0 / 300.0),
            access_review_by_org: RateLimiter::new(10, 0.1),
            log_walks: Semaphore::new(LOG_WALKS),
        }
    }
}

/// The key of a client's buckets: its IPv4 address (also when written as IPv6), or the
/// /64 network of its IPv6 address.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

impl RateLimits {
    pub fn enroll_per_network(&self, network: NetworkPrefix) -> Result<(), AppError> {
        self.enroll_by_network.check(network, Instant::now())
    }

    pub fn share_per_org(&self, org: OrgId) -> Result<(), AppError> {
        self.share_by_org.check(org, Instant::now())
    }

    /// Counts a client's refused credentials; 429 once they run out.
    pub fn refused_credentials_of(&self, client: IpAddr) -> Result<(), AppError> {
        self.failure_by_ip.check(client_key(client), Instant::now())
    }

    /// Leave for one password check by `client`: a 429 if it has
    /// [`PASSWORD_CHECKS_PER_CLIENT`] running, or no refusal left to spend on this one.
    pub fn password_check(&self, client: IpAddr) -> Result<PasswordCheck<'_>, AppError> {
        let client = client_key(client);
        {
            let mut running = self
                .password_checks
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let count = running.entry(client).or_insert(0);
            if *count >= PASSWORD_CHECKS_PER_CLIENT {
                return Err(AppError::Throttled { retry_after_seconds: 1 });
            }
            *count += 1;
        }
        // From here on, dropping the check ends it, also on the error below.
        let mut check = PasswordCheck {
            limits: self,
            client,
            allowance_taken: false,
        };
        self.failure_by_ip.check(client, Instant::now())?;
        check.allowance_taken = true;
        Ok(check)
    }

    pub fn signup_per_ip(&self, client: IpAddr) -> Result<(), AppError> {
        self.signup_by_ip.check(client_key(client), Instant::now())
    }

    pub fn audit_verify_per_org(&self, org: OrgId) -> Result<(), AppError> {
        self.audit_verify_by_org.check(org, Instant::now())
    }

    pub fn chain_walk_per_admin(&self, admin: UserId) -> Result<(), AppError> {
        self.chain_walk_by_admin.check(admin, Instant::now())
    }

    pub fn access_review_per_org(&self, org: OrgId) -> Result<(), AppError> {
        self.access_review_by_org.check(org, Instant::now())
    }

    /// Leave to walk the whole log, held until dropped; a 503 while [`LOG_WALKS`] run.
    pub fn log_walk(&self) -> Result<SemaphorePermit<'_>, AppError> {
        self.log_walks.try_acquire().map_err(|_| AppError::Unavailable {
            detail: "the server is busy walking the log for other requests".into(),
            retry_after_seconds: 1,
        })
    }

    /// Takes one attempt at `share`'s passphrase from `client`'s allowance and the share's,
    /// before anything is checked; 429 if either ran out (and then neither is taken).
    pub fn share_guess(&self, client: IpAddr, share: ShareId) -> Result<(), AppError> {
        let (client, now) = (client_key(client), Instant::now());
        self.guess_by_ip.check(client, now)?;
        self.guess_by_share.check(share, now).inspect_err(|_| {
            self.guess_by_ip.give_back(&client, now);
        })
    }

    /// The attempt taken by [`RateLimits::share_guess`] was the right passphrase: it counts
    /// against neither allowance.
    pub fn share_guess_was_right(&self, client: IpAddr, share: ShareId) {
        let (client, now) = (client_key(client), Instant::now());
        self.guess_by_ip.give_back(&client, now);
        self.guess_by_share.give_back(&share, now);
    }

    /// A turn to check a passphrase, waited for while [`CONCURRENT_PASSPHRASE_CHECKS`]
    /// others run.
    pub async fn passphrase_check(&self) -> Result<SemaphorePermit<'_>, AppError> {
        self.passphrase_checks.acquire().await.map_err(AppError::internal)
    }
}

/// One password check a client was given leave for ([`RateLimits::password_check`]):
/// counted among its running checks until dropped, and its refusal spent unless
/// [`PasswordCheck::accepted`] gives it back.
#[derive(Debug)]
pub struct PasswordCheck<'a> {
    limits: &'a RateLimits,
    client: IpAddr,
    allowance_taken: bool,
}

impl PasswordCheck<'_> {
    /// The password was right: what a refusal would have spent is given back.
    pub fn accepted(mut self) {
        if std::mem::take(&mut self.allowance_taken) {
            self.limits.failure_by_ip.give_back(&self.client, Instant::now());
        }
    }
}

impl Drop for PasswordCheck<'_> {
    fn drop(&mut self) {
        let mut running = self
            .limits
            .password_checks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = running.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                running.remove(&self.client);
            }
        }
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
            Err(AppError::Throttled { retry_after_seconds: 1 })
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
    fn a_token_given_back_is_there_again_and_never_past_the_burst() {
        let limiter = RateLimiter::new(2, 0.2);
        let start = Instant::now();
        limiter.give_back(&7, start);
        assert!(limiter.check(7, start).is_ok());
        assert!(limiter.check(7, start).is_ok());
        assert!(limiter.check(7, start).is_err());
        limiter.give_back(&7, start);
        assert!(limiter.check(7, start).is_ok());
        assert!(limiter.check(7, start).is_err());
        limiter.give_back(&7, start);
        limiter.give_back(&7, start);
        limiter.give_back(&7, start);
        assert!(limiter.check(7, start).is_ok());
        assert!(limiter.check(7, start).is_ok());
        assert!(limiter.check(7, start).is_err(), "the burst is the most a key holds");
    }

    #[test]
    fn a_client_has_two_password_checks_running_at_most() {
        let limits = RateLimits::default();
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        let first = limits.password_check(client).unwrap();
        let second = limits.password_check(client).unwrap();
        assert!(matches!(
            limits.password_check(client),
            Err(AppError::Throttled { retry_after_seconds: 1 })
        ));
        assert!(
            limits.password_check("198.51.100.1".parse().unwrap()).is_ok(),
            "other clients have their own"
        );
        drop(first);
        let third = limits.password_check(client).unwrap();
        second.accepted();
        drop(third);
        assert!(
            limits.password_checks.lock().unwrap().is_empty(),
            "nothing is kept once checks end"
        );
    }

    #[test]
    fn password_checks_spend_refusals_as_they_start_and_right_ones_give_them_back() {
        let limits = RateLimits::default();
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        for _ in 0..19 {
            drop(limits.password_check(client).unwrap());
        }
        // One left: a check that is right gives it back, so it is there for the next.
        limits.password_check(client).unwrap().accepted();
        let last = limits.password_check(client).unwrap();
        assert!(
            matches!(limits.password_check(client), Err(AppError::Throttled { .. })),
            "the last refusal was taken when its check started"
        );
        drop(last);
        assert!(matches!(
            limits.password_check(client),
            Err(AppError::Throttled { retry_after_seconds: 5 })
        ));
        assert!(
            limits.password_checks.lock().unwrap().is_empty(),
            "a check refused leave is not left running"
        );
    }

    #[test]
    fn an_ipv6_client_is_its_64_network() {
        let key = |ip: &str| client_key(ip.parse().unwrap());
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:ffff:1:2:3"));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:203.0.113.7"), key("203.0.113.7"));
        assert_eq!(key("203.0.113.7"), "203.0.113.7".parse::<IpAddr>().unwrap());
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
