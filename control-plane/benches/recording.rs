//! What recording a terminal costs the control plane, next to what it did
//! before, in one run:
//!
//!   cargo bench -p sovereign --bench recording
//!
//! 1. 100 MiB of output through `Recorder` (records of raw output, zstd
//!    frames, parts stored through a SQLite store in a temp dir), as the
//!    relay feeds it: 30 KiB chunks. Twice: parts in files beside the
//!    database (what a SQLite deployment does), then in the database's
//!    `terminal_recordings` table (what it did before). Reported: wall time
//!    until flushed, CPU of the whole process (the recorder thread and
//!    SQLite included), parts and stored bytes; then the time
//!    `decode_recording` takes to render those parts as asciicast (what
//!    playing the recording costs, once).
//! 2. On the same bytes, what the recorder no longer does on every write:
//!    escaping them into asciicast lines (serde_json, as it did until the
//!    output was stored raw); and compression alone: zstd level 1 (what the
//!    recorder uses) and gzip's fastest level (what it used before that).
//!
//! 3. How often the recorder thread wakes while a session is typed in: one
//!    1-byte echo every 100 ms (a fast typist) and every 1 ms (about the
//!    pace of the terminal benchmark's back-to-back echo), 5 s each; counted
//!    as the thread's voluntary context switches (Linux).
//!
//! Two kinds of output: random base64 text in 99-column lines (a `cat` of a
//! binary blob: the worst case) and `ls -l`-like lines with colour codes.
//! Deterministic data (a fixed-seed generator), nothing from the network.

use std::io::Write;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use sovereign::fleet::AgentId;
use sovereign::store::Store;
use sovereign::terminal::{Recorder, decode_recording};

const MIB: usize = 1 << 20;
const TOTAL: usize = 100 * MIB;
const CHUNK: usize = 30 * 1024;

fn main() {
    let inputs = [
        ("random base64, 99 columns", base64_lines()),
        ("ls -l-like lines with colours", listing_lines()),
    ];
    println!(
        "| output (100 MiB) | parts stored in | recorder wall | recorder CPU | parts | stored | render on read |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (name, data) in &inputs {
        for (place, in_table) in [
            ("files beside the database", false),
            ("the database's table (before)", true),
        ] {
            let rec = record(data, in_table);
            println!(
                "| {name} | {place} | {:.2} s | {:.2} s | {} | {:.1} MiB ({:.1} %) | {:.2} s |",
                rec.wall_s,
                rec.cpu_s,
                rec.parts,
                rec.stored as f64 / MIB as f64,
                pct(rec.stored, data.len()),
                rec.render_s,
            );
        }
    }
    println!();
    println!(
        "| output (100 MiB) | escaping alone (before) | zstd -1 alone | gzip fast alone (before) |"
    );
    println!("|---|---:|---:|---:|");
    for (name, data) in &inputs {
        let (es, _) = time(|| {
            // Each chunk as one asciicast line (the bench's data is UTF-8).
            let mut lines = Vec::with_capacity(data.len() + data.len() / 8);
            for (i, c) in data.chunks(CHUNK).enumerate() {
                let text = std::str::from_utf8(c).expect("UTF-8 chunks");
                serde_json::to_writer(&mut lines, &(i as f64 / 1000.0, "o", text)).expect("a line");
                lines.push(b'\n');
            }
            lines.len()
        });
        let (zs, zn) = time(|| {
            zstd::bulk::compress(data, 1)
                .expect("zstd compresses")
                .len()
        });
        let (gs, gn) = time(|| {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            for c in data.chunks(CHUNK) {
                gz.write_all(c).expect("gzip compresses");
            }
            gz.finish().expect("gzip finishes").len()
        });
        println!(
            "| {name} | {es:.2} s | {zs:.2} s → {:.1} % | {gs:.2} s → {:.1} % |",
            pct(zn, data.len()),
            pct(gn, data.len()),
        );
    }
    println!();
    println!("| typing, 1-byte echoes | recorder thread wake-ups per second |");
    println!("|---|---:|");
    for (name, every) in [
        ("one every 100 ms", Duration::from_millis(100)),
        ("one every 1 ms", Duration::from_millis(1)),
    ] {
        println!(
            "| {name} | {:.1} |",
            typing_wakes(every, Duration::from_secs(5))
        );
    }
}

