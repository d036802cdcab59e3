import { describe, expect, it } from "vitest";
import {
  formatBytes,
  formatDateTime,
  formatOs,
  formatPercent,
  formatRate,
  formatRelative,
  formatTime,
  formatUptime,
} from "../lib/format";

describe("formatBytes", () => {
  it("uses binary units with sensible precision", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(16_742_010_880)).toBe("16 GiB");
    expect(formatBytes(10 * 1024 ** 4)).toBe("10 TiB");
    expect(formatBytes(1024 * 1024 - 1)).toBe("1.0 MiB");
    expect(formatBytes(-2048)).toBe("-2.0 KiB");
  });
  it("shows a dash for missing values", () => {
    expect(formatBytes(undefined)).toBe("—");
    expect(formatBytes(null)).toBe("—");
    expect(formatBytes(Number.NaN)).toBe("—");
  });
  it("formats rates", () => {
    expect(formatRate(1_258_291)).toBe("1.2 MiB/s");
  });
});

describe("formatPercent", () => {
  it("keeps one decimal below 10 %", () => {
    expect(formatPercent(4.234)).toBe("4.2%");
    expect(formatPercent(42.6)).toBe("43%");
    expect(formatPercent(100)).toBe("100%");
    expect(formatPercent(0.01)).toBe("0.0%");
    expect(formatPercent(undefined)).toBe("—");
  });
});

describe("formatUptime", () => {
  it("shows the two largest units", () => {
    expect(formatUptime(45)).toBe("45s");
    expect(formatUptime(12 * 60 + 5)).toBe("12m");
    expect(formatUptime(5 * 3600 + 12 * 60)).toBe("5h 12m");
    expect(formatUptime(3600)).toBe("1h");
    expect(formatUptime(3 * 86_400 + 4 * 3600 + 59)).toBe("3d 4h");
    expect(formatUptime(2 * 86_400)).toBe("2d");
    expect(formatUptime(-1)).toBe("—");
  });
});

describe("times", () => {
  const ts = Date.UTC(2026, 2, 12, 13, 5, 9); // 12 Mar 2026 13:05:09 UTC

  it("shows times in the given (viewer's) time zone", () => {
    expect(formatTime(ts, { timeZone: "UTC", locale: "en-GB" })).toBe("13:05:09");
    expect(formatTime(ts, { timeZone: "Asia/Tokyo", locale: "en-GB" })).toBe("22:05:09");
    expect(formatTime(ts, { timeZone: "America/New_York", locale: "en-GB" })).toBe("09:05:09");
    expect(formatDateTime(ts, { timeZone: "Australia/Sydney", locale: "en-GB" })).toBe("13 Mar 2026, 00:05:09");
  });

  it("defaults to the runtime's own zone", () => {
    const local = new Date(ts);
    const hh = String(local.getHours()).padStart(2, "0");
    expect(formatTime(ts, { locale: "en-GB" }).startsWith(hh)).toBe(true);
  });

  it("says how long ago", () => {
    const now = ts;
    expect(formatRelative(now - 3_000, now, "en")).toBe("now");
    expect(formatRelative(now - 5 * 60_000, now, "en")).toBe("5 minutes ago");
    expect(formatRelative(now - 3 * 3_600_000, now, "en")).toBe("3 hours ago");
    expect(formatRelative(now - 2 * 86_400_000, now, "en")).toBe("2 days ago");
    expect(formatRelative(null, now)).toBe("—");
    expect(formatDateTime(0)).toBe("—");
  });
});

describe("formatOs", () => {
  it("joins name and version", () => {
    expect(formatOs("Ubuntu", "24.04")).toBe("Ubuntu 24.04");
    expect(formatOs("", "")).toBe("—");
  });
});
