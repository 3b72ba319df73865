//! A media worker: the I/O shell around one [`Router`]. A thread of its own
//! with a single-threaded tokio runtime, one UDP socket (and, where
//! configured, an ICE-TCP listener: `tcp.rs`), the clock, and the channels
//! to the sessions of the participants in its rooms.
//!
//! Each wake-up reads the clock once, feeds the router (a batch of datagrams,
//! a request, or a timeout), then drains its outputs: datagrams through the
//! bounded send queue into `sendmmsg` batches, events to their
//! participants' sessions. Nothing in the loop waits but its `select`.

pub mod send_queue;
pub mod tcp;
pub mod udp;
pub mod wakeups;

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::sync::{mpsc, watch};

use crate::room::{Command, Event, Input, Output, Role, Router, RouterConfig, Transport};
use crate::room::{Samples, Stats, TrackCounts};
use send_queue::{Dropped, SendQueue, Sent};
use tcp::{Frame, TcpDropped, TcpMedia};
use udp::{Datagram, RecvBatch, Sender};
use wakeups::{SlowWakeups, SLOW_WAKEUP};

/// What a session asks of the worker that owns its participant's room.
#[derive(Debug)]
pub enum Request {
    /// The participant enters its room.
    Join {
        participant_id: String,
        room: String,
        name: String,
        role: Role,
        guest: bool,
        /// The participant this one takes the place of (see
        /// [`Command::Join`]).
        replaces: Option<String>,
        /// Where the participant's events go; dropped after the last one
        /// ([`Event::Left`]), which ends the session.
        events: mpsc::UnboundedSender<Event>,
    },
    /// Anything else the participant asks of the room core.
    Command {
        participant_id: String,
        command: Command,
    },
}

/// Requests that may wait for a worker. A worker takes hundreds per
/// millisecond; a queue this long means it is far behind, and more work
/// would only make every room on it later.
pub const REQUEST_QUEUE: usize = 4096;

/// How a worker takes its sessions' requests: how many may wait, and,
/// for tests, a gate that holds them back while it reads `false` (a worker
/// far behind, on demand, so that a full queue can be shown without a
/// race), and a halt that stops one worker (by index) once it reads
/// `true`, as a worker whose socket failed, so that the health check and
/// `meet_worker_up` can be shown to see it. Servers use the default:
/// [`REQUEST_QUEUE`], no gate, no halt.
#[derive(Debug, Clone)]
pub struct Intake {
    pub queue: usize,
    pub gate: Option<watch::Receiver<bool>>,
    pub halt: Option<(usize, watch::Receiver<bool>)>,
}

impl Default for Intake {
    fn default() -> Self {
        Self {
            queue: REQUEST_QUEUE,
            gate: None,
            halt: None,
        }
    }
}

/// Why a request did not reach its worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("the media worker is overloaded; try again shortly")]
    Full,
    #[error("the media worker is not running")]
    Stopped,
}

/// A session's handle on a worker.
#[derive(Clone)]
pub struct WorkerHandle {
    requests: mpsc::Sender<Request>,
    port: u16,
}

impl WorkerHandle {
    /// Queues a request without waiting: a full queue refuses it.
    pub fn send(&self, request: Request) -> Result<(), SendError> {
        self.requests.try_send(request).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Full,
            mpsc::error::TrySendError::Closed(_) => SendError::Stopped,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the worker's loop still takes requests.
    pub fn is_running(&self) -> bool {
        !self.requests.is_closed()
    }
}

/// The server's media workers, and which one a meeting lives on; cheap
/// to clone.
#[derive(Clone)]
pub struct Workers {
    handles: Arc<Vec<WorkerHandle>>,
    hasher: RandomState,
}

impl Workers {
    pub fn new(handles: Vec<WorkerHandle>) -> Self {
        Self {
            handles: Arc::new(handles),
            hasher: RandomState::new(),
        }
    }

    /// Meetings are spread over workers by name, so everyone in a meeting
    /// meets on the same worker (and media port) without any shared table.
    pub fn for_room(&self, room: &str) -> &WorkerHandle {
        let h = self.hasher.hash_one(room);
        &self.handles[(h % self.handles.len() as u64) as usize]
    }

