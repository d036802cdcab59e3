//! Top processes by CPU and memory (refreshing only CPU and memory), and the process count.

use std::collections::HashMap;
use std::time::Instant;

use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};

use crate::metrics::{ProcessInfo, ProcessSnapshot};

/// How many processes each top list holds.
pub const TOP_N: usize = 10;

/// Top-process tracker.
///
/// CPU is computed here from each process's accumulated CPU time over the monotonic time between
/// snapshots, rather than taken from sysinfo, which reports 0 for a process whose CPU time was 0
/// when first seen (so a freshly started hog would be invisible for a whole interval). It keeps
/// its own `System` so its refreshes do not disturb the per-second CPU figures of the sampler's.
pub(crate) struct ProcessTop {
    sys: System,
    /// pid → (start time, accumulated CPU ms) at the previous snapshot; `None` before the first.
    prev: Option<HashMap<u32, (u64, u64)>>,
    /// The map being built for the next snapshot, kept to reuse its allocation.
    next: HashMap<u32, (u64, u64)>,
    last: Option<Instant>,
    /// (pid, cpu percent of the machine, resident bytes), reused between snapshots.
    scratch: Vec<(u32, f32, u64)>,
    count: Option<u64>,
}

impl ProcessTop {
    pub(crate) fn new() -> Result<Self, sysinfo::Error> {
        Ok(Self {
            sys: System::new()?,
            prev: None,
            next: HashMap::new(),
            last: None,
            scratch: Vec::new(),
            count: None,
        })
    }

    /// Process count as of the last snapshot (the fallback where /proc cannot be counted).
    pub(crate) fn last_count(&self) -> Option<u64> {
        self.count
    }

    /// Refreshes CPU times and memory of every process (no command lines, environments or
    /// threads) and returns the top lists; `cores` normalises CPU to a share of the machine.
    pub(crate) fn snapshot(&mut self, now_ms: i64, cores: usize) -> ProcessSnapshot {
        self.sys.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing()
                .without_tasks()
                .with_cpu()
                .with_memory(),
        );
        let now = Instant::now();
        let elapsed_ms = self
            .last
            .replace(now)
            .map(|t| now.duration_since(t).as_secs_f64() * 1000.0);
        // CPU milliseconds the whole machine offers over the interval.
        let capacity_ms = elapsed_ms.map(|ms| ms * cores.max(1) as f64);

        self.next.clear();
        self.scratch.clear();
        for (pid, p) in self.sys.processes() {
            let pid = pid.as_u32();
            let (start, cpu_ms) = (p.start_time(), p.accumulated_cpu_time());
            self.next.insert(pid, (start, cpu_ms));
            let before = self.prev.as_ref().and_then(|m| m.get(&pid)).copied();
            let cpu = capacity_ms.map_or(0.0, |cap| cpu_share(before, start, cpu_ms, cap));
            self.scratch.push((pid, cpu, p.memory()));
        }
        let first = self.prev.is_none();
        let mut prev = self.prev.take().unwrap_or_default();
        std::mem::swap(&mut prev, &mut self.next);
        self.prev = Some(prev);
        self.count = Some(self.scratch.len() as u64);

        let by_cpu = if first {
            Vec::new()
        } else {
            top(&mut self.scratch, |a, b| {
                b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
            });
            self.infos()
        };
        top(&mut self.scratch, |a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        let by_memory = self.infos();
        ProcessSnapshot {
            ts_ms: now_ms,
            by_cpu,
            by_memory,
        }
    }

    /// The first `TOP_N` entries of `scratch` as named infos.
    fn infos(&self) -> Vec<ProcessInfo> {
        self.scratch
            .iter()
            .take(TOP_N)
            .map(|&(pid, cpu_percent, memory_bytes)| ProcessInfo {
                pid,
                name: self
                    .sys
                    .process(sysinfo::Pid::from_u32(pid))
                    .map(|p| p.name().to_string_lossy().into_owned())
                    .unwrap_or_default(),
                cpu_percent,
                memory_bytes,
            })
            .collect()
    }
}

