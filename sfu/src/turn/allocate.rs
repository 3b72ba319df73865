//! One TURN allocation as a client makes it (RFC 8656): an Allocate
//! without credentials, which the server must refuse with 401 and a realm
//! and nonce; the same with the long-term credentials of the TURN REST API
//! scheme; then a Refresh with LIFETIME 0, which frees the relay at once.
//! Each authenticated answer must carry a MESSAGE-INTEGRITY made with the
//! same key, which only a server that knows `turn_secret` can make: so
//! something else on the port, or a TURN server with another secret, does
//! not pass.

use std::io;
use std::time::Duration;

use rtc::crypto::RTCCrypto;
use rtc_stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use rtc_stun::error_code::{ErrorCodeAttribute, CODE_STALE_NONCE, CODE_UNAUTHORIZED};
use rtc_stun::fingerprint::FINGERPRINT;
use rtc_stun::integrity::MessageIntegrity;
use rtc_stun::message::{
    Getter, Message, MessageType, Method, Setter, TransactionId, CLASS_ERROR_RESPONSE,
    CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, METHOD_ALLOCATE, METHOD_REFRESH,
};
use rtc_stun::textattrs::TextAttribute;
use rtc_turn::proto::lifetime::Lifetime;
use rtc_turn::proto::reqtrans::RequestedTransport;
use rtc_turn::proto::PROTO_UDP;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why a TURN server did not count as reachable. The messages are for the
/// operator's log and stay the same from one probe to the next while the
/// cause does, so that a change is what gets logged.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot resolve the host name: {0}")]
    Resolve(#[source] io::Error),
    #[error("cannot connect: {0}")]
    Connect(#[source] io::Error),
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the server closed the connection without answering")]
    Closed,
    #[error("I/O error: {0}")]
    Io(#[source] io::Error),
    #[error("the answer is not a STUN message: something other than a TURN server listens there")]
    NotStun,
    #[error("the answer to an Allocate without credentials was {0}, not a 401 with a realm and a nonce: not a TURN server that checks credentials")]
    NoChallenge(String),
    #[error("the server allocated a relay without credentials: an open relay, not one that checks turn_secret")]
    Open,
    #[error("the credentials were refused ({0}): turn_secret differs from the TURN server's static-auth-secret, or the clocks differ by more than turn_credential_ttl_secs")]
    Refused(String),
    #[error("{method} was refused: {answer}")]
    Failed {
        method: &'static str,
        answer: String,
    },
    #[error("the answer's MESSAGE-INTEGRITY does not match turn_secret: not our TURN server")]
    Integrity,
    #[error("cannot build a STUN message: {0}")]
    Build(String),
}

/// STUN's retransmission timeout over UDP (RFC 8489 §6.2.1), doubled for
/// each resend: a lost datagram costs a probe half a second, not a false 0.
const UDP_RTO: Duration = Duration::from_millis(500);

/// The largest answer taken: an Allocate success is about 100 bytes.
const MAX_MESSAGE: usize = 2048;

const HEADER: usize = 20;
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];

/// How the probe talks to the server: STUN messages frame themselves on a
/// stream (TCP, TLS), and are one datagram each over UDP.
pub enum Conn {
    Udp(tokio::net::UdpSocket),
    Stream(Box<dyn Stream>),
}

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

impl Conn {
    /// Sends `request` and returns the answer to it.
    async fn transact(&mut self, request: &Message) -> Result<Message, ProbeError> {
        match self {
            Conn::Stream(s) => {
                s.write_all(&request.raw).await.map_err(ProbeError::Io)?;
                let answer = read_message(s.as_mut()).await?;
                if answer.transaction_id != request.transaction_id {
                    return Err(ProbeError::NotStun);
                }
                Ok(answer)
            }
            Conn::Udp(socket) => {
                let mut rto = UDP_RTO;
                let mut buf = vec![0u8; MAX_MESSAGE];
                loop {
                    socket.send(&request.raw).await.map_err(udp_error)?;
                    let deadline = tokio::time::Instant::now() + rto;
                    // Answers to earlier transactions may still come in.
                    while let Ok(received) =
                        tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await
                    {
                        let n = received.map_err(udp_error)?;
                        let answer = decode(&buf[..n])?;
                        if answer.transaction_id == request.transaction_id {
                            return Ok(answer);
                        }
                    }
                    rto *= 2;
                }
            }
        }
    }

    /// Ends a stream politely (TLS's close_notify); the server forgets a
    /// TCP or TLS client's allocations with its connection anyway.
    pub async fn close(self) {
        if let Conn::Stream(mut s) = self {
            let _ = s.shutdown().await;
        }
    }
}

/// A connected UDP socket learns of an ICMP port unreachable as a refused
/// receive: nothing listens there.
fn udp_error(e: io::Error) -> ProbeError {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ProbeError::Connect(e),
        _ => ProbeError::Io(e),
    }
}

