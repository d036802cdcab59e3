// Remote exec, the pure parts: the command line split into argv the way a
// shell would (quotes and backslashes), env lines, timeouts, and the reducer
// that folds the SSE events of one exec (and the GET snapshot) into per-host
// results with output in sequence order.

import type { ExecChunk, ExecDetail, ExecEvent, ExecResultFields, ExecRunState } from "../api/types";

// --- argv -----------------------------------------------------------------------

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * Splits a command line into arguments like a POSIX shell, without any
 * expansion: blanks separate words; '…' keeps everything literally; "…"
 * keeps everything but lets \ escape " \ $ ` and newline; a \ outside quotes
 * takes the next character literally. `a''b` is one word, `''` an empty one.
 */
export function splitArgv(line: string): Parsed<string[]> {
  const out: string[] = [];
  let word = "";
  let inWord = false;
  let i = 0;
  const n = line.length;
  while (i < n) {
    const c = line[i] as string;
    if (c === " " || c === "\t" || c === "\n" || c === "\r") {
      if (inWord) out.push(word);
      word = "";
      inWord = false;
      i++;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) return { ok: false, error: "A single quote (') is not closed." };
      word += line.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      inWord = true;
      i++;
      let closed = false;
      while (i < n) {
        const d = line[i] as string;
        if (d === '"') {
          closed = true;
          i++;
          break;
        }
        if (d === "\\" && i + 1 < n) {
          const e = line[i + 1] as string;
          if (e === "\n") {
            i += 2;
            continue;
          }
          if (e === '"' || e === "\\" || e === "$" || e === "`") {
            word += e;
            i += 2;
            continue;
          }
        }
        word += d;
        i++;
      }
      if (!closed) return { ok: false, error: 'A double quote (") is not closed.' };
    } else if (c === "\\") {
      inWord = true;
      if (i + 1 < n) {
        const e = line[i + 1] as string;
        if (e !== "\n") word += e;
        i += 2;
      } else {
        word += "\\";
        i++;
      }
    } else {
      word += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) out.push(word);
  return { ok: true, value: out };
}

/** argv as one line a shell would split back into the same words (for display). */
export function quoteArgv(argv: readonly string[]): string {
  return argv.map((a) => (a !== "" && /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" ");
}

// --- env, timeout, concurrency --------------------------------------------------------

const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `KEY=value` lines (blank lines and # comments ignored) as a map. */
export function parseEnv(text: string): Parsed<Record<string, string>> {
  const env: Record<string, string> = {};
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] as string).replace(/\r$/, "");
    if (!line.trim() || line.trim().startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq < 0) return { ok: false, error: `Environment line ${i + 1} is not of the form NAME=value.` };
    const key = line.slice(0, eq).trim();
    if (!ENV_KEY.test(key)) {
      return { ok: false, error: `"${key}" (line ${i + 1}) is not a valid variable name: use letters, digits and _, not starting with a digit.` };
    }
    if (line.includes("\u0000")) return { ok: false, error: `Environment line ${i + 1} contains a NUL character.` };
    env[key] = line.slice(eq + 1);
  }
  return { ok: true, value: env };
}

/** `30s`, `5m`, `1h30m`, `500ms`; a bare number means seconds. Empty → undefined (the server's default). */
export function parseTimeout(text: string): Parsed<string | undefined> {
  const t = text.trim().replace(/\s+/g, "");
  if (!t) return { ok: true, value: undefined };
  if (/^\d+$/.test(t)) return Number(t) > 0 ? { ok: true, value: `${t}s` } : { ok: false, error: "The timeout must be more than zero." };
  if (/^(\d+(ms|s|m|h))+$/.test(t) && /[1-9]/.test(t)) return { ok: true, value: t };
  return { ok: false, error: `"${text.trim()}" is not a duration: use e.g. 30s, 5m or 1h30m.` };
}

