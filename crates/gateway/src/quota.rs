//! Per-user log quota: one user cannot fill the capture log's volume for everyone (issue 15, item 7).
//!
//! Every frame a user's connections carry (both directions) is charged to that user in a one-hour window
//! (`--quota-bytes-per-hour`). Past the quota the gateway fails closed with a clear refusal: messages to the
//! kernel are refused (recorded by size and hash only, the notebook is told why) and outputs are withheld
//! (recorded by size and hash, the user told once per request) until the window turns. Memory per
//! connection is bounded separately (frame size limit, bounded queues).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The quota window.
pub const WINDOW: Duration = Duration::from_secs(3600);

/// Bytes charged per user in the current window.
#[derive(Debug)]
pub struct Quota {
    limit: u64,
    used: Mutex<HashMap<String, (Instant, u64)>>,
}

impl Quota {
    /// A quota of `limit` bytes per user per hour; 0 means none.
    pub fn new(limit: u64) -> Quota {
        Quota {
            limit,
            used: Mutex::new(HashMap::new()),
        }
    }

    /// Charges `bytes` to `user`; `Err(reason)` once the user's traffic in this window passes the quota.
    /// Refused traffic is charged too: a user who flooded stays refused until the window turns.
    pub fn charge(&self, user: Option<&str>, bytes: usize) -> Result<(), String> {
        self.charge_at(user, bytes, Instant::now())
    }

    fn charge_at(&self, user: Option<&str>, bytes: usize, now: Instant) -> Result<(), String> {
        if self.limit == 0 {
            return Ok(());
        }
        let mut used = self.used.lock().expect("quota lock");
        let slot = used
            .entry(user.unwrap_or("").to_string())
            .or_insert((now, 0));
        if now.duration_since(slot.0) >= WINDOW {
            *slot = (now, 0);
        }
        slot.1 = slot.1.saturating_add(bytes as u64);
        if slot.1 > self.limit {
            let left = WINDOW.saturating_sub(now.duration_since(slot.0));
            return Err(format!(
                "quota: {} has used {} of the {} bytes per hour this gateway records per user; \
                 try again in {} min",
                user.unwrap_or("this user"),
                slot.1,
                self.limit,
                left.as_secs().div_ceil(60)
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_over_quota_is_refused_others_are_not_and_the_window_turns() {
        let q = Quota::new(1000);
        let t0 = Instant::now();
        assert!(q.charge_at(Some("mallory"), 900, t0).is_ok());
        let err = q.charge_at(Some("mallory"), 200, t0).unwrap_err();
        assert!(err.contains("quota") && err.contains("mallory"), "{err}");
        // Over the quota, even a small message is refused until the window turns.
        assert!(q.charge_at(Some("mallory"), 1, t0).is_err());
        assert!(q.charge_at(Some("alice"), 1000, t0).is_ok());
        assert!(q.charge_at(Some("mallory"), 200, t0 + WINDOW).is_ok());
        assert!(Quota::new(0).charge(Some("x"), usize::MAX).is_ok());
    }
}
