//! `sovereign-agent`: enrolls this machine with a control plane, then keeps
//! one outbound mutual-TLS stream open: host metrics go up it, remote
//! commands and terminals come down it.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use sovereign_agent::{
    collector, config, enroll, exec, link, metrics, outbox, sampler, spawn, terminal, tls,
};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use sovereign_agent::config::Config;
use sovereign_agent::state::StateDir;

const EXIT_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(
    name = "sovereign-agent",
    version,
    about = "Sovereign agent: dials out to the control plane and streams this machine's metrics"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enroll this machine: redeem a join token for a client certificate.
    Enroll {
        /// Control plane URL, e.g. https://fleet.example.com:7443
        #[arg(long)]
        server: String,
        /// The join token (or set SOVEREIGN_JOIN_TOKEN).
        #[arg(long, env = "SOVEREIGN_JOIN_TOKEN", hide_env_values = true)]
        token: String,
        /// SHA-256 of the control plane's CA certificate, as printed with the token.
        #[arg(long)]
        ca_sha256: String,
        #[command(flatten)]
        common: Common,
    },
    /// Connect and stay connected, streaming metrics (the service's main command).
    Run {
        #[command(flatten)]
        common: Common,
    },
    /// Print this machine's facts and one sample, then exit (a quick self-check).
    Facts {
        #[command(flatten)]
        common: Common,
    },
    /// Print the configuration reference (Markdown).
    ConfigDocs,
}

#[derive(Args)]
struct Common {
    /// TOML config file.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    #[arg(long)]
    state_dir: Option<String>,
    /// Overrides /etc/machine-id as this machine's identity.
    #[arg(long)]
    machine_id: Option<String>,
    /// Overrides the reported hostname.
    #[arg(long)]
    hostname: Option<String>,
}

