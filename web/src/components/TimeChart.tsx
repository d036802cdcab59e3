// A time-series chart (uPlot on a canvas). The chart is created once per
// theme and fed new columns with setData, so the 1 s live updates stay
// cheap. Its container carries `data-points` and `data-last-ts` so tests
// (and curious people) can see it move.

import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { formatDateTime, formatPercent, formatRate } from "../lib/format";
import type { Columns, Unit } from "../lib/metricsView";
import { useTheme } from "../lib/theme";

export interface TimeChartProps {
  testId: string;
  title: string;
  lines: string[];
  unit: Unit;
  data: Columns;
  xRange: [number, number];
  /** Readable latest values, used in the accessible name. */
  summary: string;
  height?: number;
}

function formatFor(unit: Unit): (v: number | null | undefined) => string {
  return unit === "percent" ? formatPercent : formatRate;
}

/** Axis ticks: whole percentages, or byte rates. */
function axisFormat(unit: Unit): (v: number) => string {
  return unit === "percent" ? (v) => `${Math.round(v)}%` : (v) => formatRate(v);
}

const DAY_MS = 86_400_000;
const hourMinute = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const monthDay = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });

/** Time ticks in the viewer's locale and zone: hours for short spans, dates beyond two days. */
export function timeTicks(splits: number[]): string[] {
  const span = splits.length > 1 ? (splits[splits.length - 1] as number) - (splits[0] as number) : 0;
  const f = span > 2 * DAY_MS ? monthDay : hourMinute;
  return splits.map((ts) => f.format(new Date(ts)));
}

function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

/** jsdom and very old browsers have no 2D canvas: render no chart there. */
function canvasWorks(): boolean {
  try {
    return !!document.createElement("canvas").getContext("2d");
  } catch {
    return false;
  }
}

export function TimeChart({ testId, title, lines, unit, data, xRange, summary, height = 150 }: TimeChartProps) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const range = useRef(xRange);
  range.current = xRange;
  const theme = useTheme();
  const linesKey = lines.join("\u0000");

  useEffect(() => {
    const el = host.current;
    if (!el || !canvasWorks()) return;
    const fmt = formatFor(unit);
    const text = cssVar("--muted", "#666");
    const grid = cssVar("--grid", "rgba(128,128,128,.2)");
    const colors = [1, 2, 3, 4, 5, 6].map((i) => cssVar(`--chart-${i}`, "#2457c5"));
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      ms: 1,
      legend: { show: true, live: true },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: true, range: () => [range.current[0], range.current[1]] },
        y:
          unit === "percent"
            ? { range: () => [0, 100] }
            : { range: (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1024] },
      },
      axes: [
        {
          stroke: text,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid, width: 1 },
          values: (_u, splits) => timeTicks(splits),
        },
        {
          stroke: text,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid, width: 1 },
          size: unit === "percent" ? 48 : 78,
          values: (_u, splits) => splits.map(axisFormat(unit)),
        },
      ],
      series: [
        { label: "Time", value: (_u: uPlot, v: number | null) => (v === null ? "—" : formatDateTime(v)) },
        ...lines.map((label, i) => ({
          label,
          stroke: colors[i % colors.length],
          width: 1.5,
          points: { show: false },
          value: (_u: uPlot, v: number | null) => fmt(v),
        })),
      ],
    };
    const u = new uPlot(opts, data as uPlot.AlignedData, el);
    plot.current = u;
    const ro =
      typeof ResizeObserver === "function"
        ? new ResizeObserver(() => {
            const w = Math.max(200, el.clientWidth);
            if (w !== u.width) u.setSize({ width: w, height });
          })
        : null;
    ro?.observe(el);
    return () => {
      ro?.disconnect();
      u.destroy();
      plot.current = null;
    };
    // Data is fed by the effect below; recreate only when the shape changes.
  }, [theme, unit, linesKey, height]);

  useEffect(() => {
    plot.current?.setData(data as uPlot.AlignedData, true);
  }, [data, xRange]);

  const xs = data[0];
  return (
    <figure className="chart" aria-label={`${title} chart`}>
      <figcaption className="chart-title">
        <span>{title}</span>
        <span className="chart-summary">{summary}</span>
      </figcaption>
      <div
        ref={host}
        className="chart-canvas"
        role="img"
        aria-label={`${title}: ${summary}`}
        data-testid={testId}
        data-points={xs.length}
        data-last-ts={xs.length > 0 ? xs[xs.length - 1] : ""}
        style={{ minHeight: height }}
      />
      {xs.length === 0 && <p className="chart-empty muted">No data in this range yet.</p>}
    </figure>
  );
}
