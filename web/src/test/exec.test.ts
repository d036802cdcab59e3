import { describe, expect, it } from "vitest";
import type { ExecDetail } from "../api/types";
import {
  EMPTY_EXEC,
  MAX_VIEW_CHARS,
  outputSegments,
  parseConcurrency,
  parseEnv,
  parseExecEvent,
  parseTimeout,
  quoteArgv,
  reduceExec,
  runOutcome,
  splitArgv,
  summarize,
  type ExecAction,
} from "../lib/exec";
import { EMPTY_EXEC_FORM, buildSpec, type ExecFormValues } from "../pages/exec/ExecPage";

const argv = (s: string) => {
  const r = splitArgv(s);
  if (!r.ok) throw new Error(r.error);
  return r.value;
};

describe("splitArgv", () => {
  it("splits on blanks", () => {
    expect(argv("uptime")).toEqual(["uptime"]);
    expect(argv("  ls   -la\t/tmp  ")).toEqual(["ls", "-la", "/tmp"]);
    expect(argv("")).toEqual([]);
    expect(argv("   ")).toEqual([]);
  });

  it("keeps single-quoted text literally", () => {
    expect(argv(`echo 'a  b' 'it''s' '$HOME \\n'`)).toEqual(["echo", "a  b", "its", "$HOME \\n"]);
  });

  it("handles double quotes with their escapes", () => {
    expect(argv(`printf "%s\\n" "say \\"hi\\"" "C:\\\\dir" "\\x"`)).toEqual(["printf", "%s\\n", 'say "hi"', "C:\\dir", "\\x"]);
    expect(argv(`sh -c "echo \\$HOME \\\`id\\\`"`)).toEqual(["sh", "-c", "echo $HOME `id`"]);
  });

  it("joins quoted and unquoted parts of one word and keeps empty words", () => {
    expect(argv(`--name="my service" a''b '' ""`)).toEqual(["--name=my service", "ab", "", ""]);
  });

  it("takes a backslash outside quotes as an escape", () => {
    expect(argv(`touch my\\ file \\'q\\' end\\`)).toEqual(["touch", "my file", "'q'", "end\\"]);
    expect(argv("a \\\nb")).toEqual(["a", "b"]);
  });

  it("reports unclosed quotes", () => {
    expect(splitArgv(`echo 'oops`)).toEqual({ ok: false, error: "A single quote (') is not closed." });
    expect(splitArgv(`echo "oops`)).toMatchObject({ ok: false });
  });

  it("quotes back to a line that splits the same", () => {
    const words = ["echo", "a b", "it's", "", "$x", "plain-1.2/x"];
    expect(argv(quoteArgv(words))).toEqual(words);
    expect(quoteArgv(["uptime"])).toBe("uptime");
  });
});

describe("form fields", () => {
  it("parses env lines", () => {
    expect(parseEnv("A=1\n\n# comment\nB_2= spaced value \nC=x=y\r\n")).toEqual({
      ok: true,
      value: { A: "1", B_2: " spaced value ", C: "x=y" },
    });
    expect(parseEnv("NOPE")).toMatchObject({ ok: false });
    expect(parseEnv("1X=2")).toMatchObject({ ok: false });
    expect(parseEnv("")).toEqual({ ok: true, value: {} });
  });

  it("parses timeouts", () => {
    expect(parseTimeout("")).toEqual({ ok: true, value: undefined });
    expect(parseTimeout("30")).toEqual({ ok: true, value: "30s" });
    expect(parseTimeout(" 30s ")).toEqual({ ok: true, value: "30s" });
    expect(parseTimeout("1h 30m")).toEqual({ ok: true, value: "1h30m" });
    expect(parseTimeout("500ms")).toEqual({ ok: true, value: "500ms" });
    expect(parseTimeout("0s")).toMatchObject({ ok: false });
    expect(parseTimeout("soon")).toMatchObject({ ok: false });
  });

  it("parses concurrency", () => {
    expect(parseConcurrency("")).toEqual({ ok: true, value: undefined });
    expect(parseConcurrency("10")).toEqual({ ok: true, value: 10 });
    expect(parseConcurrency("0")).toMatchObject({ ok: false });
    expect(parseConcurrency("2.5")).toMatchObject({ ok: false });
  });

  const base: ExecFormValues = EMPTY_EXEC_FORM;

  it("builds the POST /exec body, leaving out what is empty", () => {
    expect(buildSpec({ ...base, agents: [{ id: "a1", hostname: "web" }], command: `systemctl status "my svc"` })).toEqual({
      ok: true,
      spec: { target: { ids: ["a1"] }, argv: ["systemctl", "status", "my svc"] },
    });
    expect(
      buildSpec({
        ...base,
        project: "prod",
        labels: "env=prod, role=web",
        mode: "script",
        script: "df -h\n",
        env: "A=1",
        cwd: " /srv ",
        timeout: "5m",
        runAs: "deploy",
        concurrency: "20",
      }),
    ).toEqual({
      ok: true,
      spec: {
        target: { project: "prod", labels: { env: "prod", role: "web" } },
        script: "df -h\n",
        env: { A: "1" },
        cwd: "/srv",
        timeout: "5m",
        run_as: "deploy",
        concurrency: 20,
      },
    });
  });

  it("refuses a form without machines or command", () => {
    expect(buildSpec({ ...base, command: "uptime" })).toMatchObject({ ok: false, error: expect.stringMatching(/Choose the machines/) });
    expect(buildSpec({ ...base, project: "p" })).toMatchObject({ ok: false, error: "Type the command to run." });
    expect(buildSpec({ ...base, project: "p", command: "echo 'x" })).toMatchObject({ ok: false });
    expect(buildSpec({ ...base, project: "p", command: "x", labels: "bad" })).toMatchObject({ ok: false });
  });
});

