import { describe, expect, it, vi } from "vitest";
import { ApiError } from "../api/client";
import type { TerminalTicket } from "../api/types";
import { TermConnection, type BinarySocketLike, type TermConnectionOptions, type TermState } from "../lib/termConnection";
import { encodeOutputFrame } from "../lib/termProtocol";

class FakeSocket implements BinarySocketLike {
  readyState = 0;
  binaryType = "blob";
  onopen: ((ev: Event) => void) | null = null;
  onclose: ((ev: CloseEvent) => void) | null = null;
  onerror: ((ev: Event) => void) | null = null;
  onmessage: ((ev: MessageEvent) => void) | null = null;
  sent: (string | Uint8Array)[] = [];
  closed = false;
  constructor(readonly url: string) {}
  send(d: string | ArrayBufferView | ArrayBuffer) {
    this.sent.push(typeof d === "string" ? d : new Uint8Array((d as Uint8Array).slice()));
  }
  close() {
    this.closed = true;
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
    this.onmessage?.({ data: f.buffer.slice(f.byteOffset, f.byteOffset + f.byteLength) } as MessageEvent);
  }
  drop() {
    this.readyState = 3;
    this.onclose?.({} as CloseEvent);
  }
  json(i: number) {
    return JSON.parse(this.sent[i] as string) as Record<string, unknown>;
  }
}

const flush = () => new Promise((r) => setTimeout(r, 0));

function setup(extra: Partial<TermConnectionOptions> = {}) {
  const sockets: FakeSocket[] = [];
  const timers: { fn: () => void; ms: number }[] = [];
  const states: TermState[] = [];
  let out = "";
  const dec = new TextDecoder();
  let clock = 1_000_000;
  let n = 0;
  const getTicket = vi.fn(
    async (sid: string | null): Promise<TerminalTicket> => ({ ticket: `t${++n}`, session_id: sid ?? "s-new", expires_in_s: 30 }),
  );
  const onSession = vi.fn();
  const onReset = vi.fn();
  const conn = new TermConnection({
    url: "ws://cp/api/v1/agents/a1/terminal",
    getTicket,
    size: () => ({ cols: 120, rows: 40 }),
    onOutput: (d) => {
      out += dec.decode(d, { stream: true });
    },
    onState: (s) => states.push(s),
    onSession,
    onReset,
    factory: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    random: () => 1,
    now: () => clock,
    setTimer: (fn, ms) => {
      const t = { fn, ms };
      timers.push(t);
      return t;
    },
    clearTimer: (h) => {
      const i = timers.indexOf(h as { fn: () => void; ms: number });
      if (i >= 0) timers.splice(i, 1);
    },
    ...extra,
  });
  return {
    conn,
    sockets,
    timers,
    states,
    getTicket,
    onSession,
    onReset,
    output: () => out,
    last: () => sockets[sockets.length - 1]!,
    advance: (ms: number) => {
      clock += ms;
    },
    fire: async () => {
      const t = timers.shift()!;
      t.fn();
      await flush();
      return t.ms;
    },
  };
}

async function attach(t: ReturnType<typeof setup>, offset = 0, sid = "s-new") {
  await flush();
  const s = t.last();
  s.open();
  s.text({ type: "attached", session_id: sid, resumed: offset > 0, output_offset: offset, replay_from: 0 });
  return s;
}

