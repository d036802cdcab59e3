//! The Terminal stream against a fake control plane on 127.0.0.1:0: the
//! attach handshake, keystrokes and output with byte-offset seqs, garbage
//! sizes, an oversized frame, a re-attach with replay, and the shell's exit.

use std::net::SocketAddr;
use std::time::Duration;

use sovereign_proto::v1::agent_link_server::{AgentLink, AgentLinkServer};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

use super::*;
use crate::spawn::BaseEnv;
use crate::terminal::{Manager, Settings};

type Relay = (
    Streaming<pb::TerminalFrame>,
    mpsc::Sender<Result<pb::TerminalFrame, Status>>,
);

/// Hands every Terminal stream to the test.
struct FakeControlPlane(mpsc::Sender<Relay>);

#[tonic::async_trait]
impl AgentLink for FakeControlPlane {
    type ConnectStream = ReceiverStream<Result<pb::ControlMessage, Status>>;
    type TerminalStream = ReceiverStream<Result<pb::TerminalFrame, Status>>;

    async fn connect(
        &self,
        _: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn terminal(
        &self,
        req: Request<Streaming<pb::TerminalFrame>>,
    ) -> Result<Response<Self::TerminalStream>, Status> {
        let (tx, rx) = mpsc::channel(16);
        let _ = self.0.send((req.into_inner(), tx)).await;
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

struct Fixture {
    channel: Channel,
    relays: mpsc::Receiver<Relay>,
    terminals: Terminals,
    shutdown: CancellationToken,
}

impl Fixture {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let (tx, relays) = mpsc::channel(4);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(AgentLinkServer::new(FakeControlPlane(tx)))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy();
        let base = BaseEnv::capture(&|k| std::env::var(k).ok());
        let (manager, terminals) = Manager::new(Settings::default(), base);
        let shutdown = CancellationToken::new();
        tokio::spawn(manager.run(shutdown.clone()));
        Self {
            channel,
            relays,
            terminals,
            shutdown,
        }
    }

    /// Sends OpenSession as the link would; returns the ack and the stream.
    async fn open(&mut self, id: &str) -> (pb::Ack, Relay) {
        let (acks, mut acked) = mpsc::channel(1);
        let open = pb::OpenSession {
            session_id: id.into(),
            kind: "terminal".into(),
            cols: 80,
            rows: 24,
            shell: "/bin/sh".into(),
            user: String::new(),
        };
        tokio::spawn(serve(
            self.channel.clone(),
            self.terminals.clone(),
            open,
            7,
            acks,
            self.shutdown.child_token(),
        ));
        let ack = match acked.recv().await.unwrap().body {
            Some(sovereign_proto::v1::agent_message::Body::Ack(a)) => a,
            other => panic!("{other:?}"),
        };
        let relay = tokio::time::timeout(Duration::from_secs(10), self.relays.recv())
            .await
            .unwrap()
            .unwrap();
        (ack, relay)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn to_agent(body: Body) -> Result<pb::TerminalFrame, Status> {
    Ok(frame(&SessionId::new("s").unwrap(), 0, body))
}

async fn next(relay: &mut Relay) -> Option<pb::TerminalFrame> {
    tokio::time::timeout(Duration::from_secs(20), relay.0.message())
        .await
        .expect("no frame from the agent")
        .unwrap()
}

/// Reads data frames until `what` shows, checking seq = byte offset.
async fn read_until(relay: &mut Relay, offset: &mut u64, what: &str) -> String {
    let mut seen = Vec::new();
    loop {
        match next(relay).await.map(|f| (f.seq, f.body)) {
            Some((seq, Some(Body::Data(d)))) => {
                assert_eq!(seq, *offset, "output frames are contiguous");
                *offset += d.len() as u64;
                seen.extend(d);
                let text = String::from_utf8_lossy(&seen).into_owned();
                if text.contains(what) {
                    return text;
                }
            }
            other => panic!("expected output, got {other:?}"),
        }
    }
}

async fn attach_frame(relay: &mut Relay) -> pb::Attach {
    match next(relay).await.and_then(|f| f.body) {
        Some(Body::Attach(a)) => a,
        other => panic!("expected attach first, got {other:?}"),
    }
}

#[tokio::test]
async fn terminal_stream_frames_attach_reattach_and_exit() {
    let mut f = Fixture::start().await;
    let (ack, mut relay) = f.open("s1").await;
    assert!(ack.ok && ack.id == 7, "{ack:?}");
    let a = attach_frame(&mut relay).await;
    assert!(!a.resumed && a.replay_from == 0);
    let send = relay.1.clone();
    send.send(to_agent(Body::Attach(pb::Attach {
        output_offset: 0,
        ..pb::Attach::default()
    })))
    .await
    .unwrap();
    let mut offset = 0;
    send.send(to_agent(Body::Data(b"echo hello-$((41+1))\n".to_vec())))
        .await
        .unwrap();
    read_until(&mut relay, &mut offset, "hello-42").await;
    for (cols, rows) in [(0, 0), (100_000, 100_000)] {
        send.send(to_agent(Body::Resize(pb::Resize { cols, rows })))
            .await
            .unwrap();
    }
    send.send(to_agent(Body::Data(b"stty size\n".to_vec())))
        .await
        .unwrap();
    read_until(&mut relay, &mut offset, "1000 1000").await;

    // An oversized keystroke frame ends the stream, not the PTY.
    send.send(to_agent(Body::Data(vec![b'x'; MAX_INPUT + 1])))
        .await
        .unwrap();
    loop {
        match next(&mut relay).await.and_then(|f| f.body) {
            Some(Body::Data(_)) => {}
            Some(Body::Close(c)) => {
                assert!(c.reason.contains("64 KiB") && c.exit_code.is_none());
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    drop(relay);
    drop(send);

    // Re-attach: the agent offers its whole output; the viewer asks from 0.
    let (ack, mut relay) = f.open("s1").await;
    assert!(ack.ok);
    let a = attach_frame(&mut relay).await;
    assert!(
        a.resumed && a.output_offset >= offset && a.replay_from == 0,
        "{a:?}"
    );
    relay
        .1
        .send(to_agent(Body::Attach(pb::Attach {
            output_offset: 0,
            ..pb::Attach::default()
        })))
        .await
        .unwrap();
    let mut offset = 0;
    read_until(&mut relay, &mut offset, "hello-42").await;
    relay
        .1
        .send(to_agent(Body::Data(b"exit 5\n".to_vec())))
        .await
        .unwrap();
    let close = loop {
        match next(&mut relay).await.and_then(|f| f.body) {
            Some(Body::Data(_)) => {}
            Some(Body::Close(c)) => break c,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(close.exit_code, Some(5));
    assert!(
        next(&mut relay).await.is_none(),
        "the stream ends after close"
    );

    // The PTY is gone: the same id now gets a fresh one.
    let (_, mut relay) = f.open("s1").await;
    assert!(!attach_frame(&mut relay).await.resumed);
}

#[tokio::test]
async fn bad_open_requests_are_acked_with_an_error() {
    let f = Fixture::start().await;
    let (acks, mut acked) = mpsc::channel(1);
    let open = pb::OpenSession {
        session_id: String::new(),
        kind: "terminal".into(),
        ..pb::OpenSession::default()
    };
    serve(
        f.channel.clone(),
        f.terminals.clone(),
        open,
        9,
        acks,
        f.shutdown.child_token(),
    )
    .await;
    match acked.recv().await.unwrap().body {
        Some(sovereign_proto::v1::agent_message::Body::Ack(a)) => {
            assert!(
                !a.ok && a.id == 9 && a.error.contains("session_id"),
                "{a:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn output_keeps_flowing_while_the_shell_leaves_its_input_unread() {
    let mut f = Fixture::start().await;
    let (_, mut relay) = f.open("paste").await;
    attach_frame(&mut relay).await;
    let send = relay.1.clone();
    send.send(to_agent(Body::Attach(pb::Attach::default())))
        .await
        .unwrap();
    let mut offset = 0;
    send.send(to_agent(Body::Data(
        b"stty raw -echo; sleep 1; head -c 300000 /dev/zero | tr '\\0' a; echo; echo done-$((6*7))\n"
            .to_vec(),
    )))
    .await
    .unwrap();
    // Far more keystrokes than the PTY's input queue holds, none read while
    // the command runs: the agent must keep sending output meanwhile.
    for _ in 0..8 {
        send.send(to_agent(Body::Data(vec![b'x'; MAX_INPUT])))
            .await
            .unwrap();
    }
    let text = read_until(&mut relay, &mut offset, "done-42").await;
    assert!(text.matches('a').count() >= 300_000);
}
