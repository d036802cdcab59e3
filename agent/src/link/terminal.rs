//! The agent's side of one `AgentLink.Terminal` stream, opened when
//! `OpenSession` arrives on Connect, over the same TLS channel.
//!
//! Frames, in order:
//! 1. agent → control plane: `attach{output_offset: total output so far,
//!    replay_from: oldest offset still held, resumed}`;
//! 2. control plane → agent: `attach{output_offset: X}`, "send from X on"
//!    (X is clamped to `replay_from`; an X beyond the output, as from a
//!    viewer of an earlier PTY, means "from `replay_from`");
//! 3. then, agent → control plane: `data` frames (≤ 32 KiB) whose `seq` is
//!    the byte offset of their first byte; control plane → agent: `data`
//!    (keystrokes, ≤ 64 KiB a frame), `resize`, `close` (ends the PTY);
//! 4. when the shell exits and its output is sent: agent → control plane
//!    `close{reason, exit_code}`, and the PTY is dropped. A `close{reason}`
//!    without exit code ends the stream on a protocol error; the PTY stays.
//!
//! When the stream ends any other way the PTY stays, detached, until it is
//! re-attached or reaped.

use std::time::Duration;

use sovereign_proto::v1 as pb;
use sovereign_proto::v1::agent_link_client::AgentLinkClient;
use sovereign_proto::v1::terminal_frame::Body;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::convert;
use crate::enroll::describe;
use crate::terminal::{OpenRequest, Opened, SessionId, Terminals};

/// Output bytes per frame, at most.
const CHUNK: usize = 32 * 1024;
/// Keystroke bytes per frame, at most.
pub const MAX_INPUT: usize = 64 * 1024;
/// Frames waiting for the network, at most.
const FRAMES: usize = 16;
const ATTACH_WAIT: Duration = Duration::from_secs(30);
/// After the shell exits, wait this long for the PTY to drain before closing.
const EXIT_DRAIN: Duration = Duration::from_secs(1);
/// After the agent half-closes, wait this long for the control plane's end.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Opens (or re-attaches) the PTY, acks `msg_id` on Connect, then serves the
/// Terminal stream until it ends.
pub async fn serve(
    channel: Channel,
    terminals: Terminals,
    open: pb::OpenSession,
    msg_id: u64,
    acks: mpsc::Sender<pb::AgentMessage>,
    shutdown: CancellationToken,
) {
    let opened = match SessionId::new(&open.session_id) {
        Ok(session_id) => {
            terminals
                .open(OpenRequest {
                    session_id,
                    cols: open.cols,
                    rows: open.rows,
                    shell: open.shell,
                    user: open.user,
                })
                .await
        }
        Err(e) => Err(e),
    };
    let opened = match opened {
        Ok(o) => {
            let _ = acks.send(convert::ack(msg_id, None)).await;
            o
        }
        Err(e) => {
            tracing::warn!(session_id = %open.session_id, error = %e, "Cannot open a terminal.");
            let _ = acks.send(convert::ack(msg_id, Some(e.to_string()))).await;
            return;
        }
    };
    drop(acks);
    let id = opened.attachment.session().id().clone();
    match pump(channel, &terminals, opened, shutdown).await {
        Ok(()) => tracing::debug!(session_id = %id, "Terminal stream ended."),
        Err(e) => {
            tracing::warn!(session_id = %id, error = %e, "Terminal stream failed; the PTY stays for a re-attach.")
        }
    }
}

fn frame(id: &SessionId, seq: u64, body: Body) -> pb::TerminalFrame {
    pb::TerminalFrame {
        session_id: id.as_str().to_owned(),
        seq,
        body: Some(body),
    }
}

fn close(id: &SessionId, reason: &str, exit_code: Option<i32>) -> pb::TerminalFrame {
    frame(
        id,
        0,
        Body::Close(pb::Close {
            reason: reason.to_owned(),
            exit_code,
        }),
    )
}

