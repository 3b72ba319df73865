//! ICE restarts: a connection follows its browser onto a new network path
//! (another Wi-Fi, a mobile network, a new address) without a rejoin. The
//! browser restarts ICE with new credentials and checks the new path; DTLS
//! and SRTP go on over it unchanged (RFC 8445 §9, RFC 8839 §4.4.1.1).
//!
//! Our side of a restart takes fresh credentials too, as the RFCs want,
//! and the connection is known by them from then on (`Connections::rekey`).
//! The browser leads either way: on its publisher connection it offers a
//! restart itself; on its subscriber connection, which we offer, it asks
//! for one and our next offer restarts ICE.

use std::time::Instant;

use super::connection::{ConnKey, Credentials};
use super::participant::ParticipantKey;
use super::Router;

impl Router {
    /// Gives `conn`'s engine fresh credentials for a restart, which it uses
    /// only if the next description it applies restarts ICE; with `offer`,
    /// our next offer restarts it. Returns what `settle_ice_restart` needs
    /// once that description is applied.
    pub(super) fn arm_ice_restart(&mut self, conn: ConnKey, offer: bool) -> Option<Credentials> {
        let creds = self.new_credentials();
        let c = self.conns.get_mut(conn)?;
        if offer {
            c.pc.restart_ice();
        }
        c.pc.set_ice_restart_credentials(creds.ufrag.clone(), creds.pwd.clone());
        Some(creds)
    }

    /// A description was applied on `conn`: if its engine restarted ICE
    /// (the local description carries the armed credentials), datagrams
    /// find the connection by them from now on.
    pub(super) fn settle_ice_restart(&mut self, conn: ConnKey, creds: Credentials) {
        let Some(c) = self.conns.get(conn) else {
            return;
        };
        let restarted =
            c.pc.local_description()
                .is_some_and(|d| ice_ufrag(&d.sdp) == Some(creds.ufrag.as_str()));
        if restarted {
            tracing::info!(owner = c.owner, role = ?c.role, "ICE restarted");
            self.conns.rekey(conn, creds);
        }
    }

    /// `publisher`'s connection is back on a new path: keyframe requests
    /// made while it had none were lost, so every subscriber still waiting
    /// for one of its keyframes asks again.
    pub(super) fn publisher_reconnected(&mut self, now: Instant, publisher: ParticipantKey) {
        let room = &self.participants[publisher].room;
        let subscribers = self.rooms.get(room).cloned().unwrap_or_default();
        for s in subscribers {
            for (p, track_id) in self.received_tracks(s) {
                if p == publisher {
                    self.request_keyframe(now, publisher, &track_id, s);
                }
            }
        }
    }

    /// `p` asks for an ICE restart of its subscriber connection (its path
    /// changed or failed): the next subscriber offer makes one.
    pub(super) fn restart_subscriber_ice(&mut self, p: ParticipantKey) {
        self.participants[p].negotiation.restart_ice();
        self.offers_due = true;
    }
}

/// The first `a=ice-ufrag` of a session description (every media section
/// of ours shares one transport, so one set of credentials).
fn ice_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_ufrag() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:abcd\r\na=ice-pwd:x\r\n";
        assert_eq!(ice_ufrag(sdp), Some("abcd"));
        assert_eq!(ice_ufrag("v=0\r\n"), None);
    }
}
