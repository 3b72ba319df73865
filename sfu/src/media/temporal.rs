//! VP8 temporal layers: which pictures of a simulcast layer one
//! subscriber gets. A browser encodes each VP8 simulcast layer in three
//! temporal layers (L1T3: the base at a quarter of the frame rate, the
//! next doubling it, the top doubling it again); a picture depends only on
//! pictures of its own layer or below, so dropping the upper ones lowers
//! the frame rate and the bitrate in finer steps than a move to another
//! simulcast layer (`allocator.rs` grants a temporal layer beside the
//! spatial one).
//!
//! Decided per picture, at its first packet: a step down takes effect at
//! once; a step up waits for a picture its new layers can start from (a
//! base-layer picture, or one marked as a layer sync). Pure arithmetic,
//! no I/O.

use super::vp8::Temporal;

/// Every temporal layer: what a subscriber gets unless its allocation is
/// short, and a stream without temporal layers always.
pub const ALL: u8 = u8::MAX;

/// What becomes of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Forward,
    /// Dropped: a packet of a picture that was dropped already.
    Drop,
    /// Dropped: the first packet of a picture dropped (later pictures'
    /// ids close the gap, see `vp8.rs`).
    DropPicture,
}

#[derive(Debug, Clone)]
pub struct TemporalFilter {
    /// Highest temporal layer forwarded now, and the one to get.
    current: u8,
    target: u8,
    /// The newest picture decided, and whether it is forwarded.
    picture: Option<(u16, bool)>,
}

impl Default for TemporalFilter {
    fn default() -> Self {
        Self {
            current: ALL,
            target: ALL,
            picture: None,
        }
    }
}

impl TemporalFilter {
    /// The highest temporal layer to get from now on.
    pub fn set_target(&mut self, target: u8) {
        self.target = target;
    }

    /// The stream starts again on a keyframe (another simulcast layer, with
    /// its own picture ids): the target holds from it on.
    pub fn restart(&mut self) {
        self.current = self.target;
        self.picture = None;
    }

    pub fn admit(&mut self, t: Temporal) -> Admit {
        if let Some((picture, forwarded)) = self.picture {
            if t.picture_id == picture {
                return if forwarded {
                    Admit::Forward
                } else {
                    Admit::Drop
                };
            }
            if !t.after(picture) {
                // Late, of a picture decided already: by the layer in force.
                return if t.tid <= self.current {
                    Admit::Forward
                } else {
                    Admit::Drop
                };
            }
        }
        if self.target < self.current {
            self.current = self.target;
        } else if self.target > self.current {
            if t.tid == 0 {
                self.current = self.target;
            } else if t.sync && t.tid <= self.target {
                self.current = self.current.max(t.tid);
            }
        }
        let forwarded = t.tid <= self.current;
        self.picture = Some((t.picture_id, forwarded));
        if forwarded {
            Admit::Forward
        } else {
            Admit::DropPicture
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pic(picture_id: u16, tid: u8, sync: bool) -> Temporal {
        Temporal {
            picture_id,
            picture_mask: 0x7fff,
            tid,
            sync,
        }
    }

    /// L1T3's pattern: TIDs 0 2 1 2, repeated; the first TID 1 and 2
    /// pictures after a base picture are layer syncs, as libvpx marks them.
    fn pattern(picture_id: u16) -> Temporal {
        let tid = [0, 2, 1, 2][usize::from(picture_id % 4)];
        pic(picture_id, tid, picture_id % 4 == 1 || picture_id % 4 == 2)
    }

    fn forwarded(f: &mut TemporalFilter, pictures: std::ops::Range<u16>) -> Vec<u16> {
        pictures
            .filter(|&p| f.admit(pattern(p)) == Admit::Forward)
            .collect()
    }

    #[test]
    fn steps_down_at_once_and_up_where_the_layers_can_start() {
        let mut f = TemporalFilter::default();
        assert_eq!(forwarded(&mut f, 0..8), (0..8).collect::<Vec<_>>());
        // Down to the base layer: from the next picture.
        f.set_target(0);
        assert_eq!(forwarded(&mut f, 8..17), [8, 12, 16]);
        // Up to TID 1 at picture 17 (TID 2): waits for 18, a TID 1 sync.
        f.set_target(1);
        assert_eq!(forwarded(&mut f, 17..24), [18, 20, 22]);
        // Up to all: picture 24 is the base; from it on, everything.
        f.set_target(ALL);
        assert_eq!(forwarded(&mut f, 23..28), [24, 25, 26, 27]);
    }

    #[test]
    fn a_picture_is_decided_once_for_all_its_packets() {
        let mut f = TemporalFilter::default();
        f.set_target(0);
        assert_eq!(f.admit(pattern(0)), Admit::Forward);
        assert_eq!(f.admit(pattern(1)), Admit::DropPicture);
        assert_eq!(f.admit(pattern(1)), Admit::Drop);
        assert_eq!(f.admit(pattern(4)), Admit::Forward);
        assert_eq!(f.admit(pattern(4)), Admit::Forward);
        // A late packet of picture 2 (TID 1) is not counted again.
        assert_eq!(f.admit(pattern(2)), Admit::Drop);
        assert_eq!(f.admit(pattern(0)), Admit::Forward);
    }

    #[test]
    fn a_restart_takes_the_target_at_once() {
        let mut f = TemporalFilter::default();
        f.set_target(1);
        f.restart();
        // Another layer's picture ids, lower than before: a new stream.
        assert_eq!(forwarded(&mut f, 100..104), [100, 102]);
    }
}
