//! What the fuzz targets do with their input, shared by cargo-fuzz and by
//! the smoke test that runs every target over its seeds in `cargo test`
//! (`sfu/tests/fuzz_smoke.rs`). Two feed a room core with two
//! participants, as the server's shell would: protocol v1 messages through
//! the adapter, or datagrams from the network. The third gives the code
//! that reads and rewrites RTP payloads (keyframe detection, the VP8
//! descriptor and its rewriting across simulcast switches) payloads as a
//! publisher could send them once SRTP has let them in, which encrypted
//! datagrams seldom reach. None may panic, whatever comes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sfu::media::keyframe::VideoCodec;
use sfu::media::vp8::Vp8Munger;
use sfu::room::api::{Command, Event, Role};
use sfu::room::{Input, Output, Router, RouterConfig, Transport};
use sfu::signalling::v1::{adapter, ClientMessage};

/// Most messages or datagrams one input is cut into.
const MAX_PIECES: usize = 64;

fn router(now: Instant) -> Router {
    let mut r = Router::new(RouterConfig {
        candidates: vec![SocketAddr::from(([10, 0, 0, 1], 5000))],
        tcp_candidates: vec![SocketAddr::from(([10, 0, 0, 1], 5001))],
        peer_timeout: Duration::from_secs(8),
        keyframe_interval: Duration::from_millis(300),
        bandwidth_estimation: false,
        dynacast: true,
        seed: 1,
        srtp_profiles: sfu::shell::config::Config::default().srtp_profiles,
        max_participants: 4,
        idle_seat: Duration::from_secs(30),
        wallclock: rtc::shared::time::SystemInstant::now(now),
    });
    for id in ["a", "b"] {
        let join = Command::Join {
            room: "r".into(),
            name: id.into(),
            role: Role::Host,
            guest: false,
            replaces: None,
        };
        command(&mut r, now, id, join);
    }
    r
}

fn command(r: &mut Router, now: Instant, participant_id: &str, command: Command) {
    r.handle_input(
        now,
        Input::Command {
            participant_id: participant_id.into(),
            command,
        },
    );
    drain(r);
}

/// Everything the core says, turned into v1 messages as the session would.
fn drain(r: &mut Router) {
    while let Some(out) = r.poll_output() {
        if let Output::Event { event, .. } = out {
            if let Some(m) = adapter::message(event) {
                serde_json::to_string(&m).expect("server messages serialize");
            }
        }
    }
}

/// Each line is a v1 message from participant `a` (what does not parse is
/// skipped, as the session answers it with an error); then time passes.
pub fn signalling(data: &[u8]) {
    let start = Instant::now();
    let mut r = router(start);
    let mut now = start;
    for line in data.split(|&b| b == b'\n').take(MAX_PIECES) {
        now += Duration::from_millis(10);
        let Ok(msg) = serde_json::from_slice::<ClientMessage>(line) else {
            continue;
        };
        if let Some(c) = adapter::command(msg) {
            command(&mut r, now, "a", c);
        }
    }
    for later in [1, 11, 40] {
        r.handle_input(start + Duration::from_secs(later), Input::Timeout);
        drain(&mut r);
    }
}

/// A real browser's publisher offer (`seeds/signalling/ann`, captured from
/// a meeting page), which the datagram target negotiates first.
const BROWSER: &str = include_str!("../seeds/signalling/ann");

