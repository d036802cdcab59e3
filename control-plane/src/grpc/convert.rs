//! Hand-written conversions between wire (proto) types and domain types.

use sovereign_proto::v1 as pb;

use crate::fleet::{self, HostFacts, Push};
use crate::metrics::{Point, Stat};

pub fn facts(f: pb::HostFacts) -> HostFacts {
    HostFacts {
        hostname: f.hostname,
        os_name: f.os_name,
        os_version: f.os_version,
        kernel_version: f.kernel_version,
        arch: f.arch,
        cpu_model: f.cpu_model,
        cpu_cores: f.cpu_cores,
        memory_total_bytes: f.memory_total_bytes,
        boot_time_ms: f.boot_time_ms,
        container: f.container,
    }
    .sanitized()
}

pub fn point(p: pb::MetricPoint) -> Point {
    let weight = f64::from(p.interval_ms.max(1));
    Point {
        ts_ms: p.ts_ms,
        interval_ms: p.interval_ms,
        stats: p
            .values
            .into_iter()
            .map(|v| Stat {
                series: v.series,
                min: v.min,
                avg: v.avg,
                max: v.max,
                weight,
            })
            .collect(),
    }
}

pub fn processes(p: pb::ProcessSnapshot) -> fleet::ProcessSnapshot {
    let conv = |list: Vec<pb::ProcessInfo>| {
        list.into_iter()
            .take(32)
            .map(|i| fleet::ProcessInfo {
                pid: i.pid,
                name: i
                    .name
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(128)
                    .collect(),
                cpu_percent: if i.cpu_percent.is_finite() {
                    i.cpu_percent
                } else {
                    0.0
                },
                memory_bytes: i.memory_bytes,
            })
            .collect()
    };
    fleet::ProcessSnapshot {
        ts_ms: p.ts_ms,
        by_cpu: conv(p.by_cpu),
        by_memory: conv(p.by_memory),
    }
}

pub fn push(p: Push) -> pb::ControlMessage {
    let body = match p {
        Push::MetricAck { up_to_seq } => {
            pb::control_message::Body::MetricAck(pb::MetricAck { up_to_seq })
        }
        Push::Sampling { full_rate } => {
            pb::control_message::Body::Sampling(pb::SetSampling { full_rate })
        }
    };
    pb::ControlMessage {
        id: 0,
        body: Some(body),
    }
}
