//! Simulcast: a publisher sends one video track as up to three encodings
//! (layers) of different resolution, each with its own SSRC and sequence
//! space, told apart by their RTP stream id (`rid`). Each subscriber gets one
//! layer at a time; this module decides which, and keeps the VP8 payload
//! descriptor continuous when a subscriber moves from one layer to another.
//! Pure arithmetic, no I/O.

use std::time::{Duration, Instant};

use crate::signalling::Quality;

/// A layer that sent nothing for this long counts as stopped: browsers stop
/// their upper layers when bandwidth or CPU runs short.
pub const LAYER_TIMEOUT: Duration = Duration::from_secs(1);

/// Where a layer ranks, from its rid and the rids of all the track's
/// layers (`all`, from the publisher's SDP), since the two common naming
/// schemes disagree on `h`: `q`/`h`/`f` (quarter, half, full: LiveKit's
/// clients) against `l`/`m`/`h` (low, medium, high: janus.js). Spelled-out
/// names and `0`/`1`/`2` count too; unknown names rank in the middle, and a
/// track without simulcast (the empty rid) counts as full quality.
pub fn rank(rid: &str, all: &[&str]) -> Quality {
    let high_is_h =
        !all.iter().any(|r| matches!(*r, "q" | "f")) && all.iter().any(|r| matches!(*r, "l" | "m"));
    match rid {
        "h" if high_is_h => Quality::High,
        "q" | "l" | "low" | "0" => Quality::Low,
        "" | "f" | "high" | "full" | "2" => Quality::High,
        _ => Quality::Medium,
    }
}

/// What the selection needs to know of one layer.
pub trait LayerView {
    fn rank(&self) -> Quality;
    fn last_rx(&self) -> Instant;
}

/// The layer to send a subscriber who wants `wanted`: the best one at or
/// below it that is still being sent, else the lowest one still sent, else
/// (nothing is sent at all) `None`.
pub fn select<L: LayerView>(layers: &[L], wanted: Quality, now: Instant) -> Option<usize> {
    let active = |l: &&L| now.saturating_duration_since(l.last_rx()) < LAYER_TIMEOUT;
    let indexed = || layers.iter().enumerate().filter(|(_, l)| active(l));
    indexed()
        .filter(|(_, l)| l.rank() <= wanted)
        .max_by_key(|(_, l)| l.rank())
        .or_else(|| indexed().min_by_key(|(_, l)| l.rank()))
        .map(|(i, _)| i)
}

/// Where the fields of a VP8 payload descriptor (RFC 7741 §4.2) sit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Vp8Fields {
    /// Offset of the picture id and whether it has 15 bits (else 7).
    picture_id: Option<(usize, bool)>,
    /// Offset of TL0PICIDX.
    tl0: Option<usize>,
}

fn vp8_fields(payload: &[u8]) -> Option<Vp8Fields> {
    let first = *payload.first()?;
    let mut fields = Vp8Fields {
        picture_id: None,
        tl0: None,
    };
    if first & 0x80 == 0 {
        return Some(fields);
    }
    let ext = *payload.get(1)?;
    let mut i = 2;
    if ext & 0x80 != 0 {
        let long = *payload.get(i)? & 0x80 != 0;
        let len = if long { 2 } else { 1 };
        payload.get(i + len - 1)?;
        fields.picture_id = Some((i, long));
        i += len;
    }
    if ext & 0x40 != 0 {
        payload.get(i)?;
        fields.tl0 = Some(i);
    }
    Some(fields)
}

fn read_picture_id(payload: &[u8], (at, long): (usize, bool)) -> u16 {
    if long {
        u16::from_be_bytes([payload[at] & 0x7f, payload[at + 1]])
    } else {
        u16::from(payload[at] & 0x7f)
    }
}

fn picture_id_mask(long: bool) -> u16 {
    if long {
        0x7fff
    } else {
        0x7f
    }
}

/// Keeps one subscriber's VP8 picture ids and TL0PICIDX continuous across
/// layer switches. Each layer numbers its pictures on its own; a decoder
/// that saw picture 900 and then 17 would take the jump for thousands of
/// lost pictures. So the first picture of the new layer gets the number
/// after the newest one sent, and later ones keep that offset.
#[derive(Debug, Clone, Default)]
pub struct Vp8Munger {
    picture_offset: u16,
    tl0_offset: u8,
    /// Newest values sent (after rewriting); late packets do not move them.
    last_picture_id: Option<u16>,
    last_tl0: Option<u8>,
}

/// `a` is after `b` in a wrapping space whose values are masked by `mask`.
fn newer(a: u16, b: u16, mask: u16) -> bool {
    let d = a.wrapping_sub(b) & mask;
    d != 0 && d <= mask / 2
}

impl Vp8Munger {
    /// The packet starts the keyframe the subscriber switches on.
    pub fn switch(&mut self, payload: &[u8]) {
        let Some(fields) = vp8_fields(payload) else {
            return;
        };
        if let (Some(pid), Some(last)) = (fields.picture_id, self.last_picture_id) {
            let next = last.wrapping_add(1);
            self.picture_offset =
                read_picture_id(payload, pid).wrapping_sub(next) & picture_id_mask(pid.1);
        }
        if let (Some(at), Some(last)) = (fields.tl0, self.last_tl0) {
            self.tl0_offset = payload[at].wrapping_sub(last.wrapping_add(1));
        }
    }

