//! Tests for `memory`.

use super::*;

const KIB: u64 = 1024;
const GIB: u64 = 1 << 30;

/// A bare-metal (or VM) kernel's /proc/meminfo.
const BARE_METAL: &str = "\
MemTotal:       24682416 kB
MemFree:        21023352 kB
MemAvailable:   24036016 kB
Buffers:           95740 kB
Cached:          3118160 kB
SwapCached:            0 kB
Active:          1107696 kB
Inactive:        2250712 kB
Active(anon):       8000 kB
Inactive(anon):   209936 kB
Active(file):    1099696 kB
Inactive(file):  2040776 kB
Unevictable:       16216 kB
Mlocked:           13744 kB
SwapTotal:       2097148 kB
SwapFree:        1048572 kB
Zswap:                 0 kB
Zswapped:              0 kB
Dirty:               152 kB
Writeback:             0 kB
AnonPages:        160740 kB
Mapped:           112416 kB
Shmem:             73428 kB
KReclaimable:     174296 kB
Slab:             206040 kB
SReclaimable:     174296 kB
SUnreclaim:        31744 kB
KernelStack:        2192 kB
PageTables:         3620 kB
CommitLimit:    14438356 kB
Committed_AS:    1268820 kB
VmallocTotal:   34359738367 kB
HugePages_Total:       0
HugePages_Free:        0
Hugepagesize:       2048 kB
";

/// lxcfs 2.x inside an LXC container limited to 2 GiB: no MemAvailable line at all.
const LXCFS_NO_AVAILABLE: &str = "\
MemTotal:        2097152 kB
MemFree:         1048576 kB
Buffers:               0 kB
Cached:           524288 kB
SwapCached:            0 kB
Active:           786432 kB
Inactive:         262144 kB
Active(anon):     524288 kB
Inactive(anon):        0 kB
Active(file):     262144 kB
Inactive(file):   262144 kB
Unevictable:           0 kB
Mlocked:               0 kB
SwapTotal:        524288 kB
SwapFree:         524288 kB
Dirty:                 0 kB
Writeback:             0 kB
AnonPages:        524288 kB
Mapped:            65536 kB
Shmem:             16384 kB
Slab:                  0 kB
SReclaimable:          0 kB
SUnreclaim:            0 kB
";

/// lxcfs passing the host's MemAvailable (30 GiB) through for a 4 GiB container.
const LXCFS_AVAILABLE_ABOVE_TOTAL: &str = "\
MemTotal:        4194304 kB
MemFree:         3145728 kB
MemAvailable:   31457280 kB
Buffers:               0 kB
Cached:           262144 kB
SwapCached:            0 kB
SwapTotal:             0 kB
SwapFree:              0 kB
Shmem:              8192 kB
Slab:              65536 kB
SReclaimable:      32768 kB
SUnreclaim:        32768 kB
";

/// cgroup v2 `memory.stat` of a Docker container.
const V2_STAT: &str = "\
anon 250000000
file 268435456
kernel 12345678
kernel_stack 1000000
pagetables 2000000
sec_pagetables 0
percpu 100000
sock 0
vmalloc 0
shmem 4194304
zswap 0
zswapped 0
file_mapped 50000000
file_dirty 0
file_writeback 0
swapcached 0
anon_thp 0
file_thp 0
shmem_thp 0
inactive_anon 240000000
active_anon 10000000
inactive_file 134217728
active_file 134217728
unevictable 0
slab_reclaimable 8388608
slab_unreclaimable 2000000
slab 10388608
workingset_refault_anon 0
workingset_refault_file 10
pgfault 123456
pgmajfault 12
";

/// cgroup v1 `memory.stat` of a Docker container limited to 2 GiB.
const V1_STAT: &str = "\
cache 536870912
rss 805306368
rss_huge 0
shmem 16777216
mapped_file 33554432
dirty 0
writeback 0
swap 0
pgpgin 1000
pgpgout 900
pgfault 5000
pgmajfault 3
inactive_anon 0
active_anon 805306368
inactive_file 134217728
active_file 268435456
unevictable 0
hierarchical_memory_limit 2147483648
hierarchical_memsw_limit 9223372036854771712
total_cache 536870912
total_rss 805306368
total_rss_huge 0
total_shmem 16777216
total_mapped_file 33554432
total_inactive_anon 0
total_active_anon 805306368
total_inactive_file 268435456
total_active_file 268435456
total_unevictable 0
";

