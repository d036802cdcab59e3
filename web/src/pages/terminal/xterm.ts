// xterm.js for the terminal and the recording player, themed to match the
// dashboard. Bundled (with its stylesheet) into the lazily loaded chunks of
// those two pages only; system monospace fonts, nothing fetched.

import "@xterm/xterm/css/xterm.css";
import { Terminal, type ITerminalInitOnlyOptions, type ITerminalOptions, type ITheme } from "@xterm/xterm";
import type { Theme } from "../../lib/theme";

export { Terminal };

const DARK: ITheme = {
  background: "#0b0f15",
  foreground: "#e4e9f0",
  cursor: "#7aa5ff",
  cursorAccent: "#0b0f15",
  selectionBackground: "#35507f",
  selectionInactiveBackground: "#2a3340",
  black: "#1d2430",
  red: "#ff7b72",
  green: "#4ade80",
  yellow: "#f5b94a",
  blue: "#6e9bff",
  magenta: "#da77f2",
  cyan: "#3bc9db",
  white: "#c9d1d9",
  brightBlack: "#6e7681",
  brightRed: "#ffa198",
  brightGreen: "#86efac",
  brightYellow: "#ffd57a",
  brightBlue: "#a5c4ff",
  brightMagenta: "#e9a8f7",
  brightCyan: "#7ee4ef",
  brightWhite: "#f5f7fa",
};

const LIGHT: ITheme = {
  background: "#ffffff",
  foreground: "#17202c",
  cursor: "#2457c5",
  cursorAccent: "#ffffff",
  selectionBackground: "#bcd0f5",
  selectionInactiveBackground: "#dfe5ee",
  black: "#17202c",
  red: "#c2261d",
  green: "#16803c",
  yellow: "#8a5a00",
  blue: "#2457c5",
  magenta: "#862e9c",
  cyan: "#0b7285",
  white: "#8b95a5",
  brightBlack: "#5b6677",
  brightRed: "#e03e35",
  brightGreen: "#2b8a3e",
  brightYellow: "#a66f00",
  brightBlue: "#3b6fe0",
  brightMagenta: "#a43fbf",
  brightCyan: "#1098ad",
  brightWhite: "#5b6677",
};

export function xtermTheme(t: Theme): ITheme {
  return t === "dark" ? DARK : LIGHT;
}

/** Match colours of the search addon (#RRGGBB, as it requires). */
export function searchDecorations(t: Theme) {
  return t === "dark"
    ? {
        matchBackground: "#5a4a12",
        activeMatchBackground: "#b7791f",
        matchOverviewRuler: "#b7791f",
        activeMatchColorOverviewRuler: "#f5b94a",
      }
    : {
        matchBackground: "#fff1b8",
        activeMatchBackground: "#ffc53d",
        matchOverviewRuler: "#d4a017",
        activeMatchColorOverviewRuler: "#fa8c16",
      };
}

export const MONO_FONT = 'ui-monospace, SFMono-Regular, "SF Mono", Menlo, Consolas, "DejaVu Sans Mono", "Liberation Mono", monospace';

export function createTerminal(theme: Theme, extra: ITerminalOptions & ITerminalInitOnlyOptions = {}): Terminal {
  return new Terminal({
    fontFamily: MONO_FONT,
    fontSize: 13,
    lineHeight: 1.1,
    scrollback: 10_000,
    cursorBlink: true,
    // The search addon's match highlighting uses decorations.
    allowProposedApi: true,
    theme: xtermTheme(theme),
    ...extra,
  });
}

/** Opens a link from the terminal: web links only, in a new tab that cannot reach back. */
export function openLink(_ev: MouseEvent, uri: string): void {
  if (!/^https?:\/\//i.test(uri)) return;
  const w = window.open(uri, "_blank", "noopener,noreferrer");
  if (w) w.opener = null;
}
