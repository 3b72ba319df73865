//! Turns retransmissions that arrive on an RTX stream (RFC 4588) back into
//! the packets they carry, before anything reads sequence numbers: the NACK
//! generator then sees the gap filled, and the room core gets the packet
//! as if it had arrived the first time.
//!
//! The engine does this itself only for RTX streams the SDP names by SSRC
//! (`a=ssrc-group:FID`). A simulcast publisher names its layers by rid
//! instead, and its RTX streams only by the `repaired-rtp-stream-id` header
//! extension, which the engine does not read: their packets were dropped,
//! and so was every retransmission of a simulcast camera. Here both are
//! known: SSRC pairs from the stream bindings, rid pairs from the `mid`,
//! `rid` and `repaired-rtp-stream-id` extensions on the first packets.

use std::collections::HashMap;

use rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtp;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// Right after the FEC decoder, before the NACK generator: the place the
/// interceptor registry keeps for what recovers inbound packets.
pub const SLOT: usize = 6_500;

const SDES_MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const SDES_RID: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
const SDES_RRID: &str = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id";
/// Streams one connection may make us remember; a peer sending from more
/// SSRCs than a browser ever does gains nothing.
const MAX_STREAMS: usize = 64;

/// What an SSRC seen so far is.
#[derive(Debug, Clone, Copy)]
enum Stream {
    /// Media, with the payload type its packets carry.
    Media { pt: u8 },
    /// Retransmissions of a media stream.
    Rtx { media: u32 },
}

#[derive(Default)]
pub struct RtxRepair {
    streams: HashMap<u32, Stream>,
    /// Simulcast layers by (mid, rid).
    layers: HashMap<(String, String), u32>,
    /// Negotiated ids of the mid, rid and repaired-rid extensions.
    ext: Option<(u8, u8, u8)>,
    queues: super::Queues,
}

fn text(header: &rtp::header::Header, id: u8) -> Option<String> {
    let value = header.get_extension(id)?;
    let s = std::str::from_utf8(&value).ok()?;
    (!s.is_empty()).then(|| s.to_owned())
}

impl RtxRepair {
    /// Classifies an SSRC by its first packets: an RTX stream names the
    /// layer it repairs (`mid` and `repaired-rtp-stream-id`), a simulcast
    /// layer itself (`mid` and `rid`); anything else is plain media.
    /// Padding tells nothing: browsers send their first bandwidth probes on
    /// an RTX stream without naming it.
    fn learn(&mut self, p: &rtp::Packet) -> Option<Stream> {
        if self.streams.len() >= MAX_STREAMS || p.payload.is_empty() {
            return None;
        }
        let header = &p.header;
        let (mid, rid, rrid) = self.ext.unwrap_or_default();
        let mid = header.extension.then(|| text(header, mid)).flatten();
        let stream = match mid {
            Some(mid) => {
                if let Some(rrid) = text(header, rrid) {
                    // Until the layer it repairs has shown itself, wait.
                    let media = *self.layers.get(&(mid, rrid))?;
                    Stream::Rtx { media }
                } else {
                    if let Some(rid) = text(header, rid) {
                        self.layers.insert((mid, rid), header.ssrc);
                    }
                    Stream::Media {
                        pt: header.payload_type,
                    }
                }
            }
            None => Stream::Media {
                pt: header.payload_type,
            },
        };
        self.streams.insert(header.ssrc, stream);
        Some(stream)
    }

    /// Rewrites an RTX packet into the one it carries; padding (bandwidth
    /// probes, no original sequence number) is left for the engine to drop.
    fn repair(&self, p: &mut rtp::Packet, media: u32) {
        let Some(&Stream::Media { pt }) = self.streams.get(&media) else {
            return;
        };
        if p.payload.len() < 2 {
            return;
        }
        p.header.ssrc = media;
        p.header.payload_type = pt;
        p.header.sequence_number = u16::from_be_bytes([p.payload[0], p.payload[1]]);
        p.payload = p.payload.slice(2..);
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RtxRepair {
    super::pass_on!();

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Error> {
        if let Packet::Rtp(p) = &mut msg.message.packet {
            let stream = match self.streams.get(&p.header.ssrc) {
                Some(&s) => Some(s),
                None => self.learn(p),
            };
            if let Some(Stream::Rtx { media }) = stream {
                self.repair(p, media);
            }
        }
        self.queues.reads.push_back(msg);
        Ok(())
    }
}

impl Interceptor for RtxRepair {
    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        if self.ext.is_none() {
            let id = |uri: &str| {
                info.rtp_header_extensions
                    .iter()
                    .find(|e| e.uri == uri)
                    .and_then(|e| u8::try_from(e.id).ok())
            };
            self.ext = id(SDES_MID)
                .zip(id(SDES_RID))
                .zip(id(SDES_RRID))
                .map(|((m, r), rr)| (m, r, rr));
        }
        if let Some(rtx) = info.ssrc_rtx.filter(|_| info.payload_type_rtx.is_some()) {
            self.streams.insert(
                info.ssrc,
                Stream::Media {
                    pt: info.payload_type,
                },
            );
            self.streams.insert(rtx, Stream::Rtx { media: info.ssrc });
        }
    }

    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.streams.remove(&info.ssrc);
        if let Some(rtx) = info.ssrc_rtx {
            self.streams.remove(&rtx);
        }
        self.layers.retain(|_, &mut ssrc| ssrc != info.ssrc);
    }

    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rtc::interceptor::{AttributedPacket, RTPHeaderExtension};
    use rtc::shared::TransportContext;
    use std::time::Instant;

