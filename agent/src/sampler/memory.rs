//! Container-aware memory and swap figures: /proc/meminfo (including lxcfs's virtualised one) corrected by cgroup v1/v2 limits on Linux, sysinfo elsewhere.

use sysinfo::{MemoryRefreshKind, System};

/// Memory and swap at one instant, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    pub total: u64,
    pub available: u64,
    /// `total - available`.
    pub used: u64,
    /// Reclaimable page cache; `None` where the platform does not say (sysinfo fallback).
    pub cached: Option<u64>,
    pub swap_total: u64,
    pub swap_used: u64,
}

/// What the memory cgroup of this (possibly containerised) system says, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupMemory {
    /// The hard limit; `None` when unlimited (`max`, or v1's huge sentinel is simply above MemTotal).
    pub limit: Option<u64>,
    /// `memory.current` / `memory.usage_in_bytes`.
    pub usage: u64,
    /// `inactive_file` / `total_inactive_file` from `memory.stat`.
    pub inactive_file: u64,
    /// Reclaimable cache charged to the cgroup, when `memory.stat` tells it.
    pub cache: Option<u64>,
    /// v2 `memory.swap.max`; `None` when unlimited or unknown.
    pub swap_limit: Option<u64>,
    /// v2 `memory.swap.current`.
    pub swap_usage: Option<u64>,
}

/// Values from /proc/meminfo, in bytes.
#[derive(Clone, Copy, Debug, Default)]
struct MemInfo {
    total: u64,
    free: u64,
    available: Option<u64>,
    buffers: u64,
    cached: u64,
    sreclaimable: u64,
    shmem: u64,
    swap_total: u64,
    swap_free: u64,
}

fn parse_meminfo(text: &str) -> MemInfo {
    let mut m = MemInfo::default();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "MemTotal" => &mut m.total,
            "MemFree" => &mut m.free,
            "MemAvailable" => {
                m.available = Some(meminfo_value(rest));
                continue;
            }
            "Buffers" => &mut m.buffers,
            "Cached" => &mut m.cached,
            "SReclaimable" => &mut m.sreclaimable,
            "Shmem" => &mut m.shmem,
            "SwapTotal" => &mut m.swap_total,
            "SwapFree" => &mut m.swap_free,
            _ => continue,
        };
        *slot = meminfo_value(rest);
    }
    m
}

/// `"   24682416 kB"` → bytes; a value without a unit is taken as bytes, garbage as 0.
fn meminfo_value(rest: &str) -> u64 {
    let mut parts = rest.split_ascii_whitespace();
    let n: u64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    match parts.next() {
        Some("kB") => n.saturating_mul(1024),
        _ => n,
    }
}

/// Memory figures from the text of /proc/meminfo, corrected by the cgroup when it limits us.
///
/// `used = total - available`. MemAvailable is distrusted when absent, above MemTotal, or 0 while
/// MemFree is not (all seen under lxcfs); then `available = MemFree + Buffers + Cached +
/// SReclaimable - Shmem`, clamped to `[0, total]`. `cached = Cached + SReclaimable - Shmem`,
/// clamped likewise. When the cgroup has a limit below MemTotal (a container without lxcfs sees
/// the host's meminfo), `total = limit` and `used = usage - inactive_file`, clamped.
pub fn memory_from(meminfo: &str, cgroup: Option<CgroupMemory>) -> Memory {
    let m = parse_meminfo(meminfo);
    let mut total = m.total;
    let fallback = m
        .free
        .saturating_add(m.buffers)
        .saturating_add(m.cached)
        .saturating_add(m.sreclaimable)
        .saturating_sub(m.shmem)
        .min(total);
    let mut available = match m.available {
        Some(a) if a <= total && !(a == 0 && m.free > 0) => a,
        _ => fallback,
    };
    let mut cached = m
        .cached
        .saturating_add(m.sreclaimable)
        .saturating_sub(m.shmem)
        .min(total);
    let mut swap_total = m.swap_total;
    let mut swap_used = m.swap_total.saturating_sub(m.swap_free.min(m.swap_total));

    if let Some(cg) = cgroup {
        if let Some(limit) = cg.limit.filter(|&l| l > 0 && (l < total || total == 0)) {
            total = limit;
            let used = cg.usage.saturating_sub(cg.inactive_file).min(total);
            available = total - used;
            cached = cg.cache.unwrap_or(cached).min(total);
        }
        if let Some(limit) = cg.swap_limit.filter(|&l| l < swap_total) {
            swap_total = limit;
            swap_used = cg.swap_usage.unwrap_or(swap_used).min(limit);
        }
    }
    Memory {
        total,
        available,
        used: total - available,
        cached: Some(cached),
        swap_total,
        swap_used,
    }
}

/// A single-number cgroup file: `Some(n)`, or `None` for `max` or anything unparsable.
fn cgroup_number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The named fields of a `memory.stat` file, in order of `keys`; missing ones are `None`.
fn stat_fields<const N: usize>(stat: &str, keys: [&str; N]) -> [Option<u64>; N] {
    let mut out = [None; N];
    for line in stat.lines() {
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        if let Some(i) = keys.iter().position(|k| *k == key) {
            out[i] = value.trim().parse().ok();
        }
    }
    out
}

