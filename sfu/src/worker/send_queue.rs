//! What waits for the media socket. Bounded, in two classes: control (STUN,
//! DTLS, RTCP) goes out first and is dropped last; media (RTP) is dropped
//! oldest first when the socket cannot keep up, since a late video packet
//! is worth less than the next one. Nothing here waits: when the socket
//! takes no more, the rest stays queued until the worker sees it writable,
//! and every room on the worker goes on meanwhile.

use std::collections::VecDeque;
use std::io;

use super::udp::Datagram;

/// Media datagrams kept while the socket is full: a few megabytes, some
/// tens of milliseconds of a busy worker's output.
pub const MAX_MEDIA: usize = 4096;
/// Control datagrams kept: far more than connections ever have in flight.
pub const MAX_CONTROL: usize = 1024;

/// Datagrams given up on, by class.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    pub media: u64,
    pub control: u64,
    /// The kernel refused them (an unreachable peer, say).
    pub refused: u64,
}

/// Datagrams the socket took, and their bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub datagrams: u64,
    pub bytes: u64,
}

#[derive(Default)]
pub struct SendQueue {
    control: VecDeque<Datagram>,
    media: VecDeque<Datagram>,
    pub dropped: Dropped,
    pub sent: Sent,
}

/// RTP, as opposed to STUN, DTLS and RTCP (RFC 7983 §7: RTP and RTCP start
/// with 128..=191; RFC 5761 §4: RTCP's packet types put 192..=223 in the
/// second byte).
fn is_media(data: &[u8]) -> bool {
    matches!(data.first(), Some(128..=191)) && !matches!(data.get(1), Some(192..=223))
}

impl SendQueue {
    pub fn push(&mut self, d: Datagram) {
        let (queue, max, dropped) = if is_media(&d.data) {
            (&mut self.media, MAX_MEDIA, &mut self.dropped.media)
        } else {
            (&mut self.control, MAX_CONTROL, &mut self.dropped.control)
        };
        if queue.len() >= max {
            queue.pop_front();
            *dropped += 1;
        }
        queue.push_back(d);
    }

    pub fn len(&self) -> usize {
        self.control.len() + self.media.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sends what the socket takes now, control first. `send` sends some of
    /// a run of datagrams and says how many went; `WouldBlock` when none
    /// can go now, which leaves the rest queued.
    pub fn flush(
        &mut self,
        mut send: impl FnMut(&[Datagram]) -> io::Result<usize>,
    ) -> io::Result<()> {
        for queue in [&mut self.control, &mut self.media] {
            while !queue.is_empty() {
                // One run, so that a batch is never cut short where the
                // ring wraps (a system call more per flush).
                match send(queue.make_contiguous()) {
                    Ok(n) => {
                        for d in queue.drain(..n.min(queue.len())) {
                            self.sent.datagrams += 1;
                            self.sent.bytes += d.data.len() as u64;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(e),
                    Err(_) => {
                        // The first one cannot be delivered: drop it and go
                        // on with the rest.
                        queue.pop_front();
                        self.dropped.refused += 1;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    fn datagram(first: &[u8]) -> Datagram {
        Datagram {
            from: std::net::Ipv4Addr::UNSPECIFIED,
            to: "10.0.0.2:5000".parse().unwrap(),
            data: BytesMut::from(first),
        }
    }

    const STUN: &[u8] = &[0x00, 0x01];
    const RTCP: &[u8] = &[0x80, 200];

    fn rtp(n: u8) -> Datagram {
        datagram(&[0x80, 96, n])
    }

    #[test]
    fn a_socket_that_takes_nothing_costs_bounded_memory_and_keeps_control() {
        let mut q = SendQueue::default();
        q.push(datagram(STUN));
        for i in 0..10 * MAX_MEDIA {
            q.push(rtp(i as u8));
        }
        q.push(datagram(RTCP));
        let full = |_: &[Datagram]| Err(io::ErrorKind::WouldBlock.into());
        assert!(q.flush(full).is_err());
        assert_eq!(q.len(), MAX_MEDIA + 2);
        assert_eq!(q.dropped.media, 9 * MAX_MEDIA as u64);
        assert_eq!(q.dropped.control, 0);
        // When the socket takes again, control goes first, then the newest
        // media in order.
        let mut sent = Vec::new();
        q.flush(|d| {
            let n = d.len().min(32);
            sent.extend(d[..n].iter().map(|d| d.data.to_vec()));
            Ok(n)
        })
        .unwrap();
        assert!(q.is_empty());
        assert_eq!(sent[0], STUN);
        assert_eq!(sent[1], RTCP);
        assert_eq!(sent[2], rtp((9 * MAX_MEDIA) as u8).data.to_vec());
        assert_eq!(sent.len(), MAX_MEDIA + 2);
        assert_eq!(q.sent.datagrams, sent.len() as u64);
        let bytes: usize = sent.iter().map(Vec::len).sum();
        assert_eq!(q.sent.bytes, bytes as u64);
    }

    #[test]
    fn an_undeliverable_datagram_does_not_hold_up_the_rest() {
        let mut q = SendQueue::default();
        for i in 0..3 {
            q.push(rtp(i));
        }
        let mut calls = 0;
        q.flush(|d| {
            calls += 1;
            if calls == 1 {
                Err(io::ErrorKind::ConnectionRefused.into())
            } else {
                Ok(d.len())
            }
        })
        .unwrap();
        assert!(q.is_empty());
        assert_eq!(q.dropped.refused, 1);
    }

    #[test]
    fn control_is_bounded_too() {
        let mut q = SendQueue::default();
        for _ in 0..MAX_CONTROL + 5 {
            q.push(datagram(STUN));
        }
        assert_eq!(q.len(), MAX_CONTROL);
        assert_eq!(q.dropped.control, 5);
    }
}
