//! Dynacast: a publisher encodes only the simulcast layers someone
//! receives. Each published simulcast track follows the best quality any
//! of its subscribers asks for (`track_settings`, the ceiling of what each
//! gets); the publisher is told which of its layers to send. A layer
//! wanted again comes back at once (the next housekeeping tick); one no
//! longer wanted stops only after [`LOWER_AFTER`], so that a tile resized
//! back and forth, or a subscriber who leaves and rejoins, does not start
//! and stop an encoder each time. Pure arithmetic, no I/O.

use std::time::{Duration, Instant};

use super::Quality;

/// How long nobody must want a layer before its publisher stops it.
pub const LOWER_AFTER: Duration = Duration::from_secs(3);

/// What one published simulcast track's publisher was told to send.
#[derive(Debug, Default)]
pub struct Dynacast {
    /// The best quality the publisher was last told to send; `None` while
    /// it was told nothing and sends everything, as it starts.
    told: Option<Quality>,
    /// Since when everyone's wish has been below `told`, and the best
    /// wish since then (what it is lowered to).
    below: Option<(Instant, Quality)>,
}

impl Dynacast {
    /// The best quality anyone wants now is `wanted`: the best quality the
    /// publisher should now send, if that changed.
    pub fn tick(&mut self, now: Instant, wanted: Quality) -> Option<Quality> {
        let sending = self.told.unwrap_or(Quality::High);
        if wanted >= sending {
            self.below = None;
            return (wanted > sending).then(|| *self.told.insert(wanted));
        }
        let (since, best) = self.below.get_or_insert((now, wanted));
        *best = (*best).max(wanted);
        if now.saturating_duration_since(*since) < LOWER_AFTER {
            return None;
        }
        let lowered = *best;
        self.below = None;
        Some(*self.told.insert(lowered))
    }
}

/// The rids to send for the best quality `told`, of a track whose layers
/// are `rids` (each with its rank): those at or below it, and at least the
/// lowest one, whatever the naming scheme ranked it.
pub fn rids_to_send(rids: &[(String, Quality)], told: Quality) -> Vec<String> {
    let lowest = rids.iter().map(|(_, q)| *q).min();
    rids.iter()
        .filter(|(_, q)| *q <= told || Some(*q) == lowest)
        .map(|(rid, _)| rid.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_layer_wanted_again_comes_back_at_once() {
        let t0 = Instant::now();
        let mut d = Dynacast::default();
        // It starts sending everything: nothing to say while that is wanted.
        assert_eq!(d.tick(t0, Quality::High), None);
        assert_eq!(d.tick(t0 + secs(0.1), Quality::Low), None);
        assert_eq!(d.tick(t0 + secs(3.1), Quality::Low), Some(Quality::Low));
        assert_eq!(d.tick(t0 + secs(3.2), Quality::Low), None);
        assert_eq!(d.tick(t0 + secs(3.3), Quality::High), Some(Quality::High));
        assert_eq!(d.tick(t0 + secs(3.4), Quality::High), None);
    }

    #[test]
    fn a_layer_stops_only_after_nobody_wanted_it_for_a_while() {
        let t0 = Instant::now();
        let mut d = Dynacast::default();
        let mut t = t0;
        // A tile resized back and forth every second: the top layer stays.
        for i in 0..30 {
            let wanted = if i % 20 < 10 {
                Quality::Low
            } else {
                Quality::High
            };
            assert_eq!(d.tick(t, wanted), None, "tick {i}");
            t += secs(0.1);
        }
        // The last wish of the top layer was at 1.9 s; a wish of the middle
        // layer within the wait lowers to it, not below.
        assert_eq!(d.tick(t0 + secs(3.0), Quality::Medium), None);
        assert_eq!(d.tick(t0 + secs(4.0), Quality::Low), None);
        assert_eq!(d.tick(t0 + secs(4.9), Quality::Low), None);
        assert_eq!(d.tick(t0 + secs(5.0), Quality::Low), Some(Quality::Medium));
        assert_eq!(d.tick(t0 + secs(5.1), Quality::Low), None);
        assert_eq!(d.tick(t0 + secs(8.0), Quality::Low), None);
        assert_eq!(d.tick(t0 + secs(8.1), Quality::Low), Some(Quality::Low));
    }

    #[test]
    fn the_lowest_layer_is_always_sent() {
        let qhf: Vec<(String, Quality)> = [
            ("q", Quality::Low),
            ("h", Quality::Medium),
            ("f", Quality::High),
        ]
        .into_iter()
        .map(|(r, q)| (r.to_owned(), q))
        .collect();
        assert_eq!(rids_to_send(&qhf, Quality::Low), ["q"]);
        assert_eq!(rids_to_send(&qhf, Quality::Medium), ["q", "h"]);
        assert_eq!(rids_to_send(&qhf, Quality::High), ["q", "h", "f"]);
        // Two rids of unknown names both rank in the middle.
        let odd = vec![
            ("a".to_owned(), Quality::Medium),
            ("b".to_owned(), Quality::Medium),
        ];
        assert_eq!(rids_to_send(&odd, Quality::Low), ["a", "b"]);
    }
}
