// One agent: status, live charts, host facts, top processes, labels and
// revoke. While it is open and the agent is online, the page `watch`es the
// agent over the WebSocket, which asks the agent for 1 s samples.

import { useEffect, useRef, useState } from "react";
import { api, errorMessage } from "../../api/client";
import type { Agent, AgentStatus } from "../../api/types";
import { useLive, useLiveMessages, useReconnects } from "../../app/live";
import { useResource } from "../../app/useResource";
import { ConfirmDialog } from "../../components/ConfirmDialog";
import { ErrorBox, Loading } from "../../components/Notice";
import { StatusBadge } from "../../components/StatusBadge";
import { formatDateTime, formatOs, formatRelative } from "../../lib/format";
import { rangeByKey } from "../../lib/metricsView";
import { Link, navigate, useLocation } from "../../lib/router";
import { AgentCharts, RangePicker } from "./AgentCharts";
import { Facts } from "./Facts";
import { LabelEditor } from "./LabelEditor";
import { Processes } from "./Processes";
import { LiveSessions, Recordings } from "./Sessions";

const POLL_MS = 10_000;

/** A pushed agent carries no process list; keep the one we have while online. */
function mergePushed(prev: Agent | undefined, next: Agent): Agent {
  if (!prev || next.status !== "online" || !prev.live) return next;
  return { ...next, live: { ...prev.live, ...(next.live ?? {}), processes: next.live?.processes ?? prev.live.processes } };
}

function StatusNotice({ agent, wentOfflineAt }: { agent: Agent; wentOfflineAt: number | null }) {
  if (agent.status === "online") return null;
  const text =
    agent.status === "revoked"
      ? `This agent was revoked ${formatDateTime(agent.revoked_at)}. It can no longer connect; stored history is still shown.`
      : wentOfflineAt
        ? `This agent went offline at ${formatDateTime(wentOfflineAt)}. Live charts are paused; they resume when it reconnects.`
        : `This agent is offline (last seen ${agent.last_seen ? formatRelative(agent.last_seen) : "never"}). Showing stored history.`;
  return (
    <div className={`notice notice-${agent.status}`} role="status" data-testid="agent-offline-banner">
      {text}
    </div>
  );
}