impl Common {
    fn load(&self, server: Option<&str>) -> Result<Config, ExitCode> {
        let mut flags: Vec<(&'static str, String)> = Vec::new();
        for (key, value) in [
            ("state_dir", self.state_dir.clone()),
            ("identity.machine_id", self.machine_id.clone()),
            ("identity.hostname", self.hostname.clone()),
            ("server", server.map(str::to_owned)),
        ] {
            if let Some(v) = value {
                flags.push((key, v));
            }
        }
        let env = |k: &str| std::env::var(k).ok();
        Config::load(self.config.as_deref(), &env, &flags).map_err(|e| {
            eprintln!("sovereign-agent: configuration error: {e}");
            ExitCode::from(EXIT_CONFIG)
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (config, command) = match &cli.command {
        Command::ConfigDocs => {
            print!("{}", config::docs());
            return ExitCode::SUCCESS;
        }
        Command::Enroll { server, common, .. } => (common.load(Some(server)), &cli.command),
        Command::Run { common } | Command::Facts { common } => (common.load(None), &cli.command),
    };
    let config = match config {
        Ok(c) => c,
        Err(code) => return code,
    };
    init_logging(config.log_json);
    // One thread is plenty for one connection and a sampler, and keeps the
    // agent's footprint small.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sovereign-agent: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match command {
            Command::Enroll {
                server,
                token,
                ca_sha256,
                ..
            } => enroll(&config, server, token, ca_sha256).await,
            Command::Run { .. } => run(config).await,
            Command::Facts { .. } => facts(&config),
            Command::ConfigDocs => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sovereign-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// This host's facts; the hostname comes from the config, else from the
/// enrollment's `--hostname`, else from the system.
fn host_facts(
    config: &Config,
    enrolled_hostname: Option<&str>,
) -> anyhow::Result<metrics::HostFacts> {
    let mut sampler = sampler::Sampler::new()?;
    let mut facts = sampler.facts();
    if !config.hostname.is_empty() {
        facts.hostname = config.hostname.clone();
    } else if let Some(h) = enrolled_hostname {
        facts.hostname = h.to_owned();
    }
    Ok(facts)
}

async fn enroll(config: &Config, server: &str, token: &str, ca_sha256: &str) -> anyhow::Result<()> {
    let pin = tls::parse_fingerprint(ca_sha256).map_err(|e| anyhow::anyhow!("--ca-sha256: {e}"))?;
    let state = StateDir::open(&config.state_dir)?;
    let machine_id = state.machine_id(&config.machine_id)?;
    let facts = link_facts(&host_facts(config, None)?);
    let server = config.server.clone().unwrap_or_else(|| server.to_owned());
    let hostname = (!config.hostname.is_empty()).then(|| config.hostname.clone());
    let identity = enroll::enroll(
        &state,
        enroll::EnrollParams {
            server: &server,
            token,
            ca_sha256: pin,
            machine_id,
            facts,
            hostname,
        },
    )
    .await?;
    println!(
        "Enrolled as agent {} in project {}.",
        identity.agent_id, identity.project
    );
    println!(
        "State saved in {}. Start streaming with: sovereign-agent run",
        state.path().display()
    );
    Ok(())
}

fn link_facts(f: &metrics::HostFacts) -> sovereign_proto::v1::HostFacts {
    link::facts_to_wire(f)
}

/// Prints the facts and a sample: the second sample, because rates need two.
fn facts(config: &Config) -> anyhow::Result<()> {
    let mut sampler = sampler::Sampler::new()?;
    let mut facts = sampler.facts();
    if !config.hostname.is_empty() {
        facts.hostname = config.hostname.clone();
    }
    println!("{facts:#?}");
    sampler.sample(enroll::now_ms());
    std::thread::sleep(config.sample_interval);
    let sample = sampler.sample(enroll::now_ms());
    for (id, value) in &sample.values {
        println!("{:<32} {value:.2}", sampler.series_name(*id));
    }
    Ok(())
}

async fn run(config: Config) -> anyhow::Result<()> {
    let state = StateDir::open(&config.state_dir)?;
    let creds = state.load()?;
    let server = config
        .server
        .clone()
        .unwrap_or_else(|| creds.identity.server.clone());
    let outbox = outbox::Outbox::open(&state.outbox_dir(), config.outbox_max_bytes)?;
    let facts = host_facts(&config, creds.identity.hostname.as_deref())?;
    tracing::info!(agent_id = %creds.identity.agent_id, server = %server, pending = outbox.pending(), "Agent starting.");

    let shutdown = CancellationToken::new();
    let (summaries_tx, summaries) = mpsc::channel(64);
    let (live_tx, live) = mpsc::channel(8);
    let (processes_tx, processes) = mpsc::channel(2);
    let (full_rate_tx, full_rate) = watch::channel(false);
    let collector = collector::Collector::new(
        &config,
        collector::Outputs {
            summaries: summaries_tx,
            live: live_tx,
            processes: processes_tx,
        },
        full_rate,
    )?;
    let collector_task = tokio::spawn(collector.run(shutdown.clone()));
    let base = spawn::BaseEnv::capture(&|k| std::env::var(k).ok());
    let (exec_events_tx, exec_events) = mpsc::channel(64);
    let (runner, exec) = exec::Runner::open(
        &state.path().join("exec"),
        config.exec.clone(),
        base.clone(),
        exec_events_tx,
    )?;
    let runner_task = tokio::spawn(runner.run(shutdown.clone()));
    let (terminal_manager, terminals) = terminal::Manager::new(config.terminal.clone(), base);
    let terminals_task = tokio::spawn(terminal_manager.run(shutdown.clone()));
    let link = link::Link {
        state,
        creds,
        server,
        facts,
        outbox,
        feeds: link::Feeds {
            summaries,
            live,
            processes,
        },
        full_rate: full_rate_tx,
        backoff_initial: config.backoff_initial,
        backoff_cap: config.backoff_cap,
        work: link::Work::new(exec, exec_events, terminals),
    };
    let link_task = tokio::spawn(link.run(shutdown.clone()));

    wait_for_signal().await;
    tracing::info!("Shutting down: flushing the outbox.");
    shutdown.cancel();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(8), async {
        let _ = collector_task.await;
        let _ = link_task.await;
        let _ = runner_task.await;
        let _ = terminals_task.await;
    })
    .await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        // Windows: the service wrapper delivers Ctrl-C / Ctrl-Break on stop.
        let _ = tokio::signal::ctrl_c().await;
    }
}
