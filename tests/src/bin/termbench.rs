//! `sovereign-termbench`: the measuring half of `scripts/bench-terminal.sh`
//! (which starts and stops every process; this binary only connects).
//!
//! `terminal` types into two shells side by side, alternating between them:
//! one through Sovereign's relay, exactly as the browser does (sign in, a
//! ticket with cookie + CSRF + Origin, the WebSocket, `{"type":"auth"}`,
//! binary frames = 8-byte big-endian offset + output), and one through
//! OpenSSH (`ssh -tt` with piped stdin/stdout; the remote side gets a PTY).
//! It measures keystroke echo latency (one key at a time, each waiting for
//! its echo; for context also through `ssh` in a PTY, as a terminal
//! emulator runs it) and the time to `cat` a large file, and charges the
//! CPU of the processes on each path (not the shell or `cat`) to it.
//!
//! `fanout` runs a command on every agent of a project through
//! `POST /api/v1/exec` and follows the job's server-sent events until every
//! result is in.
//!
//! Both print one JSON document on stdout.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Longest wait for one keystroke's echo or one settle.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest wait for one bulk `cat` to finish.
const BULK_TIMEOUT: Duration = Duration::from_secs(600);
/// The bulk command prints this after `cat` (typed as `$((6*7))`, so the
/// command's own echo never matches; base64 text has no `-`).
const BULK_MARKER: &[u8] = b"END-42\r\n";
/// Shell and `cat` processes are not charged to either path.
const NOT_CHARGED: &[&str] = &["bash", "sh", "dash", "cat", "zsh"];

#[derive(Parser)]
#[command(
    name = "sovereign-termbench",
    version,
    about = "Measures Sovereign's terminal relay next to OpenSSH, and exec fan-out"
)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Keystroke echo latency and bulk output, relay and OpenSSH side by side.
    Terminal(TerminalArgs),
    /// Exec fan-out to every agent of a project.
    Fanout(FanoutArgs),
    /// The far end of the client-leg measurement: echoes every byte from
    /// stdin to stdout, or over a TCP connection to `--connect`.
    #[command(hide = true)]
    LegEcho {
        #[arg(long)]
        connect: Option<std::net::SocketAddr>,
        /// stdin is a terminal: put it in raw mode (as `ssh -t` does to
        /// the terminal it runs in), then write one `R` to say so.
        #[arg(long)]
        raw: bool,
    },
}

#[derive(clap::Args, Clone)]
struct TerminalArgs {
    /// Control plane API, e.g. http://127.0.0.1:8080
    #[arg(long)]
    api: String,
    #[arg(long, default_value = "admin")]
    username: String,
    /// The admin password the control plane printed on its first start.
    #[arg(long, env = "SOVEREIGN_ADMIN_PASSWORD", hide_env_values = true)]
    password: String,
    /// Agent id; default: the first online agent.
    #[arg(long)]
    agent: Option<String>,
    #[arg(long)]
    ssh_port: u16,
    #[arg(long)]
    ssh_key: PathBuf,
    #[arg(long, default_value = "root")]
    ssh_user: String,
    /// The file both shells `cat`.
    #[arg(long)]
    file: PathBuf,
    /// Measured keystrokes per path (even: `a` and DEL alternate).
    #[arg(long, default_value_t = 1000)]
    keystrokes: usize,
    /// Keystrokes per block; blocks alternate between the paths (a few, so
    /// a burst of noise from the machine lands on both).
    #[arg(long, default_value_t = 2)]
    block: usize,
    /// Measured Enters on an empty line per path (time to the next prompt).
    #[arg(long, default_value_t = 200)]
    enters: usize,
    /// Enters per path whose chunks are timed one by one ([µs, bytes]).
    #[arg(long, default_value_t = 3)]
    trace: usize,
    /// 1-byte round trips per transport for the client-leg comparison.
    #[arg(long, default_value_t = 5000)]
    leg_round_trips: usize,
    /// Unmeasured keystrokes per path first.
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    /// Also time echo through `ssh` in a PTY, in turn with the other two
    /// (context, not a verdict). Off for diagnostics that tell the paths'
    /// processes apart by name (one `ssh` and one `sshd` session).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    ssh_pty: bool,
    /// Start `ssh` in a session of its own (`setsid`), as the relay's
    /// servers are started and as a terminal emulator starts the shell that
    /// runs `ssh`: under autogroup scheduling a session is a scheduling
    /// group, and `ssh` would otherwise share this client's.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    ssh_own_session: bool,
    /// Bulk rounds per path, each in a fresh session.
    #[arg(long, default_value_t = 3)]
    bulk_rounds: usize,
    /// Processes (with their descendants) charged to the relay path.
    #[arg(long, value_delimiter = ',')]
    relay_pids: Vec<u32>,
    /// The sshd listener (with its descendants) charged to the SSH path.
    #[arg(long)]
    sshd_pid: Option<u32>,
    /// `getconf CLK_TCK`: the unit of CPU times in /proc.
    #[arg(long, default_value_t = 100.0)]
    clk_tck: f64,
    /// Terminal size asked for by the relay client.
    #[arg(long, default_value_t = 80)]
    cols: u32,
    #[arg(long, default_value_t = 24)]
    rows: u32,
}

