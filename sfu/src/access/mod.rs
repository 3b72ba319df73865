//! Who may enter a meeting, and on what terms, whatever protocol they
//! speak: meeting tokens and invite links, the policies of the deployment
//! and of each meeting, the roster with its lock and bans, the lobby,
//! seats held for a dropped connection, the invite links an administrator
//! withdrew, the limits that protect the server, and whether it still
//! takes joins (the drain). Nothing here touches a socket or a media
//! worker (the withdrawn links and the policies are kept in files).

pub mod admission;
pub mod drain;
pub mod invite;
pub mod limits;
pub mod lobby;
pub mod policy;
pub mod resume;
pub mod revocations;
pub mod roster;
pub mod state_file;
pub mod token;

use chat::Chat;

use crate::cluster::Cluster;
use crate::metrics::Metrics;
use crate::turn::Turn;
use drain::Drain;
use invite::Invites;
use limits::Limits;
use lobby::Lobby;
use policy::Policies;
use resume::Resumes;
use roster::Roster;
use token::TokenKeys;

/// What deciding on a join needs, shared by every session; cheap to clone.
#[derive(Clone)]
pub struct Access {
    pub tokens: TokenKeys,
    pub invites: Invites,
    /// Who may enter, per deployment and per meeting.
    pub policies: Policies,
    pub roster: Roster,
    /// Who waits for a host to let them in.
    pub lobby: Lobby,
    /// Seats held for participants whose connection dropped.
    pub resumes: Resumes,
    pub limits: Limits,
    /// Who is in a meeting, and whether joins are still taken.
    pub drain: Drain,
    /// TURN servers and credentials for clients, when configured.
    pub turn: Option<Turn>,
    /// Meeting chat on Matrix, when a homeserver is configured: its rooms
    /// are the meetings' invitation lists.
    pub chat: Option<Chat>,
    /// Where refusals are counted.
    pub metrics: Metrics,
    /// Which server a meeting lives on, when several share them through
    /// Redis; `None`: this one runs alone, every meeting lives here.
    pub cluster: Option<Cluster>,
}
