// One browser terminal's link to a PTY on an agent: ticket, WebSocket, auth,
// output with offset dedup, and automatic reattachment when the socket drops
// (control plane restarted, network blip). The PTY lives on the agent under
// a session id; every (re)attach asks for a new single-use ticket for that
// id and tells the server how many output bytes were already rendered, so
// nothing is lost or shown twice. Free of the DOM and xterm: tested alone.

import type { TerminalTicket } from "../api/types";
import { backoffDelay } from "../api/ws";
import {
  clampSize,
  OutputCursor,
  parseOutputFrame,
  parseServerText,
  splitInput,
  type AuthMessage,
} from "./termProtocol";

export type TermState =
  | { kind: "connecting" }
  | { kind: "attached"; sessionId: string; resumed: boolean }
  | { kind: "reconnecting"; attempt: number; retryAt: number; reason: string }
  /** `ended`: the shell exited; otherwise an error or we gave up (retry() tries again). */
  | { kind: "closed"; ended: boolean; exitCode: number | null; reason: string; status?: number };

/** The subset of the browser WebSocket used here. */
export interface BinarySocketLike {
  readyState: number;
  binaryType: string;
  onopen: ((ev: Event) => void) | null;
  onclose: ((ev: CloseEvent) => void) | null;
  onerror: ((ev: Event) => void) | null;
  onmessage: ((ev: MessageEvent) => void) | null;
  send(data: string | ArrayBufferView | ArrayBuffer): void;
  close(code?: number, reason?: string): void;
}

export interface TermConnectionOptions {
  url: string;
  /** Resume this session; null starts a new one. */
  sessionId?: string | null;
  /** Output bytes of `sessionId` already rendered (from sessionStorage after a reload). */
  initialOffset?: number;
  getTicket(sessionId: string | null): Promise<TerminalTicket>;
  size(): { cols: number; rows: number };
  onOutput(data: Uint8Array, gap: number): void;
  onState?(s: TermState): void;
  /** The session id became known or changed. */
  onSession?(sessionId: string): void;
  /** The server's stream no longer matches what was rendered: clear the screen. */
  onReset?(): void;
  factory?: (url: string) => BinarySocketLike;
  minDelayMs?: number;
  maxDelayMs?: number;
  /** Stop trying to reattach after this long without success. */
  giveUpAfterMs?: number;
  random?: () => number;
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

const OPEN = 1;

/** HTTP statuses of the ticket request that retrying will not fix. */
const PERMANENT = new Set([400, 401, 403, 404, 410, 422]);

function statusOf(e: unknown): number | undefined {
  const s = (e as { status?: unknown } | null)?.status;
  return typeof s === "number" ? s : undefined;
}

function messageOf(e: unknown): string {
  if (e instanceof Error && e.message) return e.message;
  return "Could not open the terminal.";
}

export class TermConnection {
  private readonly o: Required<Omit<TermConnectionOptions, "sessionId" | "initialOffset" | "onState" | "onSession" | "onReset">> &
    Pick<TermConnectionOptions, "onState" | "onSession" | "onReset">;
  private sessionId: string | null;
  private cursor: OutputCursor;
  private socket: BinarySocketLike | null = null;
  private timer: unknown = null;
  private attempt = 0;
  private everAttached = false;
  private resuming: boolean;
  private readonly requested: string | null;
  private reconnectSince: number | null = null;
  private stopped = false;
  private generation = 0;
  private lastSize: { cols: number; rows: number } | null = null;
  private _state: TermState = { kind: "connecting" };

  constructor(opts: TermConnectionOptions) {
    this.o = {
      factory: (url) => new WebSocket(url) as unknown as BinarySocketLike,
      minDelayMs: 250,
      maxDelayMs: 2000,
      giveUpAfterMs: 5 * 60_000,
      random: Math.random,
      now: Date.now,
      setTimer: (fn, ms) => setTimeout(fn, ms),
      clearTimer: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
      ...opts,
    };
    this.sessionId = opts.sessionId ?? null;
    this.resuming = !!this.sessionId;
    this.requested = this.sessionId;
    this.cursor = new OutputCursor(this.sessionId ? (opts.initialOffset ?? 0) : 0);
  }

  get state(): TermState {
    return this._state;
  }

  /** Output bytes rendered so far for the current session. */
  get offset(): number {
    return this.cursor.offset;
  }

  get session(): string | null {
    return this.sessionId;
  }

  start(): void {
    this.stopped = false;
    void this.connect();
  }

  /** Closes for good (page left). The PTY lives on; it can be resumed. */
  stop(): void {
    this.stopped = true;
    this.generation += 1;
    this.clearTimer();
    this.dropSocket();
  }

  /** Tries again now: after an error, after giving up, or to skip the back-off. */
  retry(): void {
    if (this._state.kind === "attached" || this._state.kind === "connecting") return;
    if (this._state.kind === "closed" && this._state.ended) return;
    this.clearTimer();
    this.attempt = 0;
    this.reconnectSince = this.o.now();
    this.stopped = false;
    // A new session that never attached: ask for a new one again.
    if (!this.everAttached && this.requested === null) this.sessionId = null;
    void this.connect();
  }

  /** Sends keystrokes or pasted text; false (and nothing sent) while not attached. */
  send(input: string | Uint8Array): boolean {
    const s = this.socket;
    if (this._state.kind !== "attached" || !s || s.readyState !== OPEN) return false;
    try {
      for (const frame of splitInput(input)) s.send(frame);
      return true;
    } catch {
      return false;
    }
  }

