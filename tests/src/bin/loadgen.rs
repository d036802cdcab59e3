//! `sovereign-loadgen`: simulates many agents from one process, each with its
//! own key pair, its own enrollment (one multi-use join token, machine id
//! `loadgen-PREFIX-I`) and its own mutual-TLS gRPC connection. Each sends
//! Hello, a metric batch every `--interval` (start times spread evenly over
//! the interval), heartbeats every 15 s, and live samples each second while
//! the control plane asks for full rate.
//!
//! Progress goes to stderr every few seconds; a JSON summary goes to stdout
//! at the end (after `--duration`, or on SIGINT/SIGTERM).
//!
//! ```text
//! sovereign-loadgen --server https://127.0.0.1:7443 --ca-sha256 HASH --token SECRET \
//!     --agents 10000 --duration 5m --state-file /tmp/lg.json
//! ```

#[path = "loadgen/identity.rs"]
mod identity;
#[path = "loadgen/sim.rs"]
mod sim;
#[path = "loadgen/stats.rs"]
mod stats;
#[path = "loadgen/synth.rs"]
mod synth;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use clap::Parser;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::identity::{AgentCreds, EnrollPlan};
use crate::sim::{Shared, SimAgent};
use crate::stats::Stats;

const MAX_AGENTS: usize = 100_000;
/// File descriptors kept for everything but agent connections.
const FD_HEADROOM: u64 = 256;
/// How long stopped agents get to close their streams.
const DRAIN: Duration = Duration::from_secs(10);

#[derive(Parser, Debug)]
#[command(
    name = "sovereign-loadgen",
    version,
    about = "Simulates many Sovereign agents (real keys, enrollment and mutual-TLS streams) from one process"
)]
struct Args {
    /// Control plane gRPC URL, e.g. https://127.0.0.1:7443
    #[arg(long)]
    server: String,
    /// SHA-256 of the control plane's CA (printed with the join token).
    #[arg(long)]
    ca_sha256: String,
    /// A join token with at least --agents uses (or SOVEREIGN_JOIN_TOKEN).
    /// Not needed when the state file already holds every agent.
    #[arg(
        long,
        env = "SOVEREIGN_JOIN_TOKEN",
        hide_env_values = true,
        default_value = ""
    )]
    token: String,
    /// How many agents to simulate.
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// Metric summary interval per agent (1s..5m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    interval: Duration,
    /// How long the agents run once enrolled; default: until SIGINT/SIGTERM.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Enrollments in flight at once.
    #[arg(long, default_value_t = 64)]
    enroll_concurrency: usize,
    /// Connection attempts (TLS handshake until Welcome) in flight at once.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Machine ids are `loadgen-PREFIX-I`.
    #[arg(long, default_value = "lg")]
    prefix: String,
    /// Keeps enrolled certificates and keys here (0600) so a rerun against
    /// the same control plane skips enrollment.
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// Enroll (and save the state file), then exit without connecting.
    #[arg(long)]
    enroll_only: bool,
    /// Series per metric point.
    #[arg(long, default_value_t = 30)]
    series: usize,
    /// Progress report period on stderr.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    progress: Duration,
    /// Runtime worker threads; default: one per core.
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = validate(&args) {
        eprintln!("sovereign-loadgen: {e}");
        return ExitCode::from(64);
    }
    let nofile = raise_nofile();
    if nofile < args.agents as u64 + FD_HEADROOM {
        eprintln!(
            "loadgen: warning: RLIMIT_NOFILE is {nofile}; {} agents need about {}; expect connection failures",
            args.agents,
            args.agents as u64 + FD_HEADROOM
        );
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(t) = args.threads {
        builder.worker_threads(t.max(1));
    }
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sovereign-loadgen: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (summary, ok) = rt.block_on(run(args, nofile));
    println!("{summary:#}");
    // Leftover connection tasks are dropped with the runtime.
    rt.shutdown_timeout(Duration::from_secs(2));
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn validate(a: &Args) -> Result<(), String> {
    if !a.server.starts_with("https://") {
        return Err("--server must be https://HOST:PORT".into());
    }
    if a.agents == 0 || a.agents > MAX_AGENTS {
        return Err(format!("--agents must be between 1 and {MAX_AGENTS}"));
    }
    if a.interval < Duration::from_secs(1) || a.interval > Duration::from_secs(300) {
        return Err("--interval must be between 1s and 5m".into());
    }
    if a.series == 0 || a.series > 1024 {
        return Err("--series must be between 1 and 1024".into());
    }
    for (name, v) in [
        ("--enroll-concurrency", a.enroll_concurrency),
        ("--connect-concurrency", a.connect_concurrency),
    ] {
        if v == 0 || v > 4096 {
            return Err(format!("{name} must be between 1 and 4096"));
        }
    }
    if a.prefix.is_empty()
        || a.prefix.len() > 64
        || !a
            .prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err("--prefix must be 1-64 characters of [A-Za-z0-9_-]".into());
    }
    if a.progress < Duration::from_millis(500) {
        return Err("--progress must be at least 500ms".into());
    }
    Ok(())
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit.
fn raise_nofile() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("loadgen: warning: cannot raise RLIMIT_NOFILE: {e}");
            rlimit::Resource::NOFILE
                .get()
                .map(|(soft, _)| soft)
                .unwrap_or(1024)
        }
    }
}

