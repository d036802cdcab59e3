//! Wire ⇄ domain conversions: what the agent sends, and the exec requests
//! it receives.

use sovereign_proto::v1 as pb;
use sovereign_proto::v1::agent_message::Body;

use crate::exec;
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

pub fn exec_request(r: pb::ExecRequest) -> exec::Request {
    let mut env: Vec<(String, String)> = r.env.into_iter().collect();
    env.sort();
    exec::Request {
        exec_id: r.exec_id,
        argv: r.argv,
        script: r.script,
        env,
        cwd: r.cwd,
        timeout_ms: r.timeout_ms,
        run_as: r.run_as,
        max_output_bytes: r.max_output_bytes,
    }
}

pub fn exec_event(e: exec::Event) -> pb::AgentMessage {
    let body = match e {
        exec::Event::Output(o) => Body::ExecOutput(pb::ExecOutput {
            exec_id: o.exec_id.as_str().to_owned(),
            seq: o.seq,
            stream: match o.stream {
                exec::Stream::Stdout => pb::ExecStream::Stdout,
                exec::Stream::Stderr => pb::ExecStream::Stderr,
            }
            .into(),
            data: o.data,
        }),
        exec::Event::Finished(o) => Body::ExecResult(pb::ExecResult {
            exec_id: o.exec_id.as_str().to_owned(),
            exit_code: o.exit_code,
            signal: o.signal,
            duration_ms: o.duration_ms,
            timed_out: o.timed_out,
            cancelled: o.cancelled,
            truncated: o.truncated,
            error: o.error,
            duplicate: o.duplicate,
            output_bytes: o.output_bytes,
            last_seq: o.last_seq,
        }),
    };
    pb::AgentMessage {
        id: 0,
        body: Some(body),
    }
}

pub fn ack(id: u64, error: Option<String>) -> pb::AgentMessage {
    pb::AgentMessage {
        id: 0,
        body: Some(Body::Ack(pb::Ack {
            id,
            ok: error.is_none(),
            error: error.unwrap_or_default(),
        })),
    }
}
