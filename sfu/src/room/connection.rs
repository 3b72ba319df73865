//! The peer connections of a worker (two per participant) and how a
//! datagram finds its connection: by the address it came from, or, for a
//! new address, by the ufrag of an authentic STUN binding request.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use rtc::crypto::RTCCryptoProvider;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::sansio::Protocol;
use rtc::shared::TransportProtocol;
use slab::Slab;

use super::api::Target;
use super::ice::BindingRequest;
use super::{Output, Transport};
use crate::engine::peer::PeerConnection;
use crate::media::link::{Link, SentShare, PACKET_OVERHEAD};

pub type ConnKey = usize;

/// Most remote addresses one connection may be reached from; a bound on
/// what one peer can make us remember.
const MAX_ADDRS_PER_CONN: usize = 8;

pub struct Connection {
    pub pc: PeerConnection,
    /// The participant it belongs to, and which of its two it is.
    pub owner: usize,
    pub role: Target,
    ufrag: String,
    pwd: String,
    addrs: Vec<(Transport, SocketAddr)>,
    /// Last datagram, or when negotiation made the connection necessary.
    pub last_rx: Instant,
    /// Negotiated (a remote description applied): from then on the browser
    /// must keep it alive, and silence past the timeout removes the owner.
    /// A connection nothing was negotiated on yet (a subscriber alone in its
    /// room) is exempt; the signalling socket's keep-alive covers that case.
    pub negotiated: bool,
    /// DTLS is up: SRTP can be sent.
    pub connected: bool,
    /// When it was made (a subscriber connection: when its owner joined),
    /// and whether media went out on it since.
    pub created: Instant,
    pub media_sent: bool,
    pub deadline: Option<Instant>,
    /// Our wall clock minus the browser's (NTP, wrapping), from its first
    /// sender report: moves all its streams' clocks into ours by the same
    /// amount (see `sender_reports.rs`).
    pub ntp_offset: Option<u64>,
    /// A subscriber connection's bandwidth estimate and allocation.
    pub bandwidth: Option<Link>,
    /// Its budget for retransmissions where it has no estimate.
    pub resends: SentShare,
}

impl Connection {
    /// Moves the engine's outgoing datagrams to the output queue and notes
    /// its next deadline (sending may have armed a timer).
    pub fn drain_writes(&mut self, out: &mut VecDeque<Output>) {
        while let Some(w) = self.pc.poll_write() {
            // Nothing else exists yet; UDP is what the engine defaults to.
            let transport = match w.transport.transport_protocol {
                TransportProtocol::TCP => Transport::Tcp,
                _ => Transport::Udp,
            };
            out.push_back(Output::Transmit {
                from: w.transport.local_addr.ip(),
                to: w.transport.peer_addr,
                data: w.message,
                transport,
            });
        }
        self.deadline = self.pc.poll_timeout();
    }

    /// Hands an RTP packet to the engine's `sender` (numbered for the
    /// link's bandwidth estimate first, where it has one) and its
    /// datagrams to the output queue; false if the engine refused it.
    pub fn send_rtp(
        &mut self,
        now: Instant,
        sender: RTCRtpSenderId,
        mut packet: rtc::rtp::Packet,
        out: &mut VecDeque<Output>,
    ) -> bool {
        if let Some(b) = self.bandwidth.as_mut() {
            b.on_send(now, &mut packet);
        }
        let size = packet.payload.len() + PACKET_OVERHEAD;
        let sent = self
            .pc
            .rtp_sender(sender)
            .is_some_and(|mut s| s.write_rtp(now, packet).is_ok());
        if sent {
            self.resends.on_sent(size);
        }
        self.drain_writes(out);
        sent
    }

    /// Negotiation made this connection necessary: its liveness counts.
    pub fn mark_negotiated(&mut self, now: Instant) {
        if !self.negotiated {
            self.negotiated = true;
            self.last_rx = now;
        }
    }
}

