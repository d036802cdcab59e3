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

    /// The master's fd, borrowed only long enough to duplicate it.
    struct Raw(RawFd);

    impl AsRawFd for Raw {
        fn as_raw_fd(&self) -> RawFd {
            self.0
        }
    }

    /// The reactor treats a PTY master like a pipe end: a non-blocking
    /// descriptor that becomes readable.
    pub struct PtyReader(pipe::Receiver);

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
            PtyReader(pipe::Receiver::from_file_unchecked(file()?)?),
            PtyWriter(file()?),
        ))
    }

    impl PtyReader {
        /// Reads some output; `Ok(0)` once nothing holds the PTY's other
        /// side any more (Linux says EIO then). A short read does not mean
        /// the PTY is drained (the kernel moves output into the master's
        /// 4 KiB buffer a piece at a time), so it reads on until EAGAIN:
        /// during bulk output that gathers several pieces per wake-up.
        pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            loop {
                self.0.readable().await?;
                match self.0.try_read(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                    r => return r,
                }
            }
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
