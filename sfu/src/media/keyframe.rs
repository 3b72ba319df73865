//! Recognising keyframes in RTP payloads, and pacing keyframe requests (PLI)
//! towards a publisher.

use std::time::{Duration, Instant};

/// The video codecs whose keyframes we can recognise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    H264,
    /// Anything else: treated as always decodable, so never gated.
    Other,
}

impl VideoCodec {
    pub fn from_mime(mime: &str) -> Self {
        if mime.eq_ignore_ascii_case("video/vp8") {
            VideoCodec::Vp8
        } else if mime.eq_ignore_ascii_case("video/h264") {
            VideoCodec::H264
        } else {
            VideoCodec::Other
        }
    }

    /// Whether this RTP payload starts (or, for H.264, carries) a keyframe.
    pub fn is_keyframe(self, payload: &[u8]) -> bool {
        match self {
            VideoCodec::Vp8 => vp8_is_keyframe(payload),
            VideoCodec::H264 => h264_is_keyframe(payload),
            VideoCodec::Other => true,
        }
    }
}

/// RFC 7741: a keyframe is the start of partition 0 whose VP8 frame header
/// has the P (inverse key frame) bit clear.
fn vp8_is_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let start_of_partition = first & 0x10 != 0;
    let partition_id = first & 0x07;
    if !start_of_partition || partition_id != 0 {
        return false;
    }
    let mut i = 1;
    if first & 0x80 != 0 {
        let Some(&ext) = payload.get(i) else {
            return false;
        };
        i += 1;
        if ext & 0x80 != 0 {
            // PictureID: 7 or 15 bits, the M bit says which.
            let Some(&pid) = payload.get(i) else {
                return false;
            };
            i += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if ext & 0x30 != 0 {
            i += 1; // TID/Y/KEYIDX
        }
    }
    payload.get(i).is_some_and(|b| b & 0x01 == 0)
}

const H264_IDR: u8 = 5;
const H264_SPS: u8 = 7;
const H264_STAP_A: u8 = 24;
const H264_FU_A: u8 = 28;

/// RFC 6184: an IDR slice or SPS, alone, aggregated in STAP-A, or starting a
/// FU-A fragment.
fn h264_is_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1f {
        H264_IDR | H264_SPS => true,
        H264_STAP_A => {
            let mut rest = &payload[1..];
            while rest.len() > 2 {
                let size = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                let Some(nal) = rest.get(2..2 + size) else {
                    return false;
                };
                if nal
                    .first()
                    .is_some_and(|b| matches!(b & 0x1f, H264_IDR | H264_SPS))
                {
                    return true;
                }
                rest = &rest[2 + size..];
            }
            false
        }
        H264_FU_A => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && matches!(fu & 0x1f, H264_IDR | H264_SPS)),
        _ => false,
    }
}

/// Paces keyframe requests to one publisher's track: a new subscriber should
/// get a keyframe quickly, but a burst of subscribers must not make the
/// publisher send a burst of keyframes.
#[derive(Debug, Clone)]
pub struct KeyframeRequester {
    min_interval: Duration,
    last_sent: Option<Instant>,
    pending: bool,
}

impl KeyframeRequester {
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            last_sent: None,
            pending: false,
        }
    }

    /// Someone needs a keyframe. Returns true if a request should go out now;
    /// otherwise one is owed and [`Self::poll`] will say when.
    pub fn request(&mut self, now: Instant) -> bool {
        self.pending = true;
        self.poll(now)
    }

    /// True if an owed request may now be sent (and marks it sent).
    pub fn poll(&mut self, now: Instant) -> bool {
        let due = self
            .last_sent
            .is_none_or(|t| now.saturating_duration_since(t) >= self.min_interval);
        if self.pending && due {
            self.pending = false;
            self.last_sent = Some(now);
            true
        } else {
            false
        }
    }

    /// When an owed request may go out, if one is owed. (`request` sends at
    /// once when nothing was ever sent, so an owed request always has a
    /// `last_sent`.)
    pub fn deadline(&self) -> Option<Instant> {
        self.last_sent
            .filter(|_| self.pending)
            .map(|t| t + self.min_interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframes() {
        // S=1, PID=0, no extension; P bit clear.
        assert!(VideoCodec::Vp8.is_keyframe(&[0x10, 0x00, 0x9d]));
        // P bit set: interframe.
        assert!(!VideoCodec::Vp8.is_keyframe(&[0x10, 0x01]));
        // Not the start of a partition.
        assert!(!VideoCodec::Vp8.is_keyframe(&[0x00, 0x00]));
        // X=1, I=1 with 15-bit picture id, L=1, T=1: header is 5 bytes.
        assert!(VideoCodec::Vp8.is_keyframe(&[0x90, 0xe0, 0x81, 0x23, 0x05, 0x40, 0x00]));
        assert!(!VideoCodec::Vp8.is_keyframe(&[0x90, 0xe0, 0x81, 0x23, 0x05, 0x40, 0x01]));
        // Truncated descriptors are not keyframes and do not panic.
        assert!(!VideoCodec::Vp8.is_keyframe(&[0x90, 0xe0, 0x81]));
        assert!(!VideoCodec::Vp8.is_keyframe(&[]));
    }

    #[test]
    fn h264_keyframes() {
        assert!(VideoCodec::H264.is_keyframe(&[0x65, 0x88])); // IDR
        assert!(VideoCodec::H264.is_keyframe(&[0x67, 0x42])); // SPS
        assert!(!VideoCodec::H264.is_keyframe(&[0x41, 0x9a])); // non-IDR slice
                                                               // STAP-A carrying SPS.
        assert!(VideoCodec::H264.is_keyframe(&[0x78, 0x00, 0x02, 0x67, 0x42]));
        // STAP-A with a lying size.
        assert!(!VideoCodec::H264.is_keyframe(&[0x78, 0x00, 0x09, 0x67]));
        // FU-A start of an IDR, and a middle fragment.
        assert!(VideoCodec::H264.is_keyframe(&[0x7c, 0x85]));
        assert!(!VideoCodec::H264.is_keyframe(&[0x7c, 0x05]));
    }

    #[test]
    fn random_payloads_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        for _ in 0..20_000 {
            let len = rng.random_range(0..24);
            let p: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let _ = VideoCodec::Vp8.is_keyframe(&p);
            let _ = VideoCodec::H264.is_keyframe(&p);
        }
    }

    #[test]
    fn codec_from_mime() {
        assert_eq!(VideoCodec::from_mime("video/VP8"), VideoCodec::Vp8);
        assert_eq!(VideoCodec::from_mime("video/H264"), VideoCodec::H264);
        assert_eq!(VideoCodec::from_mime("video/AV1"), VideoCodec::Other);
    }

    #[test]
    fn requests_are_paced() {
        let t0 = Instant::now();
        let mut r = KeyframeRequester::new(Duration::from_millis(300));
        assert!(r.request(t0));
        assert_eq!(r.deadline(), None);
        // A second subscriber 100 ms later must wait.
        assert!(!r.request(t0 + Duration::from_millis(100)));
        assert_eq!(r.deadline(), Some(t0 + Duration::from_millis(300)));
        assert!(!r.poll(t0 + Duration::from_millis(299)));
        assert!(r.poll(t0 + Duration::from_millis(300)));
        // Nothing owed: nothing sent.
        assert!(!r.poll(t0 + Duration::from_secs(5)));
    }
}
