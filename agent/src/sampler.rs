//! The host sampler: collects every series once a second, top processes on demand, and host facts.

mod disks;
mod facts;
mod memory;
mod net;
mod procs;

pub use disks::is_pseudo_mount;
pub use facts::{ContainerEvidence, detect_container};
pub use memory::{CgroupMemory, Memory, cgroup_v1_from, cgroup_v2_from, memory_from, with_v2_swap};
pub use net::{is_ignored_interface, parse_net_dev};
pub use procs::TOP_N;

use std::time::Instant;

use sysinfo::{CpuRefreshKind, System};

use crate::metrics::{HostFacts, ProcessSnapshot, Sample, SeriesId, SeriesNames};

/// Why a [`Sampler`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SamplerError {
    #[error("system information is unavailable: {0}")]
    Sysinfo(#[from] sysinfo::Error),
}

/// Rate of a monotonic counter between two readings `secs` apart; a counter that went backwards
/// (reset or wrap) or a zero interval gives 0.
pub(crate) fn rate(prev: u64, now: u64, secs: f64) -> f64 {
    if secs <= 0.0 || now < prev {
        return 0.0;
    }
    (now - prev) as f64 / secs
}

/// Replaces `buf` with the text of the file at `path`, reusing its allocation; false (and `buf`
/// empty) when it cannot be read.
#[cfg(target_os = "linux")]
pub(crate) fn read_into(path: &str, buf: &mut String) -> bool {
    use std::io::Read;
    buf.clear();
    let ok = std::fs::File::open(path)
        .and_then(|mut f| f.read_to_string(buf))
        .is_ok();
    if !ok {
        buf.clear();
    }
    ok
}

/// A percentage from sysinfo, made finite and clamped to 0..100.
fn percent(v: f32) -> f64 {
    if v.is_finite() {
        f64::from(v).clamp(0.0, 100.0)
    } else {
        0.0
    }
}

/// Ids of the series every sample carries.
#[derive(Debug)]
struct FixedIds {
    cpu: SeriesId,
    load: [SeriesId; 3],
    mem_used: SeriesId,
    mem_available: SeriesId,
    mem_cached: SeriesId,
    mem_total: SeriesId,
    swap_used: SeriesId,
    swap_total: SeriesId,
    uptime: SeriesId,
    procs: SeriesId,
}

impl FixedIds {
    fn new(n: &mut SeriesNames) -> Self {
        Self {
            cpu: n.intern("cpu"),
            load: [n.intern("load.1"), n.intern("load.5"), n.intern("load.15")],
            mem_used: n.intern("mem.used"),
            mem_available: n.intern("mem.available"),
            mem_cached: n.intern("mem.cached"),
            mem_total: n.intern("mem.total"),
            swap_used: n.intern("swap.used"),
            swap_total: n.intern("swap.total"),
            uptime: n.intern("uptime"),
            procs: n.intern("procs"),
        }
    }
}

/// Collects host metrics with as little work per call as it can.
///
/// Series ids are interned in a table the sampler owns: resolve them with
/// [`Sampler::series_name`] or pass [`Sampler::names`] to a `Summarizer` or `Ring`.
pub struct Sampler {
    /// CPU usage, and memory where /proc/meminfo is not used.
    sys: System,
    names: SeriesNames,
    ids: FixedIds,
    core_ids: Vec<SeriesId>,
    disks: disks::DiskTracker,
    net: net::NetTracker,
    procs: procs::ProcessTop,
    #[cfg(target_os = "linux")]
    memory: memory::MemoryReader,
    last: Option<Instant>,
}

impl Sampler {
    /// Sets up the collectors and takes a CPU baseline, so the first sample's CPU covers the
    /// time since construction.
    pub fn new() -> Result<Self, SamplerError> {
        let mut names = SeriesNames::new();
        let ids = FixedIds::new(&mut names);
        let disks = disks::DiskTracker::new(&mut names)?;
        let mut sys = System::new()?;
        sys.refresh_cpu_specifics(CpuRefreshKind::nothing().with_usage());
        Ok(Self {
            sys,
            names,
            ids,
            core_ids: Vec::new(),
            disks,
            net: net::NetTracker::new(),
            procs: procs::ProcessTop::new()?,
            #[cfg(target_os = "linux")]
            memory: memory::MemoryReader::new(),
            last: None,
        })
    }

    /// The name of a series id this sampler handed out (`""` for a foreign id).
    pub fn series_name(&self, id: SeriesId) -> &str {
        self.names.name(id)
    }

