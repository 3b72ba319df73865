//! Each subscriber's share of its own link: its connection's bandwidth
//! estimate (`media/estimator.rs`, from the browser's transport-wide
//! feedback), the stream allocator that fits what it receives to it
//! (`media/allocator.rs`), applied to its down-tracks, and the probes that
//! let the estimate find a larger link. A subscriber on a weak link gets
//! lower layers, or a paused picture, and nobody else is touched.

use std::time::{Duration, Instant};

use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use rtc::rtp_transceiver::RTCRtpSenderId;

use super::api::{Event, Kind, Source};
use super::connection::ConnKey;
use super::participant::ParticipantKey;
use super::{Fanout, Router};
use crate::engine::peer::TRANSPORT_CC;
use crate::media::allocator::{Demand, Grant, Priority};
use crate::media::down_track::Route;
use crate::media::estimator::ProbeOutcome;
use crate::media::link::PACKET_OVERHEAD;

/// How often a probe tops up what its connection is sent.
const PROBE_TICK: Duration = Duration::from_millis(10);
/// Most probe packets per connection per tick (about 10 Mbit/s).
const PROBE_BURST: usize = 10;
/// How often the pacers are polled while one holds packets back.
pub(super) const PACE_TICK: Duration = Duration::from_millis(5);

impl Router {
    /// After a subscriber's answer: whether it took transport-wide
    /// sequence numbers, and under which id.
    pub(super) fn learn_transport_cc(&mut self, conn: ConnKey) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let transceivers: Vec<_> = c.pc.get_transceivers().collect();
        let id = transceivers.into_iter().find_map(|t| {
            let mut sender = c.pc.rtp_sender(RTCRtpSenderId::from(t))?;
            let params = sender.get_parameters();
            params
                .rtp_parameters
                .header_extensions
                .iter()
                .find(|e| e.uri == TRANSPORT_CC)
                .and_then(|e| u8::try_from(e.id).ok())
        });
        if let Some(b) = c.bandwidth.as_mut() {
            b.estimator.negotiated(id);
        }
    }

    /// A subscriber's report of what arrived when.
    pub(super) fn transport_feedback(
        &mut self,
        now: Instant,
        conn: ConnKey,
        feedback: &TransportLayerCc,
    ) {
        let Some(b) = self.conns.get_mut(conn).and_then(|c| c.bandwidth.as_mut()) else {
            return;
        };
        if let Some(outcome) = b.estimator.on_feedback(now, feedback) {
            self.probed(now, conn, outcome);
        }
    }

    fn probed(&mut self, now: Instant, conn: ConnKey, outcome: ProbeOutcome) {
        let Some(b) = self.conns.get_mut(conn).and_then(|c| c.bandwidth.as_mut()) else {
            return;
        };
        let carried = matches!(outcome, ProbeOutcome::Carried(_));
        tracing::debug!(conn, ?outcome, estimate = b.estimator.estimate(), "probe");
        self.stats.probes += 1;
        self.stats.probes_carried += u64::from(carried);
        b.allocator.probed(now, outcome);
    }

    /// Every subscriber's allocation, anew (each housekeeping tick).
    pub(super) fn allocate_bandwidth(&mut self, now: Instant) {
        let subscribers: Vec<ParticipantKey> = self.participants.iter().map(|(k, _)| k).collect();
        for s in subscribers {
            self.allocate(now, s);
        }
    }

    fn allocate(&mut self, now: Instant, s: ParticipantKey) {
        let conn = self.participants[s].subscriber;
        let Some(b) = self.conns.get_mut(conn).and_then(|c| c.bandwidth.as_mut()) else {
            return;
        };
        if let Some(outcome) = b.estimator.tick(now) {
            self.probed(now, conn, outcome);
        }
        let Some(b) = self.conns.get(conn).and_then(|c| c.bandwidth.as_ref()) else {
            return;
        };
        if !b.estimator.active() {
            return;
        }
        let estimate = b.estimator.estimate();
        let room = &self.participants[s].room;
        let speaker = self.speakers.get(room).and_then(|r| r.active());
        let mut audio = 0.0;
        let mut tracks = Vec::new();
        let mut demands = Vec::new();
        let mut current = Vec::new();
        // A probe copies what video went out: until some did, none.
        let mut may_probe = false;
        for (publisher, track_id) in self.received_tracks(s) {
            let Some(up) = self.up_track_mut(publisher, &track_id) else {
                continue;
            };
            let steps = up.steps(now);
            if up.kind == Kind::Audio {
                audio += steps.iter().map(|s| s.bps).sum::<f64>();
                continue;
            }
            let priority = match up.source {
                Source::ScreenShare | Source::ScreenShareAudio => Priority::ScreenShare,
                _ if Some(publisher) == speaker => Priority::Speaker,
                _ => Priority::Camera,
            };
            let Some(d) = up.down_mut(s).filter(|d| d.is_negotiated()) else {
                continue;
            };
            may_probe |= d.probe_ready();
            demands.push(Demand {
                priority,
                ceiling: d.quality,
                steps,
            });
            current.push(d.grant());
            tracks.push((publisher, track_id));
        }
        let Some(b) = self.conns.get_mut(conn).and_then(|c| c.bandwidth.as_mut()) else {
            return;
        };
        let decision = b
            .allocator
            .decide(now, estimate, audio, &demands, &current, may_probe);
        if decision.grants != current {
            tracing::debug!(conn, estimate, ?current, grants = ?decision.grants, ?demands, "allocation");
        }
        if let Some(target) = decision.probe {
            b.estimator.start_probe(now, target);
            b.sent_bytes = 0;
            self.next_probe_tick.get_or_insert(now + PROBE_TICK);
        }
        for ((publisher, track_id), grant) in tracks.into_iter().zip(decision.grants) {
            self.grant(now, s, publisher, &track_id, grant);
        }
    }

    /// Applies the allocator's `grant` to `subscriber`'s down-track of a
    /// publisher's track.
    fn grant(
        &mut self,
        now: Instant,
        subscriber: ParticipantKey,
        publisher: ParticipantKey,
        track_id: &str,
        grant: Grant,
    ) {
        let Some(q) = self.participants.get_mut(publisher) else {
            return;
        };
        let (publisher_id, conn) = (q.id.clone(), q.publisher);
        let Some(up) = q.up_track_mut(track_id) else {
            return;
        };
        let Some(d) = up.down_mut(subscriber) else {
            return;
        };
        if d.grant() == grant {
            return;
        }
        let toggled = d.set_grant(grant);
        let receiver = up.receiver;
        let keyframes = up.reselect(now);
        if toggled && grant != Grant::Paused {
            if let Some(d) = up.down_mut(subscriber) {
                d.resume_on_pending();
            }
        }
        if let Some(conn) = conn {
            for layer in keyframes {
                self.send_pli(now, conn, receiver, layer);
            }
        }
        if toggled {
            let paused = grant == Grant::Paused;
            self.stats.media.pauses += u64::from(paused);
            self.emit(
                subscriber,
                Event::TrackPaused {
                    participant_id: publisher_id,
                    track_id: track_id.to_owned(),
                    paused,
                },
            );
        }
    }

    /// Tops up every connection under a probe to the probe's rate with
    /// copies of what it was sent last, on the retransmission streams.
    pub(super) fn send_probes(&mut self, now: Instant) {
        self.next_probe_tick = None;
        let probing: Vec<(ParticipantKey, ConnKey, usize)> = self
            .participants
            .iter()
            .filter_map(|(s, p)| {
                let c = self.conns.get(p.subscriber)?;
                let b = c.bandwidth.as_ref()?;
                let probe = b.estimator.probing(now)?;
                let due = (probe.target / 8.0 * PROBE_TICK.as_secs_f64()) as usize;
                Some((s, p.subscriber, due.saturating_sub(b.sent_bytes)))
            })
            .collect();
        for &(s, conn, mut due) in &probing {
            if let Some(b) = self.conns.get_mut(conn).and_then(|c| c.bandwidth.as_mut()) {
                b.sent_bytes = 0;
            }
            let tracks = self.received_tracks(s);
            let mut sent = 0;
            'burst: while due > 0 && sent < PROBE_BURST {
                let before = sent;
                for (publisher, track_id) in &tracks {
                    let Some(up) = self.up_track_mut(*publisher, track_id) else {
                        continue;
                    };
                    let Some((route, packet)) = up.probe_copy(s) else {
                        continue;
                    };
                    let size = packet.payload.len() + PACKET_OVERHEAD;
                    let mut sink = Fanout {
                        conns: &mut self.conns,
                        out: &mut self.out,
                        errors: &mut self.stats.engine_errors,
                        samples: &mut self.samples,
                        pace: &mut self.next_pace_tick,
                    };
                    // Timed by the probe, not the pacer.
                    let route = Route {
                        paced: false,
                        ..route
                    };
                    if crate::media::up_track::Sink::send(&mut sink, now, &route, packet) {
                        sent += 1;
                        due = due.saturating_sub(size);
                    }
                    if due == 0 || sent >= PROBE_BURST {
                        break 'burst;
                    }
                }
                if sent == before {
                    break; // nothing to copy
                }
            }
            // The probe's own packets are not a top-up of the next tick.
            if let Some(b) = self.conns.get_mut(conn).and_then(|c| c.bandwidth.as_mut()) {
                b.sent_bytes = 0;
            }
        }
        if !probing.is_empty() {
            self.next_probe_tick = Some(now + PROBE_TICK);
        }
    }

    /// Sends what the subscriber connections' pacers let go now.
    pub(super) fn release_paced(&mut self, now: Instant) {
        self.next_pace_tick = None;
        let mut waiting = false;
        for (_, c) in self.conns.iter_mut() {
            while let Some(b) = c.bandwidth.as_mut() {
                let estimate = b.estimator.estimate();
                let Some((sender, packet)) = b.pacer.poll(now, estimate) else {
                    waiting |= !b.pacer.is_empty();
                    break;
                };
                if !c.send_rtp(now, sender, packet, &mut self.out) {
                    self.stats.engine_errors += 1;
                }
            }
        }
        if waiting {
            self.next_pace_tick = Some(now + PACE_TICK);
        }
    }
}
