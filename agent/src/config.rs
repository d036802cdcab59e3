//! The agent's configuration: every setting declared once in `SPECS` (which
//! also generates `docs/config-agent.md`), validated before anything starts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sovereign_settings::{EnvSource, Layers, SettingsError, Spec};

use crate::{exec, terminal};

mod work;

pub static SPECS: &[Spec] = &[
    Spec {
        key: "state_dir",
        env: "SOVEREIGN_AGENT_STATE_DIR",
        flag: Some("--state-dir"),
        default: "/var/lib/sovereign-agent",
        help: "Key, certificate, identity and the metrics outbox. Created with mode 0700; the key is 0600.",
    },
    Spec {
        key: "server",
        env: "SOVEREIGN_AGENT_SERVER",
        flag: Some("--server"),
        default: "",
        help: "Control plane URL (`https://host:port`). Empty: the one used at enrollment.",
    },
    Spec {
        key: "identity.machine_id",
        env: "SOVEREIGN_AGENT_MACHINE_ID",
        flag: Some("--machine-id"),
        default: "",
        help: "Overrides the machine's identity (default: /etc/machine-id). Re-enrolling with the same id keeps the same agent.",
    },
    Spec {
        key: "identity.hostname",
        env: "SOVEREIGN_AGENT_HOSTNAME",
        flag: Some("--hostname"),
        default: "",
        help: "Overrides the hostname reported to the control plane.",
    },
    Spec {
        key: "metrics.sample_interval",
        env: "SOVEREIGN_AGENT_SAMPLE_INTERVAL",
        flag: None,
        default: "1s",
        help: "How often the host is sampled (100ms to 60s).",
    },
    Spec {
        key: "metrics.summary_interval",
        env: "SOVEREIGN_AGENT_SUMMARY_INTERVAL",
        flag: None,
        default: "10s",
        help: "Window of the min/avg/max summaries streamed and kept in the outbox (a multiple of the sample interval, at most 5m).",
    },
    Spec {
        key: "metrics.history",
        env: "SOVEREIGN_AGENT_HISTORY",
        flag: None,
        default: "1h",
        help: "How much full-rate history is kept in memory.",
    },
    Spec {
        key: "outbox.max_bytes",
        env: "SOVEREIGN_AGENT_OUTBOX_MAX",
        flag: None,
        default: "64MiB",
        help: "Disk space for summaries not yet acknowledged (the default holds well over 24 h of 10 s summaries); the oldest are dropped beyond it.",
    },
    Spec {
        key: "link.backoff_initial",
        env: "SOVEREIGN_AGENT_BACKOFF_INITIAL",
        flag: None,
        default: "1s",
        help: "First reconnect delay; it doubles per failure, with jitter.",
    },
    Spec {
        key: "link.backoff_cap",
        env: "SOVEREIGN_AGENT_BACKOFF_CAP",
        flag: None,
        default: "60s",
        help: "Longest reconnect delay.",
    },
    Spec {
        key: "exec.default_timeout",
        env: "SOVEREIGN_AGENT_EXEC_TIMEOUT",
        flag: None,
        default: "5m",
        help: "Timeout of a command whose request names none (1s to 24h). On timeout the command's whole process group is killed.",
    },
    Spec {
        key: "exec.max_output_bytes",
        env: "SOVEREIGN_AGENT_EXEC_MAX_OUTPUT",
        flag: None,
        default: "1MiB",
        help: "Output (stdout + stderr) kept and sent per command, by default and at most (1KiB to 256MiB); beyond it output is drained and dropped, and the result says `truncated`.",
    },
    Spec {
        key: "exec.max_concurrent",
        env: "SOVEREIGN_AGENT_EXEC_MAX_CONCURRENT",
        flag: None,
        default: "8",
        help: "Commands running at once on this machine (1 to 256); more wait in a queue.",
    },
    Spec {
        key: "exec.history",
        env: "SOVEREIGN_AGENT_EXEC_HISTORY",
        flag: None,
        default: "10000",
        help: "How many command ids (with their results) the agent remembers on disk, so a re-sent id is answered instead of run again (100 to 1000000).",
    },
    Spec {
        key: "terminal.shell",
        env: "SOVEREIGN_AGENT_TERMINAL_SHELL",
        flag: None,
        default: "",
        help: "Shell for terminals whose request names none (an absolute path). Empty: the user's login shell, else `$SHELL`, else `/bin/sh` (PowerShell on Windows).",
    },
    Spec {
        key: "terminal.user",
        env: "SOVEREIGN_AGENT_TERMINAL_USER",
        flag: None,
        default: "",
        help: "User terminals run as when the request names none. Empty: the agent's own user. Another user needs the agent to run as root (and `setpriv` from util-linux).",
    },
    Spec {
        key: "terminal.idle_timeout",
        env: "SOVEREIGN_AGENT_TERMINAL_IDLE_TIMEOUT",
        flag: None,
        default: "5m",
        help: "A terminal nobody is attached to is killed after this long (1s to 7d); until then a viewer can re-attach and see what it missed.",
    },
    Spec {
        key: "terminal.replay_bytes",
        env: "SOVEREIGN_AGENT_TERMINAL_REPLAY",
        flag: None,
        default: "256KiB",
        help: "Output each terminal keeps for a re-attaching viewer (64KiB to 64MiB).",
    },
    Spec {
        key: "terminal.max_sessions",
        env: "SOVEREIGN_AGENT_TERMINAL_MAX_SESSIONS",
        flag: None,
        default: "16",
        help: "Terminals open at once on this machine (1 to 256).",
    },
    Spec {
        key: "log.format",
        env: "SOVEREIGN_AGENT_LOG_FORMAT",
        flag: None,
        default: "text",
        help: "`text` or `json`. The level comes from `RUST_LOG` (default `info`).",
    },
];

