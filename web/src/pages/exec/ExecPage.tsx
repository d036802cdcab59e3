// Run a command on a selection of agents (/exec): target by ids, project
// and labels; a command line split into argv, or a script; env, working
// directory, timeout, run-as user and concurrency. Below, recent runs.
// `/exec?agent=<id>` (the agent page's "Run command") preselects agents.

import { useEffect, useState, type FormEvent } from "react";
import { api, errorMessage } from "../../api/client";
import type { ExecSpec } from "../../api/types";
import { useResource } from "../../app/useResource";
import { EmptyRow, ErrorBox, Loading } from "../../components/Notice";
import { parseConcurrency, parseEnv, parseTimeout, splitArgv } from "../../lib/exec";
import { formatDateTime, formatRelative, toMs } from "../../lib/format";
import { parseLabels } from "../../lib/labels";
import { Link, navigate, useLocation } from "../../lib/router";
import { AgentPicker, type Picked } from "./AgentPicker";

type Mode = "argv" | "script";

export interface ExecFormValues {
  agents: Picked[];
  project: string;
  labels: string;
  mode: Mode;
  command: string;
  script: string;
  env: string;
  cwd: string;
  timeout: string;
  runAs: string;
  concurrency: string;
}

/** A blank form. */
export const EMPTY_EXEC_FORM: ExecFormValues = {
  agents: [],
  project: "",
  labels: "",
  mode: "argv",
  command: "",
  script: "",
  env: "",
  cwd: "",
  timeout: "",
  runAs: "",
  concurrency: "",
};

export type BuiltSpec = { ok: true; spec: ExecSpec } | { ok: false; error: string };

/** The POST /exec body for the form, or why it cannot be sent. */
export function buildSpec(v: ExecFormValues): BuiltSpec {
  const target: ExecSpec["target"] = {};
  if (v.agents.length > 0) target.ids = v.agents.map((a) => a.id);
  if (v.project) target.project = v.project;
  if (v.labels.trim()) {
    const l = parseLabels(v.labels);
    if (!l.ok) return { ok: false, error: l.error };
    if (Object.keys(l.labels).length > 0) target.labels = l.labels;
  }
  if (!target.ids && !target.project && !target.labels) {
    return { ok: false, error: "Choose the machines: pick agents, a project or labels." };
  }
  const spec: ExecSpec = { target };
  if (v.mode === "argv") {
    const a = splitArgv(v.command);
    if (!a.ok) return { ok: false, error: a.error };
    if (a.value.length === 0) return { ok: false, error: "Type the command to run." };
    spec.argv = a.value;
  } else {
    if (!v.script.trim()) return { ok: false, error: "Type the script to run." };
    spec.script = v.script;
  }
  const env = parseEnv(v.env);
  if (!env.ok) return { ok: false, error: env.error };
  if (Object.keys(env.value).length > 0) spec.env = env.value;
  if (v.cwd.trim()) spec.cwd = v.cwd.trim();
  const t = parseTimeout(v.timeout);
  if (!t.ok) return { ok: false, error: t.error };
  if (t.value) spec.timeout = t.value;
  if (v.runAs.trim()) spec.run_as = v.runAs.trim();
  const c = parseConcurrency(v.concurrency);
  if (!c.ok) return { ok: false, error: c.error };
  if (c.value !== undefined) spec.concurrency = c.value;
  return { ok: true, spec };
}

