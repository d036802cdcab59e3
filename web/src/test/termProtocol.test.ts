import { describe, expect, it } from "vitest";
import {
  base64ToBytes,
  binaryStringToBytes,
  bytesToBase64,
  clampSize,
  encodeOutputFrame,
  forgetSnapshot,
  loadSnapshot,
  MAX_INPUT_FRAME,
  OutputCursor,
  parseOutputFrame,
  parseServerText,
  saveSnapshot,
  splitInput,
  TailBuffer,
  terminalUrl,
} from "../lib/termProtocol";

const enc = new TextEncoder();
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

describe("output frames", () => {
  it("reads the big-endian u64 offset and the bytes after it", () => {
    const buf = new Uint8Array([0, 0, 0, 0, 0, 0, 1, 2, 104, 105]);
    const f = parseOutputFrame(buf.buffer)!;
    expect(f.offset).toBe(258);
    expect(dec(f.data)).toBe("hi");
  });

  it("round-trips large offsets and works on views into a bigger buffer", () => {
    const frame = encodeOutputFrame(2 ** 40 + 7, "out");
    const padded = new Uint8Array(frame.byteLength + 6);
    padded.set(frame, 3);
    const f = parseOutputFrame(padded.subarray(3, 3 + frame.byteLength))!;
    expect(f.offset).toBe(2 ** 40 + 7);
    expect(dec(f.data)).toBe("out");
  });

  it("refuses frames shorter than the header or with unsafe offsets", () => {
    expect(parseOutputFrame(new Uint8Array(7))).toBeNull();
    expect(parseOutputFrame(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 65]))).toBeNull();
    const empty = parseOutputFrame(new Uint8Array(8))!;
    expect(empty.offset).toBe(0);
    expect(empty.data.byteLength).toBe(0);
  });
});

describe("OutputCursor", () => {
  const frame = (offset: number, s: string) => parseOutputFrame(encodeOutputFrame(offset, s))!;

  it("advances through contiguous frames", () => {
    const c = new OutputCursor();
    expect(dec(c.accept(frame(0, "hello ")).data)).toBe("hello ");
    expect(dec(c.accept(frame(6, "world")).data)).toBe("world");
    expect(c.offset).toBe(11);
  });

  it("drops bytes already rendered after a reattach (whole and partial frames)", () => {
    const c = new OutputCursor(10);
    // The server replays from 0: everything before 10 is a duplicate.
    expect(c.accept(frame(0, "0123456")).data.byteLength).toBe(0);
    expect(c.offset).toBe(10);
    const r = c.accept(frame(7, "789ABC"));
    expect(dec(r.data)).toBe("ABC");
    expect(r.gap).toBe(0);
    expect(c.offset).toBe(13);
    // An exact duplicate of the last frame.
    expect(c.accept(frame(10, "ABC")).data.byteLength).toBe(0);
    expect(c.offset).toBe(13);
  });

  it("reports a gap when the server no longer has what we missed", () => {
    const c = new OutputCursor(5);
    const r = c.accept(frame(100, "xyz"));
    expect(r.gap).toBe(95);
    expect(dec(r.data)).toBe("xyz");
    expect(c.offset).toBe(103);
  });

  it("keeps UTF-8 split across frames intact as bytes", () => {
    const bytes = enc.encode("é€");
    const c = new OutputCursor();
    const a = c.accept({ offset: 0, data: bytes.subarray(0, 1) }).data;
    const b = c.accept({ offset: 1, data: bytes.subarray(1) }).data;
    const td = new TextDecoder();
    expect(td.decode(a, { stream: true }) + td.decode(b)).toBe("é€");
  });
});

describe("input", () => {
  it("splits large pastes into frames of at most 64 KiB", () => {
    const big = "x".repeat(MAX_INPUT_FRAME * 2 + 10);
    const frames = splitInput(big);
    expect(frames.map((f) => f.byteLength)).toEqual([MAX_INPUT_FRAME, MAX_INPUT_FRAME, 10]);
    expect(splitInput("")).toEqual([]);
    expect(dec(splitInput("ls -l\r")[0]!)).toBe("ls -l\r");
  });

  it("encodes UTF-8 and binary strings", () => {
    expect([...splitInput("é")[0]!]).toEqual([0xc3, 0xa9]);
    expect([...binaryStringToBytes("\x1b[M\xff")]).toEqual([0x1b, 0x5b, 0x4d, 0xff]);
  });

  it("clamps sizes to what the server takes", () => {
    expect(clampSize(0, 0)).toEqual({ cols: 1, rows: 1 });
    expect(clampSize(100000, 24.7)).toEqual({ cols: 1000, rows: 24 });
    expect(clampSize(Number.NaN, 30)).toEqual({ cols: 80, rows: 30 });
  });
});

describe("server text messages", () => {
  it("reads attached, closed and error", () => {
    expect(parseServerText('{"type":"attached","session_id":"s1","resumed":true,"output_offset":42,"replay_from":10}')).toEqual({
      type: "attached",
      session_id: "s1",
      resumed: true,
      output_offset: 42,
      replay_from: 10,
    });
    expect(parseServerText('{"type":"closed","exit_code":null,"reason":"hangup"}')).toEqual({
      type: "closed",
      exit_code: null,
      reason: "hangup",
    });
    expect(parseServerText('{"type":"closed","exit_code":3}')).toEqual({ type: "closed", exit_code: 3, reason: "" });
    expect(parseServerText('{"type":"error","message":"bad ticket"}')).toEqual({ type: "error", message: "bad ticket" });
  });

  it("ignores garbage and unknown types", () => {
    expect(parseServerText("not json")).toBeNull();
    expect(parseServerText("[1,2]")).toBeNull();
    expect(parseServerText('{"type":"pwn"}')).toBeNull();
    expect(parseServerText("null")).toBeNull();
  });
});

describe("tail and snapshots", () => {
  it("keeps only the last bytes", () => {
    const t = new TailBuffer(10);
    t.push(enc.encode("abcdef"));
    t.push(enc.encode("ghijkl"));
    expect(dec(t.bytes())).toBe("cdefghijkl");
    t.push(enc.encode("0123456789ABCDEF"));
    expect(dec(t.bytes())).toBe("6789ABCDEF");
    t.clear();
    expect(t.bytes().byteLength).toBe(0);
  });

  it("base64 round-trips all byte values", () => {
    const all = new Uint8Array(256).map((_, i) => i);
    expect([...base64ToBytes(bytesToBase64(all))]).toEqual([...all]);
  });

  it("saves, loads and forgets a session's offset and tail", () => {
    saveSnapshot("s-1", { offset: 1234, tail: enc.encode("prompt$ ") });
    const s = loadSnapshot("s-1")!;
    expect(s.offset).toBe(1234);
    expect(dec(s.tail)).toBe("prompt$ ");
    forgetSnapshot("s-1");
    expect(loadSnapshot("s-1")).toBeNull();
    window.sessionStorage.setItem("sovereign.term.bad", "{nope");
    expect(loadSnapshot("bad")).toBeNull();
    window.sessionStorage.setItem("sovereign.term.neg", '{"offset":-1}');
    expect(loadSnapshot("neg")).toBeNull();
  });

  it("builds the same-origin URL with no token in it", () => {
    expect(terminalUrl("a/1", { protocol: "https:", host: "cp.example:8443" })).toBe(
      "wss://cp.example:8443/api/v1/agents/a%2F1/terminal",
    );
    expect(terminalUrl("a1", { protocol: "http:", host: "127.0.0.1:8080" })).toBe("ws://127.0.0.1:8080/api/v1/agents/a1/terminal");
  });
});
