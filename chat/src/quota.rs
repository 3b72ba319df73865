//! How many rooms one Matrix user may make the bridge create: each
//! meeting they open under a new name costs the homeserver a room that
//! stays, so a user scripting names cannot fill it. Kept in memory (a
//! restart forgives), per user, over a sliding day.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::lock;

const WINDOW: Duration = Duration::from_secs(86_400);

pub(crate) struct RoomQuota {
    per_day: u32,
    made: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RoomQuota {
    pub(crate) fn new(per_day: u32) -> Self {
        Self {
            per_day,
            made: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `user` may have one more room made at `now`.
    pub(crate) fn allows(&self, user: &str, now: Instant) -> bool {
        let mut made = lock(&self.made);
        // Users whose rooms all aged out are forgotten, so the map holds
        // only the last day's creators.
        made.retain(|_, times| {
            while times
                .front()
                .is_some_and(|t| now.duration_since(*t) >= WINDOW)
            {
                times.pop_front();
            }
            !times.is_empty()
        });
        made.get(user).map_or(0, VecDeque::len) < self.per_day as usize
    }

    /// A room was made for `user` at `now`.
    pub(crate) fn record(&self, user: &str, now: Instant) {
        lock(&self.made)
            .entry(user.to_owned())
            .or_default()
            .push_back(now);
    }

    pub(crate) fn per_day(&self) -> u32 {
        self.per_day
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_so_many_rooms_a_day_and_others_are_not_counted() {
        let q = RoomQuota::new(2);
        let t0 = Instant::now();
        for _ in 0..2 {
            assert!(q.allows("@a:hs", t0));
            q.record("@a:hs", t0);
        }
        assert!(!q.allows("@a:hs", t0 + Duration::from_secs(3600)));
        assert!(q.allows("@b:hs", t0));
        assert!(q.allows("@a:hs", t0 + WINDOW));
        assert!(lock(&q.made).is_empty(), "aged-out users are kept");
    }
}
