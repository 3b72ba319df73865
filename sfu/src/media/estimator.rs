//! A subscriber connection's bandwidth estimate: how many bits per second
//! its downlink carries now.
//!
//! Every packet to the subscriber carries a transport-wide sequence number
//! (the `transport-cc` header extension) and is remembered with the
//! instant it left; the browser reports when each arrived (TWCC feedback).
//! The engine's GCC (its delay-based half follows the trend of the
//! one-way delay, its loss-based half the share lost; the lower wins) turns
//! those reports into the estimate. GCC alone climbs by 8 % a second, far
//! too slowly to get from a weak moment back to full HD, so the estimate
//! also moves up by probes: for a short while the connection is sent more
//! (copies of recent packets on the retransmission streams, which the
//! browser discards), and when those arrive as fast as they left and no
//! queue built up, the estimate takes the probe's rate at once.
//!
//! Sans-IO: every instant is handed in, so a test can replay a link.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rtc::interceptor::{convert_twcc, BandwidthEstimator, Gcc, PacketReport};
use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use rtc::rtp::Packet;
use rtc::shared::marshal::MarshalSize;

use super::bitrate::Bitrate;
use super::sent::{number_bytes, SentPackets};

/// Bytes a packet costs on the wire beyond its RTP: the SRTP tag (AES-GCM,
/// 16), UDP (8) and IPv4 (20) headers.
const OVERHEAD: usize = 44;
/// Where the estimate starts, and its bounds.
pub const INITIAL: f64 = 600_000.0;
pub const MIN: f64 = 50_000.0;
pub const MAX: f64 = 25_000_000.0;
/// How long a probe sends at its rate, and how long its reports may take.
pub const PROBE_LENGTH: Duration = Duration::from_millis(100);
const PROBE_VERDICT_WAIT: Duration = Duration::from_secs(1);
/// A probe succeeds when its packets arrived at this share of the rate
/// they left at, with no more than this share lost.
const PROBE_DELIVERED: f64 = 0.9;
const PROBE_MAX_LOSS: f64 = 0.05;
/// A probe tells something only when it went out at this share of its
/// rate, in this many packets at least (else it measured the media).
const PROBE_SENT: f64 = 0.8;
const PROBE_MIN_PACKETS: usize = 5;
/// Of what a probe that filled the link found it to carry, the share the
/// estimate takes.
const LINK_SHARE: f64 = 0.95;
/// The most a full link's measure may lift the estimate by.
const FULL_STEP: f64 = 1.25;
/// How long the queue a probe made in a full link takes to drain, at most:
/// what leaves meanwhile tells GCC of the probe, not of the link.
const DRAIN: Duration = Duration::from_secs(1);
/// Unacknowledged packets are forgotten after this long.
const HISTORY: Duration = Duration::from_secs(2);
/// Without a probe's proof, the estimate goes no further above what the
/// link has been seen to deliver than this (GCC climbs by 8 % a second
/// whether or not anything tests it: the same cap as in browsers' GCC).
const DELIVERED_FACTOR: f64 = 1.5;
const DELIVERED_MARGIN: f64 = 10_000.0;
/// How far back arrivals are kept, on the browser's clock.
const ARRIVALS_KEPT: Duration = Duration::from_secs(2);
/// A share of packets lost (GCC's average) above which the link is full.
const CONGESTED_LOSS: f64 = 0.2;
/// How long a probe's finding outweighs what the link has delivered.
const PROVEN_FOR: Duration = Duration::from_secs(3);

/// A probe under way: from `start` to `end` the connection is sent
/// `target` bits per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probe {
    pub target: f64,
    pub start: Instant,
    pub end: Instant,
}

/// What the probe's reports add up to so far.
#[derive(Debug, Default, Clone, Copy)]
struct ProbeTally {
    sent_bytes: usize,
    packets: usize,
    lost: usize,
    first_departure: Option<Instant>,
    last_departure: Option<Instant>,
    /// The last packet to leave: it left at the end of the span, so its
    /// bytes are not part of the rate over it.
    last_size: usize,
    arrived_bytes: usize,
    /// The first packet to arrive: likewise, at the start of its span.
    first_arrival: Option<(Duration, usize)>,
    last_arrival: Option<Duration>,
    /// A report of a packet that left after the probe ended: all of the
    /// probe's are in.
    complete: bool,
}