    pub fn all(&self) -> &[WorkerHandle] {
        &self.handles
    }
}

/// Datagram batches read per wake-up before timers get a turn.
const MAX_BATCHES_PER_WAKE: usize = 16;
/// How often figures go to the shared metrics registry.
const METRICS_INTERVAL: Duration = Duration::from_millis(250);

/// What the worker's shell counts itself, beside the core's figures.
#[derive(Debug, Default, Clone, Copy)]
pub struct WorkerCounters {
    /// See [`wakeups`].
    pub slow_wakeups: u64,
    /// Datagrams longer than [`udp::MAX_DATAGRAM`], dropped unread.
    pub oversized: u64,
    /// Datagrams the send queue gave up on, and what it sent.
    pub dropped: Dropped,
    pub sent: Sent,
    /// Bytes of the datagrams received.
    pub bytes_in: u64,
    /// Time spent handling wake-ups, not waiting.
    pub busy: Duration,
    /// ICE-TCP connections open now, and what that path dropped.
    pub tcp_connections: usize,
    pub tcp_dropped: TcpDropped,
}

/// What a worker has to publish at one moment.
#[derive(Default)]
pub struct Snapshot<'a> {
    pub stats: Option<&'a Stats>,
    pub counters: WorkerCounters,
    pub rooms: usize,
    pub participants: usize,
    pub tracks: TrackCounts,
    pub layers: [usize; 3],
    pub samples: Samples,
}

/// Where a worker's figures go: the metrics registry, in the server.
pub trait Publish: Send + 'static {
    fn publish(&mut self, now: Snapshot<'_>);
}

/// Starts a worker on its own thread, serving media on `socket` (and on
/// `tcp`, ICE-TCP, when given).
pub fn spawn(
    index: usize,
    socket: std::net::UdpSocket,
    tcp: Option<std::net::TcpListener>,
    config: RouterConfig,
    metrics: Box<dyn Publish>,
    shutdown: watch::Receiver<bool>,
    intake: Intake,
) -> io::Result<(WorkerHandle, std::thread::JoinHandle<()>)> {
    let port = socket.local_addr()?.port();
    let (tx, rx) = mpsc::channel(intake.queue.max(1));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let thread = std::thread::Builder::new()
        .name(format!("media-worker-{index}"))
        .spawn(move || {
            runtime.block_on(async move {
                let tcp = match tcp.map(TcpMedia::new).transpose() {
                    Ok(tcp) => tcp,
                    Err(e) => {
                        tracing::error!(index, error = %e, "media worker could not use its TCP port");
                        return;
                    }
                };
                let worker = match tokio::net::UdpSocket::from_std(socket) {
                    Ok(socket) => Worker {
                        socket,
                        tcp,
                        router: Router::new(config),
                        requests: rx,
                        gate: intake.gate,
                        halt: intake.halt.filter(|(i, _)| *i == index).map(|(_, h)| h),
                        sessions: HashMap::new(),
                        recv: RecvBatch::new(),
                        sender: Sender::default(),
                        queue: SendQueue::default(),
                        oversized: 0,
                        bytes_in: 0,
                        busy: Duration::ZERO,
                        metrics,
                    },
                    Err(e) => {
                        tracing::error!(index, error = %e, "media worker could not use its socket");
                        return;
                    }
                };
                worker.run(shutdown).await;
            });
        })?;
    Ok((WorkerHandle { requests: tx, port }, thread))
}

struct Worker {
    socket: tokio::net::UdpSocket,
    tcp: Option<TcpMedia>,
    router: Router,
    requests: mpsc::Receiver<Request>,
    /// See [`Intake`]; `None`: requests are always taken.
    gate: Option<watch::Receiver<bool>>,
    /// See [`Intake`]; `None`: the worker runs until shut down.
    halt: Option<watch::Receiver<bool>>,
    sessions: HashMap<String, mpsc::UnboundedSender<Event>>,
    recv: RecvBatch,
    sender: Sender,
    queue: SendQueue,
    oversized: u64,
    bytes_in: u64,
    busy: Duration,
    metrics: Box<dyn Publish>,
}

