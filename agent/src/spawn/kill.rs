//! Killing what a child leaves behind: its whole process group, or for a
//! terminal its whole session, so nothing it forked outlives it.

/// Kills its target once, on `kill()` or on drop.
pub struct GroupGuard {
    #[cfg(unix)]
    target: Option<Target>,
    #[cfg(windows)]
    killer: Option<Box<dyn portable_pty::ChildKiller + Send + Sync>>,
}

#[cfg(unix)]
#[derive(Debug, Clone, Copy)]
enum Target {
    Group(i32),
    Session(i32),
}

impl GroupGuard {
    /// The process group led by `pid` (the child was started with
    /// `process_group(0)`).
    #[cfg(unix)]
    pub fn group(pid: Option<u32>) -> Self {
        Self {
            target: pid.and_then(|p| i32::try_from(p).ok()).map(Target::Group),
        }
    }

    /// Windows: the direct child is killed by `spawn::Child` itself; killing
    /// what it started needs a Job Object (`JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`),
    /// which is not built yet.
    #[cfg(windows)]
    pub fn group(_pid: Option<u32>) -> Self {
        Self { killer: None }
    }

    /// The session led by `pid` (a PTY's shell is a session leader).
    #[cfg(unix)]
    pub fn session(pid: Option<u32>) -> Self {
        Self {
            target: pid.and_then(|p| i32::try_from(p).ok()).map(Target::Session),
        }
    }

    /// Windows: ConPTY's child, killed through portable-pty; its descendants
    /// need a Job Object as above.
    #[cfg(windows)]
    pub fn killer(k: Box<dyn portable_pty::ChildKiller + Send + Sync>) -> Self {
        Self { killer: Some(k) }
    }

    pub fn kill(&mut self) {
        #[cfg(unix)]
        if let Some(target) = self.target.take() {
            use nix::sys::signal::{Signal, killpg};
            use nix::unistd::Pid;
            match target {
                Target::Group(pgid) => {
                    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
                }
                Target::Session(sid) => {
                    let _ = killpg(Pid::from_raw(sid), Signal::SIGKILL);
                    kill_session(sid);
                }
            }
        }
        #[cfg(windows)]
        if let Some(mut k) = self.killer.take() {
            let _ = k.kill();
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Linux: every process of the session, whatever group job control put it
/// in. Elsewhere the group kill above and the PTY hang-up have to do.
#[cfg(unix)]
fn kill_session(sid: i32) {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            if session_of(pid) == Some(sid) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = sid;
}

/// The session id of `pid` from `/proc/PID/stat` (Linux).
#[cfg(target_os = "linux")]
fn session_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid pgrp session ..."; comm may hold spaces and ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(3)?.parse().ok()
}
