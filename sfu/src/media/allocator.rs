//! The stream allocator of one subscriber: which layer of each video track
//! it receives, so that all of it fits the bandwidth estimate of its
//! connection (`estimator.rs`).
//!
//! Audio comes first and is never paused. Then, in order, screen shares,
//! the active speaker, and the other cameras by the size of their tiles
//! (the quality the subscriber asked for, `track_settings`, which is a
//! ceiling, not an order): each first gets its lowest layer while that
//! fits, then each in turn the best layer up to its ceiling that still
//! fits. A track whose lowest layer does not fit is paused.
//!
//! When the estimate falls below what is sent, the allocation steps down at
//! once. It steps up only into a smaller share of the estimate (the margin
//! keeps a wobbling estimate from flipping layers), and only once the
//! estimate has not fallen for a few seconds; a subscriber asking for more
//! of a steady link gets it at once. While a track gets less than it
//! asks for, the allocator asks for a probe (`Estimator::start_probe`), so
//! that the estimate can learn a larger link quickly.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use super::Quality;

/// Share of the estimate that what is sent may take before stepping down,
/// and that a better allocation must fit in before stepping up.
const DOWN_SHARE: f64 = 0.95;
const UP_SHARE: f64 = 0.85;
/// How long the estimate must not have fallen before stepping up.
pub const STABLE: Duration = Duration::from_secs(2);
/// A probe asks for at most this multiple of the estimate, or this rate
/// where that is more (an estimate that fell with nothing sent must climb
/// back to what a layer costs).
const PROBE_STEP: f64 = 2.0;
const PROBE_FLOOR: f64 = 300_000.0;
/// Between probes: after one that found more room, and after a failure
/// (doubling, up to the last).
const PROBE_AGAIN: Duration = Duration::from_secs(1);
const PROBE_BACKOFF: [Duration; 3] = [
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(6),
];

/// What a layer that has not been measured yet (it just started) is
/// taken to cost: a browser's usual rates for its three layers.
fn nominal(q: Quality) -> f64 {
    match q {
        Quality::Low => 150_000.0,
        Quality::Medium => 500_000.0,
        Quality::High => 1_500_000.0,
    }
}

/// Who gets bandwidth first, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    ScreenShare,
    Speaker,
    Camera,
}

/// One video track the subscriber receives.
#[derive(Debug, Clone)]
pub struct Demand {
    pub priority: Priority,
    /// The best quality it asked for.
    pub ceiling: Quality,
    /// The layers the publisher sends now, lowest first, with what each
    /// costs in bits per second (0: not measured yet).
    pub layers: Vec<(Quality, f64)>,
}

impl Demand {
    /// What layer `q` costs: as measured, or (it just started) what such
    /// a layer usually costs.
    fn cost(&self, q: Quality) -> f64 {
        self.layers
            .iter()
            .find(|(l, _)| *l == q)
            .map_or(0.0, |&(q, bps)| if bps > 0.0 { bps } else { nominal(q) })
    }

    /// Whether layer `q` has been measured.
    fn measured(&self, q: Quality) -> bool {
        self.layers.iter().any(|&(l, bps)| l == q && bps > 0.0)
    }

    /// The layers it may get: up to its ceiling, or the lowest if even that
    /// is above it.
    fn allowed(&self) -> impl Iterator<Item = Quality> + '_ {
        let lowest = self.layers.first().map(|l| l.0);
        self.layers
            .iter()
            .map(|l| l.0)
            .filter(move |&q| q <= self.ceiling || Some(q) == lowest)
    }
}

/// What a track gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grant {
    Paused,
    Layer(Quality),
}

/// The best fit of `demands` in `budget` bits per second.
pub fn fit(budget: f64, demands: &[Demand]) -> Vec<Grant> {
    let mut order: Vec<usize> = (0..demands.len()).collect();
    order.sort_by_key(|&i| (demands[i].priority, Reverse(demands[i].ceiling)));
    let mut grants = vec![Grant::Paused; demands.len()];
    let mut left = budget;
    for &i in &order {
        let d = &demands[i];
        match d.allowed().next() {
            // Nothing sent at all: nothing to decide.
            None => grants[i] = Grant::Layer(d.ceiling),
            // A lowest layer not measured yet is never paused for what it
            // might cost: it is sent until it has been.
            Some(q) if d.cost(q) <= left || !d.measured(q) => {
                left -= d.cost(q);
                grants[i] = Grant::Layer(q);
            }
            Some(_) => {}
        }
    }
    for &i in &order {
        let d = &demands[i];
        let Grant::Layer(now) = grants[i] else {
            continue;
        };
        let have = d.cost(now);
        if let Some(q) = d
            .allowed()
            .filter(|&q| q > now && d.cost(q) - have <= left)
            .last()
        {
            left -= d.cost(q) - have;
            grants[i] = Grant::Layer(q);
        }
    }
    grants
}

