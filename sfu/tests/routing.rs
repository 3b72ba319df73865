//! The routing core with simulated time and an emulated network: browsers
//! are stood in for by webrtc-rs peers, datagrams move between them and the
//! [`Router`] in memory, and the clock only moves when the test moves it.
//! No sockets, no sleeps; 30 simulated seconds take well under one real one.

mod net;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use net::*;
use rtc::rtcp::payload_feedbacks::full_intra_request::{FirEntry, FullIntraRequest};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use sfu::room::api::{Command, Event, LeaveReason, Quality, Refusal, Role, Source};
use sfu::room::{Input, Transport};

#[test]
fn media_flows_between_three_and_a_late_joiner_starts_on_a_keyframe() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_default())
        .with_test_writer()
        .try_init();
    let mut net = Net::new(Duration::from_secs(8));
    let mut media = Media::new();
    for id in ["alice", "bob", "carol"] {
        net.join(id, "standup", true);
    }
    let everyone = ["alice", "bob", "carol"];
    net.run_for(Duration::from_secs(2), |n| media.send(n, &everyone));

    for b in &net.browsers {
        for other in everyone.iter().filter(|&&o| o != b.id) {
            let video = video_from(b, other);
            assert!(
                video.len() > 20,
                "{} got {} video packets from {other}",
                b.id,
                video.len()
            );
            assert!(
                audio_count(b, other) > 50,
                "{} got too little audio from {other}",
                b.id
            );
            // The decoder's first packet is a keyframe, and sequence numbers
            // have no gap from then on.
            assert_eq!(
                video[0].payload[1] & 1,
                0,
                "first video packet is not a keyframe"
            );
            for w in video.windows(2) {
                assert_eq!(
                    w[1].header.sequence_number,
                    w[0].header.sequence_number.wrapping_add(1)
                );
            }
        }
    }
    let stats = net.router.stats().clone();
    // Each packet goes to two subscribers, except the few sent before a
    // subscriber's connection was up.
    let fanout = 2 * stats.media.rtp_packets_in;
    assert!(stats.media.rtp_packets_out <= fanout, "{stats:?}");
    assert!(stats.media.rtp_packets_out * 10 >= fanout * 8, "{stats:?}");

    // Dave joins after the first keyframes went by: the server asks for a
    // new one and Dave's first video packet from each publisher is one.
    let plis_before = net.browser("alice").plis;
    let joined = net.now;
    net.join("dave", "standup", false);
    let mut first_video: HashMap<&str, Duration> = HashMap::new();
    net.run_for(Duration::from_secs(1), |n| {
        media.send(n, &everyone);
        let dave = n.browsers.iter().find(|b| b.id == "dave").unwrap();
        for p in everyone {
            if !first_video.contains_key(p) && !video_from(dave, p).is_empty() {
                first_video.insert(p, n.now - joined);
            }
        }
    });
    assert!(
        net.browser("alice").plis > plis_before,
        "no keyframe request reached alice"
    );
    for p in everyone {
        let waited = first_video[p];
        assert!(
            waited < Duration::from_millis(500),
            "dave waited {waited:?} for {p}"
        );
        let dave = net.browsers.iter().find(|b| b.id == "dave").unwrap();
        assert_eq!(
            video_from(dave, p)[0].payload[1] & 1,
            0,
            "dave's first frame from {p} is not a keyframe"
        );
    }
}

#[test]
fn sender_reports_carry_the_publishers_lip_sync() {
    let mut net = Net::new(Duration::from_secs(8));
    let mut media = Media::new();
    net.join("alice", "sync", true);
    net.join("bob", "sync", false);
    // Media stamps audio and video by when they are sent; alice's camera
    // takes 60 ms to encode a frame, so her sender reports map each video
    // timestamp to 60 ms before the frame left. (Her NTP clock is her own.)
    let ntp = |ms: u64| (3_900_000_000u64 << 32) + (ms << 32) / 1000;
    let mut ms = 0;
    net.run_for(Duration::from_secs(3), |n| {
        media.send(n, &["alice"]);
        ms += STEP.as_millis() as u64;
        // Every step, so that the reports of alice's engine (its own
        // clock, by send time) are never the latest.
        let now = n.now;
        let b = n.browser("alice");
        for (kind, sender, ssrc) in b.senders.clone() {
            let rtp_time = match kind {
                RtpCodecKind::Audio => ms * 48,
                _ => (ms + 60) * 90,
            } as u32;
            let sr = SenderReport {
                ssrc,
                ntp_time: ntp(ms),
                rtp_time,
                ..Default::default()
            };
            let mut s = b.publisher.rtp_sender(sender).unwrap();
            s.write_rtcp(now, vec![Box::new(sr)]).unwrap();
        }
    });
    let bob = net.browser("bob");
    let ssrc_of = |kind| {
        bob.received["alice"]
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, p)| p.header.ssrc)
            .unwrap()
    };
    let last_report = |ssrc| {
        bob.sender_reports
            .iter()
            .rev()
            .find(|sr| sr.ssrc == ssrc)
            .cloned()
            .unwrap_or_else(|| panic!("no sender report for {ssrc}"))
    };
    let audio = last_report(ssrc_of(RtpCodecKind::Audio));
    let video = last_report(ssrc_of(RtpCodecKind::Video));
    // When bob's reports say the audio and video sent at 2 s were captured
    // (the server forwards their timestamps unchanged here).
    let captured = |sr: &SenderReport, ts: u64, khz: i64| {
        let ticks = i64::from((ts as u32).wrapping_sub(sr.rtp_time) as i32);
        sr.ntp_time as i64 + (ticks << 32) / (khz * 1000)
    };
    let apart = captured(&video, 2000 * 90, 90) - captured(&audio, 2000 * 48, 48);
    let apart_ms = apart as f64 * 1000.0 / f64::from(1u32 << 31) / 2.0;
    assert!(
        (apart_ms + 60.0).abs() < 1.0,
        "video {apart_ms:.1} ms after audio, not 60 ms before"
    );
}

