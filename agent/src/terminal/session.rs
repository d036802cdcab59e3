//! One live PTY and its threads. PTY reads and writes block, so each
//! session has three small OS threads of its own — a reader that appends
//! output to the replay buffer, a writer fed by a bounded channel, and a
//! waiter for the shell's exit — and the agent's async runtime never blocks
//! on a terminal.
//!
//! Flow control: with nobody attached the reader never waits (old output
//! falls off the replay buffer). With a viewer attached, the reader waits
//! only when the next read would overwrite output the viewer has not been
//! sent yet; the shell then blocks on its writes, as it would over SSH.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::replay::Replay;
use super::{SessionId, TerminalError, clamp_size};
use crate::spawn::{GroupGuard, PtyProcess};

/// Keystroke chunks waiting for the PTY, at most.
const INPUT_QUEUE: usize = 64;
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

struct Shared {
    state: Mutex<State>,
    cond: Condvar,
    progress: watch::Sender<Progress>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub struct Session {
    id: SessionId,
    shared: Arc<Shared>,
    input: mpsc::Sender<Vec<u8>>,
    master: Mutex<Box<dyn portable_pty::MasterPty + Send>>,
    guard: Mutex<Option<GroupGuard>>,
    next_attachment: AtomicU64,
}

impl Session {
    /// Takes over a freshly spawned PTY and starts its threads.
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
        let mut reader = master.try_clone_reader().map_err(|e| io(&e))?;
        let mut writer = master.take_writer().map_err(|e| io(&e))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                replay: Replay::new(replay_bytes),
                attached: None,
                sent: 0,
                detached_since: Instant::now(),
                terminated: false,
            }),
            cond: Condvar::new(),
            progress: watch::channel(Progress::default()).0,
        });
        let (input, mut input_rx) = mpsc::channel::<Vec<u8>>(INPUT_QUEUE);
        let thread = |name: &str| std::thread::Builder::new().name(format!("pty-{name}"));

        let s = shared.clone();
        thread("read")
            .spawn(move || {
                let mut buf = vec![0u8; READ_BUF];
                loop {
                    // EIO once the last holder of the PTY's other side is gone.
                    let n = match reader.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let mut st = s.lock();
                    while !st.terminated
                        && st.attached.is_some()
                        && st.sent + (st.replay.capacity() as u64) < st.replay.end() + n as u64
                    {
                        st = s
                            .cond
                            .wait_timeout(st, Duration::from_secs(1))
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                    }
                    st.replay.push(&buf[..n]);
                    let end = st.replay.end();
                    drop(st);
                    s.progress.send_modify(|p| p.end = end);
                }
                s.progress.send_modify(|p| p.eof = true);
            })
            .map_err(|e| io(&e))?;

        thread("write")
            .spawn(move || {
                while let Some(data) = input_rx.blocking_recv() {
                    if writer
                        .write_all(&data)
                        .and_then(|()| writer.flush())
                        .is_err()
                    {
                        break;
                    }
                }
            })
            .map_err(|e| io(&e))?;

        let s = shared.clone();
        thread("wait")
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
            input,
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
        self.shared.cond.notify_all();
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
        self.shared.cond.notify_all();
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
        self.session.shared.cond.notify_all();
    }

    pub fn progress(&mut self) -> &mut watch::Receiver<Progress> {
        &mut self.progress
    }

    /// Fires when another viewer took over or the session ended.
    pub fn cancelled(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Where keystrokes go (bounded; the PTY writer drains it).
    pub fn input(&self) -> &mpsc::Sender<Vec<u8>> {
        &self.session.input
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
        self.session.shared.cond.notify_all();
    }
}
