//! The command line: `sovereign serve` runs the control plane; every other
//! command is an admin client of the HTTP API (so it works the same against
//! a remote control plane).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use crate::config::{self, Config};
use crate::identity;

/// Exit status for a configuration error (EX_CONFIG-ish, per sysexits' EX_USAGE).
const EXIT_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(
    name = "sovereign",
    version,
    about = "Sovereign fleet control plane: server and admin CLI"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane (gRPC for agents, HTTP API).
    Serve(ServeArgs),
    /// Create, list and revoke join tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// List, inspect and revoke agents.
    #[command(subcommand)]
    Agent(AgentCmd),
    /// List and create projects.
    #[command(subcommand)]
    Project(ProjectCmd),
    /// Run a command on agents and stream each host's output, e.g.
    /// `sovereign exec --label env=prod -- uptime`.
    Exec(ExecArgs),
    /// Print the CA's SHA-256 (what agents pin) and PEM.
    Ca(ClientArgs),
    /// Manage dashboard users directly in the database (break-glass; works
    /// with the control plane stopped). Takes the same settings as `serve`.
    #[command(subcommand)]
    Admin(AdminCmd),
    /// Print the configuration reference (Markdown).
    ConfigDocs,
}

#[derive(Subcommand)]
enum AdminCmd {
    /// Create a user; prints a generated password once.
    Create {
        #[arg(long)]
        username: String,
        /// owner, admin, operator or viewer.
        #[arg(long, default_value = "admin")]
        role: String,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Set a new generated password (printed once) and end the user's sessions.
    ResetPassword {
        #[arg(long)]
        username: String,
        #[command(flatten)]
        serve: ServeArgs,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// TOML config file.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    #[arg(long)]
    data_dir: Option<String>,
    #[arg(long)]
    database_url: Option<String>,
    #[arg(long)]
    grpc_listen: Option<String>,
    #[arg(long)]
    api_listen: Option<String>,
    #[arg(long)]
    public_url: Option<String>,
    #[arg(long)]
    api_public_url: Option<String>,
}

#[derive(Args, Clone)]
struct ClientArgs {
    /// Base URL of the control plane's HTTP API.
    #[arg(
        long,
        env = "SOVEREIGN_API_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    api: String,
    /// API token; default: DATA_DIR/admin.token.
    #[arg(
        long,
        env = "SOVEREIGN_API_TOKEN",
        hide_env_values = true,
        global = true
    )]
    api_token: Option<String>,
    /// Data dir to find admin.token in, for a local control plane.
    #[arg(
        long,
        env = "SOVEREIGN_DATA_DIR",
        default_value = "./sovereign-data",
        global = true
    )]
    data_dir: PathBuf,
    /// Print raw JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Args)]
