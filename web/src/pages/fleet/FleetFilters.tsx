// The fleet filter bar: free-text search, status, project and a label
// selector. Typing is debounced; the filter itself lives in the URL.

import { useEffect, useRef, useState } from "react";
import type { AgentStatus, Project, StatusCounts } from "../../api/types";
import { formatCount } from "../../lib/format";
import type { FleetFilter } from "../../lib/fleetQuery";
import { parseLabels } from "../../lib/labels";

const TYPE_DEBOUNCE_MS = 250;

const STATUS_TABS: { value: AgentStatus | ""; label: string }[] = [
  { value: "", label: "All" },
  { value: "online", label: "Online" },
  { value: "offline", label: "Offline" },
  { value: "revoked", label: "Revoked" },
];

/** A text field whose value is committed after a pause in typing (or on Enter). */
function useDebouncedField(value: string, commit: (v: string) => void) {
  const [text, setText] = useState(value);
  const committed = useRef(value);
  useEffect(() => {
    if (value !== committed.current) {
      committed.current = value;
      setText(value);
    }
  }, [value]);
  useEffect(() => {
    if (text === committed.current) return;
    const t = setTimeout(() => {
      committed.current = text;
      commit(text);
    }, TYPE_DEBOUNCE_MS);
    return () => clearTimeout(t);
  }, [text]);
  const flush = () => {
    if (text !== committed.current) {
      committed.current = text;
      commit(text);
    }
  };
  return { text, setText, flush };
}

export function FleetFilters({
  filter,
  onChange,
  projects,
  counts,
}: {
  filter: FleetFilter;
  onChange(f: FleetFilter): void;
  projects: Project[];
  counts: StatusCounts | null;
}) {
  const latest = useRef(filter);
  latest.current = filter;
  const q = useDebouncedField(filter.q, (v) => onChange({ ...latest.current, q: v }));
  const label = useDebouncedField(filter.label, (v) => {
    if (v.trim() === "" || parseLabels(v).ok) onChange({ ...latest.current, label: v });
  });
  const labelCheck = label.text.trim() ? parseLabels(label.text) : null;
  const labelError = labelCheck && !labelCheck.ok ? labelCheck.error : null;
  const projectIds = projects.map((p) => p.id);
  if (filter.project && !projectIds.includes(filter.project)) projectIds.push(filter.project);

  return (
    <div className="filters" role="search" aria-label="Filter agents">
      <input
        type="search"
        className="filter-search"
        placeholder="Search hostname or id"
        aria-label="Search agents by hostname or id"
        data-testid="fleet-search"
        value={q.text}
        onChange={(e) => q.setText(e.target.value)}
        onKeyDown={(e) => e.key === "Enter" && q.flush()}
      />
      <div className="segmented" role="group" aria-label="Status">
        {STATUS_TABS.map((t) => {
          const n = t.value && counts ? counts[t.value] : null;
          return (
            <button
              key={t.value || "all"}
              type="button"
              aria-pressed={filter.status === t.value}
              data-testid={`status-filter-${t.value || "all"}`}
              className={t.value ? `seg-${t.value}` : undefined}
              onClick={() => onChange({ ...filter, status: t.value })}
            >
              {t.label}
              {n !== null && <span className="seg-count">{formatCount(n)}</span>}
            </button>
          );
        })}
      </div>
      <select
        aria-label="Project"
        data-testid="fleet-project"
        value={filter.project}
        onChange={(e) => onChange({ ...filter, project: e.target.value })}
      >
        <option value="">All projects</option>
        {projectIds.map((p) => (
          <option key={p} value={p}>
            {p}
          </option>
        ))}
      </select>
      <div className="filter-label">
        <input
          type="text"
          placeholder="Labels: env=prod,role=web"
          aria-label="Filter by labels (key=value, comma separated)"
          aria-invalid={labelError ? true : undefined}
          aria-describedby={labelError ? "label-filter-error" : undefined}
          data-testid="fleet-label"
          spellCheck={false}
          value={label.text}
          onChange={(e) => label.setText(e.target.value)}
          onKeyDown={(e) => e.key === "Enter" && label.flush()}
        />
        {labelError && (
          <span id="label-filter-error" className="field-error" role="alert">
            {labelError}
          </span>
        )}
      </div>
    </div>
  );
}