#[derive(clap::Args)]
struct FanoutArgs {
    #[arg(long)]
    api: String,
    /// An API token with the right to run commands (the admin token).
    #[arg(long, env = "SOVEREIGN_TOKEN", hide_env_values = true)]
    token: String,
    #[arg(long, default_value = "default")]
    project: String,
    /// Program and arguments.
    #[arg(long, num_args = 1.., default_values = ["uptime"])]
    argv: Vec<String>,
    #[arg(long, default_value_t = 1000)]
    concurrency: u32,
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Seconds between rounds.
    #[arg(long, default_value_t = 2)]
    pause: u64,
    /// Longest wait for one round.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Cmd::LegEcho { connect, raw } = args.cmd {
        let echoed = match connect {
            Some(addr) => std::net::TcpStream::connect(addr).and_then(|s| {
                s.set_nodelay(true)?;
                echo_back(s.try_clone()?, s)
            }),
            None if raw => raw_terminal().and_then(|()| {
                let mut out = std::io::stdout().lock();
                std::io::Write::write_all(&mut out, b"R")?;
                std::io::Write::flush(&mut out)?;
                // A PTY's far end reads EIO, not EOF, once the master closes.
                match echo_back(std::io::stdin().lock(), out) {
                    Err(e) if e.raw_os_error() == Some(libc::EIO) => Ok(()),
                    other => other,
                }
            }),
            None => echo_back(std::io::stdin().lock(), std::io::stdout().lock()),
        };
        return match echoed {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sovereign-termbench leg-echo: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sovereign-termbench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match args.cmd {
            Cmd::Terminal(a) => terminal(a).await,
            Cmd::Fanout(a) => fanout(a).await,
            Cmd::LegEcho { .. } => unreachable!("handled before the runtime starts"),
        }
    });
    match result {
        Ok(v) => {
            println!("{v:#}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sovereign-termbench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn log(msg: &str) {
    eprintln!("[termbench] {msg}");
}

// --- the two terminals ---------------------------------------------------------

/// A shell to type into and read from: through the relay or through ssh.
enum Term {
    Relay {
        ws: Box<Ws>,
        /// The last binary frame (its first 8 bytes are the offset).
        frame: tokio_tungstenite::tungstenite::Bytes,
        /// Output offset expected next: a gap or overlap is an error.
        offset: u64,
        frames: u64,
    },
    /// `ssh`, through its stdin and stdout (pipes), or through a PTY whose
    /// far end is its stdin, stdout and stderr.
    Ssh {
        label: &'static str,
        child: Box<Child>,
        input: Box<dyn AsyncWrite + Unpin + Send>,
        output: Box<dyn AsyncRead + Unpin + Send>,
        buf: Vec<u8>,
        n: usize,
        frames: u64,
    },
}

/// What it takes to open either kind.
struct Paths {
    args: TerminalArgs,
    http: reqwest::Client,
    cookie: String,
    csrf: String,
    agent: String,
}

impl Paths {
    async fn connect(args: TerminalArgs) -> Result<Self> {
        let http = reqwest::Client::new();
        let resp = http
            .post(format!("{}/api/v1/auth/login", args.api))
            .json(&json!({ "username": args.username, "password": args.password }))
            .send()
            .await
            .context("sign-in request")?;
        if resp.status() != 200 {
            bail!("sign-in failed: {}", resp.status());
        }
        let cookie = resp
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .ok_or_else(|| anyhow!("sign-in set no cookie"))?
            .to_owned();
        let me: Value = resp.json().await?;
        let csrf = me["csrf_token"]
            .as_str()
            .ok_or_else(|| anyhow!("sign-in returned no csrf_token: {me}"))?
            .to_owned();
        let agent = match &args.agent {
            Some(a) => a.clone(),
            None => {
                let list: Value = http
                    .get(format!("{}/api/v1/agents?status=online", args.api))
                    .header("cookie", &cookie)
                    .send()
                    .await?
                    .json()
                    .await?;
                list["items"][0]["id"]
                    .as_str()
                    .ok_or_else(|| anyhow!("no online agent: {list}"))?
                    .to_owned()
            }
        };
        Ok(Self {
            args,
            http,
            cookie,
            csrf,
            agent,
        })
    }

    async fn relay(&self) -> Result<Term> {
        let a = &self.args;
        let resp = self
            .http
            .post(format!(
                "{}/api/v1/agents/{}/terminal/ticket",
                a.api, self.agent
            ))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .header("origin", &a.api)
            .json(&json!({}))
            .send()
            .await?;
        if resp.status() != 201 {
            bail!(
                "ticket: {} {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            );
        }
        let t: Value = resp.json().await?;
        let ws_url = format!(
            "{}/api/v1/agents/{}/terminal",
            a.api.replacen("http", "ws", 1),
            self.agent
        );
        let mut req = ws_url.into_client_request()?;
        req.headers_mut().insert("origin", a.api.parse()?);
        req.headers_mut().insert("cookie", self.cookie.parse()?);
        // A browser's sockets have TCP_NODELAY set; so does this one. And a
        // browser does not zero-fill its read buffer before every read, as
        // tungstenite does: at its default of 128 KiB that added about 240 KB
        // of writes per keystroke to the relay's side only (callgrind; the
        // ssh client is read through a pipe). 16 KiB keeps that under a
        // microsecond per read; a 30 KiB output frame takes two reads.
        let config = WebSocketConfig::default().read_buffer_size(16 * 1024);
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(config), true)
            .await
            .context("WebSocket connect")?;
        let auth = json!({ "type": "auth", "ticket": t["ticket"], "session_id": t["session_id"], "cols": a.cols, "rows": a.rows, "offset": 0 });
        ws.send(Message::text(auth.to_string())).await?;
        let first = tokio::time::timeout(STEP_TIMEOUT, ws.next())
            .await
            .map_err(|_| anyhow!("no attached message"))?
            .ok_or_else(|| anyhow!("the socket closed before attaching"))??;
        let Message::Text(text) = first else {
            bail!("expected attached first, got {first:?}")
        };
        let attached: Value = serde_json::from_str(text.as_str())?;
        if attached["type"] != "attached" {
            bail!("not attached: {attached}");
        }
        Ok(Term::Relay {
            ws: Box::new(ws),
            frame: Default::default(),
            offset: 0,
            frames: 0,
        })
    }

    async fn ssh(&self) -> Result<Term> {
        let mut child = self
            .ssh_command()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start ssh")?;
        let stdin = child.stdin.take().ok_or_else(|| anyhow!("no ssh stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no ssh stdout"))?;
        Ok(Term::Ssh {
            label: "ssh",
            child: Box::new(child),
            input: Box::new(stdin),
            output: Box::new(stdout),
            buf: vec![0; 64 * 1024],
            n: 0,
            frames: 0,
        })
    }

    /// `ssh` in a PTY, as a terminal emulator runs it: ready once `ssh` has
    /// put its terminal in raw mode (no local echo or line editing), as it
    /// does when it asks the server for a PTY.
    async fn ssh_pty(&self) -> Result<Term> {
        use nix::fcntl::{FcntlArg, OFlag, fcntl};
        use nix::sys::termios::{LocalFlags, tcgetattr};
        use std::os::fd::AsRawFd;
        use tokio::net::unix::pipe;
        let (master, slave) = pty_pair().context("opening a PTY for ssh")?;
        // Non-blocking for the reactor, which takes it like a pipe's end.
        fcntl(master.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        let mut child = self
            .ssh_command()
            .stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave.try_clone()?))
            .spawn()
            .context("cannot start ssh in a PTY")?;
        let deadline = Instant::now() + STEP_TIMEOUT;
        while tcgetattr(&slave)?
            .local_flags
            .intersects(LocalFlags::ECHO | LocalFlags::ICANON)
        {
            if let Some(status) = child.try_wait()? {
                bail!("ssh in a PTY exited ({status}) before putting its PTY in raw mode");
            }
            if Instant::now() >= deadline {
                bail!("ssh did not put its PTY in raw mode within {STEP_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(slave);
        Ok(Term::Ssh {
            label: "ssh in a PTY",
            child: Box::new(child),
            input: Box::new(pipe::Sender::from_file_unchecked(master.try_clone()?)?),
            output: Box::new(pipe::Receiver::from_file_unchecked(master)?),
            buf: vec![0; 64 * 1024],
            n: 0,
            frames: 0,
        })
    }

    // The benchmark's whole point is to run OpenSSH's client next to the relay.
    #[allow(clippy::disallowed_methods)]
    fn ssh_command(&self) -> Command {
        let a = &self.args;
        // `setsid` makes the session and then runs `ssh` in its own process.
        let mut ssh = if a.ssh_own_session {
            let mut c = Command::new("setsid");
            c.arg("ssh");
            c
        } else {
            Command::new("ssh")
        };
        ssh.arg("-tt")
            .args(["-p", &a.ssh_port.to_string()])
            .arg("-i")
            .arg(&a.ssh_key)
            .args([
                "-F",
                "/dev/null",
                "-e",
                "none",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg(format!("{}@127.0.0.1", a.ssh_user))
            .env("TERM", "xterm-256color")
            .kill_on_drop(true);
        ssh
    }
}

impl Term {
    async fn send(&mut self, data: &[u8]) -> Result<()> {
        match self {
            Term::Relay { ws, .. } => ws.send(Message::binary(data.to_vec())).await?,
            Term::Ssh { input, .. } => {
                input.write_all(data).await?;
                input.flush().await?;
            }
        }
        Ok(())
    }

    /// The next chunk of output (one WebSocket frame, or one pipe read).
    async fn recv(&mut self) -> Result<&[u8]> {
        match self {
            Term::Relay {
                ws,
                frame,
                offset,
                frames,
            } => loop {
                let msg = ws
                    .next()
                    .await
                    .ok_or_else(|| anyhow!("the relay socket closed"))??;
                match msg {
                    Message::Binary(b) => {
                        let head: [u8; 8] = b
                            .get(..8)
                            .and_then(|h| h.try_into().ok())
                            .ok_or_else(|| anyhow!("a binary frame under 8 bytes"))?;
                        let at = u64::from_be_bytes(head);
                        if at != *offset {
                            bail!("output at offset {at}, expected {offset}");
                        }
                        *offset += b.len() as u64 - 8;
                        *frames += 1;
                        *frame = b;
                        return Ok(&frame[8..]);
                    }
                    Message::Text(t) => {
                        let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                        if v["type"] == "error" || v["type"] == "closed" {
                            bail!("the relay said {v}");
                        }
                    }
                    Message::Close(_) => bail!("the relay closed the socket"),
                    _ => {}
                }
            },
            Term::Ssh {
                output,
                buf,
                n,
                frames,
                ..
            } => {
                *n = match output.read(buf).await {
                    // A PTY's master says EIO once `ssh`, the last holder
                    // of its far end, has ended.
                    Err(e) if e.raw_os_error() == Some(libc::EIO) => 0,
                    read => read?,
                };
                if *n == 0 {
                    bail!("ssh closed its output");
                }
                *frames += 1;
                Ok(&buf[..*n])
            }
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Term::Relay { .. } => "relay",
            Term::Ssh { label, .. } => label,
        }
    }

    fn frames(&self) -> u64 {
        match self {
            Term::Relay { frames, .. } | Term::Ssh { frames, .. } => *frames,
        }
    }

    fn client_pid(&self) -> Option<u32> {
        match self {
            Term::Relay { .. } => None,
            Term::Ssh { child, .. } => child.id(),
        }
    }

    /// Types a command that prints a fresh marker, waits for it, then for
    /// the output to go quiet: the shell sits at an empty prompt, which is
    /// returned (what followed the last newline).
    async fn settle(&mut self, tag: u64) -> Result<Vec<u8>> {
        self.send(format!("echo SYNC-$(({tag}+1))\r").as_bytes())
            .await?;
        let want = format!("SYNC-{}\r\n", tag + 1).into_bytes();
        let mut seen = Vec::new();
        let deadline = Instant::now() + STEP_TIMEOUT;
        while !contains(&seen, &want) {
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.recv())
                .await
                .map_err(|_| anyhow!("the shell did not answer: {:?}", lossy_tail(&seen)))??;
            seen.extend_from_slice(chunk);
        }
        // The prompt follows; wait for quiet.
        while let Ok(r) = tokio::time::timeout(Duration::from_millis(300), self.recv()).await {
            seen.extend_from_slice(r?);
        }
        let last_line = seen.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        Ok(seen[last_line..].to_vec())
    }

    /// Ends the shell and the session.
    async fn close(mut self) {
        let _ = self.send(b"exit\r").await;
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while self.recv().await.is_ok() {}
        })
        .await;
        if let Term::Ssh { mut child, .. } = self {
            let _ = child.kill().await;
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn lossy_tail(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[b.len().saturating_sub(200)..]).into_owned()
}

// --- CPU accounting ------------------------------------------------------------

/// (ppid, comm, utime+stime ticks) of every process.
fn processes() -> HashMap<u32, (u32, String, u64)> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(p) = stat(pid) {
            out.insert(pid, p);
        }
    }
    out
}

fn stat(pid: u32) -> Option<(u32, String, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = text.get(close + 2..)?.split_whitespace().collect();
    // After "(comm) ": state ppid ... utime is field 14, stime 15 (1-based).
    let ppid = rest.get(1)?.parse().ok()?;
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((ppid, comm, utime + stime))
}

/// CPU ticks of `roots` and all their descendants, shells and `cat` aside.
fn tree_ticks(roots: &[u32]) -> u64 {
    let procs = processes();
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, (ppid, _, _)) in &procs {
        children.entry(*ppid).or_default().push(*pid);
    }
    let mut seen = HashSet::new();
    let mut stack: Vec<u32> = roots.to_vec();
    let mut total = 0;
    while let Some(pid) = stack.pop() {
        if !seen.insert(pid) {
            continue;
        }
        if let Some((_, comm, ticks)) = procs.get(&pid)
            && !NOT_CHARGED.contains(&comm.as_str())
        {
            total += ticks;
        }
        stack.extend(children.get(&pid).into_iter().flatten());
    }
    total
}

/// CPU of (server side, client side) in ticks, for one path.
struct Cpu {
    server: Vec<u32>,
    tck: f64,
}

impl Cpu {
    fn sample(&self, term: &Term) -> (u64, u64) {
        let server = tree_ticks(&self.server);
        let own = stat(std::process::id()).map_or(0, |s| s.2);
        let ssh = term.client_pid().and_then(stat).map_or(0, |s| s.2);
        (server, own + ssh)
    }

    fn seconds(&self, a: (u64, u64), b: (u64, u64)) -> (f64, f64) {
        (
            b.0.saturating_sub(a.0) as f64 / self.tck,
            b.1.saturating_sub(a.1) as f64 / self.tck,
        )
    }
}

// --- measurements --------------------------------------------------------------

/// Types `n` keys one at a time (`a`, then DEL, ...), each waiting for its
/// echo; appends each latency in ms.
async fn echo(term: &mut Term, n: usize, out: &mut Vec<f64>) -> Result<()> {
    let name = term.name();
    for i in 0..n {
        // bash's readline echoes `a` as itself and a DEL at the end of the
        // line as BS SP BS (or BS + erase-to-end-of-line, by terminal type).
        let (key, want): (&[u8], &[&[u8]]) = if i % 2 == 0 {
            (b"a", &[b"a"])
        } else {
            (b"\x7f", &[b"\x08 \x08", b"\x08\x1b[K"])
        };
        let t0 = Instant::now();
        term.send(key).await?;
        let mut got: Vec<u8> = Vec::new();
        while !want.iter().any(|w| got.ends_with(w)) {
            let left = (t0 + STEP_TIMEOUT).saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, term.recv())
                .await
                .map_err(|_| anyhow!("{name}: no echo for key {key:?}; got {got:?}"))??;
            got.extend_from_slice(chunk);
            if got.len() > 4096 {
                bail!(
                    "unexpected output while waiting for an echo: {:?}",
                    lossy_tail(&got)
                );
            }
        }
        out.push(ms_since(t0));
    }
    Ok(())
}

/// Round trips of the client leg, in ms, per transport.
struct ClientLeg {
    tcp: Vec<f64>,
    pipe: Vec<f64>,
    pty: Vec<f64>,
}

/// The one leg the two paths do not share. The relay's client reaches the
/// control plane over loopback TCP, as a browser's WebSocket does; the
/// OpenSSH client is driven through a pipe pair. This times `n` 1-byte
/// round trips to an echoing process (this binary's `leg-echo`) over each
/// (TCP_NODELAY on both ends), in turn, so the difference can be read next
/// to the echo results. For scale it also times a PTY in raw mode, which
/// is how a terminal emulator reaches `ssh` outside this benchmark.
// A process at the far end, as `ssh` and the control plane are.
#[allow(clippy::disallowed_methods)]
fn client_leg(n: usize) -> Result<ClientLeg> {
    use std::io::{Read, Write};
    fn round_trip(w: &mut impl Write, r: &mut impl Read) -> Result<f64> {
        let mut b = [b'a'];
        let t0 = Instant::now();
        w.write_all(&b)?;
        r.read_exact(&mut b)?;
        Ok(ms_since(t0))
    }
    let me = std::env::current_exe()?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let mut tcp_echo = std::process::Command::new(&me)
        .args(["leg-echo", "--connect", &listener.local_addr()?.to_string()])
        .spawn()
        .context("starting the TCP echo")?;
    let tcp = accept_from(&listener, &mut tcp_echo)?;
    tcp.set_nodelay(true)?;
    let mut pipe_echo = std::process::Command::new(&me)
        .arg("leg-echo")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the pipe echo")?;
    let (Some(mut to_echo), Some(mut from_echo)) =
        (pipe_echo.stdin.take(), pipe_echo.stdout.take())
    else {
        bail!("the pipe echo has no pipes");
    };
    let (master, slave) = pty_pair().context("opening a PTY")?;
    let mut pty_echo = std::process::Command::new(&me)
        .args(["leg-echo", "--raw"])
        .stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave))
        .spawn()
        .context("starting the PTY echo")?;
    let mut ready = [0u8];
    (&master)
        .read_exact(&mut ready)
        .context("waiting for the PTY echo")?;
    if ready != *b"R" {
        bail!("the PTY echo did not start in raw mode");
    }
    let mut measure = || -> Result<ClientLeg> {
        let mut leg = ClientLeg {
            tcp: Vec::with_capacity(n),
            pipe: Vec::with_capacity(n),
            pty: Vec::with_capacity(n),
        };
        for _ in 0..n {
            leg.tcp.push(round_trip(&mut &tcp, &mut &tcp)?);
            leg.pipe.push(round_trip(&mut to_echo, &mut from_echo)?);
            leg.pty.push(round_trip(&mut &master, &mut &master)?);
        }
        Ok(leg)
    };
    let measured = measure();
    // End of input ends the echoes: EOF on TCP and the pipe; the PTY's
    // echo reads EIO once its master is closed.
    let _ = tcp.shutdown(std::net::Shutdown::Write);
    drop(to_echo);
    drop(master);
    let ended = [tcp_echo.wait(), pipe_echo.wait(), pty_echo.wait()];
    let measured = measured?;
    for status in ended {
        if !status?.success() {
            bail!("an echo process failed");
        }
    }
    Ok(measured)
}

