//! `[rate_limit]`: optional per-client limits on the public (unsigned) operations — GetId,
//! GetOpenIdToken, GetCredentialsForIdentity, UnlinkIdentity — answered as AWS does, with
//! `TooManyRequestsException`. Off by default. Signed admin operations are never limited.
//!
//! A client is its IP address as the connection shows it (IPv6 by its /64, the block one
//! host usually holds); each has a token bucket of `public_burst` requests refilled at
//! `public_per_second`. Behind a proxy every client shares the proxy's address: limit there
//! instead, or leave this off.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use crate::config::RateLimitConfig;
use crate::protocol::{ApiError, Operation};

/// The client's address, put on every request by the accept loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// Client addresses tracked at most; beyond that idle ones (full buckets) are forgotten, and
/// if most are busy, all are (a flood from many addresses resets rather than grows).
const MAX_CLIENTS: usize = 100_000;

/// The message AWS sends with `TooManyRequestsException`.
pub const RATE_EXCEEDED: &str = "Rate exceeded";

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The per-client buckets; without a configured rate it limits nothing.
#[derive(Debug)]
pub struct RateLimiter {
    /// Requests per second and burst, when limiting.
    limit: Option<(f64, f64)>,
    buckets: Mutex<HashMap<u128, Bucket>>,
}

impl RateLimiter {
    pub fn new(config: &RateLimitConfig) -> RateLimiter {
        let rate = config.public_per_second;
        let limit = (rate.is_finite() && rate > 0.0).then(|| {
            let burst = match config.public_burst {
                0 => rate.ceil().max(1.0),
                b => f64::from(b),
            };
            (rate, burst)
        });
        RateLimiter {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether limiting is on.
    pub fn enabled(&self) -> bool {
        self.limit.is_some()
    }

    /// Takes one request of `op` from the client's bucket (found in `extensions`), or refuses it.
    pub fn check(&self, op: Operation, extensions: &http::Extensions) -> Result<(), ApiError> {
        let Some((rate, burst)) = self.limit else {
            return Ok(());
        };
        if !op.is_public() {
            return Ok(());
        }
        let Some(ClientAddr(ip)) = extensions.get::<ClientAddr>() else {
            return Ok(());
        };
        if self.take(client_key(*ip), rate, burst, Instant::now()) {
            Ok(())
        } else {
            Err(ApiError::TooManyRequests(RATE_EXCEEDED.to_string()))
        }
    }

    fn take(&self, key: u128, rate: f64, burst: f64, now: Instant) -> bool {
        let Ok(mut buckets) = self.buckets.lock() else {
            // A poisoned table limits nothing rather than refusing everyone.
            return true;
        };
        if buckets.len() >= MAX_CLIENTS && !buckets.contains_key(&key) {
            buckets.retain(|_, b| refill(b, rate, burst, now) < burst);
            if buckets.len() >= MAX_CLIENTS / 4 * 3 {
                buckets.clear();
            }
        }
        let b = buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens = refill(b, rate, burst, now);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn refill(b: &Bucket, rate: f64, burst: f64, now: Instant) -> f64 {
    let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
    (b.tokens + elapsed * rate).min(burst)
}

/// IPv4 addresses as themselves (IPv4-mapped IPv6 too), IPv6 by their /64.
fn client_key(ip: IpAddr) -> u128 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => (u128::from(v6) & !u128::from(u64::MAX)) | 1 << 32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limiter(rate: f64, burst: u32) -> RateLimiter {
        RateLimiter::new(&RateLimitConfig {
            public_per_second: rate,
            public_burst: burst,
        })
    }

    fn from(ip: &str) -> http::Extensions {
        let mut e = http::Extensions::new();
        e.insert(ClientAddr(ip.parse().unwrap()));
        e
    }

    #[test]
    fn off_by_default_and_for_admin_operations() {
        let off = RateLimiter::new(&RateLimitConfig::default());
        assert!(!off.enabled());
        let on = limiter(1.0, 1);
        let ext = from("192.0.2.1");
        assert!(on.check(Operation::GetId, &ext).is_ok());
        assert_eq!(
            on.check(Operation::GetId, &ext),
            Err(ApiError::TooManyRequests("Rate exceeded".into()))
        );
        for _ in 0..5 {
            assert!(on.check(Operation::CreateIdentityPool, &ext).is_ok());
            assert!(off.check(Operation::GetId, &ext).is_ok());
        }
        // Another client has its own bucket.
        assert!(on
            .check(Operation::GetOpenIdToken, &from("192.0.2.2"))
            .is_ok());
    }

    #[test]
    fn buckets_refill_at_the_rate_up_to_the_burst() {
        let l = limiter(2.0, 3);
        let t0 = Instant::now();
        let k = client_key("192.0.2.1".parse().unwrap());
        for _ in 0..3 {
            assert!(l.take(k, 2.0, 3.0, t0));
        }
        assert!(!l.take(k, 2.0, 3.0, t0));
        let later = t0 + Duration::from_millis(500);
        assert!(l.take(k, 2.0, 3.0, later));
        assert!(!l.take(k, 2.0, 3.0, later));
        let much_later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(l.take(k, 2.0, 3.0, much_later));
        }
        assert!(!l.take(k, 2.0, 3.0, much_later));
    }

    #[test]
    fn ipv6_clients_are_their_slash_64_and_mapped_ipv4_is_ipv4() {
        let a = client_key("2001:db8:1:2::1".parse().unwrap());
        let b = client_key("2001:db8:1:2:ffff::9".parse().unwrap());
        let c = client_key("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            client_key("::ffff:192.0.2.1".parse().unwrap()),
            client_key("192.0.2.1".parse().unwrap())
        );
        assert_ne!(
            client_key("::c000:201".parse().unwrap()),
            client_key("192.0.2.1".parse().unwrap())
        );
    }

    #[test]
    fn the_table_stays_bounded() {
        let l = limiter(1.0, 1);
        let now = Instant::now();
        for n in 0..(MAX_CLIENTS as u128 + 10) {
            l.take(n, 1.0, 1.0, now);
        }
        assert!(l.buckets.lock().unwrap().len() <= MAX_CLIENTS);
    }
}