/// `500ms`, `10s`, `5m`, `1h`, or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 500ms, 10s, 5m, 1h)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

/// Phases, for the progress line.
const PHASE_ENROLL: u8 = 0;
const PHASE_RUN: u8 = 1;
const PHASE_STOP: u8 = 2;

async fn run(args: Args, nofile: u64) -> (serde_json::Value, bool) {
    let started = Instant::now();
    let stats = Arc::new(Stats::default());
    let stop = CancellationToken::new();
    spawn_signal_handler(stop.clone());
    let pin = match sovereign_agent::tls::parse_fingerprint(&args.ca_sha256) {
        Ok(p) => p,
        Err(e) => return (json!({ "error": format!("--ca-sha256: {e}") }), false),
    };
    let phase = Arc::new(std::sync::atomic::AtomicU8::new(PHASE_ENROLL));
    let reporter = tokio::spawn(report_progress(
        stats.clone(),
        phase.clone(),
        args.agents,
        args.progress,
        started,
    ));

    // Enrollment (or the state file).
    let loaded = match &args.state_file {
        Some(path) => identity::load(path, &pin, &args.prefix),
        None => identity::Loaded {
            ca_der: None,
            agents: Default::default(),
        },
    };
    let plan = Arc::new(EnrollPlan {
        server: args.server.clone(),
        token: args.token.clone(),
        pin,
        prefix: args.prefix.clone(),
        agents: args.agents,
        concurrency: args.enroll_concurrency,
    });
    let enroll_started = Instant::now();
    let enrolled = identity::enroll_missing(plan, loaded, stats.clone(), &stop).await;
    let enroll_secs = enroll_started.elapsed().as_secs_f64();
    let creds: Vec<AgentCreds> = enrolled.agents.into_iter().flatten().collect();
    if let (Some(path), Some(ca)) = (&args.state_file, &enrolled.ca_der)
        && stats.enrolled_now.load(Relaxed) > 0
    {
        match identity::save(path, &args.server, &pin, &args.prefix, ca, &creds) {
            Ok(()) => eprintln!(
                "loadgen: saved {} agent(s) to {}",
                creds.len(),
                path.display()
            ),
            Err(e) => eprintln!(
                "loadgen: could not save the state file {}: {e:#}",
                path.display()
            ),
        }
    }
    let enrolled_now = stats.enrolled_now.load(Relaxed);
    eprintln!(
        "loadgen: {} of {} agents have certificates ({} enrolled in {enroll_secs:.1} s, {} from the state file)",
        creds.len(),
        args.agents,
        enrolled_now,
        stats.reused.load(Relaxed)
    );

    // Running.
    let mut run_secs = 0.0;
    let mut connected_final = 0;
    let mut ran = false;
    let mut run_started_std = None;
    if !args.enroll_only
        && !stop.is_cancelled()
        && let Some(ca_der) = enrolled.ca_der.clone()
        && !creds.is_empty()
    {
        ran = true;
        phase.store(PHASE_RUN, Relaxed);
        let run_started = Instant::now();
        stats.target.store(creds.len() as u64, Relaxed);
        run_started_std = Some(std::time::Instant::now());
        let shared = Arc::new(Shared {
            server: args.server.clone(),
            prefix: args.prefix.clone(),
            ca_der,
            interval: args.interval,
            agents: args.agents,
            series: synth::series_names(args.series),
            stats: stats.clone(),
            connect_gate: Semaphore::new(args.connect_concurrency),
            epoch: run_started,
            boot_time_ms: sovereign_agent::enroll::now_ms() - 86_400_000,
        });
        let agents_stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        for c in creds.iter().cloned() {
            tracker.spawn(SimAgent::new(c).run(shared.clone(), agents_stop.clone()));
        }
        tracker.close();
        match args.duration {
            Some(d) => {
                tokio::select! {
                    () = tokio::time::sleep(d) => {}
                    () = stop.cancelled() => {}
                }
            }
            None => stop.cancelled().await,
        }
        connected_final = stats.connected.load(Relaxed);
        run_secs = run_started.elapsed().as_secs_f64();
        phase.store(PHASE_STOP, Relaxed);
        agents_stop.cancel();
        if tokio::time::timeout(DRAIN, tracker.wait()).await.is_err() {
            eprintln!("loadgen: some agents did not stop within {DRAIN:?}");
        }
    }
    reporter.abort();

    let sent = stats.batches_sent.load(Relaxed);
    let acked = stats.batches_acked.load(Relaxed);
    let rate = |n: u64| {
        if run_secs > 0.0 {
            (n as f64 / run_secs * 10.0).round() / 10.0
        } else {
            0.0
        }
    };
    let all_connected = match (stats.all_connected_at.get(), run_started_std) {
        (Some(at), Some(start)) => {
            Some((at.saturating_duration_since(start).as_secs_f64() * 10.0).round() / 10.0)
        }
        _ => None,
    };
    let summary = json!({
        "agents": args.agents,
        "prefix": args.prefix,
        "interval_s": args.interval.as_secs_f64(),
        "series_per_point": args.series,
        "points_per_batch": 1,
        "nofile_limit": nofile,
        "enrolled": creds.len(),
        "enrolled_now": enrolled_now,
        "reused_from_state_file": stats.reused.load(Relaxed),
        "enroll_seconds": (enroll_secs * 10.0).round() / 10.0,
        "enroll_rate_per_s": if enroll_secs > 0.0 && enrolled_now > 0 { (enrolled_now as f64 / enroll_secs * 10.0).round() / 10.0 } else { 0.0 },
        "run_seconds": (run_secs * 10.0).round() / 10.0,
        "connected_peak": stats.connected_peak.load(Relaxed),
        "connected_final": connected_final,
        "all_connected_after_s_of_run": all_connected,
        "sessions_welcomed": stats.sessions_welcomed.load(Relaxed),
        "batches_sent": sent,
        "batches_acked": acked,
        "batches_abandoned": stats.batches_abandoned.load(Relaxed),
        "ack_rate_per_s": rate(acked),
        "send_rate_per_s": rate(sent),
        "ack_latency_ms": {
            "p50": stats.ack_latency.quantile(0.50),
            "p99": stats.ack_latency.quantile(0.99),
            "max": stats.ack_latency.max(),
        },
        "heartbeats_sent": stats.heartbeats_sent.load(Relaxed),
        "live_samples_sent": stats.live_sent.load(Relaxed),
        "full_rate_requests": stats.full_rate_requests.load(Relaxed),
        "errors": stats.errors(),
        "error_examples": stats.examples(),
    });
    let ok = !creds.is_empty() && (args.enroll_only || ran);
    (summary, ok)
}

