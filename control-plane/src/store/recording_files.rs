//! Where a SQLite deployment keeps its terminal recordings: in files beside
//! the database (`<database>-recordings/<session id>.rec`), not in it.
//! SQLite writes a stored blob page by page twice, to its WAL and again at a
//! checkpoint, and that cost a busy terminal about a tenth of its
//! throughput (BENCHMARKS.md); a file takes each byte once. PostgreSQL
//! deployments keep parts in the database, where every replica sees them.
//!
//! A file is a run of frames, each a part's length (`u32`, little-endian)
//! and then the part. The session's row says how many bytes of the file are
//! committed (`recording_file_bytes`), and it moves past a frame only after
//! the frame is on disk (`fdatasync`, off the terminal's path, once for all
//! the parts an append brings). So a crash between the two leaves a tail
//! that readers never look at and the next append cuts off. If the file is
//! shorter than its row says anyway (restored from an older backup, say),
//! reading stops at the last whole frame and the next append continues from
//! there; if it is gone, recording starts it again, header first.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::StoreError;

/// A part is a compressed frame of at most 16 MiB of records; a length
/// beyond this is damage, not a part.
const FRAME_MAX: u64 = 32 << 20;
const LEN_BYTES: u64 = 4;
/// Appends to different sessions rarely wait on each other.
const LOCK_SHARDS: usize = 64;

#[derive(Debug)]
pub(super) struct RecordingFiles {
    dir: PathBuf,
    /// One append at a time per session (by a hash of its id), so two
    /// recorders of a session (a re-attach racing the old one's last flush)
    /// never write over each other's frames.
    appending: Vec<tokio::sync::Mutex<()>>,
}