describe("TermConnection", () => {
  it("gets a ticket, authenticates with it on the socket, and streams output and input", async () => {
    const t = setup();
    t.conn.start();
    expect(t.conn.state.kind).toBe("connecting");
    await flush();
    expect(t.getTicket).toHaveBeenCalledWith(null);
    expect(t.onSession).toHaveBeenCalledWith("s-new");
    const s = t.last();
    expect(s.url).toBe("ws://cp/api/v1/agents/a1/terminal");
    expect(s.url).not.toMatch(/t1/);
    expect(s.binaryType).toBe("arraybuffer");
    s.open();
    expect(s.json(0)).toEqual({ type: "auth", ticket: "t1", session_id: "s-new", cols: 120, rows: 40, offset: 0 });
    // Nothing is sent before the server says attached.
    expect(t.conn.send("x")).toBe(false);
    s.text({ type: "attached", session_id: "s-new", resumed: false, output_offset: 0, replay_from: 0 });
    expect(t.conn.state).toEqual({ kind: "attached", sessionId: "s-new", resumed: false });
    s.output(0, "$ ");
    s.output(2, "hello\r\n");
    expect(t.output()).toBe("$ hello\r\n");
    expect(t.conn.offset).toBe(9);
    expect(t.conn.send("ls\r")).toBe(true);
    expect(new TextDecoder().decode(s.sent[1] as Uint8Array)).toBe("ls\r");
    t.conn.resize(100, 30);
    t.conn.resize(100, 30);
    expect(s.sent.filter((x) => typeof x === "string" && x.includes("resize"))).toEqual(['{"type":"resize","cols":100,"rows":30}']);
  });

  it("reattaches after the socket drops, sending its offset, and drops replayed bytes", async () => {
    const t = setup();
    t.conn.start();
    const s1 = await attach(t);
    s1.output(0, "line one\r\n");
    s1.drop();
    expect(t.conn.state.kind).toBe("reconnecting");
    // The first retry is quick.
    expect(t.timers[0]!.ms).toBeLessThanOrEqual(250);
    await t.fire();
    expect(t.getTicket).toHaveBeenLastCalledWith("s-new");
    const s2 = t.last();
    expect(s2).not.toBe(s1);
    s2.open();
    expect(s2.json(0)).toMatchObject({ type: "auth", ticket: "t2", session_id: "s-new", offset: 10 });
    s2.text({ type: "attached", session_id: "s-new", resumed: true, output_offset: 18, replay_from: 0 });
    expect(t.conn.state).toMatchObject({ kind: "attached", resumed: true });
    // The server replays from an earlier point: only the new part is rendered.
    s2.output(4, " one\r\nline two");
    expect(t.output()).toBe("line one\r\nline two");
    expect(t.conn.offset).toBe(18);
    expect(t.onReset).not.toHaveBeenCalled();
  });

  it("backs off exponentially while the control plane is down and is back at once when it is", async () => {
    const t = setup();
    t.conn.start();
    const s1 = await attach(t);
    t.getTicket.mockRejectedValue(new ApiError(0, "unreachable", "Cannot reach the control plane."));
    s1.drop();
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      delays.push(t.timers[0]!.ms);
      t.advance(t.timers[0]!.ms);
      await t.fire();
      expect(t.conn.state.kind).toBe("reconnecting");
    }
    expect(delays).toEqual([250, 500, 1000, 2000, 2000, 2000]);
    // Never more than 2 s between tries: reattached well within 10 s of the server's return.
    t.getTicket.mockImplementation(async (sid) => ({ ticket: "t-back", session_id: sid ?? "", expires_in_s: 30 }));
    expect(t.timers[0]!.ms).toBeLessThanOrEqual(2000);
    await t.fire();
    const s = t.last();
    s.open();
    s.text({ type: "attached", session_id: "s-new", resumed: true, output_offset: 0, replay_from: 0 });
    expect(t.conn.state.kind).toBe("attached");
    // A later drop starts again from the shortest delay.
    s.drop();
    expect(t.timers[0]!.ms).toBe(250);
  });

  it("treats a refused handshake during reattach (agent still offline) as a retry", async () => {
    const t = setup();
    t.conn.start();
    (await attach(t)).drop();
    t.getTicket.mockRejectedValueOnce(new ApiError(409, "conflict", "the agent is offline"));
    await t.fire();
    expect(t.conn.state).toMatchObject({ kind: "reconnecting", reason: "the agent is offline" });
    await t.fire();
    const s = t.last();
    s.open();
    s.text({ type: "error", message: "agent gone" });
    s.drop();
    expect(t.conn.state).toMatchObject({ kind: "reconnecting", reason: "agent gone" });
  });

  it("shows the ticket error at once when a new terminal cannot be opened", async () => {
    const t = setup();
    t.getTicket.mockRejectedValueOnce(new ApiError(409, "agent_offline", "the agent is offline"));
    t.conn.start();
    await flush();
    expect(t.conn.state).toEqual({ kind: "closed", ended: false, exitCode: null, reason: "the agent is offline", status: 409 });
    expect(t.timers).toHaveLength(0);
    expect(t.sockets).toHaveLength(0);
    // Retry asks again.
    t.conn.retry();
    await flush();
    expect(t.getTicket).toHaveBeenCalledTimes(2);
    expect(t.sockets).toHaveLength(1);
  });

  it("stops on permanent errors while reattaching (403 recent sign-in, 404 session gone)", async () => {
    const t = setup();
    t.conn.start();
    (await attach(t)).drop();
    t.getTicket.mockRejectedValueOnce(new ApiError(403, "reauth", "sign in again to open a terminal"));
    await t.fire();
    expect(t.conn.state).toMatchObject({ kind: "closed", ended: false, status: 403, reason: "sign in again to open a terminal" });
    expect(t.timers).toHaveLength(0);
  });

  it("ends when the shell exits and does not reconnect", async () => {
    const t = setup();
    t.conn.start();
    const s = await attach(t);
    s.text({ type: "closed", exit_code: 0, reason: "exit" });
    expect(t.conn.state).toEqual({ kind: "closed", ended: true, exitCode: 0, reason: "exit" });
    expect(s.closed).toBe(true);
    s.drop();
    expect(t.timers).toHaveLength(0);
    t.conn.retry();
    expect(t.getTicket).toHaveBeenCalledTimes(1);
  });

  it("gives up after the configured time and can be retried by hand", async () => {
    const t = setup({ giveUpAfterMs: 5000 });
    t.conn.start();
    (await attach(t)).drop();
    t.getTicket.mockRejectedValue(new ApiError(503, "down", "unavailable"));
    for (let i = 0; i < 10 && t.timers.length > 0; i++) {
      t.advance(t.timers[0]!.ms);
      await t.fire();
    }
    expect(t.conn.state).toMatchObject({ kind: "closed", ended: false });
    expect((t.conn.state as { reason: string }).reason).toMatch(/Could not reconnect/);
    t.getTicket.mockResolvedValue({ ticket: "t9", session_id: "s-new", expires_in_s: 30 });
    t.conn.retry();
    await flush();
    t.last().open();
    expect(t.last().json(0)).toMatchObject({ ticket: "t9", session_id: "s-new" });
  });

  it("resumes a session with the offset rendered before a reload", async () => {
    const t = setup({ sessionId: "s-old", initialOffset: 5000 });
    t.conn.start();
    await flush();
    expect(t.getTicket).toHaveBeenCalledWith("s-old");
    expect(t.onSession).not.toHaveBeenCalled();
    const s = t.last();
    s.open();
    expect(s.json(0)).toMatchObject({ session_id: "s-old", offset: 5000 });
  });

  it("starts over when the server has less output than we rendered", async () => {
    const t = setup({ sessionId: "s-old", initialOffset: 5000 });
    t.conn.start();
    await flush();
    const s = t.last();
    s.open();
    s.text({ type: "attached", session_id: "s-old", resumed: true, output_offset: 100, replay_from: 20 });
    expect(t.onReset).toHaveBeenCalledTimes(1);
    expect(t.conn.offset).toBe(20);
  });

  it("stop() closes the socket for good", async () => {
    const t = setup();
    t.conn.start();
    const s = await attach(t);
    t.conn.stop();
    expect(s.closed).toBe(true);
    s.drop();
    expect(t.timers).toHaveLength(0);
    expect(t.conn.send("x")).toBe(false);
  });

  it("ignores garbage frames", async () => {
    const t = setup();
    t.conn.start();
    const s = await attach(t);
    s.onmessage?.({ data: new Uint8Array([1, 2, 3]).buffer } as MessageEvent);
    s.onmessage?.({ data: "}{" } as MessageEvent);
    s.onmessage?.({ data: '{"type":"attached"' } as MessageEvent);
    expect(t.output()).toBe("");
    expect(t.conn.state.kind).toBe("attached");
  });
});
