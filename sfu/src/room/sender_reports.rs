//! Sender reports, both ways (RFC 3550 §6.4.1). A publisher's tell when
//! (NTP) its streams' RTP timestamps were captured; a subscriber aligns a
//! publisher's audio and video by the reports it gets from us. The
//! engine's own sender reports would pair the timestamps we forward with
//! the time we sent them, which carries each stream's own encoding and
//! network delay into the mapping and loses the publisher's lip sync; so
//! the subscriber connections send ours, derived from the publisher's.

use std::time::{Duration, Instant};

use super::connection::ConnKey;
use super::participant::ParticipantKey;
use super::Router;
use crate::media::clock::RtpClock;

/// How often each down-track's subscriber gets a sender report, as the
/// engine's default.
pub(super) const INTERVAL: Duration = Duration::from_secs(1);

impl Router {
    /// The publisher's sender report on stream `ssrc`: RTP timestamp `rtp`
    /// was its NTP time `ntp`.
    pub(super) fn publisher_sender_report(
        &mut self,
        now: Instant,
        conn: ConnKey,
        publisher: ParticipantKey,
        ssrc: u32,
        rtp: u32,
        ntp: u64,
    ) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        // One offset for all of a publisher's streams, so that they keep
        // their relation exactly (a report's delay on the way here would
        // shift each stream by a different amount). Its clock drifting from
        // ours moves them all alike, which sync does not mind.
        let offset = *c
            .ntp_offset
            .get_or_insert_with(|| self.cfg.wallclock.ntp(now).wrapping_sub(ntp));
        let clock = RtpClock {
            rtp,
            ntp: ntp.wrapping_add(offset),
        };
        if let Some(p) = self.participants.get_mut(publisher) {
            // An RTX stream's report names no layer: nothing to note.
            p.up.iter_mut().any(|u| u.sender_report(ssrc, clock));
        }
    }

    /// Every forwarded stream's sender report to its subscriber, when due.
    pub(super) fn send_sender_reports(&mut self, now: Instant) {
        if self.next_sender_reports.is_some_and(|t| now < t) {
            return;
        }
        self.next_sender_reports = Some(now + INTERVAL);
        // The clock the round trips in `reports.rs` are measured in, which
        // a subscriber's receiver report echoes.
        let ntp = self.cfg.wallclock.ntp(now);
        for (_, p) in &self.participants {
            for up in &p.up {
                for d in up.downs.iter().filter(|d| d.is_negotiated()) {
                    let Some(c) = self.conns.get_mut(d.route.conn).filter(|c| c.connected) else {
                        continue;
                    };
                    let clock = d.layer().and_then(|l| up.clock(l));
                    let Some(sr) = d.sender_report(now, ntp, clock, up.codec.clock_rate) else {
                        continue;
                    };
                    let sent =
                        c.pc.rtp_sender(d.route.sender)
                            .map(|mut s| s.write_rtcp(now, vec![Box::new(sr)]).is_ok());
                    if sent == Some(false) {
                        self.stats.engine_errors += 1;
                    }
                    c.drain_writes(&mut self.out);
                }
            }
        }
    }
}