impl RecordingFiles {
    pub(super) fn beside(database: &Path) -> Self {
        let mut dir = database.as_os_str().to_owned();
        dir.push("-recordings");
        Self {
            dir: PathBuf::from(dir),
            appending: (0..LOCK_SHARDS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The session's file. Session ids are UUIDs; anything that could leave
    /// the directory is refused.
    fn path(&self, session_id: &str) -> Result<PathBuf, StoreError> {
        let safe = !session_id.is_empty()
            && session_id.len() <= 64
            && session_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !safe {
            return Err(StoreError::Conflict(format!(
                "{session_id:?} is not a terminal session id"
            )));
        }
        Ok(self.dir.join(format!("{session_id}.rec")))
    }

    /// Serializes a session's appends: hold the guard from reading the
    /// committed length until the row has moved.
    pub(super) async fn lock(&self, session_id: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        session_id.hash(&mut h);
        let shard = usize::try_from(h.finish() % LOCK_SHARDS as u64).unwrap_or(0);
        self.appending[shard].lock().await
    }

    /// Whether the first `committed` bytes of the session's file hold a
    /// whole part (the first has the recording's header).
    pub(super) async fn has_parts(
        &self,
        session_id: &str,
        committed: u64,
    ) -> Result<bool, StoreError> {
        if committed == 0 {
            return Ok(false);
        }
        let path = self.path(session_id)?;
        blocking(path.clone(), move || match std::fs::File::open(&path) {
            Ok(mut f) => {
                let limit = committed.min(f.metadata()?.len());
                Ok(whole_frames(&mut f, limit, 1)? > 0)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        })
        .await
    }

    /// Writes `parts` as the frames after the first `committed` bytes of the
    /// session's file, dropping anything uncommitted after them, and syncs
    /// them once; returns the file's new committed length. Call with
    /// [`Self::lock`] held.
    pub(super) async fn write(
        &self,
        session_id: &str,
        committed: u64,
        parts: Vec<Vec<u8>>,
    ) -> Result<u64, StoreError> {
        let path = self.path(session_id)?;
        let dir = self.dir.clone();
        blocking(path.clone(), move || {
            write_frames(&dir, &path, committed, &parts)
        })
        .await
    }

    /// The session's committed parts, in order.
    pub(super) async fn read(
        &self,
        session_id: &str,
        committed: u64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        if committed == 0 {
            return Ok(Vec::new());
        }
        let path = self.path(session_id)?;
        blocking(path.clone(), move || read_frames(&path, committed)).await
    }
}

async fn blocking<T: Send + 'static>(
    path: PathBuf,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, StoreError> {
    let shown = path.clone();
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|source| StoreError::RecordingFile {
            path: shown,
            source,
        }),
        Err(e) => Err(StoreError::RecordingFile {
            path,
            source: std::io::Error::other(e.to_string()),
        }),
    }
}

/// A frame's length from its header, if a whole frame of that length fits
/// in the `room` bytes after the header.
fn frame_len(header: [u8; LEN_BYTES as usize], room: u64) -> Option<u64> {
    let len = u64::from(u32::from_le_bytes(header));
    (len > 0 && len <= FRAME_MAX && len <= room).then_some(len)
}

fn write_frames(
    dir: &Path,
    path: &Path,
    committed: u64,
    parts: &[Vec<u8>],
) -> std::io::Result<u64> {
    let mut frames = Vec::with_capacity(parts.iter().map(|p| p.len() + LEN_BYTES as usize).sum());
    for part in parts {
        let len = u32::try_from(part.len())
            .ok()
            .filter(|&n| u64::from(n) <= FRAME_MAX)
            .ok_or_else(|| std::io::Error::other("a recording part is too big to store"))?;
        frames.extend_from_slice(&len.to_le_bytes());
        frames.extend_from_slice(part);
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    // The directory is made with the first file, not looked for each time.
    let (mut file, created) = match options.open(path) {
        Ok(f) => (f, false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::fsutil::create_private_dir(dir)?;
            (options.open(path)?, true)
        }
        Err(e) => return Err(e),
    };
    let on_disk = file.metadata()?.len();
    let created = created || on_disk == 0;
    let start = if on_disk >= committed {
        committed
    } else {
        let whole = whole_frames(&mut file, on_disk, usize::MAX)?;
        tracing::warn!(
            path = %path.display(),
            committed,
            on_disk,
            kept = whole,
            "A terminal recording file is shorter than the database says (deleted, or restored from an older copy?); continuing after its last whole part."
        );
        whole
    };
    if on_disk != start {
        file.set_len(start)?;
    }
    file.seek(SeekFrom::Start(start))?;
    file.write_all(&frames)?;
    // On disk before the row says so; a new file's name too. One sync for
    // all the parts: a sync takes milliseconds on some disks, and one per
    // part held busy terminals back (BENCHMARKS.md).
    file.sync_data()?;
    #[cfg(unix)]
    if created && let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(start + frames.len() as u64)
}

/// Where the whole frames among the first `limit` bytes end, looking at
/// no more than `max_frames` of them.
fn whole_frames(file: &mut std::fs::File, limit: u64, max_frames: usize) -> std::io::Result<u64> {
    let mut at = 0u64;
    for _ in 0..max_frames {
        let mut len = [0u8; LEN_BYTES as usize];
        if at + LEN_BYTES > limit {
            return Ok(at);
        }
        file.seek(SeekFrom::Start(at))?;
        match file.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(at),
            Err(e) => return Err(e),
        }
        let Some(len) = frame_len(len, limit - at - LEN_BYTES) else {
            return Ok(at);
        };
        at += LEN_BYTES + len;
    }
    Ok(at)
}

fn read_frames(path: &Path, committed: u64) -> std::io::Result<Vec<Vec<u8>>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(path = %path.display(), "A terminal recording file is missing; its parts are lost.");
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    // Frame by frame, so a recording is in memory once, as its parts.
    let mut file = std::io::BufReader::new(file).take(committed);
    let mut parts = Vec::new();
    loop {
        let mut len = [0u8; LEN_BYTES as usize];
        match file.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let Some(len) = frame_len(len, file.limit()) else {
            break;
        };
        let mut part = Vec::with_capacity(len as usize);
        (&mut file).take(len).read_to_end(&mut part)?;
        if part.len() as u64 != len {
            break;
        }
        parts.push(part);
    }
    if file.limit() > 0 {
        tracing::warn!(
            path = %path.display(),
            committed,
            whole_parts = parts.len(),
            "A terminal recording file ends early or is damaged; playing back its whole parts."
        );
    }
    Ok(parts)
}
