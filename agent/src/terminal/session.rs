//! One live PTY: a reader task that appends output to the replay buffer,
//! keystrokes written straight from the caller's task (both through
//! [`super::io`], non-blocking on the agent's runtime), and a small OS thread
//! that waits for the shell's exit.
//!
//! Flow control: with nobody attached the reader never waits (old output
//! falls off the replay buffer). With a viewer attached, the reader reads
//! only as much as fits without overwriting output the viewer has not been
//! sent yet; the shell then blocks on its writes, as it would over SSH.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::io::{PtyReader, PtyWriter};
use super::replay::Replay;
use super::{SessionId, TerminalError, clamp_size};
use crate::spawn::{GroupGuard, PtyProcess};

const READ_BUF: usize = 16 * 1024;

/// What a viewer waits on: output so far, and how the shell ended.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Progress {
    pub end: u64,
    /// The reader saw the PTY close (the shell and everything on it is gone).
    pub eof: bool,
    pub exited: bool,
    pub exit_code: Option<i32>,
}

struct State {
    replay: Replay,
    /// The attachment now served, and its cancel token.
    attached: Option<(u64, CancellationToken)>,
    /// Output handed to the attached viewer so far.
    sent: u64,
    detached_since: Instant,
    terminated: bool,
}

impl State {
    /// How many bytes the reader may take from the PTY now, at most `max`.
    fn room(&self, max: usize) -> usize {
        if self.terminated || self.attached.is_none() {
            return max;
        }
        let limit = self.sent + self.replay.capacity() as u64;
        usize::try_from(limit.saturating_sub(self.replay.end()))
            .unwrap_or(max)
            .min(max)
    }
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the reader when room may have been made (it is the only waiter).
    room: Notify,
    progress: watch::Sender<Progress>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends output; returns where the output now ends.
    fn push(&self, data: &[u8]) -> u64 {
        let mut st = self.lock();
        st.replay.push(data);
        st.replay.end()
    }

    /// Tells the viewer the output goes up to `end`.
    fn tell(&self, end: u64) {
        self.progress.send_modify(|p| p.end = end);
    }
}

/// Sustained output: this much read on the runtime thread in reads of at
/// least [`BULK_READ`] bytes each hands the reading to a blocking thread
/// (unix). Linux makes a read that finds the PTY master empty wait for the
/// PTY's flush worker to move the next 4 KiB piece; on the runtime thread
/// that wait stalls the sending too, on a thread of its own the sending
/// overlaps it. On a 2-vCPU VM this took a 100 MiB `cat` from 0.86–0.94
/// of OpenSSH's throughput to 1.07 and better (BENCHMARKS.md). Echoes and
/// short output stay on the runtime thread, which a hop to another thread
/// would slow.
#[cfg(unix)]
const BULK: usize = 16 * 1024;
#[cfg(unix)]
const BULK_READ: usize = 1024;
/// How long the PTY stays quiet before the blocking thread hands back.
#[cfg(unix)]
const QUIET: Duration = Duration::from_millis(10);
/// While output flows, the blocking thread tells the viewer every this
/// many bytes, or after 1 ms without more: frames stay large (each costs
/// the same in gRPC, TLS and the WebSocket whatever its size).
#[cfg(unix)]
const TELL_EVERY: usize = 16 * 1024;
#[cfg(unix)]
const TELL_AFTER: Duration = Duration::from_millis(1);