    /// Rewrites `payload` for the subscriber, if anything changes (else
    /// `None`, and the payload goes out as it is, shared). A rewritten
    /// payload is a copy of its own: the engine keeps what it sent for
    /// retransmission a while, and carving copies from shared blocks would
    /// let that history pin whole blocks.
    pub fn rewrite(&mut self, payload: &[u8]) -> Option<bytes::Bytes> {
        let fields = vp8_fields(payload)?;
        let pid = fields.picture_id.map(|p| {
            let mask = picture_id_mask(p.1);
            let out = read_picture_id(payload, p).wrapping_sub(self.picture_offset) & mask;
            if self
                .last_picture_id
                .is_none_or(|last| newer(out, last, mask))
            {
                self.last_picture_id = Some(out);
            }
            (p, out)
        });
        let tl0 = fields.tl0.map(|at| {
            let out = payload[at].wrapping_sub(self.tl0_offset);
            if self
                .last_tl0
                .is_none_or(|last| newer(out.into(), last.into(), 0xff))
            {
                self.last_tl0 = Some(out);
            }
            (at, out)
        });
        if self.picture_offset == 0 && self.tl0_offset == 0 {
            return None;
        }
        let mut out = bytes::BytesMut::from(payload);
        if let Some(((at, long), value)) = pid {
            if long {
                let [hi, lo] = value.to_be_bytes();
                out[at] = 0x80 | hi;
                out[at + 1] = lo;
            } else {
                out[at] = value as u8;
            }
        }
        if let Some((at, value)) = tl0 {
            out[at] = value;
        }
        Some(out.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct L(Quality, Instant);
    impl LayerView for L {
        fn rank(&self) -> Quality {
            self.0
        }
        fn last_rx(&self) -> Instant {
            self.1
        }
    }

    #[test]
    fn ranks_by_rid_in_either_naming_scheme() {
        let qhf = ["q", "h", "f"];
        assert_eq!(rank("q", &qhf), Quality::Low);
        assert_eq!(rank("h", &qhf), Quality::Medium);
        assert_eq!(rank("f", &qhf), Quality::High);
        let hml = ["h", "m", "l"];
        assert_eq!(rank("h", &hml), Quality::High);
        assert_eq!(rank("m", &hml), Quality::Medium);
        assert_eq!(rank("l", &hml), Quality::Low);
        assert_eq!(rank("", &[]), Quality::High);
    }

    #[test]
    fn selects_best_active_layer_at_or_below_the_wish() {
        let now = Instant::now() + Duration::from_secs(10);
        let old = now - Duration::from_secs(2);
        let all = [
            L(Quality::Low, now),
            L(Quality::Medium, now),
            L(Quality::High, now),
        ];
        assert_eq!(select(&all, Quality::High, now), Some(2));
        assert_eq!(select(&all, Quality::Medium, now), Some(1));
        assert_eq!(select(&all, Quality::Low, now), Some(0));
        // The top layer stopped (bandwidth): the next one down.
        let top_gone = [
            L(Quality::Low, now),
            L(Quality::Medium, now),
            L(Quality::High, old),
        ];
        assert_eq!(select(&top_gone, Quality::High, now), Some(1));
        // Only a better layer than wished for is sent: take it.
        let only_top = [L(Quality::Low, old), L(Quality::High, now)];
        assert_eq!(select(&only_top, Quality::Low, now), Some(1));
        let none = [L(Quality::Low, old)];
        assert_eq!(select(&none, Quality::Low, now), None);
    }

    /// A VP8 payload with a 15-bit picture id and TL0PICIDX.
    fn vp8(picture_id: u16, tl0: u8, keyframe: bool) -> Vec<u8> {
        let [hi, lo] = picture_id.to_be_bytes();
        let p = if keyframe { 0x00 } else { 0x01 };
        vec![0x90, 0xc0, 0x80 | hi, lo, tl0, p, 0xaa, 0xbb]
    }

    #[test]
    fn switch_keeps_picture_ids_continuous() {
        let mut m = Vp8Munger::default();
        // Layer A: passes untouched.
        for pid in 100..105 {
            assert_eq!(m.rewrite(&vp8(pid, 7, pid == 100)), None);
        }
        // Switch to layer B at its keyframe, picture 30000, TL0 200.
        let key = vp8(30000, 200, true);
        m.switch(&key);
        let out = m.rewrite(&key).unwrap();
        assert_eq!(out.as_ref(), vp8(105, 8, true).as_slice());
        let next = m.rewrite(&vp8(30001, 200, false)).unwrap();
        assert_eq!(next.as_ref(), vp8(106, 8, false).as_slice());
        // Picture ids wrap at 15 bits.
        let wrapped = m.rewrite(&vp8(0x7fff, 201, false)).unwrap();
        assert_eq!(
            wrapped.as_ref(),
            vp8(0x7fffu16.wrapping_sub(30000 - 105) & 0x7fff, 9, false).as_slice()
        );
    }

    #[test]
    fn short_or_plain_payloads_are_left_alone() {
        let mut m = Vp8Munger::default();
        m.switch(&[]);
        assert_eq!(m.rewrite(&[]), None);
        // Extension bit set, but the extension byte is missing.
        assert_eq!(m.rewrite(&[0x80]), None);
        // No extensions: nothing to rewrite.
        assert_eq!(m.rewrite(&[0x10, 0x00, 0x01]), None);
        // A 15-bit picture id cut short, with an offset to apply: no panic.
        m.picture_offset = 5;
        for p in [&[0x80, 0x80, 0x80][..], &[0x80, 0xc0, 0x80, 0x01]] {
            assert_eq!(m.rewrite(p), None);
            m.switch(p);
        }
    }

    #[test]
    fn late_packets_do_not_rewind_the_picture_id() {
        let mut m = Vp8Munger::default();
        for pid in [10, 11, 12, 9] {
            m.rewrite(&vp8(pid, 1, false));
        }
        m.switch(&vp8(500, 40, true));
        assert_eq!(
            m.rewrite(&vp8(500, 40, true)).unwrap().as_ref(),
            vp8(13, 2, true).as_slice()
        );
    }
}
