//! What simulated publishers send: real Opus frames of a speech-like signal,
//! and synthetic VP8 frames with correct payload descriptors and frame
//! headers, so the SFU's keyframe logic sees what a browser would send.
//!
//! Both carry their send time inside the payload, where no SFU looks: SFUs
//! may rebase RTP timestamps (Janus does) and drop header extensions, so
//! that is the one place a latency stamp survives every server alike.

use std::f32::consts::PI;

use bytes::Bytes;

pub const AUDIO_CLOCK: u32 = 48_000;
pub const VIDEO_CLOCK: u32 = 90_000;
/// 20 ms Opus frames.
pub const AUDIO_FRAME_MS: u64 = 20;
const SAMPLES_PER_FRAME: usize = 960;

/// Encodes `seconds` of a speech-like signal into 20 ms Opus frames, once;
/// publishers send them round and round.
///
/// The signal: a voiced source (a pitch that wanders between 100 and 200 Hz,
/// with decaying harmonics) shaped by a syllable-rate envelope with pauses,
/// which keeps the encoder's bitrate and DTX behaviour close to a talker's.
pub fn speech_frames(seconds: usize) -> Result<Vec<Bytes>, opus::Error> {
    let mut encoder =
        opus::Encoder::new(AUDIO_CLOCK, opus::Channels::Mono, opus::Application::Voip)?;
    encoder.set_bitrate(opus::Bitrate::Bits(32_000))?;
    let frames = seconds * 1000 / AUDIO_FRAME_MS as usize;
    let mut out = Vec::with_capacity(frames);
    let mut phase = 0f32;
    let mut pcm = [0f32; SAMPLES_PER_FRAME];
    let mut packet = [0u8; 1500];
    for f in 0..frames {
        for (i, sample) in pcm.iter_mut().enumerate() {
            let t = (f * SAMPLES_PER_FRAME + i) as f32 / AUDIO_CLOCK as f32;
            let pitch = 150.0 + 50.0 * (2.0 * PI * 0.7 * t).sin();
            phase += 2.0 * PI * pitch / AUDIO_CLOCK as f32;
            let voiced: f32 = (1..=8).map(|h| (phase * h as f32).sin() / h as f32).sum();
            // Syllables at ~4 Hz; every third second is mostly a pause.
            let syllable = (2.0 * PI * 4.0 * t).sin().max(0.0);
            let talking = if (t as usize) % 3 == 2 { 0.05 } else { 1.0 };
            *sample = 0.25 * voiced * syllable * talking;
        }
        let n = encoder.encode_float(&pcm, &mut packet)?;
        out.push(Bytes::copy_from_slice(&packet[..n]));
    }
    Ok(out)
}

/// Largest RTP payload we produce (keeps packets under a 1200-byte MTU).
const MAX_PAYLOAD: usize = 1100;

/// One Opus packet re-framed to carry `sent_us` (RFC 6716 §3.2.5): a
/// single-frame packet (code 0) becomes a code 3 packet of one frame with 8
/// bytes of padding holding the send time, which decoders skip. (The RFC
/// asks encoders for zero padding; a load generator's stamp is the one
/// deliberate exception.) Other packets go as they are, unstamped.
pub fn opus_with_send_time(packet: &[u8], sent_us: u64) -> Bytes {
    let Some((&toc, frame)) = packet.split_first() else {
        return Bytes::copy_from_slice(packet);
    };
    if toc & 0x03 != 0 {
        return Bytes::copy_from_slice(packet);
    }
    let mut out = Vec::with_capacity(packet.len() + 11);
    // Code 3; then CBR, padding flag, one frame; then the padding length.
    out.extend_from_slice(&[toc | 0x03, 0x40 | 1, 8]);
    out.extend_from_slice(frame);
    out.extend_from_slice(&sent_us.to_be_bytes());
    Bytes::from(out)
}

/// The send time an [`opus_with_send_time`] packet carries.
pub fn opus_sent_us(payload: &[u8]) -> Option<u64> {
    match payload {
        [toc, count, 8, ..] if toc & 0x03 == 0x03 && *count == 0x41 => sent_us(payload),
        _ => None,
    }
}

