//! The one way the agent starts child processes. Every child gets its own
//! process group (its own session, for a PTY), starts from a small clean
//! environment rather than the agent's, optionally runs as another user, and
//! is killed — with its whole group — when its handle is dropped. Callers cap
//! the output they read (see `exec` and `terminal`).
//!
//! Run-as on Unix goes through util-linux `setpriv --reuid --regid
//! --init-groups`, which execs in place (same pid, same group): std's
//! `CommandExt::groups` is unstable and the workspace forbids the `unsafe`
//! `pre_exec` that setting groups by hand would need, and portable-pty cannot
//! switch users at all. One mechanism serves exec and terminals alike.

mod kill;

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};

pub use kill::GroupGuard;

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("no such user {0:?}")]
    NoSuchUser(String),
    #[error("cannot look up user {user:?}: {reason}")]
    Lookup { user: String, reason: String },
    #[error("running as {0:?} needs the agent to run as root")]
    NotRoot(String),
    #[error("running as another user is not supported on this platform")]
    RunAsUnsupported,
    #[error("running as {0:?} needs setpriv (util-linux), which is not installed")]
    NoSetpriv(String),
    #[error("cannot start {program:?}: {source}")]
    Start {
        program: String,
        source: std::io::Error,
    },
    #[error("the working directory {0} is not a directory")]
    Cwd(PathBuf),
    #[error("cannot open a terminal: {0}")]
    Pty(String),
}

/// Variables a child inherits from the agent's own environment; everything
/// else (settings, tokens) stays in the agent.
#[cfg(unix)]
const INHERITED: &[&str] = &[
    "PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "HOME", "USER", "LOGNAME", "SHELL",
];
#[cfg(windows)]
const INHERITED: &[&str] = &[
    "PATH",
    "PATHEXT",
    "SystemRoot",
    "SystemDrive",
    "windir",
    "COMSPEC",
    "TEMP",
    "TMP",
    "USERPROFILE",
    "USERNAME",
    "ProgramData",
    "ProgramFiles",
    "ProgramFiles(x86)",
    "APPDATA",
    "LOCALAPPDATA",
    "PROCESSOR_ARCHITECTURE",
    "NUMBER_OF_PROCESSORS",
    "COMPUTERNAME",
];
#[cfg(unix)]
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The environment every child starts from, captured once at start-up.
#[derive(Debug, Clone, Default)]
pub struct BaseEnv {
    vars: Vec<(String, String)>,
}

impl BaseEnv {
    pub fn capture(env: sovereign_settings::EnvSource<'_>) -> Self {
        let mut vars: Vec<(String, String)> = INHERITED
            .iter()
            .filter_map(|k| env(k).map(|v| ((*k).to_owned(), v)))
            .collect();
        #[cfg(unix)]
        if !vars.iter().any(|(k, _)| k == "PATH") {
            vars.push(("PATH".into(), DEFAULT_PATH.into()));
        }
        Self { vars }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn set(&mut self, key: &str, value: &str) {
        self.vars.retain(|(k, _)| k != key);
        self.vars.push((key.to_owned(), value.to_owned()));
    }
}

/// What to start. `user` empty or `None` means the agent's own user.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    pub program: String,
    pub args: Vec<String>,
    /// Added on top of the base environment.
    pub env: Vec<(String, String)>,
    /// Default: the home of the user it runs as, else `/`.
    pub cwd: Option<PathBuf>,
    pub user: Option<String>,
}

/// A spec resolved for this host: the user switch applied, the environment
/// and the working directory fixed.
#[derive(Debug)]
pub struct Prepared {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
}

/// The account a child runs as.
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub home: PathBuf,
    pub shell: Option<String>,
    #[cfg(unix)]
    uid: u32,
    #[cfg(unix)]
    gid: u32,
}

/// Looks `name` up; `Ok(None)` when no switch is needed (empty name, or the
/// agent already runs as that user).
#[cfg(unix)]
pub fn account(name: &str) -> Result<Option<Account>, SpawnError> {
    use nix::unistd::{User, geteuid};
    if name.is_empty() {
        return Ok(None);
    }
    let user = User::from_name(name)
        .map_err(|e| SpawnError::Lookup {
            user: name.to_owned(),
            reason: e.to_string(),
        })?
        .ok_or_else(|| SpawnError::NoSuchUser(name.to_owned()))?;
    let me = geteuid();
    if user.uid == me {
        return Ok(None);
    }
    if !me.is_root() {
        return Err(SpawnError::NotRoot(name.to_owned()));
    }
    let shell = user
        .shell
        .to_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    Ok(Some(Account {
        name: user.name,
        home: user.dir,
        shell,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
    }))
}

#[cfg(windows)]
pub fn account(name: &str) -> Result<Option<Account>, SpawnError> {
    // Starting a process as another Windows account needs a logon token
    // (LogonUser/CreateProcessAsUser); not built yet.
    if name.is_empty() {
        Ok(None)
    } else {
        Err(SpawnError::RunAsUnsupported)
    }
}

/// Resolves the user switch, environment and working directory.
pub fn prepare(spec: &Spec, base: &BaseEnv) -> Result<Prepared, SpawnError> {
    let account = account(spec.user.as_deref().unwrap_or(""))?;
    let mut env = base.clone();
    let (mut program, mut args) = (spec.program.clone(), spec.args.clone());
    if let Some(a) = &account {
        let home = a.home.to_string_lossy();
        env.set("HOME", &home);
        env.set("USER", &a.name);
        env.set("LOGNAME", &a.name);
        if let Some(shell) = &a.shell {
            env.set("SHELL", shell);
        }
        (program, args) = switch_user(a, program, args)?;
    }
    for (k, v) in &spec.env {
        env.set(k, v);
    }
    let cwd = match &spec.cwd {
        Some(dir) if !dir.is_dir() => return Err(SpawnError::Cwd(dir.clone())),
        Some(dir) => dir.clone(),
        None => account
            .as_ref()
            .map(|a| a.home.clone())
            .or_else(|| base.get("HOME").map(PathBuf::from))
            .filter(|h| h.is_dir())
            .unwrap_or_else(root_dir),
    };
    Ok(Prepared {
        program,
        args,
        env: env.vars,
        cwd,
    })
}