/// Bits per second of `bytes` over `span`, if the span is long enough to
/// say.
fn rate(bytes: usize, span: Duration) -> Option<f64> {
    (span > Duration::from_millis(50)).then(|| bytes as f64 * 8.0 / span.as_secs_f64())
}

impl ProbeTally {
    fn add(&mut self, probe: &Probe, r: &PacketReport) {
        if r.departure > probe.end {
            self.complete = true;
            return;
        }
        if r.departure < probe.start {
            return;
        }
        self.packets += 1;
        self.sent_bytes += r.size;
        self.first_departure.get_or_insert(r.departure);
        self.last_departure = Some(r.departure);
        self.last_size = r.size;
        match (r.arrived, r.arrival) {
            (true, Some(at)) => {
                self.arrived_bytes += r.size;
                if self.first_arrival.is_none_or(|(first, _)| at < first) {
                    self.first_arrival = Some((at, r.size));
                }
                self.last_arrival = Some(self.last_arrival.map_or(at, |l| l.max(at)));
            }
            _ => self.lost += 1,
        }
    }

    fn sent(&self) -> Option<f64> {
        let span = self.last_departure? - self.first_departure?;
        rate(self.sent_bytes - self.last_size, span)
    }

    /// The rate the probe's packets arrived at, when enough of them did
    /// to say.
    fn received(&self) -> Option<f64> {
        if self.packets - self.lost < PROBE_MIN_PACKETS {
            return None;
        }
        let (first, size) = self.first_arrival?;
        rate(self.arrived_bytes - size, self.last_arrival? - first)
    }

    /// What the probe found: the link carried what it was sent, or it
    /// was full (a good share lost, or arriving clearly slower than sent)
    /// and carried what arrived; nothing, where it was not sent at the
    /// rate it was to test.
    /// `arrivals`: every packet the browser reported lately, for what the
    /// link carried over the probe's span when it was full.
    fn outcome(&self, target: f64, arrivals: &VecDeque<(Duration, usize)>) -> ProbeOutcome {
        let (Some(sent), Some(received)) = (self.sent(), self.received()) else {
            return ProbeOutcome::Failed;
        };
        if self.packets < PROBE_MIN_PACKETS || sent < PROBE_SENT * target {
            return ProbeOutcome::Failed;
        }
        let lost = self.lost as f64 / self.packets.max(1) as f64;
        if lost <= PROBE_MAX_LOSS && received >= PROBE_DELIVERED * sent {
            return ProbeOutcome::Carried(received.min(sent));
        }
        // Full: over the span its packets arrived in, the link also carried
        // what was queued ahead of them; all of it is what the link carries.
        let carried = self
            .first_arrival
            .zip(self.last_arrival)
            .and_then(|((first, _), last)| {
                let bytes = arrivals
                    .iter()
                    .filter(|&&(at, _)| at > first && at <= last)
                    .map(|&(_, size)| size)
                    .sum();
                rate(bytes, last - first)
            })
            .unwrap_or(received);
        ProbeOutcome::Full(carried.max(received) * LINK_SHARE)
    }
}

/// How a probe ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProbeOutcome {
    /// The link carried this many bits per second, and perhaps more.
    Carried(f64),
    /// The probe filled the link: it carries this much.
    Full(f64),
    /// Nothing to tell: the probe could not be sent, or its reports did
    /// not come.
    Failed,
}

