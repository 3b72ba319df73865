//! A media worker: the I/O shell around one [`Router`]. A thread of its own
//! with a single-threaded tokio runtime, one UDP socket, the clock, and the
//! channels to the sessions of the participants in its rooms.
//!
//! Each wake-up reads the clock once, feeds the router (a batch of datagrams,
//! a request, or a timeout), then drains its outputs: datagrams into
//! `sendmmsg` batches, events to their participants' sessions.

pub mod udp;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::sync::{mpsc, watch};

use crate::room::{Command, Event, Input, Output, Router, RouterConfig};
use crate::shell::metrics::WorkerMetrics;
use udp::{RecvBatch, SendBatch};

/// What a session asks of the worker that owns its participant's room.
#[derive(Debug)]
pub enum Request {
    /// The participant enters its room.
    Join {
        participant_id: String,
        room: String,
        name: String,
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

/// A session's handle on a worker.
#[derive(Clone)]
pub struct WorkerHandle {
    requests: mpsc::UnboundedSender<Request>,
    port: u16,
}

impl WorkerHandle {
    /// Sends a request; false if the worker has stopped.
    pub fn send(&self, request: Request) -> bool {
        self.requests.send(request).is_ok()
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Datagram batches read per wake-up before timers get a turn.
const MAX_BATCHES_PER_WAKE: usize = 16;
/// How often figures go to the shared metrics registry.
const METRICS_INTERVAL: Duration = Duration::from_millis(250);
/// A wake-up busy this long delays every packet of every room on the
/// worker noticeably; such wake-ups are counted and logged.
pub const SLOW_WAKEUP: Duration = Duration::from_millis(5);
/// Least time between two log lines about slow wake-ups.
const SLOW_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Starts a worker on its own thread, serving media on `socket`.
pub fn spawn(
    index: usize,
    socket: std::net::UdpSocket,
    config: RouterConfig,
    metrics: WorkerMetrics,
    shutdown: watch::Receiver<bool>,
) -> io::Result<(WorkerHandle, std::thread::JoinHandle<()>)> {
    let port = socket.local_addr()?.port();
    let (tx, rx) = mpsc::unbounded_channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let thread = std::thread::Builder::new()
        .name(format!("media-worker-{index}"))
        .spawn(move || {
            runtime.block_on(async move {
                let worker = match tokio::net::UdpSocket::from_std(socket) {
                    Ok(socket) => Worker {
                        socket,
                        router: Router::new(config),
                        requests: rx,
                        sessions: HashMap::new(),
                        recv: RecvBatch::new(),
                        send: SendBatch::new(),
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
    router: Router,
    requests: mpsc::UnboundedReceiver<Request>,
    sessions: HashMap<String, mpsc::UnboundedSender<Event>>,
    recv: RecvBatch,
    send: SendBatch,
    metrics: WorkerMetrics,
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
            let wake = tokio::select! {
                biased;
                _ = shutdown.changed() => Wake::Shutdown,
                request = self.requests.recv() => Wake::Request(request),
                ready = self.socket.readable() => Wake::Readable(ready),
                _ = tokio::time::sleep_until(deadline.into()) => Wake::Timer,
            };
            let woke = Instant::now();
            match wake {
                Wake::Shutdown | Wake::Request(None) => break,
                Wake::Request(Some(request)) => self.request(woke, request),
                Wake::Readable(Err(e)) => {
                    tracing::error!(error = %e, "media socket failed");
                    break;
                }
                Wake::Readable(Ok(())) => self.read_datagrams(fd),
                // Due timers run below, whatever woke us.
                Wake::Timer => {}
            }
            // Under steady traffic the biased select always finds the socket
            // ready first: fire due timers here, whatever woke us.
            let now = Instant::now();
            if self.router.poll_timeout().is_some_and(|t| t <= now) {
                self.router.handle_input(now, Input::Timeout);
            }
            self.drain_outputs(fd).await;
            let now = Instant::now();
            slow.record(now.saturating_duration_since(woke), now);
            if now >= next_metrics {
                self.metrics.publish(
                    self.router.stats(),
                    slow.total,
                    self.router.rooms(),
                    self.router.participants(),
                    self.router.published_tracks(),
                );
                next_metrics = now + METRICS_INTERVAL;
            }
        }
        self.metrics
            .publish(self.router.stats(), slow.total, 0, 0, 0);
        if slow.total > 0 {
            tracing::warn!(
                count = slow.total,
                "media worker was busy over {} ms in that many wake-ups in all",
                SLOW_WAKEUP.as_millis()
            );
        }
    }
}

/// What woke the worker's loop.
enum Wake {
    Shutdown,
    Request(Option<Request>),
    Readable(io::Result<()>),
    Timer,
}

/// Wake-ups that kept the worker busy over [`SLOW_WAKEUP`], and a log line
/// about them now and then.
#[derive(Default)]
struct SlowWakeups {
    total: u64,
    /// Since the last log line: how many, and the longest.
    recent: u64,
    longest: Duration,
    last_log: Option<Instant>,
}

impl SlowWakeups {
    fn record(&mut self, busy: Duration, now: Instant) {
        if busy <= SLOW_WAKEUP {
            return;
        }
        self.total += 1;
        self.recent += 1;
        self.longest = self.longest.max(busy);
        if self
            .last_log
            .is_none_or(|t| now.saturating_duration_since(t) >= SLOW_LOG_INTERVAL)
        {
            tracing::warn!(
                count = self.recent,
                longest_ms = self.longest.as_secs_f64() * 1000.0,
                "media worker busy over {} ms in one wake-up; every room on it waited",
                SLOW_WAKEUP.as_millis()
            );
            self.recent = 0;
            self.longest = Duration::ZERO;
            self.last_log = Some(now);
        }
    }
}

impl Worker {
    fn request(&mut self, now: Instant, request: Request) {
        let (participant_id, command) = match request {
            Request::Join {
                participant_id,
                room,
                name,
                events,
            } => {
                self.sessions.insert(participant_id.clone(), events);
                (participant_id, Command::Join { room, name })
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
                if let Some(d) = self.recv.get(i) {
                    self.router.handle_input(
                        now,
                        Input::Datagram {
                            from: d.from,
                            local: d.local,
                            data: d.data,
                        },
                    );
                }
                // Keep the send queue bounded within a large batch.
                while let Some(out) = self.router.poll_output() {
                    self.output(out);
                    if self.send.is_full() {
                        self.flush_now(fd);
                    }
                }
            }
            if n < udp::BATCH {
                return;
            }
        }
    }

    fn output(&mut self, out: Output) {
        match out {
            Output::Transmit { from, to, data } => self.send.push(from, to, data),
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

    /// Sends what can go without waiting; the rest waits for `drain_outputs`.
    fn flush_now(&mut self, fd: i32) {
        let send = &mut self.send;
        match self.socket.try_io(Interest::WRITABLE, || send.flush(fd)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => tracing::debug!(error = %e, "media socket write error"),
        }
    }

    async fn drain_outputs(&mut self, fd: i32) {
        while let Some(out) = self.router.poll_output() {
            self.output(out);
            if self.send.is_full() {
                self.flush_now(fd);
            }
        }
        // The socket buffer is large; waiting here happens only under
        // overload, and then briefly.
        for _ in 0..4 {
            self.flush_now(fd);
            if self.send.is_empty() {
                return;
            }
            if tokio::time::timeout(Duration::from_millis(5), self.socket.writable())
                .await
                .is_err()
            {
                break;
            }
        }
        if !self.send.is_empty() {
            tracing::warn!("media socket congested, dropping queued datagrams");
            self.send = SendBatch::new();
        }
    }
}

/// The candidates a worker advertises: every advertised IP at its port.
pub fn candidates(ips: &[std::net::IpAddr], port: u16) -> Vec<SocketAddr> {
    ips.iter().map(|&ip| SocketAddr::new(ip, port)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_wakeups_are_counted_and_reported_now_and_then() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let mut s = SlowWakeups::default();
        s.record(ms(1), t);
        assert_eq!(s.total, 0, "a quick wake-up is not slow");
        s.record(ms(6), t);
        assert_eq!(
            (s.total, s.recent),
            (1, 0),
            "the first one is logged at once"
        );
        s.record(ms(30), t + ms(1));
        s.record(ms(8), t + ms(2));
        assert_eq!(
            (s.total, s.recent, s.longest),
            (3, 2, ms(30)),
            "held for the next line"
        );
        s.record(ms(7), t + SLOW_LOG_INTERVAL);
        assert_eq!((s.total, s.recent), (4, 0));
    }
}
