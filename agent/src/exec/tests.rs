//! Exec tests on real processes: ordering, exit codes and signals, timeouts
//! that kill a whole process group, cancel, the output cap, exactly-once.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::journal::LOST;
use super::*;
use crate::spawn::BaseEnv;

struct Agent {
    handle: Handle,
    events: mpsc::Receiver<Event>,
    /// Events of other ids seen while waiting for one.
    seen: Vec<Event>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Agent {
    fn start(dir: &Path, settings: Settings, capacity: usize) -> Self {
        let (tx, events) = mpsc::channel(capacity);
        let base = BaseEnv::capture(&|k| std::env::var(k).ok());
        let (runner, handle) = Runner::open(dir, settings, base, tx).unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(runner.run(shutdown.clone()));
        Self {
            handle,
            events,
            seen: Vec::new(),
            shutdown,
            task,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
    }

    /// Output and outcome of `id`, failing after 60 s.
    async fn finish(&mut self, id: &str) -> (Vec<Output>, Outcome) {
        let mut out = Vec::new();
        let deadline = tokio::time::sleep(Duration::from_secs(60));
        tokio::pin!(deadline);
        let mut earlier = std::mem::take(&mut self.seen).into_iter();
        loop {
            let ev = match earlier.next() {
                Some(ev) => ev,
                None => tokio::select! {
                    () = &mut deadline => panic!("no result for {id}"),
                    ev = self.events.recv() => ev.expect("runner stopped"),
                },
            };
            match ev {
                Event::Output(o) if o.exec_id.as_str() == id => out.push(o),
                Event::Finished(r) if r.exec_id.as_str() == id => {
                    self.seen.extend(earlier);
                    return (out, r);
                }
                other => self.seen.push(other),
            }
        }
    }

    async fn run(&mut self, spec: ExecSpec) -> (Vec<Output>, Outcome) {
        let id = spec.id.to_string();
        self.handle.run(spec).unwrap();
        self.finish(&id).await
    }
}

fn script(id: &str, s: &str) -> ExecSpec {
    ExecSpec::parse(Request {
        exec_id: id.into(),
        script: s.into(),
        ..Request::default()
    })
    .unwrap()
}

fn text(out: &[Output], stream: Stream) -> String {
    let bytes: Vec<u8> = out
        .iter()
        .filter(|o| o.stream == stream)
        .flat_map(|o| o.data.clone())
        .collect();
    String::from_utf8(bytes).unwrap()
}

fn assert_seqs(out: &[Output], r: &Outcome) {
    let seqs: Vec<u64> = out.iter().map(|o| o.seq).collect();
    assert_eq!(seqs, (1..=out.len() as u64).collect::<Vec<_>>());
    assert_eq!(r.last_seq, out.len() as u64);
}

/// True once `pid` is gone (a zombie nobody reaped counts as gone).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z')),
    }
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn output_is_ordered_with_seqs_and_exit_codes_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Agent::start(dir.path(), Settings::default(), 64);
    let (out, r) = a
        .run(script(
            "order",
            "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done; exit 7",
        ))
        .await;
    assert_seqs(&out, &r);
    assert_eq!(text(&out, Stream::Stdout), "out1\nout2\nout3\nout4\nout5\n");
    assert_eq!(text(&out, Stream::Stderr), "err1\nerr2\nerr3\nerr4\nerr5\n");
    assert_eq!((r.exit_code, r.signal), (Some(7), None));
    assert_eq!(r.output_bytes, 50);
    assert!(!r.truncated && !r.timed_out && !r.cancelled && !r.duplicate && r.error.is_empty());

    let argv = ExecSpec::parse(Request {
        exec_id: "argv".into(),
        argv: vec!["printf".into(), "%s|".into(), "a b".into(), "$HOME".into()],
        env: vec![("ONLY_HERE".into(), "yes".into())],
        ..Request::default()
    })
    .unwrap();
    let (out, r) = a.run(argv).await;
    assert_eq!(
        text(&out, Stream::Stdout),
        "a b|$HOME|",
        "no shell expands argv"
    );
    assert_eq!(r.exit_code, Some(0));

    let (out, _) = a
        .run(script("env", "echo $ONLY_HERE-$SOVEREIGN_SECRET; pwd"))
        .await;
    assert_eq!(text(&out, Stream::Stdout).lines().next(), Some("-"));

    let (_, r) = a.run(script("signal", "kill -TERM $$")).await;
    assert_eq!((r.exit_code, r.signal), (None, Some(15)));