/// One STUN message off a stream: the 20-byte header says how long the
/// rest is (RFC 8489 §6), and anything that does not start like STUN is
/// another protocol.
async fn read_message(s: &mut dyn Stream) -> Result<Message, ProbeError> {
    let mut buf = vec![0u8; HEADER];
    s.read_exact(&mut buf).await.map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => ProbeError::Closed,
        _ => ProbeError::Io(e),
    })?;
    if buf[0] & 0xc0 != 0 || buf[4..8] != MAGIC_COOKIE {
        return Err(ProbeError::NotStun);
    }
    let length = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    if length % 4 != 0 || HEADER + length > MAX_MESSAGE {
        return Err(ProbeError::NotStun);
    }
    buf.resize(HEADER + length, 0);
    s.read_exact(&mut buf[HEADER..])
        .await
        .map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => ProbeError::Closed,
            _ => ProbeError::Io(e),
        })?;
    decode(&buf)
}

fn decode(bytes: &[u8]) -> Result<Message, ProbeError> {
    if bytes.len() < HEADER || bytes[4..8] != MAGIC_COOKIE {
        return Err(ProbeError::NotStun);
    }
    let mut m = Message::new();
    m.unmarshal_binary(bytes).map_err(|_| ProbeError::NotStun)?;
    Ok(m)
}

/// The long-term credentials, as a client of the TURN REST API has them.
pub struct Credentials<'a> {
    pub username: &'a str,
    pub password: &'a str,
}

/// Allocates a relay with `credentials` and frees it again.
pub async fn allocate_and_free(
    conn: &mut Conn,
    credentials: &Credentials<'_>,
    crypto: &dyn RTCCrypto,
) -> Result<(), ProbeError> {
    let plain = request(METHOD_ALLOCATE, &[&UDP_RELAY])?;
    let challenge = conn.transact(&plain).await?;
    if challenge.typ == MessageType::new(METHOD_ALLOCATE, CLASS_SUCCESS_RESPONSE) {
        // Free what an open relay gave us; the verdict stands either way.
        let free = request(METHOD_REFRESH, &[&Lifetime(Duration::ZERO)])?;
        let _ = conn.transact(&free).await;
        return Err(ProbeError::Open);
    }
    let (realm, nonce) = match (
        error_code(&challenge),
        TextAttribute::get_from_as(&challenge, ATTR_REALM),
        TextAttribute::get_from_as(&challenge, ATTR_NONCE),
    ) {
        (Some(code), Ok(realm), Ok(nonce)) if code.code == CODE_UNAUTHORIZED => (realm, nonce),
        _ => return Err(ProbeError::NoChallenge(describe(&challenge))),
    };
    let key = MessageIntegrity::long_term_integrity_key(
        credentials.username.to_owned(),
        realm.text.clone(),
        credentials.password.to_owned(),
        crypto,
    )
    .map_err(|e| ProbeError::Build(e.to_string()))?;
    let mut auth = Auth {
        username: credentials.username,
        realm,
        nonce,
        key,
        crypto,
    };
    auth.transact(conn, METHOD_ALLOCATE, "Allocate", &UDP_RELAY)
        .await?;
    auth.transact(conn, METHOD_REFRESH, "Refresh", &Lifetime(Duration::ZERO))
        .await?;
    Ok(())
}

