//! A stream's RTP clock against the wall clock, as its publisher's sender
//! reports state it (RFC 3550 §6.4.1): the publisher knows when each frame
//! was captured, we only know when its packets arrived. Forwarded streams'
//! sender reports are derived from these (lip sync: a subscriber aligns a
//! publisher's audio and video by them), and so is the timestamp a
//! down-track continues with when it moves to another simulcast layer
//! (each layer has its own RTP timestamp base, but one capture clock).
//!
//! NTP times here are in our wall clock: the publisher's, moved by one
//! offset per publisher (see `room/sender_reports.rs`), so that all its
//! streams keep their relation to each other exactly.

/// RTP timestamp `rtp` was NTP time `ntp` (64-bit, 32.32 fixed point).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpClock {
    pub rtp: u32,
    pub ntp: u64,
}

impl RtpClock {
    /// The stream's RTP timestamp at NTP time `ntp`.
    pub fn rtp_at(self, ntp: u64, clock_rate: u32) -> u32 {
        let since = ntp.wrapping_sub(self.ntp) as i64;
        // Rounded to the nearest tick.
        let ticks = (i128::from(since) * i128::from(clock_rate) + (1 << 31)) >> 32;
        self.rtp.wrapping_add(ticks as u32)
    }

    /// When (NTP) this stream's timestamp `ts` was.
    pub fn ntp_at(self, ts: u32, clock_rate: u32) -> u64 {
        let ticks = i128::from(ts.wrapping_sub(self.rtp) as i32);
        let since = (ticks << 32) / i128::from(clock_rate.max(1));
        self.ntp.wrapping_add(since as u64)
    }

    /// This stream's timestamp `ts` as a timestamp of stream `other`: the
    /// same instant on its clock.
    pub fn translate(self, ts: u32, other: RtpClock, clock_rate: u32) -> u32 {
        other.rtp_at(self.ntp_at(ts, clock_rate), clock_rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1 << 32;

    #[test]
    fn timestamps_and_wall_clock_convert_both_ways() {
        let c = RtpClock {
            rtp: u32::MAX - 45_000,
            ntp: 1000 * SECOND,
        };
        // Across the timestamp's wrap, forwards and backwards.
        assert_eq!(c.rtp_at(1001 * SECOND, 90_000), 44_999);
        assert_eq!(
            c.rtp_at(999 * SECOND + SECOND / 2, 90_000),
            u32::MAX - 90_000
        );
        assert_eq!(c.ntp_at(44_999, 90_000), 1001 * SECOND);
        assert_eq!(
            c.ntp_at(u32::MAX - 90_000, 90_000),
            999 * SECOND + SECOND / 2
        );
    }

    #[test]
    fn another_layers_timestamp_for_the_same_instant() {
        // Two layers of one camera: their own bases, one capture clock.
        let low = RtpClock {
            rtp: 1_000,
            ntp: 50 * SECOND,
        };
        let high = RtpClock {
            rtp: 7_000_000,
            ntp: 50 * SECOND + SECOND / 10,
        };
        // High's frame 0.2 s after its report is low's 0.3 s after its own.
        assert_eq!(high.translate(7_018_000, low, 90_000), 1_000 + 27_000);
    }
}