  /** Tells the PTY the new size (also remembered for the next attach). */
  resize(cols: number, rows: number): void {
    const size = clampSize(cols, rows);
    if (this.lastSize && this.lastSize.cols === size.cols && this.lastSize.rows === size.rows) return;
    const s = this.socket;
    if (this._state.kind !== "attached" || !s || s.readyState !== OPEN) return;
    try {
      s.send(JSON.stringify({ type: "resize", ...size }));
      this.lastSize = size;
    } catch {
      // The close that follows reattaches with the current size.
    }
  }

  private async connect(): Promise<void> {
    const gen = ++this.generation;
    this.dropSocket();
    if (this._state.kind !== "reconnecting") this.setState({ kind: "connecting" });
    let ticket: TerminalTicket;
    try {
      ticket = await this.o.getTicket(this.sessionId);
    } catch (e) {
      if (gen !== this.generation || this.stopped) return;
      const status = statusOf(e);
      const retryable = (this.everAttached || this.resuming) && !(status !== undefined && PERMANENT.has(status));
      if (retryable) this.scheduleRetry(messageOf(e));
      else this.fail(messageOf(e), status);
      return;
    }
    if (gen !== this.generation || this.stopped) return;
    if (this.sessionId !== ticket.session_id) {
      if (this.sessionId !== null) {
        // The server gave us another session: what we rendered is not its output.
        this.cursor = new OutputCursor(0);
        this.o.onReset?.();
      }
      this.sessionId = ticket.session_id;
      this.o.onSession?.(ticket.session_id);
    }
    let s: BinarySocketLike;
    try {
      s = this.o.factory(this.o.url);
      s.binaryType = "arraybuffer";
    } catch (e) {
      this.afterFailure(messageOf(e));
      return;
    }
    this.socket = s;
    let attachedHere = false;
    let serverError: string | null = null;

    s.onopen = () => {
      if (this.socket !== s) return;
      const size = clampSize(this.o.size().cols, this.o.size().rows);
      this.lastSize = size;
      const auth: AuthMessage = {
        type: "auth",
        ticket: ticket.ticket,
        session_id: ticket.session_id,
        cols: size.cols,
        rows: size.rows,
        offset: this.cursor.offset,
      };
      try {
        s.send(JSON.stringify(auth));
      } catch {
        // onclose follows.
      }
    };
    s.onmessage = (ev: MessageEvent) => {
      if (this.socket !== s) return;
      const data: unknown = ev.data;
      if (typeof data === "string") {
        const msg = parseServerText(data);
        if (!msg) return;
        if (msg.type === "attached") {
          attachedHere = true;
          this.everAttached = true;
          this.resuming = false;
          this.attempt = 0;
          this.reconnectSince = null;
          if (msg.output_offset < this.cursor.offset) {
            // The server has less output than we rendered: start over from what it has.
            this.cursor = new OutputCursor(msg.replay_from);
            this.o.onReset?.();
          }
          this.setState({ kind: "attached", sessionId: this.sessionId ?? msg.session_id, resumed: msg.resumed });
          // The window may have changed size while we were away.
          const now = clampSize(this.o.size().cols, this.o.size().rows);
          if (this.lastSize && (now.cols !== this.lastSize.cols || now.rows !== this.lastSize.rows)) {
            this.resize(now.cols, now.rows);
          }
        } else if (msg.type === "closed") {
          this.setState({ kind: "closed", ended: true, exitCode: msg.exit_code, reason: msg.reason });
          this.stopped = true;
          this.generation += 1;
          this.dropSocket();
        } else {
          serverError = msg.message;
        }
        return;
      }
      if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
        const frame = parseOutputFrame(data as ArrayBuffer);
        if (!frame) return;
        const { data: bytes, gap } = this.cursor.accept(frame);
        if (bytes.byteLength > 0 || gap > 0) this.o.onOutput(bytes, gap);
      }
    };
    s.onerror = () => {
      // A close event follows.
    };
    s.onclose = () => {
      if (this.socket !== s) return;
      this.socket = null;
      if (this.stopped) return;
      if (attachedHere) {
        this.attempt = 0;
        this.reconnectSince = this.o.now();
        this.scheduleRetry(serverError ?? "The connection was lost.");
      } else {
        this.afterFailure(serverError ?? "The terminal connection was refused.");
      }
    };
  }

  private afterFailure(reason: string): void {
    if (this.everAttached || this.resuming) this.scheduleRetry(reason);
    else this.fail(reason);
  }

  private scheduleRetry(reason: string): void {
    const now = this.o.now();
    if (this.reconnectSince === null) this.reconnectSince = now;
    if (now - this.reconnectSince > this.o.giveUpAfterMs) {
      this.fail(`Could not reconnect: ${reason}`);
      return;
    }
    const delay = backoffDelay(this.attempt, this.o.minDelayMs, this.o.maxDelayMs, this.o.random);
    this.attempt += 1;
    this.setState({ kind: "reconnecting", attempt: this.attempt, retryAt: now + delay, reason });
    this.clearTimer();
    this.timer = this.o.setTimer(() => {
      this.timer = null;
      if (!this.stopped) void this.connect();
    }, delay);
  }

  private fail(reason: string, status?: number): void {
    this.clearTimer();
    this.dropSocket();
    this.setState({ kind: "closed", ended: false, exitCode: null, reason, status });
  }

  private dropSocket(): void {
    const s = this.socket;
    this.socket = null;
    if (!s) return;
    s.onopen = s.onclose = s.onerror = s.onmessage = null;
    try {
      s.close(1000, "bye");
    } catch {
      // Closing a socket that never opened may throw.
    }
  }

  private clearTimer(): void {
    if (this.timer !== null) {
      this.o.clearTimer(this.timer);
      this.timer = null;
    }
  }

  private setState(s: TermState): void {
    this._state = s;
    this.o.onState?.(s);
  }
}
