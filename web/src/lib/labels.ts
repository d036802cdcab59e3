// Labels as people type them (`env=prod, role=web`) and as the API wants
// them (a `{k: v}` map), checked with the control plane's own rules so a
// mistake is caught before the request.

import type { Labels } from "../api/types";

export const MAX_LABELS = 32;
const KEY_RE = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/;
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;

/** Why a label is refused, or null when the server will accept it. */
export function labelProblem(key: string, value: string): string | null {
  if (!KEY_RE.test(key)) {
    return `Label key "${key}" is invalid: use 1 to 63 letters, digits, '.', '_', '-' or '/', starting with a letter or digit.`;
  }
  if ([...value].length > 255) return `The value of label "${key}" is longer than 255 characters.`;
  if (CONTROL_RE.test(value)) return `The value of label "${key}" has control characters.`;
  return null;
}

export type ParsedLabels = { ok: true; labels: Labels } | { ok: false; error: string };

/** Parses `k=v, k2=v2` (commas or new lines between pairs). */
export function parseLabels(text: string): ParsedLabels {
  const labels: Labels = {};
  const pairs = text
    .split(/[,\n]/)
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq < 0) return { ok: false, error: `"${pair}" is not of the form key=value.` };
    const key = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    const problem = labelProblem(key, value);
    if (problem) return { ok: false, error: problem };
    labels[key] = value;
  }
  if (Object.keys(labels).length > MAX_LABELS) {
    return { ok: false, error: `Too many labels: at most ${MAX_LABELS}.` };
  }
  return { ok: true, labels };
}

/** `k=v,k2=v2`, keys sorted: the API's selector form. */
export function formatLabels(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k] ?? ""}`)
    .join(",");
}

/** Entries sorted by key, for stable display. */
export function labelEntries(labels: Labels | null | undefined): [string, string][] {
  if (!labels) return [];
  return Object.keys(labels)
    .sort()
    .map((k) => [k, labels[k] ?? ""]);
}