/// A cgroup v2 reading from the texts of `memory.max`, `memory.current` and `memory.stat`.
pub fn cgroup_v2_from(max: &str, current: &str, stat: &str) -> CgroupMemory {
    let [inactive_file, file, slab_reclaimable, shmem] =
        stat_fields(stat, ["inactive_file", "file", "slab_reclaimable", "shmem"]);
    let cache = file.map(|f| {
        f.saturating_add(slab_reclaimable.unwrap_or(0))
            .saturating_sub(shmem.unwrap_or(0))
    });
    CgroupMemory {
        limit: cgroup_number(max),
        usage: cgroup_number(current).unwrap_or(0),
        inactive_file: inactive_file.unwrap_or(0),
        cache,
        swap_limit: None,
        swap_usage: None,
    }
}

/// Adds cgroup v2 swap from the texts of `memory.swap.max` and `memory.swap.current`.
pub fn with_v2_swap(mut cg: CgroupMemory, swap_max: &str, swap_current: &str) -> CgroupMemory {
    cg.swap_limit = cgroup_number(swap_max);
    cg.swap_usage = cgroup_number(swap_current);
    cg
}

/// A cgroup v1 reading from the texts of `memory.limit_in_bytes`, `memory.usage_in_bytes` and
/// `memory.stat` (whose `hierarchical_memory_limit` also counts, as a parent may be stricter).
pub fn cgroup_v1_from(limit: &str, usage: &str, stat: &str) -> CgroupMemory {
    let [inactive_file, cache, shmem, hierarchical] = stat_fields(
        stat,
        [
            "total_inactive_file",
            "total_cache",
            "total_shmem",
            "hierarchical_memory_limit",
        ],
    );
    let limit = match (cgroup_number(limit), hierarchical) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    CgroupMemory {
        limit,
        usage: cgroup_number(usage).unwrap_or(0),
        inactive_file: inactive_file.unwrap_or(0),
        cache: cache.map(|c| c.saturating_sub(shmem.unwrap_or(0))),
        swap_limit: None,
        swap_usage: None,
    }
}

/// Memory from sysinfo: the path on Windows and macOS, and on Linux when /proc is unreadable.
pub(crate) fn memory_from_sysinfo(sys: &mut System) -> Memory {
    sys.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram().with_swap());
    let total = sys.total_memory();
    let available = sys.available_memory().min(total);
    let swap_total = sys.total_swap();
    Memory {
        total,
        available,
        used: total - available,
        cached: None,
        swap_total,
        swap_used: sys.used_swap().min(swap_total),
    }
}

#[cfg(target_os = "linux")]
pub(crate) use linux::MemoryReader;

#[cfg(target_os = "linux")]
mod linux {
    use super::{CgroupMemory, Memory, cgroup_v1_from, cgroup_v2_from, memory_from, with_v2_swap};
    use crate::sampler::read_into;
    use std::path::Path;

    const MEMINFO: &str = "/proc/meminfo";
    const V2_MAX: &str = "/sys/fs/cgroup/memory.max";
    const V2_CURRENT: &str = "/sys/fs/cgroup/memory.current";
    const V2_STAT: &str = "/sys/fs/cgroup/memory.stat";
    const V2_SWAP_MAX: &str = "/sys/fs/cgroup/memory.swap.max";
    const V2_SWAP_CURRENT: &str = "/sys/fs/cgroup/memory.swap.current";
    const V1_LIMIT: &str = "/sys/fs/cgroup/memory/memory.limit_in_bytes";
    const V1_USAGE: &str = "/sys/fs/cgroup/memory/memory.usage_in_bytes";
    const V1_STAT: &str = "/sys/fs/cgroup/memory/memory.stat";

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Cgroup {
        None,
        V1,
        V2,
    }

    /// Reads /proc/meminfo and the root memory cgroup into reused buffers.
    ///
    /// Only the cgroup at the root of `/sys/fs/cgroup` is read: inside a container that is the
    /// container's own (cgroup namespace or bind mount); on a host it has no limit, and the
    /// agent's own service cgroup (which may well be limited) is deliberately not consulted.
    #[derive(Debug)]
    pub(crate) struct MemoryReader {
        cgroup: Cgroup,
        meminfo: String,
        bufs: [String; 3],
    }

    impl MemoryReader {
        pub(crate) fn new() -> Self {
            let cgroup = if Path::new(V2_MAX).exists() {
                Cgroup::V2
            } else if Path::new(V1_LIMIT).exists() {
                Cgroup::V1
            } else {
                Cgroup::None
            };
            tracing::debug!(?cgroup, "memory cgroup source");
            Self {
                cgroup,
                meminfo: String::with_capacity(2048),
                bufs: [
                    String::with_capacity(32),
                    String::with_capacity(32),
                    String::with_capacity(2048),
                ],
            }
        }

        /// `None` when /proc/meminfo cannot be read.
        pub(crate) fn read(&mut self) -> Option<Memory> {
            if !read_into(MEMINFO, &mut self.meminfo) {
                return None;
            }
            let cg = self.read_cgroup();
            Some(memory_from(&self.meminfo, cg))
        }

        fn read_cgroup(&mut self) -> Option<CgroupMemory> {
            let [a, b, c] = &mut self.bufs;
            match self.cgroup {
                Cgroup::None => None,
                Cgroup::V2 => {
                    if !(read_into(V2_MAX, a) && read_into(V2_CURRENT, b)) {
                        return None;
                    }
                    read_into(V2_STAT, c);
                    let cg = cgroup_v2_from(a, b, c);
                    if read_into(V2_SWAP_MAX, a) && read_into(V2_SWAP_CURRENT, b) {
                        Some(with_v2_swap(cg, a, b))
                    } else {
                        Some(cg)
                    }
                }
                Cgroup::V1 => {
                    if !(read_into(V1_LIMIT, a) && read_into(V1_USAGE, b)) {
                        return None;
                    }
                    read_into(V1_STAT, c);
                    Some(cgroup_v1_from(a, b, c))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
