// The audit log (/audit): who did what to what and when, newest first,
// 100 a page. Paging goes by id (`before`), so new entries do not shift the
// pages being read; `?before=` keeps the page in the address bar.

import { useRef } from "react";
import { api } from "../api/client";
import type { AuditEntry } from "../api/types";
import { useResource } from "../app/useResource";
import { EmptyRow, ErrorBox, Loading } from "../components/Notice";
import { formatDateTime, toMs } from "../lib/format";
import { navigate, useLocation } from "../lib/router";

const LIMIT = 100;

function detailText(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

/** `key=value` pairs of an entry's detail, in key order. */
export function detailPairs(detail: AuditEntry["detail"]): [string, string][] {
  if (!detail || typeof detail !== "object") return [];
  return Object.keys(detail)
    .sort()
    .map((k) => [k, detailText((detail as Record<string, unknown>)[k])]);
}

function actionClass(action: string): string {
  const head = action.split(".")[0] ?? "";
  return /^[a-z]+$/.test(head) ? `audit-action action-${head}` : "audit-action";
}

export function AuditPage() {
  const loc = useLocation();
  const before = new URLSearchParams(loc.search).get("before");
  // Cursors of the pages we came through, for "Newer".
  const trail = useRef<(string | null)[]>([]);
  const res = useResource((signal) => api.audit({ limit: LIMIT, before }, signal), [before]);
  const items = res.data?.items ?? [];
  const next = res.data?.next_before;

  const go = (b: string | null) => navigate(b ? `/audit?before=${encodeURIComponent(b)}` : "/audit");
  const older = () => {
    if (next === undefined || next === null) return;
    trail.current.push(before);
    go(String(next));
  };
  const newer = () => {
    const prev = trail.current.length > 0 ? (trail.current.pop() ?? null) : null;
    go(prev);
  };

  return (
    <section className="page page-audit" aria-labelledby="audit-title">
      <div className="page-head">
        <h1 id="audit-title">Audit log</h1>
        <span className="muted">Every sign-in, command, terminal session and change, newest first.</span>
      </div>
      {res.error && <ErrorBox title="Could not load the audit log" message={res.error} onRetry={res.reload} />}
      {!res.data && res.loading && <Loading label="Loading the audit log…" />}
      {res.data && (
        <div className="panel">
          <div className="table-scroll">
            <table className="data-table compact audit-table" data-testid="audit-table">
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">Who</th>
                  <th scope="col">Action</th>
                  <th scope="col">Target</th>
                  <th scope="col">Detail</th>
                </tr>
              </thead>
              <tbody>
                {items.length === 0 ? (
                  <EmptyRow columns={5}>{before ? "No older entries." : "Nothing has been recorded yet."}</EmptyRow>
                ) : (
                  items.map((e) => (
                    <tr key={String(e.id)} data-testid="audit-row" data-action={e.action} data-audit-id={String(e.id)}>
                      <td className="nowrap">{formatDateTime(toMs(e.at))}</td>
                      <td className="ellipsis" title={e.actor}>
                        {e.actor}
                      </td>
                      <td>
                        <code className={actionClass(e.action)}>{e.action}</code>
                      </td>
                      <td className="ellipsis" title={e.target}>
                        {e.target}
                      </td>
                      <td className="audit-detail">
                        {detailPairs(e.detail).map(([k, v]) => (
                          <span key={k} className="audit-kv">
                            <span className="muted">{k}=</span>
                            {v}
                          </span>
                        ))}
                      </td>
                    </tr>
                  ))
                )}
              </tbody>
            </table>
          </div>
          <div className="form-actions pager">
            <button type="button" onClick={newer} disabled={!before || res.loading} data-testid="audit-newer">
              ← Newer
            </button>
            <button
              type="button"
              onClick={older}
              disabled={next === undefined || next === null || res.loading}
              data-testid="audit-older"
            >
              Older →
            </button>
            {before && (
              <button type="button" className="link" onClick={() => ((trail.current = []), go(null))}>
                Back to the newest
              </button>
            )}
          </div>
        </div>
      )}
    </section>
  );
}
