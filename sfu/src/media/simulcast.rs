//! Simulcast: a publisher sends one video track as up to three encodings
//! (layers) of different resolution, each with its own SSRC and sequence
//! space, told apart by their RTP stream id (`rid`). Each subscriber gets one
//! layer at a time; this module decides which (`vp8.rs` keeps the stream
//! continuous across a move). Pure arithmetic, no I/O.

use std::time::{Duration, Instant};

use super::Quality;

/// A layer that sent nothing for this long counts as stopped: browsers stop
/// their upper layers when bandwidth or CPU runs short.
pub const LAYER_TIMEOUT: Duration = Duration::from_secs(1);

/// Where a layer ranks, from its rid and the rids of all the track's
/// layers (`all`, from the publisher's SDP), since the two common naming
/// schemes disagree on `h`: `q`/`h`/`f` (quarter, half, full: LiveKit's
/// clients) against `l`/`m`/`h` (low, medium, high: janus.js). Spelled-out
/// names and `0`/`1`/`2` count too; unknown names rank in the middle, and a
/// track without simulcast (the empty rid) counts as full quality.
pub fn rank(rid: &str, all: &[&str]) -> Quality {
    let high_is_h =
        !all.iter().any(|r| matches!(*r, "q" | "f")) && all.iter().any(|r| matches!(*r, "l" | "m"));
    match rid {
        "h" if high_is_h => Quality::High,
        "q" | "l" | "low" | "0" => Quality::Low,
        "" | "f" | "high" | "full" | "2" => Quality::High,
        _ => Quality::Medium,
    }
}

/// What the selection needs to know of one layer.
pub trait LayerView {
    fn rank(&self) -> Quality;
    fn last_rx(&self) -> Instant;
}

/// The layer to send a subscriber who wants `wanted`: the best one at or
/// below it that is still being sent, else the lowest one still sent, else
/// (nothing is sent at all) `None`.
pub fn select<L: LayerView>(layers: &[L], wanted: Quality, now: Instant) -> Option<usize> {
    let active = |l: &&L| now.saturating_duration_since(l.last_rx()) < LAYER_TIMEOUT;
    let indexed = || layers.iter().enumerate().filter(|(_, l)| active(l));
    indexed()
        .filter(|(_, l)| l.rank() <= wanted)
        .max_by_key(|(_, l)| l.rank())
        .or_else(|| indexed().min_by_key(|(_, l)| l.rank()))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct L(Quality, Instant);
    impl LayerView for L {
        fn rank(&self) -> Quality {
            self.0
        }
        fn last_rx(&self) -> Instant {
            self.1
        }
    }

    #[test]
    fn ranks_by_rid_in_either_naming_scheme() {
        let qhf = ["q", "h", "f"];
        assert_eq!(rank("q", &qhf), Quality::Low);
        assert_eq!(rank("h", &qhf), Quality::Medium);
        assert_eq!(rank("f", &qhf), Quality::High);
        let hml = ["h", "m", "l"];
        assert_eq!(rank("h", &hml), Quality::High);
        assert_eq!(rank("m", &hml), Quality::Medium);
        assert_eq!(rank("l", &hml), Quality::Low);
        assert_eq!(rank("", &[]), Quality::High);
    }

    #[test]
    fn selects_best_active_layer_at_or_below_the_wish() {
        let now = Instant::now() + Duration::from_secs(10);
        let old = now - Duration::from_secs(2);
        let all = [
            L(Quality::Low, now),
            L(Quality::Medium, now),
            L(Quality::High, now),
        ];
        assert_eq!(select(&all, Quality::High, now), Some(2));
        assert_eq!(select(&all, Quality::Medium, now), Some(1));
        assert_eq!(select(&all, Quality::Low, now), Some(0));
        // The top layer stopped (bandwidth): the next one down.
        let top_gone = [
            L(Quality::Low, now),
            L(Quality::Medium, now),
            L(Quality::High, old),
        ];
        assert_eq!(select(&top_gone, Quality::High, now), Some(1));
        // Only a better layer than wished for is sent: take it.
        let only_top = [L(Quality::Low, old), L(Quality::High, now)];
        assert_eq!(select(&only_top, Quality::Low, now), Some(1));
        let none = [L(Quality::Low, old)];
        assert_eq!(select(&none, Quality::Low, now), None);
    }
}
