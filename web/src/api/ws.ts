// The live channel: one WebSocket to /api/v1/ws per signed-in tab. It
// remembers what the page wants (the fleet rows in view, the agent being
// watched) and says it again after every reconnect, so callers never deal
// with the socket's ups and downs. Reconnects back off exponentially with
// jitter and the current state is observable for the UI.

import type { ClientMessage, ServerMessage } from "./types";

export type SocketState =
  | { kind: "idle" }
  | { kind: "connecting"; attempt: number }
  | { kind: "open"; opens: number }
  | { kind: "waiting"; attempt: number; retryAt: number }
  | { kind: "stopped" };

/** The subset of the browser WebSocket that LiveSocket uses. */
export interface SocketLike {
  readyState: number;
  onopen: ((ev: Event) => void) | null;
  onclose: ((ev: CloseEvent) => void) | null;
  onerror: ((ev: Event) => void) | null;
  onmessage: ((ev: MessageEvent) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type SocketFactory = (url: string) => SocketLike;

export interface LiveSocketOptions {
  url: string;
  factory?: SocketFactory;
  minDelayMs?: number;
  maxDelayMs?: number;
  random?: () => number;
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

const OPEN = 1;

/** Delay before reconnect attempt `attempt` (0-based): exponential, capped, with jitter in [50 %, 100 %]. */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, random: () => number): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 20));
  return Math.round(base * (0.5 + 0.5 * random()));
}

/** ws:// or wss:// URL of the live endpoint on the page's own origin. */
export function liveUrl(loc: { protocol: string; host: string } = window.location): string {
  const scheme = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${loc.host}/api/v1/ws`;
}

function isServerMessage(v: unknown): v is ServerMessage {
  return !!v && typeof v === "object" && typeof (v as { type?: unknown }).type === "string";
}

export class LiveSocket {
  private readonly opts: Required<LiveSocketOptions>;
  private socket: SocketLike | null = null;
  private timer: unknown = null;
  private attempt = 0;
  private opens = 0;
  private _state: SocketState = { kind: "idle" };
  private subscribed: string[] = [];
  private lastSentSubscription: string | null = null;
  private watching: string | null = null;
  private readonly messageListeners = new Set<(m: ServerMessage) => void>();
  private readonly stateListeners = new Set<(s: SocketState) => void>();

  constructor(opts: LiveSocketOptions) {
    this.opts = {
      factory: (url) => new WebSocket(url) as unknown as SocketLike,
      minDelayMs: 500,
      maxDelayMs: 30_000,
      random: Math.random,
      now: Date.now,
      setTimer: (fn, ms) => setTimeout(fn, ms),
      clearTimer: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
      ...opts,
    };
  }

  get state(): SocketState {
    return this._state;
  }

  /** Ids currently asked for with `subscribe`. */
  get subscription(): readonly string[] {
    return this.subscribed;
  }

  get watched(): string | null {
    return this.watching;
  }

  start(): void {
    if (this._state.kind !== "idle" && this._state.kind !== "stopped") return;
    this.attempt = 0;
    this.connect();
  }

  /** Closes for good (sign-out, page unload). */
  stop(): void {
    this.clearTimer();
    const s = this.socket;
    this.socket = null;
    if (s) {
      s.onopen = s.onclose = s.onerror = s.onmessage = null;
      try {
        s.close(1000, "bye");
      } catch {
        // Closing a socket that never opened may throw in some browsers.
      }
    }
    this.setState({ kind: "stopped" });
  }

  /** Skips the remaining back-off and reconnects at once. */
  retryNow(): void {
    if (this._state.kind !== "waiting") return;
    this.clearTimer();
    this.connect();
  }

  /** Replaces the set of agents whose summaries and changes we want. */
  subscribe(ids: Iterable<string>): void {
    this.subscribed = [...new Set(ids)].sort();
    this.flushSubscription();
  }

  /** Asks for full-rate samples of one agent (the agent page). */
  watch(id: string): void {
    if (this.watching === id) return;
    this.watching = id;
    this.send({ type: "watch", id });
  }

  unwatch(): void {
    if (this.watching === null) return;
    this.watching = null;
    this.send({ type: "unwatch" });
  }

  onMessage(fn: (m: ServerMessage) => void): () => void {
    this.messageListeners.add(fn);
    return () => this.messageListeners.delete(fn);
  }

  onState(fn: (s: SocketState) => void): () => void {
    this.stateListeners.add(fn);
    return () => this.stateListeners.delete(fn);
  }

  private connect(): void {
    this.setState({ kind: "connecting", attempt: this.attempt });
    let s: SocketLike;
    try {
      s = this.opts.factory(this.opts.url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.socket = s;
    s.onopen = () => {
      if (this.socket !== s) return;
      this.attempt = 0;
      this.opens += 1;
      this.lastSentSubscription = null;
      this.setState({ kind: "open", opens: this.opens });
      this.flushSubscription();
      if (this.watching !== null) this.send({ type: "watch", id: this.watching });
    };
    s.onmessage = (ev: MessageEvent) => {
      if (this.socket !== s || typeof ev.data !== "string") return;
      let msg: unknown;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (!isServerMessage(msg)) return;
      for (const fn of [...this.messageListeners]) {
        try {
          fn(msg);
        } catch (e) {
          console.error("live message handler failed", e);
        }
      }
    };
    s.onerror = () => {
      // A close event always follows; reconnecting is handled there.
    };
    s.onclose = () => {
      if (this.socket !== s) return;
      this.socket = null;
      this.scheduleReconnect();
    };
  }

  private scheduleReconnect(): void {
    const delay = backoffDelay(this.attempt, this.opts.minDelayMs, this.opts.maxDelayMs, this.opts.random);
    this.attempt += 1;
    this.setState({ kind: "waiting", attempt: this.attempt, retryAt: this.opts.now() + delay });
    this.clearTimer();
    this.timer = this.opts.setTimer(() => {
      this.timer = null;
      this.connect();
    }, delay);
  }

  private flushSubscription(): void {
    const key = this.subscribed.join(",");
    if (key === this.lastSentSubscription) return;
    if (this.send({ type: "subscribe", ids: this.subscribed })) this.lastSentSubscription = key;
  }

  private send(msg: ClientMessage): boolean {
    const s = this.socket;
    if (!s || s.readyState !== OPEN) return false;
    try {
      s.send(JSON.stringify(msg));
      return true;
    } catch {
      return false;
    }
  }

  private clearTimer(): void {
    if (this.timer !== null) {
      this.opts.clearTimer(this.timer);
      this.timer = null;
    }
  }

  private setState(s: SocketState): void {
    this._state = s;
    for (const fn of [...this.stateListeners]) fn(s);
  }
}
