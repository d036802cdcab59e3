//! One run of one command: spawn it through `spawn`, stream stdout and stderr
//! in arrival order as chunks, stop storing at the output cap but keep
//! draining, and kill the whole process group on timeout, on cancel, and
//! when the run ends (so nothing it forked outlives it).
//!
//! Output goes to the link through a bounded channel: while the link is slow
//! or disconnected the run stops reading, the pipes fill and the command
//! blocks on its writes; output is never dropped silently. The timeout keeps
//! counting meanwhile.

use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;

use super::{CHUNK, Event, ExecId, ExecSpec, Outcome, Output, Program, Settings, Stream};
use crate::spawn::{self, BaseEnv};

/// After the command exited (or was killed), stop reading once its pipes
/// stayed quiet this long: whatever still holds them is then killed.
const QUIET: Duration = Duration::from_millis(500);
/// After a kill, give up on the pipes after this long in any case.
const DRAIN: Duration = Duration::from_secs(3);
pub const STOPPED: &str = "the agent stopped while this command ran";

pub struct Context {
    pub events: mpsc::Sender<Event>,
    /// Fires on cancel and on shutdown.
    pub cancel: CancellationToken,
    pub shutdown: CancellationToken,
    pub base: BaseEnv,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ending {
    TimedOut,
    Cancelled,
    Stopped,
}

/// Counts output and cuts it into chunks, up to the cap.
struct Chunker {
    id: ExecId,
    seq: u64,
    kept: u64,
    total: u64,
    cap: u64,
    truncated: bool,
}

impl Chunker {
    fn take(&mut self, stream: Stream, data: &[u8]) -> Option<Output> {
        let n = data.len() as u64;
        self.total += n;
        let keep = n.min(self.cap.saturating_sub(self.kept));
        if keep < n {
            self.truncated = true;
        }
        if keep == 0 {
            return None;
        }
        self.kept += keep;
        self.seq += 1;
        Some(Output {
            exec_id: self.id.clone(),
            seq: self.seq,
            stream,
            data: data[..keep as usize].to_vec(),
        })
    }
}

fn command(program: Program) -> (String, Vec<String>) {
    match program {
        Program::Argv(mut argv) => {
            let rest = argv.split_off(1.min(argv.len()));
            (argv.pop().unwrap_or_default(), rest)
        }
        #[cfg(unix)]
        Program::Script(s) => ("/bin/sh".into(), vec!["-c".into(), s]),
        #[cfg(windows)]
        Program::Script(s) => (
            "powershell".into(),
            vec![
                "-NoProfile".into(),
                "-NonInteractive".into(),
                "-Command".into(),
                s,
            ],
        ),
    }
}

pub async fn run(spec: ExecSpec, settings: &Settings, ctx: Context) -> Outcome {
    let started = Instant::now();
    let id = spec.id.clone();
    let timeout = spec.timeout.unwrap_or(settings.default_timeout);
    let cap = spec
        .max_output_bytes
        .map_or(settings.max_output_bytes, |m| {
            m.min(settings.max_output_bytes)
        });
    let (program, args) = command(spec.program);
    let sp = spawn::Spec {
        program,
        args,
        env: spec.env,
        cwd: spec.cwd,
        user: spec.run_as,
    };
    let mut child = match spawn::spawn(&sp, &ctx.base) {
        Ok(c) => c,
        Err(e) => {
            let mut o = Outcome::failed(id, e.to_string());
            o.duration_ms = started.elapsed().as_millis() as u64;
            return o;
        }
    };
    tracing::debug!(exec_id = %id, pid = child.id(), "Command started.");
    let mut stdout = child.take_stdout();
    let mut stderr = child.take_stderr();
    let mut out = Chunker {
        id: id.clone(),
        seq: 0,
        kept: 0,
        total: 0,
        cap,
        truncated: false,
    };
    let mut buf_out = vec![0u8; CHUNK];
    let mut buf_err = vec![0u8; CHUNK];
    let mut pending: Option<Output> = None;
    let mut status = None;
    let mut exited = false;
    let mut ending: Option<(Ending, Instant)> = None;
    let mut quiet_since = Instant::now();
    let deadline = sleep_until((started + timeout).into());
    tokio::pin!(deadline);

    loop {
        if exited && stdout.is_none() && stderr.is_none() && pending.is_none() {
            break;
        }
        let winding_down = (exited || ending.is_some()) && pending.is_none();
        let give_up = ending.map(|(_, at)| at + DRAIN);
        tokio::select! {
            biased;
            () = ctx.cancel.cancelled(), if ending.is_none() => {
                child.kill_group();
                let why = if ctx.shutdown.is_cancelled() { Ending::Stopped } else { Ending::Cancelled };
                ending = Some((why, Instant::now()));
                quiet_since = Instant::now();
            }
            () = &mut deadline, if ending.is_none() => {
                child.kill_group();
                ending = Some((Ending::TimedOut, Instant::now()));
                quiet_since = Instant::now();
            }
            () = async { if let Some(t) = give_up { sleep_until(t.into()).await } }, if give_up.is_some() => break,
            () = sleep_until((quiet_since + QUIET).into()), if winding_down => break,
            permit = ctx.events.reserve(), if pending.is_some() => {
                // Err: the link is gone (the agent is stopping); keep draining.
                if let (Ok(p), Some(o)) = (permit, pending.take()) {
                    p.send(Event::Output(o));
                }
            }
            r = read(stdout.as_mut(), &mut buf_out), if pending.is_none() && stdout.is_some() => match r {
                Ok(n) if n > 0 => {
                    pending = out.take(Stream::Stdout, &buf_out[..n]);
                    quiet_since = Instant::now();
                }
                _ => stdout = None,
            },
            r = read(stderr.as_mut(), &mut buf_err), if pending.is_none() && stderr.is_some() => match r {
                Ok(n) if n > 0 => {
                    pending = out.take(Stream::Stderr, &buf_err[..n]);
                    quiet_since = Instant::now();
                }
                _ => stderr = None,
            },
            s = child.wait(), if !exited => {
                exited = true;
                status = s.ok();
                quiet_since = Instant::now();
            }
        }
    }
    // Whatever is left of the group (children that outlived the command,
    // or all of it after a timeout) goes now.
    child.kill_group();
    if !exited {
        status = tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .ok()
            .and_then(Result::ok);
    }
    if let Some(o) = pending.take() {
        tokio::select! {
            _ = ctx.events.send(Event::Output(o)) => {}
            () = ctx.shutdown.cancelled() => {}
        }
    }
    let (exit_code, signal) = status.map_or((None, None), spawn::exit_parts);
    let ending = ending.map(|(e, _)| e);
    Outcome {
        exec_id: id,
        exit_code,
        signal,
        duration_ms: started.elapsed().as_millis() as u64,
        timed_out: ending == Some(Ending::TimedOut),
        cancelled: matches!(ending, Some(Ending::Cancelled | Ending::Stopped)),
        truncated: out.truncated,
        error: if ending == Some(Ending::Stopped) {
            STOPPED.to_owned()
        } else {
            String::new()
        },
        duplicate: false,
        output_bytes: out.total,
        last_seq: out.seq,
    }
}

async fn read<R: tokio::io::AsyncRead + Unpin>(
    r: Option<&mut R>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match r {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}