describe("exec results reducer", () => {
  const out = (agent_id: string, seq: number, data: string, stream: "stdout" | "stderr" = "stdout"): ExecAction => ({
    type: "output",
    agent_id,
    seq,
    stream,
    data,
  });

  it("builds per-host results from the stream", () => {
    const v = reduceExec(EMPTY_EXEC, [
      { type: "run", agent_id: "a", hostname: "alpha", state: "pending" },
      { type: "run", agent_id: "b", hostname: "beta", state: "pending" },
      { type: "run", agent_id: "c", hostname: "gamma", state: "offline" },
      { type: "run", agent_id: "a", state: "running" },
      out("a", 1, "up 3 days\n"),
      out("b", 1, "oops\n", "stderr"),
      { type: "result", agent_id: "a", exit_code: 0, signal: null, duration_ms: 12, timed_out: false, cancelled: false, truncated: false, error: null },
      { type: "result", agent_id: "b", exit_code: 2, signal: null, duration_ms: 30, timed_out: false, cancelled: false, truncated: false, error: null },
    ]);
    expect(v.order).toEqual(["a", "b", "c"]);
    expect(v.runs.a).toMatchObject({ hostname: "alpha", state: "done", result: { exit_code: 0, duration_ms: 12 } });
    expect(v.runs.b!.state).toBe("done");
    expect(runOutcome(v.runs.a!)).toBe("ok");
    expect(runOutcome(v.runs.b!)).toBe("failed");
    expect(runOutcome(v.runs.c!)).toBe("offline");
    expect(summarize(v)).toEqual({ total: 3, ok: 1, failed: 1, offline: 1, running: 0 });
    expect(v.done).toBe(false);
    expect(reduceExec(v, [{ type: "done" }]).done).toBe(true);
  });

  it("orders output by seq and drops duplicates from a reconnect or the snapshot", () => {
    let v = reduceExec(EMPTY_EXEC, [out("a", 2, "two "), out("a", 1, "one "), out("a", 3, "three", "stderr")]);
    v = reduceExec(v, [out("a", 2, "two "), out("a", 3, "three", "stderr")]);
    expect(v.runs.a!.chunks.map((c) => c.seq)).toEqual([1, 2, 3]);
    expect(outputSegments(v.runs.a!.chunks)).toEqual([
      { stream: "stdout", text: "one two " },
      { stream: "stderr", text: "three" },
    ]);
    // The same seq on the other stream is not a duplicate.
    v = reduceExec(v, [out("a", 3, "x")]);
    expect(v.runs.a!.chunks).toHaveLength(4);
  });

  it("merges a stored snapshot with live events in either order", () => {
    const detail: ExecDetail = {
      id: "e1",
      spec: { target: { ids: ["a", "b"] }, argv: ["uptime"] },
      runs: [
        { agent_id: "a", hostname: "alpha", state: "running", output: [{ seq: 1, stream: "stdout", data: "A" }, { seq: 2, stream: "stdout", data: "B" }] },
        { agent_id: "b", hostname: "beta", state: "done", exit_code: null, signal: "SIGKILL", duration_ms: 30000, timed_out: true, cancelled: false, truncated: false, error: null, output: [] },
      ],
    };
    const live: ExecAction[] = [out("a", 2, "B"), out("a", 3, "C"), { type: "result", agent_id: "a", exit_code: 0, duration_ms: 5 }];
    const one = reduceExec(reduceExec(EMPTY_EXEC, live), [{ type: "snapshot", detail }]);
    const two = reduceExec(EMPTY_EXEC, [{ type: "snapshot", detail }, ...live]);
    for (const v of [one, two]) {
      expect(v.runs.a!.chunks.map((c) => c.data).join("")).toBe("ABC");
      expect(v.runs.a!.state).toBe("done");
      expect(v.runs.b!.result).toMatchObject({ signal: "SIGKILL", timed_out: true });
      expect(runOutcome(v.runs.b!)).toBe("failed");
      expect(summarize(v).running).toBe(0);
    }
    // A snapshot where every run is over means nothing more will stream.
    expect(one.done).toBe(true);
    expect(two.done).toBe(false);
    // A stored snapshot never moves a run backwards.
    const back = reduceExec(one, [{ type: "snapshot", detail: { ...detail, runs: [{ agent_id: "a", hostname: "alpha", state: "pending" }] } }]);
    expect(back.runs.a!.state).toBe("done");
  });

  it("does not mark done from a snapshot with runs still going", () => {
    const v = reduceExec(EMPTY_EXEC, [
      { type: "snapshot", detail: { id: "e", spec: { target: {} }, runs: [{ agent_id: "a", hostname: "a", state: "running" }] } },
    ]);
    expect(v.done).toBe(false);
    expect(summarize(v).running).toBe(1);
  });

  it("copies only the runs an event touches", () => {
    const v1 = reduceExec(EMPTY_EXEC, [out("a", 1, "x"), out("b", 1, "y")]);
    const v2 = reduceExec(v1, [out("a", 2, "z")]);
    expect(v2.runs.b).toBe(v1.runs.b);
    expect(v2.runs.a).not.toBe(v1.runs.a);
    expect(v1.runs.a!.chunks).toHaveLength(1);
    expect(reduceExec(v2, [])).toBe(v2);
  });

  it("stops keeping output past the browser's cap", () => {
    const big = "x".repeat(MAX_VIEW_CHARS - 5);
    const v = reduceExec(EMPTY_EXEC, [out("a", 1, big), out("a", 2, "0123456789")]);
    expect(v.runs.a!.clipped).toBe(true);
    expect(v.runs.a!.chars).toBe(big.length);
  });

  it("classifies signals, timeouts, cancels and agent errors as failures", () => {
    const res = (extra: object) =>
      runOutcome(
        reduceExec(EMPTY_EXEC, [{ type: "result", agent_id: "a", exit_code: 0, signal: null, ...extra }]).runs.a!,
      );
    expect(res({})).toBe("ok");
    expect(res({ exit_code: null, signal: 9 })).toBe("failed");
    expect(res({ timed_out: true })).toBe("failed");
    expect(res({ cancelled: true })).toBe("failed");
    expect(res({ error: "no such user" })).toBe("failed");
    expect(runOutcome(reduceExec(EMPTY_EXEC, [{ type: "run", agent_id: "a", state: "failed" }]).runs.a!)).toBe("failed");
  });

  it("parses SSE messages by event name", () => {
    expect(parseExecEvent("output", '{"agent_id":"a","seq":1,"stream":"stdout","data":"hi"}')).toEqual({
      type: "output",
      agent_id: "a",
      seq: 1,
      stream: "stdout",
      data: "hi",
    });
    expect(parseExecEvent("done", "{}")).toEqual({ type: "done" });
    expect(parseExecEvent("done", "")).toEqual({ type: "done" });
    expect(parseExecEvent("output", "{bad")).toBeNull();
    expect(parseExecEvent("output", '{"seq":1}')).toBeNull();
    expect(parseExecEvent("message", '{"agent_id":"a"}')).toBeNull();
    // A payload cannot change the event's type.
    expect(parseExecEvent("run", '{"agent_id":"a","type":"done","state":"running"}')).toMatchObject({ type: "run" });
  });
});