#[test]
fn a_peer_that_goes_silent_is_removed_and_the_others_are_told() {
    let mut net = Net::new(Duration::from_secs(8));
    let mut media = Media::new();
    net.join("alice", "r", true);
    net.join("bob", "r", true);
    net.run_for(Duration::from_secs(1), |n| media.send(n, &["alice", "bob"]));
    assert!(audio_count(&net.browsers[0], "bob") > 10);

    // Bob's network goes away without a word on signalling.
    net.browser("bob").unplugged = true;
    let gone_at = net.now;
    let mut left_after = None;
    net.run_for(Duration::from_secs(12), |n| {
        media.send(n, &["alice"]);
        let told = n.browsers[0].inbox.iter().any(
            |m| matches!(m, Event::ParticipantLeft { participant_id } if participant_id == "bob"),
        );
        if told && left_after.is_none() {
            left_after = Some(n.now - gone_at);
        }
    });
    let left_after = left_after.expect("alice was never told that bob left");
    assert!(left_after <= Duration::from_secs(10), "took {left_after:?}");
    // Not before a browser's consent checks (every ~5 s) could have failed.
    assert!(
        left_after >= Duration::from_secs(5),
        "removed too early: {left_after:?}"
    );
    assert_eq!(net.router.participants(), 1);
    assert_eq!(net.router.stats().failures.timeout, 1);
    // Alice's tracks are untouched.
    assert_eq!(net.router.published_tracks().values().sum::<usize>(), 2);
}

