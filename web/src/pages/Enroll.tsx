// Enrollment: create a join token, copy the one-line command that enrolls
// a machine with it, and list or revoke the tokens.

import { useState, type FormEvent } from "react";
import { api, errorMessage } from "../api/client";
import type { CreatedToken, JoinToken } from "../api/types";
import { useResource } from "../app/useResource";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { LabelChips } from "../components/LabelChips";
import { ErrorBox, Loading } from "../components/Notice";
import { copyText } from "../lib/clipboard";
import { formatDateTime, formatRelative } from "../lib/format";
import { parseLabels } from "../lib/labels";

const LIFETIMES = [
  { value: "15m", label: "15 minutes" },
  { value: "1h", label: "1 hour" },
  { value: "24h", label: "24 hours" },
  { value: "7d", label: "7 days" },
  { value: "30d", label: "30 days" },
];

function CreateTokenForm({ onCreated }: { onCreated(t: CreatedToken): void }) {
  const projects = useResource((signal) => api.projects(signal), []);
  const [project, setProject] = useState("");
  const [ttl, setTtl] = useState("1h");
  const [uses, setUses] = useState("1");
  const [labels, setLabels] = useState("");
  const [description, setDescription] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const projectIds = (projects.data ?? []).map((p) => p.id);
  const chosenProject = project || (projectIds.includes("default") ? "default" : (projectIds[0] ?? ""));

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const n = Number(uses);
    if (!Number.isInteger(n) || n < 1 || n > 100_000) {
      setError("Uses must be a whole number from 1 to 100000.");
      return;
    }
    const parsed = parseLabels(labels);
    if (!parsed.ok) {
      setError(parsed.error);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const t = await api.createToken({
        project: chosenProject,
        ttl,
        uses: n,
        labels: parsed.labels,
        description: description.trim(),
      });
      onCreated(t);
      setLabels("");
      setDescription("");
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="token-form panel" onSubmit={submit} aria-label="Create join token" data-testid="token-form" noValidate>
      <h2 className="panel-title">New join token</h2>
      <div className="form-grid">
        <label htmlFor="token-project">Project</label>
        {projects.error ? (
          <input
            id="token-project"
            value={project}
            placeholder="default"
            onChange={(e) => setProject(e.target.value)}
            data-testid="token-project"
          />
        ) : (
          <select
            id="token-project"
            value={chosenProject}
            onChange={(e) => setProject(e.target.value)}
            disabled={projects.loading && !projects.data}
            data-testid="token-project"
          >
            {projectIds.length === 0 && <option value="">{projects.loading ? "Loading…" : "default"}</option>}
            {projectIds.map((p) => (
              <option key={p} value={p}>
                {p}
              </option>
            ))}
          </select>
        )}
        <label htmlFor="token-ttl">Lifetime</label>
        <select id="token-ttl" value={ttl} onChange={(e) => setTtl(e.target.value)} data-testid="token-ttl">
          {LIFETIMES.map((l) => (
            <option key={l.value} value={l.value}>
              {l.label}
            </option>
          ))}
        </select>
        <label htmlFor="token-uses">Uses</label>
        <input
          id="token-uses"
          type="number"
          min={1}
          max={100000}
          step={1}
          inputMode="numeric"
          value={uses}
          onChange={(e) => setUses(e.target.value)}
          data-testid="token-uses"
        />
        <label htmlFor="token-labels">Labels</label>
        <input
          id="token-labels"
          placeholder="env=prod, role=web"
          spellCheck={false}
          value={labels}
          onChange={(e) => setLabels(e.target.value)}
          data-testid="token-labels"
          aria-describedby="token-labels-help"
        />
        <span />
        <span id="token-labels-help" className="muted small">
          Given to every agent enrolled with this token.
        </span>
        <label htmlFor="token-description">Description</label>
        <input
          id="token-description"
          placeholder="optional"
          value={description}
          maxLength={200}
          onChange={(e) => setDescription(e.target.value)}
          data-testid="token-description"
        />
      </div>
      {error && (
        <p className="form-error" role="alert" data-testid="token-error">
          {error}
        </p>
      )}
      <div className="form-actions">
        <button type="submit" className="primary" disabled={busy} data-testid="token-create">
          {busy ? "Creating…" : "Create token"}
        </button>
      </div>
    </form>
  );
}