export function AgentPage({ id }: { id: string }) {
  const live = useLive();
  const loc = useLocation();
  const range = rangeByKey(new URLSearchParams(loc.search).get("range"));
  // Reload after the socket reconnects: status pushes may have been missed.
  const reconnects = useReconnects();
  const res = useResource((signal) => api.getAgent(id, signal), [id, reconnects]);
  const agent = res.data;
  const status: AgentStatus | undefined = agent?.status;
  const [now, setNow] = useState(() => Date.now());
  const [wentOfflineAt, setWentOfflineAt] = useState<number | null>(null);
  const prevStatus = useRef<AgentStatus | undefined>(undefined);

  useEffect(() => {
    if (prevStatus.current === "online" && status && status !== "online") setWentOfflineAt(Date.now());
    if (status === "online") setWentOfflineAt(null);
    prevStatus.current = status;
  }, [status]);

  useLiveMessages((m) => {
    if (m.type === "agent" && m.agent.id === id) res.setData((prev) => mergePushed(prev, m.agent));
  });

  // Full-rate samples while the page is open and the agent online.
  useEffect(() => {
    if (status !== "online") return;
    live.watch(id);
    return () => live.unwatch();
  }, [live, id, status]);

  // Poll for processes and as a fallback for status when the socket is down.
  useEffect(() => {
    if (!status || status === "revoked") return;
    const t = setInterval(() => {
      setNow(Date.now());
      if (document.visibilityState === "hidden") return;
      api.getAgent(id).then(
        (a) => res.setData(a),
        () => undefined,
      );
    }, POLL_MS);
    return () => clearInterval(t);
  }, [id, status]);

  const [confirming, setConfirming] = useState(false);
  const [revoking, setRevoking] = useState(false);
  const [revokeError, setRevokeError] = useState<string | null>(null);
  const revoke = async () => {
    setRevoking(true);
    setRevokeError(null);
    try {
      const a = await api.revokeAgent(id);
      res.setData(a);
      setConfirming(false);
    } catch (e) {
      setRevokeError(errorMessage(e));
    } finally {
      setRevoking(false);
    }
  };

  if (!agent) {
    if (res.error) {
      return (
        <section className="page">
          <p>
            <Link to="/fleet">← Fleet</Link>
          </p>
          <ErrorBox title="Could not load this agent" message={res.error} onRetry={res.reload} />
        </section>
      );
    }
    return (
      <section className="page">
        <Loading label="Loading agent…" />
      </section>
    );
  }

  const name = agent.hostname || agent.id;
  return (
    <section className="page page-agent" aria-labelledby="agent-title" data-testid="agent-page" data-agent-id={agent.id}>
      <nav className="crumbs" aria-label="Breadcrumb">
        <Link to="/fleet">Fleet</Link> <span aria-hidden="true">/</span> <span>{name}</span>
      </nav>
      <div className="page-head agent-head">
        <div className="agent-title">
          <h1 id="agent-title" data-testid="agent-title">
            {name}
          </h1>
          <StatusBadge status={agent.status} />
          <span className="muted">
            {formatOs(agent.facts?.os_name, agent.facts?.os_version)} · project {agent.project}
          </span>
        </div>
        <div className="actions">
          {agent.status === "online" ? (
            <Link
              to={`/agents/${encodeURIComponent(agent.id)}/terminal`}
              className="button primary"
              data-testid="open-terminal"
            >
              Open terminal
            </Link>
          ) : (
            <button type="button" className="primary" disabled title="The agent is offline" data-testid="open-terminal">
              Open terminal
            </button>
          )}
          <Link to={`/exec?agent=${encodeURIComponent(agent.id)}`} className="button" data-testid="run-command">
            Run command
          </Link>
          <button
            type="button"
            className="danger"
            disabled={agent.status === "revoked"}
            onClick={() => {
              setRevokeError(null);
              setConfirming(true);
            }}
            data-testid="revoke-agent"
          >
            {agent.status === "revoked" ? "Revoked" : "Revoke…"}
          </button>
        </div>
      </div>
      {res.error && <ErrorBox title="Could not refresh" message={res.error} onRetry={res.reload} />}
      <StatusNotice agent={agent} wentOfflineAt={wentOfflineAt} />

      <div className="panel">
        <h2 className="panel-title">Labels</h2>
        <LabelEditor agent={agent} onSaved={(a) => res.setData((prev) => mergePushed(prev, a))} />
      </div>

      <div className="panel">
        <div className="panel-head">
          <h2 className="panel-title">Metrics</h2>
          <RangePicker
            value={range}
            onChange={(r) => navigate(`/agents/${encodeURIComponent(id)}?range=${r.key}`, { replace: true })}
          />
        </div>
        <AgentCharts agent={agent} range={range} />
      </div>

      <div className="two-col wide-left">
        <div className="panel">
          <h2 className="panel-title">Top processes</h2>
          <Processes agent={agent} />
        </div>
        <div className="panel">
          <h2 className="panel-title">Host</h2>
          <Facts agent={agent} now={now} />
        </div>
      </div>

      <div className="two-col">
        <div className="panel">
          <h2 className="panel-title">Terminal sessions</h2>
          <LiveSessions agent={agent} />
        </div>
        <div className="panel">
          <h2 className="panel-title">Session recordings</h2>
          <Recordings agentId={agent.id} />
        </div>
      </div>

      {confirming && (
        <ConfirmDialog
          title={`Revoke ${name}?`}
          confirmLabel="Revoke agent"
          busy={revoking}
          error={revokeError}
          onCancel={() => setConfirming(false)}
          onConfirm={revoke}
        >
          <p>
            The agent on <strong>{name}</strong> is disconnected now and its certificate is refused from then on. To
            manage this machine again it must be enrolled anew with a join token.
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}