#[test]
fn a_reconnecting_participant_keeps_its_seat_until_its_new_self_takes_it() {
    let mut net = Net::new(Duration::from_secs(8));
    let mut media = Media::new();
    net.join("alice", "r", true);
    net.join("bob", "r", true);
    net.run_for(Duration::from_secs(1), |n| media.send(n, &["alice", "bob"]));
    // Bob's signalling dropped: the shell holds his seat, past the peer
    // timeout.
    net.browser("bob").unplugged = true;
    net.command("bob", Command::Reconnecting);
    net.run_for(Duration::from_secs(12), |n| media.send(n, &["alice"]));
    let told = |b: &Browser, f: &dyn Fn(&Event) -> bool| b.inbox.iter().position(f);
    let alice = &net.browsers[0];
    assert!(told(alice, &|m| matches!(m, Event::ParticipantReconnecting { participant_id } if participant_id == "bob")).is_some());
    let left = |m: &Event| matches!(m, Event::ParticipantLeft { participant_id } if participant_id == "bob");
    assert!(told(alice, &left).is_none(), "a held seat timed out");
    assert_eq!(net.router.participants(), 2);

    net.replaces.insert("bob2".into(), "bob".into());
    net.join("bob2", "r", true);
    net.run_for(Duration::from_secs(2), |n| {
        media.send(n, &["alice", "bob2"])
    });
    let alice = &net.browsers[0];
    let joined = told(
        alice,
        &|m| matches!(m, Event::ParticipantJoined { participant, replaces: Some(old) } if participant.id == "bob2" && old == "bob"),
    );
    let (joined, left) = (
        joined.expect("bob2 announced as bob"),
        told(alice, &left).expect("old bob left"),
    );
    assert!(
        joined < left,
        "the new self first, so that its tile takes the old one's place"
    );
    assert_eq!(net.router.participants(), 2);
    assert!(
        audio_count(&net.browsers[0], "bob2") > 10,
        "media from the new self"
    );
    let seen: Vec<String> = net
        .browser("bob2")
        .inbox
        .iter()
        .find_map(|m| match m {
            Event::Joined { participants, .. } => {
                Some(participants.iter().map(|p| p.id.clone()).collect())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(seen, ["alice"], "not its old self");
}

#[test]
fn someone_alone_with_nothing_negotiated_is_not_timed_out() {
    let mut net = Net::new(Duration::from_secs(8));
    net.join("watcher", "r", false);
    net.run_for(Duration::from_secs(30), |_| {});
    assert_eq!(net.router.participants(), 1);
}

#[test]
fn leaving_renegotiates_the_others() {
    let mut net = Net::new(Duration::from_secs(8));
    let mut media = Media::new();
    net.join("alice", "r", true);
    net.join("bob", "r", true);
    net.join("carol", "r", false);
    net.run_for(Duration::from_millis(500), |n| {
        media.send(n, &["alice", "bob"])
    });
    let offers = |b: &Browser| {
        b.inbox
            .iter()
            .filter(|m| matches!(m, Event::SubscriberOffer { .. }))
            .count()
    };
    let before = offers(net.browser("carol"));
    net.command("bob", Command::Leave);
    net.settle();
    let carol = net.browser("carol");
    assert!(
        offers(carol) > before,
        "carol got no new offer after bob left"
    );
    assert!(carol
        .inbox
        .iter()
        .any(|m| matches!(m, Event::ParticipantLeft { .. })));
    // Media from alice keeps flowing to carol after the renegotiation.
    let count = audio_count(net.browser("carol"), "alice");
    net.run_for(Duration::from_millis(500), |n| media.send(n, &["alice"]));
    assert!(audio_count(net.browser("carol"), "alice") > count + 10);
}

#[test]
fn a_lost_packet_is_retransmitted_from_the_history() {
    let mut net = Net::new(Duration::from_secs(8));
    let mut media = Media::new();
    net.join("alice", "r", true);
    net.join("bob", "r", false);
    net.run_for(Duration::from_secs(1), |n| media.send(n, &["alice"]));
    assert!(!video_from(net.browser("bob"), "alice").is_empty());

    // Lose the next video packet on its way to bob. SRTP leaves the RTP
    // header readable: byte 1 is the payload type (VP8 is 96 in our offer),
    // bytes 2-3 the sequence number.
    let bob = net.browser("bob").sub_addr;
    let lost = std::rc::Rc::new(std::cell::Cell::new(None));
    let record = lost.clone();
    net.loss = Some(Box::new(move |to, data| {
        let video = to == bob && data.len() > 12 && data[0] >> 6 == 2 && data[1] & 0x7f == 96;
        if video && record.get().is_none() {
            record.set(Some(u16::from_be_bytes([data[2], data[3]])));
            return true;
        }
        false
    }));
    net.run_for(Duration::from_secs(1), |n| media.send(n, &["alice"]));
    let lost = lost.get().expect("a video packet was lost");
    let seqs: Vec<u16> = video_from(net.browser("bob"), "alice")
        .iter()
        .map(|p| p.header.sequence_number)
        .collect();
    let copies = seqs.iter().filter(|&&s| s == lost).count();
    assert_eq!(
        copies, 1,
        "packet {lost} arrived {copies} times; bob got {seqs:?}"
    );
    let newest = *seqs.iter().max().unwrap();
    let sent_after = seqs.iter().filter(|&&s| s > lost).count();
    assert!(
        sent_after > 10 && newest > lost,
        "media went on after the loss"
    );
    // What the shell turns into metrics: bob's NACK and its answer, his
    // wait for the first media, and his receiver reports.
    let stats = net.router.stats();
    assert!(stats.nacks_received >= 1 && stats.media.retransmissions >= 1);
    let samples = net.router.take_samples();
    assert_eq!(samples.join_to_media.len(), 1, "only bob receives media");
    assert!(samples.join_to_media[0] < 1.0, "{samples:?}");
    assert!(!samples.loss.is_empty() && samples.loss.len() == samples.jitter.len());
    assert!(net.router.take_samples().loss.is_empty(), "taken once");
}

#[test]
fn a_host_removes_a_participant_of_the_same_room_only() {
    let mut net = Net::new(Duration::from_secs(8));
    net.join("host", "r", false);
    net.join("guest", "r", false);
    net.join("stranger", "other", false);
    net.settle();
    let refused = |b: &Browser| {
        b.inbox.iter().any(|m| {
            matches!(
                m,
                Event::Refused {
                    reason: Refusal::NoSuchParticipant,
                    ..
                }
            )
        })
    };
    let removed = |b: &Browser| {
        b.inbox.iter().any(|m| {
            matches!(
                m,
                Event::Left {
                    reason: LeaveReason::Removed
                }
            )
        })
    };
    net.command(
        "stranger",
        Command::Remove {
            participant_id: "guest".into(),
        },
    );
    net.settle();
    assert_eq!(net.router.participants(), 3);
    assert!(refused(net.browser("stranger")));
    net.command(
        "host",
        Command::Remove {
            participant_id: "guest".into(),
        },
    );
    net.settle();
    assert_eq!(net.router.participants(), 2);
    assert!(removed(net.browser("guest")));
    assert!(net.browser("host").inbox.iter().any(
        |m| matches!(m, Event::ParticipantLeft { participant_id } if participant_id == "guest")
    ));
}

/// The id of the first microphone track `b` was told of.
fn announced_microphone(b: &Browser) -> String {
    b.inbox
        .iter()
        .find_map(|m| match m {
            Event::TrackPublished { track, .. } if track.source == Source::Microphone => {
                Some(track.id.clone())
            }
            _ => None,
        })
        .expect("a microphone was announced")
}

#[test]
fn a_host_mutes_a_microphone_the_server_stops_forwarding_and_may_lock_it() {
    let mut net = Net::new(Duration::from_secs(8));
    net.roles.insert("host".into(), Role::Host);
    net.join("host", "r", false);
    net.join("bob", "r", false);
    net.join("alice", "r", true);
    let mut media = Media::new();
    net.run_for(Duration::from_secs(2), |n| media.send(n, &["alice"]));
    let step = Duration::from_millis(500);
    let mic = announced_microphone(net.browser("host"));
    let mid = mic.rsplit('-').next().unwrap().to_owned();
    let not_allowed = |b: &Browser| {
        b.inbox
            .iter()
            .filter(|m| {
                matches!(
                    m,
                    Event::Refused {
                        reason: Refusal::NotAllowed,
                        ..
                    }
                )
            })
            .count()
    };
    let host_mute = |locked| Command::HostMute {
        participant_id: "alice".into(),
        track_id: mic.clone(),
        locked,
    };
    // Only hosts may.
    net.command("bob", host_mute(false));
    net.settle();
    assert_eq!(not_allowed(net.browser("bob")), 1);
    assert!(audio_count(net.browser("bob"), "alice") > 10);

    net.command("host", host_mute(true));
    net.settle();
    assert!(net.browser("alice").inbox.iter().any(|m| matches!(
        m,
        Event::MutedByHost {
            source: Source::Microphone,
            locked: true,
            ..
        }
    )));
    assert!(net.browser("bob").inbox.iter().any(|m| matches!(
        m,
        Event::TrackMuted { track_id, muted: true, .. } if *track_id == mic
    )));
    // Whatever alice's browser goes on sending, nobody gets it; her camera
    // is untouched.
    let (audio, video) = {
        let bob = net.browser("bob");
        (audio_count(bob, "alice"), video_from(bob, "alice").len())
    };
    net.run_for(step, |n| media.send(n, &["alice"]));
    let bob = net.browser("bob");
    assert_eq!(
        audio_count(bob, "alice"),
        audio,
        "muted audio was forwarded"
    );
    assert!(video_from(bob, "alice").len() > video + 5);
    // Locked: alice may not unmute.
    net.command(
        "alice",
        Command::Mute {
            mid: mid.clone(),
            muted: false,
        },
    );
    net.run_for(step, |n| media.send(n, &["alice"]));
    assert_eq!(not_allowed(net.browser("alice")), 1);
    assert_eq!(audio_count(net.browser("bob"), "alice"), audio);
    // The host lifts the lock; alice unmutes herself and is heard again.
    net.command("host", host_mute(false));
    net.command("alice", Command::Mute { mid, muted: false });
    net.run_for(step, |n| media.send(n, &["alice"]));
    assert!(net.browser("bob").inbox.iter().any(|m| matches!(
        m,
        Event::TrackMuted { track_id, muted: false, .. } if *track_id == mic
    )));
    assert!(audio_count(net.browser("bob"), "alice") > audio + 10);
}

#[test]
fn a_participant_made_host_mid_meeting_moderates_and_the_room_is_told() {
    let mut net = Net::new(Duration::from_secs(8));
    net.roles.insert("watcher".into(), Role::Viewer);
    net.join("bob", "r", false);
    net.join("alice", "r", true);
    net.join("watcher", "r", false);
    let mut media = Media::new();
    net.run_for(Duration::from_secs(2), |n| media.send(n, &["alice"]));
    let mic = announced_microphone(net.browser("bob"));
    let host_mute = Command::HostMute {
        participant_id: "alice".into(),
        track_id: mic,
        locked: false,
    };
    let muted = |b: &Browser| {
        b.inbox
            .iter()
            .any(|m| matches!(m, Event::MutedByHost { .. }))
    };
    net.command("bob", host_mute.clone());
    net.settle();
    assert!(!muted(net.browser("alice")), "a participant muted another");

    net.command("bob", Command::SetRole { role: Role::Host });
    net.settle();
    for id in ["bob", "alice", "watcher"] {
        assert!(
            net.browser(id).inbox.iter().any(|m| matches!(
                m,
                Event::RoleChanged { participant_id, role: Role::Host } if participant_id == "bob"
            )),
            "{id} was not told"
        );
    }
    net.command("bob", host_mute);
    net.settle();
    assert!(muted(net.browser("alice")), "the new host could not mute");

    // A viewer has no publisher to become a host or participant with.
    net.command("watcher", Command::SetRole { role: Role::Host });
    net.settle();
    assert!(net.browser("watcher").inbox.iter().any(|m| matches!(
        m,
        Event::Refused {
            reason: Refusal::NotAllowed,
            ..
        }
    )));
    assert!(!net.browser("bob").inbox.iter().any(|m| matches!(
        m,
        Event::RoleChanged { participant_id, .. } if participant_id == "watcher"
    )));
}

#[test]
fn a_host_lowers_a_raised_hand_in_its_own_room_only() {
    let mut net = Net::new(Duration::from_secs(8));
    net.roles.insert("host".into(), Role::Host);
    net.join("host", "r", false);
    net.join("bob", "r", false);
    net.join("eve", "elsewhere", false);
    net.command("bob", Command::RaiseHand { raised: true });
    net.command("eve", Command::RaiseHand { raised: true });
    net.settle();
    let hand = |b: &Browser, who: &str| {
        b.inbox.iter().rev().find_map(|m| match m {
            Event::HandRaised {
                participant_id,
                raised,
            } if participant_id == who => Some(*raised),
            _ => None,
        })
    };
    assert_eq!(hand(net.browser("host"), "bob"), Some(true));
    assert_eq!(
        hand(net.browser("host"), "eve"),
        None,
        "another room's hand"
    );
    net.command(
        "host",
        Command::LowerHand {
            participant_id: "eve".into(),
        },
    );
    net.command(
        "host",
        Command::LowerHand {
            participant_id: "bob".into(),
        },
    );
    net.settle();
    assert_eq!(hand(net.browser("bob"), "bob"), Some(false));
    assert_eq!(hand(net.browser("eve"), "eve"), Some(true), "still up");
    assert!(net.browser("host").inbox.iter().any(|m| matches!(
        m,
        Event::Refused {
            reason: Refusal::NoSuchParticipant,
            ..
        }
    )));
}

#[test]
fn a_full_room_refuses_the_next_participant() {
    let mut net = Net::new(Duration::from_secs(8));
    for id in ["a", "b", "c", "d", "e"] {
        net.join(id, "r", false);
    }
    net.join("f", "elsewhere", false);
    net.settle();
    assert_eq!(net.router.participants(), 5, "four in r, one elsewhere");
    assert!(net.browser("e").inbox.iter().any(|m| matches!(
        m,
        Event::Left {
            reason: LeaveReason::RoomFull { max: 4 }
        }
    )));
}

#[test]
fn idle_seats_give_way_in_a_full_room_and_connected_ones_never_do() {
    let mut net = Net::new(Duration::from_secs(8));
    let left = |net: &mut Net, id: &str| {
        net.browser(id).inbox.iter().find_map(|m| match m {
            Event::Left { reason } => Some(*reason),
            _ => None,
        })
    };
    // Nobody publishes in "quiet": nothing is negotiated, nothing connects
    // (sockets that joined and do nothing look like this).
    for id in ["a", "b", "c", "d"] {
        net.join(id, "quiet", false);
        net.run_for(Duration::from_secs(1), |_| {});
    }
    net.join("early", "quiet", false);
    assert_eq!(
        left(&mut net, "early"),
        Some(LeaveReason::RoomFull { max: 4 })
    );
    net.run_for(Duration::from_secs(27), |_| {});
    // "a" joined 30 s ago (the default idle_seat) and is the oldest.
    net.join("late", "quiet", false);
    assert_eq!(left(&mut net, "a"), Some(LeaveReason::Idle));
    assert_eq!(left(&mut net, "b"), None);
    assert!(net
        .browser("late")
        .inbox
        .iter()
        .any(|m| matches!(m, Event::Joined { .. })));

    // In "talk" everyone is connected: nobody gives way, however long.
    let mut media = Media::new();
    net.join("p", "talk", true);
    for id in ["q", "r", "s"] {
        net.join(id, "talk", false);
    }
    net.run_for(Duration::from_secs(31), |n| media.send(n, &["p"]));
    net.join("t", "talk", false);
    assert_eq!(left(&mut net, "t"), Some(LeaveReason::RoomFull { max: 4 }));
    for id in ["p", "q", "r", "s"] {
        assert_eq!(left(&mut net, id), None, "{id} keeps its seat");
    }
}

/// "sim" publishes three layers to "viewer" for two seconds.
fn simulcast_meeting() -> (Net, SimulcastMedia) {
    let mut net = Net::new(Duration::from_secs(8));
    let mut media = SimulcastMedia::default();
    net.join_publishing("sim", "r", SIMULCAST_VIDEO);
    net.join("viewer", "r", false);
    net.run_for(Duration::from_secs(2), |n| media.send(n, "sim", &[0, 1, 2]));
    (net, media)
}

#[test]
fn a_simulcast_subscriber_moves_between_layers_on_keyframes_without_gaps() {
    let (mut net, mut media) = simulcast_meeting();
    let all = [0, 1, 2];
    let got = received_layers(net.browser("viewer"), "sim");
    assert!(got.len() > 20, "viewer got {} packets", got.len());
    assert_eq!(got.last().unwrap().0, 2, "not on the top layer: {got:?}");

    // The viewer's tile got small: it asks for the low layer.
    let track_id = published_track(net.browser("viewer"));
    net.command(
        "viewer",
        Command::SetQuality {
            track_id: track_id.clone(),
            quality: Quality::Low,
        },
    );
    net.run_for(Duration::from_secs(1), |n| media.send(n, "sim", &all));
    let got = received_layers(net.browser("viewer"), "sim");
    assert_eq!(got.last().unwrap().0, 0, "not on the low layer: {got:?}");

    // It wants the best again, but the publisher paused the top layer (as
    // browsers do when bandwidth runs short), sending only padding on it
    // now: the middle one.
    net.command(
        "viewer",
        Command::SetQuality {
            track_id,
            quality: Quality::High,
        },
    );
    media.paused = vec![2];
    net.run_for(Duration::from_secs(2), |n| media.send(n, "sim", &all));
    let got = received_layers(net.browser("viewer"), "sim");
    assert_eq!(got.last().unwrap().0, 1, "not on the middle layer: {got:?}");

    // One continuous stream for the decoder: no sequence gap, picture ids
    // one apart, the clock moving forward, and each layer's first packet a
    // keyframe.
    let video = video_from(net.browser("viewer"), "sim");
    for (w, p) in got.windows(2).zip(video.windows(2)) {
        let (a, b) = (w[0], w[1]);
        assert_eq!(b.1, a.1.wrapping_add(1), "sequence gap: {a:?} → {b:?}");
        assert_eq!(b.3, (a.3 + 1) & 0x7fff, "picture id jump: {a:?} → {b:?}");
        let step = b.2.wrapping_sub(a.2);
        assert!(step > 0 && step < 90_000, "clock jump: {a:?} → {b:?}");
        if a.0 != b.0 {
            assert_eq!(p[1].payload[4] & 1, 0, "switched on a non-keyframe");
        }
    }
    let layers_seen: Vec<u8> = got.iter().map(|g| g.0).collect();
    assert!(layers_seen.contains(&2) && layers_seen.contains(&0));
    assert!(net.router.stats().media.layer_switches >= 2);
}

#[test]
fn a_simulcast_track_survives_a_renegotiation() {
    let (mut net, mut media) = simulcast_meeting();
    let all = [0, 1, 2];
    let before = video_from(net.browser("viewer"), "sim").len();
    assert!(before > 20, "viewer got {before} packets");

    // The publisher adds a track (as a screen share does): a new offer for
    // the same connection, long after its layers stopped naming their rid.
    net.publish("sim", &[(RtpCodecKind::Audio, &[""])]);
    net.settle();
    net.run_for(Duration::from_secs(2), |n| media.send(n, "sim", &all));
    let after = video_from(net.browser("viewer"), "sim").len();
    assert!(
        after > before + 40,
        "video stopped after the renegotiation: {before} → {after} packets"
    );
}

#[test]
fn asking_for_a_low_layer_at_once_costs_the_publisher_no_top_layer_keyframe() {
    let (mut net, mut media) = simulcast_meeting();
    let track_id = published_track(net.browser("viewer"));
    let top = net.browser("sim").senders[2].2;
    let top_plis = |n: &mut Net| n.browser("sim").plis_by_ssrc.get(&top).copied();
    let before = top_plis(&mut net);

    // A small tile asks for the low layer before its subscription is even
    // negotiated, as the web client does.
    net.begin_join("late", "r", &[]);
    net.command(
        "late",
        Command::SetQuality {
            track_id,
            quality: Quality::Low,
        },
    );
    net.settle();
    // The top layer's packets come first in each frame.
    net.run_for(Duration::from_secs(1), |n| media.send(n, "sim", &[2, 1, 0]));
    let got = received_layers(net.browser("late"), "sim");
    assert!(got.len() > 10, "late got {} packets", got.len());
    assert!(
        got.iter().all(|g| g.0 == 0),
        "not only the low layer: {got:?}"
    );
    assert_eq!(
        top_plis(&mut net),
        before,
        "a top-layer keyframe was asked for"
    );
}

#[test]
fn a_publisher_may_not_offer_more_than_the_track_limit() {
    let mut net = Net::new(Duration::from_secs(8));
    net.join("viewer", "r", false);
    let too_many = [(RtpCodecKind::Audio, &[""][..]); sfu::room::MAX_TRACKS_PER_PUBLISHER + 1];
    net.join_publishing("greedy", "r", &too_many);
    assert!(net.browser("greedy").inbox.iter().any(|m| matches!(
        m,
        Event::Refused {
            reason: Refusal::BadSdp,
            ..
        }
    )));
    assert_eq!(net.router.published_tracks().values().sum::<usize>(), 0);
    // The limit itself is fine.
    let enough = [(RtpCodecKind::Audio, &[""][..]); sfu::room::MAX_TRACKS_PER_PUBLISHER];
    net.join_publishing("modest", "r", &enough);
    assert!(!net
        .browser("modest")
        .inbox
        .iter()
        .any(|m| matches!(m, Event::Refused { .. } | Event::Left { .. })));
}

/// What arrives where in a test of repair: which way the loss is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// From the server to the subscriber: the subscriber's NACK is
    /// answered by the server.
    Down,
    /// From the publisher to the server: the server's NACK is answered by
    /// the publisher.
    Up,
}

/// The RTP payload type (`pt`) and sequence number of an SRTP datagram,
/// whose header is in the clear.
fn rtp_header(data: &[u8]) -> Option<(u8, u16)> {
    (data.len() > 12 && data[0] >> 6 == 2)
        .then(|| (data[1] & 0x7f, u16::from_be_bytes([data[2], data[3]])))
}

/// A packet early in a 100-packet keyframe is lost on `link`, and so is
/// the first answer to the NACK for it: the second answer comes after the
/// whole keyframe, far beyond a 64-packet replay window, and must still
/// complete it. Resent on the media SSRC, it was refused as a replay.
fn repair_across_a_large_keyframe(link: Link) {
    let mut net = Net::new(Duration::from_secs(8));
    let mut media = Media::new();
    net.join("alice", "r", true);
    net.join("bob", "r", false);
    net.run_for(Duration::from_secs(1), |n| media.send(n, &["alice"]));
    let (watched, vp8, rtx) = match link {
        Link::Down => (net.browser("bob").sub_addr, 96, 97),
        Link::Up => (net.browser("alice").pub_addr, 96, 97),
    };
    let seen = std::rc::Rc::new(std::cell::Cell::new((0u32, 0u32, 0u32)));
    let record = seen.clone();
    let rule: LossRule = Box::new(move |addr, data| {
        let (video, resent, lost) = record.get();
        let Some((pt, _)) = rtp_header(data).filter(|_| addr == watched) else {
            return false;
        };
        if pt == vp8 {
            record.set((video + 1, resent, lost + u32::from(video == 2)));
            return video == 2; // the third packet of the burst
        }
        if pt == rtx {
            record.set((video, resent + 1, lost));
            return resent == 0; // the first answer
        }
        false
    });
    match link {
        Link::Down => net.loss = Some(rule),
        Link::Up => net.uplink_loss = Some(rule),
    }
    media.keyframe_burst(&mut net, "alice", 100);
    net.settle();
    net.run_for(Duration::from_millis(500), |_| {});
    let (_, resent, lost) = seen.get();
    assert_eq!(lost, 1, "the packet was lost ({link:?})");
    assert!(
        resent >= 2,
        "{resent} answers to NACKs went over RTX ({link:?})"
    );
    let got: Vec<u8> = video_from(net.browser("bob"), "alice")
        .iter()
        .filter(|p| p.payload.get(2) == Some(&BURST))
        .map(|p| p.payload[3])
        .collect();
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..100).collect::<Vec<u8>>(),
        "the keyframe is incomplete ({link:?}); bob got {got:?}"
    );
    assert!(net.router.stats().media.duplicates <= 1);
}

