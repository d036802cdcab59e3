// What the agent page charts, independent of React and uPlot: the time
// ranges and their steps, which raw series to ask /metrics for, how stored
// buckets and live 1 s points become one timeline, and how that timeline
// becomes chart columns.

import type { Point, SeriesResponse } from "../api/types";

export type RangeKey = "15m" | "1h" | "24h" | "7d" | "30d";

export interface RangeDef {
  key: RangeKey;
  label: string;
  ms: number;
  /** The `step` sent to /metrics. */
  step: string;
  stepMs: number;
  /** Whether live 1 s points are merged in (short ranges only). */
  live: boolean;
}

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

export const RANGES: readonly RangeDef[] = [
  { key: "15m", label: "15 min", ms: 15 * MIN, step: "10s", stepMs: 10_000, live: true },
  { key: "1h", label: "1 h", ms: HOUR, step: "10s", stepMs: 10_000, live: true },
  { key: "24h", label: "24 h", ms: DAY, step: "5m", stepMs: 5 * MIN, live: false },
  { key: "7d", label: "7 d", ms: 7 * DAY, step: "30m", stepMs: 30 * MIN, live: false },
  { key: "30d", label: "30 d", ms: 30 * DAY, step: "2h", stepMs: 2 * HOUR, live: false },
];

export function rangeByKey(key: string | null | undefined): RangeDef {
  return RANGES.find((r) => r.key === key) ?? (RANGES[0] as RangeDef);
}

/** How many live points to keep: an hour at 1 s, plus slack. */
export const LIVE_KEEP_MS = HOUR + 5 * MIN;

export interface SeriesNames {
  mounts: string[];
  ifaces: string[];
}

const MAX_MOUNTS = 4;
const MAX_IFACES = 16;

function suffixes(values: Record<string, number>, prefix: string): string[] {
  return Object.keys(values)
    .filter((k) => k.startsWith(prefix) && k.length > prefix.length)
    .map((k) => k.slice(prefix.length));
}

/**
 * Mounts and network interfaces present in a sample. Without one (an agent
 * that has been offline since the control plane started) the root mount is
 * assumed and no interface is known.
 */
export function discoverSeries(values: Record<string, number> | null | undefined): SeriesNames {
  if (!values || Object.keys(values).length === 0) return { mounts: ["/"], ifaces: [] };
  const mounts = suffixes(values, "disk.used:").sort((a, b) => (a === "/" ? -1 : b === "/" ? 1 : a.localeCompare(b)));
  const ifaces = suffixes(values, "net.rx:")
    .filter((i) => i !== "lo")
    .sort();
  return { mounts: mounts.slice(0, MAX_MOUNTS), ifaces: ifaces.slice(0, MAX_IFACES) };
}

export type Unit = "percent" | "rate";

export type ChartId = "cpu" | "mem" | "disk" | "net" | "io";

export interface LineDef {
  label: string;
  value(v: Record<string, number>): number | null;
}

export interface ChartDef {
  id: ChartId;
  title: string;
  unit: Unit;
  lines: LineDef[];
}

function num(v: Record<string, number>, k: string): number | null {
  const x = v[k];
  return typeof x === "number" && Number.isFinite(x) ? x : null;
}

function ratio(used: number | null, total: number | null): number | null {
  if (used === null || total === null || total <= 0) return null;
  return (used / total) * 100;
}

function sum(v: Record<string, number>, keys: string[]): number | null {
  let total = 0;
  let any = false;
  for (const k of keys) {
    const x = num(v, k);
    if (x !== null) {
      total += x;
      any = true;
    }
  }
  return any ? total : null;
}

