// Terminal recordings: an asciicast v2 parser and a small player that feeds
// a terminal-like sink on time (play, pause, speed, seek). No DOM, no xterm:
// the recording page plugs an xterm in as the sink.
//
// asciicast v2: the first line is a JSON header ({"version": 2, "width",
// "height", "timestamp", "idle_time_limit"?, ...}); every other non-empty
// line is an event [time_s, code, data], time in seconds from the start.
// "o" is output, "r" a resize ("COLSxROWS"); "i" (input) and "m" (marker)
// are not played.

export interface CastHeader {
  version: 2;
  width: number;
  height: number;
  timestamp?: number;
  idle_time_limit?: number;
  title?: string;
  [key: string]: unknown;
}

export type CastEvent =
  | { t: number; kind: "o"; data: string }
  | { t: number; kind: "r"; cols: number; rows: number };

export interface Cast {
  header: CastHeader;
  /** Events in play order; `t` in milliseconds from the start (idle time already capped). */
  events: CastEvent[];
  /** Milliseconds: the time of the last event. */
  duration: number;
  /** Lines that could not be read (a recording cut short by its size limit ends in one). */
  skipped: number;
}

export class CastError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CastError";
  }
}

export function parseResize(data: string): { cols: number; rows: number } | null {
  const m = /^\s*(\d{1,5})\s*x\s*(\d{1,5})\s*$/.exec(data);
  if (!m) return null;
  const cols = Number(m[1]);
  const rows = Number(m[2]);
  if (cols < 1 || rows < 1) return null;
  return { cols: Math.min(cols, 1000), rows: Math.min(rows, 1000) };
}

export function parseAsciicast(text: string): Cast {
  const lines = text.split("\n");
  let i = 0;
  while (i < lines.length && (lines[i] as string).trim() === "") i++;
  if (i >= lines.length) throw new CastError("The recording is empty.");
  let raw: unknown;
  try {
    raw = JSON.parse(lines[i] as string);
  } catch {
    throw new CastError("The recording does not start with an asciicast header.");
  }
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) {
    throw new CastError("The recording does not start with an asciicast header.");
  }
  const h = raw as Record<string, unknown>;
  if (h.version !== 2) throw new CastError(`Unsupported asciicast version ${String(h.version)} (only version 2 is played).`);
  const width = typeof h.width === "number" && h.width >= 1 ? Math.min(1000, Math.floor(h.width)) : 80;
  const height = typeof h.height === "number" && h.height >= 1 ? Math.min(1000, Math.floor(h.height)) : 24;
  const header: CastHeader = { ...h, version: 2, width, height };
  const idleLimitMs =
    typeof h.idle_time_limit === "number" && h.idle_time_limit > 0 ? h.idle_time_limit * 1000 : Number.POSITIVE_INFINITY;

  const events: CastEvent[] = [];
  let skipped = 0;
  let lastRaw = 0;
  let lastT = 0;
  for (i += 1; i < lines.length; i++) {
    const line = (lines[i] as string).trim();
    if (!line) continue;
    let ev: unknown;
    try {
      ev = JSON.parse(line);
    } catch {
      skipped++;
      continue;
    }
    if (!Array.isArray(ev) || ev.length < 3 || typeof ev[0] !== "number" || !Number.isFinite(ev[0])) {
      skipped++;
      continue;
    }
    const [time, code, data] = ev as [number, unknown, unknown];
    if (typeof code !== "string" || typeof data !== "string") {
      skipped++;
      continue;
    }
    // Times never go backwards; long pauses are shortened to idle_time_limit.
    const rawMs = Math.max(lastRaw, time * 1000);
    const t = lastT + Math.min(rawMs - lastRaw, idleLimitMs);
    lastRaw = rawMs;
    lastT = t;
    if (code === "o") {
      events.push({ t, kind: "o", data });
    } else if (code === "r") {
      const size = parseResize(data);
      if (size) events.push({ t, kind: "r", ...size });
      else skipped++;
    }
  }
  const duration = events.length > 0 ? (events[events.length - 1] as CastEvent).t : 0;
  return { header, events, duration, skipped };
}