/// Moves PTY output into the replay buffer until the PTY closes.
async fn read_output(shared: Arc<Shared>, mut reader: PtyReader) {
    let mut buf = vec![0u8; READ_BUF];
    #[cfg(unix)]
    let mut gathered = 0;
    loop {
        let want = loop {
            // `notify_one` leaves a permit when nobody waits yet, so room
            // made between this check and the await is not missed.
            let room = shared.room.notified();
            let want = shared.lock().room(buf.len());
            if want > 0 {
                break want;
            }
            room.await;
        };
        let n = match reader.read(&mut buf[..want]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        shared.tell(shared.push(&buf[..n]));
        #[cfg(unix)]
        {
            gathered = if n < BULK_READ { 0 } else { gathered + n };
            if gathered >= BULK {
                gathered = 0;
                let sh = shared.clone();
                let Ok((r, b, open)) = tokio::task::spawn_blocking(move || {
                    let open = read_bulk(&sh, &reader, &mut buf);
                    (reader, buf, open)
                })
                .await
                else {
                    break;
                };
                (reader, buf) = (r, b);
                if !open {
                    break;
                }
            }
        }
    }
    shared.progress.send_modify(|p| p.eof = true);
}

/// Reads on a blocking thread until the PTY is quiet for [`QUIET`], a
/// short read (an echo, a prompt) comes or the viewer is a replay buffer
/// behind; false once the PTY has closed. Output is appended as it comes
/// and told to the viewer in batches. The thread never waits for anything
/// but the PTY (room is waited for on the runtime), so it ends with the
/// shell, and a runtime shutting down, which waits for blocking threads,
/// does not wait for a viewer that is gone.
#[cfg(unix)]
fn read_bulk(shared: &Shared, reader: &PtyReader, buf: &mut [u8]) -> bool {
    // Where the output ends, and where the viewer was last told it ends
    // (the runtime told it all before handing over).
    let mut end = shared.lock().replay.end();
    let mut told = end;
    let tell = |told: &mut u64, end: u64| {
        if end > *told {
            *told = end;
            shared.tell(end);
        }
    };
    loop {
        let want = shared.lock().room(buf.len());
        if want == 0 {
            tell(&mut told, end);
            return true;
        }
        let untold = end > told;
        match reader.read_blocking(&mut buf[..want], if untold { TELL_AFTER } else { QUIET }) {
            Ok(None) if untold => tell(&mut told, end),
            Ok(None) => return true,
            Ok(Some(0)) | Err(_) => {
                tell(&mut told, end);
                return false;
            }
            Ok(Some(n)) => {
                end = shared.push(&buf[..n]);
                if n < BULK_READ {
                    tell(&mut told, end);
                    return true;
                }
                if end - told >= TELL_EVERY as u64 {
                    tell(&mut told, end);
                }
            }
        }
    }
}

pub struct Session {
    id: SessionId,
    shared: Arc<Shared>,
    writer: PtyWriter,
    master: Mutex<Box<dyn portable_pty::MasterPty + Send>>,
    guard: Mutex<Option<GroupGuard>>,
    next_attachment: AtomicU64,
}

impl Session {
    /// Takes over a freshly spawned PTY and starts its reader task and its
    /// exit waiter. Call within the agent's runtime.
    pub fn start(
        id: SessionId,
        pty: PtyProcess,
        replay_bytes: usize,
    ) -> Result<Arc<Self>, TerminalError> {
        let io = |e: &dyn std::fmt::Display| TerminalError::Io(e.to_string());
        let PtyProcess {
            master,
            mut child,
            guard,
        } = pty;
        let (reader, writer) = super::io::split(master.as_ref()).map_err(|e| io(&e))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                replay: Replay::new(replay_bytes),
                attached: None,
                sent: 0,
                detached_since: Instant::now(),
                terminated: false,
            }),
            room: Notify::new(),
            progress: watch::channel(Progress::default()).0,
        });
        tokio::spawn(read_output(shared.clone(), reader));

        let s = shared.clone();
        std::thread::Builder::new()
            .name("pty-wait".into())
            .spawn(move || {
                let code = child
                    .wait()
                    .ok()
                    .map(|st| i32::try_from(st.exit_code()).unwrap_or(i32::MAX));
                s.progress.send_modify(|p| {
                    p.exited = true;
                    p.exit_code = code;
                });
            })
            .map_err(|e| io(&e))?;

        Ok(Arc::new(Self {
            id,
            shared,
            writer,
            master: Mutex::new(master),
            guard: Mutex::new(Some(guard)),
            next_attachment: AtomicU64::new(1),
        }))
    }

    pub fn id(&self) -> &SessionId {
        &self.id
    }

    pub fn progress(&self) -> Progress {
        *self.shared.progress.borrow()
    }

    /// Serves a new viewer; a previous one is cancelled (taken over).
    pub fn attach(self: &Arc<Self>) -> Attachment {
        let n = self.next_attachment.fetch_add(1, Ordering::Relaxed);
        let token = CancellationToken::new();
        let mut st = self.shared.lock();
        if let Some((_, old)) = st.attached.replace((n, token.clone())) {
            old.cancel();
        }
        st.sent = st.replay.start();
        drop(st);
        self.shared.room.notify_one();
        Attachment {
            session: self.clone(),
            n,
            cancel: token,
            progress: self.shared.progress.subscribe(),
        }
    }

    /// Sets the window size; out-of-range sizes are clamped to 1..=1000.
    pub fn resize(&self, cols: u32, rows: u32) -> Result<(), TerminalError> {
        let (cols, rows) = clamp_size(cols, rows);
        let master = self.master.lock().unwrap_or_else(PoisonError::into_inner);
        master
            .resize(portable_pty::PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .map_err(|e| TerminalError::Io(e.to_string()))
    }

    /// Writes some of `data` to the shell (keystrokes); returns how much.
    /// Waits while the PTY's input queue is full. Cancel-safe.
    pub async fn write(&self, data: &[u8]) -> std::io::Result<usize> {
        self.writer.write(data).await
    }

    /// How long nobody has been attached; `None` while someone is.
    pub fn idle_for(&self) -> Option<Duration> {
        let st = self.shared.lock();
        st.attached.is_none().then(|| st.detached_since.elapsed())
    }

    /// Kills the shell's session and ends any viewer.
    pub fn terminate(&self) {
        let mut st = self.shared.lock();
        st.terminated = true;
        if let Some((_, token)) = st.attached.take() {
            token.cancel();
        }
        drop(st);
        self.shared.room.notify_one();
        let guard = self
            .guard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(guard);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// One viewer's hold on a session. Dropping it detaches.
pub struct Attachment {
    session: Arc<Session>,
    n: u64,
    cancel: CancellationToken,
    progress: watch::Receiver<Progress>,
}

impl Attachment {
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// (total output so far, oldest offset still replayable).
    pub fn offsets(&self) -> (u64, u64) {
        let st = self.session.shared.lock();
        (st.replay.end(), st.replay.start())
    }

    /// Up to `max` bytes from `from` (clamped to what is held).
    pub fn read(&self, from: u64, max: usize) -> (u64, Vec<u8>) {
        self.session.shared.lock().replay.read(from, max)
    }

    /// Everything before `upto` has been handed to the viewer.
    pub fn mark_sent(&self, upto: u64) {
        let mut st = self.session.shared.lock();
        if st.attached.as_ref().is_some_and(|(n, _)| *n == self.n) {
            st.sent = st.sent.max(upto);
        }
        drop(st);
        self.session.shared.room.notify_one();
    }

    pub fn progress(&mut self) -> &mut watch::Receiver<Progress> {
        &mut self.progress
    }

    /// Fires when another viewer took over or the session ended.
    pub fn cancelled(&self) -> &CancellationToken {
        &self.cancel
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        let mut st = self.session.shared.lock();
        if st.attached.as_ref().is_some_and(|(n, _)| *n == self.n) {
            st.attached = None;
            st.detached_since = Instant::now();
        }
        drop(st);
        self.session.shared.room.notify_one();
    }
}
