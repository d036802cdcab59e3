// The agent page's terminal panels: live PTY sessions (resume one after the
// tab was closed) and recordings of past sessions (who, when, how long).

import { useEffect } from "react";
import { api } from "../../api/client";
import type { Agent } from "../../api/types";
import { useResource } from "../../app/useResource";
import { EmptyRow, ErrorBox, Loading } from "../../components/Notice";
import { formatBytes, formatDateTime, formatDuration, formatRelative, toMs } from "../../lib/format";
import { Link } from "../../lib/router";

const REFRESH_MS = 15_000;

function shortId(id: string): string {
  return id.length > 13 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id;
}

/** Reloads a resource every `ms` while the tab is visible. */
function useRefresh(reload: () => void, ms: number, enabled = true): void {
  useEffect(() => {
    if (!enabled) return;
    const t = setInterval(() => {
      if (document.visibilityState !== "hidden") reload();
    }, ms);
    return () => clearInterval(t);
  }, [reload, ms, enabled]);
}

export function LiveSessions({ agent }: { agent: Agent }) {
  const res = useResource((signal) => api.terminals(agent.id, signal), [agent.id, agent.status]);
  useRefresh(res.reload, REFRESH_MS, agent.status === "online");
  const rows = res.data ?? [];
  if (!res.data && res.loading) return <Loading label="Loading sessions…" />;
  return (
    <>
      {res.error && <ErrorBox title="Could not list the live sessions" message={res.error} onRetry={res.reload} />}
      {res.data && (
        <div className="table-scroll">
          <table className="data-table compact" data-testid="live-sessions">
            <caption>Live sessions</caption>
            <thead>
              <tr>
                <th scope="col">Session</th>
                <th scope="col">User</th>
                <th scope="col">Started</th>
                <th scope="col">Last attached</th>
                <th scope="col">Attached</th>
                <th scope="col" className="actions-cell">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.length === 0 ? (
                <EmptyRow columns={6}>No terminal is open on this machine.</EmptyRow>
              ) : (
                rows.map((s) => (
                  <tr key={s.session_id} data-testid="live-session" data-session-id={s.session_id}>
                    <td>
                      <code title={s.session_id}>{shortId(s.session_id)}</code>
                    </td>
                    <td className="ellipsis" title={s.user}>
                      {s.user}
                    </td>
                    <td title={formatDateTime(toMs(s.started_at))}>{formatRelative(toMs(s.started_at))}</td>
                    <td title={formatDateTime(toMs(s.last_attached_at))}>{formatRelative(toMs(s.last_attached_at))}</td>
                    <td>{s.attached ? "Yes" : "No"}</td>
                    <td className="actions-cell">
                      <Link
                        to={`/agents/${encodeURIComponent(agent.id)}/terminal/${encodeURIComponent(s.session_id)}`}
                        className="button small"
                        data-testid="resume-session"
                        aria-label={`Resume session ${shortId(s.session_id)} of ${s.user}`}
                      >
                        Resume
                      </Link>
                    </td>
                  </tr>
                ))
              )}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

export function Recordings({ agentId }: { agentId: string }) {
  const res = useResource((signal) => api.recordings(agentId, signal), [agentId]);
  const rows = res.data ?? [];
  if (!res.data && res.loading) return <Loading label="Loading recordings…" />;
  return (
    <>
      {res.error && <ErrorBox title="Could not list the recordings" message={res.error} onRetry={res.reload} />}
      {res.data && (
        <div className="table-scroll">
          <table className="data-table compact" data-testid="recordings">
            <caption>Recordings</caption>
            <thead>
              <tr>
                <th scope="col">User</th>
                <th scope="col">Started</th>
                <th scope="col" className="num">
                  Duration
                </th>
                <th scope="col" className="num">
                  Size
                </th>
                <th scope="col" className="actions-cell">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.length === 0 ? (
                <EmptyRow columns={5}>No recorded sessions.</EmptyRow>
              ) : (
                rows.map((r) => (
                  <tr key={r.session_id} data-testid="recording-row" data-session-id={r.session_id}>
                    <td className="ellipsis" title={r.user}>
                      {r.user}
                    </td>
                    <td>{formatDateTime(toMs(r.started_at))}</td>
                    <td className="num">{r.ended_at === null ? `${formatDuration(r.duration_ms)} (live)` : formatDuration(r.duration_ms)}</td>
                    <td className="num">{formatBytes(r.bytes)}</td>
                    <td className="actions-cell">
                      <Link
                        to={`/recordings/${encodeURIComponent(r.session_id)}?agent=${encodeURIComponent(agentId)}`}
                        className="button small"
                        data-testid="play-recording"
                        aria-label={`Play the recording of ${r.user}'s session of ${formatDateTime(toMs(r.started_at))}`}
                      >
                        Play
                      </Link>
                    </td>
                  </tr>
                ))
              )}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
