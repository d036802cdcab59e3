//! The remote work the link serves: exec requests handed to the runner
//! (and their output taken back), and the terminal manager.

use sovereign_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use super::convert;
use crate::exec::{self, ExecId, ExecSpec};
use crate::terminal::Terminals;

/// Remote work the link serves: the exec runner's handle and output, and
/// the terminal manager.
pub struct Work {
    pub(super) exec: exec::Handle,
    pub(super) exec_events: mpsc::Receiver<exec::Event>,
    pub(super) terminals: Terminals,
    /// An exec message taken from the runner but not yet sent; it survives
    /// a reconnect, so no output is dropped.
    pub(super) pending: Option<pb::AgentMessage>,
    pub(super) tracker: TaskTracker,
}

impl Work {
    pub fn new(
        exec: exec::Handle,
        exec_events: mpsc::Receiver<exec::Event>,
        terminals: Terminals,
    ) -> Self {
        Self {
            exec,
            exec_events,
            terminals,
            pending: None,
            tracker: TaskTracker::new(),
        }
    }

    /// Acks an exec request once it is handed to the runner (ok means an
    /// ExecResult will follow, stored or fresh).
    pub(super) fn exec(&self, req: pb::ExecRequest) -> Option<String> {
        let spec = ExecSpec::parse(convert::exec_request(req)).map_err(|e| e.to_string());
        match spec.and_then(|s| self.exec.run(s).map_err(|e| e.to_string())) {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(error = %e, "Refusing an exec request.");
                Some(e)
            }
        }
    }

    pub(super) fn cancel(&self, c: &pb::Cancel) -> Option<String> {
        if c.exec_id.is_empty() {
            return Some("cancel needs an exec_id".into());
        }
        ExecId::new(&c.exec_id)
            .and_then(|id| self.exec.cancel(id))
            .err()
            .map(|e| e.to_string())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::spawn::BaseEnv;
    use crate::terminal::Manager;
    use sovereign_proto::v1::agent_message::Body;

    #[tokio::test]
    async fn exec_requests_become_runs_and_wire_messages() {
        let dir = tempfile::tempdir().unwrap();
        let base = BaseEnv::capture(&|k| std::env::var(k).ok());
        let (events_tx, events) = mpsc::channel(8);
        let (runner, handle) = exec::Runner::open(
            dir.path(),
            exec::Settings::default(),
            base.clone(),
            events_tx,
        )
        .unwrap();
        let shutdown = tokio_util::sync::CancellationToken::new();
        tokio::spawn(runner.run(shutdown.clone()));
        let (_, terminals) = Manager::new(Default::default(), base);
        let mut work = Work::new(handle, events, terminals);

        let req = pb::ExecRequest {
            exec_id: "w1".into(),
            argv: vec!["echo".into(), "hi".into()],
            ..pb::ExecRequest::default()
        };
        assert_eq!(work.exec(req), None);
        let both = pb::ExecRequest {
            exec_id: "w2".into(),
            argv: vec!["echo".into()],
            script: "echo".into(),
            ..pb::ExecRequest::default()
        };
        assert!(work.exec(both).unwrap().contains("exactly one"));
        assert!(
            work.cancel(&pb::Cancel::default())
                .unwrap()
                .contains("exec_id")
        );

        let out = convert::exec_event(work.exec_events.recv().await.unwrap());
        match out.body {
            Some(Body::ExecOutput(o)) => {
                assert_eq!(
                    (o.exec_id.as_str(), o.seq, o.data.as_slice()),
                    ("w1", 1, &b"hi\n"[..])
                );
                assert_eq!(o.stream, pb::ExecStream::Stdout as i32);
            }
            other => panic!("{other:?}"),
        }
        match convert::exec_event(work.exec_events.recv().await.unwrap()).body {
            Some(Body::ExecResult(r)) => {
                assert_eq!((r.exit_code, r.last_seq, r.output_bytes), (Some(0), 1, 3));
            }
            other => panic!("{other:?}"),
        }
        shutdown.cancel();
    }
}
