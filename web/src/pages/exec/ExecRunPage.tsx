// One exec (/exec/:id): per-host results as they arrive. The SSE stream
// GET /api/v1/exec/{id}/events brings run / output / result / done events;
// GET /api/v1/exec/{id} gives what is stored (a finished run, or what was
// missed before the stream opened). Both go through the same reducer, which
// orders output by seq and drops what it already has.

import { memo, useCallback, useEffect, useLayoutEffect, useRef, useState } from "react";
import { api, errorMessage, execEventsUrl, isAbort } from "../../api/client";
import type { ExecDetail, ExecSpec } from "../../api/types";
import { ErrorBox, Loading } from "../../components/Notice";
import {
  EMPTY_EXEC,
  isFinalState,
  outputSegments,
  parseExecEvent,
  quoteArgv,
  reduceExec,
  runOutcome,
  summarize,
  type ExecAction,
  type ExecView,
  type RunView,
} from "../../lib/exec";
import { formatDateTime, formatDuration, toMs } from "../../lib/format";
import { formatLabels } from "../../lib/labels";
import { Link } from "../../lib/router";

const FLUSH_MS = 60;
const EVENT_NAMES = ["run", "output", "result", "done"] as const;

/** The part of EventSource used here (tests pass a fake). */
export interface EventSourceLike {
  readyState: number;
  onopen: ((ev: Event) => void) | null;
  onerror: ((ev: Event) => void) | null;
  addEventListener(type: string, fn: (ev: MessageEvent) => void): void;
  close(): void;
}

export type EventSourceFactory = (url: string) => EventSourceLike;

function defaultFactory(url: string): EventSourceLike | null {
  return typeof EventSource === "function" ? (new EventSource(url) as unknown as EventSourceLike) : null;
}

type StreamState = "connecting" | "open" | "retrying" | "closed";

/** Batches actions into the reducer at most every FLUSH_MS (1,000 hosts answering at once stay smooth). */
function useExecView(): [ExecView, (a: ExecAction) => void] {
  const [view, setView] = useState<ExecView>(EMPTY_EXEC);
  const queue = useRef<ExecAction[]>([]);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  useEffect(
    () => () => {
      if (timer.current) clearTimeout(timer.current);
    },
    [],
  );
  const push = useCallback((a: ExecAction) => {
    queue.current.push(a);
    if (timer.current) return;
    timer.current = setTimeout(() => {
      timer.current = null;
      const batch = queue.current;
      queue.current = [];
      setView((v) => reduceExec(v, batch));
    }, FLUSH_MS);
  }, []);
  return [view, push];
}

