//! Who speaks in each room, from the audio levels publishers write into
//! their packets (`media/audio_level.rs`), and the active speaker: the one
//! a speaker layout shows large. Decided on the server, once per room,
//! instead of in every browser from decoded audio.
//!
//! Every housekeeping tick (100 ms) each participant's microphone windows
//! are folded into a smoothed activity (the share of packets loud enough
//! to be voice). Hysteresis keeps the verdicts still: speaking starts at
//! a high activity and ends only at a low one, so the gaps between words
//! do not flicker; the active speaker stays until someone else has spoken
//! clearly louder for a few ticks, or until it has stopped and someone
//! else speaks. Everyone in the room is told when either changes.

use std::collections::HashMap;

use super::api::{Event, Source};
use super::participant::ParticipantKey;
use super::Router;
use crate::media::audio_level::Window;

/// Weight of the newest window in the smoothed activity: about 200 ms of
/// memory at one window per 100 ms.
const ALPHA: f32 = 0.4;
/// Speaking starts at this smoothed activity, and ends below `QUIET`.
const SPEAKING: f32 = 0.5;
const QUIET: f32 = 0.1;
/// A speaker takes the active speaker's place while the latter still
/// speaks only when this much stronger for this many ticks in a row.
const TAKEOVER_RATIO: f32 = 1.5;
const TAKEOVER_TICKS: u32 = 3;

#[derive(Debug, Default, Clone, Copy)]
struct Score {
    activity: f32,
    loudness: f32,
    speaking: bool,
}

impl Score {
    /// Folds in one window; `None`: the microphone is muted, or gone.
    fn fold(&mut self, w: Option<Window>) {
        let Some(w) = w else {
            *self = Score::default();
            return;
        };
        self.activity += ALPHA * (w.activity() - self.activity);
        if w.voiced > 0 {
            self.loudness += ALPHA * (w.mean_loudness() - self.loudness);
        }
        self.speaking = if self.speaking {
            self.activity >= QUIET
        } else {
            self.activity >= SPEAKING
        };
    }

    /// How strongly it speaks: mostly how much, a little how loud.
    fn strength(&self) -> f32 {
        self.activity * (10.0 + self.loudness)
    }
}

/// One room's speakers.
#[derive(Debug, Default)]
pub struct RoomSpeakers {
    scores: HashMap<ParticipantKey, Score>,
    active: Option<ParticipantKey>,
    /// Who is about to take the active speaker's place, for how many ticks.
    challenger: Option<(ParticipantKey, u32)>,
    /// What the room was last told: the active speaker, and who spoke.
    told: (Option<ParticipantKey>, Vec<ParticipantKey>),
}

/// What the room should now be told: the active speaker, and who speaks
/// (strongest first).
#[derive(Debug, PartialEq)]
pub struct Verdict {
    pub active: Option<ParticipantKey>,
    pub speaking: Vec<ParticipantKey>,
}

impl RoomSpeakers {
    /// The active speaker.
    pub fn active(&self) -> Option<ParticipantKey> {
        self.active
    }

    /// One tick: each member's windows since the last (`None`: its
    /// microphone is muted, or it has none). Returns what to tell the room
    /// when it changed, or when someone new came (who should learn it too).
    pub fn tick(&mut self, members: &[(ParticipantKey, Option<Window>)]) -> Option<Verdict> {
        let newcomer = members.iter().any(|(p, _)| !self.scores.contains_key(p));
        self.scores
            .retain(|p, _| members.iter().any(|(m, _)| m == p));
        for &(p, w) in members {
            self.scores.entry(p).or_default().fold(w);
        }
        let mut speaking: Vec<(ParticipantKey, f32)> = self
            .scores
            .iter()
            .filter(|(_, s)| s.speaking)
            .map(|(&p, s)| (p, s.strength()))
            .collect();
        speaking.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        self.choose_active(&speaking);
        let speaking: Vec<ParticipantKey> = speaking.into_iter().map(|(p, _)| p).collect();
        let verdict = (self.active, speaking);
        let changed = verdict.0 != self.told.0 || !same_members(&verdict.1, &self.told.1);
        let worth_telling = verdict.0.is_some() || !verdict.1.is_empty();
        if !(changed || newcomer && worth_telling) {
            return None;
        }
        self.told = verdict.clone();
        Some(Verdict {
            active: verdict.0,
            speaking: verdict.1,
        })
    }

    /// `speaking`: who speaks, strongest first.
    fn choose_active(&mut self, speaking: &[(ParticipantKey, f32)]) {
        let current = self
            .active
            .and_then(|p| self.scores.get(&p).map(|s| (p, *s)));
        let Some((first, strength)) = speaking.first().copied() else {
            // Silence: the last speaker stays active (if still here).
            self.active = current.map(|(p, _)| p);
            self.challenger = None;
            return;
        };
        let Some((active, score)) = current.filter(|(_, s)| s.speaking) else {
            // Nobody active, or the active one stopped: the strongest now.
            self.active = Some(first);
            self.challenger = None;
            return;
        };
        if first == active || strength < score.strength() * TAKEOVER_RATIO {
            self.challenger = None;
            return;
        }
        let ticks = match self.challenger {
            Some((p, n)) if p == first => n + 1,
            _ => 1,
        };
        if ticks >= TAKEOVER_TICKS {
            self.active = Some(first);
            self.challenger = None;
        } else {
            self.challenger = Some((first, ticks));
        }
    }
}

fn same_members(a: &[ParticipantKey], b: &[ParticipantKey]) -> bool {
    a.len() == b.len() && a.iter().all(|p| b.contains(p))
}

