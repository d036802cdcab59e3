//! The exec journal: an append-only log of the exec ids this agent has
//! started and how each ended, bounded to the last `limit` ids. A "started"
//! line is made durable (fsync) before the process is spawned, so after a
//! crash an id is known as started even if its end was never written; such
//! ids are closed at open with an error outcome, never run again.
//!
//! One record per line, fields separated by spaces, text fields hex-encoded:
//! `S <id>` and `F <id> <exit|-> <signal|-> <duration_ms> <flags> <output_bytes> <last_seq> <error|->`
//! (flags: 1 timed out, 2 cancelled, 4 truncated).

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{ExecId, Outcome};

const FILE: &str = "journal.log";
pub const LOST: &str = "the agent restarted while this command ran";

#[derive(Debug, thiserror::Error)]
#[error("exec journal {path}: {source}")]
pub struct JournalError {
    path: PathBuf,
    source: std::io::Error,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Started,
    Finished(Outcome),
}

pub struct Journal {
    dir: PathBuf,
    file: File,
    entries: HashMap<ExecId, Entry>,
    /// Ids in the order they were first recorded.
    order: VecDeque<ExecId>,
    limit: usize,
    lines: usize,
}

impl Journal {
    /// Opens (or creates) the journal in `dir`, closes runs a crash
    /// interrupted, and rewrites the file compactly.
    pub fn open(dir: &Path, limit: usize) -> Result<Self, JournalError> {
        let err = |source| JournalError {
            path: dir.join(FILE),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let text = match std::fs::read(dir.join(FILE)) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(err(e)),
        };
        let mut entries = HashMap::new();
        let mut order = VecDeque::new();
        // A line without its newline was torn by a crash: its spawn never
        // happened (the line is synced first), so it is dropped.
        let complete = text.rfind('\n').map_or("", |i| &text[..i]);
        for line in complete.lines() {
            match parse(line) {
                Some((id, entry)) => {
                    if !entries.contains_key(&id) {
                        order.push_back(id.clone());
                    }
                    entries.insert(id, entry);
                }
                None => {
                    tracing::warn!(line = %line.chars().take(80).collect::<String>(), "Skipping an unreadable exec journal line.")
                }
            }
        }
        for (id, entry) in entries.iter_mut() {
            if *entry == Entry::Started {
                tracing::warn!(exec_id = %id, "A command was running when the agent stopped; it will not be run again.");
                *entry = Entry::Finished(Outcome::failed(id.clone(), LOST));
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(FILE))
            .map_err(err)?;
        let mut j = Self {
            dir: dir.to_owned(),
            file,
            entries,
            order,
            limit: limit.max(1),
            lines: 0,
        };
        j.evict();
        j.compact()?;
        Ok(j)
    }

    pub fn get(&self, id: &ExecId) -> Option<&Entry> {
        self.entries.get(id)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records `id` as started, durably; call before spawning.
    pub fn started(&mut self, id: &ExecId) -> Result<(), JournalError> {
        self.append(&format!("S {}\n", hex::encode(id.as_str())))?;
        if self.entries.insert(id.clone(), Entry::Started).is_none() {
            self.order.push_back(id.clone());
        }
        self.maintain()
    }

    /// Records how `o.exec_id` ended, durably.
    pub fn finished(&mut self, o: &Outcome) -> Result<(), JournalError> {
        self.append(&format_finished(o))?;
        let mut stored = o.clone();
        stored.duplicate = false;
        if self
            .entries
            .insert(o.exec_id.clone(), Entry::Finished(stored))
            .is_none()
        {
            self.order.push_back(o.exec_id.clone());
        }
        self.maintain()
    }

    fn append(&mut self, line: &str) -> Result<(), JournalError> {
        let path = self.dir.join(FILE);
        let err = |source| JournalError {
            path: path.clone(),
            source,
        };
        self.file.write_all(line.as_bytes()).map_err(err)?;
        self.file.sync_data().map_err(err)?;
        self.lines += 1;
        Ok(())
    }

    fn maintain(&mut self) -> Result<(), JournalError> {
        self.evict();
        if self.lines > self.limit.saturating_mul(2) + 16 {
            self.compact()?;
        }
        Ok(())
    }

    /// Forgets the oldest finished ids beyond the limit (a running one is
    /// kept, so the limit can be exceeded by what runs now).
    fn evict(&mut self) {
        while self.entries.len() > self.limit {
            let Some(front) = self.order.front() else {
                break;
            };
            if matches!(self.entries.get(front), Some(Entry::Started)) {
                break;
            }
            if let Some(id) = self.order.pop_front() {
                self.entries.remove(&id);
            }
        }
    }

    /// Rewrites the file with only what is remembered: write a temporary
    /// file, sync it, rename it over the log, sync the directory.
    fn compact(&mut self) -> Result<(), JournalError> {
        let tmp = self.dir.join("journal.tmp");
        let err = |source| JournalError {
            path: tmp.clone(),
            source,
        };
        let mut text = String::new();
        for id in &self.order {
            match self.entries.get(id) {
                Some(Entry::Started) => text.push_str(&format!("S {}\n", hex::encode(id.as_str()))),
                Some(Entry::Finished(o)) => text.push_str(&format_finished(o)),
                None => {}
            }
        }
        let mut f = File::create(&tmp).map_err(err)?;
        f.write_all(text.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        std::fs::rename(&tmp, self.dir.join(FILE)).map_err(err)?;
        #[cfg(unix)]
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        self.file = OpenOptions::new()
            .append(true)
            .open(self.dir.join(FILE))
            .map_err(err)?;
        self.lines = self.order.len();
        Ok(())
    }
}

fn format_finished(o: &Outcome) -> String {
    let opt = |v: Option<i32>| v.map_or("-".to_owned(), |n| n.to_string());
    let flags = u8::from(o.timed_out) | u8::from(o.cancelled) << 1 | u8::from(o.truncated) << 2;
    let error = if o.error.is_empty() {
        "-".to_owned()
    } else {
        hex::encode(&o.error)
    };
    format!(
        "F {} {} {} {} {flags} {} {} {error}\n",
        hex::encode(o.exec_id.as_str()),
        opt(o.exit_code),
        opt(o.signal),
        o.duration_ms,
        o.output_bytes,
        o.last_seq,
    )
}

fn parse(line: &str) -> Option<(ExecId, Entry)> {
    let mut f = line.split(' ');
    let kind = f.next()?;
    let text = |s: &str| String::from_utf8(hex::decode(s).ok()?).ok();
    let id = ExecId::new(&text(f.next()?)?).ok()?;
    match kind {
        "S" => Some((id, Entry::Started)),
        "F" => {
            let opt = |s: &str| -> Option<Option<i32>> {
                if s == "-" {
                    Some(None)
                } else {
                    s.parse().ok().map(Some)
                }
            };
            let exit_code = opt(f.next()?)?;
            let signal = opt(f.next()?)?;
            let duration_ms = f.next()?.parse().ok()?;
            let flags: u8 = f.next()?.parse().ok()?;
            let output_bytes = f.next()?.parse().ok()?;
            let last_seq = f.next()?.parse().ok()?;
            let error = match f.next()? {
                "-" => String::new(),
                e => text(e)?,
            };
            let outcome = Outcome {
                exec_id: id.clone(),
                exit_code,
                signal,
                duration_ms,
                timed_out: flags & 1 != 0,
                cancelled: flags & 2 != 0,
                truncated: flags & 4 != 0,
                error,
                duplicate: false,
                output_bytes,
                last_seq,
            };
            Some((id, Entry::Finished(outcome)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ExecId {
        ExecId::new(s).unwrap()
    }

    #[test]
    fn outcomes_survive_reopen_and_interrupted_runs_are_closed() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), 100).unwrap();
        j.started(&id("a b")).unwrap();
        let mut done = Outcome::failed(id("a b"), "");
        done.exit_code = Some(3);
        done.truncated = true;
        done.output_bytes = 7;
        done.last_seq = 2;
        j.finished(&done).unwrap();
        j.started(&id("crashed")).unwrap();
        drop(j);
        // A torn line at the end, as a crash mid-write leaves it.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(FILE))
            .unwrap();
        f.write_all(b"S 6869").unwrap();
        drop(f);

        let j = Journal::open(dir.path(), 100).unwrap();
        assert_eq!(j.get(&id("a b")), Some(&Entry::Finished(done)));
        match j.get(&id("crashed")) {
            Some(Entry::Finished(o)) => assert_eq!(o.error, LOST),
            other => panic!("{other:?}"),
        }
        assert_eq!(j.get(&id("hi")), None);
        assert_eq!(j.len(), 2);
    }

    #[test]
    fn bounded_to_the_last_ids() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), 10).unwrap();
        for n in 0..100 {
            let e = id(&format!("e{n}"));
            j.started(&e).unwrap();
            j.finished(&Outcome::failed(e, "x")).unwrap();
        }
        assert_eq!(j.len(), 10);
        assert!(j.get(&id("e89")).is_none());
        assert!(j.get(&id("e90")).is_some());
        let lines = std::fs::read_to_string(dir.path().join(FILE))
            .unwrap()
            .lines()
            .count();
        assert!(lines <= 2 * 10 + 17, "{lines} lines");
        let j = Journal::open(dir.path(), 10).unwrap();
        assert!(j.get(&id("e99")).is_some());
    }
}