/// The connection `child` makes to `listener`; an error, not a hang, if
/// the child exits first or does not connect within [`STEP_TIMEOUT`].
fn accept_from(
    listener: &std::net::TcpListener,
    child: &mut std::process::Child,
) -> Result<std::net::TcpStream> {
    listener.set_nonblocking(true)?;
    let until = Instant::now() + STEP_TIMEOUT;
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)?;
                return Ok(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(status) = child.try_wait()? {
            bail!("the TCP echo exited before connecting ({status})");
        }
        if Instant::now() >= until {
            let _ = child.kill();
            bail!("the TCP echo did not connect within {STEP_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A new PTY: its master, and its far end for a child's stdio. Both are
/// close-on-exec, so only the child given the far end holds it: the
/// master reads EIO once that child ends, and the child's side ends when
/// the master is closed.
fn pty_pair() -> Result<(std::fs::File, std::fs::File)> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    use std::os::fd::AsRawFd;
    let pty = nix::pty::openpty(None, None)?;
    let (master, slave) = (
        std::fs::File::from(pty.master),
        std::fs::File::from(pty.slave),
    );
    for f in [&master, &slave] {
        fcntl(f.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    }
    Ok((master, slave))
}

/// Raw mode on the terminal at stdin: no line editing, echo or output
/// processing.
fn raw_terminal() -> std::io::Result<()> {
    use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let mut t = tcgetattr(&stdin)?;
    cfmakeraw(&mut t);
    tcsetattr(&stdin, SetArg::TCSANOW, &t)?;
    Ok(())
}

/// Copies bytes from `r` to `w` one read at a time until `r` ends.
fn echo_back(mut r: impl std::io::Read, mut w: impl std::io::Write) -> std::io::Result<()> {
    let mut b = [0u8; 64];
    loop {
        let n = r.read(&mut b)?;
        if n == 0 {
            return Ok(());
        }
        w.write_all(&b[..n])?;
        w.flush()?;
    }
}

/// Presses Enter on an empty line `n` times, each waiting until the whole
/// next prompt has arrived (several writes by the shell); appends each in ms.
async fn enter(term: &mut Term, prompt: &[u8], n: usize, out: &mut Vec<f64>) -> Result<()> {
    let name = term.name();
    if prompt.is_empty() {
        bail!("{name}: no prompt seen");
    }
    for _ in 0..n {
        let t0 = Instant::now();
        term.send(b"\r").await?;
        let mut got: Vec<u8> = Vec::new();
        while !got.ends_with(prompt) {
            let left = (t0 + STEP_TIMEOUT).saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, term.recv())
                .await
                .map_err(|_| anyhow!("{name}: no prompt after Enter; got {got:?}"))??;
            got.extend_from_slice(chunk);
        }
        out.push(ms_since(t0));
    }
    Ok(())
}

/// Presses Enter `n` times and logs when each chunk of the answer arrived
/// (µs after the keypress) and its size: shows output held back in transit.
async fn trace_enter(term: &mut Term, prompt: &[u8], n: usize) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for _ in 0..n {
        let t0 = Instant::now();
        term.send(b"\r").await?;
        let mut got: Vec<u8> = Vec::new();
        let mut chunks = Vec::new();
        while !got.ends_with(prompt) {
            let left = (t0 + STEP_TIMEOUT).saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, term.recv())
                .await
                .map_err(|_| anyhow!("no prompt after Enter"))??;
            chunks.push(json!([t0.elapsed().as_micros() as u64, chunk.len()]));
            got.extend_from_slice(chunk);
        }
        out.push(json!(chunks));
    }
    Ok(out)
}

