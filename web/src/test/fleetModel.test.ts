import { describe, expect, it } from "vitest";
import type { Agent, AgentPage } from "../api/types";
import { EMPTY_FILTER } from "../lib/fleetQuery";
import { FleetList, SPARK_POINTS } from "../pages/fleet/model";

function agent(i: number, extra: Partial<Agent> = {}): Agent {
  return {
    id: `id-${i}`,
    project: "default",
    hostname: `host-${i}`,
    machine_id: "m",
    status: "online",
    labels: {},
    agent_version: "0.1.0",
    enrolled_at: 1,
    last_seen: null,
    revoked_at: null,
    facts: {} as Agent["facts"],
    ...extra,
  };
}

type Pending = { params: URLSearchParams; resolve(p: AgentPage): void; reject(e: unknown): void; signal: AbortSignal };

function harness(total: number, pageSize = 10) {
  const pending: Pending[] = [];
  const list = new FleetList(
    (params, signal) =>
      new Promise<AgentPage>((resolve, reject) => {
        pending.push({ params, resolve, reject, signal });
      }),
    pageSize,
  );
  const answer = (p: Pending) => {
    const offset = Number(p.params.get("offset"));
    const limit = Number(p.params.get("limit"));
    const items: Agent[] = [];
    for (let i = offset; i < Math.min(total, offset + limit); i++) items.push(agent(i));
    p.resolve({ total, offset, items, counts: { online: total, offline: 0, revoked: 0 } });
  };
  return { list, pending, answer };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe("FleetList", () => {
  it("fetches only the pages in view, once each", async () => {
    const { list, pending, answer } = harness(10_000);
    list.setFilter(EMPTY_FILTER);
    expect(pending.map((p) => p.params.get("offset"))).toEqual(["0"]);
    answer(pending[0]!);
    await tick();
    expect(list.total).toBe(10_000);
    expect(list.row(3)?.id).toBe("id-3");
    list.ensureRange(5, 25);
    list.ensureRange(5, 25);
    expect(pending.map((p) => p.params.get("offset"))).toEqual(["0", "10", "20"]);
    expect(list.row(15)).toBeUndefined();
    answer(pending[1]!);
    await tick();
    expect(list.row(15)?.id).toBe("id-15");
  });

  it("drops answers for an old filter and keeps old rows until the new one answers", async () => {
    const { list, pending, answer } = harness(50);
    list.setFilter(EMPTY_FILTER);
    answer(pending[0]!);
    await tick();
    list.setFilter({ ...EMPTY_FILTER, q: "host-4" });
    expect(pending[1]!.params.get("q")).toBe("host-4");
    expect(list.busy).toBe(true);
    expect(list.row(0)?.id).toBe("id-0");
    list.setFilter({ ...EMPTY_FILTER, q: "host-42" });
    expect(pending[1]!.signal.aborted).toBe(true);
    pending[2]!.resolve({ total: 1, offset: 0, items: [agent(42)] });
    pending[1]!.resolve({ total: 11, offset: 0, items: [agent(4)] });
    await tick();
    expect(list.total).toBe(1);
    expect(list.row(0)?.id).toBe("id-42");
    expect(list.busy).toBe(false);
  });

  it("patches pushed agents in place and reports unknown ones", async () => {
    const { list, pending, answer } = harness(5);
    list.setFilter(EMPTY_FILTER);
    answer(pending[0]!);
    await tick();
    expect(list.applyAgent(agent(2, { status: "offline" }))).toBe(true);
    expect(list.row(2)?.status).toBe("offline");
    expect(list.applyAgent(agent(99))).toBe(false);
  });

  it("grows sparklines from summaries, in order and capped", () => {
    const { list } = harness(1);
    for (let t = 1; t <= SPARK_POINTS + 5; t++) list.applySummary({ id: "a", ts: t, cpu: t, mem: 1, disk: 2 });
    list.applySummary({ id: "a", ts: 3, cpu: 999, mem: 1, disk: 2 });
    const s = list.spark("a")!;
    expect(s.ts).toHaveLength(SPARK_POINTS);
    expect(s.cpu[s.cpu.length - 1]).toBe(SPARK_POINTS + 5);
  });

  it("shows an error for a page that failed and fetches it again on retry", async () => {
    const { list, pending, answer } = harness(5);
    list.setFilter(EMPTY_FILTER);
    pending[0]!.reject(new Error("boom"));
    await tick();
    expect(list.error).toBe("boom");
    list.ensureRange(0, 3);
    expect(pending).toHaveLength(1);
    list.retry();
    expect(pending).toHaveLength(2);
    answer(pending[1]!);
    await tick();
    expect(list.error).toBeNull();
    expect(list.total).toBe(5);
  });

  it("refresh reloads the visible pages but keeps rows on screen", async () => {
    const { list, pending, answer } = harness(30);
    list.setFilter(EMPTY_FILTER);
    answer(pending[0]!);
    await tick();
    list.refresh(0, 5);
    expect(pending).toHaveLength(2);
    expect(list.row(1)?.id).toBe("id-1");
  });

  it("refuses an invalid label selector without a request", () => {
    const { list, pending } = harness(30);
    list.setFilter({ ...EMPTY_FILTER, label: "nope" });
    expect(pending).toHaveLength(0);
    expect(list.error).toMatch(/key=value/);
  });
});