impl Router {
    /// Each room's speakers after another tick of audio levels.
    pub(super) fn detect_speakers(&mut self) {
        self.speakers
            .retain(|room, _| self.rooms.contains_key(room));
        let rooms: Vec<String> = self.rooms.keys().cloned().collect();
        for room in rooms {
            let members: Vec<(ParticipantKey, Option<Window>)> = self.rooms[&room]
                .iter()
                .filter_map(|&p| {
                    let part = self.participants.get_mut(p)?;
                    let mics = part
                        .up
                        .iter_mut()
                        .filter(|u| u.source == Source::Microphone);
                    let sum = mics.filter_map(|u| u.take_levels()).reduce(|a, b| Window {
                        packets: a.packets + b.packets,
                        voiced: a.voiced + b.voiced,
                        loudness: a.loudness + b.loudness,
                    });
                    Some((p, sum))
                })
                .collect();
            let state = self.speakers.entry(room.clone()).or_default();
            let Some(verdict) = state.tick(&members) else {
                continue;
            };
            let id = |p: ParticipantKey| self.participants.get(p).map(|part| part.id.clone());
            let event = Event::Speakers {
                active: verdict.active.and_then(id),
                speaking: verdict.speaking.into_iter().filter_map(id).collect(),
            };
            self.broadcast(&room, None, event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window of 5 packets (100 ms of Opus), `voiced` of them voice at
    /// −20 dBov.
    fn w(voiced: u32) -> Option<Window> {
        Some(Window {
            packets: 5,
            voiced,
            loudness: 30 * voiced,
        })
    }

    fn silent() -> Option<Window> {
        w(0)
    }

    fn ticks(
        s: &mut RoomSpeakers,
        n: usize,
        members: &[(ParticipantKey, Option<Window>)],
    ) -> Vec<Verdict> {
        (0..n).filter_map(|_| s.tick(members)).collect()
    }

    #[test]
    fn a_speaker_is_named_within_a_few_ticks_and_stays_through_pauses() {
        let mut s = RoomSpeakers::default();
        assert_eq!(ticks(&mut s, 5, &[(1, silent()), (2, silent())]), []);
        let told = ticks(&mut s, 3, &[(1, w(5)), (2, silent())]);
        assert_eq!(
            told,
            [Verdict {
                active: Some(1),
                speaking: vec![1]
            }]
        );
        // Speech with gaps: a word, a pause, a word.
        for _ in 0..10 {
            assert_eq!(s.tick(&[(1, w(4)), (2, silent())]), None);
            assert_eq!(s.tick(&[(1, w(0)), (2, silent())]), None);
            assert_eq!(s.tick(&[(1, w(5)), (2, silent())]), None);
        }
        // Silence: no longer speaking, but still the active speaker.
        let told = ticks(&mut s, 10, &[(1, silent()), (2, silent())]);
        assert_eq!(
            told,
            [Verdict {
                active: Some(1),
                speaking: vec![]
            }]
        );
    }

    #[test]
    fn the_active_speaker_follows_a_new_speaker_without_flickering() {
        let mut s = RoomSpeakers::default();
        ticks(&mut s, 5, &[(1, w(5)), (2, silent())]);
        // 2 starts as 1 stops: active moves to 2 within a second.
        let told = ticks(&mut s, 10, &[(1, silent()), (2, w(5))]);
        assert_eq!(told.last().unwrap().active, Some(2), "{told:?}");
        assert!(told.len() <= 3, "{told:?}");
        // Both speak, 1 a little: 2 stays active.
        let told = ticks(&mut s, 20, &[(1, w(2)), (2, w(5))]);
        assert!(told.iter().all(|v| v.active == Some(2)), "{told:?}");
        // 1 speaks clearly louder while 2 goes on quietly: 1 takes over,
        // and only after several ticks.
        let mut when = None;
        for i in 0..20 {
            if let Some(v) = s.tick(&[(1, w(5)), (2, w(1))]) {
                if v.active == Some(1) {
                    when = Some(i);
                    break;
                }
            }
        }
        assert!(when.is_some_and(|i| i >= 2), "{when:?}");
    }

    #[test]
    fn a_muted_speaker_stops_at_once_and_another_takes_over_at_once() {
        let mut s = RoomSpeakers::default();
        ticks(&mut s, 10, &[(1, w(5)), (2, None)]);
        // 1 mutes as 2 unmutes and speaks: 2 is active as soon as it counts
        // as speaking (two ticks), 1 at once no longer speaks.
        assert_eq!(
            s.tick(&[(1, None), (2, w(5))]),
            Some(Verdict {
                active: Some(1),
                speaking: vec![]
            })
        );
        assert_eq!(
            s.tick(&[(1, None), (2, w(5))]),
            Some(Verdict {
                active: Some(2),
                speaking: vec![2]
            })
        );
    }

    #[test]
    fn someone_new_learns_who_speaks_and_someone_gone_is_forgotten() {
        let mut s = RoomSpeakers::default();
        ticks(&mut s, 5, &[(1, w(5))]);
        let told = s.tick(&[(1, w(5)), (3, silent())]);
        assert_eq!(
            told,
            Some(Verdict {
                active: Some(1),
                speaking: vec![1]
            })
        );
        // The speaker leaves: nobody is active.
        let told = s.tick(&[(3, silent())]);
        assert_eq!(
            told,
            Some(Verdict {
                active: None,
                speaking: vec![]
            })
        );
    }
}
