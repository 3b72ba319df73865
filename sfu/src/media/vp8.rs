//! Keeping one subscriber's VP8 picture ids and TL0PICIDX continuous when
//! it moves from one simulcast layer to another. Each layer numbers its
//! pictures on its own; a decoder that saw picture 900 and then 17 would
//! take the jump for thousands of lost pictures. So the first picture of
//! the new layer gets the number after the newest one sent, and later ones
//! keep that offset. A picture of a temporal layer the subscriber does not
//! get (`temporal.rs`) is skipped the same way: later ones move down by
//! one, so that the decoder sees no picture missing. Pure arithmetic on
//! the payload descriptor (RFC 7741 §4.2).

use bytes::Bytes;

/// Where the fields of a VP8 payload descriptor sit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fields {
    /// Offset of the picture id and whether it has 15 bits (else 7).
    picture_id: Option<(usize, bool)>,
    /// Offset of TL0PICIDX.
    tl0: Option<usize>,
    /// Offset of the TID/Y/KEYIDX byte, where it holds a TID.
    tid: Option<usize>,
}

fn fields(payload: &[u8]) -> Option<Fields> {
    let first = *payload.first()?;
    let mut fields = Fields {
        picture_id: None,
        tl0: None,
        tid: None,
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
        i += 1;
    }
    if ext & 0x20 != 0 {
        payload.get(i)?;
        fields.tid = Some(i);
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

/// `a` is after `b` in a wrapping space whose values are masked by `mask`.
fn newer(a: u16, b: u16, mask: u16) -> bool {
    let d = a.wrapping_sub(b) & mask;
    d != 0 && d <= mask / 2
}

/// Where a packet's picture sits among the temporal layers of its stream:
/// what `temporal.rs` decides by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Temporal {
    pub picture_id: u16,
    /// What picture ids are masked with: 7 or 15 bits.
    pub picture_mask: u16,
    /// Its temporal layer (TID), 0 the base.
    pub tid: u8,
    /// Layer sync (Y): it depends on base-layer pictures only, so a
    /// subscriber may start its layer here.
    pub sync: bool,
}

impl Temporal {
    /// Whether this picture comes after picture `other`.
    pub fn after(&self, other: u16) -> bool {
        newer(self.picture_id, other, self.picture_mask)
    }
}

/// The temporal layer of a VP8 packet's picture; `None` for a stream
/// without picture ids or temporal layers (a TID needs both to be of use).
pub fn temporal(payload: &[u8]) -> Option<Temporal> {
    let f = fields(payload)?;
    let p @ (_, long) = f.picture_id?;
    let tid = payload[f.tid?];
    Some(Temporal {
        picture_id: read_picture_id(payload, p),
        picture_mask: picture_id_mask(long),
        tid: tid >> 6,
        sync: tid & 0x20 != 0,
    })
}

/// What is subtracted from a layer's picture ids and TL0PICIDX. Small and
/// `Copy`, so that what a down-track sent can be rebuilt for a
/// retransmission from the shared original (see `sequencer.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offsets {
    picture: u16,
    tl0: u8,
}

impl Offsets {
    pub fn is_zero(self) -> bool {
        self == Self::default()
    }

    /// `payload` with the offsets applied, if anything changes (else
    /// `None`, and the payload goes out as it is, shared). A rewritten
    /// payload is a copy of its own, so it pins no shared buffer.
    pub fn apply(self, payload: &[u8]) -> Option<Bytes> {
        if self.is_zero() {
            return None;
        }
        let f = fields(payload)?;
        if f.picture_id.is_none() && f.tl0.is_none() {
            return None;
        }
        let mut out = bytes::BytesMut::from(payload);
        if let Some(p @ (at, long)) = f.picture_id {
            let value =
                read_picture_id(payload, p).wrapping_sub(self.picture) & picture_id_mask(long);
            if long {
                let [hi, lo] = value.to_be_bytes();
                out[at] = 0x80 | hi;
                out[at + 1] = lo;
            } else {
                out[at] = value as u8;
            }
        }
        if let Some(at) = f.tl0 {
            out[at] = payload[at].wrapping_sub(self.tl0);
        }
        Some(out.freeze())
    }
}

