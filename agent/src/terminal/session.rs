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
}

/// Moves PTY output into the replay buffer until the PTY closes.
async fn read_output(shared: Arc<Shared>, mut reader: PtyReader) {
    let mut buf = vec![0u8; READ_BUF];
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
        let mut st = shared.lock();
        st.replay.push(&buf[..n]);
        let end = st.replay.end();
        drop(st);
        shared.progress.send_modify(|p| p.end = end);
    }
    shared.progress.send_modify(|p| p.eof = true);
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
