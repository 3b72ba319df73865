//! The packets one layer of an up-track received lately, by sequence
//! number: what a retransmission to any of its subscribers is rebuilt
//! from, kept once per layer rather than once per subscriber; and how a
//! packet that arrives twice is recognised (a publisher's retransmission of
//! something that got here after all, or the old packets browsers resend
//! over RTX as bandwidth probes), so that no subscriber gets it twice.

use rtc::rtp::Packet;

/// Packets kept per layer: about three seconds of a 1.5 Mbit/s camera
/// layer, more of the smaller ones. Subscribers ask again within a round
/// trip or two; older packets are of no use to a decoder anyway.
pub const CAPACITY: usize = 512;

pub struct PacketBuffer {
    /// Slot `seq % CAPACITY` holds the newest packet with such a number.
    slots: Box<[Option<Packet>]>,
    /// The newest sequence number received.
    newest: Option<u16>,
}

impl Default for PacketBuffer {
    fn default() -> Self {
        Self {
            slots: vec![None; CAPACITY].into_boxed_slice(),
            newest: None,
        }
    }
}

fn slot(seq: u16) -> usize {
    usize::from(seq) % CAPACITY
}

impl PacketBuffer {
    /// Keeps a copy of `packet` (its payload is shared, not copied);
    /// `false` if one with its sequence number is already here.
    pub fn insert(&mut self, packet: &Packet) -> bool {
        let seq = packet.header.sequence_number;
        let slot = &mut self.slots[slot(seq)];
        if slot
            .as_ref()
            .is_some_and(|p| p.header.sequence_number == seq)
        {
            return false;
        }
        *slot = Some(packet.clone());
        if self
            .newest
            .is_none_or(|n| n != seq && seq.wrapping_sub(n) < 0x8000)
        {
            self.newest = Some(seq);
        }
        true
    }

    /// The newest sequence number received.
    pub fn newest(&self) -> Option<u16> {
        self.newest
    }

    /// The packets kept that came after `seq`, in order: those that
    /// overtook it on the way here.
    pub fn after(&self, seq: u16) -> impl Iterator<Item = &Packet> {
        let ahead = self
            .newest
            .map(|n| n.wrapping_sub(seq))
            .filter(|&d| usize::from(d) < CAPACITY)
            .unwrap_or(0);
        (1..=ahead).filter_map(move |d| self.get(seq.wrapping_add(d)))
    }

    /// The packet with sequence number `seq`, if it is still here.
    pub fn get(&self, seq: u16) -> Option<&Packet> {
        self.slots[slot(seq)]
            .as_ref()
            .filter(|p| p.header.sequence_number == seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u16) -> Packet {
        let mut p = Packet::default();
        p.header.sequence_number = seq;
        p.payload = bytes::Bytes::from(vec![seq as u8; 3]);
        p
    }

    #[test]
    fn keeps_recent_packets_and_spots_duplicates() {
        let mut b = PacketBuffer::default();
        for seq in 65000..65535u16 {
            assert!(b.insert(&packet(seq)));
        }
        for seq in 0..100u16 {
            assert!(b.insert(&packet(seq)), "after the wrap");
        }
        assert!(!b.insert(&packet(65534)), "a duplicate");
        assert!(!b.insert(&packet(5)), "a duplicate");
        assert_eq!(b.get(99).unwrap().payload[0], 99);
        // Pushed out by newer packets with the same slot.
        let old = 99u16.wrapping_sub(CAPACITY as u16);
        assert!(b.get(old).is_none());
        assert!(b.get(100).is_none(), "never arrived");
        assert_eq!(b.newest(), Some(99));
    }

    #[test]
    fn lists_what_overtook_a_packet() {
        let mut b = PacketBuffer::default();
        for seq in [65534, 1, 3, 65535] {
            b.insert(&packet(seq));
        }
        let after = |b: &PacketBuffer, seq| {
            b.after(seq)
                .map(|p| p.header.sequence_number)
                .collect::<Vec<_>>()
        };
        assert_eq!(after(&b, 65533), [65534, 65535, 1, 3]);
        assert_eq!(after(&b, 0), [1, 3]);
        assert_eq!(after(&b, 3), [] as [u16; 0]);
        assert_eq!(after(&b, 7), [] as [u16; 0], "after the newest");
    }
}
