// Formatting of numbers, sizes, durations and times for display. Times are
// shown in the viewer's own time zone (Intl picks it up from the browser);
// the optional `timeZone` arguments exist so tests can pin one.

const DASH = "—";

const IEC = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

function finite(n: number | null | undefined): n is number {
  return typeof n === "number" && Number.isFinite(n);
}

/** Byte counts in binary units: `0 B`, `512 B`, `1.5 KiB`, `15.6 GiB`. */
export function formatBytes(n: number | null | undefined): string {
  if (!finite(n)) return DASH;
  const sign = n < 0 ? "-" : "";
  let v = Math.abs(n);
  let i = 0;
  while (v >= 1024 && i < IEC.length - 1) {
    v /= 1024;
    i += 1;
  }
  if (i === 0) return `${sign}${Math.round(v)} B`;
  const digits = v < 10 ? 1 : 0;
  // 1023.96 KiB would print as "1024 KiB": carry to the next unit instead.
  if (Number(v.toFixed(digits)) >= 1024 && i < IEC.length - 1) {
    return `${sign}1.0 ${IEC[i + 1]}`;
  }
  return `${sign}${v.toFixed(digits)} ${IEC[i]}`;
}

/** Byte rates: `1.2 MiB/s`. */
export function formatRate(bytesPerSecond: number | null | undefined): string {
  if (!finite(bytesPerSecond)) return DASH;
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** Percentages: one decimal below 10 %, none above; clamps tiny negatives. */
export function formatPercent(p: number | null | undefined): string {
  if (!finite(p)) return DASH;
  const v = Math.abs(p) < 0.05 ? 0 : p;
  return Math.abs(v) < 10 ? `${v.toFixed(1)}%` : `${Math.round(v)}%`;
}

/** Durations in seconds, the two largest units: `3d 4h`, `5h 12m`, `12m`, `45s`. */
export function formatUptime(seconds: number | null | undefined): string {
  if (!finite(seconds) || seconds < 0) return DASH;
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return h > 0 ? `${d}d ${h}h` : `${d}d`;
  if (h > 0) return m > 0 ? `${h}h ${m}m` : `${h}h`;
  if (m > 0) return `${m}m`;
  return `${s}s`;
}

/** Whole numbers with the viewer's grouping: `10,000`. */
export function formatCount(n: number | null | undefined): string {
  if (!finite(n)) return DASH;
  return new Intl.NumberFormat().format(n);
}

export interface TimeOptions {
  timeZone?: string;
  locale?: string;
}

/** Date and time, e.g. `12 Mar 2026, 14:05:09`, in the viewer's zone. */
export function formatDateTime(ms: number | null | undefined, opts: TimeOptions = {}): string {
  if (!finite(ms) || ms <= 0) return DASH;
  return new Intl.DateTimeFormat(opts.locale, {
    dateStyle: "medium",
    timeStyle: "medium",
    timeZone: opts.timeZone,
  }).format(new Date(ms));
}

/** Time of day only, e.g. `14:05:09`. */
export function formatTime(ms: number | null | undefined, opts: TimeOptions = {}): string {
  if (!finite(ms) || ms <= 0) return DASH;
  return new Intl.DateTimeFormat(opts.locale, {
    timeStyle: "medium",
    timeZone: opts.timeZone,
  }).format(new Date(ms));
}

/** `5 minutes ago`, `in 2 hours`, `now` (`narrow`: `5m ago`-style, for tight columns). */
export function formatRelative(
  ms: number | null | undefined,
  now: number = Date.now(),
  locale?: string,
  style: "long" | "narrow" = "long",
): string {
  if (!finite(ms) || ms <= 0) return DASH;
  const diff = (ms - now) / 1000;
  const abs = Math.abs(diff);
  const rtf = new Intl.RelativeTimeFormat(locale, { numeric: "auto", style });
  if (abs < 10) return rtf.format(0, "second");
  if (abs < 60) return rtf.format(Math.round(diff), "second");
  if (abs < 3600) return rtf.format(Math.round(diff / 60), "minute");
  if (abs < 86_400) return rtf.format(Math.round(diff / 3600), "hour");
  return rtf.format(Math.round(diff / 86_400), "day");
}

/** The viewer's IANA time zone, e.g. `Europe/Paris`. */
export function viewerTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

/** Operating system line for a host: `Ubuntu 24.04`, or `—`. */
export function formatOs(name: string | undefined, version: string | undefined): string {
  const s = [name, version].filter((x) => x && x.trim()).join(" ");
  return s || DASH;
}

/** Epoch milliseconds from a number (ms) or an RFC 3339 string; null when unreadable. */
export function toMs(v: number | string | null | undefined): number | null {
  if (typeof v === "number") return Number.isFinite(v) && v > 0 ? v : null;
  if (typeof v === "string" && v) {
    const n = Date.parse(v);
    return Number.isFinite(n) ? n : null;
  }
  return null;
}

/** Short durations from milliseconds: `350 ms`, `4.2 s`, `3m 05s`, `2h 03m`. */
export function formatDuration(ms: number | null | undefined): string {
  if (!finite(ms) || ms < 0) return DASH;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h > 0) return `${h}h ${String(m).padStart(2, "0")}m`;
  return `${m}m ${String(sec).padStart(2, "0")}s`;
}

/** A media clock: `0:07`, `12:34`, `1:02:03`. */
export function formatClock(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}