/// cgroup v1 root `memory.stat` on an unlimited host (real, abridged).
const V1_STAT_UNLIMITED: &str = "\
cache 70426624
rss 5058560
shmem 13082624
inactive_file 39952384
hierarchical_memory_limit 9223372036854771712
hierarchical_memsw_limit 9223372036854771712
total_cache 3291164672
total_rss 164663296
total_shmem 75190272
total_inactive_file 2089885696
";

#[test]
fn bare_metal_uses_mem_available() {
    let m = memory_from(BARE_METAL, None);
    assert_eq!(m.total, 24_682_416 * KIB);
    assert_eq!(m.available, 24_036_016 * KIB);
    assert_eq!(m.used, (24_682_416 - 24_036_016) * KIB);
    assert_eq!(m.cached, Some((3_118_160 + 174_296 - 73_428) * KIB));
    assert_eq!(m.swap_total, 2_097_148 * KIB);
    assert_eq!(m.swap_used, (2_097_148 - 1_048_572) * KIB);
}

#[test]
fn lxcfs_without_mem_available_falls_back_to_free_plus_cache() {
    let m = memory_from(LXCFS_NO_AVAILABLE, None);
    assert_eq!(m.total, 2 * GIB);
    // MemFree + Buffers + Cached + SReclaimable - Shmem
    let available = (1_048_576 + 524_288 - 16_384) * KIB;
    assert_eq!(m.available, available);
    assert_eq!(m.used, 2 * GIB - available);
    assert_eq!(m.cached, Some((524_288 - 16_384) * KIB));
    assert_eq!((m.swap_total, m.swap_used), (512 * 1024 * KIB, 0));
}

#[test]
fn mem_available_above_total_is_distrusted() {
    let m = memory_from(LXCFS_AVAILABLE_ABOVE_TOTAL, None);
    assert_eq!(m.total, 4 * GIB);
    let available = (3_145_728 + 262_144 + 32_768 - 8_192) * KIB;
    assert_eq!(m.available, available);
    assert_eq!(m.used, 4 * GIB - available);
    assert!(m.used < m.total);
}

#[test]
fn zero_mem_available_with_free_memory_is_distrusted() {
    let text = "MemTotal: 1000 kB\nMemFree: 600 kB\nMemAvailable: 0 kB\nCached: 100 kB\n";
    let m = memory_from(text, None);
    assert_eq!(m.available, 700 * KIB);
    assert_eq!(m.used, 300 * KIB);
    // A genuinely full machine (no free memory) keeps its 0.
    let full = "MemTotal: 1000 kB\nMemFree: 0 kB\nMemAvailable: 0 kB\n";
    assert_eq!(memory_from(full, None).used, 1000 * KIB);
}

#[test]
fn fallback_is_clamped_to_total_and_cached_never_underflows() {
    // lxcfs has been seen reporting MemFree above MemTotal, and Shmem above Cached.
    let text = "MemTotal: 1000 kB\nMemFree: 5000 kB\nCached: 10 kB\nShmem: 50 kB\n\
                SwapTotal: 100 kB\nSwapFree: 200 kB\n";
    let m = memory_from(text, None);
    assert_eq!(m.available, 1000 * KIB);
    assert_eq!(m.used, 0);
    assert_eq!(m.cached, Some(0));
    assert_eq!(m.swap_used, 0);
}

#[test]
fn cgroup_v2_limit_below_host_memory_wins() {
    let cg = cgroup_v2_from("1073741824\n", "536870912\n", V2_STAT);
    assert_eq!(cg.limit, Some(GIB));
    assert_eq!(cg.inactive_file, 134_217_728);
    assert_eq!(cg.cache, Some(268_435_456 + 8_388_608 - 4_194_304));
    let m = memory_from(BARE_METAL, Some(cg));
    assert_eq!(m.total, GIB);
    assert_eq!(m.used, 536_870_912 - 134_217_728);
    assert_eq!(m.available, GIB - m.used);
    assert_eq!(m.cached, Some(268_435_456 + 8_388_608 - 4_194_304));
    // No swap files given: the host's swap stands.
    assert_eq!(m.swap_total, 2_097_148 * KIB);
}