#[derive(Debug, Clone)]
pub struct Config {
    pub state_dir: PathBuf,
    pub server: Option<String>,
    pub machine_id: String,
    pub hostname: String,
    pub sample_interval: Duration,
    pub summary_interval: Duration,
    pub history: Duration,
    pub outbox_max_bytes: u64,
    pub backoff_initial: Duration,
    pub backoff_cap: Duration,
    pub log_json: bool,
    pub exec: exec::Settings,
    pub terminal: terminal::Settings,
}

impl Config {
    pub fn load(
        file: Option<&Path>,
        env: EnvSource<'_>,
        flags: &[(&'static str, String)],
    ) -> Result<Self, SettingsError> {
        let l = Layers::load(SPECS, file, env, flags)?;
        let state_dir: PathBuf = l.parse("state_dir", |v| {
            if v.trim().is_empty() {
                Err("must not be empty".into())
            } else {
                Ok(PathBuf::from(v))
            }
        })?;
        let server = match l.raw("server").0.trim() {
            "" => None,
            s if s.starts_with("https://") => Some(s.trim_end_matches('/').to_owned()),
            _ => return Err(l.error("server", "must start with https://")),
        };
        let sample_interval = l.duration("metrics.sample_interval")?;
        if sample_interval < Duration::from_millis(100) || sample_interval > Duration::from_secs(60)
        {
            return Err(l.error("metrics.sample_interval", "must be between 100ms and 60s"));
        }
        let summary_interval = l.duration("metrics.summary_interval")?;
        if summary_interval < sample_interval
            || summary_interval > Duration::from_secs(300)
            || summary_interval.as_millis() % sample_interval.as_millis() != 0
        {
            return Err(l.error(
                "metrics.summary_interval",
                "must be a multiple of the sample interval, at most 5m",
            ));
        }
        let history = l.duration("metrics.history")?;
        if history > Duration::from_secs(6 * 3600) {
            return Err(l.error("metrics.history", "at most 6h (memory)"));
        }
        let outbox_max_bytes = l.parse("outbox.max_bytes", sovereign_settings::parse_size)?;
        if outbox_max_bytes < 64 * 1024 {
            return Err(l.error("outbox.max_bytes", "must be at least 64KiB"));
        }
        let backoff_initial = l.duration("link.backoff_initial")?;
        let backoff_cap = l.duration("link.backoff_cap")?;
        if backoff_initial < Duration::from_millis(10) || backoff_cap < backoff_initial {
            return Err(l.error(
                "link.backoff_cap",
                "backoff_initial must be at least 10ms and backoff_cap at least backoff_initial",
            ));
        }
        let text = |key: &'static str, max: usize| -> Result<String, SettingsError> {
            let v = l.raw(key).0.trim().to_owned();
            if v.chars().count() > max || v.chars().any(char::is_control) {
                return Err(l.error(key, format!("at most {max} printable characters")));
            }
            Ok(v)
        };
        let exec = work::exec(&l)?;
        let terminal = work::terminal(&l, &text)?;
        Ok(Self {
            state_dir,
            server,
            machine_id: text("identity.machine_id", 128)?,
            hostname: text("identity.hostname", 253)?,
            sample_interval,
            summary_interval,
            history,
            outbox_max_bytes,
            backoff_initial,
            backoff_cap,
            log_json: l.parse("log.format", |v| match v {
                "text" => Ok(false),
                "json" => Ok(true),
                _ => Err("use text or json".into()),
            })?,
            exec,
            terminal,
        })
    }
}

pub fn docs() -> String {
    sovereign_settings::render_markdown(
        "Agent configuration (`sovereign-agent`)",
        "Settings are read from the TOML file given with `--config` (nested tables for dotted keys), then environment variables, then flags; later layers win. A bad value stops the agent with a message naming the setting and where it came from, and exit status 64. This page is generated from the code (`sovereign-agent config-docs`); a test keeps it in sync.",
        SPECS,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = Config::load(None, &|_| None, &[]).unwrap();
        assert_eq!(c.summary_interval, Duration::from_secs(10));
        assert!(c.server.is_none());
    }

    #[test]
    fn bad_values_name_the_setting() {
        let env = |k: &str| (k == "SOVEREIGN_AGENT_SUMMARY_INTERVAL").then(|| "15500ms".to_owned());
        let err = Config::load(None, &env, &[]).unwrap_err().to_string();
        assert!(err.contains("metrics.summary_interval"), "{err}");
        let err = Config::load(None, &|_| None, &[("server", "http://x".into())])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--server"), "{err}");
    }

    #[test]
    fn exec_and_terminal_settings_are_validated() {
        let c = Config::load(None, &|_| None, &[]).unwrap();
        assert_eq!(c.exec.default_timeout, Duration::from_secs(300));
        assert_eq!(c.exec.max_output_bytes, 1 << 20);
        assert_eq!((c.exec.max_concurrent, c.exec.history), (8, 10_000));
        assert_eq!(c.terminal.idle_timeout, Duration::from_secs(300));
        assert_eq!(
            (c.terminal.replay_bytes, c.terminal.max_sessions),
            (256 << 10, 16)
        );
        assert!(c.terminal.shell.is_empty() && c.terminal.user.is_empty());
        for (env, value, key) in [
            ("SOVEREIGN_AGENT_EXEC_TIMEOUT", "0s", "exec.default_timeout"),
            (
                "SOVEREIGN_AGENT_EXEC_MAX_OUTPUT",
                "10",
                "exec.max_output_bytes",
            ),
            (
                "SOVEREIGN_AGENT_EXEC_MAX_CONCURRENT",
                "0",
                "exec.max_concurrent",
            ),
            ("SOVEREIGN_AGENT_EXEC_HISTORY", "many", "exec.history"),
            ("SOVEREIGN_AGENT_TERMINAL_SHELL", "bash", "terminal.shell"),
            ("SOVEREIGN_AGENT_TERMINAL_USER", "a b", "terminal.user"),
            (
                "SOVEREIGN_AGENT_TERMINAL_IDLE_TIMEOUT",
                "10ms",
                "terminal.idle_timeout",
            ),
            (
                "SOVEREIGN_AGENT_TERMINAL_REPLAY",
                "1KiB",
                "terminal.replay_bytes",
            ),
            (
                "SOVEREIGN_AGENT_TERMINAL_MAX_SESSIONS",
                "100000",
                "terminal.max_sessions",
            ),
        ] {
            let env = |k: &str| (k == env).then(|| value.to_owned());
            let err = Config::load(None, &env, &[]).unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn default_outbox_holds_a_day_of_summaries() {
        use prost::Message;
        // A big host: 64 cores, 8 mounts, 16 interfaces, and the fixed series.
        let mut names: Vec<String> = (0..64).map(|i| format!("cpu.core:{i}")).collect();
        for m in 0..8 {
            names.push(format!("disk.used:/mnt/volume-{m}"));
            names.push(format!("disk.total:/mnt/volume-{m}"));
        }
        for i in 0..16 {
            for k in ["rx", "tx", "rx_errors", "tx_errors"] {
                names.push(format!("net.{k}:ens{i}"));
            }
        }
        names.extend(
            [
                "cpu",
                "load.1",
                "load.5",
                "load.15",
                "mem.used",
                "mem.available",
                "mem.cached",
                "mem.total",
                "swap.used",
                "swap.total",
                "disk.read",
                "disk.write",
                "uptime",
                "procs",
            ]
            .map(String::from),
        );
        assert!(names.len() >= 150);
        let point = sovereign_proto::v1::MetricPoint {
            ts_ms: 1_800_000_000_000,
            interval_ms: 10_000,
            values: names
                .into_iter()
                .map(|series| sovereign_proto::v1::SeriesValue {
                    series,
                    min: 12.5,
                    avg: 13.25,
                    max: 99.0,
                })
                .collect(),
        };
        let record = point.encoded_len() as u64 + 16;
        let day = 24 * 3600 / 10;
        let c = Config::load(None, &|_| None, &[]).unwrap();
        assert!(
            record * day <= c.outbox_max_bytes,
            "{record} B per summary needs {} B a day",
            record * day
        );
    }

    #[test]
    fn reference_page_is_in_sync() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/config-agent.md");
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == docs(),
            "docs/config-agent.md is stale: run `cargo run -p sovereign-agent -- config-docs > docs/config-agent.md`"
        );
    }
}
