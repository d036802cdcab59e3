// Picks agents for an exec: search the fleet by name (server-side, a page
// of 50), tick the ones wanted; the chosen ones show as removable chips.

import { useEffect, useId, useState } from "react";
import { api, errorMessage, isAbort } from "../../api/client";
import type { Agent } from "../../api/types";
import { StatusBadge } from "../../components/StatusBadge";

export interface Picked {
  id: string;
  hostname: string;
}

const LIMIT = 50;

export function AgentPicker({ value, onChange }: { value: Picked[]; onChange(next: Picked[]): void }) {
  const listId = useId();
  const [q, setQ] = useState("");
  const [found, setFound] = useState<Agent[] | null>(null);
  const [total, setTotal] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const [open, setOpen] = useState(false);

  useEffect(() => {
    if (!open) return;
    const ctl = new AbortController();
    const t = setTimeout(() => {
      const p = new URLSearchParams();
      if (q.trim()) p.set("q", q.trim());
      p.set("limit", String(LIMIT));
      p.set("offset", "0");
      api.listAgents(p, ctl.signal).then(
        (page) => {
          setFound(page.items);
          setTotal(page.total);
          setError(null);
        },
        (e: unknown) => {
          if (!isAbort(e)) setError(errorMessage(e));
        },
      );
    }, 200);
    return () => {
      clearTimeout(t);
      ctl.abort();
    };
  }, [q, open]);

  const chosen = new Set(value.map((p) => p.id));
  const toggle = (a: Agent) => {
    if (chosen.has(a.id)) onChange(value.filter((p) => p.id !== a.id));
    else onChange([...value, { id: a.id, hostname: a.hostname }]);
  };

  return (
    <div className="agent-picker">
      {value.length > 0 && (
        <ul className="picked" aria-label="Chosen agents">
          {value.map((p) => (
            <li key={p.id} className="chip picked-chip" data-testid="exec-agent-selected" data-agent-id={p.id}>
              <span className="chip-value" title={p.id}>
                {p.hostname || p.id}
              </span>
              <button
                type="button"
                className="link"
                onClick={() => onChange(value.filter((x) => x.id !== p.id))}
                aria-label={`Remove ${p.hostname || p.id}`}
              >
                ×
              </button>
            </li>
          ))}
          <li>
            <button type="button" className="link small" onClick={() => onChange([])}>
              Clear
            </button>
          </li>
        </ul>
      )}
      <input
        type="search"
        placeholder="Find agents by name or id"
        aria-label="Find agents"
        aria-controls={listId}
        value={q}
        onFocus={() => setOpen(true)}
        onChange={(e) => {
          setOpen(true);
          setQ(e.target.value);
        }}
        data-testid="exec-agent-search"
      />
      {open && (
        <div className="picker-list" id={listId}>
          {error && (
            <p className="field-error" role="alert">
              {error}
            </p>
          )}
          {found === null && !error && <p className="muted small">Loading…</p>}
          {found && found.length === 0 && <p className="muted small">No agents match.</p>}
          {found && found.length > 0 && (
            <ul aria-label="Agents">
              {found.map((a) => (
                <li key={a.id}>
                  <label className="picker-option" data-testid="exec-agent-option" data-agent-id={a.id}>
                    <input type="checkbox" checked={chosen.has(a.id)} onChange={() => toggle(a)} />
                    <span className="ellipsis">{a.hostname || a.id}</span>
                    <StatusBadge status={a.status} />
                    <span className="muted small">{a.project}</span>
                  </label>
                </li>
              ))}
            </ul>
          )}
          {found && total > found.length && (
            <p className="muted small">
              Showing {found.length} of {total}; type to narrow down.
            </p>
          )}
        </div>
      )}
    </div>
  );
}