async fn pump(
    channel: Channel,
    terminals: &Terminals,
    opened: Opened,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let Opened {
        mut attachment,
        resumed,
    } = opened;
    let id = attachment.session().id().clone();
    let taken_over = attachment.cancelled().clone();
    let session = attachment.session().clone();
    let (tx, rx) = mpsc::channel::<pb::TerminalFrame>(FRAMES);
    let (end, replay_from) = attachment.offsets();
    let hello = Body::Attach(pb::Attach {
        output_offset: end,
        replay_from,
        resumed,
    });
    tx.send(frame(&id, 0, hello))
        .await
        .map_err(|_| "stream closed")?;
    let mut client = AgentLinkClient::new(channel).max_decoding_message_size(4 * 1024 * 1024);
    let mut inbound = tokio::select! {
        r = client.terminal(ReceiverStream::new(rx)) => r.map_err(|s| describe(&s))?.into_inner(),
        () = shutdown.cancelled() => return Ok(()),
        () = taken_over.cancelled() => return Ok(()),
    };
    let from = match tokio::time::timeout(ATTACH_WAIT, inbound.message()).await {
        Ok(Ok(Some(pb::TerminalFrame {
            body: Some(Body::Attach(a)),
            ..
        }))) => a.output_offset,
        Ok(Err(s)) => return Err(describe(&s)),
        Ok(Ok(None)) => return Ok(()),
        _ => {
            let _ = tx.try_send(close(&id, "expected attach as the first frame", None));
            return Err("the control plane did not attach".into());
        }
    };
    let (end, start) = attachment.offsets();
    let mut from = if from > end { start } else { from.max(start) };
    attachment.mark_sent(from);
    let mut pending_input: Option<Vec<u8>> = None;
    let mut exited_at: Option<Instant> = None;
    // Made once, not per turn of the loop: each of these registers with
    // its token when polled and unregisters when dropped, two lock round
    // trips apiece on every keystroke and every echo otherwise.
    let mut stopping = std::pin::pin!(shutdown.cancelled());
    let mut taken = std::pin::pin!(taken_over.cancelled());

    let result = loop {
        let p = *attachment.progress().borrow_and_update();
        let have_output = from < p.end;
        if p.exited && exited_at.is_none() {
            exited_at = Some(Instant::now() + EXIT_DRAIN);
        }
        let drained = p.eof || exited_at.is_some_and(|t| Instant::now() >= t);
        if p.exited && !have_output && drained {
            let _ = tx.send(close(&id, "the shell exited", p.exit_code)).await;
            terminals.close(&id).await;
            break Ok(());
        }
        tokio::select! {
            biased;
            () = stopping.as_mut() => {
                let _ = tx.try_send(close(&id, "the agent is stopping", None));
                break Ok(());
            }
            () = taken.as_mut() => break Ok(()),
            // Keystrokes go straight to the PTY (non-blocking); while its
            // input queue is full, output keeps flowing the other way.
            written = session.write(pending_input.as_deref().unwrap_or_default()), if pending_input.is_some() => match written {
                Ok(n) => if let Some(rest) = pending_input.as_mut() {
                    rest.drain(..n.min(rest.len()));
                    if rest.is_empty() {
                        pending_input = None;
                    }
                },
                Err(_) => pending_input = None,
            },
            msg = inbound.message(), if pending_input.is_none() => match msg {
                Ok(Some(f)) => match f.body {
                    Some(Body::Data(d)) if d.len() > MAX_INPUT => {
                        let _ = tx.send(close(&id, "input frame over 64 KiB", None)).await;
                        break Err(format!("an input frame of {} bytes", d.len()));
                    }
                    Some(Body::Data(d)) => pending_input = (!d.is_empty()).then_some(d),
                    Some(Body::Resize(r)) => {
                        if let Err(e) = attachment.session().resize(r.cols, r.rows) {
                            tracing::warn!(session_id = %id, error = %e, "Cannot resize a terminal.");
                        }
                    }
                    Some(Body::Close(_)) => {
                        terminals.close(&id).await;
                        let _ = tx.try_send(close(&id, "closed", None));
                        break Ok(());
                    }
                    Some(Body::Attach(_)) | None => {}
                },
                Ok(None) => break Ok(()),
                Err(s) => break Err(describe(&s)),
            },
            permit = tx.reserve(), if have_output => {
                let Ok(permit) = permit else { break Ok(()) };
                let (at, data) = attachment.read(from, CHUNK);
                if at > from {
                    tracing::debug!(session_id = %id, lost = at - from, "Terminal output fell off the replay buffer.");
                }
                from = at + data.len() as u64;
                permit.send(frame(&id, at, Body::Data(data)));
                attachment.mark_sent(from);
            }
            _ = attachment.progress().changed(), if !have_output => {}
            () = tokio::time::sleep_until(exited_at.unwrap_or_else(Instant::now)), if exited_at.is_some() && !have_output => {}
        }
    };
    // Half-close: the queued frames (a close, say) go out, then wait a
    // little for the control plane to end its side rather than reset it.
    drop(tx);
    let wait = if shutdown.is_cancelled() {
        Duration::ZERO
    } else {
        CLOSE_WAIT
    };
    let _ = tokio::time::timeout(wait, async {
        while let Ok(Some(_)) = inbound.message().await {}
    })
    .await;
    result
}

#[cfg(all(test, unix))]
mod tests;
