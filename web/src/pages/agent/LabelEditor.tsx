// Shows an agent's labels and edits them (PUT /agents/{id}/labels).

import { useState, type FormEvent } from "react";
import { api, errorMessage } from "../../api/client";
import type { Agent, Labels } from "../../api/types";
import { LabelChips } from "../../components/LabelChips";
import { labelEntries, labelProblem, MAX_LABELS } from "../../lib/labels";

type Row = { key: string; value: string; id: number };

let nextRowId = 1;
const toRows = (labels: Labels): Row[] => labelEntries(labels).map(([key, value]) => ({ key, value, id: nextRowId++ }));

export function LabelEditor({ agent, onSaved }: { agent: Agent; onSaved(a: Agent): void }) {
  const [rows, setRows] = useState<Row[] | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const revoked = agent.status === "revoked";

  if (rows === null) {
    return (
      <div className="labels-view" data-testid="labels-view">
        <LabelChips labels={agent.labels} />
        {!revoked && (
          <button
            type="button"
            className="small"
            data-testid="labels-edit"
            onClick={() => {
              setRows(toRows(agent.labels));
              setError(null);
            }}
          >
            Edit labels
          </button>
        )}
      </div>
    );
  }

  const update = (id: number, patch: Partial<Row>) => setRows(rows.map((r) => (r.id === id ? { ...r, ...patch } : r)));

  const save = async (e: FormEvent) => {
    e.preventDefault();
    const labels: Labels = {};
    for (const r of rows) {
      const key = r.key.trim();
      const value = r.value.trim();
      if (!key && !value) continue;
      const problem = labelProblem(key, value);
      if (problem) return setError(problem);
      if (key in labels) return setError(`Label key "${key}" appears twice.`);
      labels[key] = value;
    }
    setBusy(true);
    setError(null);
    try {
      const a = await api.setLabels(agent.id, labels);
      onSaved(a);
      setRows(null);
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="labels-editor" onSubmit={save} aria-label="Edit labels" data-testid="labels-editor">
      {rows.length === 0 && <p className="muted small">No labels. Add one below.</p>}
      {rows.map((r, i) => (
        <div className="label-edit-row" key={r.id}>
          <input
            aria-label={`Label ${i + 1} key`}
            placeholder="key"
            value={r.key}
            spellCheck={false}
            onChange={(e) => update(r.id, { key: e.target.value })}
            data-testid="label-key"
          />
          <span aria-hidden="true">=</span>
          <input
            aria-label={`Label ${i + 1} value`}
            placeholder="value"
            value={r.value}
            spellCheck={false}
            onChange={(e) => update(r.id, { value: e.target.value })}
            data-testid="label-value"
          />
          <button
            type="button"
            className="icon"
            aria-label={`Remove label ${r.key || i + 1}`}
            onClick={() => setRows(rows.filter((x) => x.id !== r.id))}
          >
            ×
          </button>
        </div>
      ))}
      {error && (
        <p className="form-error" role="alert" data-testid="labels-error">
          {error}
        </p>
      )}
      <div className="form-actions">
        <button
          type="button"
          className="small"
          disabled={rows.length >= MAX_LABELS}
          onClick={() => setRows([...rows, { key: "", value: "", id: nextRowId++ }])}
          data-testid="labels-add"
        >
          Add label
        </button>
        <span className="spacer" />
        <button type="button" className="small" onClick={() => setRows(null)} disabled={busy}>
          Cancel
        </button>
        <button type="submit" className="small primary" disabled={busy} data-testid="labels-save">
          {busy ? "Saving…" : "Save labels"}
        </button>
      </div>
    </form>
  );
}