/// RFC 4571 frames (a 16-bit length, then the datagram); the first byte
/// of each says where it comes from: one of four addresses, over UDP or
/// TCP. Address 0 over UDP has sent an authentic binding request for `a`'s
/// publisher connection first, so its datagrams reach the media engine
/// (DTLS, SRTP, RTCP, STUN); the others' must pass the first check.
pub fn datagrams(mut data: &[u8]) {
    let mut now = Instant::now();
    let mut r = router(now);
    let offer = BROWSER
        .lines()
        .filter_map(|l| serde_json::from_str::<ClientMessage>(l).ok())
        .find(|m| matches!(m, ClientMessage::PublisherOffer { .. }))
        .expect("the seed has a publisher offer");
    let publish = adapter::command(offer).expect("a core command");
    r.handle_input(
        now,
        Input::Command {
            participant_id: "a".into(),
            command: publish,
        },
    );
    let mut answer = None;
    while let Some(out) = r.poll_output() {
        if let Output::Event {
            event: Event::PublisherAnswer { sdp },
            ..
        } = out
        {
            answer = Some(sdp);
        }
    }
    let answer = answer.expect("the router answers a browser's offer");
    let attr = |name: &str| {
        answer
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .expect("ICE credentials in the answer")
            .trim()
            .to_owned()
    };
    let (ufrag, pwd) = (attr("a=ice-ufrag:"), attr("a=ice-pwd:"));
    r.handle_input(
        now,
        Input::Datagram {
            from: source(0),
            local: [10, 0, 0, 1].into(),
            data: &binding_request(&format!("{ufrag}:browser"), &pwd),
            transport: Transport::Udp,
        },
    );
    drain(&mut r);
    // Or the fuzzer would only ever meet the first check.
    assert_eq!(r.stats().datagrams_dropped, 0, "address 0 is known now");
    for _ in 0..MAX_PIECES {
        let [from, hi, lo, rest @ ..] = data else {
            break;
        };
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len());
        let (datagram, tail) = rest.split_at(len);
        data = tail;
        let transport = if from & 0x80 == 0 {
            Transport::Udp
        } else {
            Transport::Tcp
        };
        now += Duration::from_millis(1);
        r.handle_input(
            now,
            Input::Datagram {
                from: source(from & 3),
                local: [10, 0, 0, 1].into(),
                data: datagram,
                transport,
            },
        );
        drain(&mut r);
    }
}

/// RTP payloads, each a length (two bytes) and its bytes, the first byte
/// saying what the forwarding path does with it: a keyframe check for VP8
/// or H.264, a simulcast switch onto it, then the rewrite every forwarded
/// VP8 packet gets. A rewrite keeps the payload's length.
pub fn payloads(mut data: &[u8]) {
    let mut munger = Vp8Munger::default();
    for _ in 0..MAX_PIECES {
        let [how, hi, lo, rest @ ..] = data else {
            break;
        };
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len());
        let (payload, tail) = rest.split_at(len);
        data = tail;
        let codec = if how & 1 == 0 {
            VideoCodec::Vp8
        } else {
            VideoCodec::H264
        };
        let keyframe = codec.is_keyframe(payload);
        if how & 2 != 0 && (keyframe || how & 4 != 0) {
            munger.switch(payload);
        }
        if let Some(out) = munger.track(payload).apply(payload) {
            assert_eq!(out.len(), payload.len(), "a rewrite changed the length");
        }
    }
}

fn source(n: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 2], 6000 + u16::from(n)))
}

/// An authentic binding request, as a browser's ICE agent sends it.
fn binding_request(username: &str, pwd: &str) -> Vec<u8> {
    use rtc::stun::attributes::ATTR_USERNAME;
    use rtc::stun::fingerprint::FINGERPRINT;
    use rtc::stun::integrity::MessageIntegrity;
    use rtc::stun::message::{Message, Setter, TransactionId, BINDING_REQUEST};
    use rtc::stun::textattrs::TextAttribute;

    let provider = rtc::crypto::default_provider().expect("a crypto provider");
    let mut m = Message::new();
    m.typ = BINDING_REQUEST;
    m.transaction_id = TransactionId([7; 12]);
    m.write_header();
    TextAttribute::new(ATTR_USERNAME, username.into())
        .add_to(&mut m)
        .expect("a username fits");
    MessageIntegrity::new_short_term_integrity_with_provider(pwd.to_owned(), provider.crypto())
        .add_to(&mut m)
        .expect("integrity fits");
    FINGERPRINT.add_to(&mut m).expect("a fingerprint fits");
    m.raw
}
