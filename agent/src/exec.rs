//! Remote commands: what a run is (`ExecSpec`), what it produces (`Output`
//! chunks, one `Outcome`), and the runner task that runs each exec id at
//! most once — an on-disk journal (`exec/journal.rs`) records an id as
//! started before its process is spawned and keeps its outcome — with at
//! most `max_concurrent` running and the rest queued.

mod journal;
mod run;
mod runner;

use std::path::PathBuf;
use std::time::Duration;

pub use journal::{Journal, JournalError};
pub use runner::{Handle, Runner};

/// Chunks of output are at most this big.
pub const CHUNK: usize = 32 * 1024;
const MAX_ID: usize = 128;

/// Names one run on this agent; chosen by the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExecId(String);

impl ExecId {
    pub fn new(s: &str) -> Result<Self, ExecError> {
        if s.is_empty() || s.len() > MAX_ID || s.chars().any(char::is_control) {
            return Err(ExecError::Invalid(format!(
                "exec_id must be 1 to {MAX_ID} printable characters"
            )));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ExecId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("invalid exec request: {0}")]
    Invalid(String),
    #[error("the agent is busy: too many exec requests waiting")]
    Busy,
    #[error("the exec runner has stopped")]
    Stopped,
}

/// What to run: an argv (no shell) or a script for the platform's shell.
#[derive(Debug, Clone, PartialEq)]
pub enum Program {
    Argv(Vec<String>),
    Script(String),
}

/// A validated exec request.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    pub id: ExecId,
    pub program: Program,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    /// `None`: the agent's default.
    pub timeout: Option<Duration>,
    pub run_as: Option<String>,
    /// `None`: the agent's default, which is also the ceiling.
    pub max_output_bytes: Option<u64>,
}

/// An exec request as it arrives, before validation.
#[derive(Debug, Default)]
pub struct Request {
    pub exec_id: String,
    pub argv: Vec<String>,
    pub script: String,
    pub env: Vec<(String, String)>,
    pub cwd: String,
    pub timeout_ms: u32,
    pub run_as: String,
    pub max_output_bytes: u64,
}

impl ExecSpec {
    pub fn parse(r: Request) -> Result<Self, ExecError> {
        let bad = |m: &str| Err(ExecError::Invalid(m.to_owned()));
        let id = ExecId::new(&r.exec_id)?;
        let program = match (r.argv.is_empty(), r.script.is_empty()) {
            (false, true) => {
                if r.argv[0].is_empty() || r.argv.iter().any(|a| a.contains('\0')) {
                    return bad("argv[0] must not be empty and no argument may hold NUL");
                }
                Program::Argv(r.argv)
            }
            (true, false) if !r.script.contains('\0') => Program::Script(r.script),
            (true, false) => return bad("the script must not hold NUL"),
            _ => return bad("give exactly one of argv or script"),
        };
        for (k, v) in &r.env {
            if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
                return bad("environment names must be non-empty without '=' or NUL");
            }
        }
        let cwd = match r.cwd.as_str() {
            "" => None,
            c if std::path::Path::new(c).is_absolute() && !c.contains('\0') => {
                Some(PathBuf::from(c))
            }
            _ => return bad("cwd must be an absolute path"),
        };
        let run_as = match r.run_as.trim() {
            "" => None,
            u if u.len() <= 64 && !u.chars().any(|c| c.is_control() || c == '/') => {
                Some(u.to_owned())
            }
            _ => return bad("run_as must be a user name"),
        };
        Ok(Self {
            id,
            program,
            env: r.env,
            cwd,
            timeout: (r.timeout_ms > 0).then(|| Duration::from_millis(r.timeout_ms.into())),
            run_as,
            max_output_bytes: (r.max_output_bytes > 0).then_some(r.max_output_bytes),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One chunk of output (at most `CHUNK` bytes); `seq` starts at 1 per run.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub exec_id: ExecId,
    pub seq: u64,
    pub stream: Stream,
    pub data: Vec<u8>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub exec_id: ExecId,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub duration_ms: u64,
    pub timed_out: bool,
    pub cancelled: bool,
    pub truncated: bool,
    /// Empty unless the command could not start or the run was lost.
    pub error: String,
    /// This answers a re-sent id; the outcome is the stored one.
    pub duplicate: bool,
    /// Everything the command wrote, including what the cap dropped.
    pub output_bytes: u64,
    /// The last `Output::seq` of this run (0: no output).
    pub last_seq: u64,
}

impl Outcome {
    pub fn failed(exec_id: ExecId, error: impl Into<String>) -> Self {
        Self {
            exec_id,
            exit_code: None,
            signal: None,
            duration_ms: 0,
            timed_out: false,
            cancelled: false,
            truncated: false,
            error: error.into(),
            duplicate: false,
            output_bytes: 0,
            last_seq: 0,
        }
    }
}

/// What the runner hands the link, in order per exec id.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Output(Output),
    Finished(Outcome),
}

/// The runner's settings (`exec.*`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub default_timeout: Duration,
    pub max_output_bytes: u64,
    pub max_concurrent: usize,
    /// How many exec ids the journal remembers.
    pub history: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            default_timeout: Duration::from_secs(300),
            max_output_bytes: 1 << 20,
            max_concurrent: 8,
            history: 10_000,
        }
    }
}

#[cfg(all(test, unix))]
mod tests;
