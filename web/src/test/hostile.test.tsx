// Agent-provided strings (hostname, labels, facts, process names) must show
// as text, never become markup or run.

import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { act, screen, waitFor } from "@testing-library/react";
import { api } from "../api/client";
import { AgentPage } from "../pages/agent/AgentPage";
import { Fleet } from "../pages/fleet/Fleet";
import { fakeLayout, fakeLive, hostileAgent, makeAgent, renderWithLive, XSS_HOST, XSS_IMG } from "./helpers";

declare global {
  interface Window {
    __pwned?: number;
  }
}

function assertNoInjectedMarkup(root: HTMLElement) {
  expect(root.querySelector("script, iframe, style, svg[onload], b, i")).toBeNull();
  expect(root.querySelector("img[onerror]")).toBeNull();
  expect(root.innerHTML).not.toContain("<script");
  expect(root.innerHTML).not.toContain("<img");
  expect(window.__pwned).toBeUndefined();
}

let restoreLayout: () => void;
beforeEach(() => {
  restoreLayout = fakeLayout();
  window.history.replaceState(null, "", "/fleet");
});
afterEach(() => restoreLayout());

describe("hostile agent strings", () => {
  it("render as text on the fleet page", async () => {
    const evil = hostileAgent();
    vi.spyOn(api, "projects").mockResolvedValue([{ id: "default", created_at: 1 }]);
    vi.spyOn(api, "listAgents").mockResolvedValue({
      total: 2,
      offset: 0,
      counts: { online: 2, offline: 0, revoked: 0 },
      items: [makeAgent(), evil],
    });
    const { live } = fakeLive();
    const { container } = renderWithLive(<Fleet />, live);
    const rows = await screen.findAllByTestId("agent-row");
    expect(rows).toHaveLength(2);
    const row = rows.find((r) => r.dataset.agentId === evil.id)!;
    expect(row.textContent).toContain(XSS_HOST);
    expect(row.textContent).toContain(XSS_IMG);
    assertNoInjectedMarkup(container);
  });

  it("render as text on the agent page, including a pushed update", async () => {
    const evil = hostileAgent();
    vi.spyOn(api, "getAgent").mockResolvedValue(evil);
    vi.spyOn(api, "terminals").mockResolvedValue([
      { session_id: "s1", user: XSS_IMG, started_at: Date.now(), last_attached_at: null, attached: false },
    ]);
    vi.spyOn(api, "recordings").mockResolvedValue([
      { session_id: "s0", user: XSS_HOST, started_at: Date.now() - 60_000, ended_at: Date.now(), duration_ms: 60_000, bytes: 2048 },
    ]);
    vi.spyOn(api, "metrics").mockResolvedValue({ series: "cpu", step_ms: 10_000, source: "points", points: [] });
    const { live, push, sent } = fakeLive();
    const { container } = renderWithLive(<AgentPage id={evil.id} />, live);
    expect((await screen.findByTestId("agent-title")).textContent).toBe(XSS_HOST);
    expect(screen.getByTestId("processes-by-cpu").textContent).toContain(XSS_HOST);
    expect(screen.getByTestId("processes-by-memory").textContent).toContain(XSS_IMG);
    expect(screen.getByTestId("host-facts").textContent).toContain("<iframe src=javascript:alert(1)>");
    expect(sent).toContainEqual({ type: "watch", id: evil.id });
    expect((await screen.findByTestId("live-session")).textContent).toContain(XSS_IMG);
    expect((await screen.findByTestId("recording-row")).textContent).toContain(XSS_HOST);
    act(() => push({ type: "agent", agent: { ...evil, hostname: "<script>x()</script>", status: "offline", live: null } }));
    await waitFor(() => expect(screen.getByTestId("agent-title").textContent).toBe("<script>x()</script>"));
    expect(screen.getByTestId("agent-offline-banner").textContent).toMatch(/went offline/);
    expect(sent).toContainEqual({ type: "unwatch" });
    assertNoInjectedMarkup(container);
  });

  it("no source file uses dangerouslySetInnerHTML or innerHTML", () => {
    const root = join(__dirname, "..");
    const offenders: string[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const p = join(dir, name);
        if (statSync(p).isDirectory()) {
          if (name !== "test") walk(p);
        } else if (/\.(tsx?|jsx?)$/.test(name)) {
          const text = readFileSync(p, "utf8");
          if (/dangerouslySetInnerHTML|\.innerHTML\s*=|insertAdjacentHTML|document\.write/.test(text)) offenders.push(p);
        }
      }
    };
    walk(root);
    expect(offenders).toEqual([]);
  });
});