pub struct Estimator {
    /// The `transport-cc` extension's id on this connection, once an
    /// answer settled it; until then nothing is numbered or estimated.
    ext: Option<u8>,
    sent: SentPackets,
    /// The last feedback's packets, kept for its capacity.
    reports: Vec<PacketReport>,
    gcc: Gcc,
    /// What the link delivered lately (bytes the browser reported).
    delivered: Bitrate,
    /// When each packet reported lately arrived (the browser's clock), and
    /// its size: what the link carried over a probe's span, its own
    /// packets and those queued ahead of them alike.
    arrivals: VecDeque<(Duration, usize)>,
    /// The rate the last probe found, and when; lowered whenever GCC backs
    /// off below it.
    proven: f64,
    proven_at: Option<Instant>,
    estimate: f64,
    /// A probe under way, with the estimate from before it.
    probe: Option<(Probe, ProbeTally)>,
    before_probe: f64,
    /// After a probe: packets that left before this went through the queue
    /// the probe made, and tell the new GCC nothing of the link.
    fresh_from: Option<Instant>,
}

impl Estimator {
    pub fn new(now: Instant) -> Self {
        Self {
            ext: None,
            sent: SentPackets::new(),
            reports: Vec::new(),
            gcc: Gcc::new(INITIAL, MIN, MAX),
            delivered: Bitrate::new(now),
            arrivals: VecDeque::new(),
            proven: 0.0,
            proven_at: None,
            estimate: INITIAL,
            probe: None,
            before_probe: INITIAL,
            fresh_from: None,
        }
    }
}

impl Estimator {
    /// The subscriber's answer settled the extension's id (`None`: it did
    /// not take it, and the connection goes without an estimate).
    pub fn negotiated(&mut self, ext: Option<u8>) {
        self.ext = ext;
    }

    /// Whether there is an estimate: the subscriber took the extension
    /// (until its first reports, the estimate is where all start).
    pub fn active(&self) -> bool {
        self.ext.is_some()
    }

    /// The estimate, in bits per second.
    pub fn estimate(&self) -> f64 {
        self.estimate
    }

    /// The estimate anew: GCC's, but it climbs no further above what the
    /// link has delivered than a probe has shown it can go (GCC climbs
    /// whether or not anything tests it); that bound only holds it back,
    /// it does not pull it down (a paused subscriber delivers nothing),
    /// unless the link loses much.
    fn update(&mut self) {
        let delivered = self.delivered.last();
        let lossy = self
            .gcc
            .stats()
            .packet_loss
            .is_some_and(|loss| loss > CONGESTED_LOSS);
        let ceiling = if lossy && delivered > 0.0 {
            // A link that loses this much is full: it carries what it
            // delivers, and no more (faster than GCC's steps down).
            delivered
        } else {
            (delivered * DELIVERED_FACTOR + DELIVERED_MARGIN)
                .max(self.proven)
                .max(self.estimate)
        };
        self.estimate = self.gcc.target_bitrate().min(ceiling).max(MIN);
    }

    /// Numbers `packet` as it leaves for the subscriber, and remembers it.
    pub fn on_send(&mut self, now: Instant, packet: &mut Packet) {
        let Some(ext) = self.ext else {
            return;
        };
        if !packet.header.extension {
            // No block of extensions yet: none of an old one's padding.
            packet.header.extensions_padding = 0;
        }
        let numbered = packet
            .header
            .set_extension(ext, number_bytes(self.sent.next()));
        if numbered.is_ok() {
            self.sent.add(packet.marshal_size() + OVERHEAD, now);
        }
    }

