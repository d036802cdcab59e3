//! Domain types for host metrics: interned series names, one-instant samples, windowed summaries, the in-memory ring of recent samples, and process and host facts.

mod ring;
mod summarizer;

pub use ring::{DEFAULT_RING_CAPACITY, Ring};
pub use summarizer::{DEFAULT_WINDOW_MS, Summarizer};

use std::collections::HashMap;
use std::sync::Arc;

/// A cheap handle for a series name such as `"cpu"` or `"net.rx:eth0"`.
///
/// It is an index into the [`SeriesNames`] table that interned it (the [`crate::sampler::Sampler`]
/// keeps one); look the name up with [`SeriesNames::name`] or `Sampler::series_name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesId(u32);

impl SeriesId {
    /// The position of this series in its name table, usable as a dense array index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Append-only table of series names; each distinct name is stored once and gets a [`SeriesId`].
///
/// Names are never forgotten, so the table grows only when a new mount or interface appears.
#[derive(Debug, Default, Clone)]
pub struct SeriesNames {
    names: Vec<Arc<str>>,
    index: HashMap<Arc<str>, SeriesId>,
}

impl SeriesNames {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of `name`, adding it to the table if it is new.
    pub fn intern(&mut self, name: &str) -> SeriesId {
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        let id = SeriesId(u32::try_from(self.names.len()).unwrap_or(u32::MAX));
        let name: Arc<str> = Arc::from(name);
        self.names.push(Arc::clone(&name));
        self.index.insert(name, id);
        id
    }

    /// The id of `"{metric}:{instance}"`, adding it if it is new (allocates only when it is).
    pub fn intern_instance(&mut self, metric: &str, instance: &str) -> SeriesId {
        let mut name = String::with_capacity(metric.len() + 1 + instance.len());
        name.push_str(metric);
        name.push(':');
        name.push_str(instance);
        self.intern(&name)
    }

    /// The id of `name` if it has been interned.
    pub fn get(&self, name: &str) -> Option<SeriesId> {
        self.index.get(name).copied()
    }

    /// The name behind `id`; `""` for an id this table never gave out.
    pub fn name(&self, id: SeriesId) -> &str {
        self.names.get(id.index()).map_or("", |n| n)
    }

    /// The name of the series whose [`SeriesId::index`] is `index`.
    pub fn name_at(&self, index: usize) -> Option<&str> {
        self.names.get(index).map(|n| &**n)
    }

    /// A shared copy of the name behind `id`, for holders that outlive a borrow of the table.
    pub fn name_arc(&self, id: SeriesId) -> Option<Arc<str>> {
        self.names.get(id.index()).cloned()
    }

    /// How many names have been interned.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no name has been interned yet.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Every series measured at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    /// Wall-clock time of the sample, in milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// One value per series; a series is absent when it has no value yet (rates on the first sample).
    pub values: Vec<(SeriesId, f64)>,
}

impl Sample {
    /// The value of series `id` in this sample, if present.
    pub fn get(&self, id: SeriesId) -> Option<f64> {
        self.values.iter().find(|(i, _)| *i == id).map(|&(_, v)| v)
    }
}

/// Minimum, mean and maximum of one series over a summary interval.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesSummary {
    pub series: String,
    pub min: f64,
    pub avg: f64,
    pub max: f64,
}

/// The summaries of every series over one interval ending at `ts_ms`.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryPoint {
    /// End of the interval, in milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// Length of the interval.
    pub interval_ms: u32,
    pub values: Vec<SeriesSummary>,
}

/// One process in a top-N list.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub name: String,
    /// Share of the whole machine (all cores) since the previous snapshot, 0..100.
    pub cpu_percent: f32,
    /// Resident set size.
    pub memory_bytes: u64,
}

/// The heaviest processes at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessSnapshot {
    pub ts_ms: i64,
    /// Top 10 by CPU, highest first (empty on the first snapshot: no CPU delta yet).
    pub by_cpu: Vec<ProcessInfo>,
    /// Top 10 by resident memory, highest first.
    pub by_memory: Vec<ProcessInfo>,
}

/// Slow-changing facts about the host, sent once per connection.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostFacts {
    pub hostname: String,
    pub os_name: String,
    pub os_version: String,
    pub kernel_version: String,
    pub arch: String,
    pub cpu_model: String,
    /// Logical CPUs.
    pub cpu_cores: u32,
    /// Container-aware: the cgroup or lxcfs limit when one applies.
    pub memory_total_bytes: u64,
    /// Milliseconds since the Unix epoch (in a container, when the container started).
    pub boot_time_ms: i64,
    /// `"lxc"`, `"docker"`, `"podman"`, `"systemd-nspawn"`, another value systemd reports, or `""` on bare metal or a VM.
    pub container: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_idempotent_and_names_round_trip() {
        let mut names = SeriesNames::new();
        let cpu = names.intern("cpu");
        let rx = names.intern_instance("net.rx", "eth0");
        assert_ne!(cpu, rx);
        assert_eq!(names.intern("cpu"), cpu);
        assert_eq!(names.intern("net.rx:eth0"), rx);
        assert_eq!(names.name(rx), "net.rx:eth0");
        assert_eq!(names.get("cpu"), Some(cpu));
        assert_eq!(names.get("nope"), None);
        assert_eq!(names.len(), 2);
        assert_eq!(SeriesNames::new().name(rx), "");
    }

    #[test]
    fn sample_get_finds_values() {
        let mut names = SeriesNames::new();
        let a = names.intern("a");
        let b = names.intern("b");
        let s = Sample {
            ts_ms: 1,
            values: vec![(a, 2.0)],
        };
        assert_eq!(s.get(a), Some(2.0));
        assert_eq!(s.get(b), None);
    }
}
