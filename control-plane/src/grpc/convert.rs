//! Hand-written conversions between wire (proto) types and domain types.

use sovereign_proto::v1 as pb;

use crate::exec::{AgentExecEvent, Outcome};
use crate::fleet::{self, HostFacts, Push};
use crate::metrics::{Names, Point, Stat};
use crate::terminal::{FromAgent, ToAgent};

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

pub fn point(p: pb::MetricPoint, names: &Names) -> Point {
    let weight = f64::from(p.interval_ms.max(1));
    Point {
        ts_ms: p.ts_ms,
        interval_ms: p.interval_ms,
        stats: p
            .values
            .into_iter()
            .map(|v| Stat {
                series: names.intern(v.series),
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

/// A push in wire form; `id` numbers the messages that change something.
pub fn push(p: Push, id: u64) -> pb::ControlMessage {
    use pb::control_message::Body;
    let (id, body) = match p {
        Push::MetricAck { up_to_seq } => (0, Body::MetricAck(pb::MetricAck { up_to_seq })),
        Push::Sampling { full_rate } => (0, Body::Sampling(pb::SetSampling { full_rate })),
        Push::Exec(c) => {
            let s = c.spec;
            (
                id,
                Body::Exec(pb::ExecRequest {
                    exec_id: c.exec_id,
                    argv: s.argv,
                    script: s.script,
                    env: s.env.into_iter().collect(),
                    cwd: s.cwd,
                    timeout_ms: u32::try_from(s.timeout_ms).unwrap_or(u32::MAX),
                    run_as: s.run_as,
                    max_output_bytes: s.max_output_bytes,
                }),
            )
        }
        Push::CancelExec { exec_id } => (
            id,
            Body::Cancel(pb::Cancel {
                target_id: 0,
                exec_id,
            }),
        ),
        Push::OpenTerminal {
            session_id,
            cols,
            rows,
        } => (
            id,
            Body::OpenSession(pb::OpenSession {
                session_id,
                kind: "terminal".into(),
                cols,
                rows,
                shell: String::new(),
                user: String::new(),
            }),
        ),
    };
    pb::ControlMessage {
        id,
        body: Some(body),
    }
}

/// An agent's exec report in domain form: (exec id, event).
pub fn exec_output(o: pb::ExecOutput) -> (String, AgentExecEvent) {
    let stderr = o.stream == pb::ExecStream::Stderr as i32;
    (
        o.exec_id,
        AgentExecEvent::Output {
            seq: o.seq,
            stderr,
            data: o.data,
        },
    )
}

pub fn exec_result(r: pb::ExecResult) -> (String, AgentExecEvent) {
    let outcome = Outcome {
        exit_code: r.exit_code,
        signal: r.signal,
        duration_ms: r.duration_ms,
        timed_out: r.timed_out,
        cancelled: r.cancelled,
        truncated: r.truncated,
        error: r
            .error
            .chars()
            .filter(|c| !c.is_control())
            .take(1000)
            .collect(),
        output_bytes: r.output_bytes,
    };
    (
        r.exec_id,
        AgentExecEvent::Result {
            outcome,
            duplicate: r.duplicate,
        },
    )
}

/// A relay message for the agent's terminal stream.
pub fn to_agent(session_id: &str, m: ToAgent) -> pb::TerminalFrame {
    use pb::terminal_frame::Body;
    let body = match m {
        ToAgent::ReplayFrom(offset) => Body::Attach(pb::Attach {
            output_offset: offset,
            replay_from: 0,
            resumed: false,
        }),
        ToAgent::Input(data) => Body::Data(data),
        ToAgent::Resize { cols, rows } => Body::Resize(pb::Resize { cols, rows }),
    };
    pb::TerminalFrame {
        session_id: session_id.to_owned(),
        seq: 0,
        body: Some(body),
    }
}

/// An agent terminal frame in domain form; `None` for frames the relay ignores.
pub fn from_agent(f: pb::TerminalFrame) -> Option<FromAgent> {
    use pb::terminal_frame::Body;
    match f.body? {
        Body::Data(data) => Some(FromAgent::Output {
            offset: f.seq,
            data,
        }),
        Body::Close(c) => Some(FromAgent::Closed {
            exit_code: c.exit_code,
            reason: c.reason.chars().take(500).collect(),
        }),
        Body::Attach(a) => Some(FromAgent::Attached {
            output_offset: a.output_offset,
            replay_from: a.replay_from,
            resumed: a.resumed,
        }),
        Body::Resize(_) => None,
    }
}