/// What `grants` cost.
fn total(demands: &[Demand], grants: &[Grant]) -> f64 {
    demands
        .iter()
        .zip(grants)
        .map(|(d, g)| match g {
            Grant::Layer(q) => d.cost(*q),
            Grant::Paused => 0.0,
        })
        .sum()
}

/// What the allocator decided.
#[derive(Debug, PartialEq)]
pub struct Decision {
    /// Each demand's grant, in the demands' order.
    pub grants: Vec<Grant>,
    /// Probe the link at this many bits per second now.
    pub probe: Option<f64>,
}

/// An estimate this share below its peak has fallen.
const FALL: f64 = 0.1;

/// One subscriber's allocator: its state between decisions.
#[derive(Debug, Default)]
pub struct Allocator {
    /// The estimate's peak since it last fell, and when that was.
    peak: f64,
    fell: Option<Instant>,
    next_probe: Option<Instant>,
    failures: usize,
}

impl Allocator {
    /// Decides anew: `estimate` of the connection, `audio` what its audio
    /// costs, `current` what each demand has now; `may_probe`: whether a
    /// probe could be sent now (media has gone out to copy).
    pub fn decide(
        &mut self,
        now: Instant,
        estimate: f64,
        audio: f64,
        demands: &[Demand],
        current: &[Grant],
        may_probe: bool,
    ) -> Decision {
        if estimate < self.peak * (1.0 - FALL) {
            self.fell = Some(now);
            self.peak = estimate;
        }
        self.peak = self.peak.max(estimate);
        let down = fit(estimate * DOWN_SHARE - audio, demands);
        let sent = total(demands, current);
        let settled = self
            .fell
            .is_none_or(|t| now.saturating_duration_since(t) >= STABLE);
        let grants = if sent > estimate * DOWN_SHARE - audio || is_worse(&down, current) {
            // The estimate fell (or something was added): down at once.
            down
        } else {
            let up = fit(estimate * UP_SHARE - audio, demands);
            let better = up != current && !is_worse(&up, current);
            if better && settled {
                up
            } else {
                current.to_vec()
            }
        };
        let wanted = fit(f64::INFINITY, demands);
        let probe = (may_probe && settled && grants != wanted)
            .then(|| (total(demands, &wanted) + audio) / UP_SHARE)
            .filter(|_| self.next_probe.is_none_or(|t| now >= t))
            .map(|link| link.min((estimate * PROBE_STEP).max(PROBE_FLOOR)));
        if probe.is_some() {
            // The probe's outcome sets the next time; until it comes, none.
            self.next_probe = Some(now + Duration::from_secs(3600));
        }
        Decision { grants, probe }
    }

    /// How the last probe ended: whether it found the link larger.
    pub fn probed(&mut self, now: Instant, carried: bool) {
        let wait = if carried {
            self.failures = 0;
            PROBE_AGAIN
        } else {
            let wait = PROBE_BACKOFF[self.failures.min(PROBE_BACKOFF.len() - 1)];
            self.failures += 1;
            wait
        };
        self.next_probe = Some(now + wait);
    }
}

