//! Plausible synthetic data: host facts and metric points shaped like the
//! real agent's (same series naming scheme).

use sovereign_proto::v1 as pb;

/// The series a simulated 4-core host reports, in the agent's naming scheme.
const BASE_SERIES: [&str; 30] = [
    "cpu",
    "cpu.core:0",
    "cpu.core:1",
    "cpu.core:2",
    "cpu.core:3",
    "load.1",
    "load.5",
    "load.15",
    "mem.used",
    "mem.available",
    "mem.cached",
    "mem.total",
    "swap.used",
    "swap.total",
    "uptime",
    "procs",
    "disk.read",
    "disk.write",
    "disk.used:/",
    "disk.total:/",
    "disk.used:/var",
    "disk.total:/var",
    "net.rx:eth0",
    "net.tx:eth0",
    "net.rx:eth1",
    "net.tx:eth1",
    "net.rx:docker0",
    "net.tx:docker0",
    "disk.used:/home",
    "disk.total:/home",
];

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// `n` series names: the 30 above, then `extra.N` if more are asked for.
pub fn series_names(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            BASE_SERIES
                .get(i)
                .map_or_else(|| format!("extra.s:{i}"), |s| (*s).to_owned())
        })
        .collect()
}

pub fn machine_id(prefix: &str, index: usize) -> String {
    format!("loadgen-{prefix}-{index}")
}

pub fn facts(prefix: &str, index: usize, boot_time_ms: i64) -> pb::HostFacts {
    pb::HostFacts {
        hostname: format!("loadgen-{prefix}-{index}.sim.invalid"),
        os_name: "Debian GNU/Linux".into(),
        os_version: "12 (bookworm)".into(),
        kernel_version: "6.1.0-28-amd64".into(),
        arch: "x86_64".into(),
        cpu_model: "Simulated Xeon (sovereign-loadgen)".into(),
        cpu_cores: 4,
        memory_total_bytes: 8 * 1024 * 1024 * 1024,
        boot_time_ms,
        container: String::new(),
    }
}

/// One point of every series, summarised over `interval_ms` ending now.
pub fn point(names: &[String], ts_ms: i64, interval_ms: u32) -> pb::MetricPoint {
    let values = names
        .iter()
        .map(|name| {
            let (lo, hi) = range(name);
            let a = lo + rand::random::<f64>() * (hi - lo);
            let b = lo + rand::random::<f64>() * (hi - lo);
            let (min, max) = if a <= b { (a, b) } else { (b, a) };
            pb::SeriesValue {
                series: name.clone(),
                min,
                avg: (min + max) / 2.0,
                max,
            }
        })
        .collect();
    pb::MetricPoint {
        ts_ms,
        interval_ms,
        values,
    }
}

/// A believable value range per series.
fn range(name: &str) -> (f64, f64) {
    let family = name.split(':').next().unwrap_or(name);
    match family {
        "cpu" | "cpu.core" => (0.0, 100.0),
        "load.1" | "load.5" | "load.15" => (0.0, 4.0),
        "mem.total" => (8.0 * GIB, 8.0 * GIB),
        "mem.used" | "mem.available" | "mem.cached" => (0.5 * GIB, 6.0 * GIB),
        "swap.total" => (2.0 * GIB, 2.0 * GIB),
        "swap.used" => (0.0, 0.1 * GIB),
        "uptime" => (86_400.0, 86_500.0),
        "procs" => (150.0, 260.0),
        "disk.total" => (100.0 * GIB, 100.0 * GIB),
        "disk.used" => (10.0 * GIB, 60.0 * GIB),
        "disk.read" | "disk.write" | "net.rx" | "net.tx" => (0.0, 5.0e6),
        _ => (0.0, 1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_carry_every_series_with_ordered_values() {
        let names = series_names(33);
        assert_eq!(names.len(), 33);
        assert_eq!(names[0], "cpu");
        assert_eq!(names[32], "extra.s:32");
        let p = point(&names, 1_800_000_000_000, 10_000);
        assert_eq!(p.values.len(), 33);
        for v in &p.values {
            assert!(
                v.min <= v.avg && v.avg <= v.max && v.min.is_finite(),
                "{v:?}"
            );
        }
    }
}
