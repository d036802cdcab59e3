import { describe, expect, it } from "vitest";
import { backoffDelay, LiveSocket, liveUrl, type SocketLike } from "../api/ws";
import type { ServerMessage } from "../api/types";

class FakeSocket implements SocketLike {
  readyState = 0;
  sent: unknown[] = [];
  onopen: ((ev: Event) => void) | null = null;
  onclose: ((ev: CloseEvent) => void) | null = null;
  onerror: ((ev: Event) => void) | null = null;
  onmessage: ((ev: MessageEvent) => void) | null = null;
  closed = false;
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.closed = true;
  }
  open() {
    this.readyState = 1;
    this.onopen?.(new Event("open"));
  }
  drop() {
    this.readyState = 3;
    this.onclose?.(new CloseEvent("close"));
  }
  receive(data: unknown) {
    this.onmessage?.(new MessageEvent("message", { data: typeof data === "string" ? data : JSON.stringify(data) }));
  }
}

function harness() {
  const sockets: FakeSocket[] = [];
  const timers: { fn: () => void; ms: number; id: number }[] = [];
  let nextId = 1;
  const s = new LiveSocket({
    url: "ws://x/api/v1/ws",
    factory: () => {
      const f = new FakeSocket();
      sockets.push(f);
      return f;
    },
    random: () => 1,
    now: () => 1_000,
    minDelayMs: 500,
    maxDelayMs: 4000,
    setTimer: (fn, ms) => {
      const id = nextId++;
      timers.push({ fn, ms, id });
      return id;
    },
    clearTimer: (id) => {
      const i = timers.findIndex((t) => t.id === id);
      if (i >= 0) timers.splice(i, 1);
    },
  });
  const fire = () => {
    const t = timers.shift();
    if (!t) throw new Error("no timer");
    t.fn();
    return t.ms;
  };
  const last = () => sockets[sockets.length - 1] as FakeSocket;
  return { s, sockets, timers, fire, last };
}

describe("backoffDelay", () => {
  it("doubles from the minimum, caps at the maximum, and jitters down to half", () => {
    expect([0, 1, 2, 3, 4, 10].map((a) => backoffDelay(a, 500, 4000, () => 1))).toEqual([
      500, 1000, 2000, 4000, 4000, 4000,
    ]);
    expect(backoffDelay(1, 500, 4000, () => 0)).toBe(500);
  });
});

describe("liveUrl", () => {
  it("uses the page's origin and wss under https", () => {
    expect(liveUrl({ protocol: "https:", host: "cp.example:8443" })).toBe("wss://cp.example:8443/api/v1/ws");
    expect(liveUrl({ protocol: "http:", host: "127.0.0.1:8080" })).toBe("ws://127.0.0.1:8080/api/v1/ws");
  });
});

describe("LiveSocket", () => {
  it("sends the current subscription and watch once open, not before", () => {
    const { s, last } = harness();
    s.start();
    s.subscribe(["b", "a", "b"]);
    s.watch("a");
    expect(last().sent).toEqual([]);
    last().open();
    expect(last().sent).toEqual([
      { type: "subscribe", ids: ["a", "b"] },
      { type: "watch", id: "a" },
    ]);
    expect(s.state.kind).toBe("open");
  });

  it("replaces the subscription and skips repeats of the same set", () => {
    const { s, last } = harness();
    s.start();
    last().open();
    last().sent = [];
    s.subscribe(["x", "y"]);
    s.subscribe(["y", "x"]);
    s.subscribe(["z"]);
    s.unwatch();
    s.watch("z");
    s.watch("z");
    s.unwatch();
    expect(last().sent).toEqual([
      { type: "subscribe", ids: ["x", "y"] },
      { type: "subscribe", ids: ["z"] },
      { type: "watch", id: "z" },
      { type: "unwatch" },
    ]);
  });

  it("reconnects with growing back-off and says it all again after reconnecting", () => {
    const { s, sockets, fire, last } = harness();
    const states: string[] = [];
    s.onState((st) => states.push(st.kind));
    s.start();
    last().open();
    s.subscribe(["a1"]);
    s.watch("a1");
    last().drop();
    expect(s.state).toEqual({ kind: "waiting", attempt: 1, retryAt: 1_500 });
    expect(fire()).toBe(500);
    last().drop(); // failed to connect
    expect(fire()).toBe(1000);
    last().drop();
    expect(fire()).toBe(2000);
    last().open();
    expect(sockets).toHaveLength(4);
    expect(last().sent).toEqual([
      { type: "subscribe", ids: ["a1"] },
      { type: "watch", id: "a1" },
    ]);
    // A successful open resets the back-off.
    last().drop();
    expect(fire()).toBe(500);
    expect(states).toContain("waiting");
  });

  it("does not reconnect after stop, and ignores a late close", () => {
    const { s, timers, last } = harness();
    s.start();
    const sock = last();
    sock.open();
    s.stop();
    expect(sock.closed).toBe(true);
    sock.drop();
    expect(timers).toHaveLength(0);
    expect(s.state.kind).toBe("stopped");
  });

  it("retryNow skips the remaining wait", () => {
    const { s, sockets, timers, last } = harness();
    s.start();
    last().drop();
    expect(timers).toHaveLength(1);
    s.retryNow();
    expect(timers).toHaveLength(0);
    expect(sockets).toHaveLength(2);
    expect(s.state.kind).toBe("connecting");
  });

  it("delivers well-formed messages and drops junk", () => {
    const { s, last } = harness();
    const got: ServerMessage[] = [];
    s.onMessage((m) => got.push(m));
    s.start();
    last().open();
    last().receive({ type: "counts", online: 1, offline: 2, revoked: 0 });
    last().receive("not json");
    last().receive({ nope: true });
    last().receive(42);
    expect(got).toEqual([{ type: "counts", online: 1, offline: 2, revoked: 0 }]);
  });
});
