//! A participant of a room: its two peer connections, the tracks it
//! publishes (up-tracks, which hold their subscriptions) and what it
//! receives of the others'.

use super::api::{ParticipantInfo, Role, Source, TrackAnnouncement, TrackInfo};
use super::connection::ConnKey;
use super::negotiation::Negotiation;
use crate::media::up_track::UpTrack;

pub type ParticipantKey = usize;

/// A track a participant receives: which publisher's up-track holds its
/// down-track, and the SSRC the participant knows it by.
pub struct Received {
    pub ssrc: u32,
    pub publisher: ParticipantKey,
    pub track_id: String,
}

pub struct Participant {
    pub id: String,
    pub name: String,
    pub room: String,
    pub role: Role,
    pub guest: bool,
    /// Made with the first publisher offer.
    pub publisher: Option<ConnKey>,
    pub subscriber: ConnKey,
    /// What its last publisher offer said each transceiver carries.
    pub announced: Vec<TrackAnnouncement>,
    pub up: Vec<UpTrack>,
    pub received: Vec<Received>,
    pub negotiation: Negotiation,
    /// Sources a host muted: not forwarded until the participant unmutes
    /// them; `true` while the host forbids that.
    pub held: Vec<(Source, bool)>,
    /// Raised its hand, and nobody has lowered it since.
    pub hand_raised: bool,
    /// Its connection dropped and its seat is held: not timed out.
    pub reconnecting: bool,
}

impl Participant {
    pub fn info(&self) -> ParticipantInfo {
        ParticipantInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            tracks: self.up.iter().map(track_info).collect(),
            role: self.role,
            guest: self.guest,
            hand_raised: self.hand_raised,
            reconnecting: self.reconnecting,
        }
    }

    pub fn conn(&self, target: super::api::Target) -> Option<ConnKey> {
        match target {
            super::api::Target::Publisher => self.publisher,
            super::api::Target::Subscriber => Some(self.subscriber),
        }
    }

    pub fn up_track_mut(&mut self, track_id: &str) -> Option<&mut UpTrack> {
        self.up.iter_mut().find(|u| u.id == track_id)
    }

    /// Whether a host holds `source`, and if so whether it locked it.
    pub fn hold(&self, source: Source) -> Option<bool> {
        self.held
            .iter()
            .find(|(s, _)| *s == source)
            .map(|&(_, locked)| locked)
    }
}

pub fn track_info(up: &UpTrack) -> TrackInfo {
    TrackInfo {
        id: up.id.clone(),
        kind: up.kind,
        source: up.source,
        muted: up.muted,
    }
}
