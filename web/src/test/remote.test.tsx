// Component tests of the remote-access pages: terminal, recordings, exec,
// audit, and their entry points on the agent page.

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { act, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { ApiError, api } from "../api/client";
import type { ExecDetail } from "../api/types";
import { markUp } from "../app/reachability";
import { encodeOutputFrame } from "../lib/termProtocol";
import { AuditPage } from "../pages/AuditPage";
import { AgentPage } from "../pages/agent/AgentPage";
import { ExecPage } from "../pages/exec/ExecPage";
import { ExecRunPage, type EventSourceLike } from "../pages/exec/ExecRunPage";
import { RecordingPage } from "../pages/terminal/RecordingPage";
import { TerminalPage } from "../pages/terminal/TerminalPage";
import { fakeLayout, fakeLive, makeAgent, renderWithLive, XSS_HOST, XSS_IMG } from "./helpers";

let restoreLayout: () => void;
beforeEach(() => {
  restoreLayout = fakeLayout();
  markUp();
});
afterEach(() => {
  restoreLayout();
  window.sessionStorage.clear();
});

// --- A WebSocket that records what the page sends ---------------------------------

class FakeWS {
  static all: FakeWS[] = [];
  readyState = 0;
  binaryType = "blob";
  onopen: ((ev: Event) => void) | null = null;
  onclose: ((ev: CloseEvent) => void) | null = null;
  onerror: ((ev: Event) => void) | null = null;
  onmessage: ((ev: MessageEvent) => void) | null = null;
  sent: unknown[] = [];
  constructor(readonly url: string) {
    FakeWS.all.push(this);
  }
  send(d: unknown) {
    this.sent.push(typeof d === "string" ? JSON.parse(d) : new TextDecoder().decode(d as Uint8Array));
  }
  close() {
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.onopen?.(new Event("open"));
  }
  text(obj: unknown) {
    this.onmessage?.({ data: JSON.stringify(obj) } as MessageEvent);
  }
  output(offset: number, s: string) {
    const f = encodeOutputFrame(offset, s);
    this.onmessage?.({ data: f.buffer } as MessageEvent);
  }
  drop() {
    this.readyState = 3;
    this.onclose?.({} as CloseEvent);
  }
}

function withFakeWebSocket() {
  const orig = globalThis.WebSocket;
  FakeWS.all = [];
  globalThis.WebSocket = FakeWS as unknown as typeof WebSocket;
  return () => {
    globalThis.WebSocket = orig;
  };
}

const screenText = (root: HTMLElement) => root.querySelector(".xterm-rows")?.textContent ?? "";

describe("terminal page", () => {
  it("opens a session, renders output, sends keys, and reattaches after a drop", async () => {
    const restore = withFakeWebSocket();
    try {
      vi.spyOn(api, "getAgent").mockResolvedValue(makeAgent({ id: "a1", hostname: "web-01" }));
      const ticket = vi
        .spyOn(api, "terminalTicket")
        .mockResolvedValueOnce({ ticket: "tk1", session_id: "sess-1", expires_in_s: 30 })
        .mockResolvedValueOnce({ ticket: "tk2", session_id: "sess-1", expires_in_s: 30 });
      window.history.replaceState(null, "", "/agents/a1/terminal");
      render(<TerminalPage agentId="a1" sessionId={null} />);
      const status = screen.getByTestId("terminal-status");
      expect(status.dataset.state).toBe("connecting");
      await waitFor(() => expect(FakeWS.all).toHaveLength(1));
      expect(ticket).toHaveBeenCalledWith("a1", undefined);
      // The address now names the session, so a reload resumes it.
      expect(window.location.pathname).toBe("/agents/a1/terminal/sess-1");
      const ws = FakeWS.all[0]!;
      expect(ws.url).toMatch(/^ws:\/\/[^/]+\/api\/v1\/agents\/a1\/terminal$/);
      act(() => ws.open());
      expect(ws.sent[0]).toMatchObject({ type: "auth", ticket: "tk1", session_id: "sess-1", offset: 0 });
      act(() => ws.text({ type: "attached", session_id: "sess-1", resumed: false, output_offset: 0, replay_from: 0 }));
      expect(screen.getByTestId("terminal-status").dataset.state).toBe("attached");
      act(() => ws.output(0, "user@web-01:~$ "));
      const host = screen.getByTestId("terminal");
      await waitFor(() => expect(screenText(host)).toContain("user@web-01:~$"));

      // Enter in xterm goes out as a binary frame.
      const textarea = host.querySelector("textarea")!;
      fireEvent.keyDown(textarea, { key: "Enter", keyCode: 13 });
      expect(ws.sent).toContain("\r");

      // The control plane goes away: "reconnecting…" over the terminal, then back.
      act(() => ws.drop());
      expect(screen.getByTestId("terminal-status").dataset.state).toBe("reconnecting");
      expect(screen.getByTestId("terminal-overlay").textContent).toMatch(/reconnecting…/);
      await waitFor(() => expect(FakeWS.all).toHaveLength(2));
      expect(ticket).toHaveBeenLastCalledWith("a1", "sess-1");
      const ws2 = FakeWS.all[1]!;
      act(() => ws2.open());
      expect(ws2.sent[0]).toMatchObject({ type: "auth", ticket: "tk2", session_id: "sess-1", offset: 15 });
      act(() => ws2.text({ type: "attached", session_id: "sess-1", resumed: true, output_offset: 15, replay_from: 0 }));
      act(() => ws2.output(0, "user@web-01:~$ ls\r\n"));
      await waitFor(() => expect(screenText(host)).toContain("user@web-01:~$ ls"));
      expect(screenText(host).match(/user@web-01/g)).toHaveLength(1);
      expect(screen.queryByTestId("terminal-overlay")).toBeNull();

      act(() => ws2.text({ type: "closed", exit_code: 0, reason: "exit" }));
      expect(screen.getByTestId("terminal-status").dataset.state).toBe("closed");
      expect(screen.getByTestId("terminal-status").textContent).toMatch(/exit code 0/);
      expect(screen.getByTestId("terminal-new-session")).toBeTruthy();
    } finally {
      restore();
    }
  });

  it("shows why a terminal cannot be opened", async () => {
    const restore = withFakeWebSocket();
    try {
      vi.spyOn(api, "getAgent").mockResolvedValue(makeAgent({ id: "a1" }));
      vi.spyOn(api, "terminalTicket").mockRejectedValue(new ApiError(409, "agent_offline", "the agent is offline"));
      render(<TerminalPage agentId="a1" sessionId={null} />);
      const err = await screen.findByTestId("error");
      expect(err.textContent).toMatch(/the agent is offline/);
      expect(screen.getByTestId("terminal-status").dataset.state).toBe("closed");
      expect(FakeWS.all).toHaveLength(0);
    } finally {
      restore();
    }
  });

  it("offers to sign in again when a recent sign-in is required", async () => {
    const restore = withFakeWebSocket();
    try {
      vi.spyOn(api, "getAgent").mockResolvedValue(makeAgent({ id: "a1" }));
      vi.spyOn(api, "terminalTicket").mockRejectedValue(new ApiError(403, "reauth_required", "sign in again to open a terminal"));
      render(<TerminalPage agentId="a1" sessionId={null} />);
      expect((await screen.findByTestId("error")).textContent).toMatch(/sign in again to open a terminal/);
      expect(screen.getByTestId("terminal-reauth")).toBeTruthy();
    } finally {
      restore();
    }
  });

  it("resumes a session after a reload from what this tab rendered", async () => {
    const restore = withFakeWebSocket();
    try {
      window.sessionStorage.setItem("sovereign.term.sess-9", JSON.stringify({ offset: 7, tail: btoa("prompt>") }));
      vi.spyOn(api, "getAgent").mockResolvedValue(makeAgent({ id: "a1" }));
      const ticket = vi.spyOn(api, "terminalTicket").mockResolvedValue({ ticket: "tk", session_id: "sess-9", expires_in_s: 30 });
      render(<TerminalPage agentId="a1" sessionId="sess-9" />);
      await waitFor(() => expect(FakeWS.all).toHaveLength(1));
      expect(ticket).toHaveBeenCalledWith("a1", "sess-9");
      act(() => FakeWS.all[0]!.open());
      expect(FakeWS.all[0]!.sent[0]).toMatchObject({ session_id: "sess-9", offset: 7 });
      await waitFor(() => expect(screenText(screen.getByTestId("terminal"))).toContain("prompt>"));
    } finally {
      restore();
    }
  });

  it("has a search box", async () => {
    const restore = withFakeWebSocket();
    try {
      vi.spyOn(api, "getAgent").mockResolvedValue(makeAgent({ id: "a1" }));
      vi.spyOn(api, "terminalTicket").mockResolvedValue({ ticket: "tk", session_id: "s", expires_in_s: 30 });
      render(<TerminalPage agentId="a1" sessionId={null} />);
      await waitFor(() => expect(FakeWS.all).toHaveLength(1));
      const ws = FakeWS.all[0]!;
      act(() => ws.open());
      act(() => ws.text({ type: "attached", session_id: "s", resumed: false, output_offset: 0, replay_from: 0 }));
      act(() => ws.output(0, "alpha beta\r\ngamma beta\r\n"));
      const search = screen.getByTestId("terminal-search");
      expect(search.getAttribute("aria-label")).toBe("Search terminal output");
      fireEvent.change(search, { target: { value: "beta" } });
      await waitFor(() => expect(screen.getByTestId("terminal-search-count").textContent).toMatch(/of 2|2\+? matches/));
      fireEvent.change(search, { target: { value: "zzz" } });
      await waitFor(() => expect(screen.getByTestId("terminal-search-count").textContent).toBe("No matches"));
    } finally {
      restore();
    }
  });
});

describe("agent page entry points", () => {
  it("has Open terminal, Run command, live sessions with Resume, and recordings", async () => {
    const a = makeAgent({ id: "a1", hostname: "web-01" });
    vi.spyOn(api, "getAgent").mockResolvedValue(a);
    vi.spyOn(api, "metrics").mockResolvedValue({ series: "cpu", step_ms: 10_000, source: "points", points: [] });
    vi.spyOn(api, "terminals").mockResolvedValue([
      { session_id: "sess-1", user: "alice", started_at: Date.now() - 600_000, last_attached_at: Date.now() - 60_000, attached: false },
    ]);
    vi.spyOn(api, "recordings").mockResolvedValue([
      { session_id: "sess-0", user: "bob", started_at: Date.now() - 86_400_000, ended_at: Date.now() - 86_000_000, duration_ms: 400_000, bytes: 123_456 },
    ]);
    const { live } = fakeLive();
    window.history.replaceState(null, "", "/agents/a1");
    renderWithLive(<AgentPage id="a1" />, live);
    const open = await screen.findByTestId("open-terminal");
    expect(open.getAttribute("href")).toBe("/agents/a1/terminal");
    expect(screen.getByTestId("run-command").getAttribute("href")).toBe("/exec?agent=a1");
    const resume = await screen.findByTestId("resume-session");
    expect(resume.getAttribute("href")).toBe("/agents/a1/terminal/sess-1");
    const rec = await screen.findByTestId("recording-row");
    expect(rec.textContent).toContain("bob");
    expect(rec.textContent).toContain("6m 40s");
    expect(within(rec).getByTestId("play-recording").getAttribute("href")).toBe("/recordings/sess-0?agent=a1");
    fireEvent.click(open);
    expect(window.location.pathname).toBe("/agents/a1/terminal");
  });

  it("disables Open terminal while the agent is offline", async () => {
    vi.spyOn(api, "getAgent").mockResolvedValue(makeAgent({ id: "a1", status: "offline", live: null }));
    vi.spyOn(api, "metrics").mockResolvedValue({ series: "cpu", step_ms: 10_000, source: "points", points: [] });
    vi.spyOn(api, "terminals").mockResolvedValue([]);
    vi.spyOn(api, "recordings").mockResolvedValue([]);
    const { live } = fakeLive();
    renderWithLive(<AgentPage id="a1" />, live);
    const open = await screen.findByTestId("open-terminal");
    expect((open as HTMLButtonElement).disabled).toBe(true);
    expect(await screen.findByText("No terminal is open on this machine.")).toBeTruthy();
    expect(await screen.findByText("No recorded sessions.")).toBeTruthy();
  });
});

describe("recording player", () => {
  const CAST = ['{"version":2,"width":80,"height":24,"timestamp":1767225600}', '[0.1,"o","$ echo hi\\r\\n"]', '[1.0,"o","hi\\r\\n"]', '[2.5,"o","$ "]'].join("\n");

  it("loads, seeks and changes speed", async () => {
    vi.spyOn(api, "recording").mockResolvedValue(CAST);
    render(<RecordingPage sessionId="sess-0" />);
    const play = await screen.findByTestId("player-play");
    await waitFor(() => expect((play as HTMLButtonElement).disabled).toBe(false));
    expect(play.getAttribute("aria-label")).toBe("Play");
    expect(screen.getByTestId("player-time").textContent).toBe("0:00 / 0:02");
    fireEvent.change(screen.getByTestId("player-seek"), { target: { value: "2500" } });
    const term = screen.getByTestId("player-terminal");
    await waitFor(() => expect(screenText(term)).toContain("hi"));
    expect(screen.getByTestId("player-time").textContent).toBe("0:02 / 0:02");
    fireEvent.click(screen.getByTestId("player-speed-4"));
    expect(screen.getByTestId("player-speed-4").getAttribute("aria-pressed")).toBe("true");
    fireEvent.click(play);
    expect(screen.getByTestId("player-play").getAttribute("aria-label")).toBe("Pause");
    await waitFor(() => expect(screen.getByTestId("player-play").dataset.playing).toBe("false"), { timeout: 2000 });
  });

  it("explains a recording it cannot read", async () => {
    vi.spyOn(api, "recording").mockResolvedValue('{"version":1}');
    render(<RecordingPage sessionId="x" />);
    expect((await screen.findByTestId("error")).textContent).toMatch(/Unsupported asciicast version 1/);
  });
});

// --- Exec -------------------------------------------------------------------------------

class FakeES implements EventSourceLike {
  readyState = 0;
  onopen: ((ev: Event) => void) | null = null;
  onerror: ((ev: Event) => void) | null = null;
  closed = false;
  private readonly listeners = new Map<string, ((ev: MessageEvent) => void)[]>();
  constructor(readonly url: string) {}
  addEventListener(type: string, fn: (ev: MessageEvent) => void) {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), fn]);
  }
  close() {
    this.closed = true;
    this.readyState = 2;
  }
  emit(type: string, data: unknown) {
    for (const fn of this.listeners.get(type) ?? []) fn({ data: JSON.stringify(data) } as MessageEvent);
  }
}

