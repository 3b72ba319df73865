//! The webrtc-rs `rtc` engine as this SFU uses it: peer connections built
//! for an ICE-lite server (`peer.rs`) and browser-like ones for tests and
//! the load generator (`client.rs`), and the interceptors we add to the
//! engine's packet path: retransmissions on RTX streams turned back into
//! the packets they carry (`rtx.rs`), our NACK generator (`nack.rs`) and
//! the relay of subscribers' feedback to the room core (`feedback.rs`).

pub mod client;
pub mod feedback;
pub mod nack;
pub mod peer;
pub mod rtx;

pub use peer::SrtpProfile;

use std::collections::VecDeque;

use rtc::interceptor::TaggedPacket;

/// What passes through one of our interceptors: packets on their way to the
/// application (reads) and to the wire (writes, ours among them).
#[derive(Default)]
pub(crate) struct Queues {
    pub reads: VecDeque<TaggedPacket>,
    pub writes: VecDeque<TaggedPacket>,
}

/// The parts of `sansio::Protocol` our interceptors share: its types, and
/// passing packets on from `self.queues`.
macro_rules! pass_on {
    () => {
        type Rout = rtc::interceptor::TaggedPacket;
        type Wout = rtc::interceptor::TaggedPacket;
        type Eout = ();
        type Error = rtc::shared::error::Error;
        type Time = std::time::Instant;

        fn poll_read(&mut self) -> Option<rtc::interceptor::TaggedPacket> {
            self.queues.reads.pop_front()
        }

        fn handle_write(
            &mut self,
            msg: rtc::interceptor::TaggedPacket,
        ) -> Result<(), rtc::shared::error::Error> {
            self.queues.writes.push_back(msg);
            Ok(())
        }

        fn poll_write(&mut self) -> Option<rtc::interceptor::TaggedPacket> {
            self.queues.writes.pop_front()
        }
    };
}
pub(crate) use pass_on;
