//! The signals that drain and stop the server: SIGTERM starts a drain
//! ([`Drain`]), a second SIGTERM or SIGINT (a Ctrl-C) stops at once.

use std::io;
use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::access::drain::Drain;

/// The signals that drain and stop the server, installed before it says
/// where it listens, so that none sent after that line is missed.
pub struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    pub fn install() -> io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Completes when the server should stop: at once on SIGINT; on
    /// SIGTERM after draining for at most `timeout`, or on the next signal.
    pub async fn drain_then_stop(mut self, drain: Drain, timeout: Duration) {
        tokio::select! {
            _ = self.int.recv() => {
                tracing::info!("SIGINT: stopping now");
                return;
            }
            _ = self.term.recv() => {}
        }
        let participants = drain.start(timeout);
        tracing::info!(
            participants,
            timeout_secs = timeout.as_secs(),
            "SIGTERM: draining; no new joins, meetings go on until empty or the timeout"
        );
        tokio::select! {
            left = drain.finished() => match left {
                0 => tracing::info!("drained: nobody is in a meeting; stopping"),
                n => tracing::warn!(participants = n, "drain timeout passed; stopping"),
            },
            _ = self.term.recv() => tracing::info!("second SIGTERM: stopping now"),
            _ = self.int.recv() => tracing::info!("SIGINT: stopping now"),
        }
    }
}