function ExecForm() {
  const loc = useLocation();
  const projects = useResource((signal) => api.projects(signal), []);
  const [v, setV] = useState<ExecFormValues>(() => ({
    ...EMPTY_EXEC_FORM,
    agents: new URLSearchParams(loc.search).getAll("agent").filter(Boolean).map((id) => ({ id, hostname: "" })),
  }));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const set = <K extends keyof ExecFormValues>(k: K, value: ExecFormValues[K]) => setV((p) => ({ ...p, [k]: value }));

  // Names for agents preselected by id.
  useEffect(() => {
    const missing = v.agents.filter((a) => !a.hostname).slice(0, 20);
    if (missing.length === 0) return;
    const ctl = new AbortController();
    for (const m of missing) {
      api.getAgent(m.id, ctl.signal).then(
        (a) =>
          setV((p) => ({ ...p, agents: p.agents.map((x) => (x.id === a.id ? { id: a.id, hostname: a.hostname || a.id } : x)) })),
        () => undefined,
      );
    }
    return () => ctl.abort();
    // Only the initial selection needs names; picked ones carry theirs.
  }, []);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const built = buildSpec(v);
    if (!built.ok) {
      setError(built.error);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const created = await api.startExec(built.spec);
      navigate(`/exec/${encodeURIComponent(created.id)}`);
    } catch (err) {
      setError(errorMessage(err));
      setBusy(false);
    }
  };

  const projectIds = (projects.data ?? []).map((p) => p.id);
  return (
    <form className="panel exec-form" onSubmit={submit} aria-label="Run a command" data-testid="exec-form" noValidate>
      <h2 className="panel-title">Run a command</h2>
      <fieldset className="exec-target">
        <legend>Machines</legend>
        <div className="form-grid exec-grid">
          <span className="form-label" id="exec-agents-label">
            Agents
          </span>
          <div aria-labelledby="exec-agents-label" role="group">
            <AgentPicker value={v.agents} onChange={(a) => set("agents", a)} />
          </div>
          <label htmlFor="exec-project">Project</label>
          {projects.error ? (
            <input id="exec-project" value={v.project} onChange={(e) => set("project", e.target.value)} placeholder="any" data-testid="exec-project" />
          ) : (
            <select id="exec-project" value={v.project} onChange={(e) => set("project", e.target.value)} data-testid="exec-project">
              <option value="">Any project</option>
              {projectIds.map((p) => (
                <option key={p} value={p}>
                  {p}
                </option>
              ))}
            </select>
          )}
          <label htmlFor="exec-labels">Labels</label>
          <input
            id="exec-labels"
            placeholder="env=prod, role=web"
            spellCheck={false}
            value={v.labels}
            onChange={(e) => set("labels", e.target.value)}
            data-testid="exec-labels"
          />
        </div>
        <p className="muted small">An agent runs the command when it matches everything given here.</p>
      </fieldset>

      <fieldset>
        <legend>Command</legend>
        <div className="segmented" role="group" aria-label="Command kind">
          <button type="button" aria-pressed={v.mode === "argv"} onClick={() => set("mode", "argv")} data-testid="exec-mode-argv">
            Command line
          </button>
          <button type="button" aria-pressed={v.mode === "script"} onClick={() => set("mode", "script")} data-testid="exec-mode-script">
            Script
          </button>
        </div>
        {v.mode === "argv" ? (
          <>
            <label htmlFor="exec-command" className="visually-hidden">
              Command line
            </label>
            <input
              id="exec-command"
              className="mono wide"
              placeholder={`uptime    ·    systemctl status "my service"`}
              spellCheck={false}
              autoComplete="off"
              value={v.command}
              onChange={(e) => set("command", e.target.value)}
              data-testid="exec-command"
              aria-describedby="exec-command-help"
            />
            <p id="exec-command-help" className="muted small">
              Run directly, not through a shell: words are split on spaces; quote with '…' or "…", escape with \.
            </p>
          </>
        ) : (
          <>
            <label htmlFor="exec-script" className="visually-hidden">
              Script
            </label>
            <textarea
              id="exec-script"
              className="mono wide"
              rows={7}
              placeholder={"#!/bin/sh\nset -e\ndf -h /"}
              spellCheck={false}
              value={v.script}
              onChange={(e) => set("script", e.target.value)}
              data-testid="exec-command"
            />
          </>
        )}
      </fieldset>

      <details className="exec-options">
        <summary>Options</summary>
        <div className="form-grid exec-grid">
          <label htmlFor="exec-env">Environment</label>
          <textarea
            id="exec-env"
            className="mono"
            rows={3}
            placeholder="NAME=value, one a line"
            spellCheck={false}
            value={v.env}
            onChange={(e) => set("env", e.target.value)}
            data-testid="exec-env"
          />
          <label htmlFor="exec-cwd">Directory</label>
          <input id="exec-cwd" className="mono" placeholder="the agent's default" value={v.cwd} onChange={(e) => set("cwd", e.target.value)} data-testid="exec-cwd" />
          <label htmlFor="exec-timeout">Timeout</label>
          <input id="exec-timeout" placeholder="e.g. 30s, 5m (default: the server's)" value={v.timeout} onChange={(e) => set("timeout", e.target.value)} data-testid="exec-timeout" />
          <label htmlFor="exec-run-as">Run as</label>
          <input id="exec-run-as" placeholder="user (when the agent runs as root)" autoComplete="off" value={v.runAs} onChange={(e) => set("runAs", e.target.value)} data-testid="exec-run-as" />
          <label htmlFor="exec-concurrency">Concurrency</label>
          <input
            id="exec-concurrency"
            type="number"
            min={1}
            max={10000}
            inputMode="numeric"
            placeholder="machines at once (default: the server's)"
            value={v.concurrency}
            onChange={(e) => set("concurrency", e.target.value)}
            data-testid="exec-concurrency"
          />
        </div>
      </details>

      {error && (
        <p className="form-error" role="alert" data-testid="exec-error">
          {error}
        </p>
      )}
      <div className="form-actions">
        <button type="submit" className="primary" disabled={busy} data-testid="exec-run">
          {busy ? "Starting…" : "Run"}
        </button>
      </div>
    </form>
  );
}