impl Worker {
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let fd = self.socket.as_raw_fd();
        let mut next_metrics = Instant::now();
        let mut slow = SlowWakeups::default();
        loop {
            let deadline = self
                .router
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            let taking = self.gate.as_ref().is_none_or(|g| *g.borrow());
            let wake = tokio::select! {
                biased;
                _ = shutdown.changed() => Wake::Shutdown,
                request = self.requests.recv(), if taking => Wake::Request(request),
                opened = gate_changed(&mut self.gate), if !taking => Wake::Gate(opened),
                () = halted(&mut self.halt), if self.halt.is_some() => Wake::Halt,
                ready = self.socket.writable(), if !self.queue.is_empty() => Wake::Writable(ready),
                ready = self.socket.readable() => Wake::Readable(ready),
                frame = next_frame(&mut self.tcp) => Wake::Tcp(frame),
                _ = tokio::time::sleep_until(deadline.into()) => Wake::Timer,
            };
            let woke = Instant::now();
            match wake {
                Wake::Shutdown | Wake::Request(None) => break,
                Wake::Halt => {
                    tracing::error!("media worker halted by its test");
                    break;
                }
                Wake::Request(Some(request)) => self.request(woke, request),
                Wake::Gate(Ok(())) => {}
                // Its keeper is gone: nothing holds the requests back now.
                Wake::Gate(Err(_)) => self.gate = None,
                Wake::Readable(Err(e)) | Wake::Writable(Err(e)) => {
                    tracing::error!(error = %e, "media socket failed");
                    break;
                }
                Wake::Readable(Ok(())) => self.read_datagrams(fd),
                Wake::Tcp(frame) => self.tcp_frame(woke, frame),
                // Flushed below, whatever woke us; due timers too.
                Wake::Writable(Ok(())) | Wake::Timer => {}
            }
            // Under steady traffic the biased select always finds the socket
            // ready first: fire due timers here, whatever woke us.
            let now = Instant::now();
            if self.router.poll_timeout().is_some_and(|t| t <= now) {
                self.router.handle_input(now, Input::Timeout);
            }
            self.drain_outputs(fd);
            let now = Instant::now();
            let busy = now.saturating_duration_since(woke);
            self.busy += busy;
            slow.record(busy, now);
            if now >= next_metrics {
                self.publish_metrics(&slow, true);
                next_metrics = now + METRICS_INTERVAL;
            }
        }
        self.publish_metrics(&slow, false);
        if slow.total > 0 {
            tracing::warn!(
                count = slow.total,
                "media worker was busy over {} ms in that many wake-ups in all",
                SLOW_WAKEUP.as_millis()
            );
        }
    }

    /// Publishes the worker's figures; with `running` false, as one that
    /// holds no rooms any more.
    fn publish_metrics(&mut self, slow: &SlowWakeups, running: bool) {
        let counters = WorkerCounters {
            slow_wakeups: slow.total,
            oversized: self.oversized,
            dropped: self.queue.dropped,
            sent: self.queue.sent,
            bytes_in: self.bytes_in,
            busy: self.busy,
            tcp_connections: self.tcp.as_ref().map_or(0, TcpMedia::connections),
            tcp_dropped: self.tcp.as_ref().map(|t| t.dropped).unwrap_or_default(),
        };
        let samples = self.router.take_samples();
        let r = &self.router;
        let snapshot = if running {
            Snapshot {
                rooms: r.rooms(),
                participants: r.participants(),
                tracks: r.published_tracks(),
                layers: r.forwarded_layers(),
                ..Default::default()
            }
        } else {
            Snapshot::default()
        };
        self.metrics.publish(Snapshot {
            stats: Some(r.stats()),
            counters,
            samples,
            ..snapshot
        });
    }
}

/// What woke the worker's loop.
enum Wake {
    Shutdown,
    Request(Option<Request>),
    /// The test's gate moved (see [`Intake`]).
    Gate(Result<(), watch::error::RecvError>),
    /// The test's halt (see [`Intake`]).
    Halt,
    Readable(io::Result<()>),
    Writable(io::Result<()>),
    Tcp(Frame),
    Timer,
}

/// Returns once the halt reads `true`; pends forever once its keeper is
/// gone (polled only where there is a halt: servers never poll it).
async fn halted(halt: &mut Option<watch::Receiver<bool>>) {
    if let Some(h) = halt {
        if h.wait_for(|&stop| stop).await.is_ok() {
            return;
        }
    }
    std::future::pending().await
}

/// The next move of the gate; pends forever without one.
async fn gate_changed(
    gate: &mut Option<watch::Receiver<bool>>,
) -> Result<(), watch::error::RecvError> {
    match gate {
        Some(g) => g.changed().await,
        None => std::future::pending().await,
    }
}

