//! The PTY's master side as async I/O on the agent's runtime.
//!
//! On Unix the master is duplicated, switched to non-blocking and registered
//! with the runtime's reactor, so the one runtime thread that receives a
//! keystroke from the network also writes it to the PTY, and the one that
//! sees the echo become readable also sends it: no thread hand-off on either
//! way of a key press. Windows' ConPTY hands out blocking pipes, so there a
//! reader thread and a writer thread bridge them (compiled by `cfg` only:
//! this machine has no Windows target).
//!
//! Both halves are cancel-safe: a dropped `read` or `write` future has read
//! or written nothing.

use std::io;

use portable_pty::MasterPty;

pub use imp::{PtyReader, PtyWriter};

/// The master's output and input halves. The master itself stays with the
/// caller (for resizing); the halves hold their own handles to it.
pub fn split(master: &dyn MasterPty) -> io::Result<(PtyReader, PtyWriter)> {
    imp::split(master)
}

#[cfg(unix)]
mod imp {
    use std::fs::File;
    use std::io::{self, Write};
    use std::os::fd::{AsRawFd, RawFd};

    use filedescriptor::FileDescriptor;
    use portable_pty::MasterPty;
    use tokio::net::unix::pipe;

    /// A read shorter than this that did not fill the caller's buffer is
    /// taken as "the PTY is empty now" (see [`PtyReader::read`]). Echoes
    /// are a few bytes; at 512, bulk output's frames shrank by up to a
    /// sixth, as the tail of a 4 KiB piece sometimes came in under it.
    const ECHO_READ: usize = 64;

    /// The master's fd, borrowed only long enough to duplicate it.
    struct Raw(RawFd);

    impl AsRawFd for Raw {
        fn as_raw_fd(&self) -> RawFd {
            self.0
        }
    }

    /// The reactor treats a PTY master like a pipe end: a non-blocking
    /// descriptor that becomes readable.
    pub struct PtyReader {
        /// For reads on the runtime.
        pty: pipe::Receiver,
        /// The same master, for reads on a blocking thread
        /// ([`PtyReader::read_blocking`]), which the reactor does not see.
        /// A duplicate shares the master's non-blocking flag, so that read
        /// polls before it reads rather than relying on the read to wait.
        blocking: File,
    }

    /// Keystrokes are written straight to the non-blocking master. It is not
    /// registered with the reactor: the PTY signals "writable" every time
    /// the shell reads its input, and each of those would wake the runtime
    /// for nothing. Only while the input queue is full does a write wait,
    /// on a registration made for that wait.
    pub struct PtyWriter(File);

    pub fn split(master: &dyn MasterPty) -> io::Result<(PtyReader, PtyWriter)> {
        let raw = master
            .as_raw_fd()
            .ok_or_else(|| io::Error::other("the PTY has no file descriptor"))?;
        let mut fd = FileDescriptor::dup(&Raw(raw)).map_err(io::Error::other)?;
        // O_NONBLOCK belongs to the open file, which the duplicates and the
        // master share; the master is only used for resizing, which does not
        // care.
        fd.set_non_blocking(true).map_err(io::Error::other)?;
        let file = || fd.as_file().map_err(io::Error::other);
        Ok((
            PtyReader {
                pty: pipe::Receiver::from_file_unchecked(file()?)?,
                blocking: file()?,
            },
            PtyWriter(file()?),
        ))
    }

    impl PtyReader {
        /// Reads some output; `Ok(0)` once nothing holds the PTY's other
        /// side any more (Linux says EIO then).
        ///
        /// During bulk output the kernel moves output into the master's
        /// 4 KiB buffer a piece at a time, so a read that got a piece reads
        /// on at once: often the next piece is already there, and a wake-up
        /// gathers several. A read of a few bytes is an echo, and the PTY
        /// is empty after it: the reactor is told so, and the next read
        /// waits for the PTY to signal new output instead of finding it
        /// empty with a syscall that would sit between the echo and its
        /// sending. Output that arrives later signals anew, so nothing is
        /// missed.
        pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            loop {
                self.pty.readable().await?;
                match self.pty.try_read(buf) {
                    Ok(n) => {
                        if n < ECHO_READ && n < buf.len() {
                            self.drained();
                        }
                        return Ok(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                    Err(e) => return Err(e),
                }
            }
        }

        /// Reads from a thread that may block: waits up to `quiet` for
        /// output (`Ok(None)` if none came), then reads; `Ok(Some(0))` once
        /// the PTY has closed.
        pub fn read_blocking(
            &self,
            buf: &mut [u8],
            quiet: std::time::Duration,
        ) -> io::Result<Option<usize>> {
            use std::io::Read;
            use std::os::fd::AsFd;

            use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
            let timeout = PollTimeout::try_from(quiet).unwrap_or(PollTimeout::MAX);
            loop {
                let mut fds = [PollFd::new(self.blocking.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, timeout) {
                    Ok(0) => return Ok(None),
                    Ok(_) => {}
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                }
                match (&self.blocking).read(buf) {
                    Ok(n) => return Ok(Some(n)),
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EIO) => return Ok(Some(0)),
                    Err(e) => return Err(e),
                }
            }
        }

        /// Tells the reactor the PTY is empty, without a syscall: `try_io`
        /// clears the readiness it saw when its operation says "would
        /// block". A signal that came in since is kept.
        fn drained(&self) {
            let _ = self
                .pty
                .try_io(|| Err::<(), _>(io::ErrorKind::WouldBlock.into()));
        }
    }

