//! The stream allocator of one subscriber: which layer of each video track
//! it receives, so that all of it fits the bandwidth estimate of its
//! connection (`estimator.rs`).
//!
//! Audio comes first and is never paused. Then, in order, screen shares,
//! the active speaker, and the other cameras by the size of their tiles
//! (the quality the subscriber asked for, `track_settings`, which is a
//! ceiling, not an order): each first gets its lowest layer while that
//! fits, then each in turn the best layer up to its ceiling that still
//! fits. A track whose lowest layer does not fit is paused. Where a
//! publisher sends temporal layers (`temporal.rs`), each simulcast layer
//! is several steps, its temporal layers from the base up: a track steps
//! down to half its frame rate before it drops a simulcast layer (and to
//! a quarter on its lowest layer before it is paused).
//!
//! When the estimate falls below what is sent, the allocation steps down at
//! once. It steps up only into a smaller share of the estimate (the margin
//! keeps a wobbling estimate from flipping layers), only once the estimate
//! has not fallen for a few seconds, and only as far as the link has shown
//! it carries: into what a probe found, or back to what each track held
//! since the link was last overfull (a subscriber asking for more of a
//! steady link gets it at once). An estimate climbs while nothing tests it,
//! so stepping up on it alone overfills the link and falls back, again and
//! again. While a track gets less than it asks for, the allocator asks for
//! a probe (`Estimator::start_probe`), so that a larger link is found.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use super::estimator::ProbeOutcome;
use super::temporal::ALL;
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
/// taken to cost: a browser's usual rates for its three layers, and of
/// that its temporal layers up to the `index`th of `steps` the share a
/// browser gives them (40 % the base, 60 % with the next).
fn nominal(q: Quality, index: usize, steps: usize) -> f64 {
    let layer = match q {
        Quality::Low => 150_000.0,
        Quality::Medium => 500_000.0,
        Quality::High => 1_500_000.0,
    };
    let share = match (steps, index) {
        (2, 0) => 0.6,
        (3.., 0) => 0.4,
        (3.., 1) => 0.6,
        _ => 1.0,
    };
    layer * share
}

/// One step of a video track: a simulcast layer, up to one of its
/// temporal layers ([`ALL`]: all of them, or it has none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub quality: Quality,
    pub temporal: u8,
    /// What it costs, in bits per second (0: not measured yet).
    pub bps: f64,
}

/// The steps of one simulcast layer `quality`, from what its temporal
/// layers cost (each with the ones below it), base first; one step, of
/// all of it, where it has one rate only.
pub fn layer_steps(quality: Quality, cumulative: &[f64]) -> impl Iterator<Item = Step> + '_ {
    let last = cumulative.len().saturating_sub(1);
    cumulative.iter().enumerate().map(move |(i, &bps)| Step {
        quality,
        temporal: if i == last { ALL } else { i as u8 },
        bps,
    })
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
    /// The steps of the layers the publisher sends now, lowest first
    /// (by layer, then temporal layer).
    pub steps: Vec<Step>,
}

impl Demand {
    /// What `grant` costs: as measured, or (it just started) what such a
    /// step usually costs.
    fn cost(&self, grant: Grant) -> f64 {
        let Grant::Layer(q, t) = grant else {
            return 0.0;
        };
        let layer = self.steps.iter().filter(|s| s.quality == q);
        let count = layer.clone().count();
        layer
            .enumerate()
            .find(|(_, s)| s.temporal == t)
            .map_or(0.0, |(i, s)| {
                if s.bps > 0.0 {
                    s.bps
                } else {
                    nominal(q, i, count)
                }
            })
    }

    /// Whether `grant`'s step has been measured.
    fn measured(&self, grant: Grant) -> bool {
        self.steps
            .iter()
            .any(|s| Grant::Layer(s.quality, s.temporal) == grant && s.bps > 0.0)
    }

