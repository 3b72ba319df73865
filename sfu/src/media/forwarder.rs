//! Per-subscriber forwarding decisions for one published track: whether a
//! packet goes out, and with which sequence number. Pure arithmetic, no I/O.
//!
//! A video down-track starts (and restarts after a pause) on a keyframe, so the
//! subscriber's decoder never sees a frame it cannot decode. Packets dropped
//! while waiting would show up as a sequence gap, which the subscriber would
//! NACK and count as loss; the forwarder closes that gap by offsetting the
//! sequence numbers it sends. Timestamps pass through while the source stays
//! the same, so the subscriber sees pauses as pauses; when a simulcast
//! subscriber moves to another layer (another SSRC, with its own sequence
//! and timestamp spaces), both continue from where the last layer left off.
//!
//! Padding-only packets (a browser's bandwidth probes) are not forwarded:
//! they would cost every subscriber bandwidth for nothing, and a NACK for
//! one could not be answered; nor are pictures of VP8 temporal layers a
//! subscriber does not get (`temporal.rs`). Their numbers are closed up like those of
//! packets dropped before a keyframe (LiveKit and mediasoup do the same),
//! remembering where each run of them was, so that a packet that arrives
//! late, from before a run, still gets the number it had coming.

use std::time::Instant;

/// The decision for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it with this sequence number and timestamp.
    Forward { seq: u16, ts: u32 },
    /// Waiting for a keyframe: ask the publisher for one.
    DropNeedKeyframe,
    /// Too old (before the point where forwarding started): drop quietly.
    DropStale,
    /// Skipped (padding, or a picture of a temporal layer the subscriber
    /// does not get): dropped, and its number closed up.
    Skipped,
}

/// Runs of dropped padding remembered: a packet from before the oldest is
/// later than any reordering or retransmission worth forwarding.
const SKIPS: usize = 32;

#[derive(Debug, Clone)]
pub struct Forwarder {
    gate_on_keyframes: bool,
    waiting_keyframe: bool,
    /// Set once something was sent; the sequence space continues from it.
    last_out: Option<u16>,
    /// Input sequence numbers unwrapped to 64 bits: the highest seen and
    /// the one forwarding (re)started with. Comparing unwrapped numbers keeps
    /// "before the start" meaningful however long the stream runs.
    highest_in: Option<i64>,
    start_in: i64,
    /// Subtracted from input sequence numbers: from the (unwrapped) input
    /// number of each entry on, its offset; the newest entry is in force.
    /// Forwarding (re)starts with one entry, and each run of dropped
    /// padding adds one (a ring of the last [`SKIPS`]).
    offsets: [(i64, u16); SKIPS],
    newest: usize,
    entries: usize,
    /// RTP clock rate, to carry the timestamp across a switch of source.
    clock_rate: u32,
    /// Subtracted from input timestamps.
    ts_offset: u32,
    /// Timestamp of the newest packet sent, and when it went.
    last_ts: Option<(u32, Instant)>,
    /// The next keyframe comes from another stream: new sequence and
    /// timestamp spaces; and its timestamp as one of the old stream's, if
    /// the publisher's sender reports tell.
    new_source: bool,
    aligned: Option<u32>,
}