#[test]
fn a_packet_lost_early_in_a_large_keyframe_is_repaired_for_the_subscriber() {
    repair_across_a_large_keyframe(Link::Down);
}

#[test]
fn a_packet_lost_early_in_a_large_keyframe_is_repaired_from_the_publisher() {
    repair_across_a_large_keyframe(Link::Up);
}

/// `viewer`'s decoder asks for a keyframe of `publisher`'s video on the
/// receiver it gets it on: a PLI, or a FIR.
fn ask_for_keyframe(net: &mut Net, viewer: &str, publisher: &str, fir: bool) {
    let now = net.now;
    let b = net.browser(viewer);
    let ssrc = video_from(b, publisher).last().unwrap().header.ssrc;
    let receiver = b.video_receivers[publisher];
    let request: Box<dyn rtc::rtcp::Packet> = if fir {
        Box::new(FullIntraRequest {
            sender_ssrc: 1,
            media_ssrc: ssrc,
            fir: vec![FirEntry {
                ssrc,
                sequence_number: 1,
            }],
        })
    } else {
        Box::new(PictureLossIndication {
            sender_ssrc: 1,
            media_ssrc: ssrc,
        })
    };
    b.subscriber
        .rtp_receiver(receiver)
        .unwrap()
        .write_rtcp(now, vec![request])
        .unwrap();
}

