//! Per-subscriber forwarding decisions for one published track: whether a
//! packet goes out, and with which sequence number. Pure arithmetic, no I/O.
//!
//! A video down-track starts (and restarts after a pause) on a keyframe, so the
//! subscriber's decoder never sees a frame it cannot decode. Packets dropped
//! while waiting would show up as a sequence gap, which the subscriber would
//! NACK and count as loss; the forwarder closes that gap by offsetting the
//! sequence numbers it sends. Timestamps pass through: one source per
//! down-track keeps its clock, and the subscriber sees pauses as pauses.

/// The decision for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it with this sequence number.
    Forward { seq: u16 },
    /// Waiting for a keyframe: ask the publisher for one.
    DropNeedKeyframe,
    /// Too old (before the point where forwarding started): drop quietly.
    DropStale,
}

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
    /// Subtracted from input sequence numbers.
    offset: u16,
}

/// `a` is after `b` in RTP's wrapping sequence space.
fn seq_after(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

impl Forwarder {
    /// Video is gated on keyframes; audio is not.
    pub fn new(gate_on_keyframes: bool) -> Self {
        Self {
            gate_on_keyframes,
            waiting_keyframe: gate_on_keyframes,
            last_out: None,
            highest_in: None,
            start_in: 0,
            offset: 0,
        }
    }

    pub fn waiting_keyframe(&self) -> bool {
        self.waiting_keyframe
    }

    /// Stop until the next keyframe (for instance when the subscriber's
    /// connection was re-established and its decoder state is lost).
    pub fn pause(&mut self) {
        if self.gate_on_keyframes {
            self.waiting_keyframe = true;
        }
    }

    /// Decides on the packet with input sequence number `seq`;
    /// `keyframe` says whether it starts a keyframe.
    pub fn forward(&mut self, seq: u16, keyframe: bool) -> Verdict {
        let ext = self.unwrap(seq);
        if self.waiting_keyframe {
            if !keyframe {
                return Verdict::DropNeedKeyframe;
            }
            self.waiting_keyframe = false;
            self.start_in = ext;
            self.offset = match self.last_out {
                Some(last) => seq.wrapping_sub(last.wrapping_add(1)),
                None => 0,
            };
        } else if self.last_out.is_none() {
            // Ungated (audio) start.
            self.start_in = ext;
        }
        if ext < self.start_in {
            return Verdict::DropStale;
        }
        let out = seq.wrapping_sub(self.offset);
        if self.last_out.is_none_or(|last| seq_after(out, last)) {
            self.last_out = Some(out);
        }
        Verdict::Forward { seq: out }
    }

    /// `seq` as a 64-bit number near the highest seen so far.
    fn unwrap(&mut self, seq: u16) -> i64 {
        let ext = match self.highest_in {
            None => i64::from(seq),
            Some(h) => h + i64::from(seq.wrapping_sub(h as u16) as i16),
        };
        if self.highest_in.is_none_or(|h| ext > h) {
            self.highest_in = Some(ext);
        }
        ext
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_passes_through() {
        let mut f = Forwarder::new(false);
        assert_eq!(f.forward(100, false), Verdict::Forward { seq: 100 });
        assert_eq!(f.forward(101, false), Verdict::Forward { seq: 101 });
        // Reordered, but after the start: still forwarded (a NACK reply, say).
        assert_eq!(f.forward(103, false), Verdict::Forward { seq: 103 });
        assert_eq!(f.forward(102, false), Verdict::Forward { seq: 102 });
    }

    #[test]
    fn video_waits_for_keyframe_without_leaving_a_gap() {
        let mut f = Forwarder::new(true);
        assert_eq!(f.forward(10, false), Verdict::DropNeedKeyframe);
        assert_eq!(f.forward(11, false), Verdict::DropNeedKeyframe);
        assert_eq!(f.forward(12, true), Verdict::Forward { seq: 12 });
        assert_eq!(f.forward(13, false), Verdict::Forward { seq: 13 });
        // A late packet from before the keyframe must not reach the decoder.
        assert_eq!(f.forward(11, false), Verdict::DropStale);
    }

    #[test]
    fn restart_after_pause_continues_sequence() {
        let mut f = Forwarder::new(true);
        assert_eq!(f.forward(500, true), Verdict::Forward { seq: 500 });
        assert_eq!(f.forward(501, false), Verdict::Forward { seq: 501 });
        f.pause();
        assert!(f.waiting_keyframe());
        for s in 502..600 {
            assert_eq!(f.forward(s, false), Verdict::DropNeedKeyframe);
        }
        // 98 packets dropped; the subscriber sees 502 next, no gap.
        assert_eq!(f.forward(600, true), Verdict::Forward { seq: 502 });
        assert_eq!(f.forward(601, false), Verdict::Forward { seq: 503 });
    }

    #[test]
    fn wraps_around() {
        let mut f = Forwarder::new(true);
        assert_eq!(f.forward(65534, true), Verdict::Forward { seq: 65534 });
        assert_eq!(f.forward(65535, false), Verdict::Forward { seq: 65535 });
        assert_eq!(f.forward(0, false), Verdict::Forward { seq: 0 });
        f.pause();
        assert_eq!(f.forward(1, false), Verdict::DropNeedKeyframe);
        assert_eq!(f.forward(2, true), Verdict::Forward { seq: 1 });
    }

    #[test]
    fn long_streams_keep_flowing() {
        // Several wraps of the 16-bit sequence space: nothing may be taken
        // for "before the start".
        for gate in [false, true] {
            let mut f = Forwarder::new(gate);
            for i in 0..200_000u32 {
                let seq = (1000 + i) as u16;
                assert!(
                    matches!(f.forward(seq, true), Verdict::Forward { .. }),
                    "packet {i} dropped"
                );
            }
        }
    }

    #[test]
    fn pause_is_a_no_op_for_audio() {
        let mut f = Forwarder::new(false);
        assert_eq!(f.forward(1, false), Verdict::Forward { seq: 1 });
        f.pause();
        assert_eq!(f.forward(2, false), Verdict::Forward { seq: 2 });
    }
}