/// REQUESTED-TRANSPORT UDP: what browsers ask for, and all meet's media
/// needs (the sample's coturn has `no-tcp-relay`).
const UDP_RELAY: RequestedTransport = RequestedTransport {
    protocol: PROTO_UDP,
};

/// What authenticated requests carry after the server's challenge.
struct Auth<'a> {
    username: &'a str,
    realm: TextAttribute,
    nonce: TextAttribute,
    key: Vec<u8>,
    crypto: &'a dyn RTCCrypto,
}

impl Auth<'_> {
    /// Sends `method` with `attribute` and the credentials; takes one new
    /// nonce if the server says the old one went stale (438), as clients
    /// must.
    async fn transact(
        &mut self,
        conn: &mut Conn,
        method: Method,
        name: &'static str,
        attribute: &(dyn Setter + Sync),
    ) -> Result<(), ProbeError> {
        let username = TextAttribute::new(ATTR_USERNAME, self.username.to_owned());
        for _ in 0..2 {
            let integrity =
                MessageIntegrity::new_raw_integrity_with_provider(self.key.clone(), self.crypto);
            let m = request(
                method,
                &[attribute, &username, &self.realm, &self.nonce, &integrity],
            )?;
            let mut answer = conn.transact(&m).await?;
            if answer.typ == MessageType::new(method, CLASS_SUCCESS_RESPONSE) {
                return MessageIntegrity::check(&mut answer, &self.key, self.crypto)
                    .map_err(|_| ProbeError::Integrity);
            }
            if answer.typ != MessageType::new(method, CLASS_ERROR_RESPONSE) {
                return Err(ProbeError::NotStun);
            }
            match error_code(&answer) {
                Some(code) if code.code == CODE_STALE_NONCE => {
                    self.nonce = TextAttribute::get_from_as(&answer, ATTR_NONCE).map_err(|_| {
                        ProbeError::Failed {
                            method: name,
                            answer: describe(&answer),
                        }
                    })?;
                }
                Some(code) if code.code == CODE_UNAUTHORIZED => {
                    return Err(ProbeError::Refused(describe(&answer)))
                }
                _ => {
                    return Err(ProbeError::Failed {
                        method: name,
                        answer: describe(&answer),
                    })
                }
            }
        }
        Err(ProbeError::Failed {
            method: name,
            answer: "a stale nonce twice".into(),
        })
    }
}

/// A request of `method` with a new transaction id, `attributes`, and a
/// FINGERPRINT, as browsers send them.
fn request(method: Method, attributes: &[&dyn Setter]) -> Result<Message, ProbeError> {
    let id = TransactionId::new();
    let typ = MessageType::new(method, CLASS_REQUEST);
    let mut m = Message::new();
    // What Message::build does, with borrowed setters rather than boxed.
    m.write_header();
    let head: [&dyn Setter; 2] = [&id, &typ];
    for s in head
        .iter()
        .chain(attributes)
        .chain([&FINGERPRINT as &dyn Setter].iter())
    {
        s.add_to(&mut m)
            .map_err(|e| ProbeError::Build(e.to_string()))?;
    }
    Ok(m)
}

fn error_code(m: &Message) -> Option<ErrorCodeAttribute> {
    let mut code = ErrorCodeAttribute::default();
    code.get_from(m).ok().map(|()| code)
}