export function ExecRunPage({ id, openEvents }: { id: string; openEvents?: EventSourceFactory }) {
  const [view, push] = useExecView();
  const [detail, setDetail] = useState<ExecDetail | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [stream, setStream] = useState<StreamState>("connecting");
  const [cancel, setCancel] = useState<{ busy: boolean; error: string | null; sent: boolean }>({
    busy: false,
    error: null,
    sent: false,
  });
  const esRef = useRef<EventSourceLike | null>(null);

  const loadSnapshot = useCallback(
    (signal?: AbortSignal) =>
      api.exec(id, signal).then(
        (d) => {
          setDetail(d);
          setLoadError(null);
          push({ type: "snapshot", detail: d });
        },
        (e: unknown) => {
          if (!isAbort(e)) setLoadError(errorMessage(e));
        },
      ),
    [id, push],
  );

  // The live stream first, then the snapshot: nothing falls between them.
  useEffect(() => {
    const ctl = new AbortController();
    const es = (openEvents ?? defaultFactory)(execEventsUrl(id));
    esRef.current = es;
    if (es) {
      for (const name of EVENT_NAMES) {
        es.addEventListener(name, (ev: MessageEvent) => {
          const a = parseExecEvent(name, typeof ev.data === "string" ? ev.data : "");
          if (a) push(a);
        });
      }
      let opened = false;
      es.onopen = () => {
        setStream("open");
        // After the browser re-established the stream, fill any gap from storage.
        if (opened) void loadSnapshot(ctl.signal);
        opened = true;
      };
      es.onerror = () => {
        if (es.readyState === 2) {
          setStream("closed");
          void loadSnapshot(ctl.signal);
        } else {
          setStream("retrying");
        }
      };
    } else {
      setStream("closed");
    }
    void loadSnapshot(ctl.signal);
    return () => {
      ctl.abort();
      es?.close();
      esRef.current = null;
    };
  }, [id, openEvents, loadSnapshot, push]);

  // Everything reported: the stream has nothing more to say.
  useEffect(() => {
    if (view.done && esRef.current) {
      esRef.current.close();
      esRef.current = null;
      setStream("closed");
    }
  }, [view.done]);

  const doCancel = async () => {
    setCancel({ busy: true, error: null, sent: false });
    try {
      await api.cancelExec(id);
      setCancel({ busy: false, error: null, sent: true });
    } catch (e) {
      setCancel({ busy: false, error: errorMessage(e), sent: false });
    }
  };

  const s = summarize(view);
  const finished = view.done || (s.total > 0 && s.running === 0 && view.order.every((a) => isFinalState(view.runs[a]?.state ?? "pending")));

  return (
    <section className="page page-exec-run" aria-labelledby="exec-run-title" data-testid="exec-run-page" data-exec-id={id} data-done={finished ? "true" : "false"}>
      <nav className="crumbs" aria-label="Breadcrumb">
        <Link to="/exec">Run</Link> <span aria-hidden="true">/</span> <code>{id}</code>
      </nav>
      <div className="page-head agent-head">
        <h1 id="exec-run-title">{detail ? commandTitle(detail.spec) : "Command"}</h1>
        <div className="actions">
          {!finished && (
            <button type="button" className="danger" onClick={() => void doCancel()} disabled={cancel.busy || cancel.sent} data-testid="exec-cancel">
              {cancel.busy ? "Cancelling…" : cancel.sent ? "Cancel requested" : "Cancel"}
            </button>
          )}
          <Link to="/exec" className="button">
            New command
          </Link>
        </div>
      </div>
      {detail && <SpecLine detail={detail} />}
      {cancel.error && <ErrorBox title="Could not cancel" message={cancel.error} />}
      {loadError && <ErrorBox title="Could not load the stored results" message={loadError} onRetry={() => void loadSnapshot()} />}

      <div className="exec-summary" data-testid="exec-summary" role="status" aria-live="polite">
        <span className="sum sum-ok">{s.ok} ok</span>
        <span className="sum sum-failed">{s.failed} failed</span>
        <span className="sum sum-offline">{s.offline} offline</span>
        {s.running > 0 && <span className="sum sum-running">{s.running} running</span>}
        <span className="muted">
          {s.total} machine{s.total === 1 ? "" : "s"}
          {finished ? " · finished" : stream === "retrying" ? " · reconnecting to the live stream…" : stream === "open" ? " · live" : ""}
        </span>
      </div>
      <p className="muted small legend">
        Standard error is shown <span className="stderr">like this</span>.
      </p>

      {s.total === 0 && !loadError && (finished ? <p className="muted">No machine matched.</p> : <Loading label="Waiting for the machines…" />)}
      <div className="exec-results">
        {view.order.map((agentId) => {
          const run = view.runs[agentId];
          return run ? <HostResult key={agentId} run={run} /> : null;
        })}
      </div>
    </section>
  );
}

function commandTitle(spec: ExecSpec): string {
  if (spec.argv && spec.argv.length > 0) return quoteArgv(spec.argv);
  if (typeof spec.script === "string") {
    const first = spec.script.split("\n").find((l) => l.trim() && !l.startsWith("#!")) ?? "";
    return `Script: ${first.trim() || "(empty)"}`;
  }
  return "Command";
}

