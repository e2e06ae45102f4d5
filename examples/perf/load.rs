//! How busy the machine was with other processes during the run: a
//! benchmark on a 2-core machine is only as good as the machine is quiet.
//!
//! Linux only (`/proc`); elsewhere nothing is reported.

use std::fs;

/// CPU time counters at one moment, in clock ticks (`USER_HZ`).
#[derive(Clone, Copy)]
pub struct Snapshot {
    /// All CPUs, every state.
    total: u64,
    /// All CPUs, idle or waiting for I/O.
    idle: u64,
    /// This process, user and system (every thread).
    own: u64,
}

impl Snapshot {
    /// The counters now, or `None` without `/proc`.
    pub fn now() -> Option<Snapshot> {
        let stat = fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal (guest time is
        // already counted in user).
        let total = cpu.iter().take(8).sum();
        let idle = cpu.get(3)? + cpu.get(4)?;
        let own_stat = fs::read_to_string("/proc/self/stat").ok()?;
        // After the command name in parentheses: state is field 3, utime 14, stime 15.
        let fields: Vec<&str> = own_stat.rsplit_once(')')?.1.split_whitespace().collect();
        let own = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(Snapshot { total, idle, own })
    }

    /// The CPUs other processes kept busy on average since `self`, in
    /// cores (0 is a quiet machine), or `None` if too little time passed.
    pub fn others_since(&self, cores: usize) -> Option<f64> {
        let now = Snapshot::now()?;
        let total = now.total.checked_sub(self.total)?;
        let busy = total.checked_sub(now.idle.checked_sub(self.idle)?)?;
        let others = busy.saturating_sub(now.own.checked_sub(self.own)?);
        (total >= 10 * cores as u64).then(|| others as f64 / (total as f64 / cores as f64))
    }
}