describe("exec", () => {
  it("submits the form and goes to the run", async () => {
    window.history.replaceState(null, "", "/exec?agent=a1");
    vi.spyOn(api, "getAgent").mockResolvedValue(makeAgent({ id: "a1", hostname: "web-01" }));
    vi.spyOn(api, "projects").mockResolvedValue([{ id: "prod", created_at: 1 }]);
    vi.spyOn(api, "execs").mockResolvedValue([
      { id: "e0", created_at: Date.now() - 60_000, created_by: "alice", command: "uptime", agents: 3, ok: 2, failed: 1, running: 0 },
    ]);
    const start = vi.spyOn(api, "startExec").mockResolvedValue({ id: "e1", agents: 1 });
    render(<ExecPage />);
    expect((await screen.findByTestId("exec-agent-selected")).textContent).toContain("web-01");
    expect((await screen.findByTestId("exec-history-row")).textContent).toContain("uptime");
    const user = userEvent.setup();
    await user.type(screen.getByTestId("exec-command"), `echo "hello world"`);
    await user.click(screen.getByTestId("exec-run"));
    await waitFor(() => expect(start).toHaveBeenCalledTimes(1));
    expect(start.mock.calls[0]![0]).toEqual({ target: { ids: ["a1"] }, argv: ["echo", "hello world"] });
    await waitFor(() => expect(window.location.pathname).toBe("/exec/e1"));
  });

  it("refuses an unclosed quote before calling the server", async () => {
    window.history.replaceState(null, "", "/exec");
    vi.spyOn(api, "projects").mockResolvedValue([]);
    vi.spyOn(api, "execs").mockResolvedValue([]);
    const start = vi.spyOn(api, "startExec");
    render(<ExecPage />);
    fireEvent.change(screen.getByTestId("exec-labels"), { target: { value: "env=prod" } });
    fireEvent.change(screen.getByTestId("exec-command"), { target: { value: "echo 'oops" } });
    fireEvent.submit(screen.getByTestId("exec-form"));
    expect((await screen.findByTestId("exec-error")).textContent).toMatch(/not closed/);
    expect(start).not.toHaveBeenCalled();
    fireEvent.click(screen.getByTestId("exec-mode-script"));
    expect(screen.getByTestId("exec-command").tagName).toBe("TEXTAREA");
  });

  it("shows per-host results as they stream, a summary, and cancels", async () => {
    const detail: ExecDetail = {
      id: "e1",
      spec: { target: { labels: { env: "prod" } }, argv: ["uptime"] },
      created_by: "alice",
      runs: [
        { agent_id: "a", hostname: "alpha", state: "running", output: [{ seq: 1, stream: "stdout", data: "up 1 day\n" }] },
        { agent_id: "b", hostname: "beta", state: "pending" },
        { agent_id: "c", hostname: XSS_HOST, state: "offline" },
      ],
    };
    vi.spyOn(api, "exec").mockResolvedValue(detail);
    const cancel = vi.spyOn(api, "cancelExec").mockResolvedValue(undefined);
    let es: FakeES | null = null;
    render(<ExecRunPage id="e1" openEvents={(url) => (es = new FakeES(url))} />);
    expect(es!.url).toBe("/api/v1/exec/e1/events");
    expect(await screen.findByRole("heading", { name: "uptime" })).toBeTruthy();
    await waitFor(() => expect(screen.getAllByTestId("exec-result")).toHaveLength(3));

    act(() => {
      es!.emit("output", { agent_id: "a", seq: 1, stream: "stdout", data: "up 1 day\n" });
      es!.emit("output", { agent_id: "a", seq: 2, stream: "stderr", data: XSS_IMG });
      es!.emit("run", { agent_id: "b", hostname: "beta", state: "running" });
      es!.emit("output", { agent_id: "b", seq: 1, stream: "stdout", data: "up 2 days\n" });
      es!.emit("result", { agent_id: "a", exit_code: 0, signal: null, duration_ms: 15, timed_out: false, cancelled: false, truncated: false, error: null });
    });
    const rowA = () => screen.getAllByTestId("exec-result").find((r) => r.dataset.agentId === "a")!;
    await waitFor(() => expect(rowA().dataset.state).toBe("done"));
    const outA = within(rowA()).getByTestId("exec-output");
    expect(outA.textContent).toBe(`up 1 day\n${XSS_IMG}`);
    expect(outA.querySelector(".stderr")!.textContent).toBe(XSS_IMG);
    expect(outA.querySelector("img")).toBeNull();
    expect(within(rowA()).getByTestId("exec-exit").textContent).toBe("exit 0");
    expect(screen.getByTestId("exec-summary").textContent).toMatch(/1 ok.*0 failed.*1 offline.*1 running/);

    fireEvent.click(screen.getByTestId("exec-cancel"));
    await waitFor(() => expect(cancel).toHaveBeenCalledWith("e1"));
    expect(await screen.findByText("Cancel requested")).toBeTruthy();

    act(() => {
      es!.emit("result", { agent_id: "b", exit_code: null, signal: "SIGTERM", duration_ms: 900, timed_out: false, cancelled: true, truncated: false, error: null });
      es!.emit("done", {});
    });
    await waitFor(() => expect(es!.closed).toBe(true));
    const rowB = screen.getAllByTestId("exec-result").find((r) => r.dataset.agentId === "b")!;
    expect(within(rowB).getByTestId("exec-exit").textContent).toBe("signal SIGTERM · cancelled");
    expect(screen.getByTestId("exec-summary").textContent).toMatch(/1 ok.*1 failed.*1 offline/);
    expect(screen.queryByTestId("exec-cancel")).toBeNull();
    expect(screen.getByTestId("exec-run-page").dataset.done).toBe("true");
  });
});

