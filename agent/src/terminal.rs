//! Interactive terminals: PTYs keyed by a session id that outlive the
//! streams viewing them. One owner task (`Manager`) holds the sessions,
//! spawns a PTY on first open, re-attaches on later opens, reaps a PTY
//! nobody has viewed for `idle_timeout`, and refuses more than
//! `max_sessions`. The wire side (the `Terminal` gRPC stream) lives in
//! `link/terminal.rs`; this module knows nothing of protobuf.

mod io;
mod replay;
mod session;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use session::{Attachment, Progress, Session};

use crate::spawn::{self, BaseEnv, SpawnError};

const MAX_ID: usize = 128;
const MAX_SIZE: u32 = 1000;

/// Names one terminal session; chosen by the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    pub fn new(s: &str) -> Result<Self, TerminalError> {
        if s.is_empty() || s.len() > MAX_ID || s.chars().any(char::is_control) {
            return Err(TerminalError::BadId);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    #[error("session_id must be 1 to {MAX_ID} printable characters")]
    BadId,
    #[error("the shell must be an absolute path")]
    BadShell,
    #[error("too many terminal sessions on this agent (at most {0})")]
    TooMany(usize),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error("terminal I/O failed: {0}")]
    Io(String),
    #[error("the terminal manager has stopped")]
    Stopped,
}

/// Terminal settings (`terminal.*`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Empty: the user's login shell, else `$SHELL`, else `/bin/sh`.
    pub shell: String,
    /// Empty: the agent's own user.
    pub user: String,
    pub idle_timeout: Duration,
    pub replay_bytes: usize,
    pub max_sessions: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            shell: String::new(),
            user: String::new(),
            idle_timeout: Duration::from_secs(300),
            replay_bytes: 256 * 1024,
            max_sessions: 16,
        }
    }
}

/// An open request as it arrives; empty fields mean "the configured one".
#[derive(Debug, Clone)]
pub struct OpenRequest {
    pub session_id: SessionId,
    pub cols: u32,
    pub rows: u32,
    pub shell: String,
    pub user: String,
}

/// Window sizes are clamped to 1..=1000 (0 or 100000 are not errors).
pub fn clamp_size(cols: u32, rows: u32) -> (u16, u16) {
    let c = |v: u32| v.clamp(1, MAX_SIZE) as u16;
    (c(cols), c(rows))
}

pub struct Opened {
    pub attachment: Attachment,
    /// The PTY already existed (a re-attach).
    pub resumed: bool,
}

enum Command {
    Open(OpenRequest, oneshot::Sender<Result<Opened, TerminalError>>),
    Close(SessionId),
}

/// Asks the manager for sessions.
#[derive(Clone)]
pub struct Terminals {
    tx: mpsc::Sender<Command>,
}

impl Terminals {
    /// Re-attaches to the session's PTY if it lives, else spawns one.
    pub async fn open(&self, req: OpenRequest) -> Result<Opened, TerminalError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Open(req, reply))
            .await
            .map_err(|_| TerminalError::Stopped)?;
        rx.await.map_err(|_| TerminalError::Stopped)?
    }

    /// Ends the session for good: kills its shell and forgets it.
    pub async fn close(&self, id: &SessionId) {
        let _ = self.tx.send(Command::Close(id.clone())).await;
    }
}

pub struct Manager {
    settings: Settings,
    base: BaseEnv,
    sessions: HashMap<SessionId, Arc<Session>>,
    rx: mpsc::Receiver<Command>,
}

