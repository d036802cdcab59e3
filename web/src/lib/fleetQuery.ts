// The fleet page's filter: how it is kept in the address bar (so a filtered
// view can be shared and survives a reload), how it becomes the query of
// GET /api/v1/agents, and whether an agent pushed over the WebSocket falls
// inside it.

import type { Agent, AgentStatus } from "../api/types";
import { AGENT_STATUSES } from "../api/types";
import { formatLabels, parseLabels } from "./labels";

export interface FleetFilter {
  /** Free text: part of a hostname or id. */
  q: string;
  status: AgentStatus | "";
  project: string;
  /** Label selector as typed: `env=prod, role=web`. */
  label: string;
}

export const EMPTY_FILTER: FleetFilter = { q: "", status: "", project: "", label: "" };

export const PAGE_SIZE = 100;

function isStatus(s: string | null): s is AgentStatus {
  return s !== null && (AGENT_STATUSES as readonly string[]).includes(s);
}

/** Reads a filter from a location's `?query`. Unknown values are ignored. */
export function filterFromSearch(search: string): FleetFilter {
  const p = new URLSearchParams(search);
  const status = p.get("status");
  return {
    q: p.get("q") ?? "",
    status: isStatus(status) ? status : "",
    project: p.get("project") ?? "",
    label: p.get("label") ?? "",
  };
}

/** The `?query` (with its `?`, or empty) that represents a filter in the address bar. */
export function filterToSearch(f: FleetFilter): string {
  const p = new URLSearchParams();
  if (f.q.trim()) p.set("q", f.q.trim());
  if (f.status) p.set("status", f.status);
  if (f.project) p.set("project", f.project);
  if (f.label.trim()) p.set("label", f.label.trim());
  const s = p.toString();
  return s ? `?${s}` : "";
}

export type ApiQuery = { ok: true; params: URLSearchParams } | { ok: false; error: string };

/**
 * The query string of GET /agents for one page of a filter. Empty fields are
 * left out; the label selector is validated and normalised to `k=v,k2=v2`.
 */
export function filterToApiQuery(f: FleetFilter, limit: number, offset: number): ApiQuery {
  const p = new URLSearchParams();
  if (f.project) p.set("project", f.project);
  if (f.status) p.set("status", f.status);
  if (f.label.trim()) {
    const parsed = parseLabels(f.label);
    if (!parsed.ok) return { ok: false, error: parsed.error };
    const sel = formatLabels(parsed.labels);
    if (sel) p.set("label", sel);
  }
  if (f.q.trim()) p.set("q", f.q.trim());
  p.set("limit", String(Math.max(1, Math.floor(limit))));
  p.set("offset", String(Math.max(0, Math.floor(offset))));
  return { ok: true, params: p };
}

/** Whether an agent belongs in the filtered list (mirrors the server's rules). */
export function agentMatches(a: Agent, f: FleetFilter): boolean {
  if (f.project && a.project !== f.project) return false;
  if (f.status && a.status !== f.status) return false;
  if (f.label.trim()) {
    const parsed = parseLabels(f.label);
    if (!parsed.ok) return false;
    for (const [k, v] of Object.entries(parsed.labels)) {
      if (a.labels[k] !== v) return false;
    }
  }
  const needle = f.q.trim().toLowerCase();
  if (needle && !a.hostname.toLowerCase().includes(needle) && !a.id.toLowerCase().includes(needle)) return false;
  return true;
}

export function sameFilter(a: FleetFilter, b: FleetFilter): boolean {
  return a.q === b.q && a.status === b.status && a.project === b.project && a.label === b.label;
}
