// The terminal WebSocket's wire format (/api/v1/agents/{id}/terminal), kept
// free of the DOM and of xterm so it can be tested on its own.
//
// Server → browser: text JSON control messages (`attached`, `closed`,
// `error`) and binary output frames: an 8-byte big-endian absolute byte
// offset, then raw PTY bytes. After a reattach the server may resend bytes
// the browser already has, so output goes through an `OutputCursor` that
// drops what was already rendered and advances the offset.
//
// Browser → server: binary frames of keystroke / paste bytes (at most
// 64 KiB each) and text JSON `auth` and `resize` messages.

export const FRAME_HEADER_BYTES = 8;
export const MAX_INPUT_FRAME = 64 * 1024;

export interface OutputFrame {
  /** Absolute offset of data[0] in the session's output stream. */
  offset: number;
  data: Uint8Array;
}

function asBytes(buf: ArrayBuffer | ArrayBufferView): Uint8Array {
  if (buf instanceof Uint8Array) return buf;
  if (ArrayBuffer.isView(buf)) return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  return new Uint8Array(buf);
}

/** Splits a binary frame into offset and data; null when it is too short or the offset is not a safe integer. */
export function parseOutputFrame(buf: ArrayBuffer | ArrayBufferView): OutputFrame | null {
  const bytes = asBytes(buf);
  if (bytes.byteLength < FRAME_HEADER_BYTES) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, FRAME_HEADER_BYTES);
  const big = view.getBigUint64(0, false);
  if (big > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return { offset: Number(big), data: bytes.subarray(FRAME_HEADER_BYTES) };
}

/** The inverse of parseOutputFrame (tests and fakes). */
export function encodeOutputFrame(offset: number, data: Uint8Array | string): Uint8Array {
  const body = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const out = new Uint8Array(FRAME_HEADER_BYTES + body.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(offset), false);
  out.set(body, FRAME_HEADER_BYTES);
  return out;
}

export interface Accepted {
  /** The bytes to render (possibly empty). */
  data: Uint8Array;
  /** Bytes between what we had and this frame that the server no longer has. */
  gap: number;
}

/** How many output bytes of one session have been rendered; drops duplicates. */
export class OutputCursor {
  offset: number;

  constructor(offset = 0) {
    this.offset = Math.max(0, Math.floor(offset));
  }

  accept(frame: OutputFrame): Accepted {
    const end = frame.offset + frame.data.byteLength;
    if (end <= this.offset) return { data: frame.data.subarray(0, 0), gap: 0 };
    let data = frame.data;
    let gap = 0;
    if (frame.offset < this.offset) {
      data = data.subarray(this.offset - frame.offset);
    } else if (frame.offset > this.offset) {
      gap = frame.offset - this.offset;
    }
    this.offset = end;
    return { data, gap };
  }
}

const encoder = new TextEncoder();

/** Input bytes as frames of at most `max` bytes (a big paste becomes several). */
export function splitInput(input: string | Uint8Array, max = MAX_INPUT_FRAME): Uint8Array[] {
  const bytes = typeof input === "string" ? encoder.encode(input) : input;
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.byteLength; i += max) out.push(bytes.subarray(i, Math.min(bytes.byteLength, i + max)));
  return out;
}

/** xterm's onBinary strings (one char per byte, e.g. mouse reports) as bytes. */
export function binaryStringToBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

export type TermServerMessage =
  | { type: "attached"; session_id: string; resumed: boolean; output_offset: number; replay_from: number }
  | { type: "closed"; exit_code: number | null; reason: string }
  | { type: "error"; message: string };

function num(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : 0;
}

/** Reads a text frame from the server; null for anything unknown or malformed. */
export function parseServerText(text: string): TermServerMessage | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (!v || typeof v !== "object") return null;
  const m = v as Record<string, unknown>;
  switch (m.type) {
    case "attached":
      return {
        type: "attached",
        session_id: typeof m.session_id === "string" ? m.session_id : "",
        resumed: m.resumed === true,
        output_offset: num(m.output_offset),
        replay_from: num(m.replay_from),
      };
    case "closed":
      return {
        type: "closed",
        exit_code: typeof m.exit_code === "number" ? m.exit_code : null,
        reason: typeof m.reason === "string" ? m.reason : "",
      };
    case "error":
      return { type: "error", message: typeof m.message === "string" && m.message ? m.message : "Terminal error." };
    default:
      return null;
  }
}

