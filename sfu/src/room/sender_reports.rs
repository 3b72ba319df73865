//! Sender reports, both ways (RFC 3550 §6.4.1). A publisher's tell when
//! (NTP) its streams' RTP timestamps were captured; a subscriber aligns a
//! publisher's audio and video by the reports it gets from us. The
//! engine's own sender reports would pair the timestamps we forward with
//! the time we sent them, which carries each stream's own encoding and
//! network delay into the mapping and loses the publisher's lip sync; so
//! the subscriber connections send ours, derived from the publisher's.

use std::time::Instant;

use super::connection::ConnKey;
use super::participant::ParticipantKey;
use super::Router;
use crate::media::clock::RtpClock;

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
}
