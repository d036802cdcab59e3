// A tiny percentage sparkline (SVG, no library) with its latest value.
// Cheap enough for every visible row of the fleet list.

import { formatPercent } from "../lib/format";

const W = 50;
const H = 18;

export function sparkPath(values: readonly number[], width = W, height = H): string {
  const pts = values.filter((v) => Number.isFinite(v));
  if (pts.length === 0) return "";
  if (pts.length === 1) {
    const y = yOf(pts[0] as number, height);
    return `M0 ${y} L${width} ${y}`;
  }
  const dx = width / (pts.length - 1);
  return pts.map((v, i) => `${i === 0 ? "M" : "L"}${(i * dx).toFixed(1)} ${yOf(v, height)}`).join(" ");
}

function yOf(v: number, height: number): string {
  const c = Math.min(100, Math.max(0, v));
  return (height - 1 - (c / 100) * (height - 2)).toFixed(1);
}

export function Sparkline({
  values,
  label,
  kind,
}: {
  values: readonly number[];
  label: string;
  kind: "cpu" | "mem" | "disk";
}) {
  const latest = values.length > 0 ? values[values.length - 1] : undefined;
  const text = formatPercent(latest);
  const level = latest === undefined ? "" : latest >= 90 ? " spark-hot" : latest >= 75 ? " spark-warm" : "";
  return (
    <span className={`spark spark-${kind}${level}`} aria-label={`${label} ${text}`} data-testid={`spark-${kind}`}>
      <svg width={W} height={H} viewBox={`0 0 ${W} ${H}`} aria-hidden="true" focusable="false">
        <path d={sparkPath(values)} />
      </svg>
      <span className="spark-value" aria-hidden="true">
        {text}
      </span>
    </span>
  );
}