/// Percent of the machine's `capacity_ms` of CPU time that a process used, given its
/// (start time, accumulated CPU ms) at the previous snapshot. A process absent then, or a pid
/// reused by a process with another start time, started within the interval: all its CPU counts.
fn cpu_share(before: Option<(u64, u64)>, start: u64, cpu_ms: u64, capacity_ms: f64) -> f32 {
    if capacity_ms <= 0.0 {
        return 0.0;
    }
    let base = match before {
        Some((s, ms)) if s == start => ms,
        _ => 0,
    };
    (cpu_ms.saturating_sub(base) as f64 / capacity_ms * 100.0).clamp(0.0, 100.0) as f32
}

/// Moves the `TOP_N` smallest entries under `order` to the front, sorted.
fn top<T>(items: &mut [T], order: impl Fn(&T, &T) -> std::cmp::Ordering) {
    if items.len() > TOP_N {
        items.select_nth_unstable_by(TOP_N, &order);
    }
    let n = items.len().min(TOP_N);
    items[..n].sort_unstable_by(&order);
}

/// Counts the processes in /proc (in a container, the container's own).
#[cfg(target_os = "linux")]
pub(crate) fn count_processes() -> Option<u64> {
    let dir = std::fs::read_dir("/proc").ok()?;
    let n = dir
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let b = name.as_encoded_bytes();
            !b.is_empty() && b.iter().all(u8::is_ascii_digit)
        })
        .count();
    Some(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn top_selects_and_sorts_the_largest() {
        let mut v: Vec<(u32, f32, u64)> =
            (0..25).map(|i| (i, 0.0, u64::from(i * 7 % 25))).collect();
        top(&mut v, |a, b| b.2.cmp(&a.2));
        let mem: Vec<u64> = v[..TOP_N].iter().map(|e| e.2).collect();
        assert_eq!(mem, [24, 23, 22, 21, 20, 19, 18, 17, 16, 15]);
        let mut short = vec![(1, 0.0, 1), (2, 0.0, 3)];
        top(&mut short, |a, b| b.2.cmp(&a.2));
        assert_eq!(short[0].0, 2);
    }

    #[test]
    fn cpu_share_uses_the_delta_of_the_same_process() {
        // 2 cores for 10 s = 20_000 ms of capacity.
        assert_eq!(cpu_share(Some((100, 5_000)), 100, 10_000, 20_000.0), 25.0);
        // New process, or a reused pid: everything since it started.
        assert_eq!(cpu_share(None, 100, 2_000, 20_000.0), 10.0);
        assert_eq!(cpu_share(Some((99, 5_000)), 100, 2_000, 20_000.0), 10.0);
        // Counter going backwards, nonsense capacity.
        assert_eq!(cpu_share(Some((100, 5_000)), 100, 4_000, 20_000.0), 0.0);
        assert_eq!(cpu_share(None, 100, 1, 0.0), 0.0);
        assert_eq!(cpu_share(None, 100, 50_000, 20_000.0), 100.0);
    }

    #[test]
    fn busy_thread_shows_up_in_the_cpu_top() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut t = ProcessTop::new().expect("sysinfo");
        let first = t.snapshot(1, cores);
        assert!(
            first.by_cpu.is_empty(),
            "no CPU delta on the first snapshot"
        );
        assert_eq!(
            first.by_memory.len(),
            TOP_N.min(t.last_count().unwrap_or(0) as usize)
        );
        assert!(
            first
                .by_memory
                .windows(2)
                .all(|w| w[0].memory_bytes >= w[1].memory_bytes)
        );
        let until = Instant::now() + Duration::from_millis(600);
        let mut spin = 0u64;
        while Instant::now() < until {
            spin = std::hint::black_box(spin.wrapping_add(1));
        }
        let snap = t.snapshot(2, cores);
        let me = std::process::id();
        let mine = snap.by_cpu.iter().find(|p| p.pid == me).unwrap_or_else(|| {
            panic!("the spinning test process {me} is in the CPU top 10: {snap:#?}")
        });
        // One core spinning for the whole interval is 100/cores percent of the machine.
        assert!(mine.cpu_percent > 30.0 / cores as f32, "{mine:?}");
        assert!(
            snap.by_cpu
                .iter()
                .all(|p| (0.0..=100.0).contains(&p.cpu_percent))
        );
        assert!(!mine.name.is_empty());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn counts_this_process_among_others() {
        let n = count_processes().expect("/proc readable");
        assert!(n >= 1);
    }
}