    /// The subscriber's report of what arrived, and when. Returns how a
    /// probe ended, when this report settled it.
    pub fn on_feedback(
        &mut self,
        now: Instant,
        feedback: &TransportLayerCc,
    ) -> Option<ProbeOutcome> {
        for ack in convert_twcc(feedback) {
            self.sent.acknowledge(&ack);
        }
        let mut reports = std::mem::take(&mut self.reports);
        reports.clear();
        self.sent.take_reports(&mut reports);
        for r in reports.iter().filter(|r| r.arrived) {
            self.delivered.add(now, r.size);
            if let Some(at) = r.arrival {
                self.arrivals.push_back((at, r.size));
            }
        }
        if let Some(&(newest, _)) = self.arrivals.back() {
            while self
                .arrivals
                .front()
                .is_some_and(|&(at, _)| newest.saturating_sub(at) > ARRIVALS_KEPT)
            {
                self.arrivals.pop_front();
            }
        }
        let fresh = match self.fresh_from {
            Some(t) => reports.iter().position(|r| r.departure >= t),
            None => Some(0),
        };
        if let Some(i) = fresh {
            self.fresh_from = None;
            self.gcc.on_reports(now, &reports[i..]);
        }
        self.proven = self.proven.min(self.gcc.target_bitrate());
        // What a probe proved holds while the allocation climbs to it; after
        // that, what the link delivers speaks for itself.
        if self
            .proven_at
            .is_some_and(|t| now.saturating_duration_since(t) > PROVEN_FOR)
        {
            self.proven = 0.0;
        }
        self.update();
        tracing::trace!(
            reports = reports.len(),
            lost = reports.iter().filter(|r| !r.arrived).count(),
            gcc = self.gcc.target_bitrate(),
            estimate = self.estimate,
            delivered = self.delivered.last(),
            "transport feedback"
        );
        let settled = self.probe.as_mut().is_some_and(|(probe, tally)| {
            for r in &reports {
                tally.add(probe, r);
            }
            tally.complete
        });
        self.reports = reports;
        settled.then(|| self.settle_probe(now))
    }

    /// Starts a probe at `target` bits per second from now; the caller
    /// sends what it takes to reach that rate until [`Probe::end`].
    pub fn start_probe(&mut self, now: Instant, target: f64) -> Probe {
        let probe = Probe {
            target,
            start: now,
            end: now + PROBE_LENGTH,
        };
        self.before_probe = self.estimate();
        self.probe = Some((probe, ProbeTally::default()));
        probe
    }

    /// The probe under way, if any, and still sending.
    pub fn probing(&self, now: Instant) -> Option<Probe> {
        self.probe.map(|(p, _)| p).filter(|p| now < p.end)
    }

    /// Ends a probe whose reports did not come in time. Returns how it
    /// ended, if one did.
    pub fn tick(&mut self, now: Instant) -> Option<ProbeOutcome> {
        self.sent
            .forget_before(now.checked_sub(HISTORY).unwrap_or(now));
        let (probe, _) = self.probe?;
        (now > probe.end + PROBE_VERDICT_WAIT).then(|| self.settle_probe(now))
    }

