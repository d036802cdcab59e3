//! The control plane's configuration: every setting declared once in `SPECS`
//! (which also generates `docs/config-control-plane.md`), validated before
//! the runtime starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sovereign_settings::{EnvSource, Layers, SettingsError, Spec};

pub static SPECS: &[Spec] = &[
    Spec {
        key: "data_dir",
        env: "SOVEREIGN_DATA_DIR",
        flag: Some("--data-dir"),
        default: "./sovereign-data",
        help: "Where the CA, the SQLite database and the bootstrap token live. Created with mode 0700.",
    },
    Spec {
        key: "database.url",
        env: "SOVEREIGN_DATABASE_URL",
        flag: Some("--database-url"),
        default: "",
        help: "`sqlite://PATH` or `postgres://USER:PASS@HOST/DB`. Empty: SQLite at `DATA_DIR/sovereign.db`. On SQLite, terminal recordings are files in `PATH-recordings/` beside the database (back up both); on PostgreSQL they are in the database.",
    },
    Spec {
        key: "grpc.listen",
        env: "SOVEREIGN_GRPC_LISTEN",
        flag: Some("--grpc-listen"),
        default: "0.0.0.0:7443",
        help: "Address agents connect to (mutual TLS gRPC; enrollment also arrives here).",
    },
    Spec {
        key: "grpc.public_url",
        env: "SOVEREIGN_PUBLIC_URL",
        flag: Some("--public-url"),
        default: "",
        help: "The `https://host:port` agents should dial, used in the printed install command. Empty: derived from the first server name and the gRPC port.",
    },
    Spec {
        key: "grpc.server_names",
        env: "SOVEREIGN_SERVER_NAMES",
        flag: None,
        default: "localhost,127.0.0.1",
        help: "Extra DNS names / IPs put in the server certificate (comma-separated). Agents always verify the fixed name `control-plane.sovereign` against the pinned CA.",
    },
    Spec {
        key: "api.listen",
        env: "SOVEREIGN_API_LISTEN",
        flag: Some("--api-listen"),
        default: "127.0.0.1:8080",
        help: "Address of the HTTP API and the dashboard.",
    },
    Spec {
        key: "api.public_url",
        env: "SOVEREIGN_API_PUBLIC_URL",
        flag: Some("--api-public-url"),
        default: "",
        help: "The URL people use for the dashboard and API (e.g. `https://fleet.example.com` behind a TLS proxy). Browsers must send this Origin; `https` makes session cookies `Secure`. Empty: `http://` + api.listen.",
    },
    Spec {
        key: "auth.session_idle",
        env: "SOVEREIGN_SESSION_IDLE",
        flag: None,
        default: "12h",
        help: "A dashboard session unused this long ends.",
    },
    Spec {
        key: "auth.session_max",
        env: "SOVEREIGN_SESSION_MAX",
        flag: None,
        default: "7d",
        help: "No dashboard session lasts longer than this.",
    },
    Spec {
        key: "exec.max_output",
        env: "SOVEREIGN_EXEC_MAX_OUTPUT",
        flag: None,
        default: "1MiB",
        help: "Output kept per host per command (stdout and stderr together); the agent stops sending past it and the result says `truncated`.",
    },
    Spec {
        key: "exec.default_timeout",
        env: "SOVEREIGN_EXEC_TIMEOUT",
        flag: None,
        default: "5m",
        help: "Timeout of a command that does not set one (at most 24h).",
    },
    Spec {
        key: "terminal.max_recording",
        env: "SOVEREIGN_TERMINAL_MAX_RECORDING",
        flag: None,
        default: "64MiB",
        help: "Output recorded per terminal session; the rest of a longer session is not recorded.",
    },
    Spec {
        key: "auth.login_rate_per_minute",
        env: "SOVEREIGN_LOGIN_RATE",
        flag: None,
        default: "20",
        help: "Sign-in attempts allowed per source address per minute (on top of the 5-failure account lockout).",
    },
    Spec {
        key: "pki.agent_cert_ttl",
        env: "SOVEREIGN_AGENT_CERT_TTL",
        flag: None,
        default: "24h",
        help: "Lifetime of agent certificates (at most 24h). Agents renew at 60% of it.",
    },
    Spec {
        key: "metrics.points_retention",
        env: "SOVEREIGN_POINTS_RETENTION",
        flag: None,
        default: "6h",
        help: "How long raw metric points (one per agent per summary window) are kept; longer ranges read the 1-minute rollups. About 1.4 KB per agent per 10 s.",
    },
    Spec {
        key: "metrics.rollup_retention",
        env: "SOVEREIGN_ROLLUP_RETENTION",
        flag: None,
        default: "30d",
        help: "How long 1-minute rollups are kept.",
    },
    Spec {
        key: "enroll.rate_per_minute",
        env: "SOVEREIGN_ENROLL_RATE",
        flag: None,
        default: "600",
        help: "Enrollment attempts allowed per source address per minute (a whole fleet behind one NAT address enrolls at this rate).",
    },
    Spec {
        key: "enroll.burst",
        env: "SOVEREIGN_ENROLL_BURST",
        flag: None,
        default: "200",
        help: "Enrollment attempts a source address may make at once before the rate applies.",
    },
    Spec {
        key: "shutdown.grace",
        env: "SOVEREIGN_SHUTDOWN_GRACE",
        flag: None,
        default: "8s",
        help: "How long SIGTERM waits for sessions and writers to drain before exiting.",
    },
    Spec {
        key: "log.format",
        env: "SOVEREIGN_LOG_FORMAT",
        flag: None,
        default: "text",
        help: "`text` or `json`. The level comes from `RUST_LOG` (default `info`).",
    },
];

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub grpc_listen: SocketAddr,
    pub public_url: String,
    pub server_names: Vec<String>,
    pub api_listen: SocketAddr,
    pub api_public_url: String,
    pub session_idle: Duration,
    pub session_max: Duration,
    pub login_rate_per_minute: u32,
    pub exec_max_output: u64,
    pub exec_default_timeout: Duration,
    pub terminal_max_recording: u64,
    pub agent_cert_ttl: Duration,
    pub points_retention: Duration,
    pub rollup_retention: Duration,
    pub enroll_rate_per_minute: u32,
    pub enroll_burst: u32,
    pub shutdown_grace: Duration,
    pub log_json: bool,
}

