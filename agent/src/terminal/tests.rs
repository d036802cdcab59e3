//! Terminal tests on real PTYs: a round trip, resize (garbage sizes too),
//! re-attach with replay, take-over, idle reaping, shell exit, limits and
//! flow control.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::*;

struct Fixture {
    terminals: Terminals,
    shutdown: CancellationToken,
}

impl Fixture {
    fn start(settings: Settings) -> Self {
        let base = BaseEnv::capture(&|k| std::env::var(k).ok());
        let (manager, terminals) = Manager::new(settings, base);
        let shutdown = CancellationToken::new();
        tokio::spawn(manager.run(shutdown.clone()));
        Self {
            terminals,
            shutdown,
        }
    }

    async fn open(&self, id: &str) -> Result<Opened, TerminalError> {
        self.terminals
            .open(OpenRequest {
                session_id: SessionId::new(id).unwrap(),
                cols: 80,
                rows: 24,
                shell: "/bin/sh".into(),
                user: String::new(),
            })
            .await
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A viewer that reads everything from `from` on, as the relay would.
struct Viewer {
    from: u64,
    seen: Vec<u8>,
}

impl Viewer {
    fn from(from: u64) -> Self {
        Self {
            from,
            seen: Vec::new(),
        }
    }

    async fn until(&mut self, a: &mut Attachment, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = String::from_utf8_lossy(&self.seen).into_owned();
            if text.contains(what) {
                return text;
            }
            let (at, data) = a.read(self.from, 32 * 1024);
            if !data.is_empty() {
                self.from = at + data.len() as u64;
                self.seen.extend(&data);
                a.mark_sent(self.from);
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "never saw {what:?} in {:?}",
                String::from_utf8_lossy(&self.seen)
            );
            let _ =
                tokio::time::timeout(left.min(Duration::from_millis(200)), a.progress().changed())
                    .await;
        }
    }
}

async fn type_in(a: &Attachment, s: &str) {
    let mut left = s.as_bytes();
    while !left.is_empty() {
        let n = a.session().write(left).await.unwrap();
        assert!(n > 0, "the PTY took no input");
        left = &left[n..];
    }
}

/// Turns the terminal's echo off, so what comes back is only output.
async fn no_echo(a: &mut Attachment, v: &mut Viewer) {
    type_in(a, "stty -echo; echo ready-$((40+2))\n").await;
    v.until(a, "ready-42").await;
    v.seen.clear();
}

/// A command whose output differs from its echo: (typed, expected).
fn marker() -> (String, String) {
    let n = rand::random::<u32>() / 2;
    (
        format!("echo hello-$(({n}+1))\n"),
        format!("hello-{}", n + 1),
    )
}

#[tokio::test]
async fn round_trip_resize_and_garbage_sizes() {
    let f = Fixture::start(Settings::default());
    let Opened {
        mut attachment,
        resumed,
    } = f.open("rt").await.unwrap();
    assert!(!resumed);
    let mut v = Viewer::from(0);
    let (typed, m) = marker();
    type_in(&attachment, &typed).await;
    v.until(&mut attachment, &m).await;

    attachment.session().resize(120, 40).unwrap();
    type_in(&attachment, "stty size\n").await;
    v.until(&mut attachment, "40 120").await;
    attachment.session().resize(0, 0).unwrap();
    attachment.session().resize(100_000, 100_000).unwrap();
    type_in(&attachment, "stty size; echo TERM=$TERM\n").await;
    v.until(&mut attachment, "1000 1000").await;
    v.until(&mut attachment, "TERM=xterm-256color").await;
}

#[tokio::test]
async fn a_re_attach_replays_what_was_missed_and_takes_over() {
    let f = Fixture::start(Settings::default());
    let Opened { mut attachment, .. } = f.open("re").await.unwrap();
    let (typed, m) = marker();
    type_in(&attachment, &typed).await;
    Viewer::from(0).until(&mut attachment, &m).await;
    let first = attachment;

    let Opened {
        mut attachment,
        resumed,
    } = f.open("re").await.unwrap();
    assert!(resumed);
    assert!(
        first.cancelled().is_cancelled(),
        "the old viewer is taken over"
    );
    let (end, start) = attachment.offsets();
    assert!(end > 0 && start == 0);
    Viewer::from(0).until(&mut attachment, &m).await;
    drop(first);
    // The new viewer is still the attached one.
    assert!(attachment.session().idle_for().is_none());
}

#[tokio::test]
async fn a_detached_pty_is_reaped_after_the_idle_time() {
    let f = Fixture::start(Settings {
        idle_timeout: Duration::from_millis(300),
        ..Settings::default()
    });
    let Opened { mut attachment, .. } = f.open("idle").await.unwrap();
    let mut v = Viewer::from(0);
    no_echo(&mut attachment, &mut v).await;
    type_in(&attachment, "echo pid=$$.\n").await;
    let text = v.until(&mut attachment, ".\r\n").await;
    let pid: u32 = text
        .split("pid=")
        .nth(1)
        .and_then(|s| s.split('.').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{text:?}"));
    drop(attachment);
    let t = Instant::now();
    while std::fs::metadata(format!("/proc/{pid}")).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z")
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "shell {pid} not reaped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Opened { resumed, .. } = f.open("idle").await.unwrap();
    assert!(!resumed, "a fresh PTY after the reap");
}

#[tokio::test]
async fn the_shell_exit_code_comes_through() {
    let f = Fixture::start(Settings::default());
    let Opened { mut attachment, .. } = f.open("exit").await.unwrap();
    type_in(&attachment, "exit 3\n").await;
    let p = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let p = *attachment.progress().borrow_and_update();
            if p.exited && p.eof {
                return p;
            }
            let _ = attachment.progress().changed().await;
        }
    })
    .await
    .unwrap();
    assert_eq!(p.exit_code, Some(3));
}