    let missing = ExecSpec::parse(Request {
        exec_id: "missing".into(),
        argv: vec!["/nonexistent/program".into()],
        ..Request::default()
    })
    .unwrap();
    let (out, r) = a.run(missing).await;
    assert!(out.is_empty());
    assert!(r.error.contains("/nonexistent/program"), "{}", r.error);
    assert_eq!(r.exit_code, None);
    a.stop().await;
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Agent::start(dir.path(), Settings::default(), 64);
    let mut spec = script(
        "slow",
        "sleep 1000 & echo $!; sh -c 'sleep 1000 & echo $!; wait' & sleep 1000; echo never",
    );
    spec.timeout = Some(Duration::from_millis(700));
    let started = Instant::now();
    let (out, r) = a.run(spec).await;
    assert!(r.timed_out, "{r:?}");
    assert_eq!(r.signal, Some(9));
    assert!(started.elapsed() < Duration::from_secs(8));
    let pids: Vec<u32> = text(&out, Stream::Stdout)
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "{out:?}");
    for pid in pids {
        eventually(&format!("pid {pid} killed"), || gone(pid)).await;
    }
    a.stop().await;
}

#[tokio::test]
async fn children_left_behind_by_a_finished_command_are_killed() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Agent::start(dir.path(), Settings::default(), 64);
    let (out, r) = a
        .run(script("bg", "sleep 1000 >/dev/null 2>&1 & echo $!"))
        .await;
    assert_eq!(r.exit_code, Some(0));
    let pid: u32 = text(&out, Stream::Stdout).trim().parse().unwrap();
    eventually("background child killed", || gone(pid)).await;
    a.stop().await;
}

#[tokio::test]
async fn cancel_kills_a_running_command_and_a_queued_one_never_starts() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        max_concurrent: 1,
        ..Settings::default()
    };
    let mut a = Agent::start(dir.path(), settings, 64);
    let marker = dir.path().join("queued-ran");
    a.handle
        .run(script("long", "echo started; sleep 30"))
        .unwrap();
    a.handle
        .run(script("queued", &format!("touch {}", marker.display())))
        .unwrap();
    // Wait for the first output so the command surely runs.
    match a.events.recv().await {
        Some(Event::Output(o)) => assert_eq!(o.data, b"started\n"),
        other => panic!("{other:?}"),
    }
    a.handle.cancel(ExecId::new("queued").unwrap()).unwrap();
    let (_, q) = a.finish("queued").await;
    assert!(q.cancelled && q.exit_code.is_none());
    let t = Instant::now();
    a.handle.cancel(ExecId::new("long").unwrap()).unwrap();
    let (_, r) = a.finish("long").await;
    assert!(r.cancelled && !r.timed_out, "{r:?}");
    assert_eq!(r.signal, Some(9));
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(!marker.exists());
    // A re-sent cancelled id is not run either.
    let (_, again) = a
        .run(script("queued", &format!("touch {}", marker.display())))
        .await;
    assert!(again.duplicate && again.cancelled);
    assert!(!marker.exists());
    a.stop().await;
}

#[tokio::test]
async fn a_gigabyte_of_output_is_capped_without_holding_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Agent::start(dir.path(), Settings::default(), 64);
    let (out, r) = a
        .run(script(
            "flood",
            "yes 0123456789abcdef | head -c 1000000000; echo done >&2",
        ))
        .await;
    assert_seqs(&out, &r);
    assert!(r.truncated);
    assert_eq!(r.exit_code, Some(0));
    assert_eq!(r.output_bytes, 1_000_000_005);
    let kept: usize = out.iter().map(|o| o.data.len()).sum();
    assert_eq!(kept, 1 << 20);
    assert!(out.iter().all(|o| o.data.len() <= CHUNK));
    assert!(
        out.iter().all(|o| o.stream == Stream::Stdout),
        "stderr came past the cap"
    );
    let peak_kib: u64 = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    assert!(peak_kib < 512 * 1024, "peak memory {peak_kib} KiB");
    a.stop().await;
}

#[tokio::test]
async fn a_slow_reader_loses_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Agent::start(dir.path(), Settings::default(), 1);
    a.handle
        .run(script(
            "burst",
            "i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done",
        ))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (out, r) = a.finish("burst").await;
    assert_seqs(&out, &r);
    let text = text(&out, Stream::Stdout);
    assert_eq!(text.lines().count(), 2000);
    assert!(text.ends_with("line-1999\n"));
    a.stop().await;
}

