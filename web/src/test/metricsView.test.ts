import { describe, expect, it } from "vitest";
import type { Point } from "../api/types";
import {
  appendLive,
  chartColumns,
  chartDefs,
  discoverSeries,
  historyToPoints,
  latestValues,
  mergeLive,
  rangeByKey,
  RANGES,
  seriesToFetch,
} from "../lib/metricsView";

describe("ranges", () => {
  it("read the rollups at the steps the issue asks for", () => {
    expect(RANGES.map((r) => [r.key, r.step, r.live])).toEqual([
      ["15m", "10s", true],
      ["1h", "10s", true],
      ["24h", "5m", false],
      ["7d", "30m", false],
      ["30d", "2h", false],
    ]);
    expect(rangeByKey("7d").ms).toBe(7 * 86_400_000);
    expect(rangeByKey("nonsense").key).toBe("15m");
  });
});

describe("series discovery", () => {
  it("finds mounts (root first) and interfaces (no loopback)", () => {
    const n = discoverSeries({
      "disk.used:/var": 1,
      "disk.used:/": 1,
      "net.rx:lo": 1,
      "net.rx:eth0": 1,
      "net.rx:wlan0": 1,
      cpu: 3,
    });
    expect(n).toEqual({ mounts: ["/", "/var"], ifaces: ["eth0", "wlan0"] });
    expect(discoverSeries(undefined)).toEqual({ mounts: ["/"], ifaces: [] });
    expect(seriesToFetch({ mounts: ["/"], ifaces: ["eth0"] })).toEqual([
      "cpu",
      "mem.used",
      "mem.total",
      "disk.used:/",
      "disk.total:/",
      "net.rx:eth0",
      "net.tx:eth0",
      "disk.read",
      "disk.write",
    ]);
  });
});

describe("timeline", () => {
  it("joins series buckets by timestamp", () => {
    const pts = historyToPoints([
      { series: "cpu", points: [{ ts: 20, min: 0, avg: 5, max: 9 }, { ts: 10, min: 0, avg: 1, max: 2 }] },
      { series: "mem.used", points: [{ ts: 10, min: 0, avg: 100, max: 100 }] },
    ]);
    expect(pts).toEqual([
      { ts: 10, values: { cpu: 1, "mem.used": 100 } },
      { ts: 20, values: { cpu: 5 } },
    ]);
  });

  it("uses history up to the first live point, then live points", () => {
    const h: Point[] = [0, 10, 20, 30].map((ts) => ({ ts, values: { cpu: ts } }));
    const l: Point[] = [25, 26, 27].map((ts) => ({ ts, values: { cpu: -ts } }));
    expect(mergeLive(h, l, 5).map((p) => p.ts)).toEqual([10, 20, 25, 26, 27]);
    expect(mergeLive(h, [], 5).map((p) => p.ts)).toEqual([10, 20, 30]);
  });

  it("appends live points in order, without duplicates, trimming old ones", () => {
    let buf: Point[] = [];
    buf = appendLive(buf, [{ ts: 2, values: {} }, { ts: 1, values: {} }], 100, 50);
    buf = appendLive(buf, [{ ts: 2, values: {} }, { ts: 3, values: {} }], 100, 50);
    expect(buf.map((p) => p.ts)).toEqual([1, 2, 3]);
    buf = appendLive(buf, [{ ts: 200, values: {} }], 100, 200);
    expect(buf.map((p) => p.ts)).toEqual([200]);
  });
});

describe("charts", () => {
  const defs = chartDefs({ mounts: ["/"], ifaces: ["eth0", "eth1"] }, 1000);
  const byId = Object.fromEntries(defs.map((d) => [d.id, d]));
  const pts: Point[] = [
    {
      ts: 1,
      values: {
        cpu: 12.5,
        "mem.used": 250,
        "disk.used:/": 30,
        "disk.total:/": 120,
        "net.rx:eth0": 100,
        "net.rx:eth1": 50,
        "net.tx:eth0": 7,
      },
    },
    { ts: 2, values: { cpu: 14, "mem.used": 500, "mem.total": 2000 } },
  ];

  it("derives percentages and sums", () => {
    expect(chartColumns(pts, byId.cpu!)).toEqual([[1, 2], [12.5, 14]]);
    expect(chartColumns(pts, byId.mem!)).toEqual([[1, 2], [25, 25]]);
    expect(chartColumns(pts, byId.disk!)).toEqual([[1, 2], [25, null]]);
    expect(chartColumns(pts, byId.net!)).toEqual([[1, 2], [150, null], [7, null]]);
  });

  it("reports the latest known value of each line", () => {
    expect(latestValues(pts, byId.disk!)).toEqual([25]);
    expect(latestValues([], byId.cpu!)).toEqual([null]);
  });
});