    fn settle_probe(&mut self, now: Instant) -> ProbeOutcome {
        let Some((probe, tally)) = self.probe.take() else {
            return ProbeOutcome::Failed;
        };
        let outcome = tally.outcome(probe.target, &self.arrivals);
        tracing::trace!(
            target = probe.target,
            sent = ?tally.sent(),
            received = ?tally.received(),
            ?outcome,
            "probe settled"
        );
        if outcome != ProbeOutcome::Failed {
            self.fresh_from = Some(now);
        }
        let rate = match outcome {
            // GCC starts again from what the link carried: its filters'
            // state described the smaller rate.
            ProbeOutcome::Carried(rate) => rate.max(self.before_probe),
            // GCC took the queue the probe made for congestion: it starts
            // again from what the full link carried, once that queue has
            // drained; never lower than before the probe, nor much higher
            // (what arrives while a link is full is a noisy measure: GCC
            // goes down, carried probes up).
            ProbeOutcome::Full(rate) => {
                self.fresh_from = Some(now + DRAIN);
                rate.min(self.before_probe * FULL_STEP)
                    .max(self.before_probe)
            }
            ProbeOutcome::Failed => return outcome,
        };
        self.gcc = Gcc::new(rate, MIN, MAX);
        self.proven = rate;
        self.proven_at = Some(now);
        // What a probe found replaces the estimate, down as well as up.
        self.estimate = rate;
        self.update();
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(departure: Instant, arrival_ms: Option<u64>, size: usize) -> PacketReport {
        PacketReport {
            ssrc: 1,
            id: 0,
            rtp_sequence_number: 0,
            is_twcc: true,
            twcc_sequence_number: 0,
            size,
            arrived: arrival_ms.is_some(),
            departure,
            arrival: arrival_ms.map(Duration::from_millis),
            ecn: Default::default(),
        }
    }

    /// A probe of 2 Mbit/s: 1250-byte packets every 5 ms for 100 ms,
    /// arriving `spread` ms apart (5: as sent; 10: the link carries half).
    fn tally(spread: u64, lost_every: Option<usize>) -> ProbeTally {
        let t0 = Instant::now();
        let probe = Probe {
            target: 2_000_000.0,
            start: t0,
            end: t0 + PROBE_LENGTH,
        };
        let mut tally = ProbeTally::default();
        for i in 0..20u64 {
            let lost = lost_every.is_some_and(|n| (i as usize).is_multiple_of(n));
            let arrival = (!lost).then_some(100 + i * spread);
            tally.add(
                &probe,
                &report(t0 + Duration::from_millis(5 * i), arrival, 1250),
            );
        }
        tally.add(
            &probe,
            &report(t0 + Duration::from_millis(150), Some(900), 100),
        );
        assert!(tally.complete);
        tally
    }

    #[test]
    fn a_probe_tells_what_the_link_carried() {
        let near = |o: ProbeOutcome, want: f64| match o {
            ProbeOutcome::Carried(r) | ProbeOutcome::Full(r) => (r - want).abs() < 0.02 * want,
            ProbeOutcome::Failed => false,
        };
        let carried = tally(5, None).outcome(2e6, &VecDeque::new());
        assert!(
            matches!(carried, ProbeOutcome::Carried(_)) && near(carried, 2e6),
            "{carried:?}"
        );
        // The link took twice as long to deliver them: it carries half.
        let full = tally(10, None).outcome(2e6, &VecDeque::new());
        assert!(
            matches!(full, ProbeOutcome::Full(_)) && near(full, 0.95e6),
            "{full:?}"
        );
        // A tenth lost: the link is full.
        assert!(matches!(
            tally(5, Some(10)).outcome(2e6, &VecDeque::new()),
            ProbeOutcome::Full(_)
        ));
        // Sent at half the rate it was to test: it tells nothing.
        assert_eq!(
            tally(5, None).outcome(4e6, &VecDeque::new()),
            ProbeOutcome::Failed
        );
    }

    #[test]
    fn a_successful_probe_lifts_the_estimate_at_once_and_a_late_one_fails() {
        let t0 = Instant::now();
        let mut e = Estimator::new(t0);
        e.negotiated(Some(5));
        let probe = e.start_probe(t0, 3_000_000.0);
        assert_eq!(e.probing(t0), Some(probe));
        assert_eq!(e.probing(probe.end), None);
        if let Some((p, tally)) = e.probe.as_mut() {
            for i in 0..20u64 {
                let at = t0 + Duration::from_millis(5 * i);
                tally.add(p, &report(at, Some(100 + 5 * i), 1875));
            }
        }
        let outcome = e.settle_probe(t0);
        assert!(
            matches!(outcome, ProbeOutcome::Carried(r) if r > 2_900_000.0),
            "{outcome:?}"
        );
        assert!(e.estimate() > 2_900_000.0, "{}", e.estimate());
        // No reports at all: the probe fails when its time is up.
        e.start_probe(t0, 9_000_000.0);
        assert_eq!(e.tick(t0 + Duration::from_millis(500)), None);
        assert_eq!(
            e.tick(t0 + Duration::from_secs(2)),
            Some(ProbeOutcome::Failed)
        );
        assert!(e.estimate() < 3_100_000.0);
    }

    #[test]
    fn numbers_each_packet_once_negotiated() {
        let t0 = Instant::now();
        let mut e = Estimator::new(t0);
        let mut p = Packet::default();
        e.on_send(t0, &mut p);
        assert!(p.header.get_extension(5).is_none(), "not before the answer");
        e.negotiated(Some(5));
        e.on_send(t0, &mut p);
        let mut q = Packet::default();
        e.on_send(t0, &mut q);
        assert_eq!(p.header.get_extension(5).unwrap().as_ref(), &[0, 0]);
        assert_eq!(q.header.get_extension(5).unwrap().as_ref(), &[0, 1]);
        assert_eq!(e.sent.kept(), 2);
    }
}
