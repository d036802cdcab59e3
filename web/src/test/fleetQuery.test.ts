import { describe, expect, it } from "vitest";
import type { Agent } from "../api/types";
import {
  agentMatches,
  EMPTY_FILTER,
  filterFromSearch,
  filterToApiQuery,
  filterToSearch,
  type FleetFilter,
} from "../lib/fleetQuery";
import { formatLabels, parseLabels } from "../lib/labels";

function api(f: FleetFilter, limit = 100, offset = 0): string {
  const q = filterToApiQuery(f, limit, offset);
  if (!q.ok) throw new Error(q.error);
  return q.params.toString();
}

describe("fleet filter → GET /agents query", () => {
  it("sends only paging for an empty filter", () => {
    expect(api(EMPTY_FILTER)).toBe("limit=100&offset=0");
  });

  it("maps every field, trimming text and normalising labels", () => {
    const f: FleetFilter = { q: "  web-0 ", status: "online", project: "prod", label: " role=web ,env=prod" };
    expect(api(f, 100, 300)).toBe("project=prod&status=online&label=env%3Dprod%2Crole%3Dweb&q=web-0&limit=100&offset=300");
  });

  it("rejects a malformed label selector instead of sending it", () => {
    const q = filterToApiQuery({ ...EMPTY_FILTER, label: "env" }, 100, 0);
    expect(q.ok).toBe(false);
    const bad = filterToApiQuery({ ...EMPTY_FILTER, label: "-x=1" }, 100, 0);
    expect(bad.ok).toBe(false);
  });

  it("encodes hostile text safely", () => {
    const f = { ...EMPTY_FILTER, q: "a&status=revoked" };
    const q = filterToApiQuery(f, 10, 0);
    expect(q.ok && q.params.get("q")).toBe("a&status=revoked");
    expect(q.ok && q.params.get("status")).toBeNull();
  });
});

describe("fleet filter ⇄ address bar", () => {
  it("round-trips", () => {
    const f: FleetFilter = { q: "db", status: "offline", project: "ops", label: "env=prod" };
    const s = filterToSearch(f);
    expect(s).toBe("?q=db&status=offline&project=ops&label=env%3Dprod");
    expect(filterFromSearch(s)).toEqual(f);
  });
  it("is empty for no filter and ignores an unknown status", () => {
    expect(filterToSearch(EMPTY_FILTER)).toBe("");
    expect(filterFromSearch("?status=weird").status).toBe("");
  });
});

describe("agentMatches", () => {
  const a = {
    id: "0190-abc",
    project: "prod",
    hostname: "Web-01",
    status: "online",
    labels: { env: "prod", role: "web" },
  } as unknown as Agent;
  it("mirrors the server's filter rules", () => {
    expect(agentMatches(a, EMPTY_FILTER)).toBe(true);
    expect(agentMatches(a, { ...EMPTY_FILTER, q: "web" })).toBe(true);
    expect(agentMatches(a, { ...EMPTY_FILTER, q: "abc" })).toBe(true);
    expect(agentMatches(a, { ...EMPTY_FILTER, q: "db" })).toBe(false);
    expect(agentMatches(a, { ...EMPTY_FILTER, status: "offline" })).toBe(false);
    expect(agentMatches(a, { ...EMPTY_FILTER, project: "dev" })).toBe(false);
    expect(agentMatches(a, { ...EMPTY_FILTER, label: "env=prod,role=web" })).toBe(true);
    expect(agentMatches(a, { ...EMPTY_FILTER, label: "env=dev" })).toBe(false);
  });
});

describe("labels", () => {
  it("parses commas and new lines, trims, and keeps '=' in values", () => {
    expect(parseLabels("env=prod,\n role = web , x=a=b")).toEqual({
      ok: true,
      labels: { env: "prod", role: "web", x: "a=b" },
    });
    expect(parseLabels("")).toEqual({ ok: true, labels: {} });
  });
  it("applies the server's key rules", () => {
    expect(parseLabels("team/app.v1_x-y=1").ok).toBe(true);
    expect(parseLabels("_x=1").ok).toBe(false);
    expect(parseLabels("a b=1").ok).toBe(false);
    expect(parseLabels(`${"k".repeat(64)}=1`).ok).toBe(false);
    expect(parseLabels(`k=${"v".repeat(256)}`).ok).toBe(false);
  });
  it("formats sorted", () => {
    expect(formatLabels({ b: "2", a: "1" })).toBe("a=1,b=2");
  });
});
