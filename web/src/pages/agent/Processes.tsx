// Top processes by CPU and by memory, as last reported by the agent.
// Process names are agent-provided: text only.

import type { Agent, ProcessInfo } from "../../api/types";
import { EmptyRow } from "../../components/Notice";
import { formatBytes, formatPercent, formatTime } from "../../lib/format";

function ProcessTable({ caption, rows, testId }: { caption: string; rows: ProcessInfo[]; testId: string }) {
  return (
    <table className="data-table compact" data-testid={testId}>
      <caption>{caption}</caption>
      <thead>
        <tr>
          <th scope="col" className="num">
            PID
          </th>
          <th scope="col">Name</th>
          <th scope="col" className="num">
            CPU
          </th>
          <th scope="col" className="num">
            Memory
          </th>
        </tr>
      </thead>
      <tbody>
        {rows.length === 0 ? (
          <EmptyRow columns={4}>None reported.</EmptyRow>
        ) : (
          rows.slice(0, 10).map((p) => (
            <tr key={`${p.pid}-${p.name}`} data-testid="process-row">
              <td className="num">{p.pid}</td>
              <td className="ellipsis" title={p.name}>
                {p.name}
              </td>
              <td className="num">{formatPercent(p.cpu_percent)}</td>
              <td className="num">{formatBytes(p.memory_bytes)}</td>
            </tr>
          ))
        )}
      </tbody>
    </table>
  );
}

export function Processes({ agent }: { agent: Agent }) {
  const p = agent.live?.processes;
  if (agent.status !== "online") {
    return <p className="muted">Processes are reported only while the agent is online.</p>;
  }
  if (!p) return <p className="muted">Waiting for the agent's first process list…</p>;
  return (
    <>
      <p className="muted small">As of {formatTime(p.ts)}</p>
      <div className="two-col">
        <ProcessTable caption="By CPU" rows={p.by_cpu ?? []} testId="processes-by-cpu" />
        <ProcessTable caption="By memory" rows={p.by_memory ?? []} testId="processes-by-memory" />
      </div>
    </>
  );
}
