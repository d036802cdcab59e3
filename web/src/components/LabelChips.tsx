// Labels as compact key=value chips. Keys and values come from agents and
// operators: they are rendered as text only.

import type { Labels } from "../api/types";
import { labelEntries } from "../lib/labels";

export function LabelChips({ labels, max }: { labels: Labels | null | undefined; max?: number }) {
  const all = labelEntries(labels);
  if (all.length === 0) return <span className="muted">—</span>;
  const shown = max !== undefined ? all.slice(0, max) : all;
  const hidden = all.length - shown.length;
  return (
    <span className="chips" title={all.map(([k, v]) => `${k}=${v}`).join("\n")}>
      {shown.map(([k, v]) => (
        <span className="chip" key={k} data-testid="label-chip">
          <span className="chip-key">{k}</span>
          <span className="chip-eq">=</span>
          <span className="chip-value">{v}</span>
        </span>
      ))}
      {hidden > 0 && <span className="chip chip-more">+{hidden}</span>}
    </span>
  );
}