/// One subscriber's VP8 continuity across layer switches.
#[derive(Debug, Clone, Default)]
pub struct Vp8Munger {
    offsets: Offsets,
    /// Newest values sent (after rewriting); late packets do not move them.
    last_picture_id: Option<u16>,
    last_tl0: Option<u8>,
}

impl Vp8Munger {
    /// The packet starts the keyframe the subscriber switches on.
    pub fn switch(&mut self, payload: &[u8]) {
        let Some(f) = fields(payload) else {
            return;
        };
        if let (Some(pid), Some(last)) = (f.picture_id, self.last_picture_id) {
            let next = last.wrapping_add(1);
            self.offsets.picture =
                read_picture_id(payload, pid).wrapping_sub(next) & picture_id_mask(pid.1);
        }
        if let (Some(at), Some(last)) = (f.tl0, self.last_tl0) {
            self.offsets.tl0 = payload[at].wrapping_sub(last.wrapping_add(1));
        }
    }

    /// A picture the subscriber does not get (of a temporal layer above
    /// its own) was skipped: later pictures close the gap.
    pub fn skip_picture(&mut self) {
        self.offsets.picture = self.offsets.picture.wrapping_add(1);
    }

    /// Notes what `payload` becomes for the subscriber and returns the
    /// offsets that make it so.
    pub fn track(&mut self, payload: &[u8]) -> Offsets {
        let Some(f) = fields(payload) else {
            return Offsets::default();
        };
        if let Some(p) = f.picture_id {
            let mask = picture_id_mask(p.1);
            let out = read_picture_id(payload, p).wrapping_sub(self.offsets.picture) & mask;
            if self
                .last_picture_id
                .is_none_or(|last| newer(out, last, mask))
            {
                self.last_picture_id = Some(out);
            }
        }
        if let Some(at) = f.tl0 {
            let out = payload[at].wrapping_sub(self.offsets.tl0);
            if self
                .last_tl0
                .is_none_or(|last| newer(out.into(), last.into(), 0xff))
            {
                self.last_tl0 = Some(out);
            }
        }
        self.offsets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A VP8 payload with a 15-bit picture id and TL0PICIDX.
    fn vp8(picture_id: u16, tl0: u8, keyframe: bool) -> Vec<u8> {
        let [hi, lo] = picture_id.to_be_bytes();
        let p = if keyframe { 0x00 } else { 0x01 };
        vec![0x90, 0xc0, 0x80 | hi, lo, tl0, p, 0xaa, 0xbb]
    }

    fn rewrite(m: &mut Vp8Munger, payload: &[u8]) -> Option<Bytes> {
        m.track(payload).apply(payload)
    }

    #[test]
    fn switch_keeps_picture_ids_continuous() {
        let mut m = Vp8Munger::default();
        // Layer A: passes untouched.
        for pid in 100..105 {
            assert_eq!(rewrite(&mut m, &vp8(pid, 7, pid == 100)), None);
        }
        // Switch to layer B at its keyframe, picture 30000, TL0 200.
        let key = vp8(30000, 200, true);
        m.switch(&key);
        let out = rewrite(&mut m, &key).unwrap();
        assert_eq!(out.as_ref(), vp8(105, 8, true).as_slice());
        let next = rewrite(&mut m, &vp8(30001, 200, false)).unwrap();
        assert_eq!(next.as_ref(), vp8(106, 8, false).as_slice());
        // Picture ids wrap at 15 bits.
        let wrapped = rewrite(&mut m, &vp8(0x7fff, 201, false)).unwrap();
        assert_eq!(
            wrapped.as_ref(),
            vp8(0x7fffu16.wrapping_sub(30000 - 105) & 0x7fff, 9, false).as_slice()
        );
    }

    #[test]
    fn offsets_rebuild_what_was_sent() {
        let mut m = Vp8Munger::default();
        rewrite(&mut m, &vp8(10, 1, true));
        let key = vp8(500, 40, true);
        m.switch(&key);
        let sent = rewrite(&mut m, &key).unwrap();
        let offsets = m.track(&key);
        // Later packets do not change what the same original becomes.
        rewrite(&mut m, &vp8(501, 40, false));
        assert_eq!(offsets.apply(&key).unwrap(), sent);
    }

    #[test]
    fn short_or_plain_payloads_are_left_alone() {
        let mut m = Vp8Munger::default();
        m.switch(&[]);
        assert_eq!(rewrite(&mut m, &[]), None);
        // Extension bit set, but the extension byte is missing.
        assert_eq!(rewrite(&mut m, &[0x80]), None);
        // No extensions: nothing to rewrite.
        assert_eq!(rewrite(&mut m, &[0x10, 0x00, 0x01]), None);
        // A 15-bit picture id cut short, with an offset to apply: no panic.
        m.offsets.picture = 5;
        for p in [&[0x80, 0x80, 0x80][..], &[0x80, 0xc0, 0x80, 0x01]] {
            assert_eq!(rewrite(&mut m, p), None);
            m.switch(p);
        }
    }

    /// A VP8 payload with a 15-bit picture id, TL0PICIDX and TID/Y.
    fn vp8_tid(picture_id: u16, tl0: u8, tid: u8, sync: bool) -> Vec<u8> {
        let [hi, lo] = picture_id.to_be_bytes();
        let t = tid << 6 | if sync { 0x20 } else { 0 };
        vec![0x90, 0xe0, 0x80 | hi, lo, tl0, t, 0x01, 0xaa]
    }

    #[test]
    fn reads_the_temporal_layer() {
        let t = temporal(&vp8_tid(300, 9, 2, true)).unwrap();
        assert_eq!((t.picture_id, t.tid, t.sync), (300, 2, true));
        assert!(t.after(299) && !t.after(300) && !t.after(301));
        assert_eq!(temporal(&vp8_tid(300, 9, 1, false)).unwrap().tid, 1);
        // Without TL0PICIDX the byte moves up.
        let no_tl0 = [0x90, 0xa0, 0x81, 0x2c, 0x40, 0x01];
        let t = temporal(&no_tl0).unwrap();
        assert_eq!((t.picture_id, t.tid, t.sync), (300, 1, false));
        // 7-bit picture ids wrap at 128.
        let short = [0x90, 0xa0, 0x05, 0x80];
        let t = temporal(&short).unwrap();
        assert_eq!((t.picture_id, t.tid), (5, 2));
        assert!(t.after(120));
        // No T bit, or cut short: none.
        assert_eq!(temporal(&vp8(300, 9, false)), None);
        assert_eq!(temporal(&[0x90, 0xe0, 0x81, 0x2c, 0x09]), None);
        assert_eq!(temporal(&[0x10, 0x00]), None);
    }

    #[test]
    fn a_skipped_picture_leaves_no_gap_in_picture_ids() {
        let mut m = Vp8Munger::default();
        assert_eq!(rewrite(&mut m, &vp8_tid(10, 1, 0, true)), None);
        m.skip_picture(); // picture 11, TID 2
        let out = rewrite(&mut m, &vp8_tid(12, 1, 1, true)).unwrap();
        assert_eq!(out.as_ref(), vp8_tid(11, 1, 1, true).as_slice());
        m.skip_picture(); // 13
        let out = rewrite(&mut m, &vp8_tid(14, 2, 0, false)).unwrap();
        assert_eq!(out.as_ref(), vp8_tid(12, 2, 0, false).as_slice());
    }

    #[test]
    fn late_packets_do_not_rewind_the_picture_id() {
        let mut m = Vp8Munger::default();
        for pid in [10, 11, 12, 9] {
            rewrite(&mut m, &vp8(pid, 1, false));
        }
        m.switch(&vp8(500, 40, true));
        assert_eq!(
            rewrite(&mut m, &vp8(500, 40, true)).unwrap().as_ref(),
            vp8(13, 2, true).as_slice()
        );
    }
}