/// "error 401 (Unauthorized)", or the message's type when it has no code.
fn describe(m: &Message) -> String {
    match error_code(m) {
        Some(c) => format!(
            "error {} ({})",
            c.code.0,
            String::from_utf8_lossy(&c.reason)
        ),
        None => m.typ.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc_stun::error_code::CODE_BAD_REQUEST;

    const USER: &str = "1700003600:probe";
    const PASSWORD: &str = "the password";
    const REALM: &str = "meet.test";

    /// How the fake server answers an authenticated request.
    #[derive(Clone, Copy, PartialEq)]
    enum Answer {
        /// As a TURN server with the same secret: success, signed.
        Right,
        /// A stale nonce the first time, then right.
        StaleOnce,
        /// 401: another secret.
        Unauthorized,
        /// Success, but signed with another key: not our server.
        WrongKey,
        /// Success without asking for credentials at all.
        Open,
    }

    fn answer(to: &Message, typ: MessageType, attrs: &[&dyn Setter]) -> Message {
        let mut m = Message::new();
        m.write_header();
        let head: [&dyn Setter; 2] = [&to.transaction_id, &typ];
        for s in head.iter().chain(attrs) {
            s.add_to(&mut m).unwrap();
        }
        m
    }

    /// A scripted TURN server on a loopback UDP socket: what it answers,
    /// and the methods it saw authenticated, in order.
    async fn fake_server(
        mode: Answer,
    ) -> (std::net::SocketAddr, tokio::task::JoinHandle<Vec<Method>>) {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let provider = rtc::crypto::default_provider().unwrap();
            let crypto = provider.crypto();
            let key = MessageIntegrity::long_term_integrity_key(
                USER.into(),
                REALM.into(),
                PASSWORD.into(),
                crypto,
            )
            .unwrap();
            let mut seen = Vec::new();
            let mut stale_sent = false;
            let mut buf = [0u8; 1500];
            while let Ok(Ok((n, from))) =
                tokio::time::timeout(Duration::from_millis(500), socket.recv_from(&mut buf)).await
            {
                let mut request = decode(&buf[..n]).unwrap();
                let method = request.typ.method;
                let ok = MessageType::new(method, CLASS_SUCCESS_RESPONSE);
                let err = MessageType::new(method, CLASS_ERROR_RESPONSE);
                let realm = TextAttribute::new(ATTR_REALM, REALM.into());
                let nonce = TextAttribute::new(ATTR_NONCE, "n1".into());
                let reply = if mode == Answer::Open {
                    answer(&request, ok, &[])
                } else if !request.contains(rtc_stun::attributes::ATTR_MESSAGE_INTEGRITY) {
                    let code = ErrorCodeAttribute {
                        code: CODE_UNAUTHORIZED,
                        reason: b"Unauthorized".to_vec(),
                    };
                    answer(&request, err, &[&code, &realm, &nonce])
                } else {
                    // The client signs with the key only the right password gives.
                    MessageIntegrity::check(&mut request, &key, crypto).unwrap();
                    seen.push(method);
                    match mode {
                        Answer::StaleOnce if !stale_sent => {
                            stale_sent = true;
                            let code = ErrorCodeAttribute {
                                code: CODE_STALE_NONCE,
                                reason: b"Stale Nonce".to_vec(),
                            };
                            let fresh = TextAttribute::new(ATTR_NONCE, "n2".into());
                            answer(&request, err, &[&code, &realm, &fresh])
                        }
                        Answer::Unauthorized => {
                            let code = ErrorCodeAttribute {
                                code: CODE_UNAUTHORIZED,
                                reason: b"Unauthorized".to_vec(),
                            };
                            answer(&request, err, &[&code, &realm, &nonce])
                        }
                        Answer::WrongKey => {
                            let other = MessageIntegrity::new_raw_integrity_with_provider(
                                vec![7u8; 16],
                                crypto,
                            );
                            answer(&request, ok, &[&other, &FINGERPRINT])
                        }
                        _ => {
                            let signed = MessageIntegrity::new_raw_integrity_with_provider(
                                key.clone(),
                                crypto,
                            );
                            answer(&request, ok, &[&signed, &FINGERPRINT])
                        }
                    }
                };
                socket.send_to(&reply.raw, from).await.unwrap();
            }
            seen
        });
        (addr, task)
    }

    async fn probe_fake(mode: Answer) -> (Result<(), ProbeError>, Vec<Method>) {
        let (addr, server) = fake_server(mode).await;
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.connect(addr).await.unwrap();
        let mut conn = Conn::Udp(socket);
        let provider = rtc::crypto::default_provider().unwrap();
        let credentials = Credentials {
            username: USER,
            password: PASSWORD,
        };
        let result = allocate_and_free(&mut conn, &credentials, provider.crypto()).await;
        (result, server.await.unwrap())
    }

    #[tokio::test]
    async fn a_relay_is_allocated_with_the_long_term_credentials_then_freed() {
        let (result, seen) = probe_fake(Answer::Right).await;
        result.unwrap();
        assert_eq!(seen, [METHOD_ALLOCATE, METHOD_REFRESH]);
    }

    #[tokio::test]
    async fn a_stale_nonce_is_replaced_once() {
        let (result, seen) = probe_fake(Answer::StaleOnce).await;
        result.unwrap();
        assert_eq!(seen, [METHOD_ALLOCATE, METHOD_ALLOCATE, METHOD_REFRESH]);
    }

    #[tokio::test]
    async fn refused_credentials_an_unsigned_success_and_an_open_relay_fail() {
        let (result, _) = probe_fake(Answer::Unauthorized).await;
        assert!(
            matches!(result, Err(ProbeError::Refused(ref m)) if m.contains("401")),
            "{result:?}"
        );
        let (result, _) = probe_fake(Answer::WrongKey).await;
        assert!(matches!(result, Err(ProbeError::Integrity)), "{result:?}");
        let (result, _) = probe_fake(Answer::Open).await;
        assert!(matches!(result, Err(ProbeError::Open)), "{result:?}");
    }

    #[tokio::test]
    async fn streams_take_stun_and_nothing_else() {
        let request = request(METHOD_ALLOCATE, &[&UDP_RELAY]).unwrap();
        let bad = ErrorCodeAttribute {
            code: CODE_BAD_REQUEST,
            reason: b"Bad Request".to_vec(),
        };
        let reply = answer(
            &request,
            MessageType::new(METHOD_ALLOCATE, CLASS_ERROR_RESPONSE),
            &[&bad],
        );
        let mut stream: Box<dyn Stream> = Box::new(std::io::Cursor::new(reply.raw.clone()));
        let m = read_message(stream.as_mut()).await.unwrap();
        assert_eq!(describe(&m), "error 400 (Bad Request)");
        for (bytes, what) in [
            (&b"HTTP/1.1 400 Bad Request\r\n\r\n"[..], "HTTP"),
            (&b"SSH-2.0-OpenSSH_9.2\r\n"[..], "SSH"),
        ] {
            let mut s: Box<dyn Stream> = Box::new(std::io::Cursor::new(bytes.to_vec()));
            assert!(
                matches!(read_message(s.as_mut()).await, Err(ProbeError::NotStun)),
                "{what}"
            );
        }
        let mut cut: Box<dyn Stream> = Box::new(std::io::Cursor::new(reply.raw[..24].to_vec()));
        assert!(matches!(
            read_message(cut.as_mut()).await,
            Err(ProbeError::Closed)
        ));
        // What a browser sends: the transport asked for, and a fingerprint.
        let sent = decode(&request.raw).unwrap();
        let mut transport = RequestedTransport::default();
        transport.get_from(&sent).unwrap();
        assert_eq!(transport.protocol, PROTO_UDP);
        FINGERPRINT.check(&sent).unwrap();
        assert_eq!(sent.typ, MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST));
    }
}