#[test]
fn a_subscribers_keyframe_request_reaches_the_publisher() {
    let mut net = Net::new(Duration::from_secs(8));
    let mut media = Media::new();
    net.join("alice", "r", true);
    net.join("bob", "r", false);
    net.run_for(Duration::from_secs(1), |n| media.send(n, &["alice"]));
    for fir in [false, true] {
        let before = net.browser("alice").plis;
        let keyframes = |n: &mut Net| {
            video_from(n.browser("bob"), "alice")
                .iter()
                .filter(|p| p.payload[1] & 1 == 0)
                .count()
        };
        let keyframes_before = keyframes(&mut net);
        ask_for_keyframe(&mut net, "bob", "alice", fir);
        net.settle();
        // Requests to one track are paced (300 ms apart).
        net.run_for(Duration::from_millis(400), |n| media.send(n, &["alice"]));
        assert!(
            net.browser("alice").plis > before,
            "bob's {} did not reach alice",
            if fir { "FIR" } else { "PLI" }
        );
        assert!(
            keyframes(&mut net) > keyframes_before,
            "bob got no keyframe"
        );
    }
}

#[test]
fn a_subscriber_that_cannot_decode_the_publishers_codec_still_gets_the_rest() {
    use rtc::peer_connection::configuration::media_engine::{
        MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS,
    };
    use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters};
    let mut net = Net::new(Duration::from_secs(8));
    let mut media = Media::new();
    net.join("alice", "r", true); // VP8 and Opus
    net.join("bob", "r", false);
    // Carol's browser decodes H.264 and Opus only.
    let mut engine = MediaEngine::default();
    let codec =
        |mime: &str, clock_rate, channels, fmtp: &str, payload_type| RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: mime.to_owned(),
                clock_rate,
                channels,
                sdp_fmtp_line: fmtp.to_owned(),
                rtcp_feedback: vec![],
            },
            payload_type,
        };
    engine
        .register_codec(
            codec(MIME_TYPE_OPUS, 48000, 2, "", 111),
            RtpCodecKind::Audio,
        )
        .unwrap();
    engine
        .register_codec(
            codec(
                MIME_TYPE_H264,
                90000,
                0,
                "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
                102,
            ),
            RtpCodecKind::Video,
        )
        .unwrap();
    let addr = net.next_addr(1);
    let subscriber = sfu::engine::client::new_client_peer_with(net.now, addr, engine).unwrap();
    net.begin_join_with("carol", "r", &[], subscriber);
    net.settle();
    let errors = net.router.stats().engine_errors;
    net.run_for(Duration::from_secs(2), |n| media.send(n, &["alice"]));
    let carol = net.browser("carol");
    assert!(audio_count(carol, "alice") > 30, "carol hears alice");
    assert!(
        video_from(carol, "alice").is_empty(),
        "no VP8 reached carol"
    );
    assert!(
        video_from(net.browser("bob"), "alice").len() > 20,
        "bob sees alice"
    );
    assert_eq!(
        net.router.stats().engine_errors,
        errors,
        "nothing was pushed at carol's engine that it could not take"
    );
    assert_eq!(net.router.participants(), 3);
}