#[test]
fn cgroup_v2_max_means_no_limit() {
    let cg = cgroup_v2_from("max\n", "536870912\n", V2_STAT);
    assert_eq!(cg.limit, None);
    assert_eq!(
        memory_from(BARE_METAL, Some(cg)),
        memory_from(BARE_METAL, None)
    );
}

#[test]
fn cgroup_v2_swap_limit_applies() {
    let cg = cgroup_v2_from("1073741824\n", "536870912\n", V2_STAT);
    let cg = with_v2_swap(cg, "268435456\n", "1048576\n");
    let m = memory_from(BARE_METAL, Some(cg));
    assert_eq!((m.swap_total, m.swap_used), (268_435_456, 1_048_576));
    let unlimited = with_v2_swap(cg, "max\n", "1048576\n");
    assert_eq!(
        memory_from(BARE_METAL, Some(unlimited)).swap_total,
        2_097_148 * KIB
    );
}

#[test]
fn cgroup_v1_limit_below_host_memory_wins() {
    let cg = cgroup_v1_from("2147483648\n", "1073741824\n", V1_STAT);
    assert_eq!(cg.limit, Some(2 * GIB));
    let m = memory_from(BARE_METAL, Some(cg));
    assert_eq!(m.total, 2 * GIB);
    assert_eq!(m.used, GIB - 268_435_456);
    assert_eq!(m.cached, Some(536_870_912 - 16_777_216));
}

#[test]
fn cgroup_v1_hierarchical_limit_is_honoured() {
    // The container's own file says unlimited but a parent caps it at 2 GiB.
    let cg = cgroup_v1_from("9223372036854771712\n", "1073741824\n", V1_STAT);
    assert_eq!(cg.limit, Some(2 * GIB));
    assert_eq!(memory_from(BARE_METAL, Some(cg)).total, 2 * GIB);
}

#[test]
fn cgroup_v1_unlimited_host_keeps_meminfo() {
    let cg = cgroup_v1_from("9223372036854771712\n", "3455750144\n", V1_STAT_UNLIMITED);
    assert_eq!(
        memory_from(BARE_METAL, Some(cg)),
        memory_from(BARE_METAL, None)
    );
}

#[test]
fn cgroup_limit_above_meminfo_total_is_ignored() {
    // lxcfs already shows the 2 GiB limit; a looser cgroup limit changes nothing.
    let cg = cgroup_v2_from("4294967296\n", "536870912\n", V2_STAT);
    assert_eq!(
        memory_from(LXCFS_NO_AVAILABLE, Some(cg)),
        memory_from(LXCFS_NO_AVAILABLE, None)
    );
}

#[test]
fn cgroup_usage_is_clamped() {
    let below = cgroup_v2_from("1073741824", "1000", V2_STAT);
    assert_eq!(memory_from(BARE_METAL, Some(below)).used, 0);
    let above = cgroup_v2_from("1073741824", "9999999999", "inactive_file 0\n");
    let m = memory_from(BARE_METAL, Some(above));
    assert_eq!((m.used, m.available), (GIB, 0));
}

#[test]
fn unreadable_meminfo_with_a_cgroup_limit_uses_the_limit() {
    let cg = cgroup_v2_from("1073741824", "536870912", V2_STAT);
    let m = memory_from("", Some(cg));
    assert_eq!(m.total, GIB);
    assert_eq!(
        memory_from("", None),
        Memory {
            cached: Some(0),
            ..Memory::default()
        }
    );
}

#[cfg(target_os = "linux")]
#[test]
fn reader_matches_this_machine() {
    let mut r = MemoryReader::new();
    let m = r.read().expect("/proc/meminfo readable");
    assert!(m.total > 0 && m.used > 0 && m.used <= m.total);
    assert_eq!(m.used + m.available, m.total);
}

#[test]
fn sysinfo_fallback_reports_this_machine() {
    let mut sys = System::new().expect("sysinfo");
    let m = memory_from_sysinfo(&mut sys);
    assert!(m.total > 0 && m.used <= m.total);
    assert_eq!(m.cached, None);
}