export function CommandBox({ token }: { token: CreatedToken }) {
  const [copied, setCopied] = useState<"idle" | "ok" | "failed">("idle");
  const copy = async () => {
    const ok = await copyText(token.command);
    setCopied(ok ? "ok" : "failed");
    if (ok) setTimeout(() => setCopied("idle"), 2500);
  };
  return (
    <div className="panel token-created" data-testid="token-created" data-token-id={token.id}>
      <h2 className="panel-title">Run this on the machine to enroll</h2>
      <p className="muted small">
        The token's secret is shown only now. It expires {formatDateTime(token.expires_at)} and allows{" "}
        {token.uses_total} {token.uses_total === 1 ? "enrollment" : "enrollments"}.
      </p>
      <div className="command">
        <pre tabIndex={0} aria-label="Enrollment command" data-testid="enroll-command">
          {token.command}
        </pre>
        <button type="button" className="primary" onClick={copy} data-testid="copy-command" aria-label="Copy command">
          {copied === "ok" ? "Copied" : "Copy"}
        </button>
      </div>
      <p className="muted small" role="status" aria-live="polite" data-testid="copy-status">
        {copied === "ok" && "Command copied to the clipboard."}
        {copied === "failed" && "Could not copy automatically: select the command and press Ctrl+C."}
      </p>
      <p className="muted small">
        CA fingerprint (SHA-256): <code className="break">{token.ca_sha256}</code>
      </p>
    </div>
  );
}

function TokenList({ tokens, onRevoke }: { tokens: JoinToken[]; onRevoke(t: JoinToken): void }) {
  if (tokens.length === 0) return <p className="muted">No join tokens yet.</p>;
  const now = Date.now();
  const sorted = [...tokens].sort((a, b) => b.created_at - a.created_at);
  return (
    <div className="table-scroll">
      <table className="data-table" data-testid="token-table">
        <thead>
          <tr>
            <th scope="col">Token</th>
            <th scope="col">Project</th>
            <th scope="col">State</th>
            <th scope="col">Labels</th>
            <th scope="col" className="num">
              Uses left
            </th>
            <th scope="col">Created</th>
            <th scope="col">Expires</th>
            <th scope="col">
              <span className="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {sorted.map((t) => (
            <tr key={t.id} data-testid="token-row" data-token-id={t.id} data-state={t.state}>
              <td>
                <code title={t.id}>{t.id.slice(0, 8)}</code>
                {t.description && <div className="muted small ellipsis">{t.description}</div>}
              </td>
              <td>{t.project}</td>
              <td>
                <span className={`token-state state-${t.state}`}>{t.state}</span>
              </td>
              <td>
                <LabelChips labels={t.labels} max={3} />
              </td>
              <td className="num">
                {t.uses_left} / {t.uses_total}
              </td>
              <td title={formatDateTime(t.created_at)}>{formatRelative(t.created_at, now)}</td>
              <td title={formatDateTime(t.expires_at)}>{formatDateTime(t.expires_at)}</td>
              <td className="actions-cell">
                {t.state === "active" && (
                  <button
                    type="button"
                    className="small danger"
                    onClick={() => onRevoke(t)}
                    aria-label={`Revoke token ${t.id.slice(0, 8)}`}
                    data-testid="revoke-token"
                  >
                    Revoke
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function Enroll() {
  const tokens = useResource((signal) => api.tokens(signal), []);
  const [created, setCreated] = useState<CreatedToken | null>(null);
  const [revoking, setRevoking] = useState<JoinToken | null>(null);
  const [busy, setBusy] = useState(false);
  const [revokeError, setRevokeError] = useState<string | null>(null);

  const revoke = async () => {
    if (!revoking) return;
    setBusy(true);
    setRevokeError(null);
    try {
      await api.revokeToken(revoking.id);
      setRevoking(null);
      tokens.reload();
    } catch (e) {
      setRevokeError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="page page-enroll" aria-labelledby="enroll-title">
      <div className="page-head">
        <h1 id="enroll-title">Enroll machines</h1>
      </div>
      <div className="enroll-grid">
        <CreateTokenForm
          onCreated={(t) => {
            setCreated(t);
            tokens.reload();
          }}
        />
        {created ? (
          <CommandBox token={created} />
        ) : (
          <div className="panel muted">
            <h2 className="panel-title">How it works</h2>
            <p>
              Create a token, then run the command it gives on the machine. The agent makes its own key, checks the
              control plane's CA fingerprint, and shows up in the fleet within seconds.
            </p>
          </div>
        )}
      </div>
      <div className="panel">
        <h2 className="panel-title">Join tokens</h2>
        {tokens.error && <ErrorBox title="Could not load tokens" message={tokens.error} onRetry={tokens.reload} />}
        {tokens.data ? (
          <TokenList
            tokens={tokens.data}
            onRevoke={(t) => {
              setRevokeError(null);
              setRevoking(t);
            }}
          />
        ) : (
          !tokens.error && <Loading label="Loading tokens…" />
        )}
      </div>
      {revoking && (
        <ConfirmDialog
          title="Revoke this join token?"
          confirmLabel="Revoke token"
          busy={busy}
          error={revokeError}
          onCancel={() => setRevoking(null)}
          onConfirm={revoke}
        >
          <p>
            Token <code>{revoking.id.slice(0, 8)}</code> (project {revoking.project}) will no longer enroll machines.
            Agents already enrolled with it are not affected.
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}
