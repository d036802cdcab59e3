//! `/api/v1/prometheus`: the latest point of every connected agent in
//! Prometheus text format, for teams that already scrape with Prometheus.
//! `cpu.core:3` becomes `sovereign_host_cpu_core{instance="3",...}`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{ApiError, SharedState};
use crate::fleet::AgentId;

pub async fn export(State(s): State<SharedState>) -> Result<Response, ApiError> {
    let online: HashMap<AgentId, _> = s.fleet.online().await.into_iter().collect();
    let agents = s.store.list_agents().await?;
    // metric name -> lines, so each family is written once with its TYPE.
    let mut families: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for a in agents {
        let Some(point) = online.get(&a.id).and_then(|l| l.latest.clone()) else {
            continue;
        };
        for stat in &point.stats {
            let (name, instance) = match stat.series.split_once(':') {
                Some((n, i)) => (n, Some(i)),
                None => (&*stat.series, None),
            };
            let metric = metric_name(name);
            let mut labels = format!(
                "agent_id=\"{}\",hostname=\"{}\",project=\"{}\"",
                escape(a.id.as_str()),
                escape(&a.facts.hostname),
                escape(a.project.as_str())
            );
            if let Some(i) = instance {
                let _ = write!(labels, ",instance=\"{}\"", escape(i));
            }
            families
                .entry(metric)
                .or_default()
                .push(format!("{{{labels}}} {} {}", stat.avg, point.ts_ms));
        }
    }
    let mut out = String::new();
    for (metric, lines) in families {
        let _ = writeln!(out, "# TYPE {metric} gauge");
        for l in lines {
            let _ = writeln!(out, "{metric}{l}");
        }
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

/// `disk.used` → `sovereign_host_disk_used`; anything outside `[a-zA-Z0-9_]` becomes `_`.
fn metric_name(series: &str) -> String {
    let body: String = series
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("sovereign_host_{body}")
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_are_safe() {
        assert_eq!(metric_name("cpu.core"), "sovereign_host_cpu_core");
        assert_eq!(metric_name("net.rx_errors"), "sovereign_host_net_rx_errors");
        assert_eq!(metric_name("x-y{z}"), "sovereign_host_x_y_z_");
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