/** The five charts of the agent page. `memTotal` (from host facts) backs up a missing `mem.total`. */
export function chartDefs(names: SeriesNames, memTotal: number): ChartDef[] {
  const rx = names.ifaces.map((i) => `net.rx:${i}`);
  const tx = names.ifaces.map((i) => `net.tx:${i}`);
  return [
    { id: "cpu", title: "CPU", unit: "percent", lines: [{ label: "CPU", value: (v) => num(v, "cpu") }] },
    {
      id: "mem",
      title: "Memory",
      unit: "percent",
      lines: [{ label: "Used", value: (v) => ratio(num(v, "mem.used"), num(v, "mem.total") ?? (memTotal || null)) }],
    },
    {
      id: "disk",
      title: "Disk usage",
      unit: "percent",
      lines: names.mounts.map((m) => ({
        label: m,
        value: (v: Record<string, number>) => ratio(num(v, `disk.used:${m}`), num(v, `disk.total:${m}`)),
      })),
    },
    {
      id: "net",
      title: "Network",
      unit: "rate",
      lines: [
        { label: "Received", value: (v) => sum(v, rx) },
        { label: "Sent", value: (v) => sum(v, tx) },
      ],
    },
    {
      id: "io",
      title: "Disk I/O",
      unit: "rate",
      lines: [
        { label: "Read", value: (v) => num(v, "disk.read") },
        { label: "Write", value: (v) => num(v, "disk.write") },
      ],
    },
  ];
}

/** The raw series to read from /metrics for those charts. */
export function seriesToFetch(names: SeriesNames): string[] {
  return [
    "cpu",
    "mem.used",
    "mem.total",
    ...names.mounts.flatMap((m) => [`disk.used:${m}`, `disk.total:${m}`]),
    ...names.ifaces.flatMap((i) => [`net.rx:${i}`, `net.tx:${i}`]),
    "disk.read",
    "disk.write",
  ];
}

/** Joins per-series bucket lists into one timeline of points (bucket averages). */
export function historyToPoints(responses: Pick<SeriesResponse, "series" | "points">[]): Point[] {
  const byTs = new Map<number, Record<string, number>>();
  for (const r of responses) {
    for (const b of r.points) {
      let rec = byTs.get(b.ts);
      if (!rec) {
        rec = {};
        byTs.set(b.ts, rec);
      }
      rec[r.series] = b.avg;
    }
  }
  return [...byTs.entries()].sort((a, b) => a[0] - b[0]).map(([ts, values]) => ({ ts, values }));
}

/** History up to the first live point, then the live points, all from `from` on. */
export function mergeLive(history: readonly Point[], live: readonly Point[], from: number): Point[] {
  const liveIn = live.filter((p) => p.ts >= from);
  const cut = liveIn.length > 0 ? (liveIn[0] as Point).ts : Number.POSITIVE_INFINITY;
  return [...history.filter((p) => p.ts >= from && p.ts < cut), ...liveIn];
}

/** Appends live points in time order, drops duplicates and what is older than `keepMs`. */
export function appendLive(buf: readonly Point[], incoming: readonly Point[], keepMs: number, now: number): Point[] {
  const out = buf.slice();
  let last = out.length > 0 ? (out[out.length - 1] as Point).ts : Number.NEGATIVE_INFINITY;
  const sorted = [...incoming].sort((a, b) => a.ts - b.ts);
  for (const p of sorted) {
    if (!Number.isFinite(p.ts) || p.ts <= last || !p.values) continue;
    out.push(p);
    last = p.ts;
  }
  const cutoff = now - keepMs;
  let drop = 0;
  while (drop < out.length && (out[drop] as Point).ts < cutoff) drop++;
  return drop > 0 ? out.slice(drop) : out;
}

export type Columns = [number[], ...(number | null)[][]];

/** uPlot's aligned columns: timestamps, then one column per line. */
export function chartColumns(points: readonly Point[], def: ChartDef): Columns {
  const xs = points.map((p) => p.ts);
  const ys = def.lines.map((l) => points.map((p) => l.value(p.values)));
  return [xs, ...ys];
}

/** The latest non-null value of each line, for the chart's header. */
export function latestValues(points: readonly Point[], def: ChartDef): (number | null)[] {
  return def.lines.map((l) => {
    for (let i = points.length - 1; i >= 0; i--) {
      const v = l.value((points[i] as Point).values);
      if (v !== null) return v;
    }
    return null;
  });
}