#[tokio::test]
async fn limits_and_bad_requests() {
    let f = Fixture::start(Settings {
        max_sessions: 1,
        ..Settings::default()
    });
    let _one = f.open("one").await.unwrap();
    assert!(matches!(
        f.open("two").await,
        Err(TerminalError::TooMany(1))
    ));
    let err = f
        .terminals
        .open(OpenRequest {
            session_id: SessionId::new("three").unwrap(),
            cols: 0,
            rows: 0,
            shell: "relative/sh".into(),
            user: String::new(),
        })
        .await;
    assert!(err.is_err());
    assert!(SessionId::new("").is_err());
    assert!(SessionId::new("a\u{7}").is_err());
    assert_eq!(clamp_size(0, 100_000), (1, 1000));
}

#[tokio::test]
async fn an_attached_viewer_loses_no_output_however_slow() {
    let f = Fixture::start(Settings {
        replay_bytes: 64 * 1024,
        ..Settings::default()
    });
    let Opened { mut attachment, .. } = f.open("flow").await.unwrap();
    let mut v = Viewer::from(0);
    no_echo(&mut attachment, &mut v).await;
    type_in(
        &attachment,
        "head -c 1000000 /dev/zero | tr '\\0' a; echo; echo done-flow\n",
    )
    .await;
    // Not reading: the PTY stops once the buffer holds a full window unsent.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (end, start) = attachment.offsets();
    assert!(start <= v.from, "unsent output was overwritten");
    assert!(end <= v.from + 64 * 1024, "{end}");
    let text = v.until(&mut attachment, "done-flow").await;
    assert_eq!(text.matches('a').count(), 1_000_000);
}

/// Input far larger than the PTY's input queue: the writes that find it full
/// wait for room (the writer is not registered with the reactor until then)
/// and every byte arrives once the shell reads.
#[tokio::test]
async fn a_paste_larger_than_the_input_queue_arrives_whole() {
    const PASTE: usize = 256 * 1024;
    let f = Fixture::start(Settings::default());
    let mut a = f.open("paste-whole").await.unwrap().attachment;
    let mut v = Viewer::from(0);
    no_echo(&mut a, &mut v).await;
    // Raw mode (no 4 KiB line limit) before the paste; `head` reads it all.
    type_in(
        &a,
        &format!("stty raw; echo raw-$((6*7)); head -c {PASTE} | wc -c; echo pasted-$((6*7))\n"),
    )
    .await;
    v.until(&mut a, "raw-42").await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(20), type_in(&a, &"p".repeat(PASTE)))
        .await
        .expect("the paste was written within 20 s");
    let text = v.until(&mut a, "pasted-42").await;
    assert!(
        text.contains(&PASTE.to_string()),
        "the shell did not read the whole paste: {text:?} (after {:?})",
        started.elapsed()
    );
}

/// Sustained output is read on a blocking thread (unix), which hands the
/// PTY back to the runtime once it goes quiet: nothing is lost on either
/// hand-over, and what comes after the quiet spell (an echo, a prompt)
/// still wakes the reader.
#[tokio::test]
async fn bulk_output_and_what_follows_it_arrive_whole() {
    let f = Fixture::start(Settings::default());
    let mut a = f.open("bulk").await.unwrap().attachment;
    let mut v = Viewer::from(0);
    no_echo(&mut a, &mut v).await;
    for round in 0..3 {
        type_in(
            &a,
            &format!(
                "head -c 1000000 /dev/zero | tr '\\0' b; sleep 0.1; printf x; echo quiet-{round}-$((6*7))\n"
            ),
        )
        .await;
        let text = v.until(&mut a, &format!("quiet-{round}-42")).await;
        assert_eq!(text.matches('b').count(), 1_000_000, "round {round}");
        assert!(
            text.contains("bx"),
            "round {round}: the late byte came in order"
        );
        v.seen.clear();
    }
    let (typed, m) = marker();
    type_in(&a, &typed).await;
    v.until(&mut a, &m).await;
}