/// `a` is after `b` in RTP's wrapping sequence space.
fn seq_after(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

impl Forwarder {
    /// Video is gated on keyframes; audio is not.
    pub fn new(gate_on_keyframes: bool, clock_rate: u32) -> Self {
        Self {
            gate_on_keyframes,
            waiting_keyframe: gate_on_keyframes,
            last_out: None,
            highest_in: None,
            start_in: 0,
            offsets: [(0, 0); SKIPS],
            newest: 0,
            entries: 0,
            clock_rate,
            ts_offset: 0,
            last_ts: None,
            new_source: false,
            aligned: None,
        }
    }

    pub fn waiting_keyframe(&self) -> bool {
        self.waiting_keyframe
    }

    /// How far output sequence number `seq` is behind the newest one sent
    /// (0 if it is the newest or after it).
    pub fn behind(&self, seq: u16) -> u16 {
        self.last_out
            .map(|last| last.wrapping_sub(seq))
            .filter(|&d| d < 0x8000)
            .unwrap_or(0)
    }

    /// Stop until the next keyframe (for instance when the subscriber's
    /// connection was re-established and its decoder state is lost).
    pub fn pause(&mut self) {
        if self.gate_on_keyframes {
            self.waiting_keyframe = true;
        }
    }

    /// The caller is about to pass the keyframe of another stream (a
    /// simulcast layer switch); from it on, that stream is the source.
    /// `aligned`: that keyframe's timestamp as a timestamp of the old
    /// stream (the same capture instant), where the publisher's sender
    /// reports give it; else the time between arrivals has to do.
    pub fn switch_source(&mut self, aligned: Option<u32>) {
        self.waiting_keyframe = true;
        self.new_source = true;
        self.aligned = aligned;
    }

    /// Subtracted from the source's timestamps: what a sender report for
    /// the subscriber translates the source's clock by.
    pub fn ts_offset(&self) -> u32 {
        self.ts_offset
    }

    /// The timestamp of the newest packet sent, and when it went.
    pub fn last_ts(&self) -> Option<(u32, Instant)> {
        self.last_ts
    }

    /// Decides on the packet with input sequence number `seq` and
    /// timestamp `ts`, arriving at `now`; `keyframe` says whether it
    /// starts a keyframe.
    pub fn forward(&mut self, now: Instant, seq: u16, ts: u32, keyframe: bool) -> Verdict {
        if self.waiting_keyframe && keyframe && std::mem::take(&mut self.new_source) {
            self.highest_in = None;
            let aligned = self.aligned.take();
            if let Some((last, at)) = self.last_ts {
                // The subscriber's clock continues where the capture clock
                // says, as the old stream would have stamped this frame;
                // without sender reports, by the time between arrivals
                // (which a large keyframe's delay skews).
                let aligned = aligned
                    .map(|old| old.wrapping_sub(self.ts_offset))
                    .filter(|&t| t != last && t.wrapping_sub(last) < 0x8000_0000);
                let target = aligned.unwrap_or_else(|| {
                    let elapsed = now.saturating_duration_since(at);
                    let ticks =
                        (elapsed.as_micros() * u128::from(self.clock_rate) / 1_000_000) as u32;
                    last.wrapping_add(ticks.max(1))
                });
                self.ts_offset = ts.wrapping_sub(target);
            }
        }
        let ext = self.unwrap(seq);
        if self.waiting_keyframe {
            if !keyframe {
                return Verdict::DropNeedKeyframe;
            }
            self.waiting_keyframe = false;
            self.start_in = ext;
            let offset = match self.last_out {
                Some(last) => seq.wrapping_sub(last.wrapping_add(1)),
                None => 0,
            };
            self.restart_offsets(ext, offset);
        } else if self.last_out.is_none() {
            // Ungated (audio) start.
            self.start_in = ext;
            self.restart_offsets(ext, 0);
        }
        if ext < self.start_in {
            return Verdict::DropStale;
        }
        let Some(offset) = self.offset_at(ext) else {
            return Verdict::DropStale;
        };
        let out = seq.wrapping_sub(offset);
        let ts = ts.wrapping_sub(self.ts_offset);
        if self.last_out.is_none_or(|last| seq_after(out, last)) {
            self.last_out = Some(out);
            self.last_ts = Some((ts, now));
        }
        Verdict::Forward { seq: out, ts }
    }

    /// Decides on a packet the subscriber is not to get (padding only, or
    /// of a temporal layer it does not get): dropped, its number closed
    /// up, if it is the newest so far. One that arrives after later packets took
    /// their numbers goes out in its own place, or that would stay a gap.
    pub fn skip(&mut self, now: Instant, seq: u16, ts: u32) -> Verdict {
        if self.waiting_keyframe || self.last_out.is_none() {
            return Verdict::Skipped; // nothing numbered yet: no gap to leave
        }
        let newest = self.highest_in.is_none_or(|h| self.unwrap_peek(seq) > h);
        if !newest {
            return self.forward(now, seq, ts, false);
        }
        let ext = self.unwrap(seq);
        let (from, offset) = self.offsets[self.newest];
        let next = (ext + 1, offset.wrapping_add(1));
        if from == ext {
            // The run goes on.
            self.offsets[self.newest] = next;
        } else {
            self.newest = (self.newest + 1) % SKIPS;
            self.offsets[self.newest] = next;
            self.entries = (self.entries + 1).min(SKIPS);
        }
        Verdict::Skipped
    }

    fn restart_offsets(&mut self, ext: i64, offset: u16) {
        self.offsets[0] = (ext, offset);
        self.newest = 0;
        self.entries = 1;
    }

    /// The offset for input number `ext`: the newest entry at or before
    /// it; `None` if it is older than all that are remembered.
    fn offset_at(&self, ext: i64) -> Option<u16> {
        (0..self.entries)
            .map(|back| self.offsets[(self.newest + SKIPS - back) % SKIPS])
            .find(|&(from, _)| from <= ext)
            .map(|(_, offset)| offset)
    }

    /// `seq` as a 64-bit number near the highest seen so far.
    fn unwrap(&mut self, seq: u16) -> i64 {
        let ext = self.unwrap_peek(seq);
        if self.highest_in.is_none_or(|h| ext > h) {
            self.highest_in = Some(ext);
        }
        ext
    }

    /// What [`Self::unwrap`] will make of `seq`, without noting it.
    fn unwrap_peek(&self, seq: u16) -> i64 {
        match self.highest_in {
            None => i64::from(seq),
            Some(h) => h + i64::from(seq.wrapping_sub(h as u16) as i16),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Sequence-number checks: timestamps pass through, so leave them out.
    fn go(f: &mut Forwarder, seq: u16, keyframe: bool) -> Verdict {
        match f.forward(Instant::now(), seq, 0, keyframe) {
            Verdict::Forward { seq, .. } => fw(seq),
            v => v,
        }
    }

    fn fw(seq: u16) -> Verdict {
        Verdict::Forward { seq, ts: 0 }
    }

    #[test]
    fn switching_source_continues_sequence_and_clock() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut f = Forwarder::new(true, 90_000);
        // Layer A: seq 100.., timestamps 1000.., 30 fps.
        assert_eq!(
            f.forward(ms(0), 100, 1000, true),
            Verdict::Forward { seq: 100, ts: 1000 }
        );
        assert_eq!(
            f.forward(ms(33), 101, 4000, false),
            Verdict::Forward { seq: 101, ts: 4000 }
        );
        // Layer B's keyframe 66 ms later: its own spaces (seq 40000, ts
        // 7_000_000) become the next numbers of the subscriber's stream.
        f.switch_source(None);
        assert_eq!(
            f.forward(ms(99), 40000, 7_000_000, true),
            Verdict::Forward {
                seq: 102,
                ts: 4000 + 66 * 90
            }
        );
        assert_eq!(
            f.forward(ms(132), 40001, 7_003_000, false),
            Verdict::Forward {
                seq: 103,
                ts: 4000 + 66 * 90 + 3000
            }
        );
        // Layer B's packets from before its keyframe never get through.
        assert_eq!(
            f.forward(ms(133), 39999, 6_997_000, false),
            Verdict::DropStale
        );
    }

    #[test]
    fn switching_source_follows_the_capture_clock_where_known() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut f = Forwarder::new(true, 90_000);
        assert!(matches!(
            f.forward(ms(0), 100, 1000, true),
            Verdict::Forward { .. }
        ));
        assert!(matches!(
            f.forward(ms(33), 101, 4000, false),
            Verdict::Forward { .. }
        ));
        // Layer B's keyframe arrives 150 ms later (a large frame is slow),
        // but was captured 66 ms after the last frame, as the sender
        // reports say: its timestamp in layer A's timeline is 4000 + 66 ms.
        f.switch_source(Some(4000 + 66 * 90));
        assert_eq!(
            f.forward(ms(183), 40000, 7_000_000, true),
            Verdict::Forward {
                seq: 102,
                ts: 4000 + 66 * 90
            }
        );
        // A mapping that would run the clock backwards is not believed.
        f.switch_source(Some(0));
        assert_eq!(
            f.forward(ms(283), 900, 5, true),
            Verdict::Forward {
                seq: 103,
                ts: 4000 + 66 * 90 + 100 * 90
            }
        );
    }

    #[test]
    fn switch_waits_for_a_keyframe_of_the_new_source() {
        let now = Instant::now();
        let mut f = Forwarder::new(true, 90_000);
        assert!(matches!(
            f.forward(now, 5, 0, true),
            Verdict::Forward { .. }
        ));
        f.switch_source(None);
        assert_eq!(f.forward(now, 900, 0, false), Verdict::DropNeedKeyframe);
        assert_eq!(
            f.forward(now, 901, 0, true),
            Verdict::Forward { seq: 6, ts: 1 }
        );
    }

    #[test]
    fn tells_how_late_a_packet_is() {
        let mut f = Forwarder::new(false, 48_000);
        for seq in [65530, 65535, 3] {
            go(&mut f, seq, false);
        }
        assert_eq!(f.behind(3), 0);
        assert_eq!(f.behind(65534), 5);
        assert_eq!(f.behind(9), 0, "after the newest");
    }

    #[test]
    fn audio_passes_through() {
        let mut f = Forwarder::new(false, 48_000);
        assert_eq!(go(&mut f, 100, false), fw(100));
        assert_eq!(go(&mut f, 101, false), fw(101));
        // Reordered, but after the start: still forwarded (a NACK reply, say).
        assert_eq!(go(&mut f, 103, false), fw(103));
        assert_eq!(go(&mut f, 102, false), fw(102));
    }

    #[test]
    fn video_waits_for_keyframe_without_leaving_a_gap() {
        let mut f = Forwarder::new(true, 90_000);
        assert_eq!(go(&mut f, 10, false), Verdict::DropNeedKeyframe);
        assert_eq!(go(&mut f, 11, false), Verdict::DropNeedKeyframe);
        assert_eq!(go(&mut f, 12, true), fw(12));
        assert_eq!(go(&mut f, 13, false), fw(13));
        // A late packet from before the keyframe must not reach the decoder.
        assert_eq!(go(&mut f, 11, false), Verdict::DropStale);
    }

    #[test]
    fn restart_after_pause_continues_sequence() {
        let mut f = Forwarder::new(true, 90_000);
        assert_eq!(go(&mut f, 500, true), fw(500));
        assert_eq!(go(&mut f, 501, false), fw(501));
        f.pause();
        assert!(f.waiting_keyframe());
        for s in 502..600 {
            assert_eq!(go(&mut f, s, false), Verdict::DropNeedKeyframe);
        }
        // 98 packets dropped; the subscriber sees 502 next, no gap.
        assert_eq!(go(&mut f, 600, true), fw(502));
        assert_eq!(go(&mut f, 601, false), fw(503));
    }

    #[test]
    fn wraps_around() {
        let mut f = Forwarder::new(true, 90_000);
        assert_eq!(go(&mut f, 65534, true), fw(65534));
        assert_eq!(go(&mut f, 65535, false), fw(65535));
        assert_eq!(go(&mut f, 0, false), fw(0));
        f.pause();
        assert_eq!(go(&mut f, 1, false), Verdict::DropNeedKeyframe);
        assert_eq!(go(&mut f, 2, true), fw(1));
    }

    #[test]
    fn long_streams_keep_flowing() {
        // Several wraps of the 16-bit sequence space: nothing may be taken
        // for "before the start".
        for gate in [false, true] {
            let mut f = Forwarder::new(gate, 90_000);
            for i in 0..200_000u32 {
                let seq = (1000 + i) as u16;
                assert!(
                    matches!(go(&mut f, seq, true), Verdict::Forward { .. }),
                    "packet {i} dropped"
                );
            }
        }
    }

    #[test]
    fn padding_is_dropped_and_its_numbers_closed_up() {
        let now = Instant::now();
        let mut f = Forwarder::new(true, 90_000);
        assert_eq!(f.skip(now, 9, 0), Verdict::Skipped, "before the start");
        assert_eq!(go(&mut f, 10, true), fw(10));
        assert_eq!(f.skip(now, 11, 0), Verdict::Skipped);
        assert_eq!(f.skip(now, 12, 0), Verdict::Skipped);
        assert_eq!(go(&mut f, 13, false), fw(11), "no gap");
        assert_eq!(f.skip(now, 14, 0), Verdict::Skipped);
        // 15 comes late, after 16: it keeps the number it had coming.
        assert_eq!(go(&mut f, 16, false), fw(13));
        assert_eq!(go(&mut f, 15, false), fw(12));
        // Padding that arrives after a later packet was numbered takes its
        // own place: dropping it would leave a gap for good.
        assert_eq!(go(&mut f, 19, false), fw(16));
        assert_eq!(f.skip(now, 18, 0), Verdict::Forward { seq: 15, ts: 0 });
        assert_eq!(go(&mut f, 17, false), fw(14));
        // Across a layer switch the runs start afresh.
        f.switch_source(None);
        assert_eq!(go(&mut f, 500, true), fw(17));
        assert_eq!(f.skip(now, 501, 0), Verdict::Skipped);
        assert_eq!(go(&mut f, 502, false), fw(18));
    }

    #[test]
    fn a_packet_from_before_the_remembered_padding_is_stale() {
        let now = Instant::now();
        let mut f = Forwarder::new(false, 48_000);
        assert_eq!(go(&mut f, 100, false), fw(100));
        for run in 0..SKIPS as u16 {
            assert_eq!(f.skip(now, 102 + 2 * run, 0), Verdict::Skipped);
            assert!(matches!(
                go(&mut f, 103 + 2 * run, false),
                Verdict::Forward { .. }
            ));
        }
        assert_eq!(go(&mut f, 101, false), Verdict::DropStale);
    }

    #[test]
    fn pause_is_a_no_op_for_audio() {
        let mut f = Forwarder::new(false, 48_000);
        assert_eq!(go(&mut f, 1, false), fw(1));
        f.pause();
        assert_eq!(go(&mut f, 2, false), fw(2));
    }
}