function History() {
  const res = useResource((signal) => api.execs(signal), []);
  const rows = res.data ?? [];
  return (
    <div className="panel">
      <div className="panel-head">
        <h2 className="panel-title">Recent runs</h2>
        <button type="button" className="small" onClick={res.reload} disabled={res.loading}>
          Refresh
        </button>
      </div>
      {res.error && <ErrorBox title="Could not list the runs" message={res.error} onRetry={res.reload} />}
      {!res.data && res.loading && <Loading label="Loading runs…" />}
      {res.data && (
        <div className="table-scroll">
          <table className="data-table compact" data-testid="exec-history">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">By</th>
                <th scope="col">Command</th>
                <th scope="col" className="num">
                  Agents
                </th>
                <th scope="col" className="num">
                  OK
                </th>
                <th scope="col" className="num">
                  Failed
                </th>
                <th scope="col" className="num">
                  Running
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.length === 0 ? (
                <EmptyRow columns={7}>No commands have been run yet.</EmptyRow>
              ) : (
                rows.map((r) => (
                  <tr key={r.id} data-testid="exec-history-row" data-exec-id={r.id}>
                    <td title={formatDateTime(toMs(r.created_at))}>
                      <Link to={`/exec/${encodeURIComponent(r.id)}`}>{formatRelative(toMs(r.created_at))}</Link>
                    </td>
                    <td className="ellipsis">{r.created_by}</td>
                    <td className="ellipsis exec-cmd" title={r.command}>
                      <code>{r.command}</code>
                    </td>
                    <td className="num">{r.agents}</td>
                    <td className="num">{r.ok}</td>
                    <td className={`num${r.failed > 0 ? " text-bad" : ""}`}>{r.failed}</td>
                    <td className="num">{r.running}</td>
                  </tr>
                ))
              )}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

export function ExecPage() {
  return (
    <section className="page page-exec" aria-labelledby="exec-title">
      <div className="page-head">
        <h1 id="exec-title">Run</h1>
        <span className="muted">Run a command on one machine or many and watch each answer arrive.</span>
      </div>
      <ExecForm />
      <History />
    </section>
  );
}