struct Bulk {
    seconds: f64,
    bytes: u64,
    frames: u64,
    cpu_server_s: f64,
    cpu_client_s: f64,
}

/// `cat FILE; echo END-$((6*7))`: time from sending it until the marker
/// arrives; bytes counted after the command line's own echo, up to the marker.
async fn bulk(term: &mut Term, file: &Path, cpu: &Cpu) -> Result<Bulk> {
    let cmd = format!("cat {}; echo END-$((6*7))\r", file.display());
    let frames0 = term.frames();
    let c0 = cpu.sample(term);
    let t0 = Instant::now();
    term.send(cmd.as_bytes()).await?;
    let deadline = t0 + BULK_TIMEOUT;
    let mut echoed = false;
    let mut bytes: u64 = 0;
    let mut window: Vec<u8> = Vec::with_capacity(1024);
    let seconds = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, term.recv())
            .await
            .map_err(|_| anyhow!("cat did not finish; {bytes} bytes so far"))??;
        let mut data = chunk;
        if !echoed {
            // The command line's echo ends at the first newline.
            match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    echoed = true;
                    data = &data[i + 1..];
                }
                None => continue,
            }
        }
        bytes += data.len() as u64;
        // The marker is followed only by a prompt, so it is always within
        // the last few hundred bytes when it arrives.
        window.extend_from_slice(&data[data.len().saturating_sub(512)..]);
        if window.len() > 512 {
            window.drain(..window.len() - 512);
        }
        if let Some(i) = find(&window, BULK_MARKER) {
            let after = (window.len() - i - BULK_MARKER.len()) as u64;
            bytes -= after + BULK_MARKER.len() as u64;
            break t0.elapsed().as_secs_f64();
        }
    };
    let c1 = cpu.sample(term);
    let (server, client) = cpu.seconds(c0, c1);
    let frames = term.frames() - frames0;
    // The prompt after the marker.
    while let Ok(r) = tokio::time::timeout(Duration::from_millis(300), term.recv()).await {
        r?;
    }
    Ok(Bulk {
        seconds,
        bytes,
        frames,
        cpu_server_s: server,
        cpu_client_s: client,
    })
}

