// The fleet page: every agent as a row, filtered on the server, fetched a
// page at a time as the virtual list scrolls, kept live over the WebSocket
// (summaries for the rows in view, status changes, enrollments).

import { useEffect, useMemo, useRef, useState, useSyncExternalStore } from "react";
import { useVirtualizer } from "@tanstack/react-virtual";
import { api } from "../../api/client";
import type { Project, ServerMessage } from "../../api/types";
import { useLive, useLiveMessages, useReconnects } from "../../app/live";
import { reachability } from "../../app/reachability";
import { useStore } from "../../app/store";
import { ErrorBox, Empty } from "../../components/Notice";
import { agentMatches, filterFromSearch, filterToSearch, type FleetFilter } from "../../lib/fleetQuery";
import { Link, navigate, useLocation } from "../../lib/router";
import { FleetFilters } from "./FleetFilters";
import { FleetList } from "./model";
import { FleetRow, PlaceholderRow, ROW_HEIGHT } from "./FleetRow";

const REFRESH_DEBOUNCE_MS = 1000;
const HEADER_HEIGHT = 32;
const SUBSCRIBE_DEBOUNCE_MS = 250;

function useNow(everyMs: number): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(t);
  }, [everyMs]);
  return now;
}

export function Fleet() {
  const loc = useLocation();
  const filter = useMemo(() => filterFromSearch(loc.search), [loc.search]);
  const live = useLive();
  const reconnects = useReconnects();
  const { epoch } = useStore(reachability);
  const now = useNow(30_000);

  const list = useMemo(() => new FleetList((params, signal) => api.listAgents(params, signal)), []);
  useSyncExternalStore(list.subscribe, list.getVersion, list.getVersion);
  useEffect(() => () => list.dispose(), [list]);

  const [projects, setProjects] = useState<Project[]>([]);
  useEffect(() => {
    const ctl = new AbortController();
    api.projects(ctl.signal).then(setProjects, () => setProjects([]));
    return () => ctl.abort();
  }, [epoch]);

  const scroller = useRef<HTMLDivElement>(null);
  const total = list.total ?? 0;
  const virtualizer = useVirtualizer({
    count: total,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 10,
    // The sticky column header sits above the rows inside the scroller.
    scrollMargin: HEADER_HEIGHT,
  });
  const items = virtualizer.getVirtualItems();
  const firstIndex = items.length > 0 ? (items[0]?.index ?? 0) : 0;
  const lastIndex = items.length > 0 ? (items[items.length - 1]?.index ?? 0) : 0;
  const visible = useRef({ first: 0, last: 0 });
  visible.current = { first: firstIndex, last: lastIndex };

  // A new filter: start over at the top.
  const filterKey = filterToSearch(filter);
  useEffect(() => {
    list.setFilter(filter);
    scroller.current?.scrollTo?.({ top: 0 });
  }, [list, filterKey]);

  // The control plane or the socket came back: what we show may be stale.
  const firstRun = useRef(true);
  useEffect(() => {
    if (firstRun.current) {
      firstRun.current = false;
      return;
    }
    list.refresh(visible.current.first, visible.current.last);
  }, [list, epoch, reconnects]);

  useEffect(() => {
    list.ensureRange(firstIndex, lastIndex);
  }, [list, firstIndex, lastIndex, list.version]);

  // Subscribe to the agents in view (debounced while scrolling).
  const visibleIds = items
    .map((it) => list.row(it.index)?.id)
    .filter((id): id is string => !!id)
    .join(",");
  useEffect(() => {
    const t = setTimeout(() => live.subscribe(visibleIds ? visibleIds.split(",") : []), SUBSCRIBE_DEBOUNCE_MS);
    return () => clearTimeout(t);
  }, [live, visibleIds]);
  useEffect(() => () => live.subscribe([]), [live]);

  // Pushed changes. A change that adds or removes a row from this filter
  // reloads the visible pages (debounced, so a burst costs one request).
  const refreshTimer = useRef<ReturnType<typeof setTimeout> | null>(null);
  useEffect(
    () => () => {
      if (refreshTimer.current) clearTimeout(refreshTimer.current);
    },
    [],
  );
  const scheduleRefresh = () => {
    if (refreshTimer.current) return;
    refreshTimer.current = setTimeout(() => {
      refreshTimer.current = null;
      list.refresh(visible.current.first, visible.current.last);
    }, REFRESH_DEBOUNCE_MS);
  };
  useLiveMessages((m: ServerMessage) => {
    switch (m.type) {
      case "summary":
        list.applySummary(m);
        break;
      case "agent": {
        const known = list.applyAgent(m.agent);
        const matches = agentMatches(m.agent, list.currentFilter());
        if (known !== matches) scheduleRefresh();
        break;
      }
      case "counts":
        list.applyCounts(m);
        break;
      default:
        break;
    }
  });

  const setFilter = (f: FleetFilter) => navigate(`/fleet${filterToSearch(f)}`, { replace: true });
  const hasFilter = filterKey !== "";

  return (
    <section className="page page-fleet" aria-labelledby="fleet-title">
      <div className="page-head">
        <h1 id="fleet-title">Fleet</h1>
        <p className="muted" aria-live="polite" data-testid="fleet-total">
          {list.total === null ? "Loading agents…" : `${total.toLocaleString()} ${total === 1 ? "agent" : "agents"}`}
          {hasFilter && list.total !== null ? " match" : ""}
        </p>
      </div>
      <FleetFilters filter={filter} onChange={setFilter} projects={projects} counts={list.counts} />
      {list.error && <ErrorBox message={list.error} onRetry={() => list.retry()} title="Could not load agents" />}
      <div className="fleet-table" role="table" aria-label="Agents" aria-rowcount={total + 1} aria-busy={list.busy}>
        <div ref={scroller} className={`fleet-scroll${list.busy && list.total !== null ? " is-stale" : ""}`} data-testid="fleet-list">
          <div role="rowgroup" className="fleet-head">
            <div className="fleet-row fleet-header" role="row" aria-rowindex={1} style={{ height: HEADER_HEIGHT }}>
              <div role="columnheader">Status</div>
              <div role="columnheader">Hostname</div>
              <div role="columnheader">OS</div>
              <div role="columnheader">Project</div>
              <div role="columnheader">Labels</div>
              <div role="columnheader">Uptime</div>
              <div role="columnheader">CPU</div>
              <div role="columnheader">Memory</div>
              <div role="columnheader">Disk</div>
            </div>
          </div>
          {list.total === 0 && !list.busy && !list.error && (
            <Empty>
              {hasFilter ? (
                <>
                  No agents match these filters.{" "}
                  <button type="button" className="link" onClick={() => setFilter({ q: "", status: "", project: "", label: "" })}>
                    Clear filters
                  </button>
                </>
              ) : (
                <>
                  No agents yet. <Link to="/enroll">Enroll a machine</Link> to see it here.
                </>
              )}
            </Empty>
          )}
          <div role="rowgroup" style={{ height: virtualizer.getTotalSize(), position: "relative" }}>
            {items.map((it) => {
              const a = list.row(it.index);
              return a ? (
                <FleetRow key={a.id} agent={a} spark={list.spark(a.id)} index={it.index} top={it.start - HEADER_HEIGHT} now={now} />
              ) : (
                <PlaceholderRow key={`p${it.index}`} index={it.index} top={it.start - HEADER_HEIGHT} />
              );
            })}
          </div>
        </div>
      </div>
      {list.total === null && !list.error && (
        <p className="muted loading-line" role="status">
          Loading agents…
        </p>
      )}
    </section>
  );
}