function SpecLine({ detail }: { detail: ExecDetail }) {
  const t = detail.spec.target ?? {};
  const parts: string[] = [];
  if (t.ids?.length) parts.push(`${t.ids.length} chosen agent${t.ids.length === 1 ? "" : "s"}`);
  if (t.project) parts.push(`project ${t.project}`);
  if (t.labels && Object.keys(t.labels).length) parts.push(`labels ${formatLabels(t.labels)}`);
  const extras: string[] = [];
  if (detail.spec.cwd) extras.push(`in ${detail.spec.cwd}`);
  if (detail.spec.run_as) extras.push(`as ${detail.spec.run_as}`);
  if (detail.spec.timeout) extras.push(`timeout ${detail.spec.timeout}`);
  if (detail.spec.concurrency) extras.push(`${detail.spec.concurrency} at once`);
  const when = toMs(detail.created_at);
  return (
    <div className="muted small exec-spec">
      <span>On {parts.join(", ") || "—"}</span>
      {extras.length > 0 && <span> · {extras.join(" · ")}</span>}
      {detail.created_by && <span> · by {detail.created_by}</span>}
      {when && <span> · {formatDateTime(when)}</span>}
      {typeof detail.spec.script === "string" && (
        <details>
          <summary>Script</summary>
          <pre className="exec-script">{detail.spec.script}</pre>
        </details>
      )}
    </div>
  );
}

function exitText(run: RunView): string {
  const r = run.result;
  if (run.state === "offline") return "offline";
  if (!r) return run.state === "failed" ? "failed" : run.state === "pending" ? "waiting" : "running";
  const parts: string[] = [];
  if (r.signal !== null) parts.push(`signal ${r.signal}`);
  else if (r.exit_code !== null) parts.push(`exit ${r.exit_code}`);
  if (r.timed_out) parts.push("timed out");
  if (r.cancelled) parts.push("cancelled");
  if (r.error) parts.push(`error: ${r.error}`);
  return parts.join(" · ") || "done";
}

const HostResult = memo(function HostResult({ run }: { run: RunView }) {
  const outcome = runOutcome(run);
  const segments = outputSegments(run.chunks);
  // Follow the output as it grows, unless the viewer scrolled up to read.
  const pre = useRef<HTMLPreElement>(null);
  const follow = useRef(true);
  useLayoutEffect(() => {
    const el = pre.current;
    if (el && follow.current) el.scrollTop = el.scrollHeight;
  }, [run.chunks]);
  const onScroll = () => {
    const el = pre.current;
    if (el) follow.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
  };
  return (
    <article
      className={`panel exec-host outcome-${outcome}`}
      data-testid="exec-result"
      data-agent-id={run.agent_id}
      data-state={run.state}
      data-outcome={outcome}
      aria-label={`${run.hostname || run.agent_id}: ${exitText(run)}`}
    >
      <header className="exec-host-head">
        <Link to={`/agents/${encodeURIComponent(run.agent_id)}`} className="host-link">
          {run.hostname || run.agent_id}
        </Link>
        <span className={`exec-state state-${run.state}`}>{run.state}</span>
        <span className={`exec-exit exit-${outcome}`} data-testid="exec-exit">
          {exitText(run)}
        </span>
        {run.result?.duration_ms != null && <span className="muted small">{formatDuration(run.result.duration_ms)}</span>}
        {run.result?.truncated && <span className="muted small">output truncated by the server</span>}
        {run.clipped && <span className="muted small">output cut in the browser</span>}
      </header>
      {segments.length > 0 ? (
        <pre ref={pre} onScroll={onScroll} className="exec-output" data-testid="exec-output" tabIndex={0} aria-label={`Output of ${run.hostname || run.agent_id}`}>
          {segments.map((seg, i) => (
            <span key={i} className={seg.stream === "stderr" ? "stderr" : undefined} data-stream={seg.stream}>
              {seg.text}
            </span>
          ))}
        </pre>
      ) : (
        <p className="muted small exec-no-output" data-testid="exec-output">
          {isFinalState(run.state) ? "No output." : "No output yet."}
        </p>
      )}
    </article>
  );
});