export interface AuthMessage {
  type: "auth";
  ticket: string;
  session_id: string;
  cols: number;
  rows: number;
  offset: number;
}

/** Terminal sizes the server will take: whole numbers from 1 to 1000. */
export function clampSize(cols: number, rows: number): { cols: number; rows: number } {
  const c = (n: number) => (Number.isFinite(n) ? Math.min(1000, Math.max(1, Math.floor(n))) : 80);
  return { cols: c(cols), rows: c(rows) };
}

/** The last `limit` output bytes, to repaint the screen after a page reload. */
export class TailBuffer {
  private chunks: Uint8Array[] = [];
  private size = 0;

  constructor(
    private readonly limit: number,
    initial?: Uint8Array,
  ) {
    if (initial) this.push(initial);
  }

  get length(): number {
    return this.size;
  }

  push(data: Uint8Array): void {
    if (data.byteLength === 0) return;
    // Copy: the frame's buffer is not ours to keep alive.
    const copy = data.byteLength > this.limit ? data.slice(data.byteLength - this.limit) : data.slice();
    this.chunks.push(copy);
    this.size += copy.byteLength;
    while (this.size - (this.chunks[0]?.byteLength ?? 0) >= this.limit && this.chunks.length > 1) {
      this.size -= (this.chunks.shift() as Uint8Array).byteLength;
    }
  }

  clear(): void {
    this.chunks = [];
    this.size = 0;
  }

  /** At most `limit` bytes, oldest first. */
  bytes(): Uint8Array {
    const all = new Uint8Array(this.size);
    let at = 0;
    for (const c of this.chunks) {
      all.set(c, at);
      at += c.byteLength;
    }
    return all.byteLength > this.limit ? all.subarray(all.byteLength - this.limit) : all;
  }
}

export function bytesToBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.byteLength; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

export function base64ToBytes(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

// --- What this tab has rendered, per session (sessionStorage) -----------------

export interface SessionSnapshot {
  offset: number;
  /** The last bytes rendered, ending at `offset`. */
  tail: Uint8Array;
}

const SNAPSHOT_PREFIX = "sovereign.term.";

export function loadSnapshot(sessionId: string, storage: Storage | null = safeSessionStorage()): SessionSnapshot | null {
  if (!storage) return null;
  try {
    const raw = storage.getItem(SNAPSHOT_PREFIX + sessionId);
    if (!raw) return null;
    const v = JSON.parse(raw) as { offset?: unknown; tail?: unknown };
    if (typeof v.offset !== "number" || !Number.isSafeInteger(v.offset) || v.offset < 0) return null;
    const tail = typeof v.tail === "string" ? base64ToBytes(v.tail) : new Uint8Array(0);
    if (tail.byteLength > v.offset) return { offset: v.offset, tail: tail.subarray(tail.byteLength - v.offset) };
    return { offset: v.offset, tail };
  } catch {
    return null;
  }
}

export function saveSnapshot(sessionId: string, snap: SessionSnapshot, storage: Storage | null = safeSessionStorage()): void {
  if (!storage) return;
  const value = JSON.stringify({ offset: snap.offset, tail: bytesToBase64(snap.tail) });
  try {
    storage.setItem(SNAPSHOT_PREFIX + sessionId, value);
  } catch {
    // Over quota: keep the offset at least, so a reload does not duplicate output.
    try {
      storage.setItem(SNAPSHOT_PREFIX + sessionId, JSON.stringify({ offset: snap.offset }));
    } catch {
      // Storage unavailable: a reload replays what the server still has.
    }
  }
}

export function forgetSnapshot(sessionId: string, storage: Storage | null = safeSessionStorage()): void {
  try {
    storage?.removeItem(SNAPSHOT_PREFIX + sessionId);
  } catch {
    // Nothing to do.
  }
}

function safeSessionStorage(): Storage | null {
  try {
    return typeof window !== "undefined" ? window.sessionStorage : null;
  } catch {
    return null;
  }
}

/** ws:// or wss:// URL of an agent's terminal endpoint on the page's own origin. No token goes in it. */
export function terminalUrl(agentId: string, loc: { protocol: string; host: string } = window.location): string {
  const scheme = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${loc.host}/api/v1/agents/${encodeURIComponent(agentId)}/terminal`;
}
