// Light and dark themes: follow the system (prefers-color-scheme) until the
// viewer picks one, then remember the pick in localStorage.

import { useSyncExternalStore } from "react";

export type Theme = "light" | "dark";
const KEY = "sovereign.theme";
const EVENT = "sovereign:theme";

function media(): MediaQueryList | null {
  return typeof window.matchMedia === "function" ? window.matchMedia("(prefers-color-scheme: dark)") : null;
}

export function storedTheme(): Theme | null {
  try {
    const v = window.localStorage.getItem(KEY);
    return v === "light" || v === "dark" ? v : null;
  } catch {
    return null;
  }
}

export function effectiveTheme(): Theme {
  return storedTheme() ?? (media()?.matches ? "dark" : "light");
}

/** Puts the theme on <html data-theme>, which the stylesheet keys on. */
export function applyTheme(): void {
  document.documentElement.dataset.theme = effectiveTheme();
}

export function setTheme(t: Theme): void {
  try {
    window.localStorage.setItem(KEY, t);
  } catch {
    // Private mode: the pick lasts for this page only.
  }
  applyTheme();
  window.dispatchEvent(new Event(EVENT));
}

function subscribe(fn: () => void): () => void {
  const m = media();
  const onSystem = () => {
    applyTheme();
    fn();
  };
  m?.addEventListener?.("change", onSystem);
  window.addEventListener(EVENT, fn);
  window.addEventListener("storage", onSystem);
  return () => {
    m?.removeEventListener?.("change", onSystem);
    window.removeEventListener(EVENT, fn);
    window.removeEventListener("storage", onSystem);
  };
}

export function useTheme(): Theme {
  return useSyncExternalStore(subscribe, effectiveTheme, () => "light" as Theme);
}