/// A new connection's identity on the wire.
pub struct Credentials {
    pub ufrag: String,
    pub pwd: String,
}

pub struct Connections {
    slab: Slab<Connection>,
    by_ufrag: HashMap<String, ConnKey>,
    by_addr: HashMap<(Transport, SocketAddr), ConnKey>,
    crypto: std::sync::Arc<dyn RTCCryptoProvider>,
}

impl Connections {
    pub fn new(crypto: std::sync::Arc<dyn RTCCryptoProvider>) -> Self {
        Self {
            slab: Slab::new(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            crypto,
        }
    }

    pub fn insert(
        &mut self,
        now: Instant,
        pc: PeerConnection,
        owner: usize,
        role: Target,
        creds: Credentials,
        estimated: bool,
    ) -> ConnKey {
        let key = self.slab.insert(Connection {
            pc,
            owner,
            role,
            ufrag: creds.ufrag.clone(),
            pwd: creds.pwd,
            addrs: Vec::new(),
            last_rx: now,
            negotiated: false,
            connected: false,
            created: now,
            media_sent: false,
            ntp_offset: None,
            // A new connection has timers to start.
            deadline: Some(now),
            bandwidth: estimated.then(|| Link::new(now)),
            resends: SentShare::default(),
        });
        self.by_ufrag.insert(creds.ufrag, key);
        key
    }

    pub fn get(&self, key: ConnKey) -> Option<&Connection> {
        self.slab.get(key)
    }

    pub fn get_mut(&mut self, key: ConnKey) -> Option<&mut Connection> {
        self.slab.get_mut(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (ConnKey, &Connection)> {
        self.slab.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (ConnKey, &mut Connection)> {
        self.slab.iter_mut()
    }

    /// The connection a datagram from `from` is for. A new address must
    /// present an authentic binding request for one of our connections,
    /// which then remembers it. A TCP connection's address is its own, even
    /// where a UDP peer has the same one.
    pub fn route(
        &mut self,
        from: SocketAddr,
        transport: Transport,
        data: &[u8],
    ) -> Option<ConnKey> {
        let remote = (transport, from);
        if let Some(&c) = self.by_addr.get(&remote) {
            return Some(c);
        }
        let mut request = BindingRequest::parse(data)?;
        let &key = self.by_ufrag.get(request.ufrag())?;
        let c = &mut self.slab[key];
        if c.addrs.len() >= MAX_ADDRS_PER_CONN || !request.authentic(&c.pwd, self.crypto.crypto()) {
            return None;
        }
        c.addrs.push(remote);
        self.by_addr.insert(remote, key);
        Some(key)
    }

    /// `key` restarted ICE with `creds`: from now on it is known by them
    /// alone. Its old ufrag and addresses are forgotten (the engine no
    /// longer answers the old credentials), so the first datagram from any
    /// path, the old one too, must again be an authentic binding request;
    /// that also frees its room for addresses on the new path.
    pub fn rekey(&mut self, key: ConnKey, creds: Credentials) {
        let Some(c) = self.slab.get_mut(key) else {
            return;
        };
        self.by_ufrag.remove(&c.ufrag);
        for a in c.addrs.drain(..) {
            self.by_addr.remove(&a);
        }
        self.by_ufrag.insert(creds.ufrag.clone(), key);
        c.ufrag = creds.ufrag;
        c.pwd = creds.pwd;
    }

    /// Closes a connection: DTLS close_notify goes out, so the browser
    /// notices at once, and its addresses are forgotten.
    pub fn close(&mut self, key: ConnKey, out: &mut VecDeque<Output>) {
        let Some(mut c) = self.slab.try_remove(key) else {
            return;
        };
        self.by_ufrag.remove(&c.ufrag);
        for a in &c.addrs {
            self.by_addr.remove(a);
        }
        let _ = c.pc.close();
        c.drain_writes(out);
    }
}
