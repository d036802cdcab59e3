// One agent in the fleet list. Hostname, OS, project and labels come from
// agents: they are rendered as text, never as markup.

import { memo } from "react";
import type { Agent, Spark } from "../../api/types";
import { LabelChips } from "../../components/LabelChips";
import { Sparkline } from "../../components/Sparkline";
import { StatusBadge } from "../../components/StatusBadge";
import { formatDateTime, formatOs, formatRelative, formatUptime } from "../../lib/format";
import { Link } from "../../lib/router";

export const ROW_HEIGHT = 44;

export function uptimeText(a: Agent, now: number): { text: string; title: string } {
  if (a.status === "revoked") {
    return { text: `revoked ${formatRelative(a.revoked_at, now, undefined, "narrow")}`, title: `Revoked ${formatDateTime(a.revoked_at)}` };
  }
  if (a.status !== "online") {
    return { text: `seen ${formatRelative(a.last_seen, now, undefined, "narrow")}`, title: `Last seen ${formatDateTime(a.last_seen)}` };
  }
  const uptime = a.live?.latest?.values?.uptime;
  const boot = a.facts?.boot_time_ms;
  const seconds = typeof uptime === "number" ? uptime : boot && boot > 0 ? (now - boot) / 1000 : null;
  return { text: formatUptime(seconds), title: boot ? `Booted ${formatDateTime(boot)}` : "" };
}

export const FleetRow = memo(function FleetRow({
  agent,
  spark,
  index,
  top,
  now,
}: {
  agent: Agent;
  spark: Spark | undefined;
  index: number;
  top: number;
  now: number;
}) {
  const up = uptimeText(agent, now);
  const href = `/agents/${encodeURIComponent(agent.id)}`;
  const os = formatOs(agent.facts?.os_name, agent.facts?.os_version);
  return (
    <div
      className={`fleet-row row-${agent.status}`}
      role="row"
      aria-rowindex={index + 2}
      data-testid="agent-row"
      data-agent-id={agent.id}
      data-status={agent.status}
      style={{ transform: `translateY(${top}px)`, height: ROW_HEIGHT }}
    >
      <div role="cell" className="c-status">
        <StatusBadge status={agent.status} />
      </div>
      <div role="cell" className="c-host">
        <Link to={href} className="host-link" data-testid="agent-hostname" title={agent.hostname}>
          {agent.hostname || agent.id}
        </Link>
        <span className="sub muted" title={agent.id}>
          {agent.id.slice(0, 8)}
        </span>
      </div>
      <div role="cell" className="c-os" title={`${os} ${agent.facts?.arch ?? ""}`}>
        {os}
      </div>
      <div role="cell" className="c-project" title={agent.project}>
        {agent.project}
      </div>
      <div role="cell" className="c-labels">
        <LabelChips labels={agent.labels} max={3} />
      </div>
      <div role="cell" className="c-uptime" title={up.title}>
        {up.text}
      </div>
      <div role="cell" className="c-spark">
        <Sparkline kind="cpu" label="CPU" values={spark?.cpu ?? []} />
      </div>
      <div role="cell" className="c-spark">
        <Sparkline kind="mem" label="Memory" values={spark?.mem ?? []} />
      </div>
      <div role="cell" className="c-spark">
        <Sparkline kind="disk" label="Disk" values={spark?.disk ?? []} />
      </div>
    </div>
  );
});

export function PlaceholderRow({ index, top }: { index: number; top: number }) {
  return (
    <div
      className="fleet-row row-placeholder"
      role="row"
      aria-rowindex={index + 2}
      aria-busy="true"
      data-testid="agent-row-loading"
      style={{ transform: `translateY(${top}px)`, height: ROW_HEIGHT }}
    >
      <div role="cell" className="c-status">
        <span className="skeleton" />
      </div>
      <div role="cell" className="c-host">
        <span className="skeleton wide" />
        <span className="visually-hidden">Loading…</span>
      </div>
    </div>
  );
}