/// Whether `a` gives any track less than `b` does.
fn is_worse(a: &[Grant], b: &[Grant]) -> bool {
    a.len() == b.len() && a.iter().zip(b).any(|(x, y)| x < y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Quality::*;

    fn camera(ceiling: Quality) -> Demand {
        Demand {
            priority: Priority::Camera,
            ceiling,
            layers: vec![(Low, 150_000.0), (Medium, 500_000.0), (High, 1_500_000.0)],
        }
    }

    #[test]
    fn fits_by_priority_up_to_each_ceiling() {
        let screen = Demand {
            priority: Priority::ScreenShare,
            ..camera(High)
        };
        let speaker = Demand {
            priority: Priority::Speaker,
            ..camera(High)
        };
        let all = [camera(High), screen, speaker, camera(Low)];
        // Plenty: each its ceiling.
        assert_eq!(
            fit(10e6, &all),
            [Layer(High), Layer(High), Layer(High), Layer(Low)]
        );
        // 2.5 Mbit/s: all on their lowest (600k), then the screen share to
        // the top (+1.35M), the speaker to the middle (+350k), and what is
        // left is not enough for the other camera's middle.
        assert_eq!(
            fit(2_500_000.0, &all),
            [Layer(Low), Layer(High), Layer(Medium), Layer(Low)]
        );
        // 400k: lowest layers by priority; the last camera is paused.
        assert_eq!(
            fit(400_000.0, &all),
            [Grant::Paused, Layer(Low), Layer(Low), Grant::Paused]
        );
    }

    use Grant::Layer;

    #[test]
    fn a_layer_not_measured_yet_costs_a_usual_rate_and_is_never_paused_for_it() {
        let mut d = camera(High);
        d.layers = vec![(Low, 0.0), (Medium, 0.0), (High, 0.0)];
        assert_eq!(fit(700_000.0, &[d.clone()]), [Layer(Medium)]);
        assert_eq!(fit(10_000.0, &[d]), [Layer(Low)]);
        let nothing = Demand {
            layers: vec![],
            ..camera(Medium)
        };
        assert_eq!(fit(0.0, &[nothing]), [Layer(Medium)]);
    }

    #[test]
    fn steps_down_at_once_and_up_only_after_a_stable_while() {
        let t0 = Instant::now();
        let mut a = Allocator::default();
        let d = [camera(High)];
        let audio = 50_000.0;
        let mut now = t0;
        // Plenty from the start: the top layer at once.
        let mut current = a.decide(now, 3e6, audio, &d, &[Layer(Low)], true).grants;
        assert_eq!(current, [Layer(High)]);
        // The estimate falls to 700k: down to the middle at once.
        current = a.decide(now, 700_000.0, audio, &d, &current, true).grants;
        assert_eq!(current, [Layer(Medium)]);
        // It wobbles around 700k: no change either way.
        for i in 0..50 {
            let estimate = if i % 2 == 0 { 640_000.0 } else { 760_000.0 };
            let g = a.decide(now, estimate, audio, &d, &current, true).grants;
            assert_eq!(g, current, "at {estimate}");
            now += Duration::from_millis(100);
        }
        // 300k: the low layer at once; 100k: paused.
        current = a.decide(now, 300_000.0, audio, &d, &current, true).grants;
        assert_eq!(current, [Layer(Low)]);
        current = a.decide(now, 100_000.0, audio, &d, &current, true).grants;
        assert_eq!(current, [Grant::Paused]);
        // The link is back: up only once the estimate has not fallen for
        // a stable while.
        let fell = now;
        while current != [Layer(High)] {
            now += Duration::from_millis(100);
            current = a.decide(now, 3e6, audio, &d, &current, true).grants;
            assert!(now - fell < STABLE + Duration::from_millis(200));
        }
        assert!(now - fell >= STABLE);
    }

    #[test]
    fn a_tile_grown_on_a_steady_link_gets_the_better_layer_at_once() {
        let t0 = Instant::now();
        let mut a = Allocator::default();
        let later = t0 + STABLE;
        a.decide(t0, 5e6, 0.0, &[camera(High)], &[Layer(High)], true);
        let small = a.decide(later, 5e6, 0.0, &[camera(Low)], &[Layer(High)], true);
        assert_eq!(small.grants, [Layer(Low)]);
        let big = a.decide(later, 5e6, 0.0, &[camera(High)], &small.grants, true);
        assert_eq!(big.grants, [Layer(High)]);
    }

    #[test]
    fn asks_for_probes_while_short_and_backs_off_when_they_fail() {
        let t0 = Instant::now();
        let mut a = Allocator::default();
        let d = [camera(High)];
        let current = [Layer(Low)];
        let first = a.decide(t0, 600_000.0, 0.0, &d, &current, true);
        // Twice the estimate, no more.
        assert_eq!(first.probe, Some(1_200_000.0));
        // None while it runs.
        assert_eq!(a.decide(t0, 600_000.0, 0.0, &d, &current, true).probe, None);
        a.probed(t0, false);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(a.decide(t1, 600_000.0, 0.0, &d, &current, true).probe, None);
        let t2 = t0 + Duration::from_secs(2);
        // Nothing sent yet to make a probe of: none.
        assert_eq!(
            a.decide(t2, 600_000.0, 0.0, &d, &current, false).probe,
            None
        );
        assert!(a
            .decide(t2, 600_000.0, 0.0, &d, &current, true)
            .probe
            .is_some());
        a.probed(t2, false);
        let t3 = t2 + Duration::from_secs(3);
        assert_eq!(a.decide(t3, 600_000.0, 0.0, &d, &current, true).probe, None);
        // Nothing wanted beyond what is given: no probe.
        let mut b = Allocator::default();
        let all = b.decide(t0, 10e6, 0.0, &d, &[Layer(High)], true);
        assert_eq!(all.probe, None);
    }
}
