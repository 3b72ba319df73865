//! The process's own figures (CPU, memory, file descriptors, threads), by
//! the prometheus crate's collector, with one correction: it derives the
//! start time from the boot time in `/proc/stat`, which the hardened unit
//! hides (`ProcSubset=pid`), and then reports 1970. The start is taken
//! from the clock instead, when the registry is made, a moment after the
//! process started.

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::core::{Collector, Desc};
use prometheus::process_collector::ProcessCollector;
use prometheus::proto::MetricFamily;
use prometheus::{IntGauge, Opts};

const START_TIME: &str = "process_start_time_seconds";

pub struct Process {
    inner: ProcessCollector,
    start_time: IntGauge,
}

impl Process {
    pub fn new() -> Self {
        let start_time = IntGauge::with_opts(Opts::new(
            START_TIME,
            "Start time of the process since unix epoch in seconds.",
        ))
        .expect("static metric definition");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        start_time.set(now as i64);
        Self {
            inner: ProcessCollector::for_self(),
            start_time,
        }
    }
}

impl Collector for Process {
    fn desc(&self) -> Vec<&Desc> {
        self.inner.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families = self.inner.collect();
        let from_proc = families.iter().position(|f| f.name() == START_TIME);
        let readable = from_proc.is_some_and(|i| {
            families[i]
                .get_metric()
                .first()
                .is_some_and(|m| m.get_gauge().get_value() > 0.0)
        });
        if !readable {
            families.retain(|f| f.name() != START_TIME);
            families.extend(self.start_time.collect());
        }
        families
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_time_is_recent_and_named_once() {
        let families = Process::new().collect();
        let starts: Vec<_> = families.iter().filter(|f| f.name() == START_TIME).collect();
        assert_eq!(starts.len(), 1);
        let start = starts[0].get_metric()[0].get_gauge().get_value();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        // Either read from /proc (this test process started minutes ago at
        // most) or taken from the clock.
        assert!(
            now - start < 3600.0 && start <= now + 1.0,
            "{start} vs {now}"
        );
    }
}