impl Manager {
    pub fn new(settings: Settings, base: BaseEnv) -> (Self, Terminals) {
        let (tx, rx) = mpsc::channel(64);
        let m = Self {
            settings,
            base,
            sessions: HashMap::new(),
            rx,
        };
        (m, Terminals { tx })
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        let every = (self.settings.idle_timeout / 4)
            .clamp(Duration::from_millis(20), Duration::from_secs(5));
        let mut reap = tokio::time::interval(every);
        reap.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                cmd = self.rx.recv() => match cmd {
                    Some(Command::Open(req, reply)) => {
                        let _ = reply.send(self.open(req));
                    }
                    Some(Command::Close(id)) => {
                        if let Some(s) = self.sessions.remove(&id) {
                            tracing::info!(session_id = %id, "Terminal closed.");
                            s.terminate();
                        }
                    }
                    None => break,
                },
                _ = reap.tick() => self.reap(),
            }
        }
        for (_, s) in self.sessions.drain() {
            s.terminate();
        }
    }

    fn open(&mut self, req: OpenRequest) -> Result<Opened, TerminalError> {
        if let Some(s) = self.sessions.get(&req.session_id) {
            if req.cols > 0 && req.rows > 0 {
                let _ = s.resize(req.cols, req.rows);
            }
            tracing::info!(session_id = %req.session_id, "Terminal re-attached.");
            return Ok(Opened {
                attachment: s.attach(),
                resumed: true,
            });
        }
        if self.sessions.len() >= self.settings.max_sessions {
            return Err(TerminalError::TooMany(self.settings.max_sessions));
        }
        let user = first(&req.user, &self.settings.user);
        let shell = self.shell(&req.shell, &user)?;
        let (cols, rows) = match (req.cols, req.rows) {
            (0, _) | (_, 0) => (80, 24),
            (c, r) => clamp_size(c, r),
        };
        let spec = spawn::Spec {
            args: login_args(&shell),
            program: shell,
            env: vec![
                ("TERM".into(), "xterm-256color".into()),
                ("COLORTERM".into(), "truecolor".into()),
            ],
            cwd: None,
            user: (!user.is_empty()).then_some(user),
        };
        let pty = spawn::spawn_pty(&spec, &self.base, cols, rows)?;
        let session = Session::start(req.session_id.clone(), pty, self.settings.replay_bytes)?;
        tracing::info!(session_id = %req.session_id, shell = %spec.program, user = ?spec.user, "Terminal opened.");
        let attachment = session.attach();
        self.sessions.insert(req.session_id, session);
        Ok(Opened {
            attachment,
            resumed: false,
        })
    }

    /// The request's shell, else the configured one, else the user's login
    /// shell, else `$SHELL`, else the platform's.
    fn shell(&self, requested: &str, user: &str) -> Result<String, TerminalError> {
        let chosen = first(requested, &self.settings.shell);
        if !chosen.is_empty() {
            if !Path::new(&chosen).is_absolute() || chosen.chars().any(char::is_control) {
                return Err(TerminalError::BadShell);
            }
            return Ok(chosen);
        }
        if let Some(shell) = spawn::account(user)?.and_then(|a| a.shell) {
            return Ok(shell);
        }
        if let Some(shell) = self
            .base
            .get("SHELL")
            .filter(|s| Path::new(s).is_absolute())
        {
            return Ok(shell.to_owned());
        }
        Ok(if cfg!(windows) {
            "powershell.exe".into()
        } else {
            "/bin/sh".into()
        })
    }

    fn reap(&mut self) {
        let idle = self.settings.idle_timeout;
        self.sessions.retain(|id, s| {
            let keep = s.idle_for().is_none_or(|d| d < idle);
            if !keep {
                tracing::info!(session_id = %id, "Reaping a terminal nobody is attached to.");
                s.terminate();
            }
            keep
        });
    }
}

fn first(a: &str, b: &str) -> String {
    if a.trim().is_empty() {
        b.trim()
    } else {
        a.trim()
    }
    .to_owned()
}

/// Starts shells that know `-l` as login shells (profile, PATH, prompt).
fn login_args(shell: &str) -> Vec<String> {
    let name = Path::new(shell)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    match name {
        "sh" | "bash" | "dash" | "ash" | "zsh" | "ksh" | "fish" => vec!["-l".into()],
        _ => Vec::new(),
    }
}

#[cfg(all(test, unix))]
mod tests;