/// One synthetic VP8 frame as RTP payloads (RFC 7741): a payload descriptor
/// on each (S bit and partition 0 on the first), the 3-byte frame tag on the
/// first (P bit clear for a keyframe, which also carries the start code and
/// a 640x360 size), and filler up to `size` bytes in all. Each packet ends
/// with the simulcast `layer` it belongs to (1 byte, 0 lowest) and
/// `sent_us` (8 bytes, big-endian), which receivers read back with
/// [`vp8_layer`] and [`sent_us`].
pub fn vp8_frame(
    keyframe: bool,
    size: usize,
    picture_id: u16,
    sent_us: u64,
    layer: u8,
) -> Vec<Bytes> {
    let mut frame = Vec::with_capacity(size.max(16));
    // Frame tag: bit 0 = P (inter frame), bit 4 = show_frame, first
    // partition size in the upper bits (not used by anyone here).
    frame.extend_from_slice(&[if keyframe { 0x10 } else { 0x11 }, 0x02, 0x00]);
    if keyframe {
        frame.extend_from_slice(&[0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01]);
    }
    let mut filler = picture_id as u8;
    while frame.len() < size {
        filler = filler.wrapping_mul(31).wrapping_add(7);
        frame.push(filler);
    }
    let chunk = MAX_PAYLOAD - 4 - 9;
    frame
        .chunks(chunk)
        .enumerate()
        .map(|(i, part)| {
            let mut p = Vec::with_capacity(part.len() + 12);
            // X=1 with a 15-bit picture id, S on the first packet, PID 0.
            p.push(if i == 0 { 0x90 } else { 0x80 });
            p.push(0x80);
            p.extend_from_slice(&(0x8000 | (picture_id & 0x7fff)).to_be_bytes());
            p.extend_from_slice(part);
            p.push(layer);
            p.extend_from_slice(&sent_us.to_be_bytes());
            Bytes::from(p)
        })
        .collect()
}

/// The send time a [`vp8_frame`] packet carries.
pub fn sent_us(payload: &[u8]) -> Option<u64> {
    let tail = payload.len().checked_sub(8)?;
    Some(u64::from_be_bytes(payload[tail..].try_into().ok()?))
}

/// The simulcast layer a [`vp8_frame`] packet belongs to.
pub fn vp8_layer(payload: &[u8]) -> Option<u8> {
    payload.get(payload.len().checked_sub(9)?).copied()
}

/// Frame sizes for a target bitrate: keyframes five times the average
/// inter frame, as encoders roughly do.
pub fn frame_size(bitrate_bps: u32, fps: u32, keyframe: bool) -> usize {
    let average = (bitrate_bps / 8 / fps) as usize;
    if keyframe {
        average * 5
    } else {
        average
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfu::media::keyframe::VideoCodec;

    #[test]
    fn speech_encodes_to_plausible_opus() {
        let frames = speech_frames(3).unwrap();
        assert_eq!(frames.len(), 150);
        let bytes: usize = frames.iter().map(Bytes::len).sum();
        // 32 kbit/s over 3 s is 12 kB; pauses and DTX bring it down.
        assert!((3_000..16_000).contains(&bytes), "{bytes} bytes");
    }

    #[test]
    fn stamped_opus_still_decodes() {
        let frames = speech_frames(1).unwrap();
        let mut decoder = opus::Decoder::new(AUDIO_CLOCK, opus::Channels::Mono).unwrap();
        let mut pcm = [0f32; SAMPLES_PER_FRAME];
        let mut stamped = 0;
        for (i, f) in frames.iter().enumerate() {
            let p = opus_with_send_time(f, 1_000 + i as u64);
            if let Some(t) = opus_sent_us(&p) {
                assert_eq!(t, 1_000 + i as u64);
                stamped += 1;
            }
            let n = decoder.decode_float(&p, &mut pcm, false).unwrap();
            assert_eq!(n, SAMPLES_PER_FRAME, "frame {i} did not decode whole");
        }
        assert_eq!(stamped, frames.len(), "libopus emits single frames");
        // Someone else's packet is not mistaken for a stamped one.
        assert_eq!(opus_sent_us(&[0xfc, 0xff, 0xfe]), None);
    }

    #[test]
    fn the_sfu_recognises_our_keyframes() {
        let key = vp8_frame(true, 5000, 7, 123_456, 2);
        assert!(key.iter().all(|p| sent_us(p) == Some(123_456)));
        assert!(key.iter().all(|p| vp8_layer(p) == Some(2)));
        assert!(key.len() > 1);
        assert!(VideoCodec::Vp8.is_keyframe(&key[0]));
        assert!(
            !VideoCodec::Vp8.is_keyframe(&key[1]),
            "only the first packet starts the frame"
        );
        let inter = vp8_frame(false, 1000, 8, 0, 0);
        assert!(!VideoCodec::Vp8.is_keyframe(&inter[0]));
        assert!(key.iter().all(|p| p.len() <= MAX_PAYLOAD));
    }

    #[test]
    fn frame_sizes_follow_the_bitrate() {
        assert_eq!(frame_size(600_000, 30, false), 2500);
        assert_eq!(frame_size(600_000, 30, true), 12_500);
    }
}