impl Config {
    pub fn load(
        file: Option<&Path>,
        env: EnvSource<'_>,
        flags: &[(&'static str, String)],
    ) -> Result<Self, SettingsError> {
        let l = Layers::load(SPECS, file, env, flags)?;
        let data_dir: PathBuf = l.parse("data_dir", |v| {
            if v.trim().is_empty() {
                Err("must not be empty".into())
            } else {
                Ok(PathBuf::from(v))
            }
        })?;
        let database_url = match l.raw("database.url").0.trim() {
            "" => format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("sovereign.db").display()
            ),
            url if url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://") =>
            {
                url.to_owned()
            }
            _ => {
                return Err(l.error(
                    "database.url",
                    "use sqlite://PATH or postgres://USER:PASS@HOST/DB",
                ));
            }
        };
        let grpc_listen: SocketAddr = l.get("grpc.listen")?;
        let server_names = l.list("grpc.server_names");
        for name in &server_names {
            let ok = name.parse::<std::net::IpAddr>().is_ok()
                || (name.len() <= 253
                    && name.split('.').all(|p| {
                        !p.is_empty()
                            && p.len() <= 63
                            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    }));
            if !ok {
                return Err(l.error(
                    "grpc.server_names",
                    format!("{name:?} is neither a DNS name nor an IP address"),
                ));
            }
        }
        let public_url = match l.raw("grpc.public_url").0.trim() {
            "" => {
                let host = server_names
                    .first()
                    .map(String::as_str)
                    .unwrap_or("localhost");
                format!("https://{host}:{}", grpc_listen.port())
            }
            url if url.starts_with("https://") => url.trim_end_matches('/').to_owned(),
            _ => return Err(l.error("grpc.public_url", "must start with https://")),
        };
        let agent_cert_ttl = l.duration("pki.agent_cert_ttl")?;
        if agent_cert_ttl < Duration::from_secs(10)
            || agent_cert_ttl > Duration::from_secs(24 * 3600)
        {
            return Err(l.error("pki.agent_cert_ttl", "must be between 10s and 24h"));
        }
        let points_retention = l.duration("metrics.points_retention")?;
        let rollup_retention = l.duration("metrics.rollup_retention")?;
        if points_retention < Duration::from_secs(3600) || rollup_retention < points_retention {
            return Err(l.error(
                "metrics.rollup_retention",
                "points must be kept at least 1h, and rollups at least as long as points",
            ));
        }
        let enroll_rate_per_minute: u32 = l.get("enroll.rate_per_minute")?;
        let enroll_burst: u32 = l.get("enroll.burst")?;
        if enroll_rate_per_minute == 0 || enroll_burst == 0 {
            return Err(l.error(
                "enroll.rate_per_minute",
                "enrollment rate and burst must be at least 1",
            ));
        }
        let shutdown_grace = l.duration("shutdown.grace")?;
        let api_listen: SocketAddr = l.get("api.listen")?;
        let api_public_url = match l.raw("api.public_url").0.trim() {
            "" => format!("http://{api_listen}"),
            url if (url.starts_with("http://") || url.starts_with("https://"))
                && !url.trim_end_matches('/').contains(['?', '#']) =>
            {
                url.trim_end_matches('/').to_owned()
            }
            _ => {
                return Err(l.error(
                    "api.public_url",
                    "must be an http:// or https:// URL without a path",
                ));
            }
        };
        let session_idle = l.duration("auth.session_idle")?;
        let session_max = l.duration("auth.session_max")?;
        if session_idle < Duration::from_secs(60) || session_max < session_idle {
            return Err(l.error(
                "auth.session_max",
                "session_idle must be at least 1m and session_max at least session_idle",
            ));
        }
        let exec_max_output = l.parse("exec.max_output", sovereign_settings::parse_size)?;
        if !(1024..=(1 << 30)).contains(&exec_max_output) {
            return Err(l.error("exec.max_output", "must be between 1KiB and 1GiB"));
        }
        let exec_default_timeout = l.duration("exec.default_timeout")?;
        if exec_default_timeout < Duration::from_secs(1)
            || exec_default_timeout > Duration::from_secs(86_400)
        {
            return Err(l.error("exec.default_timeout", "must be between 1s and 24h"));
        }
        let terminal_max_recording =
            l.parse("terminal.max_recording", sovereign_settings::parse_size)?;
        let login_rate_per_minute: u32 = l.get("auth.login_rate_per_minute")?;
        if login_rate_per_minute == 0 {
            return Err(l.error("auth.login_rate_per_minute", "must be at least 1"));
        }
        let log_json = l.parse("log.format", |v| match v {
            "text" => Ok(false),
            "json" => Ok(true),
            _ => Err("use text or json".into()),
        })?;
        Ok(Self {
            data_dir,
            database_url,
            grpc_listen,
            public_url,
            server_names,
            api_listen,
            api_public_url,
            session_idle,
            session_max,
            login_rate_per_minute,
            exec_max_output,
            exec_default_timeout,
            terminal_max_recording,
            agent_cert_ttl,
            points_retention,
            rollup_retention,
            enroll_rate_per_minute,
            enroll_burst,
            shutdown_grace,
            log_json,
        })
    }
}

pub fn docs() -> String {
    sovereign_settings::render_markdown(
        "Control plane configuration (`sovereign serve`)",
        "Settings are read from the TOML file given with `--config` (nested tables for dotted keys), then environment variables, then flags; later layers win. A bad value stops the start with a message naming the setting and where it came from, and exit status 64. This page is generated from the code (`sovereign config-docs`); a test keeps it in sync.",
        SPECS,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = Config::load(None, &|_| None, &[]).unwrap();
        assert!(c.database_url.starts_with("sqlite://"));
        assert_eq!(c.public_url, "https://localhost:7443");
        assert_eq!(c.agent_cert_ttl, Duration::from_secs(86400));
    }

    #[test]
    fn bad_values_name_the_setting() {
        let env = |k: &str| (k == "SOVEREIGN_AGENT_CERT_TTL").then(|| "48h".to_owned());
        let err = Config::load(None, &env, &[]).unwrap_err().to_string();
        assert!(
            err.contains("pki.agent_cert_ttl") && err.contains("SOVEREIGN_AGENT_CERT_TTL"),
            "{err}"
        );
        let err = Config::load(None, &|_| None, &[("database.url", "mysql://x".into())])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--database-url"), "{err}");
    }

    #[test]
    fn reference_page_is_in_sync() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/config-control-plane.md");
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == docs(),
            "docs/config-control-plane.md is stale: run `cargo run -p sovereign -- config-docs > docs/config-control-plane.md`"
        );
    }
}