describe("audit", () => {
  it("pages through entries with before=", async () => {
    window.history.replaceState(null, "", "/audit");
    const audit = vi.spyOn(api, "audit").mockImplementation(async (q) =>
      q?.before
        ? { items: [{ id: 3, at: Date.now() - 3_600_000, actor: "bob", action: "auth.login", target: "bob", detail: {} }] }
        : {
            items: [
              { id: 5, at: Date.now(), actor: "alice", action: "exec.start", target: "label env=prod", detail: { command: "uptime", agents: 3 } },
              { id: 4, at: Date.now(), actor: "alice", action: "terminal.open", target: XSS_HOST, detail: { session_id: "s1", note: XSS_IMG } },
            ],
            next_before: "4",
          },
    );
    const { container } = render(<AuditPage />);
    const rows = await screen.findAllByTestId("audit-row");
    expect(rows).toHaveLength(2);
    expect(audit).toHaveBeenLastCalledWith({ limit: 100, before: null }, expect.anything());
    expect(rows[0]!.dataset.action).toBe("exec.start");
    expect(rows[0]!.textContent).toContain("command=uptime");
    expect(rows[0]!.textContent).toContain("agents=3");
    expect(rows[1]!.textContent).toContain(XSS_HOST);
    expect(container.querySelector("script, img")).toBeNull();
    expect((screen.getByTestId("audit-newer") as HTMLButtonElement).disabled).toBe(true);
    fireEvent.click(screen.getByTestId("audit-older"));
    await waitFor(() => expect(window.location.search).toBe("?before=4"));
  });
});
