import { describe, expect, it } from "vitest";
import { CastError, CastPlayer, eventIndexAt, parseAsciicast, parseResize, PlaybackClock, type CastSink } from "../lib/asciicast";

const CAST = [
  '{"version": 2, "width": 100, "height": 30, "timestamp": 1767225600, "env": {"SHELL": "/bin/bash"}}',
  '[0.0, "o", "$ "]',
  '[0.5, "o", "e"]',
  '[0.6, "i", "e"]',
  '[1.0, "o", "cho hi\\r\\n"]',
  '[1.25, "r", "120x40"]',
  '[2.0, "o", "hi\\r\\n"]',
  '[2.0, "m", "marker"]',
  '[4.0, "o", "$ "]',
  "",
].join("\n");

describe("parseAsciicast", () => {
  it("reads the header and the output and resize events, in milliseconds", () => {
    const c = parseAsciicast(CAST);
    expect(c.header).toMatchObject({ version: 2, width: 100, height: 30, timestamp: 1767225600 });
    expect(c.events).toEqual([
      { t: 0, kind: "o", data: "$ " },
      { t: 500, kind: "o", data: "e" },
      { t: 1000, kind: "o", data: "cho hi\r\n" },
      { t: 1250, kind: "r", cols: 120, rows: 40 },
      { t: 2000, kind: "o", data: "hi\r\n" },
      { t: 4000, kind: "o", data: "$ " },
    ]);
    expect(c.duration).toBe(4000);
    expect(c.skipped).toBe(0);
  });

  it("caps idle time when the header says so", () => {
    const c = parseAsciicast(['{"version":2,"width":80,"height":24,"idle_time_limit":1}', '[0,"o","a"]', '[10,"o","b"]', '[10.5,"o","c"]'].join("\n"));
    expect(c.events.map((e) => e.t)).toEqual([0, 1000, 1500]);
    expect(c.duration).toBe(1500);
  });

  it("skips unreadable lines (a truncated last line) and keeps time monotonic", () => {
    const c = parseAsciicast(['{"version":2,"width":80,"height":24}', '[1,"o","a"]', '[0.5,"o","b"]', '{"x":1}', '[2,"r","bogus"]', '[3,"o","tru'].join("\n"));
    expect(c.events.map((e) => e.t)).toEqual([1000, 1000]);
    expect(c.skipped).toBe(3);
  });

  it("handles CRLF line endings and defaults a missing size", () => {
    const c = parseAsciicast('{"version":2}\r\n[0.1,"o","x"]\r\n');
    expect(c.header.width).toBe(80);
    expect(c.header.height).toBe(24);
    expect(c.events).toEqual([{ t: 100, kind: "o", data: "x" }]);
  });

  it("refuses what is not asciicast v2", () => {
    expect(() => parseAsciicast("")).toThrow(CastError);
    expect(() => parseAsciicast("hello")).toThrow(/header/);
    expect(() => parseAsciicast('{"version":1,"width":80}')).toThrow(/version 1/);
    expect(() => parseAsciicast('{"version":3,"term":{"cols":80}}')).toThrow(/version 3/);
    expect(() => parseAsciicast("[1,2]")).toThrow(CastError);
  });

  it("parses resize sizes", () => {
    expect(parseResize("80x24")).toEqual({ cols: 80, rows: 24 });
    expect(parseResize("0x24")).toBeNull();
    expect(parseResize("99999x99999")).toEqual({ cols: 1000, rows: 1000 });
    expect(parseResize("wide")).toBeNull();
  });

  it("finds how many events happened by a time", () => {
    const ev = parseAsciicast(CAST).events;
    expect(eventIndexAt(ev, -1)).toBe(0);
    expect(eventIndexAt(ev, 0)).toBe(1);
    expect(eventIndexAt(ev, 999)).toBe(2);
    expect(eventIndexAt(ev, 1000)).toBe(3);
    expect(eventIndexAt(ev, 10_000)).toBe(6);
  });
});