/** Empty → undefined; otherwise a whole number from 1 to 10000. */
export function parseConcurrency(text: string): Parsed<number | undefined> {
  const t = text.trim();
  if (!t) return { ok: true, value: undefined };
  const n = Number(t);
  if (!Number.isInteger(n) || n < 1 || n > 10_000) return { ok: false, error: "Concurrency must be a whole number from 1 to 10000." };
  return { ok: true, value: n };
}

// --- results reducer ----------------------------------------------------------------------

/** Output kept per host in the browser; the server caps what it stores too. */
export const MAX_VIEW_CHARS = 1_000_000;

export interface RunView {
  agent_id: string;
  hostname: string;
  state: ExecRunState;
  /** Output chunks sorted by seq, without duplicates. */
  chunks: ExecChunk[];
  chars: number;
  /** Output beyond MAX_VIEW_CHARS was not kept in the page. */
  clipped: boolean;
  result: ExecResultFields | null;
}

export interface ExecView {
  runs: Record<string, RunView>;
  /** Agent ids in the order they first appeared. */
  order: string[];
  /** The stream said `done`. */
  done: boolean;
}

export const EMPTY_EXEC: ExecView = { runs: {}, order: [], done: false };

export type ExecAction = ExecEvent | { type: "snapshot"; detail: ExecDetail };

const STATE_RANK: Record<ExecRunState, number> = { pending: 0, running: 1, done: 2, offline: 2, failed: 2 };

export function isFinalState(s: ExecRunState): boolean {
  return STATE_RANK[s] === 2;
}

function knownState(s: unknown): s is ExecRunState {
  return typeof s === "string" && s in STATE_RANK;
}

function newRun(agent_id: string): RunView {
  return { agent_id, hostname: "", state: "pending", chunks: [], chars: 0, clipped: false, result: null };
}

function normalizeResult(r: Partial<ExecResultFields>): ExecResultFields {
  return {
    exit_code: typeof r.exit_code === "number" ? r.exit_code : null,
    signal: typeof r.signal === "number" || (typeof r.signal === "string" && r.signal) ? r.signal : null,
    duration_ms: typeof r.duration_ms === "number" ? r.duration_ms : null,
    timed_out: r.timed_out === true,
    cancelled: r.cancelled === true,
    truncated: r.truncated === true,
    error: typeof r.error === "string" && r.error ? r.error : null,
  };
}

/** Inserts a chunk by seq (mutates run, which must be a private copy). */
function addChunk(run: RunView, c: ExecChunk): void {
  if (typeof c.seq !== "number" || typeof c.data !== "string") return;
  const chunks = run.chunks;
  const last = chunks[chunks.length - 1];
  let at = chunks.length;
  if (last && c.seq <= last.seq) {
    // Out of order or a duplicate (snapshot and stream overlap): find the place.
    let lo = 0;
    let hi = chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((chunks[mid] as ExecChunk).seq <= c.seq) lo = mid + 1;
      else hi = mid;
    }
    at = lo;
    for (let j = at - 1; j >= 0 && (chunks[j] as ExecChunk).seq === c.seq; j--) {
      if ((chunks[j] as ExecChunk).stream === c.stream) return;
    }
  }
  if (run.chars + c.data.length > MAX_VIEW_CHARS) {
    run.clipped = true;
    return;
  }
  chunks.splice(at, 0, { seq: c.seq, stream: c.stream === "stderr" ? "stderr" : "stdout", data: c.data });
  run.chars += c.data.length;
}

