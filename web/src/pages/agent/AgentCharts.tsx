// The agent page's charts: stored history from /metrics for the chosen
// range, merged (for 15 min and 1 h) with the 1 s points the WebSocket
// streams while this page watches the agent.

import { useEffect, useMemo, useRef, useState } from "react";
import { api, errorMessage } from "../../api/client";
import type { Agent, Point } from "../../api/types";
import { useLiveMessages } from "../../app/live";
import { reachability } from "../../app/reachability";
import { useStore } from "../../app/store";
import { ErrorBox } from "../../components/Notice";
import { TimeChart } from "../../components/TimeChart";
import { formatBytes, formatPercent, formatRate, viewerTimeZone } from "../../lib/format";
import {
  appendLive,
  chartColumns,
  chartDefs,
  discoverSeries,
  historyToPoints,
  latestValues,
  LIVE_KEEP_MS,
  mergeLive,
  RANGES,
  seriesToFetch,
  type ChartDef,
  type RangeDef,
} from "../../lib/metricsView";

const HISTORY_REFRESH_MS = 60_000;

function summaryText(def: ChartDef, values: (number | null)[], memTotal: number, latest: Record<string, number> | undefined): string {
  if (values.every((v) => v === null)) return "no data";
  if (def.id === "mem" && latest && typeof latest["mem.used"] === "number") {
    const total = latest["mem.total"] ?? memTotal;
    return `${formatPercent(values[0])} · ${formatBytes(latest["mem.used"])} of ${formatBytes(total)}`;
  }
  const fmt = def.unit === "percent" ? formatPercent : formatRate;
  return def.lines.map((l, i) => `${def.lines.length > 1 ? `${l.label}: ` : ""}${fmt(values[i])}`).join(" · ");
}

export function RangePicker({ value, onChange }: { value: RangeDef; onChange(r: RangeDef): void }) {
  return (
    <div className="segmented" role="group" aria-label="Time range">
      {RANGES.map((r) => (
        <button
          key={r.key}
          type="button"
          aria-pressed={r.key === value.key}
          data-testid={`range-${r.key}`}
          onClick={() => onChange(r)}
        >
          {r.label}
        </button>
      ))}
    </div>
  );
}

export function AgentCharts({ agent, range }: { agent: Agent; range: RangeDef }) {
  const { epoch } = useStore(reachability);
  const online = agent.status === "online";
  const [livePoints, setLivePoints] = useState<Point[]>([]);
  const latestValuesRec = livePoints.length > 0 ? livePoints[livePoints.length - 1]?.values : agent.live?.latest?.values;
  const names = discoverSeries(latestValuesRec);
  const namesKey = `${names.mounts.join("|")}#${names.ifaces.join("|")}`;
  const stableNames = useMemo(() => names, [namesKey]);
  const memTotal = agent.facts?.memory_total_bytes ?? 0;
  const defs = useMemo(() => chartDefs(stableNames, memTotal), [stableNames, memTotal]);

  useLiveMessages((m) => {
    if (m.type === "live" && m.id === agent.id && Array.isArray(m.points)) {
      setLivePoints((buf) => appendLive(buf, m.points, LIVE_KEEP_MS, Date.now()));
    }
  });

  // Stored history for the range; refreshed every minute and after outages.
  const [history, setHistory] = useState<Point[]>([]);
  const [historyError, setHistoryError] = useState<string | null>(null);
  const [historyLoading, setHistoryLoading] = useState(true);
  const [refreshTick, setRefreshTick] = useState(0);
  const lastRange = useRef(range.key);
  useEffect(() => {
    const t = setInterval(() => setRefreshTick((n) => n + 1), HISTORY_REFRESH_MS);
    return () => clearInterval(t);
  }, []);
  useEffect(() => {
    const ctl = new AbortController();
    const to = Date.now();
    const from = to - range.ms;
    if (lastRange.current !== range.key) {
      lastRange.current = range.key;
      setHistory([]);
    }
    setHistoryLoading(true);
    Promise.allSettled(
      seriesToFetch(stableNames).map((series) =>
        api.metrics(agent.id, { series, from, to, step: range.step }, ctl.signal),
      ),
    ).then((results) => {
      if (ctl.signal.aborted) return;
      const ok = results.flatMap((r) => (r.status === "fulfilled" && r.value ? [r.value] : []));
      const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (ok.length === 0 && failed) {
        setHistoryError(errorMessage(failed.reason));
      } else {
        setHistory(historyToPoints(ok));
        setHistoryError(null);
      }
      setHistoryLoading(false);
    });
    return () => ctl.abort();
  }, [agent.id, range, stableNames, epoch, refreshTick]);

  // Keep the time axis moving even when no point arrives.
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const every = online && range.live ? 1000 : 15_000;
    const t = setInterval(() => setNow(Date.now()), every);
    return () => clearInterval(t);
  }, [online, range.live]);

  const to = Math.max(now, livePoints.length > 0 ? (livePoints[livePoints.length - 1] as Point).ts : 0);
  const from = to - range.ms;
  const points = useMemo(
    () => (range.live ? mergeLive(history, livePoints, from) : history.filter((p) => p.ts >= from)),
    [history, livePoints, from, range.live],
  );

  const charts = useMemo(
    () =>
      defs.map((def) => {
        const latest = latestValues(points, def);
        return { def, cols: chartColumns(points, def), summary: summaryText(def, latest, memTotal, latestValuesRec) };
      }),
    [defs, points, memTotal, latestValuesRec],
  );

  return (
    <div className="charts-block">
      {historyError && (
        <ErrorBox
          title="Could not load stored metrics"
          message={historyError}
          onRetry={() => setRefreshTick((n) => n + 1)}
        />
      )}
      <p className="muted small" aria-live="polite">
        {historyLoading && history.length === 0
          ? "Loading metrics…"
          : `${range.live && online ? "Live at 1 s, " : ""}${range.label} window, times in ${viewerTimeZone()}`}
      </p>
      <div className="charts">
        {charts.map(({ def, cols, summary }) => (
          <TimeChart
            key={def.id}
            testId={`chart-${def.id}`}
            title={def.title}
            lines={def.lines.map((l) => l.label)}
            unit={def.unit}
            data={cols}
            xRange={[from, to]}
            summary={summary}
          />
        ))}
      </div>
      {names.ifaces.length === 0 && !online && (
        <p className="muted small">Network interfaces are known once the agent reports while online.</p>
      )}
    </div>
  );
}
