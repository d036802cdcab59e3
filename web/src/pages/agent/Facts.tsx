// Host facts as the agent reported them at its last hello (text only).

import type { Agent } from "../../api/types";
import { formatBytes, formatDateTime, formatOs, formatRelative, formatUptime } from "../../lib/format";

export function Facts({ agent, now }: { agent: Agent; now: number }) {
  const f = agent.facts;
  const uptime = agent.live?.latest?.values?.uptime;
  const rows: [string, string][] = [
    ["Hostname", f?.hostname || agent.hostname || "—"],
    ["OS", formatOs(f?.os_name, f?.os_version)],
    ["Kernel", f?.kernel_version || "—"],
    ["Architecture", f?.arch || "—"],
    ["CPU", f?.cpu_model ? `${f.cpu_model}${f.cpu_cores ? ` (${f.cpu_cores} cores)` : ""}` : f?.cpu_cores ? `${f.cpu_cores} cores` : "—"],
    ["Memory", formatBytes(f?.memory_total_bytes)],
    ["Container", f?.container || "none"],
    ["Booted", formatDateTime(f?.boot_time_ms)],
    [
      "Uptime",
      agent.status === "online"
        ? formatUptime(typeof uptime === "number" ? uptime : f?.boot_time_ms ? (now - f.boot_time_ms) / 1000 : null)
        : "—",
    ],
    ["Agent version", agent.agent_version || "—"],
    ["Machine id", agent.machine_id || "—"],
    ["Agent id", agent.id],
    ["Enrolled", formatDateTime(agent.enrolled_at)],
    [
      "Last seen",
      agent.status === "online" ? "now" : agent.last_seen ? `${formatDateTime(agent.last_seen)} (${formatRelative(agent.last_seen, now)})` : "never",
    ],
  ];
  if (agent.live) {
    rows.push(["Connected from", agent.live.remote_addr || "—"]);
    rows.push(["Connected since", formatDateTime(agent.live.connected_at)]);
    rows.push(["Outbox pending", String(agent.live.outbox_pending ?? 0)]);
  }
  if (agent.revoked_at) rows.push(["Revoked", formatDateTime(agent.revoked_at)]);
  return (
    <dl className="facts" data-testid="host-facts">
      {rows.map(([k, v]) => (
        <div key={k} className="fact">
          <dt>{k}</dt>
          <dd title={v}>{v}</dd>
        </div>
      ))}
    </dl>
  );
}