fn offers(b: &Browser) -> usize {
    b.inbox
        .iter()
        .filter(|m| matches!(m, Event::SubscriberOffer { .. }))
        .count()
}

#[test]
fn an_unanswered_offer_is_made_again_and_a_browser_that_answers_none_is_removed() {
    let mut net = Net::new(Duration::from_secs(8));
    let mut media = Media::new();
    net.join("alice", "r", true);
    net.run_for(Duration::from_secs(1), |n| media.send(n, &["alice"]));
    net.begin_join("bob", "r", &[]);
    // Bob's browser loses the first offer.
    net.browser("bob").ignore_offers = 1;
    net.settle();
    assert_eq!(offers(net.browser("bob")), 1);
    let errors = net.router.stats().engine_errors;
    net.run_for(Duration::from_secs(11), |n| media.send(n, &["alice"]));
    // Rolled back and made again; this one is answered and media flows.
    assert_eq!(offers(net.browser("bob")), 2);
    assert_eq!(
        net.router.stats().engine_errors,
        errors,
        "the rollback failed"
    );
    assert!(
        video_from(net.browser("bob"), "alice").len() > 5,
        "no media after the second offer"
    );
    assert!(audio_count(net.browser("bob"), "alice") > 10);

    // Carol's browser answers nothing at all: after two offers, she goes.
    net.begin_join("carol", "r", &[]);
    net.browser("carol").ignore_offers = usize::MAX;
    net.run_for(Duration::from_secs(21), |n| media.send(n, &["alice"]));
    let carol = net.browser("carol");
    assert_eq!(offers(carol), 2);
    assert!(carol.inbox.iter().any(|m| matches!(
        m,
        Event::Left {
            reason: LeaveReason::NoAnswer
        }
    )));
    assert_eq!(net.router.participants(), 2);
}

