// The fleet list's data, page by page: only the pages the viewer scrolls to
// are fetched (limit/offset), a filter change starts a new generation whose
// stale answers are dropped, and WebSocket pushes patch rows in place.
// Kept outside React so it can be tested on its own.

import type { Agent, AgentPage, Spark, StatusCounts } from "../../api/types";
import { errorMessage, isAbort } from "../../api/client";
import { filterToApiQuery, PAGE_SIZE, type FleetFilter, EMPTY_FILTER } from "../../lib/fleetQuery";

export type PageLoader = (params: URLSearchParams, signal: AbortSignal) => Promise<AgentPage>;

/** How many summary points a sparkline keeps (10 minutes at one per 10 s). */
export const SPARK_POINTS = 60;

/** At most this many pages are requested for one visible range. */
const MAX_PAGES_AT_ONCE = 5;

export class FleetList {
  private filter: FleetFilter = EMPTY_FILTER;
  private gen = 0;
  private rows = new Map<number, Agent>();
  private index = new Map<string, number>();
  private loaded = new Set<number>();
  private inflight = new Map<number, AbortController>();
  private sparks = new Map<string, Spark>();
  /** Rows shown are from an earlier filter until this generation's first page lands. */
  private replacing = true;
  private listeners = new Set<() => void>();
  private notifyQueued = false;

  total: number | null = null;
  counts: StatusCounts | null = null;
  error: string | null = null;
  /** Bumped on every change; what React re-renders on. */
  version = 0;

  constructor(
    private readonly load: PageLoader,
    private readonly pageSize: number = PAGE_SIZE,
  ) {}

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  getVersion = (): number => this.version;

  /** True while the current filter's first page is still on its way. */
  get busy(): boolean {
    return this.replacing;
  }

  row(i: number): Agent | undefined {
    return this.replacing && this.total === null ? undefined : this.rows.get(i);
  }

  spark(id: string): Spark | undefined {
    return this.sparks.get(id);
  }

  currentFilter(): FleetFilter {
    return this.filter;
  }

  /** Starts over for a new filter; the old rows stay visible until the first page answers. */
  setFilter(f: FleetFilter): void {
    this.filter = f;
    this.gen += 1;
    this.abortAll();
    this.loaded.clear();
    this.replacing = true;
    this.error = null;
    this.fetchPage(0);
    this.notify();
  }

  /** Makes sure the pages covering rows [start, end] are loaded or on their way. */
  ensureRange(start: number, end: number): void {
    if (this.error) return;
    const first = Math.max(0, Math.floor(start / this.pageSize));
    let last = Math.max(first, Math.floor(Math.max(start, end) / this.pageSize));
    if (this.total !== null && !this.replacing) {
      last = Math.min(last, Math.max(0, Math.ceil(this.total / this.pageSize) - 1));
    }
    // A list that is not height-bounded would ask for everything: don't.
    last = Math.min(last, first + MAX_PAGES_AT_ONCE - 1);
    for (let p = first; p <= last; p++) this.fetchPage(p);
  }

  /**
   * Marks every page stale (the fleet changed) and reloads the visible ones;
   * others reload when scrolled to. Rows stay on screen meanwhile.
   */
  refresh(visibleStart: number, visibleEnd: number): void {
    this.loaded.clear();
    this.error = null;
    this.ensureRange(visibleStart, visibleEnd);
  }

  retry(): void {
    this.error = null;
    if (this.replacing) this.fetchPage(0);
    this.notify();
  }

  /** Patches a row from a pushed agent. Returns whether it was on a loaded page. */
  applyAgent(a: Agent): boolean {
    const i = this.index.get(a.id);
    if (i === undefined) return false;
    const prev = this.rows.get(i);
    this.rows.set(i, prev?.spark && !a.spark ? { ...a, spark: prev.spark } : a);
    this.notify();
    return true;
  }

  /** Appends a pushed summary to an agent's sparklines. */
  applySummary(m: { id: string; ts: number; cpu: number; mem: number; disk: number }): void {
    const cur = this.sparks.get(m.id) ?? { ts: [], cpu: [], mem: [], disk: [] };
    const last = cur.ts.length > 0 ? (cur.ts[cur.ts.length - 1] as number) : -Infinity;
    if (!(m.ts > last)) return;
    const cap = <T,>(xs: T[], x: T) => [...xs, x].slice(-SPARK_POINTS);
    this.sparks.set(m.id, {
      ts: cap(cur.ts, m.ts),
      cpu: cap(cur.cpu, m.cpu),
      mem: cap(cur.mem, m.mem),
      disk: cap(cur.disk, m.disk),
    });
    this.notify();
  }

  applyCounts(c: StatusCounts): void {
    this.counts = { online: c.online, offline: c.offline, revoked: c.revoked };
    this.notify();
  }

  dispose(): void {
    this.abortAll();
    this.listeners.clear();
  }

  private fetchPage(page: number): void {
    if (this.loaded.has(page) || this.inflight.has(page)) return;
    const q = filterToApiQuery(this.filter, this.pageSize, page * this.pageSize);
    if (!q.ok) {
      this.error = q.error;
      this.replacing = false;
      this.total = 0;
      this.rows.clear();
      this.index.clear();
      this.notify();
      return;
    }
    const gen = this.gen;
    const ctl = new AbortController();
    this.inflight.set(page, ctl);
    this.load(q.params, ctl.signal).then(
      (res) => {
        if (gen !== this.gen) return;
        this.inflight.delete(page);
        this.accept(page, res);
      },
      (e: unknown) => {
        if (gen !== this.gen || isAbort(e)) return;
        this.inflight.delete(page);
        this.error = errorMessage(e);
        this.notify();
      },
    );
  }

  private accept(page: number, res: AgentPage): void {
    if (this.replacing) {
      this.rows = new Map();
      this.index = new Map();
      this.replacing = false;
    }
    const offset = Number.isFinite(res.offset) ? res.offset : page * this.pageSize;
    for (let i = 0; i < this.pageSize; i++) {
      const old = this.rows.get(offset + i);
      if (old && this.index.get(old.id) === offset + i) this.index.delete(old.id);
      this.rows.delete(offset + i);
    }
    res.items.forEach((a, i) => {
      const prevIndex = this.index.get(a.id);
      if (prevIndex !== undefined && prevIndex !== offset + i) this.rows.delete(prevIndex);
      this.rows.set(offset + i, a);
      this.index.set(a.id, offset + i);
      if (a.spark && a.spark.ts.length > 0) {
        const have = this.sparks.get(a.id);
        const haveLast = have && have.ts.length > 0 ? (have.ts[have.ts.length - 1] as number) : -Infinity;
        const newLast = a.spark.ts[a.spark.ts.length - 1] as number;
        if (newLast >= haveLast) this.sparks.set(a.id, a.spark);
      }
    });
    this.total = res.total;
    if (res.counts) this.counts = res.counts;
    this.loaded.add(page);
    this.error = null;
    this.notify();
  }

  private abortAll(): void {
    for (const c of this.inflight.values()) c.abort();
    this.inflight.clear();
  }

  private notify(): void {
    if (this.notifyQueued) return;
    this.notifyQueued = true;
    queueMicrotask(() => {
      this.notifyQueued = false;
      this.version += 1;
      for (const fn of [...this.listeners]) fn();
    });
  }
}
