//! The control plane's own metrics, exported in Prometheus text format at `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub struct Telemetry {
    pub points_ingested: Counter,
    pub batches_ingested: Counter,
    pub ingest_errors: Counter,
    pub enrollments: Counter,
    pub enrollments_refused: Counter,
    pub sessions_opened: Counter,
    pub sessions_refused: Counter,
    pub certs_renewed: Counter,
    pub bad_messages: Counter,
}

impl Telemetry {
    /// Renders every counter plus the given gauges.
    pub fn render(&self, agents_online: usize, agents_known: usize) -> String {
        let mut out = String::with_capacity(2048);
        let counters: [(&str, &str, &Counter); 9] = [
            (
                "sovereign_metric_points_ingested_total",
                "Metric points stored (duplicates excluded).",
                &self.points_ingested,
            ),
            (
                "sovereign_metric_batches_ingested_total",
                "Metric batches stored and acked.",
                &self.batches_ingested,
            ),
            (
                "sovereign_metric_ingest_errors_total",
                "Failed metric store transactions.",
                &self.ingest_errors,
            ),
            (
                "sovereign_enrollments_total",
                "Successful agent enrollments.",
                &self.enrollments,
            ),
            (
                "sovereign_enrollments_refused_total",
                "Refused enrollment attempts.",
                &self.enrollments_refused,
            ),
            (
                "sovereign_agent_sessions_opened_total",
                "Agent streams accepted.",
                &self.sessions_opened,
            ),
            (
                "sovereign_agent_sessions_refused_total",
                "Agent streams refused (revoked, unknown or malformed).",
                &self.sessions_refused,
            ),
            (
                "sovereign_certificates_renewed_total",
                "Agent certificates renewed over the stream.",
                &self.certs_renewed,
            ),
            (
                "sovereign_agent_bad_messages_total",
                "Agent messages rejected as malformed.",
                &self.bad_messages,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.get()
            );
        }
        let _ = writeln!(
            out,
            "# HELP sovereign_agents_online Agents with a live stream.\n# TYPE sovereign_agents_online gauge\nsovereign_agents_online {agents_online}"
        );
        let _ = writeln!(
            out,
            "# HELP sovereign_agents_known Enrolled agents.\n# TYPE sovereign_agents_known gauge\nsovereign_agents_known {agents_known}"
        );
        out
    }
}