/** How many events happen at or before `ms` (binary search). */
export function eventIndexAt(events: readonly CastEvent[], ms: number): number {
  let lo = 0;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((events[mid] as CastEvent).t <= ms) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Recording time that advances with the wall clock times a speed while playing. */
export class PlaybackClock {
  private base = 0;
  private anchor: number | null = null;
  private _speed = 1;

  constructor(
    readonly duration: number,
    private readonly now: () => number,
  ) {}

  get playing(): boolean {
    return this.anchor !== null;
  }

  get speed(): number {
    return this._speed;
  }

  position(): number {
    if (this.anchor === null) return this.base;
    return Math.min(this.duration, this.base + (this.now() - this.anchor) * this._speed);
  }

  get ended(): boolean {
    return this.position() >= this.duration;
  }

  play(): void {
    if (this.playing) return;
    if (this.base >= this.duration) this.base = 0;
    this.anchor = this.now();
  }

  pause(): void {
    this.base = this.position();
    this.anchor = null;
  }

  setSpeed(speed: number): void {
    if (!(speed > 0)) return;
    this.base = this.position();
    if (this.anchor !== null) this.anchor = this.now();
    this._speed = speed;
  }

  seek(ms: number): void {
    this.base = Math.max(0, Math.min(this.duration, ms));
    if (this.anchor !== null) this.anchor = this.now();
  }

  /** Wall-clock milliseconds until recording time `t` at the current speed (0 if reached). */
  wallDelayUntil(t: number): number {
    return Math.max(0, (t - this.position()) / this._speed);
  }
}

/** Where the player draws: an xterm in the app, a recorder in tests. */
export interface CastSink {
  write(data: string): void;
  resize(cols: number, rows: number): void;
  reset(): void;
}

export interface PlayerOptions {
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (h: unknown) => void;
  /** Called when play state, speed or position changed (at most every `uiIntervalMs` while playing). */
  onChange?: () => void;
  uiIntervalMs?: number;
}

export const SPEEDS = [1, 2, 4] as const;

export class CastPlayer {
  readonly clock: PlaybackClock;
  /** Events already written to the sink. */
  private applied = 0;
  private timer: unknown = null;
  private readonly o: Required<Omit<PlayerOptions, "onChange">> & Pick<PlayerOptions, "onChange">;

  constructor(
    readonly cast: Cast,
    private readonly sink: CastSink,
    opts: PlayerOptions = {},
  ) {
    this.o = {
      now: () => performance.now(),
      setTimer: (fn, ms) => setTimeout(fn, ms),
      clearTimer: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
      uiIntervalMs: 200,
      ...opts,
    };
    this.clock = new PlaybackClock(cast.duration, this.o.now);
    this.sink.resize(cast.header.width, cast.header.height);
  }

  get playing(): boolean {
    return this.clock.playing;
  }

  get position(): number {
    return this.clock.position();
  }

  get appliedEvents(): number {
    return this.applied;
  }

  play(): void {
    if (this.clock.playing) return;
    if (this.clock.ended) this.rewind();
    this.clock.play();
    this.tick();
  }

  pause(): void {
    this.clock.pause();
    this.clearTimer();
    this.apply(this.clock.position());
    this.o.onChange?.();
  }

  toggle(): void {
    if (this.clock.playing) this.pause();
    else this.play();
  }

  setSpeed(speed: number): void {
    this.clock.setSpeed(speed);
    if (this.clock.playing) this.tick();
    else this.o.onChange?.();
  }

  /** Jumps to `ms`: forward by writing what lies between, backward by replaying from the start. */
  seek(ms: number): void {
    const target = Math.max(0, Math.min(this.cast.duration, ms));
    if (eventIndexAt(this.cast.events, target) < this.applied) this.rewind();
    this.clock.seek(target);
    this.apply(target);
    if (this.clock.playing) this.tick();
    else this.o.onChange?.();
  }

  /** Stops timers (the page went away). */
  dispose(): void {
    this.clock.pause();
    this.clearTimer();
  }

  private rewind(): void {
    this.sink.reset();
    this.sink.resize(this.cast.header.width, this.cast.header.height);
    this.applied = 0;
  }

  /** Writes every event up to `ms`, output of consecutive events in one write. */
  private apply(ms: number): void {
    const end = eventIndexAt(this.cast.events, ms);
    let pending = "";
    for (let i = this.applied; i < end; i++) {
      const ev = this.cast.events[i] as CastEvent;
      if (ev.kind === "o") {
        pending += ev.data;
      } else {
        if (pending) this.sink.write(pending);
        pending = "";
        this.sink.resize(ev.cols, ev.rows);
      }
    }
    if (pending) this.sink.write(pending);
    this.applied = Math.max(this.applied, end);
  }

  private tick(): void {
    this.clearTimer();
    const pos = this.clock.position();
    this.apply(pos);
    if (this.clock.ended) {
      this.clock.pause();
      this.o.onChange?.();
      return;
    }
    this.o.onChange?.();
    const next = this.cast.events[this.applied];
    const untilNext = next ? this.clock.wallDelayUntil(next.t) : this.clock.wallDelayUntil(this.cast.duration);
    const delay = Math.max(0, Math.min(untilNext, this.o.uiIntervalMs));
    this.timer = this.o.setTimer(() => {
      this.timer = null;
      if (this.clock.playing) this.tick();
    }, delay);
  }

  private clearTimer(): void {
    if (this.timer !== null) {
      this.o.clearTimer(this.timer);
      this.timer = null;
    }
  }
}
