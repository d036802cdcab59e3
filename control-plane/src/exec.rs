//! Remote exec: a command (argv or script) run on one agent or a selection,
//! with a concurrency limit. Each agent gets the job's id as its exec id, so
//! a re-sent request runs at most once there. Output streams back in order,
//! is capped and stored; results and every start are audited.

mod hub;
mod runner;

pub use hub::{AgentExecEvent, Hub, spawn_hub};
pub use runner::{ExecCommand, Executor, JobEvent};

use std::collections::BTreeMap;
use std::time::Duration;

use crate::fleet::{AgentId, AgentRecord};
use crate::labels::Labels;
use crate::projects::ProjectId;

const MAX_ARGS: usize = 256;
const MAX_ARG: usize = 4096;
const MAX_SCRIPT: usize = 64 * 1024;
const MAX_ENV: usize = 64;
pub const MAX_CONCURRENCY: u32 = 1000;
pub const MAX_TARGETS: usize = 10_000;

uuid_id!(
    /// An exec job's id, also the exec id each agent runs at most once.
    JobId
);

/// What to run, validated.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Spec {
    pub argv: Vec<String>,
    pub script: String,
    pub env: BTreeMap<String, String>,
    pub cwd: String,
    pub timeout_ms: u64,
    pub run_as: String,
    pub max_output_bytes: u64,
}

/// Which agents: explicit ids, or a project and/or labels.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub ids: Vec<AgentId>,
    pub project: Option<ProjectId>,
    pub labels: Labels,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{0}")]
    Invalid(String),
    #[error("no enrolled, unrevoked agent matches this selection")]
    NoTargets,
    #[error("unknown or revoked agent {0}")]
    UnknownAgent(String),
    #[error("no such exec job")]
    NotFound,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl Spec {
    pub fn validate(&self) -> Result<(), ExecError> {
        let bad = |m: &str| Err(ExecError::Invalid(m.to_owned()));
        match (self.argv.is_empty(), self.script.trim().is_empty()) {
            (true, true) => return bad("give a command (argv) or a script"),
            (false, false) => return bad("give either a command (argv) or a script, not both"),
            _ => {}
        }
        if self.argv.len() > MAX_ARGS
            || self
                .argv
                .iter()
                .any(|a| a.len() > MAX_ARG || a.contains('\0'))
        {
            return bad("at most 256 arguments of at most 4096 bytes, without NUL bytes");
        }
        if self.argv.first().is_some_and(String::is_empty) {
            return bad("the program name is empty");
        }
        if self.script.len() > MAX_SCRIPT || self.script.contains('\0') {
            return bad("the script is longer than 64 KiB or contains NUL bytes");
        }
        if self.env.len() > MAX_ENV
            || self.env.iter().any(|(k, v)| {
                k.is_empty()
                    || k.len() > 128
                    || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    || v.len() > MAX_ARG
                    || v.contains('\0')
            })
        {
            return bad(
                "environment: at most 64 variables named [A-Za-z0-9_], values up to 4096 bytes",
            );
        }
        if self.cwd.len() > MAX_ARG || self.cwd.contains('\0') {
            return bad("the working directory is too long");
        }
        if !(1000..=86_400_000).contains(&self.timeout_ms) {
            return bad("the timeout must be between 1s and 24h");
        }
        if self.run_as.len() > 64
            || !self
                .run_as
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return bad("run_as must be a user name");
        }
        if self.max_output_bytes == 0 {
            return bad("max output must be positive");
        }
        Ok(())
    }

    /// A one-line description for lists and the audit log.
    pub fn summary(&self) -> String {
        let s = if self.argv.is_empty() {
            self.script.lines().next().unwrap_or("").to_owned()
        } else {
            self.argv.join(" ")
        };
        s.chars().take(200).collect()
    }
}

impl Target {
    /// The agents the target names, among `all`. Revoked agents never run anything.
    pub fn resolve(&self, all: Vec<AgentRecord>) -> Result<Vec<AgentRecord>, ExecError> {
        if !self.ids.is_empty() && (self.project.is_some() || !self.labels.is_empty()) {
            return Err(ExecError::Invalid(
                "select agents by ids, or by project and labels, not both".into(),
            ));
        }
        let live = all.into_iter().filter(|a| a.revoked_at_ms.is_none());
        let chosen: Vec<AgentRecord> = if self.ids.is_empty() {
            if self.project.is_none() && self.labels.is_empty() {
                return Err(ExecError::Invalid(
                    "select agents by ids, project or labels".into(),
                ));
            }
            live.filter(|a| self.project.as_ref().is_none_or(|p| &a.project == p))
                .filter(|a| a.labels.matches(&self.labels))
                .collect()
        } else {
            if self.ids.len() > MAX_TARGETS {
                return Err(ExecError::Invalid(format!(
                    "at most {MAX_TARGETS} agents per job"
                )));
            }
            let by_id: std::collections::HashMap<AgentId, AgentRecord> =
                live.map(|a| (a.id.clone(), a)).collect();
            let mut out = Vec::with_capacity(self.ids.len());
            for id in &self.ids {
                match by_id.get(id) {
                    Some(a) if !out.iter().any(|o: &AgentRecord| o.id == a.id) => {
                        out.push(a.clone())
                    }
                    Some(_) => {}
                    None => return Err(ExecError::UnknownAgent(id.to_string())),
                }
            }
            out
        };
        if chosen.is_empty() {
            return Err(ExecError::NoTargets);
        }
        if chosen.len() > MAX_TARGETS {
            return Err(ExecError::Invalid(format!(
                "the selection has {} agents; at most {MAX_TARGETS} per job",
                chosen.len()
            )));
        }
        Ok(chosen)
    }
}

/// How one agent's run ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub duration_ms: u64,
    pub timed_out: bool,
    pub cancelled: bool,
    pub truncated: bool,
    pub error: String,
    pub output_bytes: u64,
}

impl Outcome {
    pub fn failed(error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            ..Self::default()
        }
    }

    pub fn ok(&self) -> bool {
        self.exit_code == Some(0) && self.error.is_empty() && !self.timed_out && !self.cancelled
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Pending,
    Running,
    Done,
    Offline,
    Failed,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Done => "done",
            Self::Offline => "offline",
            Self::Failed => "failed",
        }
    }
}

pub fn default_timeout() -> Duration {
    Duration::from_secs(300)
}

#[cfg(test)]
mod tests;