fn spawn_signal_handler(stop: CancellationToken) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        eprintln!("loadgen: stopping (signal)");
        stop.cancel();
    });
}

async fn report_progress(
    stats: Arc<Stats>,
    phase: Arc<std::sync::atomic::AtomicU8>,
    agents: usize,
    every: Duration,
    started: Instant,
) {
    let mut tick = tokio::time::interval_at(Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (mut last_sent, mut last_acked, mut last_at) = (0u64, 0u64, Instant::now());
    loop {
        tick.tick().await;
        let now = Instant::now();
        let dt = now.duration_since(last_at).as_secs_f64().max(0.001);
        let sent = stats.batches_sent.load(Relaxed);
        let acked = stats.batches_acked.load(Relaxed);
        let connected = stats.connected.load(Relaxed);
        let elapsed = started.elapsed().as_secs_f64();
        let errors: Vec<String> = stats
            .errors()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let name = match phase.load(Relaxed) {
            PHASE_ENROLL => "enroll",
            PHASE_RUN => "run",
            _ => "stop",
        };
        eprintln!(
            "[{elapsed:>6.0}s] {name}: enrolled {}/{agents} | connected {connected} (peak {}) | sent {sent} ({:.0}/s) acked {acked} ({:.0}/s) | ack p50 {} ms p99 {} ms | errors {}{}",
            stats.enrolled.load(Relaxed),
            stats.connected_peak.load(Relaxed),
            (sent - last_sent) as f64 / dt,
            (acked - last_acked) as f64 / dt,
            stats
                .ack_latency
                .quantile(0.5)
                .map_or("-".into(), |v| v.to_string()),
            stats
                .ack_latency
                .quantile(0.99)
                .map_or("-".into(), |v| v.to_string()),
            stats.error_total(),
            if errors.is_empty() {
                String::new()
            } else {
                format!(" ({})", errors.join(" "))
            },
        );
        (last_sent, last_acked, last_at) = (sent, acked, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