    /// The sampler's name table, for `Summarizer::push` and `Ring::since`.
    pub fn names(&self) -> &SeriesNames {
        &self.names
    }

    /// Slow-changing host facts; call once per connection.
    pub fn facts(&mut self) -> HostFacts {
        let total = self.memory().total;
        facts::host_facts(&self.sys, total)
    }

    /// One sample of every series at `now_ms` (wall clock, ms since the Unix epoch).
    pub fn sample(&mut self, now_ms: i64) -> Sample {
        let mut out = Sample::default();
        self.sample_into(now_ms, &mut out);
        out
    }

    /// Like [`Sampler::sample`], but refills `out`, reusing its allocation.
    ///
    /// Rates (`disk.*` throughput, `net.*`) are computed from counter deltas over the monotonic
    /// time since the previous call and are omitted from the first sample, and from the first
    /// sample in which a new interface appears. `cpu` and `cpu.core:N` cover the time since the
    /// previous call (or construction).
    pub fn sample_into(&mut self, now_ms: i64, out: &mut Sample) {
        out.ts_ms = now_ms;
        out.values.clear();
        let now = Instant::now();
        let secs = self
            .last
            .replace(now)
            .map(|prev| now.duration_since(prev).as_secs_f64());
        let ids = &self.ids;
        let v = &mut out.values;

        self.sys
            .refresh_cpu_specifics(CpuRefreshKind::nothing().with_usage());
        v.push((ids.cpu, percent(self.sys.global_cpu_usage())));
        for (i, cpu) in self.sys.cpus().iter().enumerate() {
            if i == self.core_ids.len() {
                let id = self.names.intern_instance("cpu.core", &i.to_string());
                self.core_ids.push(id);
            }
            if let Some(&id) = self.core_ids.get(i) {
                v.push((id, percent(cpu.usage())));
            }
        }

        let load = System::load_average().unwrap_or_default();
        for (id, l) in ids.load.iter().zip([load.one, load.five, load.fifteen]) {
            v.push((*id, if l.is_finite() { l.max(0.0) } else { 0.0 }));
        }

        let m = self.memory();
        let ids = &self.ids;
        let v = &mut out.values;
        v.push((ids.mem_used, m.used as f64));
        v.push((ids.mem_available, m.available as f64));
        if let Some(cached) = m.cached {
            v.push((ids.mem_cached, cached as f64));
        }
        v.push((ids.mem_total, m.total as f64));
        v.push((ids.swap_used, m.swap_used as f64));
        v.push((ids.swap_total, m.swap_total as f64));

        if let Ok(up) = System::uptime() {
            v.push((ids.uptime, up as f64));
        }
        if let Some(n) = self.process_count() {
            v.push((ids.procs, n as f64));
        }

        self.disks.sample(&mut self.names, secs, v);
        self.net.sample(&mut self.names, secs, v);
    }

    /// Top 10 processes by CPU and by resident memory; call every 10 s or so. Only CPU and
    /// memory are refreshed. `by_cpu` is empty on the first call, which has no CPU delta yet;
    /// `cpu_percent` is a share of the whole machine (0..100).
    pub fn processes(&mut self, now_ms: i64) -> ProcessSnapshot {
        let cores = self.sys.cpus().len();
        self.procs.snapshot(now_ms, cores)
    }