/// The recorder thread's wake-ups per second while one echo is recorded
/// every `every`, for `total`.
fn typing_wakes(every: Duration, total: Duration) -> f64 {
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = store_with_session(&dir, "typing").await;
        let rec = Recorder::open(store, "typing", 80, 24, "bench", u64::MAX, None)
            .await
            .expect("the recorder opens");
        // Past the thread's start and its first naps.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = recorder_switches();
        let mut tick = tokio::time::interval(every);
        let t = Instant::now();
        let mut offset = 0;
        while t.elapsed() < total {
            tick.tick().await;
            rec.output(offset, Bytes::from_static(b"a")).await;
            offset += 1;
        }
        let wakes = recorder_switches() - before;
        let per_s = wakes as f64 / t.elapsed().as_secs_f64();
        rec.flush().await;
        per_s
    })
}

/// Voluntary context switches of this process's threads named `recorder`
/// (one exists at a time here); 0 where /proc is not there.
fn recorder_switches() -> u64 {
    let tasks = std::fs::read_dir("/proc/self/task").into_iter().flatten();
    tasks
        .filter_map(|t| {
            let dir = t.ok()?.path();
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            if comm.trim() != "recorder" {
                return None;
            }
            let status = std::fs::read_to_string(dir.join("status")).ok()?;
            status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .sum()
}

struct Recorded {
    wall_s: f64,
    cpu_s: f64,
    parts: usize,
    stored: usize,
    render_s: f64,
}

fn record(data: &[u8], in_table: bool) -> Recorded {
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut store = store_with_session(&dir, "bench").await;
        if in_table {
            store = store.with_recordings_in_database();
        }
        let chunks: Vec<Bytes> = data.chunks(CHUNK).map(Bytes::copy_from_slice).collect();
        let rec = Recorder::open(store.clone(), "bench", 80, 24, "bench", u64::MAX, None)
            .await
            .expect("the recorder opens");
        let cpu0 = process_cpu_s();
        let t = Instant::now();
        let mut offset = 0u64;
        for c in chunks {
            let n = c.len() as u64;
            rec.output(offset, c).await;
            offset += n;
        }
        rec.flush().await;
        let wall_s = t.elapsed().as_secs_f64();
        let cpu_s = process_cpu_s() - cpu0;
        let parts = store.recording_parts("bench").await.expect("parts");
        let (render_s, text) = time(|| decode_recording(&parts, u64::MAX).expect("it renders"));
        assert!(text.len() > data.len(), "every byte is rendered");
        Recorded {
            render_s,
            wall_s,
            cpu_s,
            parts: parts.len(),
            stored: parts.iter().map(Vec::len).sum(),
        }
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A SQLite store in `dir` with the row of terminal session `id`.
async fn store_with_session(dir: &tempfile::TempDir, id: &str) -> Store {
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("b.db").display());
    let store = Store::open(&url).await.expect("the store opens");
    store
        .open_terminal_session(id, &AgentId::new(), "bench", 0, 80, 24)
        .await
        .expect("a session row");
    store
}

fn time<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let t = Instant::now();
    let out = f();
    (t.elapsed().as_secs_f64(), out)
}

fn pct(part: usize, whole: usize) -> f64 {
    part as f64 * 100.0 / whole as f64
}

/// utime + stime of this process, all threads, in seconds.
fn process_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Linux reports in USER_HZ, 100 on every architecture it runs on here.
    (ticks(11) + ticks(12)) / 100.0
}

/// A fixed-seed generator (xorshift): the same bytes on every run.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

fn base64_lines() -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut next = rng(0x5eed);
    let mut out = Vec::with_capacity(TOTAL);
    while out.len() < TOTAL {
        for _ in 0..99 {
            out.push(ALPHABET[(next() >> 58) as usize]);
        }
        out.extend_from_slice(b"\r\n");
    }
    out.truncate(TOTAL);
    out
}

fn listing_lines() -> Vec<u8> {
    let mut next = rng(0x1157);
    let mut out = Vec::with_capacity(TOTAL);
    let mut i = 0u64;
    while out.len() < TOTAL {
        let size = next() % 10_000_000;
        let minute = next() % 60;
        let _ = write!(
            out,
            "-rw-r--r-- 1 root root {size:>9} Nov 22 03:{minute:02} \x1b[01;32mfile-{i}.log\x1b[0m\r\n"
        );
        i += 1;
    }
    out.truncate(TOTAL);
    out
}