fn ms_since(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1000.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest rank.
    let rank = (p / 100.0 * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// The summary, and every sample in the order taken (for a look at when
/// the slow ones came).
fn latency_json(samples: Vec<f64>) -> Value {
    let r = |x: f64| (x * 1000.0).round() / 1000.0;
    let in_order: Vec<f64> = samples.iter().map(|&x| r(x)).collect();
    let mut v = samples;
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    json!({
        "samples_ms": in_order,
        "n": v.len(),
        "p50_ms": r(percentile(&v, 50.0)),
        "p90_ms": r(percentile(&v, 90.0)),
        "p99_ms": r(percentile(&v, 99.0)),
        "max_ms": r(v.last().copied().unwrap_or(f64::NAN)),
        "min_ms": r(v.first().copied().unwrap_or(f64::NAN)),
        "mean_ms": r(mean),
    })
}

fn bulk_json(runs: &[Bulk], file_bytes: u64, expected: u64) -> Value {
    let mut secs: Vec<f64> = runs.iter().map(|b| b.seconds).collect();
    secs.sort_by(f64::total_cmp);
    let median = percentile(&secs, 50.0);
    let mib = file_bytes as f64 / 1_048_576.0;
    let n = runs.len().max(1) as f64;
    json!({
        "rounds": runs.iter().map(|b| json!({
            "seconds": b.seconds, "bytes": b.bytes, "chunks": b.frames,
            "mib_per_s": mib / b.seconds, "cpu_server_s": b.cpu_server_s, "cpu_client_s": b.cpu_client_s,
        })).collect::<Vec<_>>(),
        "median_seconds": median,
        "median_mib_per_s": mib / median,
        "bytes_ok": runs.iter().all(|b| b.bytes == expected),
        "avg_chunk_bytes": runs.iter().map(|b| b.bytes as f64 / b.frames.max(1) as f64).sum::<f64>() / n,
        "cpu_server_s_avg": runs.iter().map(|b| b.cpu_server_s).sum::<f64>() / n,
        "cpu_client_s_avg": runs.iter().map(|b| b.cpu_client_s).sum::<f64>() / n,
    })
}

async fn terminal(args: TerminalArgs) -> Result<Value> {
    if [args.keystrokes, args.block, args.warmup]
        .iter()
        .any(|n| !n.is_multiple_of(2))
        || args.block == 0
    {
        bail!("--keystrokes, --block and --warmup must be even (a and DEL alternate)");
    }
    let file_bytes = std::fs::metadata(&args.file)
        .with_context(|| format!("{}", args.file.display()))?
        .len();
    // The PTY turns each \n into \r\n.
    let newlines = std::fs::read(&args.file)?
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u64;
    let expected = file_bytes + newlines + b"\x1b[?2004l\r".len() as u64;
    let tck = args.clk_tck;
    let relay_cpu = Cpu {
        server: args.relay_pids.clone(),
        tck,
    };
    let ssh_cpu = Cpu {
        server: args.sshd_pid.into_iter().collect(),
        tck,
    };
    let paths = Paths::connect(args.clone()).await?;
    log(&format!("agent {}", paths.agent));
    let mut tag = 0u64;
    let mut next_tag = || {
        tag += 1;
        tag * 1000
    };

    // Echo: one session per path, blocks alternating.
    log("keystroke echo");
    let mut relay = paths.relay().await?;
    let relay_prompt = relay.settle(next_tag()).await?;
    let mut ssh = paths.ssh().await?;
    let ssh_prompt = ssh.settle(next_tag()).await?;
    // Context, not a verdict: `ssh` as a terminal emulator runs it.
    let mut ssh_pty = if args.ssh_pty {
        Some(paths.ssh_pty().await?)
    } else {
        None
    };
    if let Some(t) = ssh_pty.as_mut() {
        t.settle(next_tag()).await?;
    }
    let (mut lat_relay, mut lat_ssh, mut lat_ssh_pty) = (Vec::new(), Vec::new(), Vec::new());
    let mut scratch = Vec::new();
    echo(&mut relay, args.warmup, &mut scratch).await?;
    echo(&mut ssh, args.warmup, &mut scratch).await?;
    if let Some(t) = ssh_pty.as_mut() {
        echo(t, args.warmup, &mut scratch).await?;
    }
    let mut done = 0;
    while done < args.keystrokes {
        let n = args.block.min(args.keystrokes - done);
        echo(&mut relay, n, &mut lat_relay).await?;
        echo(&mut ssh, n, &mut lat_ssh).await?;
        if let Some(t) = ssh_pty.as_mut() {
            echo(t, n, &mut lat_ssh_pty).await?;
        }
        done += n;
    }
    if let Some(t) = ssh_pty {
        t.close().await;
    }
    log("Enter to the next prompt");
    let (mut enter_relay, mut enter_ssh) = (Vec::new(), Vec::new());
    enter(&mut relay, &relay_prompt, 10, &mut scratch).await?;
    enter(&mut ssh, &ssh_prompt, 10, &mut scratch).await?;
    let mut done = 0;
    while done < args.enters {
        let n = args.block.min(args.enters - done);
        enter(&mut relay, &relay_prompt, n, &mut enter_relay).await?;
        enter(&mut ssh, &ssh_prompt, n, &mut enter_ssh).await?;
        done += n;
    }
    let trace = json!({
        "relay": trace_enter(&mut relay, &relay_prompt, args.trace).await?,
        "ssh": trace_enter(&mut ssh, &ssh_prompt, args.trace).await?,
    });
    relay.close().await;
    ssh.close().await;

    log("client leg: loopback TCP next to a pipe (and a PTY, for scale)");
    let leg = tokio::task::spawn_blocking(move || client_leg(args.leg_round_trips))
        .await
        .context("the client-leg measurement")??;

    // Bulk: each round in a fresh session per path, then the same cat again
    // in that session (for the relay: its recording has reached its cap).
    log("bulk output");
    let (mut b_relay, mut b_ssh, mut b_relay_again, mut b_ssh_again) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..args.bulk_rounds {
        log(&format!("bulk round {} of {}", round + 1, args.bulk_rounds));
        let mut t = paths.relay().await?;
        t.settle(next_tag()).await?;
        b_relay.push(bulk(&mut t, &args.file, &relay_cpu).await?);
        t.settle(next_tag()).await?;
        b_relay_again.push(bulk(&mut t, &args.file, &relay_cpu).await?);
        t.close().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut t = paths.ssh().await?;
        t.settle(next_tag()).await?;
        b_ssh.push(bulk(&mut t, &args.file, &ssh_cpu).await?);
        t.settle(next_tag()).await?;
        b_ssh_again.push(bulk(&mut t, &args.file, &ssh_cpu).await?);
        t.close().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(json!({
        "agent": paths.agent,
        "file_bytes": file_bytes,
        "expected_bytes": expected,
        "echo": { "relay": latency_json(lat_relay), "ssh": latency_json(lat_ssh), "ssh_pty": (!lat_ssh_pty.is_empty()).then(|| latency_json(lat_ssh_pty)) },
        "enter": { "relay": latency_json(enter_relay), "ssh": latency_json(enter_ssh) },
        "enter_trace_us_bytes": trace,
        "client_leg": { "tcp": latency_json(leg.tcp), "pipe": latency_json(leg.pipe), "pty": latency_json(leg.pty) },
        "bulk": {
            "relay": bulk_json(&b_relay, file_bytes, expected),
            "ssh": bulk_json(&b_ssh, file_bytes, expected),
            "relay_same_session_again": bulk_json(&b_relay_again, file_bytes, expected),
            "ssh_same_session_again": bulk_json(&b_ssh_again, file_bytes, expected),
        },
    }))
}

// --- exec fan-out --------------------------------------------------------------

async fn fanout(a: FanoutArgs) -> Result<Value> {
    let http = reqwest::Client::new();
    let mut rounds = Vec::new();
    for round in 0..a.rounds {
        if round > 0 {
            tokio::time::sleep(Duration::from_secs(a.pause)).await;
        }
        let r = tokio::time::timeout(Duration::from_secs(a.timeout), fanout_round(&http, &a))
            .await
            .map_err(|_| anyhow!("round {} took over {} s", round + 1, a.timeout))??;
        log(&format!(
            "fan-out round {}: {} results ({} ok) in {:.3} s",
            round + 1,
            r["results"],
            r["ok"],
            r["all_results_s"].as_f64().unwrap_or(f64::NAN)
        ));
        rounds.push(r);
    }
    let mut all: Vec<f64> = rounds
        .iter()
        .filter_map(|r| r["all_results_s"].as_f64())
        .collect();
    all.sort_by(f64::total_cmp);
    Ok(json!({
        "rounds": rounds,
        "median_s": percentile(&all, 50.0),
        "max_s": all.last().copied().unwrap_or(f64::NAN),
        "complete": all.len() == a.rounds,
    }))
}

async fn fanout_round(http: &reqwest::Client, a: &FanoutArgs) -> Result<Value> {
    let body = json!({
        "target": { "project": a.project, "labels": {} },
        "argv": a.argv,
        "concurrency": a.concurrency,
    });
    let t0 = Instant::now();
    let resp = http
        .post(format!("{}/api/v1/exec", a.api))
        .bearer_auth(&a.token)
        .json(&body)
        .send()
        .await?;
    if resp.status() != 201 {
        bail!(
            "exec: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
    let started: Value = resp.json().await?;
    let accepted_s = t0.elapsed().as_secs_f64();
    let id = started["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no job id: {started}"))?
        .to_owned();
    let agents = usize::try_from(started["agents"].as_u64().unwrap_or(0))?;
    let mut resp = http
        .get(format!("{}/api/v1/exec/{id}/events", a.api))
        .bearer_auth(&a.token)
        .header("accept", "text/event-stream")
        .send()
        .await?;
    if resp.status() != 200 {
        bail!("events: {}", resp.status());
    }
    let mut buf = String::new();
    let mut results: HashSet<String> = HashSet::new();
    let (mut ok, mut first, mut all, mut done) = (0usize, None, None, None);
    let mut failures: Vec<Value> = Vec::new();
    'read: while let Some(chunk) = resp.chunk().await? {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let ev: String = buf.drain(..end + 2).collect();
            let mut name = "message";
            let mut data = String::new();
            for line in ev.lines() {
                if let Some(n) = line.strip_prefix("event:") {
                    name = n.trim();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            match name {
                "result" => {
                    let v: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
                    let agent = v["agent_id"].as_str().unwrap_or("").to_owned();
                    if results.insert(agent) {
                        first.get_or_insert_with(|| t0.elapsed().as_secs_f64());
                        if v["exit_code"] == 0 && v["error"].as_str().unwrap_or("").is_empty() {
                            ok += 1;
                        } else if failures.len() < 3 {
                            failures.push(v);
                        }
                        if results.len() == agents {
                            all = Some(t0.elapsed().as_secs_f64());
                        }
                    }
                }
                "done" => {
                    done = Some(t0.elapsed().as_secs_f64());
                    break 'read;
                }
                _ => {}
            }
        }
    }
    Ok(json!({
        "id": id,
        "agents": agents,
        "results": results.len(),
        "ok": ok,
        "accepted_s": accepted_s,
        "first_result_s": first,
        "all_results_s": all,
        "done_s": done,
        "failures": failures,
    }))
}