/// The next ICE-TCP packet; pends forever on a worker without ICE-TCP.
async fn next_frame(tcp: &mut Option<TcpMedia>) -> Frame {
    match tcp {
        Some(tcp) => tcp.next().await,
        None => std::future::pending().await,
    }
}

impl Worker {
    fn request(&mut self, now: Instant, request: Request) {
        let (participant_id, command) = match request {
            Request::Join {
                participant_id,
                room,
                name,
                role,
                guest,
                replaces,
                events,
            } => {
                self.sessions.insert(participant_id.clone(), events);
                let join = Command::Join {
                    room,
                    name,
                    role,
                    guest,
                    replaces,
                };
                (participant_id, join)
            }
            Request::Command {
                participant_id,
                command,
            } => (participant_id, command),
        };
        self.router.handle_input(
            now,
            Input::Command {
                participant_id,
                command,
            },
        );
    }

    fn read_datagrams(&mut self, fd: i32) {
        for _ in 0..MAX_BATCHES_PER_WAKE {
            let n = match self
                .socket
                .try_io(Interest::READABLE, || self.recv.recv(fd))
            {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // ICMP errors from earlier sends surface here; not fatal.
                    tracing::debug!(error = %e, "media socket read error");
                    return;
                }
            };
            let now = Instant::now();
            for i in 0..n {
                match self.recv.get(i) {
                    Some(d) if d.truncated => self.oversized += 1,
                    Some(d) => {
                        self.bytes_in += d.data.len() as u64;
                        self.router.handle_input(
                            now,
                            Input::Datagram {
                                from: d.from,
                                local: d.local,
                                data: d.data,
                                transport: Transport::Udp,
                            },
                        )
                    }
                    None => {}
                }
                // Out as it comes, so that a large batch queues little.
                self.take_outputs(fd);
            }
            if n < udp::BATCH {
                return;
            }
        }
    }

    /// A packet from an ICE-TCP connection (a closed one: nothing to do;
    /// the router notices the silence like a UDP peer's).
    fn tcp_frame(&mut self, now: Instant, frame: Frame) {
        let Some(data) = frame.data else {
            return;
        };
        self.bytes_in += data.len() as u64;
        self.router.handle_input(
            now,
            Input::Datagram {
                from: frame.from,
                local: frame.local,
                data: &data,
                transport: Transport::Tcp,
            },
        );
    }

    fn output(&mut self, out: Output) {
        match out {
            Output::Transmit {
                to,
                data,
                transport: Transport::Tcp,
                ..
            } => match &mut self.tcp {
                Some(tcp) => tcp.send(to, &data),
                None => self.queue.dropped.refused += 1,
            },
            Output::Transmit { from, to, data, .. } => match (from, to) {
                (IpAddr::V4(from), SocketAddr::V4(to)) => {
                    self.queue.push(Datagram { from, to, data })
                }
                // The media socket is IPv4 only.
                _ => self.queue.dropped.refused += 1,
            },
            Output::Event {
                participant_id,
                event,
            } => {
                let last = matches!(event, Event::Left { .. });
                if let Some(s) = self.sessions.get(&participant_id) {
                    let _ = s.send(event);
                }
                if last {
                    self.sessions.remove(&participant_id);
                }
            }
        }
    }

    /// Everything the router has to say, sent a full batch at a time.
    fn take_outputs(&mut self, fd: i32) {
        while let Some(out) = self.router.poll_output() {
            self.output(out);
            if self.queue.len() >= udp::BATCH {
                self.flush(fd);
            }
        }
    }

    /// Everything the router has to say, and the datagrams the socket takes
    /// now; the rest waits in the queue for the socket to be writable.
    fn drain_outputs(&mut self, fd: i32) {
        self.take_outputs(fd);
        self.flush(fd);
    }

    fn flush(&mut self, fd: i32) {
        let (queue, sender) = (&mut self.queue, &mut self.sender);
        let sent = self
            .socket
            .try_io(Interest::WRITABLE, || queue.flush(|d| sender.send(fd, d)));
        if let Err(e) = sent {
            if e.kind() != io::ErrorKind::WouldBlock {
                tracing::debug!(error = %e, "media socket write error");
            }
        }
    }
}
/// The candidates a worker advertises: every advertised IP at its port.
pub fn candidates(ips: &[std::net::IpAddr], port: u16) -> Vec<SocketAddr> {
    ips.iter().map(|&ip| SocketAddr::new(ip, port)).collect()
}