    #[cfg(target_os = "linux")]
    fn memory(&mut self) -> memory::Memory {
        match self.memory.read() {
            Some(m) => m,
            None => memory::memory_from_sysinfo(&mut self.sys),
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn memory(&mut self) -> memory::Memory {
        memory::memory_from_sysinfo(&mut self.sys)
    }

    #[cfg(target_os = "linux")]
    fn process_count(&self) -> Option<u64> {
        procs::count_processes().or_else(|| self.procs.last_count())
    }

    /// Elsewhere counting needs a full process refresh, so the count is the one from the
    /// latest [`Sampler::processes`] call (absent before the first).
    #[cfg(not(target_os = "linux"))]
    fn process_count(&self) -> Option<u64> {
        self.procs.last_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn value(s: &Sample, sampler: &Sampler, name: &str) -> Option<f64> {
        s.values
            .iter()
            .find(|(id, _)| sampler.series_name(*id) == name)
            .map(|&(_, v)| v)
    }

    #[test]
    fn rate_handles_resets_and_zero_intervals() {
        assert_eq!(rate(100, 300, 2.0), 100.0);
        assert_eq!(rate(300, 100, 1.0), 0.0);
        assert_eq!(rate(u64::MAX - 5, 10, 1.0), 0.0);
        assert_eq!(rate(1, 2, 0.0), 0.0);
        assert_eq!(percent(f32::NAN), 0.0);
        assert_eq!(percent(150.0), 100.0);
    }

    #[test]
    fn two_real_samples_carry_the_core_series_and_then_rates() {
        let mut s = Sampler::new().expect("sampler");
        std::thread::sleep(Duration::from_millis(250));
        let first = s.sample(1_000);
        assert_eq!(first.ts_ms, 1_000);
        let cpu = value(&first, &s, "cpu").expect("cpu");
        assert!((0.0..=100.0).contains(&cpu));
        assert!(value(&first, &s, "cpu.core:0").is_some());
        assert!(value(&first, &s, "mem.used").expect("mem.used") > 0.0);
        let total = value(&first, &s, "mem.total").expect("mem.total");
        assert!(total > 0.0);
        assert!(value(&first, &s, "mem.used").expect("mem.used") <= total);
        assert!(value(&first, &s, "load.1").expect("load.1") >= 0.0);
        assert!(value(&first, &s, "load.15").is_some());
        assert!(value(&first, &s, "uptime").expect("uptime") > 0.0);
        if cfg!(target_os = "linux") {
            // Elsewhere the count comes with the first `processes()` call.
            assert!(value(&first, &s, "procs").expect("procs") >= 1.0);
            assert!(value(&first, &s, "mem.cached").is_some());
        }
        assert!(value(&first, &s, "swap.total").is_some());
        assert!(value(&first, &s, "disk.read").is_none(), "no rate yet");
        let first_ids: Vec<SeriesId> = first.values.iter().map(|(id, _)| *id).collect();
        let mut dedup = first_ids.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), first_ids.len(), "no series twice");

        std::thread::sleep(Duration::from_millis(250));
        let second = s.sample(2_000);
        assert!(value(&second, &s, "disk.read").expect("disk.read") >= 0.0);
        assert!(value(&second, &s, "disk.write").expect("disk.write") >= 0.0);
        let nets = second
            .values
            .iter()
            .filter(|(id, _)| s.series_name(*id).starts_with("net.rx:"))
            .count();
        if cfg!(target_os = "linux") {
            let interfaces = std::fs::read_dir("/sys/class/net")
                .map(|d| {
                    d.filter_map(Result::ok)
                        .filter(|e| !is_ignored_interface(&e.file_name().to_string_lossy()))
                        .count()
                })
                .unwrap_or(0);
            assert_eq!(nets, interfaces, "one net.rx per non-loopback interface");
        }
        assert!(
            second
                .values
                .iter()
                .all(|(_, v)| v.is_finite() && *v >= 0.0)
        );
    }

    #[test]
    fn sampler_can_move_to_another_thread() {
        fn send<T: Send>() {}
        send::<Sampler>();
        send::<crate::metrics::Ring>();
        send::<crate::metrics::Summarizer>();
    }

    #[test]
    fn facts_describe_this_machine() {
        let mut s = Sampler::new().expect("sampler");
        let f = s.facts();
        assert!(!f.hostname.is_empty());
        assert!(!f.kernel_version.is_empty());
        assert!(!f.arch.is_empty());
        assert!(f.cpu_cores >= 1);
        assert!(f.memory_total_bytes > 0);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as i64;
        // After 2000-01-01 and not in the future.
        assert!(f.boot_time_ms > 946_684_800_000 && f.boot_time_ms <= now_ms);
        assert_eq!(f.boot_time_ms % 1000, 0);
    }

    #[test]
    fn processes_through_the_sampler() {
        let mut s = Sampler::new().expect("sampler");
        let snap = s.processes(5);
        assert_eq!(snap.ts_ms, 5);
        assert!(!snap.by_memory.is_empty());
        assert!(snap.by_memory.len() <= TOP_N);
    }

    /// Rough cost of `sample_into`; prints the time and asserts only that samples were full. `cargo test -- --nocapture cost`.
    #[test]
    fn cost_of_a_sample() {
        let mut s = Sampler::new().expect("sampler");
        let mut out = Sample::default();
        s.sample_into(0, &mut out);
        let n = 100u32;
        let start = Instant::now();
        for k in 0..n {
            s.sample_into(i64::from(k), &mut out);
        }
        let per = start.elapsed() / n;
        assert!(out.values.len() >= 10, "a full sample: {out:?}");
        println!(
            "sample_into: {} µs per call, {} series",
            per.as_micros(),
            out.values.len()
        );
    }
}