    /// The steps it may get: up to its ceiling, or the lowest layer's if
    /// even that is above it. A layer's base temporal layer alone (a
    /// quarter of its frame rate) is a step of the lowest layer only,
    /// where the alternative is a paused picture: above it, a slide show
    /// of the better layer looks worse than the layer below at its full
    /// rate.
    fn allowed(&self) -> impl Iterator<Item = Grant> + '_ {
        let lowest = self.steps.first().map(|s| s.quality);
        self.steps
            .iter()
            .filter(move |s| s.quality <= self.ceiling || Some(s.quality) == lowest)
            .filter(move |s| s.temporal != 0 || Some(s.quality) == lowest)
            .map(|s| Grant::Layer(s.quality, s.temporal))
    }
}

/// What a track gets: a simulcast layer and the highest of its temporal
/// layers, or nothing. Ordered from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grant {
    Paused,
    Layer(Quality, u8),
}

impl Grant {
    /// All of layer `q`.
    pub fn full(q: Quality) -> Self {
        Self::Layer(q, ALL)
    }
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
            None => grants[i] = Grant::full(d.ceiling),
            // A lowest step not measured yet is never paused for what it
            // might cost: it is sent until it has been.
            Some(g) if d.cost(g) <= left || !d.measured(g) => {
                left -= d.cost(g);
                grants[i] = g;
            }
            Some(_) => {}
        }
    }
    for &i in &order {
        let d = &demands[i];
        let now = grants[i];
        if now == Grant::Paused {
            continue;
        }
        let have = d.cost(now);
        if let Some(g) = d
            .allowed()
            .filter(|&g| g > now && d.cost(g) - have <= left)
            .last()
        {
            left -= d.cost(g) - have;
            grants[i] = g;
        }
    }
    grants
}

/// What `grants` cost.
fn total(demands: &[Demand], grants: &[Grant]) -> f64 {
    demands.iter().zip(grants).map(|(d, g)| d.cost(*g)).sum()
}