#[tokio::test]
async fn a_re_sent_id_runs_once_even_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("exec");
    let log = dir.path().join("ran.log");
    let spec = || {
        script(
            "once",
            &format!("echo ran >> {}; sleep 0.3; exit 4", log.display()),
        )
    };
    let mut a = Agent::start(&state, Settings::default(), 64);
    a.handle.run(spec()).unwrap();
    a.handle.run(spec()).unwrap();
    let (_, first) = a.finish("once").await;
    assert_eq!((first.exit_code, first.duplicate), (Some(4), false));
    let (_, second) = a.run(spec()).await;
    assert!(second.duplicate);
    assert_eq!(second.exit_code, Some(4));
    a.stop().await;

    let mut b = Agent::start(&state, Settings::default(), 64);
    let (out, third) = b.run(spec()).await;
    assert!(out.is_empty() && third.duplicate);
    assert_eq!(third.exit_code, Some(4));
    b.stop().await;
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "ran\n");
}

#[tokio::test]
async fn a_run_interrupted_by_a_crash_is_never_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    // What a crash leaves: the id recorded as started, no end.
    let mut j = Journal::open(dir.path(), 100).unwrap();
    j.started(&ExecId::new("crashed").unwrap()).unwrap();
    drop(j);
    let mut a = Agent::start(dir.path(), Settings::default(), 64);
    let (out, r) = a
        .run(script("crashed", &format!("touch {}", marker.display())))
        .await;
    assert!(out.is_empty());
    assert!(r.duplicate);
    assert_eq!(r.error, LOST);
    assert!(!marker.exists());
    a.stop().await;
}

#[tokio::test]
async fn at_most_max_concurrent_run_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        max_concurrent: 2,
        ..Settings::default()
    };
    let mut a = Agent::start(dir.path(), settings, 64);
    let t = Instant::now();
    for n in 0..4 {
        a.handle.run(script(&format!("c{n}"), "sleep 0.4")).unwrap();
    }
    for n in 0..4 {
        let (_, r) = a.finish(&format!("c{n}")).await;
        assert_eq!(r.exit_code, Some(0));
    }
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );
    a.stop().await;
}

#[tokio::test]
async fn run_as_switches_user_when_root() {
    if !nix::unistd::geteuid().is_root() {
        println!("SKIPPED run_as_switches_user_when_root: the tests do not run as root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut a = Agent::start(dir.path(), Settings::default(), 64);
    let mut spec = script("as-nobody", "id -u; echo $USER");
    spec.run_as = Some("nobody".into());
    let (out, r) = a.run(spec).await;
    assert_eq!(r.exit_code, Some(0), "{r:?}");
    assert_eq!(text(&out, Stream::Stdout), "65534\nnobody\n");
    let mut spec = script("as-nobody-else", "true");
    spec.run_as = Some("no-such-user-here".into());
    let (_, r) = a.run(spec).await;
    assert!(r.error.contains("no such user"), "{r:?}");
    a.stop().await;
}

#[test]
fn bad_requests_are_refused() {
    let bad = |r: Request| ExecSpec::parse(r).unwrap_err().to_string();
    let ok = || Request {
        exec_id: "x".into(),
        script: "true".into(),
        ..Request::default()
    };
    assert!(
        bad(Request {
            argv: vec!["ls".into()],
            ..ok()
        })
        .contains("exactly one")
    );
    assert!(
        bad(Request {
            script: String::new(),
            ..ok()
        })
        .contains("exactly one")
    );
    assert!(
        bad(Request {
            exec_id: String::new(),
            ..ok()
        })
        .contains("exec_id")
    );
    assert!(
        bad(Request {
            exec_id: "a\nb".into(),
            ..ok()
        })
        .contains("exec_id")
    );
    assert!(
        bad(Request {
            cwd: "relative".into(),
            ..ok()
        })
        .contains("cwd")
    );
    assert!(
        bad(Request {
            env: vec![("A=B".into(), "c".into())],
            ..ok()
        })
        .contains("environment")
    );
    let s = ExecSpec::parse(Request {
        timeout_ms: 1500,
        max_output_bytes: 10,
        ..ok()
    })
    .unwrap();
    assert_eq!(s.timeout, Some(Duration::from_millis(1500)));
    assert_eq!(s.max_output_bytes, Some(10));
}
