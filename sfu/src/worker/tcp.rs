//! ICE over TCP (RFC 6544, passive candidates only) on a worker's TCP port,
//! for browsers whose firewall drops all UDP: the listener and its
//! connections, each carrying STUN, DTLS and SRTP packets framed as in
//! RFC 4571 (a 16-bit length before each).
//!
//! Each connection has a reading and a writing task on the worker's own
//! runtime, and packets hop over channels between them and the worker's
//! loop, which the UDP path never does: this is the fallback path, and the
//! channels keep one slow TCP peer from ever blocking the loop (its writes
//! queue up to [`WRITE_QUEUE`] packets, then are dropped like lost UDP).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::udp::MAX_DATAGRAM;

/// Connections one worker holds at once, and from one address (an
/// office behind one NAT address: two per participant); more are closed
/// as they come.
pub const MAX_CONNECTIONS: usize = 1024;
const MAX_CONNECTIONS_PER_ADDRESS: usize = 256;
/// Packets waiting to be written to one connection.
const WRITE_QUEUE: usize = 256;
/// Packets read from all connections, waiting for the worker's loop; a
/// full queue holds back the readers (TCP's own back-pressure).
const READ_QUEUE: usize = 1024;
/// A connection that sends nothing for this long is closed: a browser
/// checks consent every few seconds.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a connection delivers to the worker's loop.
pub struct Frame {
    pub from: SocketAddr,
    /// Our address the browser connected to.
    pub local: IpAddr,
    /// A packet; `None`: the connection is closed.
    pub data: Option<Vec<u8>>,
}

/// Counts of what the TCP path dropped.
#[derive(Debug, Default, Clone, Copy)]
pub struct TcpDropped {
    /// Packets not written because their connection's queue was full or
    /// the connection is gone.
    pub packets: u64,
    /// Connections closed as they came: past the bounds.
    pub connections: u64,
}

pub struct TcpMedia {
    listener: TcpListener,
    writers: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    frames_tx: mpsc::Sender<Frame>,
    frames_rx: mpsc::Receiver<Frame>,
    pub dropped: TcpDropped,
}

impl TcpMedia {
    /// Must be called on the worker's runtime.
    pub fn new(listener: std::net::TcpListener) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        let (frames_tx, frames_rx) = mpsc::channel(READ_QUEUE);
        Ok(Self {
            listener: TcpListener::from_std(listener)?,
            writers: HashMap::new(),
            frames_tx,
            frames_rx,
            dropped: TcpDropped::default(),
        })
    }

    /// The next packet or closed connection, taking new connections
    /// meanwhile. Cancel-safe: the worker's `select` may drop it any time.
    pub async fn next(&mut self) -> Frame {
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, from)) => self.start(stream, from),
                    Err(e) => tracing::debug!(error = %e, "ICE-TCP accept failed"),
                },
                frame = self.frames_rx.recv() => {
                    // We hold a sender ourselves: the channel never closes.
                    let frame = frame.expect("the worker holds a sender");
                    if frame.data.is_none() {
                        self.writers.remove(&frame.from);
                    }
                    return frame;
                }
            }
        }
    }

    fn start(&mut self, stream: TcpStream, from: SocketAddr) {
        let local = match stream.local_addr() {
            Ok(a) => a.ip(),
            Err(_) => return,
        };
        let from_there = || self.writers.keys().filter(|a| a.ip() == from.ip()).count();
        if self.writers.len() >= MAX_CONNECTIONS
            || self.writers.contains_key(&from)
            || from_there() >= MAX_CONNECTIONS_PER_ADDRESS
        {
            self.dropped.connections += 1;
            return;
        }
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        self.writers.insert(from, tx);
        tokio::spawn(read_frames(reader, from, local, self.frames_tx.clone()));
        tokio::spawn(write_frames(writer, rx));
    }

    /// Queues `data` for the connection from `to`, framed; never waits.
    pub fn send(&mut self, to: SocketAddr, data: &[u8]) {
        let Some(writer) = self.writers.get(&to) else {
            self.dropped.packets += 1;
            return;
        };
        let Ok(len) = u16::try_from(data.len()) else {
            self.dropped.packets += 1;
            return;
        };
        let mut framed = Vec::with_capacity(2 + data.len());
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(data);
        if writer.try_send(framed).is_err() {
            self.dropped.packets += 1;
        }
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.writers.len()
    }
}

/// Reads RFC 4571 frames until the peer closes, goes quiet, or sends a
/// frame no WebRTC packet can be; then says the connection is closed.
async fn read_frames(
    mut reader: OwnedReadHalf,
    from: SocketAddr,
    local: IpAddr,
    frames: mpsc::Sender<Frame>,
) {
    loop {
        let data = match tokio::time::timeout(IDLE_TIMEOUT, read_frame(&mut reader)).await {
            Ok(Ok(data)) => data,
            Ok(Err(e)) => {
                tracing::debug!(%from, error = %e, "ICE-TCP connection ends");
                break;
            }
            Err(_) => break,
        };
        let frame = Frame {
            from,
            local,
            data: Some(data),
        };
        if frames.send(frame).await.is_err() {
            return; // the worker stopped
        }
    }
    let _ = frames
        .send(Frame {
            from,
            local,
            data: None,
        })
        .await;
}

async fn read_frame(reader: &mut OwnedReadHalf) -> io::Result<Vec<u8>> {
    let len = usize::from(reader.read_u16().await?);
    if len == 0 || len > MAX_DATAGRAM {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a {len}-byte frame is no WebRTC packet"),
        ));
    }
    let mut data = vec![0; len];
    reader.read_exact(&mut data).await?;
    Ok(data)
}

/// Writes framed packets until the worker forgets the connection.
async fn write_frames(mut writer: OwnedWriteHalf, mut packets: mpsc::Receiver<Vec<u8>>) {
    while let Some(p) = packets.recv().await {
        if writer.write_all(&p).await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn media() -> (TcpMedia, SocketAddr) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        (TcpMedia::new(listener).unwrap(), addr)
    }

    #[tokio::test]
    async fn frames_travel_both_ways_and_a_close_is_told() {
        let (mut tcp, addr) = media().await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(&[0, 3, 1, 2, 3, 0, 1, 9]).await.unwrap();
        let first = tcp.next().await;
        assert_eq!(first.data.as_deref(), Some(&[1, 2, 3][..]));
        assert_eq!(first.local, addr.ip());
        assert_eq!(tcp.next().await.data.as_deref(), Some(&[9][..]));
        assert_eq!(tcp.connections(), 1);

        tcp.send(first.from, &[7, 7]);
        let mut back = [0; 4];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(back, [0, 2, 7, 7]);

        drop(client);
        let closed = tcp.next().await;
        assert_eq!((closed.from, closed.data), (first.from, None));
        assert_eq!(tcp.connections(), 0);
        tcp.send(first.from, &[1]);
        assert_eq!(tcp.dropped.packets, 1, "nowhere to send it");
    }

    #[tokio::test]
    async fn a_frame_no_packet_can_be_ends_the_connection() {
        let (mut tcp, addr) = media().await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        let too_long = u16::try_from(MAX_DATAGRAM + 1).unwrap().to_be_bytes();
        client.write_all(&too_long).await.unwrap();
        assert!(tcp.next().await.data.is_none());
        let mut rest = Vec::new();
        // The server closed its side: the client reads the end.
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }
}