    impl PtyWriter {
        /// Writes some of `data`, waiting while the PTY's input queue is full.
        pub async fn write(&self, data: &[u8]) -> io::Result<usize> {
            loop {
                match (&self.0).write(data) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => return r,
                }
                // Registering reports the current state, so room made since
                // the failed write is not missed.
                let waiter = pipe::Sender::from_file_unchecked(self.0.try_clone()?)?;
                waiter.writable().await?;
            }
        }
    }
}

#[cfg(windows)]
mod imp {
    use std::io::{self, Read, Write};

    use portable_pty::MasterPty;
    use tokio::sync::mpsc;

    const CHUNK: usize = 16 * 1024;

    pub struct PtyReader {
        rx: mpsc::Receiver<io::Result<Vec<u8>>>,
        chunk: Vec<u8>,
        at: usize,
    }

    pub struct PtyWriter(mpsc::Sender<Vec<u8>>);

    pub fn split(master: &dyn MasterPty) -> io::Result<(PtyReader, PtyWriter)> {
        let mut reader = master.try_clone_reader().map_err(io::Error::other)?;
        let mut writer = master.take_writer().map_err(io::Error::other)?;
        let (out_tx, rx) = mpsc::channel::<io::Result<Vec<u8>>>(4);
        std::thread::Builder::new()
            .name("pty-read".into())
            .spawn(move || {
                let mut buf = vec![0u8; CHUNK];
                loop {
                    let r = reader.read(&mut buf).map(|n| buf[..n].to_vec());
                    let end = !matches!(&r, Ok(b) if !b.is_empty());
                    if out_tx.blocking_send(r).is_err() || end {
                        break;
                    }
                }
            })?;
        let (tx, mut in_rx) = mpsc::channel::<Vec<u8>>(64);
        std::thread::Builder::new()
            .name("pty-write".into())
            .spawn(move || {
                while let Some(data) = in_rx.blocking_recv() {
                    if writer
                        .write_all(&data)
                        .and_then(|()| writer.flush())
                        .is_err()
                    {
                        break;
                    }
                }
            })?;
        Ok((
            PtyReader {
                rx,
                chunk: Vec::new(),
                at: 0,
            },
            PtyWriter(tx),
        ))
    }

    impl PtyReader {
        pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.at >= self.chunk.len() {
                match self.rx.recv().await {
                    Some(Ok(chunk)) => (self.chunk, self.at) = (chunk, 0),
                    Some(Err(e)) => return Err(e),
                    None => return Ok(0),
                }
            }
            let n = buf.len().min(self.chunk.len() - self.at);
            buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    impl PtyWriter {
        pub async fn write(&self, data: &[u8]) -> io::Result<usize> {
            let permit = self
                .0
                .reserve()
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
            permit.send(data.to_vec());
            Ok(data.len())
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::time::Duration;

    use portable_pty::{CommandBuilder, PtySize, native_pty_system};

    use super::split;

    /// Runs `script` on a fresh PTY and reads its output with `buf_len`-byte
    /// reads, each allowed 2 s, until `want` has arrived. A lost readiness
    /// signal shows up as a read that times out.
    async fn read_until(script: &str, buf_len: usize, want: &str) {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: 24,
                cols: 80,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("a PTY");
        let mut cmd = CommandBuilder::new("sh");
        cmd.args(["-c", script]);
        let mut child = pair.slave.spawn_command(cmd).expect("sh on the PTY");
        let (mut reader, _writer) = split(pair.master.as_ref()).expect("split");
        let mut got = Vec::new();
        let mut buf = vec![0u8; buf_len];
        while !String::from_utf8_lossy(&got).contains(want) {
            let n = tokio::time::timeout(Duration::from_secs(2), reader.read(&mut buf))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no output for 2 s after {:?}",
                        String::from_utf8_lossy(&got)
                    )
                })
                .expect("read");
            assert!(n > 0, "the PTY closed after {got:?}");
            got.extend_from_slice(&buf[..n]);
        }
        let _ = child.kill();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn output_after_an_echo_sized_read_still_arrives() {
        // Each short read tells the reactor the PTY is empty; what the shell
        // writes afterwards must wake the reader all the same.
        read_until(
            "printf a; sleep 0.2; printf b; sleep 0.2; printf c; sleep 10",
            16 * 1024,
            "abc",
        )
        .await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_read_that_fills_the_buffer_reads_on() {
        // Three bytes wait in the PTY and nothing follows them: one-byte
        // reads must take them without a new signal from the kernel.
        read_until("printf a; sleep 0.3; printf bcd; sleep 10", 1, "abcd").await;
    }
}