describe("PlaybackClock", () => {
  it("advances with the wall clock times the speed, and pauses", () => {
    let now = 0;
    const c = new PlaybackClock(10_000, () => now);
    expect(c.position()).toBe(0);
    c.play();
    now = 1000;
    expect(c.position()).toBe(1000);
    c.setSpeed(4);
    now = 1500;
    expect(c.position()).toBe(3000);
    c.pause();
    now = 9000;
    expect(c.position()).toBe(3000);
    expect(c.wallDelayUntil(5000)).toBe(500);
    c.seek(20_000);
    expect(c.position()).toBe(10_000);
    expect(c.ended).toBe(true);
    // Playing at the end starts over.
    c.play();
    expect(c.position()).toBe(0);
  });
});

function recorder() {
  const log: string[] = [];
  const sink: CastSink = {
    write: (d) => log.push(`w:${d}`),
    resize: (c, r) => log.push(`r:${c}x${r}`),
    reset: () => log.push("reset"),
  };
  return { log, sink };
}

function fakeTime() {
  let now = 0;
  const timers: { at: number; fn: () => void }[] = [];
  return {
    now: () => now,
    setTimer: (fn: () => void, ms: number) => {
      const t = { at: now + ms, fn };
      timers.push(t);
      return t;
    },
    clearTimer: (h: unknown) => {
      const i = timers.indexOf(h as (typeof timers)[number]);
      if (i >= 0) timers.splice(i, 1);
    },
    /** Moves time forward, firing due timers in order. */
    run(ms: number) {
      const end = now + ms;
      for (;;) {
        timers.sort((a, b) => a.at - b.at);
        const t = timers[0];
        if (!t || t.at > end) break;
        timers.shift();
        now = t.at;
        t.fn();
      }
      now = end;
    },
    pending: () => timers.length,
  };
}

describe("CastPlayer", () => {
  it("writes events on time at 1×, batching what is due together", () => {
    const time = fakeTime();
    const { log, sink } = recorder();
    const p = new CastPlayer(parseAsciicast(CAST), sink, time);
    expect(log).toEqual(["r:100x30"]);
    p.play();
    expect(log.at(-1)).toBe("w:$ ");
    time.run(499);
    expect(log).toEqual(["r:100x30", "w:$ "]);
    time.run(1);
    expect(log.at(-1)).toBe("w:e");
    time.run(1000);
    expect(log.slice(3)).toEqual(["w:cho hi\r\n", "r:120x40"]);
    time.run(2500);
    expect(log.slice(5)).toEqual(["w:hi\r\n", "w:$ "]);
    expect(p.playing).toBe(false);
    expect(p.position).toBe(4000);
    expect(time.pending()).toBe(0);
  });

  it("plays 4× faster", () => {
    const time = fakeTime();
    const { log, sink } = recorder();
    const p = new CastPlayer(parseAsciicast(CAST), sink, time);
    p.setSpeed(4);
    p.play();
    time.run(250);
    expect(log.filter((l) => l.startsWith("w:")).length).toBe(3);
    time.run(750);
    expect(p.playing).toBe(false);
    expect(p.appliedEvents).toBe(6);
  });

  it("pauses and resumes where it was", () => {
    const time = fakeTime();
    const { log, sink } = recorder();
    const p = new CastPlayer(parseAsciicast(CAST), sink, time);
    p.play();
    time.run(600);
    p.pause();
    const n = log.length;
    time.run(5000);
    expect(log.length).toBe(n);
    expect(p.position).toBe(600);
    p.play();
    time.run(400);
    expect(log.at(-1)).toBe("w:cho hi\r\n");
  });

  it("seeks forward by writing what lies between, backward by replaying from the start", () => {
    const time = fakeTime();
    const { log, sink } = recorder();
    const p = new CastPlayer(parseAsciicast(CAST), sink, time);
    p.seek(1500);
    expect(log).toEqual(["r:100x30", "w:$ echo hi\r\n", "r:120x40"]);
    log.length = 0;
    p.seek(600);
    expect(log).toEqual(["reset", "r:100x30", "w:$ e"]);
    expect(p.position).toBe(600);
    log.length = 0;
    p.seek(600);
    expect(log).toEqual([]);
  });

  it("restarts from the beginning when played at the end", () => {
    const time = fakeTime();
    const { log, sink } = recorder();
    const p = new CastPlayer(parseAsciicast(CAST), sink, time);
    p.seek(4000);
    log.length = 0;
    p.play();
    expect(log.slice(0, 3)).toEqual(["reset", "r:100x30", "w:$ "]);
    expect(p.playing).toBe(true);
    p.dispose();
    expect(time.pending()).toBe(0);
  });
});