/// What `grants` cost as measured (a step not measured yet counts as
/// nothing): what the link has been sent.
fn measured_total(demands: &[Demand], grants: &[Grant]) -> f64 {
    demands
        .iter()
        .zip(grants)
        .filter(|(d, g)| d.measured(**g))
        .map(|(d, g)| d.cost(*g))
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

/// How long what a probe found stands for what the link carries.
const PROBED_FOR: Duration = Duration::from_secs(10);

/// One subscriber's allocator: its state between decisions.
#[derive(Debug, Default)]
pub struct Allocator {
    /// The estimate's peak since it last fell, and when that was.
    peak: f64,
    fell: Option<Instant>,
    next_probe: Option<Instant>,
    failures: usize,
    /// What each track held since the link was last overfull, and what
    /// the last probe found it carries, and when.
    held: Vec<Grant>,
    probed: Option<(f64, Instant)>,
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
        if self.held.len() != current.len() {
            self.held = current.to_vec();
        }
        for (h, c) in self.held.iter_mut().zip(current) {
            *h = (*h).max(*c);
        }
        let budget = estimate * DOWN_SHARE - audio;
        let grants = if sent > budget || is_worse(&down, current) {
            // The estimate fell (or something was added, or asked for
            // less, or a layer not measured yet may cost more than it
            // has): down at once. If the link was sent more than it could
            // carry, that no longer counts as held, nor what a probe found
            // before.
            if measured_total(demands, current) > budget {
                self.held = down.clone();
                self.probed = None;
            }
            down
        } else {
            let probed = self
                .probed
                .filter(|(_, at)| now.saturating_duration_since(*at) < PROBED_FOR)
                .map_or(0.0, |(rate, _)| rate * UP_SHARE);
            let mut up = fit(estimate * UP_SHARE - audio, demands);
            if total(demands, &up) + audio > probed {
                // No probe found room for it: only as far as each track
                // held before.
                for (u, h) in up.iter_mut().zip(&self.held) {
                    *u = (*u).min(*h);
                }
            }
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

    /// How the last probe ended: what it found the link to carry, and
    /// whether it found the link larger.
    pub fn probed(&mut self, now: Instant, outcome: ProbeOutcome) {
        let carried = match outcome {
            ProbeOutcome::Carried(rate) | ProbeOutcome::Full(rate) => {
                self.probed = Some((rate, now));
                matches!(outcome, ProbeOutcome::Carried(_))
            }
            ProbeOutcome::Failed => false,
        };
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

    fn steps(layers: &[(Quality, &[f64])]) -> Vec<Step> {
        layers
            .iter()
            .flat_map(|&(q, rates)| layer_steps(q, rates))
            .collect()
    }

    fn camera(ceiling: Quality) -> Demand {
        Demand {
            priority: Priority::Camera,
            ceiling,
            steps: steps(&[
                (Low, &[150_000.0]),
                (Medium, &[500_000.0]),
                (High, &[1_500_000.0]),
            ]),
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
            [full(High), full(High), full(High), full(Low)]
        );
        // 2.5 Mbit/s: all on their lowest (600k), then the screen share to
        // the top (+1.35M), the speaker to the middle (+350k), and what is
        // left is not enough for the other camera's middle.
        assert_eq!(
            fit(2_500_000.0, &all),
            [full(Low), full(High), full(Medium), full(Low)]
        );
        // 400k: lowest layers by priority; the last camera is paused.
        assert_eq!(
            fit(400_000.0, &all),
            [Grant::Paused, full(Low), full(Low), Grant::Paused]
        );
    }

    fn full(q: Quality) -> Grant {
        Grant::full(q)
    }

    #[test]
    fn a_layer_not_measured_yet_costs_a_usual_rate_and_is_never_paused_for_it() {
        let mut d = camera(High);
        d.steps = steps(&[(Low, &[0.0]), (Medium, &[0.0]), (High, &[0.0])]);
        assert_eq!(fit(700_000.0, &[d.clone()]), [full(Medium)]);
        assert_eq!(fit(10_000.0, &[d]), [full(Low)]);
        let nothing = Demand {
            steps: vec![],
            ..camera(Medium)
        };
        assert_eq!(fit(0.0, &[nothing]), [full(Medium)]);
    }

    #[test]
    fn steps_down_at_once_and_up_only_after_a_stable_while() {
        let t0 = Instant::now();
        let mut a = Allocator::default();
        let d = [camera(High)];
        let audio = 50_000.0;
        let mut now = t0;
        // Plenty, and the top layer flows.
        let mut current = a.decide(now, 3e6, audio, &d, &[full(High)], true).grants;
        assert_eq!(current, [full(High)]);
        // The estimate falls to 700k: down to the middle at once.
        current = a.decide(now, 700_000.0, audio, &d, &current, true).grants;
        assert_eq!(current, [full(Medium)]);
        // It wobbles around 700k: no change either way.
        for i in 0..50 {
            let estimate = if i % 2 == 0 { 640_000.0 } else { 760_000.0 };
            let g = a.decide(now, estimate, audio, &d, &current, true).grants;
            assert_eq!(g, current, "at {estimate}");
            now += Duration::from_millis(100);
        }
        // 300k: the low layer at once; 100k: paused.
        current = a.decide(now, 300_000.0, audio, &d, &current, true).grants;
        assert_eq!(current, [full(Low)]);
        current = a.decide(now, 100_000.0, audio, &d, &current, true).grants;
        assert_eq!(current, [Grant::Paused]);
        // The link is back: up only once the estimate has not fallen for
        // a stable while, and a probe found the room.
        let fell = now;
        let mut probes = 0;
        while current != [full(High)] {
            now += Duration::from_millis(100);
            let decision = a.decide(now, 3e6, audio, &d, &current, true);
            current = decision.grants;
            if decision.probe.is_some() {
                probes += 1;
                a.probed(now, ProbeOutcome::Carried(3e6));
            }
            assert!(now - fell < STABLE + Duration::from_millis(200));
        }
        assert!(now - fell >= STABLE);
        assert_eq!(probes, 1);
    }

    #[test]
    fn a_rising_estimate_alone_does_not_step_up_what_a_probe_found_full() {
        let t0 = Instant::now();
        let mut a = Allocator::default();
        let d = [camera(High)];
        // 700k: the middle layer.
        let mut now = t0;
        let mut current = a
            .decide(now, 700_000.0, 0.0, &d, &[full(High)], true)
            .grants;
        assert_eq!(current, [full(Medium)]);
        // The estimate climbs to 2.5 Mbit/s with nothing to test it; a
        // probe finds the link full at 700k: the middle layer stays.
        for _ in 0..100 {
            now += Duration::from_millis(100);
            let decision = a.decide(now, 2.5e6, 0.0, &d, &current, true);
            current = decision.grants;
            if decision.probe.is_some() {
                a.probed(now, ProbeOutcome::Full(700_000.0));
            }
            assert_eq!(current, [full(Medium)]);
        }
    }

    #[test]
    fn a_tile_grown_on_a_steady_link_gets_the_better_layer_at_once() {
        let t0 = Instant::now();
        let mut a = Allocator::default();
        let later = t0 + STABLE;
        a.decide(t0, 5e6, 0.0, &[camera(High)], &[full(High)], true);
        let small = a.decide(later, 5e6, 0.0, &[camera(Low)], &[full(High)], true);
        assert_eq!(small.grants, [full(Low)]);
        let big = a.decide(later, 5e6, 0.0, &[camera(High)], &small.grants, true);
        assert_eq!(big.grants, [full(High)]);
    }

    #[test]
    fn asks_for_probes_while_short_and_backs_off_when_they_fail() {
        let t0 = Instant::now();
        let mut a = Allocator::default();
        let d = [camera(High)];
        let current = [full(Low)];
        let first = a.decide(t0, 600_000.0, 0.0, &d, &current, true);
        // Twice the estimate, no more.
        assert_eq!(first.probe, Some(1_200_000.0));
        // None while it runs.
        assert_eq!(a.decide(t0, 600_000.0, 0.0, &d, &current, true).probe, None);
        a.probed(t0, ProbeOutcome::Failed);
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
        a.probed(t2, ProbeOutcome::Failed);
        let t3 = t2 + Duration::from_secs(3);
        assert_eq!(a.decide(t3, 600_000.0, 0.0, &d, &current, true).probe, None);
        // Nothing wanted beyond what is given: no probe.
        let mut b = Allocator::default();
        let all = b.decide(t0, 10e6, 0.0, &d, &[full(High)], true);
        assert_eq!(all.probe, None);
    }

    /// A camera whose layers each send three temporal layers, at the
    /// shares a browser gives them.
    fn temporal_camera() -> Demand {
        Demand {
            steps: steps(&[
                (Low, &[60_000.0, 90_000.0, 150_000.0]),
                (Medium, &[200_000.0, 300_000.0, 500_000.0]),
                (High, &[600_000.0, 900_000.0, 1_500_000.0]),
            ]),
            ..camera(High)
        }
    }

    #[test]
    fn temporal_layers_go_before_a_simulcast_layer() {
        let d = [temporal_camera()];
        assert_eq!(fit(2e6, &d), [full(High)]);
        assert_eq!(fit(1e6, &d), [Grant::Layer(High, 1)]);
        // A quarter of the top layer's frame rate is not a step: the
        // middle layer at its full rate.
        assert_eq!(fit(700_000.0, &d), [full(Medium)]);
        assert_eq!(fit(550_000.0, &d), [full(Medium)]);
        assert_eq!(fit(100_000.0, &d), [Grant::Layer(Low, 1)]);
        assert_eq!(fit(70_000.0, &d), [Grant::Layer(Low, 0)]);
        assert_eq!(fit(50_000.0, &d), [Grant::Paused]);
        // Not measured yet: a base layer costs 40 % of the layer's usual
        // rate, the next 60 %.
        let mut fresh = temporal_camera();
        fresh.steps.iter_mut().for_each(|s| s.bps = 0.0);
        assert_eq!(fit(1e6, &[fresh.clone()]), [Grant::Layer(High, 1)]);
        assert_eq!(fit(850_000.0, &[fresh]), [full(Medium)]);
        // The estimate falls from 3 Mbit/s to 1 Mbit/s: down to the top
        // layer's lower temporal layers at once, not to the middle layer.
        let mut a = Allocator::default();
        let t0 = Instant::now();
        let current = a.decide(t0, 3e6, 0.0, &d, &[full(High)], true).grants;
        assert_eq!(current, [full(High)]);
        let current = a.decide(t0, 1e6, 0.0, &d, &current, true).grants;
        assert_eq!(current, [Grant::Layer(High, 1)]);
    }
}
