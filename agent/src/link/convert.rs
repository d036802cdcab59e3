//! Domain → wire conversions for what the agent sends.

use sovereign_proto::v1 as pb;

use crate::metrics::{HostFacts, ProcessInfo, ProcessSnapshot, SummaryPoint};

pub fn point(p: &SummaryPoint) -> pb::MetricPoint {
    pb::MetricPoint {
        ts_ms: p.ts_ms,
        interval_ms: p.interval_ms,
        values: p
            .values
            .iter()
            .map(|v| pb::SeriesValue {
                series: v.series.clone(),
                min: v.min,
                avg: v.avg,
                max: v.max,
            })
            .collect(),
    }
}

pub fn facts(f: &HostFacts) -> pb::HostFacts {
    pb::HostFacts {
        hostname: f.hostname.clone(),
        os_name: f.os_name.clone(),
        os_version: f.os_version.clone(),
        kernel_version: f.kernel_version.clone(),
        arch: f.arch.clone(),
        cpu_model: f.cpu_model.clone(),
        cpu_cores: f.cpu_cores,
        memory_total_bytes: f.memory_total_bytes,
        boot_time_ms: f.boot_time_ms,
        container: f.container.clone(),
    }
}

pub fn processes(p: &ProcessSnapshot) -> pb::ProcessSnapshot {
    let conv = |l: &[ProcessInfo]| {
        l.iter()
            .map(|i| pb::ProcessInfo {
                pid: i.pid,
                name: i.name.clone(),
                cpu_percent: i.cpu_percent,
                memory_bytes: i.memory_bytes,
            })
            .collect()
    };
    pb::ProcessSnapshot {
        ts_ms: p.ts_ms,
        by_cpu: conv(&p.by_cpu),
        by_memory: conv(&p.by_memory),
    }
}