#[test]
fn a_forged_binding_request_teaches_the_server_no_address() {
    let mut net = Net::new(Duration::from_secs(8));
    net.join("alice", "r", true);
    // Someone who saw the server's ufrag in alice's answer, but not the
    // password.
    let (ufrag, _) = ice_credentials(&last_server_sdp(net.browser("alice"), true));
    let stranger = SocketAddr::from(([10, 0, 0, 66], 7777));
    // Both dropped before any engine saw them: the address was not learned.
    assert!(datagram_is_dropped(
        &mut net,
        stranger,
        &binding_request(&ufrag, "guess")
    ));
    let rtp = [0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
    assert!(datagram_is_dropped(&mut net, stranger, &rtp));
}

/// The server's ICE ufrag and password in a session description.
fn ice_credentials(sdp: &str) -> (String, String) {
    let attr = |name: &str| {
        sdp.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .to_owned()
    };
    (attr("a=ice-ufrag:"), attr("a=ice-pwd:"))
}

/// The last answer (publisher) or offer (subscriber) the server sent `b`.
fn last_server_sdp(b: &Browser, publisher: bool) -> String {
    b.inbox
        .iter()
        .rev()
        .find_map(|m| match m {
            Event::PublisherAnswer { sdp } if publisher => Some(sdp.clone()),
            Event::SubscriberOffer { sdp } if !publisher => Some(sdp.clone()),
            _ => None,
        })
        .unwrap()
}

/// A binding request for `ufrag`, signed with `pwd`.
fn binding_request(ufrag: &str, pwd: &str) -> Vec<u8> {
    use rtc::stun::attributes::ATTR_USERNAME;
    use rtc::stun::integrity::MessageIntegrity;
    use rtc::stun::message::{Message, Setter, BINDING_REQUEST};
    use rtc::stun::textattrs::TextAttribute;
    let provider = rtc::crypto::default_provider().unwrap();
    let mut m = Message::new();
    m.typ = BINDING_REQUEST;
    m.write_header();
    TextAttribute::new(ATTR_USERNAME, format!("{ufrag}:x"))
        .add_to(&mut m)
        .unwrap();
    MessageIntegrity::new_short_term_integrity_with_provider(pwd.into(), provider.crypto())
        .add_to(&mut m)
        .unwrap();
    m.raw
}

/// Whether the server drops `data` from `from`.
fn datagram_is_dropped(net: &mut Net, from: SocketAddr, data: &[u8]) -> bool {
    let dropped = net.router.stats().datagrams_dropped;
    net.router.handle_input(
        net.now,
        Input::Datagram {
            from,
            local: IpAddr::from([10, 0, 0, 1]),
            data,
            transport: Transport::Udp,
        },
    );
    net.router.stats().datagrams_dropped > dropped
}

/// A binding request for `ufrag` signed with `pwd`, from `from`: dropped or not.
fn binding_request_is_dropped(net: &mut Net, from: SocketAddr, ufrag: &str, pwd: &str) -> bool {
    datagram_is_dropped(net, from, &binding_request(ufrag, pwd))
}

#[test]
fn a_browser_that_moves_to_a_new_address_restarts_ice_and_media_flows_again() {
    let mut net = Net::new(Duration::from_secs(8));
    let mut media = Media::new();
    net.join("alice", "r", true);
    net.join("bob", "r", true);
    let both = ["alice", "bob"];
    net.run_for(Duration::from_secs(1), |n| media.send(n, &both));
    let (old_pub, old_sub) = {
        let b = net.browser("bob");
        (
            ice_credentials(&last_server_sdp(b, true)),
            ice_credentials(&last_server_sdp(b, false)),
        )
    };

    // Bob's network changes: both his connections have new addresses, which
    // the server has never seen and which his old checks never came from.
    let (new_pub, new_sub): (SocketAddr, SocketAddr) = (
        "10.0.0.3:6000".parse().unwrap(),
        "10.0.0.3:6001".parse().unwrap(),
    );
    let b = net.browser("bob");
    b.pub_addr = new_pub;
    b.sub_addr = new_sub;
    for (pc, addr) in [(&mut b.publisher, new_pub), (&mut b.subscriber, new_sub)] {
        pc.add_local_candidate(sfu::engine::peer::host_candidate(addr).unwrap())
            .unwrap();
    }
    // Until he restarts ICE, his media from there is dropped (it is no
    // authentic binding request), and nothing reaches him.
    let dropped = net.router.stats().datagrams_dropped;
    let (to_alice, to_bob) = (
        video_from(net.browser("alice"), "bob").len(),
        video_from(net.browser("bob"), "alice").len(),
    );
    net.run_for(Duration::from_millis(500), |n| media.send(n, &both));
    assert!(net.router.stats().datagrams_dropped > dropped + 10);
    assert!(video_from(net.browser("alice"), "bob").len() <= to_alice + 2);
    assert_eq!(video_from(net.browser("bob"), "alice").len(), to_bob);

    // He restarts ICE: a new publisher offer, and a restart of the
    // subscriber connection the server offers.
    net.browser("bob").publisher.restart_ice();
    net.offer_again("bob");
    net.command("bob", Command::RestartSubscriberIce);
    net.settle();
    let b = net.browser("bob");
    let (new_pub_creds, new_sub_creds) = (
        ice_credentials(&last_server_sdp(b, true)),
        ice_credentials(&last_server_sdp(b, false)),
    );
    // The server took new credentials on both (RFC 8445 §9).
    assert_ne!(new_pub_creds.0, old_pub.0);
    assert_ne!(new_pub_creds.1, old_pub.1);
    assert_ne!(new_sub_creds.0, old_sub.0);
    assert_ne!(new_sub_creds.1, old_sub.1);

    let (to_alice, to_bob) = (
        video_from(net.browser("alice"), "bob").len(),
        video_from(net.browser("bob"), "alice").len(),
    );
    net.run_for(Duration::from_secs(1), |n| media.send(n, &both));
    // Media flows both ways again over the new path (25 frames a second),
    // and bob is still bob: nobody left or joined.
    let got_bob = video_from(net.browser("alice"), "bob").len() - to_alice;
    let got_alice = video_from(net.browser("bob"), "alice").len() - to_bob;
    assert!(got_bob > 15, "alice got {got_bob} packets from bob");
    assert!(got_alice > 15, "bob got {got_alice} packets from alice");
    assert_eq!(net.router.participants(), 2);
    for b in &net.browsers {
        assert!(
            !b.inbox
                .iter()
                .any(|m| matches!(m, Event::Left { .. } | Event::ParticipantLeft { .. })),
            "{} saw someone leave",
            b.id
        );
    }

    // A stranger's unsigned check for the new credentials teaches the server
    // nothing; nor do the old credentials, forgotten with the restart.
    let stranger = SocketAddr::from(([10, 0, 0, 66], 7777));
    assert!(binding_request_is_dropped(
        &mut net,
        stranger,
        &new_pub_creds.0,
        "guess"
    ));
    assert!(binding_request_is_dropped(
        &mut net, stranger, &old_pub.0, &old_pub.1
    ));
    assert!(binding_request_is_dropped(
        &mut net, stranger, &old_sub.0, &old_sub.1
    ));
    // The control: a check signed with the new password is taken.
    assert!(!binding_request_is_dropped(
        &mut net,
        stranger,
        &new_sub_creds.0,
        &new_sub_creds.1
    ));
}
