//! What subscribers' receiver reports say about the media we send them
//! (loss, jitter, round-trip time), and how long each participant waited
//! from joining to its first media: samples the shell turns into
//! histograms. Never per user or meeting; the shell sees only numbers.

use std::time::{Duration, Instant};

use rtc::rtcp::reception_report::ReceptionReport;

use super::participant::ParticipantKey;
use super::Router;

/// Most samples of each kind kept between two reads by the shell (four a
/// second): 10 000 streams reporting once a second fit well.
const MAX_SAMPLES: usize = 10_000;

/// Samples since the shell last took them.
#[derive(Debug, Default)]
pub struct Samples {
    /// Fraction of packets lost (0..1) since the subscriber's last report.
    pub loss: Vec<f64>,
    /// Interarrival jitter, seconds.
    pub jitter: Vec<f64>,
    /// Round trip between us and the subscriber, seconds.
    pub rtt: Vec<f64>,
    /// From a participant's join to the first media packet sent to it.
    pub join_to_media: Vec<f64>,
}

impl Samples {
    fn push(to: &mut Vec<f64>, v: f64) {
        if to.len() < MAX_SAMPLES {
            to.push(v);
        }
    }

    pub fn first_media(&mut self, waited: Duration) {
        Self::push(&mut self.join_to_media, waited.as_secs_f64());
    }
}

impl Router {
    /// A subscriber's report blocks on the down-tracks it receives.
    pub(super) fn reception_reports(
        &mut self,
        now: Instant,
        subscriber: ParticipantKey,
        reports: &[ReceptionReport],
    ) {
        for r in reports {
            let Some((publisher, track_id)) = self.received(subscriber, r.ssrc) else {
                continue;
            };
            let Some(clock_rate) = self
                .participants
                .get(publisher)
                .and_then(|p| p.up.iter().find(|u| u.id == track_id))
                .map(|u| u.codec.clock_rate)
                .filter(|&c| c > 0)
            else {
                continue;
            };
            let s = &mut self.samples;
            Samples::push(&mut s.loss, f64::from(r.fraction_lost) / 256.0);
            Samples::push(&mut s.jitter, f64::from(r.jitter) / f64::from(clock_rate));
            // The wall clock is the engine's too: its sender reports carry
            // it as NTP time, which the report's LSR echoes.
            let ntp = self.cfg.wallclock.ntp(now);
            if let Some(rtt) = round_trip(ntp, r.last_sender_report, r.delay) {
                Samples::push(&mut s.rtt, rtt.as_secs_f64());
            }
        }
    }

    /// Takes the samples gathered since the last call.
    pub fn take_samples(&mut self) -> Samples {
        std::mem::take(&mut self.samples)
    }
}

/// The round trip from a report block received at NTP time `now` (RFC 3550
/// §6.4.1): now − LSR − DLSR, all in the middle 32 bits of NTP time
/// (1/65536 s). `None` before the subscriber had a sender report, or when
/// the figures make no sense (a clock step).
fn round_trip(now: u64, last_sender_report: u32, delay: u32) -> Option<Duration> {
    if last_sender_report == 0 {
        return None;
    }
    let mid = (now >> 16) as u32;
    let rtt = mid.wrapping_sub(last_sender_report).wrapping_sub(delay);
    // Over a minute is not a round trip but a wrapped negative.
    (rtt < 60 << 16).then(|| Duration::from_secs_f64(f64::from(rtt) / 65536.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_from_lsr_and_dlsr() {
        // Sent at 1000.5 s, held 0.25 s by the subscriber, back at 1000.80 s.
        let ntp = |secs: f64| ((secs * 65536.0) as u64) << 16;
        let lsr = (ntp(1000.5) >> 16) as u32;
        let dlsr = (0.25 * 65536.0) as u32;
        let rtt = round_trip(ntp(1000.8), lsr, dlsr).unwrap();
        assert!((rtt.as_secs_f64() - 0.05).abs() < 0.001, "{rtt:?}");
        assert_eq!(round_trip(ntp(1000.8), 0, 0), None, "no sender report yet");
        assert_eq!(round_trip(ntp(1000.0), lsr, dlsr), None, "negative");
    }
}