fn root_dir() -> PathBuf {
    if cfg!(windows) {
        PathBuf::from("C:\\")
    } else {
        PathBuf::from("/")
    }
}

/// Wraps a command so it runs as `a`: `setpriv` sets the uid, the gid and
/// the user's supplementary groups, then execs the command in place.
#[cfg(unix)]
fn switch_user(
    a: &Account,
    program: String,
    mut args: Vec<String>,
) -> Result<(String, Vec<String>), SpawnError> {
    let setpriv = setpriv().ok_or_else(|| SpawnError::NoSetpriv(a.name.clone()))?;
    let mut wrapped = vec![
        format!("--reuid={}", a.uid),
        format!("--regid={}", a.gid),
        "--init-groups".to_owned(),
        "--".to_owned(),
        program,
    ];
    wrapped.append(&mut args);
    Ok((setpriv.to_string_lossy().into_owned(), wrapped))
}

/// Windows: `account` refuses other users, so there is nothing to wrap.
#[cfg(windows)]
fn switch_user(
    _a: &Account,
    program: String,
    args: Vec<String>,
) -> Result<(String, Vec<String>), SpawnError> {
    Ok((program, args))
}

#[cfg(unix)]
fn setpriv() -> Option<PathBuf> {
    [
        "/usr/bin/setpriv",
        "/bin/setpriv",
        "/usr/sbin/setpriv",
        "/sbin/setpriv",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// A running child with piped stdout and stderr. Dropping it kills its
/// process group (the guard) and the child itself (`kill_on_drop`).
pub struct Child {
    inner: tokio::process::Child,
    guard: GroupGuard,
}

impl Child {
    pub fn id(&self) -> Option<u32> {
        self.inner.id()
    }

    pub fn take_stdout(&mut self) -> Option<tokio::process::ChildStdout> {
        self.inner.stdout.take()
    }

    pub fn take_stderr(&mut self) -> Option<tokio::process::ChildStderr> {
        self.inner.stderr.take()
    }

    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.inner.wait().await
    }

    /// Kills every process still in the child's group (the child too).
    pub fn kill_group(&mut self) {
        self.guard.kill();
        #[cfg(windows)]
        let _ = self.inner.start_kill();
    }
}

/// Starts `spec` with stdin closed and stdout/stderr piped.
pub fn spawn(spec: &Spec, base: &BaseEnv) -> Result<Child, SpawnError> {
    let p = prepare(spec, base)?;
    // This wrapper is the one place allowed to create processes.
    #[allow(clippy::disallowed_methods)]
    let mut cmd = std::process::Command::new(&p.program);
    cmd.args(&p.args)
        .env_clear()
        .envs(p.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&p.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        cmd.creation_flags(CREATE_NEW_PROCESS_GROUP);
    }
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let inner = cmd.spawn().map_err(|source| SpawnError::Start {
        program: spec.program.clone(),
        source,
    })?;
    let guard = GroupGuard::group(inner.id());
    Ok(Child { inner, guard })
}

/// A shell on a fresh PTY. Dropping `guard` kills the shell's whole session.
pub struct PtyProcess {
    pub master: Box<dyn portable_pty::MasterPty + Send>,
    pub child: Box<dyn portable_pty::Child + Send + Sync>,
    pub guard: GroupGuard,
}

/// Opens a PTY of `cols`×`rows` and starts `spec` on it as a session leader
/// with the PTY as its controlling terminal (portable-pty does that part;
/// on Windows it uses ConPTY).
pub fn spawn_pty(
    spec: &Spec,
    base: &BaseEnv,
    cols: u16,
    rows: u16,
) -> Result<PtyProcess, SpawnError> {
    let p = prepare(spec, base)?;
    let pair = portable_pty::native_pty_system()
        .openpty(portable_pty::PtySize {
            rows,
            cols,
            pixel_width: 0,
            pixel_height: 0,
        })
        .map_err(|e| SpawnError::Pty(e.to_string()))?;
    let mut cmd = portable_pty::CommandBuilder::new(&p.program);
    cmd.args(&p.args);
    cmd.env_clear();
    for (k, v) in &p.env {
        cmd.env(k, v);
    }
    cmd.cwd(&p.cwd);
    let child = pair
        .slave
        .spawn_command(cmd)
        .map_err(|e| SpawnError::Start {
            program: spec.program.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
    // Only the child may hold the slave side, so that reads see EOF when it
    // and its descendants are gone.
    drop(pair.slave);
    #[cfg(unix)]
    let guard = GroupGuard::session(child.process_id());
    #[cfg(windows)]
    let guard = GroupGuard::killer(child.clone_killer());
    Ok(PtyProcess {
        master: pair.master,
        child,
        guard,
    })
}

/// An exit status in the agent's terms: a code, or the signal that ended it.
pub fn exit_parts(status: ExitStatus) -> (Option<i32>, Option<i32>) {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        (status.code(), status.signal())
    }
    #[cfg(not(unix))]
    {
        (status.code(), None)
    }
}

#[cfg(all(test, unix))]
mod tests;
