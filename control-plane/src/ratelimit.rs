//! A per-address token bucket (enrollment and sign-in attempts), bounded in size.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Allows `burst` attempts at once and refills `per_minute` a minute, per
/// source address. The map is capped; when full, idle entries are evicted.
/// A plain mutex is right here: the critical section is a few arithmetic
/// operations and never spans an `.await`.
pub struct RateLimiter {
    per_minute: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

const MAX_TRACKED: usize = 65_536;

impl RateLimiter {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            per_minute: f64::from(per_minute.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok` if `addr` may try now; otherwise how long until it may.
    pub fn check(&self, addr: IpAddr) -> Result<(), Duration> {
        self.check_at(addr, Instant::now())
    }

    fn check_at(&self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        let rate = self.per_minute / 60.0;
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&addr) {
            let burst = self.burst;
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
            if buckets.len() >= MAX_TRACKED {
                return Err(Duration::from_secs(1));
            }
        }
        let (tokens, at) = buckets.entry(addr).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills_per_address() {
        let rl = RateLimiter::new(60, 3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(rl.check_at(a, t0).is_ok());
        }
        let wait = rl.check_at(a, t0).unwrap_err();
        assert!(wait <= Duration::from_secs(1));
        assert!(
            rl.check_at(b, t0).is_ok(),
            "other addresses are not affected"
        );
        assert!(rl.check_at(a, t0 + Duration::from_millis(1100)).is_ok());
    }
}
