// Shared test fixtures: agents (including hostile ones), a LiveSocket that
// never touches the network, and a renderer that provides it.

import { render } from "@testing-library/react";
import type { ReactElement } from "react";
import type { Agent } from "../api/types";
import { LiveSocket, type SocketLike } from "../api/ws";
import { LiveContext } from "../app/live";

export const XSS_HOST = `<script>window.__pwned = 1</script>evil`;
export const XSS_IMG = `<img src=x onerror="window.__pwned = 1">`;

export function makeAgent(extra: Partial<Agent> = {}): Agent {
  return {
    id: "0190aaaa-0000-7000-8000-000000000001",
    project: "default",
    hostname: "web-01",
    machine_id: "m-1",
    status: "online",
    labels: { env: "prod" },
    agent_version: "0.1.0",
    enrolled_at: Date.UTC(2026, 0, 1),
    last_seen: Date.now(),
    revoked_at: null,
    facts: {
      hostname: "web-01",
      os_name: "Debian GNU/Linux",
      os_version: "12",
      kernel_version: "6.1.0",
      arch: "x86_64",
      cpu_model: "Test CPU",
      cpu_cores: 4,
      memory_total_bytes: 8 * 1024 ** 3,
      boot_time_ms: Date.now() - 3 * 3_600_000,
      container: "",
    },
    ...extra,
  };
}

export function hostileAgent(): Agent {
  return makeAgent({
    id: "0190bbbb-0000-7000-8000-000000000666",
    hostname: XSS_HOST,
    project: "default",
    labels: { note: XSS_IMG, "x-html": "<b>bold</b>" },
    agent_version: "<svg onload=alert(1)>",
    facts: {
      hostname: XSS_HOST,
      os_name: XSS_IMG,
      os_version: "<i>1</i>",
      kernel_version: "<iframe src=javascript:alert(1)>",
      arch: "x86_64",
      cpu_model: "<script>alert(2)</script>",
      cpu_cores: 2,
      memory_total_bytes: 1024 ** 3,
      boot_time_ms: Date.now() - 60_000,
      container: "<style>body{display:none}</style>",
    },
    live: {
      connected_at: Date.now() - 1000,
      remote_addr: "127.0.0.1:5555",
      outbox_pending: 0,
      latest: { ts: Date.now(), values: { cpu: 5, "mem.used": 1, "mem.total": 2, "disk.used:/": 1, "disk.total:/": 2 } },
      processes: {
        ts: Date.now(),
        by_cpu: [{ pid: 1, name: XSS_HOST, cpu_percent: 50, memory_bytes: 1000 }],
        by_memory: [{ pid: 2, name: XSS_IMG, cpu_percent: 1, memory_bytes: 5000 }],
      },
    },
    spark: { ts: [1, 2], cpu: [1, 2], mem: [3, 4], disk: [5, 6] },
  });
}

/** A LiveSocket whose "network" is an array of sent messages. */
export function fakeLive() {
  const sent: unknown[] = [];
  let sock: SocketLike | null = null;
  const live = new LiveSocket({
    url: "ws://test/api/v1/ws",
    factory: () => {
      sock = {
        readyState: 1,
        onopen: null,
        onclose: null,
        onerror: null,
        onmessage: null,
        send: (d: string) => sent.push(JSON.parse(d)),
        close: () => undefined,
      };
      return sock;
    },
    setTimer: () => 0,
    clearTimer: () => undefined,
  });
  live.start();
  (sock as SocketLike | null)?.onopen?.(new Event("open"));
  const push = (msg: unknown) =>
    (sock as SocketLike | null)?.onmessage?.(new MessageEvent("message", { data: JSON.stringify(msg) }));
  return { live, sent, push };
}

export function renderWithLive(ui: ReactElement, live: LiveSocket) {
  return render(<LiveContext.Provider value={live}>{ui}</LiveContext.Provider>);
}

/** jsdom lays nothing out; give scroll containers a size so the virtual list renders rows. */
export function fakeLayout(width = 1300, height = 600) {
  Object.defineProperty(HTMLElement.prototype, "clientHeight", { configurable: true, get: () => height });
  Object.defineProperty(HTMLElement.prototype, "clientWidth", { configurable: true, get: () => width });
  return () => {
    delete (HTMLElement.prototype as unknown as Record<string, unknown>).clientHeight;
    delete (HTMLElement.prototype as unknown as Record<string, unknown>).clientWidth;
  };
}
