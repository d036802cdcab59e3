// An agent's status in colour and in words, so it reads without colour too.

import type { AgentStatus } from "../api/types";

const TEXT: Record<AgentStatus, string> = {
  online: "Online",
  offline: "Offline",
  revoked: "Revoked",
};

export function StatusBadge({ status }: { status: AgentStatus }) {
  const known = status in TEXT;
  return (
    <span
      className={`badge badge-${known ? status : "unknown"}`}
      data-testid="status-badge"
      data-status={status}
    >
      <span className="badge-dot" aria-hidden="true" />
      {known ? TEXT[status] : String(status)}
    </span>
  );
}
