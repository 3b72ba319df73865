//! How loud a published audio track is, from the level its publisher
//! writes into every packet (the `ssrc-audio-level` header extension,
//! RFC 6464): read as the packet arrives, before extensions are stripped,
//! and summed over a short window that the room core takes to decide who
//! speaks (`room/speakers.rs`). Counting only: no allocation per packet.

use rtc::rtp::Packet;

/// Levels are −dBov, 0 (loudest) to 127 (silence). A packet at or above
/// −50 dBov counts as voice: speech into a headset or laptop microphone
/// sits around −20 to −40, a quiet room's noise well below −50.
const VOICE_LEVEL: u8 = 50;

/// One window's worth of a track's levels.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Window {
    /// Packets that carried a level.
    pub packets: u32,
    /// Of those, packets loud enough to be voice.
    pub voiced: u32,
    /// The sum of the voiced packets' loudness above the voice threshold
    /// (0 at −50 dBov, 50 at 0 dBov): who is louder when several speak.
    pub loudness: u32,
}

impl Window {
    /// The share of the window's packets that were voice (0 for a window
    /// without packets: a muted track, or Opus's silence suppression).
    pub fn activity(&self) -> f32 {
        if self.packets == 0 {
            0.0
        } else {
            self.voiced as f32 / self.packets as f32
        }
    }

    /// Mean loudness of the voiced packets above the threshold (0–50).
    pub fn mean_loudness(&self) -> f32 {
        if self.voiced == 0 {
            0.0
        } else {
            self.loudness as f32 / self.voiced as f32
        }
    }
}

/// The levels of one audio track, gathered packet by packet.
#[derive(Debug, Default)]
pub struct AudioLevels {
    /// The extension's id on the publisher's connection; `None` when the
    /// publisher did not negotiate it (then nothing is gathered).
    id: Option<u8>,
    window: Window,
}

impl AudioLevels {
    pub fn new(id: Option<u8>) -> Self {
        Self {
            id,
            window: Window::default(),
        }
    }

    /// Reads the level `packet` carries, if any.
    pub fn observe(&mut self, packet: &Packet) {
        let Some(id) = self.id else {
            return;
        };
        let Some(level) = packet
            .header
            .get_extension(id)
            .and_then(|e| e.first().copied())
        else {
            return;
        };
        self.record(level & 0x7f);
    }

    fn record(&mut self, level: u8) {
        let w = &mut self.window;
        w.packets += 1;
        if level <= VOICE_LEVEL {
            w.voiced += 1;
            w.loudness += u32::from(VOICE_LEVEL - level);
        }
    }

    /// The window since the last call, and a new one begun.
    pub fn take(&mut self) -> Window {
        std::mem::take(&mut self.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn packet(id: u8, byte: u8) -> Packet {
        let mut p = Packet::default();
        p.header
            .set_extension(id, Bytes::copy_from_slice(&[byte]))
            .unwrap();
        p
    }

    #[test]
    fn counts_voiced_packets_and_their_loudness() {
        let mut levels = AudioLevels::new(Some(3));
        // −30 dBov with the voice bit, −30 without it, silence, −60.
        for byte in [0x80 | 30, 30, 127, 60] {
            levels.observe(&packet(3, byte));
        }
        // Another extension id, and a packet without the extension.
        levels.observe(&packet(4, 10));
        levels.observe(&Packet::default());
        let w = levels.take();
        assert_eq!(
            w,
            Window {
                packets: 4,
                voiced: 2,
                loudness: 40
            }
        );
        assert_eq!(w.activity(), 0.5);
        assert_eq!(w.mean_loudness(), 20.0);
        assert_eq!(levels.take(), Window::default());
        assert_eq!(Window::default().activity(), 0.0);
    }

    #[test]
    fn gathers_nothing_without_a_negotiated_extension() {
        let mut levels = AudioLevels::new(None);
        levels.observe(&packet(3, 10));
        assert_eq!(levels.take().packets, 0);
    }
}