struct ExecArgs {
    /// Agent id (repeatable).
    #[arg(long = "id")]
    ids: Vec<String>,
    #[arg(long)]
    project: Option<String>,
    /// k=v (repeatable): every label must match.
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Hosts running at once.
    #[arg(long, default_value_t = 50)]
    concurrency: u32,
    /// Per-host timeout: 30s, 5m...
    #[arg(long)]
    timeout: Option<String>,
    #[arg(long)]
    cwd: Option<String>,
    /// K=V (repeatable).
    #[arg(long = "env")]
    env: Vec<String>,
    /// Run as this user (when the agent runs as root).
    #[arg(long)]
    run_as: Option<String>,
    /// A shell script instead of a command.
    #[arg(long, conflicts_with = "argv")]
    script: Option<String>,
    /// The command and its arguments, after `--`.
    #[arg(last = true)]
    argv: Vec<String>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Create a join token and print the command that enrolls a machine.
    Create {
        #[arg(long, default_value = "default")]
        project: String,
        /// Lifetime: 30m, 1h, 7d...
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// How many machines may use it.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// Labels given to agents enrolled with it (repeatable k=v).
        #[arg(long = "label")]
        labels: Vec<String>,
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    List(ClientArgs),
    Revoke {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand)]
enum AgentCmd {
    List {
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        status: Option<String>,
        /// k=v (repeatable): every label must match.
        #[arg(long = "label")]
        labels: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    Show {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke an agent: its stream is cut and it is refused from then on.
    Revoke {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand)]
enum ProjectCmd {
    List(ClientArgs),
    Create {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

pub fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::ConfigDocs => {
            print!("{}", config::docs());
            ExitCode::SUCCESS
        }
        Command::Admin(cmd) => admin(cmd),
        other => {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(client(other)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn load_config(args: ServeArgs) -> Result<Config, ExitCode> {
    let mut flags: Vec<(&'static str, String)> = Vec::new();
    for (key, value) in [
        ("data_dir", args.data_dir),
        ("database.url", args.database_url),
        ("grpc.listen", args.grpc_listen),
        ("api.listen", args.api_listen),
        ("grpc.public_url", args.public_url),
        ("api.public_url", args.api_public_url),
    ] {
        if let Some(v) = value {
            flags.push((key, v));
        }
    }
    let env = |k: &str| std::env::var(k).ok();
    Config::load(args.config.as_deref(), &env, &flags).map_err(|e| {
        eprintln!("sovereign: configuration error: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

fn serve(args: ServeArgs) -> ExitCode {
    let config = match load_config(args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    init_logging(config.log_json);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sovereign: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(crate::server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "The control plane stopped on an error."
            );
            eprintln!("sovereign: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn admin(cmd: AdminCmd) -> ExitCode {
    let (serve, username, role) = match cmd {
        AdminCmd::Create {
            username,
            role,
            serve,
        } => (serve, username, Some(role)),
        AdminCmd::ResetPassword { username, serve } => (serve, username, None),
    };
    let config = match load_config(serve) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sovereign: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<String> = rt.block_on(async {
        let store = crate::store::Store::open(&config.database_url)
            .await
            .with_context(|| {
                format!(
                    "cannot open database {}",
                    crate::store::redact_url(&config.database_url)
                )
            })?;
        let password = identity::Password::generate();
        let message = match role {
            Some(role) => {
                let role = identity::Role::parse(&role).with_context(|| {
                    format!("unknown role {role:?}: use owner, admin, operator or viewer")
                })?;
                let now = crate::pki::now_ms();
                let user = identity::create_user(&store, &username, &password, role, now)
                    .await
                    .map_err(|e| match e {
                        identity::IdentityError::Store(crate::store::StoreError::Conflict(m)) => {
                            anyhow::anyhow!(m)
                        }
                        other => anyhow::anyhow!(other),
                    })?;
                format!(
                    "Created user {} ({}). Password (shown once): {}",
                    user.username,
                    role.as_str(),
                    password.expose()
                )
            }
            None => {
                identity::reset_password(&store, &username, &password).await?;
                format!(
                    "New password for {} (shown once; their sessions were ended): {}",
                    username.trim().to_lowercase(),
                    password.expose()
                )
            }
        };
        store.close().await;
        Ok(message)
    });
    match result {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sovereign: {e:#}");
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

struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
    json: bool,
}

impl Api {
    fn new(c: &ClientArgs) -> anyhow::Result<Self> {
        let token = match &c.api_token {
            Some(t) => t.clone(),
            None => {
                let path = c.data_dir.join("admin.token");
                std::fs::read_to_string(&path)
                    .with_context(|| format!("no API token: pass --api-token or SOVEREIGN_API_TOKEN, or run where {} exists", path.display()))?
                    .trim()
                    .to_owned()
            }
        };
        Ok(Self {
            base: c.api.trim_end_matches('/').to_owned(),
            token,
            http: reqwest::Client::new(),
            json: c.json,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the control plane at {}", self.base))?;
        let status = resp.status();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let msg = value["error"]["message"].as_str().unwrap_or("no details");
            bail!("{status}: {msg}");
        }
        Ok(value)
    }
}

async fn client(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Token(TokenCmd::Create {
            project,
            ttl,
            uses,
            labels,
            description,
            client,
        }) => {
            let api = Api::new(&client)?;
            let mut label_map = serde_json::Map::new();
            for l in &labels {
                let (k, v) = l
                    .split_once('=')
                    .with_context(|| format!("label {l:?} is not k=v"))?;
                label_map.insert(k.to_owned(), Value::String(v.to_owned()));
            }
            let body = json!({ "project": project, "ttl": ttl, "uses": uses, "labels": label_map, "description": description });
            let t = api
                .call(reqwest::Method::POST, "/tokens", Some(body))
                .await?;
            if api.json {
                println!("{t:#}");
            } else {
                println!(
                    "Join token {} for project {} ({} use(s), expires {}).",
                    s(&t["id"]),
                    s(&t["project"]),
                    t["uses_total"],
                    when(&t["expires_at"])
                );
                println!("Secret (shown once): {}", s(&t["secret"]));
                println!("CA SHA-256: {}", s(&t["ca_sha256"]));
                println!(
                    "\nOn the machine to enroll, run:\n\n  {}\n",
                    s(&t["command"])
                );
            }
        }
        Command::Token(TokenCmd::List(client)) => {
            let api = Api::new(&client)?;
            let list = api.call(reqwest::Method::GET, "/tokens", None).await?;
            if api.json {
                println!("{list:#}");
            } else {
                println!(
                    "{:<36}  {:<12}  {:<8}  {:>9}  EXPIRES",
                    "ID", "PROJECT", "STATE", "USES LEFT"
                );
                for t in list.as_array().into_iter().flatten() {
                    println!(
                        "{:<36}  {:<12}  {:<8}  {:>9}  {}",
                        s(&t["id"]),
                        s(&t["project"]),
                        s(&t["state"]),
                        t["uses_left"],
                        when(&t["expires_at"])
                    );
                }
            }
        }
        Command::Token(TokenCmd::Revoke { id, client }) => {
            let api = Api::new(&client)?;
            api.call(
                reqwest::Method::POST,
                &format!("/tokens/{}/revoke", path_seg(&id)),
                None,
            )
            .await?;
            println!("Token {id} revoked.");
        }
        Command::Agent(AgentCmd::List {
            project,
            status,
            labels,
            client,
        }) => {
            let api = Api::new(&client)?;
            let mut query = vec![("limit".to_owned(), "1000".to_owned())];
            if let Some(p) = project {
                query.push(("project".into(), p));
            }
            if let Some(st) = status {
                query.push(("status".into(), st));
            }
            if !labels.is_empty() {
                query.push(("label".into(), labels.join(",")));
            }
            let qs = query
                .iter()
                .map(|(k, v)| format!("{k}={}", urlencode(v)))
                .collect::<Vec<_>>()
                .join("&");
            let page = api
                .call(reqwest::Method::GET, &format!("/agents?{qs}"), None)
                .await?;
            if api.json {
                println!("{page:#}");
            } else {
                println!(
                    "{:<36}  {:<24}  {:<12}  {:<8}  LABELS",
                    "ID", "HOSTNAME", "PROJECT", "STATUS"
                );
                for a in page["items"].as_array().into_iter().flatten() {
                    let labels = a["labels"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .unwrap_or_default();
                    println!(
                        "{:<36}  {:<24}  {:<12}  {:<8}  {labels}",
                        s(&a["id"]),
                        s(&a["hostname"]),
                        s(&a["project"]),
                        s(&a["status"])
                    );
                }
                println!("{} agent(s).", page["total"]);
            }
        }
        Command::Agent(AgentCmd::Show { id, client }) => {
            let api = Api::new(&client)?;
            let a = api
                .call(
                    reqwest::Method::GET,
                    &format!("/agents/{}", path_seg(&id)),
                    None,
                )
                .await?;
            println!("{a:#}");
        }
        Command::Agent(AgentCmd::Revoke { id, client }) => {
            let api = Api::new(&client)?;
            let a = api
                .call(
                    reqwest::Method::POST,
                    &format!("/agents/{}/revoke", path_seg(&id)),
                    None,
                )
                .await?;
            println!(
                "Agent {} ({}) revoked; its stream is being cut.",
                s(&a["id"]),
                s(&a["hostname"])
            );
        }
        Command::Project(ProjectCmd::List(client)) => {
            let api = Api::new(&client)?;
            for p in api
                .call(reqwest::Method::GET, "/projects", None)
                .await?
                .as_array()
                .into_iter()
                .flatten()
            {
                println!("{}", s(&p["id"]));
            }
        }
        Command::Project(ProjectCmd::Create { name, client }) => {
            let api = Api::new(&client)?;
            api.call(
                reqwest::Method::POST,
                "/projects",
                Some(json!({ "id": name })),
            )
            .await?;
            println!("Project {name} created.");
        }
        Command::Exec(args) => return exec(args).await,
        Command::Ca(client) => {
            let api = Api::new(&client)?;
            let ca = api.call(reqwest::Method::GET, "/ca", None).await?;
            println!("{}", s(&ca["sha256"]));
            if api.json {
                println!("{ca:#}");
            }
        }
        Command::Serve(_) | Command::ConfigDocs | Command::Admin(_) => {
            unreachable!("handled before the client runs")
        }
    }
    Ok(())
}

/// Formats a Unix-milliseconds JSON value as RFC 3339 UTC.
fn when(v: &Value) -> String {
    v.as_i64()
        .and_then(|ms| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
        })
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".to_owned())
}

async fn exec(args: ExecArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.client)?;
    let mut labels = serde_json::Map::new();
    for l in &args.labels {
        let (k, v) = l
            .split_once('=')
            .with_context(|| format!("label {l:?} is not k=v"))?;
        labels.insert(k.to_owned(), Value::String(v.to_owned()));
    }
    let mut env = serde_json::Map::new();
    for e in &args.env {
        let (k, v) = e
            .split_once('=')
            .with_context(|| format!("--env {e:?} is not K=V"))?;
        env.insert(k.to_owned(), Value::String(v.to_owned()));
    }
    let body = json!({
        "target": { "ids": args.ids, "project": args.project, "labels": labels },
        "argv": args.argv, "script": args.script.unwrap_or_default(), "env": env,
        "cwd": args.cwd.unwrap_or_default(), "timeout": args.timeout, "run_as": args.run_as.unwrap_or_default(),
        "concurrency": args.concurrency,
    });
    let started = api.call(reqwest::Method::POST, "/exec", Some(body)).await?;
    let id = s(&started["id"]).to_owned();
    eprintln!("Running on {} host(s) (exec {id}).", started["agents"]);
    let url = format!("{}/api/v1/exec/{id}/events", api.base);
    let mut resp = api
        .http
        .get(&url)
        .bearer_auth(&api.token)
        .send()
        .await
        .context("cannot follow the exec")?;
    if !resp.status().is_success() {
        bail!("{}: cannot follow exec {id}", resp.status());
    }
    let mut hosts: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let (mut ok, mut failed, mut offline) = (0, 0, 0);
    let mut counted: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut buf = String::new();
    let (mut event, mut data) = (String::new(), String::new());
    'outer: while let Some(chunk) = resp.chunk().await.context("the event stream broke")? {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(nl) = buf.find('\n') {
            let line: String = buf.drain(..=nl).collect();
            let line = line.trim_end_matches(['\r', '\n']);
            if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            } else if line.is_empty() && !event.is_empty() {
                let v: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
                let host = |v: &Value, hosts: &std::collections::HashMap<String, String>| {
                    hosts
                        .get(s(&v["agent_id"]))
                        .cloned()
                        .unwrap_or_else(|| s(&v["agent_id"]).chars().take(8).collect())
                };
                match event.as_str() {
                    "run" => {
                        hosts.insert(s(&v["agent_id"]).to_owned(), s(&v["hostname"]).to_owned());
                    }
                    "output" => {
                        let h = host(&v, &hosts);
                        for l in s(&v["data"]).lines() {
                            if s(&v["stream"]) == "stderr" {
                                eprintln!("{h} | {l}");
                            } else {
                                println!("{h} | {l}");
                            }
                        }
                    }
                    "result" if !counted.insert(s(&v["agent_id"]).to_owned()) => {}
                    "result" => {
                        let h = host(&v, &hosts);
                        let secs = v["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0;
                        let err = s(&v["error"]);
                        if v["exit_code"] == 0
                            && err.is_empty()
                            && v["timed_out"] != true
                            && v["cancelled"] != true
                        {
                            ok += 1;
                            eprintln!("{h}: exit 0 ({secs:.1} s)");
                        } else if err.contains("offline") {
                            offline += 1;
                            eprintln!("{h}: {err}");
                        } else {
                            failed += 1;
                            let how = if v["timed_out"] == true {
                                "timed out".to_owned()
                            } else if !v["signal"].is_null() {
                                format!("killed by signal {}", v["signal"])
                            } else if !v["exit_code"].is_null() {
                                format!("exit {}", v["exit_code"])
                            } else {
                                err.to_owned()
                            };
                            eprintln!(
                                "{h}: {how} ({secs:.1} s){}",
                                if v["truncated"] == true {
                                    ", output truncated"
                                } else {
                                    ""
                                }
                            );
                        }
                    }
                    "done" => break 'outer,
                    "error" => eprintln!("warning: {}", s(&v["message"])),
                    _ => {}
                }
                event.clear();
                data.clear();
            }
        }
    }
    eprintln!("{ok} ok, {failed} failed, {offline} offline.");
    if failed + offline > 0 {
        bail!("not every host succeeded");
    }
    Ok(())
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn path_seg(s: &str) -> String {
    urlencode(s)
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