/** Folds a batch of events into the view, copying only the runs they touch. */
export function reduceExec(view: ExecView, actions: readonly ExecAction[]): ExecView {
  if (actions.length === 0) return view;
  let runs = view.runs;
  let order = view.order;
  let done = view.done;
  const copied = new Set<string>();
  const edit = (id: string): RunView => {
    if (runs === view.runs) runs = { ...view.runs };
    const existing = runs[id];
    if (!existing) {
      if (order === view.order) order = [...view.order];
      order.push(id);
      const r = newRun(id);
      runs[id] = r;
      copied.add(id);
      return r;
    }
    if (copied.has(id)) return existing;
    const r = { ...existing, chunks: [...existing.chunks] };
    runs[id] = r;
    copied.add(id);
    return r;
  };
  const setState = (r: RunView, s: ExecRunState) => {
    if (STATE_RANK[s] >= STATE_RANK[r.state]) r.state = s;
  };

  for (const a of actions) {
    switch (a.type) {
      case "run": {
        if (typeof a.agent_id !== "string") break;
        const r = edit(a.agent_id);
        if (typeof a.hostname === "string" && a.hostname) r.hostname = a.hostname;
        if (knownState(a.state)) setState(r, a.state);
        break;
      }
      case "output": {
        if (typeof a.agent_id !== "string") break;
        const r = edit(a.agent_id);
        addChunk(r, a);
        if (r.state === "pending") r.state = "running";
        break;
      }
      case "result": {
        if (typeof a.agent_id !== "string") break;
        const r = edit(a.agent_id);
        r.result = normalizeResult(a);
        if (!isFinalState(r.state)) r.state = "done";
        break;
      }
      case "done":
        done = true;
        break;
      case "snapshot": {
        for (const run of a.detail.runs ?? []) {
          if (typeof run.agent_id !== "string") continue;
          const r = edit(run.agent_id);
          if (typeof run.hostname === "string" && run.hostname) r.hostname = run.hostname;
          if (knownState(run.state)) setState(r, run.state);
          for (const c of run.output ?? []) addChunk(r, c);
          const hasResult =
            typeof run.exit_code === "number" ||
            (run.signal !== null && run.signal !== undefined) ||
            run.timed_out === true ||
            run.cancelled === true ||
            (typeof run.error === "string" && run.error !== "");
          if (!r.result && isFinalState(r.state) && (hasResult || typeof run.duration_ms === "number")) {
            r.result = normalizeResult(run);
          }
        }
        // Every run already over: nothing more will stream.
        if ((a.detail.runs ?? []).length > 0 && allFinal({ runs, order, done })) done = true;
        break;
      }
    }
  }
  return runs === view.runs && order === view.order && done === view.done ? view : { runs, order, done };
}

function allFinal(v: ExecView): boolean {
  return v.order.every((id) => {
    const r = v.runs[id];
    return !!r && isFinalState(r.state);
  });
}

export type Outcome = "ok" | "failed" | "offline" | "running";

export function runOutcome(r: RunView): Outcome {
  if (r.state === "offline") return "offline";
  if (r.state === "failed") return "failed";
  if (r.state !== "done") return "running";
  const x = r.result;
  if (!x) return "ok";
  return x.exit_code === 0 && x.signal === null && !x.timed_out && !x.cancelled && !x.error ? "ok" : "failed";
}

export interface ExecSummaryCounts {
  total: number;
  ok: number;
  failed: number;
  offline: number;
  running: number;
}

export function summarize(v: ExecView): ExecSummaryCounts {
  const s: ExecSummaryCounts = { total: v.order.length, ok: 0, failed: 0, offline: 0, running: 0 };
  for (const id of v.order) {
    const r = v.runs[id];
    if (r) s[runOutcome(r)] += 1;
  }
  return s;
}

/** Consecutive chunks of one stream joined, for rendering. */
export function outputSegments(chunks: readonly ExecChunk[]): { stream: "stdout" | "stderr"; text: string }[] {
  const out: { stream: "stdout" | "stderr"; text: string }[] = [];
  for (const c of chunks) {
    const last = out[out.length - 1];
    if (last && last.stream === c.stream) last.text += c.data;
    else out.push({ stream: c.stream, text: c.data });
  }
  return out;
}

/** Parses one SSE message into an action; null when unreadable. */
export function parseExecEvent(name: string, data: string): ExecEvent | null {
  if (name !== "run" && name !== "output" && name !== "result" && name !== "done") return null;
  let v: unknown = {};
  if (data.trim()) {
    try {
      v = JSON.parse(data);
    } catch {
      return null;
    }
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) return null;
  const o = v as Record<string, unknown>;
  if (name === "done") return { type: "done" };
  if (typeof o.agent_id !== "string") return null;
  return { ...(o as object), type: name } as ExecEvent;
}