    const MID: u8 = 1;
    const RID: u8 = 2;
    const RRID: u8 = 3;

    fn repair() -> RtxRepair {
        let mut r = RtxRepair::default();
        let ext = |uri: &str, id| RTPHeaderExtension {
            uri: uri.into(),
            id,
        };
        // A layer bound by rid: no RTX association on its binding.
        r.bind_remote_stream(&StreamInfo {
            ssrc: 10,
            payload_type: 96,
            rtp_header_extensions: vec![
                ext(SDES_MID, MID.into()),
                ext(SDES_RID, RID.into()),
                ext(SDES_RRID, RRID.into()),
            ],
            ..Default::default()
        });
        r
    }

    fn read(r: &mut RtxRepair, header: rtp::header::Header, payload: &[u8]) -> rtp::Packet {
        let p = rtp::Packet {
            header,
            payload: Bytes::copy_from_slice(payload),
        };
        r.handle_read(TaggedPacket {
            now: Instant::now(),
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtp(p)),
        })
        .unwrap();
        match r.poll_read().unwrap().message.packet {
            Packet::Rtp(p) => p,
            _ => panic!("not RTP"),
        }
    }

    fn header(ssrc: u32, pt: u8, seq: u16, ext: &[(u8, &str)]) -> rtp::header::Header {
        let mut h = rtp::header::Header {
            version: 2,
            ssrc,
            payload_type: pt,
            sequence_number: seq,
            ..Default::default()
        };
        for &(id, value) in ext {
            h.set_extension(id, Bytes::from(value.to_owned())).unwrap();
        }
        h
    }

    #[test]
    fn a_simulcast_layers_rtx_is_found_by_its_repaired_rid() {
        let mut r = repair();
        let first = read(
            &mut r,
            header(10, 96, 500, &[(MID, "0"), (RID, "f")]),
            b"media",
        );
        assert_eq!(first.header.ssrc, 10, "media passes untouched");
        // RTX for layer "f": original sequence number 499, then the payload.
        let rtx = read(
            &mut r,
            header(20, 97, 7, &[(MID, "0"), (RRID, "f")]),
            &[0x01, 0xf3, b'o', b'k'],
        );
        assert_eq!(
            (
                rtx.header.ssrc,
                rtx.header.payload_type,
                rtx.header.sequence_number
            ),
            (10, 96, 499)
        );
        assert_eq!(&rtx.payload[..], b"ok");
        // Later RTX packets no longer name the layer.
        let next = read(&mut r, header(20, 97, 8, &[]), &[0x01, 0xf4, b'x']);
        assert_eq!((next.header.ssrc, next.header.sequence_number), (10, 500));
        // Padding (a bandwidth probe) is left alone.
        let probe = read(&mut r, header(20, 97, 9, &[]), b"");
        assert_eq!(probe.header.ssrc, 20);
    }

    #[test]
    fn an_rtx_stream_named_by_ssrc_is_found_by_its_binding() {
        let mut r = RtxRepair::default();
        r.bind_remote_stream(&StreamInfo {
            ssrc: 30,
            ssrc_rtx: Some(31),
            payload_type: 102,
            payload_type_rtx: Some(103),
            ..Default::default()
        });
        let p = read(&mut r, header(31, 103, 1, &[]), &[0, 42, 9]);
        assert_eq!(
            (
                p.header.ssrc,
                p.header.payload_type,
                p.header.sequence_number
            ),
            (30, 102, 42)
        );
        // Unknown streams (no extensions) are media.
        let p = read(&mut r, header(40, 111, 5, &[]), b"audio");
        assert_eq!((p.header.ssrc, p.header.sequence_number), (40, 5));
    }
}
